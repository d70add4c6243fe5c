/*
 * I7: bad input gets a clear error code, never a crash, a hang or a leak.
 * Every test runs in its own process (CK_FORK), so each one starts with an
 * uninitialised library: the sc_init and SYSCANCEL_SIGNAL tests rely on it.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

static void assert_error(sc_result r, int error)
{
	ck_assert_int_eq(r.status, SC_ERROR);
	ck_assert_int_eq(r.error, error);
}

/* A pipe holding one byte, 'x'. */
static void make_pipe_with_byte(int p[2])
{
	make_pipe(p);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
}

static void assert_byte_still_readable(int fd)
{
	char b = 0;

	ck_assert_int_eq(read(fd, &b, 1), 1);
	ck_assert_int_eq(b, 'x');
}

static void close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

START_TEST(bad_fd_is_EBADF)
{
	sc_token t;
	int p[2];
	char b;

	make_pipe(p);
	close_pipe(p);		/* p[0] is now a closed descriptor */
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_error(sc_read(&t, -1, &b, 1), EBADF);
	assert_error(sc_read(&t, p[0], &b, 1), EBADF);
	assert_error(sc_read(NULL, -1, &b, 1), EBADF);
	assert_error(sc_write(&t, -1, "x", 1), EBADF);
	assert_error(sc_recv(&t, -1, &b, 1, 0), EBADF);
	assert_error(sc_flock(&t, -1, LOCK_EX), EBADF);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(bad_buffer_pointer_is_EFAULT)
{
	sc_token t;
	int p[2];

	make_pipe_with_byte(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_error(sc_read(&t, p[0], (void *)1, 1), EFAULT);
	assert_error(sc_write(&t, p[1], (void *)1, 1), EFAULT);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(null_token_pointer_is_EINVAL)
{
	ck_assert_int_eq(sc_token_init(NULL, NULL), EINVAL);
	ck_assert_int_eq(sc_token_destroy(NULL), EINVAL);
	ck_assert_int_eq(sc_cancel(NULL), EINVAL);
	ck_assert_int_eq(sc_cancel_cause(NULL, EPIPE), EINVAL);
	ck_assert_int_eq(sc_token_set_deadline(NULL, 0), EINVAL);
	ck_assert_int_eq(sc_token_set_timeout(NULL, 0), EINVAL);
	ck_assert(sc_token_deadline(NULL) == SC_NO_DEADLINE);
	ck_assert_int_eq(sc_token_cause(NULL), 0);
}
END_TEST

START_TEST(null_token_is_never_cancelled)
{
	ck_assert(!sc_is_cancelled(NULL));
}
END_TEST

static void assert_token_rejected(sc_token *bad)
{
	sc_token child;
	int p[2];
	char b;

	ck_assert_int_eq(sc_token_init(&child, bad), EINVAL);
	ck_assert_int_eq(sc_cancel(bad), EINVAL);
	ck_assert_int_eq(sc_cancel_cause(bad, EPIPE), EINVAL);
	ck_assert_int_eq(sc_token_set_deadline(bad, 0), EINVAL);
	ck_assert_int_eq(sc_token_set_timeout(bad, 0), EINVAL);
	ck_assert(sc_token_deadline(bad) == SC_NO_DEADLINE);
	ck_assert_int_eq(sc_token_cause(bad), 0);

	make_pipe_with_byte(p);
	assert_error(sc_read(bad, p[0], &b, 1), EINVAL);
	assert_byte_still_readable(p[0]);
	close_pipe(p);

	ck_assert_int_eq(sc_token_destroy(bad), EINVAL);
}

START_TEST(zeroed_token_is_EINVAL)
{
	sc_token t;

	memset(&t, 0, sizeof(t));
	assert_token_rejected(&t);
}
END_TEST

START_TEST(destroyed_token_is_EINVAL)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	assert_token_rejected(&t);
}
END_TEST

START_TEST(negative_sleep_is_EINVAL)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_error(sc_sleep(&t, -1), EINVAL);
	assert_error(sc_sleep(&t, INT64_MIN), EINVAL);
	assert_error(sc_sleep(NULL, -1), EINVAL);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(negative_deadline_is_EINVAL_and_changes_nothing)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_deadline(&t, -1), EINVAL);
	ck_assert_int_eq(sc_token_set_deadline(&t, INT64_MIN), EINVAL);
	ck_assert_int_eq(sc_token_set_timeout(&t, -1), EINVAL);
	ck_assert(sc_token_deadline(&t) == SC_NO_DEADLINE);
	ck_assert_int_eq(sc_token_cause(&t), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(cancel_cause_that_is_not_positive_is_EINVAL_and_cancels_nothing)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cancel_cause(&t, 0), EINVAL);
	ck_assert_int_eq(sc_cancel_cause(&t, -EPIPE), EINVAL);
	ck_assert(!sc_is_cancelled(&t));
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(fcntl_lock_with_non_lock_command_is_EINVAL)
{
	static const int cmds[] = { F_GETFL, F_GETFD, F_SETFD, F_GETOWN };
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[] = "/tmp/sc-badinput-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		assert_error(sc_fcntl_lock(NULL, fd, cmds[i], &fl), EINVAL);
	close(fd);
}
END_TEST

static void unset_signal_env(void)
{
	ck_assert_int_eq(unsetenv("SYSCANCEL_SIGNAL"), 0);
}

/* The library's handler is installed on signo. */
static void assert_library_handles(int signo)
{
	struct sigaction sa;

	ck_assert_int_eq(sigaction(signo, NULL, &sa), 0);
	ck_assert(sa.sa_flags & SA_SIGINFO);
	ck_assert_ptr_ne((void *)sa.sa_sigaction, (void *)SIG_DFL);
	ck_assert_ptr_ne((void *)sa.sa_sigaction, (void *)SIG_IGN);
}

START_TEST(init_with_signal_zero_uses_a_free_realtime_signal)
{
	sc_config cfg = { .signo = 0 };

	unset_signal_env();
	ck_assert_int_eq(sc_init(&cfg), 0);
	int signo = sc_signal_number();

	ck_assert_int_ge(signo, SIGRTMIN);
	ck_assert_int_le(signo, SIGRTMAX);
	assert_library_handles(signo);
	ck_assert_int_eq(sc_sleep(NULL, 0).status, SC_OK);
}
END_TEST

START_TEST(signal_number_reports_configured_signal)
{
	sc_config cfg = { .signo = SIGRTMIN + 6 };

	unset_signal_env();
	ck_assert_int_eq(sc_init(&cfg), 0);
	ck_assert_int_eq(sc_signal_number(), SIGRTMIN + 6);
	assert_library_handles(SIGRTMIN + 6);
}
END_TEST

/* Signal numbers sc_init must refuse: not real-time, or out of range. */
static int bad_signo(int i)
{
	switch (i) {
	case 0:
		return SIGTRAP;
	case 1:
		return SIGKILL;
	case 2:
		return -1;
	case 3:
		return SIGRTMAX + 1;
	default:
		return 1000;
	}
}

START_TEST(init_with_non_realtime_signal_is_EINVAL)
{
	sc_config cfg = { .signo = bad_signo(_i) };
	struct sigaction sa;

	unset_signal_env();
	ck_assert_int_eq(sc_init(&cfg), EINVAL);
	if (cfg.signo > 0 && cfg.signo <= SIGRTMAX) {
		/* Refused means untouched. */
		ck_assert_int_eq(sigaction(cfg.signo, NULL, &sa), 0);
		ck_assert_ptr_eq((void *)sa.sa_handler, (void *)SIG_DFL);
	}
}
END_TEST

START_TEST(init_with_bad_backend_is_EINVAL)
{
	sc_config cfg = { .backend = (sc_backend)42 };

	unset_signal_env();
	ck_assert_int_eq(sc_init(&cfg), EINVAL);
}
END_TEST

static void app_handler(int sig)
{
	(void)sig;
}

START_TEST(init_with_signal_the_application_handles_is_EBUSY)
{
	int signo = SIGRTMIN + 3;
	sc_config cfg = { .signo = signo };
	struct sigaction sa = { .sa_handler = app_handler }, old;

	unset_signal_env();
	ck_assert_int_eq(sigaction(signo, &sa, NULL), 0);
	ck_assert_int_eq(sc_init(&cfg), EBUSY);
	/* The application's handler is still the one installed. */
	ck_assert_int_eq(sigaction(signo, NULL, &old), 0);
	ck_assert_ptr_eq((void *)old.sa_handler, (void *)app_handler);
}
END_TEST

START_TEST(init_twice_with_different_signals_is_EALREADY)
{
	sc_config first = { .signo = SIGRTMIN + 4 }, second = { .signo = SIGRTMIN + 5 };

	unset_signal_env();
	ck_assert_int_eq(sc_init(&first), 0);
	ck_assert_int_eq(sc_init(&second), EALREADY);
	ck_assert_int_eq(sc_signal_number(), SIGRTMIN + 4);
}
END_TEST

START_TEST(init_twice_with_same_signal_succeeds)
{
	sc_config cfg = { .signo = SIGRTMIN + 4 };

	unset_signal_env();
	ck_assert_int_eq(sc_init(&cfg), 0);
	ck_assert_int_eq(sc_init(&cfg), 0);
	ck_assert_int_eq(sc_signal_number(), SIGRTMIN + 4);
}
END_TEST

START_TEST(init_after_first_call_with_another_signal_is_EALREADY)
{
	sc_token t;

	unset_signal_env();
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_sleep(&t, 0).status, SC_OK);
	int signo = sc_signal_number();

	ck_assert_int_ge(signo, SIGRTMIN);
	sc_config cfg = { .signo = signo == SIGRTMAX ? SIGRTMAX - 1 : signo + 1 };

	ck_assert_int_eq(sc_init(&cfg), EALREADY);
	ck_assert_int_eq(sc_signal_number(), signo);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(signal_from_environment_is_used)
{
	char val[16];
	sc_token t;

	snprintf(val, sizeof(val), "%d", SIGRTMIN + 7);
	ck_assert_int_eq(setenv("SYSCANCEL_SIGNAL", val, 1), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_sleep(&t, 0).status, SC_OK);
	ck_assert_int_eq(sc_signal_number(), SIGRTMIN + 7);
	assert_library_handles(SIGRTMIN + 7);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

static const char *const garbage_signals[] = { "garbage", "5", "40abc", "1000", "-34" };

START_TEST(garbage_signal_in_environment_makes_calls_fail_with_EINVAL)
{
	sc_token t;
	int p[2];
	char b;

	ck_assert_int_eq(setenv("SYSCANCEL_SIGNAL", garbage_signals[_i], 1), 0);
	make_pipe_with_byte(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);

	assert_error(sc_read(&t, p[0], &b, 1), EINVAL);
	assert_error(sc_read(&t, p[0], &b, 1), EINVAL);
	assert_byte_still_readable(p[0]);
	ck_assert_int_eq(sc_signal_number(), -1);

	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(garbage_signal_in_environment_makes_init_EINVAL)
{
	sc_config cfg = { .signo = 0 };

	ck_assert_int_eq(setenv("SYSCANCEL_SIGNAL", garbage_signals[_i], 1), 0);
	ck_assert_int_eq(sc_init(&cfg), EINVAL);
}
END_TEST

#define NGARBAGE ((int)(sizeof(garbage_signals) / sizeof(garbage_signals[0])))

static Suite *badinput_suite(void)
{
	Suite *s = suite_create("badinput");
	TCase *tc = tcase_create("arguments");
	TCase *init = tcase_create("configuration");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, bad_fd_is_EBADF);
	tcase_add_test(tc, bad_buffer_pointer_is_EFAULT);
	tcase_add_test(tc, null_token_pointer_is_EINVAL);
	tcase_add_test(tc, null_token_is_never_cancelled);
	tcase_add_test(tc, zeroed_token_is_EINVAL);
	tcase_add_test(tc, destroyed_token_is_EINVAL);
	tcase_add_test(tc, negative_sleep_is_EINVAL);
	tcase_add_test(tc, negative_deadline_is_EINVAL_and_changes_nothing);
	tcase_add_test(tc, cancel_cause_that_is_not_positive_is_EINVAL_and_cancels_nothing);
	tcase_add_test(tc, fcntl_lock_with_non_lock_command_is_EINVAL);
	suite_add_tcase(s, tc);

	tcase_set_timeout(init, 30);
	tcase_add_test(init, init_with_signal_zero_uses_a_free_realtime_signal);
	tcase_add_test(init, signal_number_reports_configured_signal);
	tcase_add_loop_test(init, init_with_non_realtime_signal_is_EINVAL, 0, 5);
	tcase_add_test(init, init_with_bad_backend_is_EINVAL);
	tcase_add_test(init, init_with_signal_the_application_handles_is_EBUSY);
	tcase_add_test(init, init_twice_with_different_signals_is_EALREADY);
	tcase_add_test(init, init_twice_with_same_signal_succeeds);
	tcase_add_test(init, init_after_first_call_with_another_signal_is_EALREADY);
	tcase_add_test(init, signal_from_environment_is_used);
	tcase_add_loop_test(init, garbage_signal_in_environment_makes_calls_fail_with_EINVAL,
			    0, NGARBAGE);
	tcase_add_loop_test(init, garbage_signal_in_environment_makes_init_EINVAL, 0, NGARBAGE);
	suite_add_tcase(s, init);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(badinput_suite());

	/* Each test needs a fresh library: keep fork mode even if CK_FORK=no. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
