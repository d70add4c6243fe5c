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
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

START_TEST(bad_fd_is_EBADF)
{
	sc_token t;
	int p[2];
	char b;

	/* A closed descriptor that nothing the library opens can take over. */
	make_pipe(p);
	int closed = fcntl(p[0], F_DUPFD_CLOEXEC, 900);
	ck_assert_int_ge(closed, 900);
	close(closed);
	close_pipe(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_error(sc_read(&t, -1, &b, 1), EBADF);
	assert_error(sc_read(&t, closed, &b, 1), EBADF);
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

/* Bad for the kernel to read, or to write revents back into. */
START_TEST(bad_poll_array_is_EFAULT)
{
	struct pollfd *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sc_token t;
	int p[2];

	ck_assert_ptr_ne(ro, MAP_FAILED);
	make_pipe(p);
	*ro = (struct pollfd){ .fd = p[0], .events = POLLIN };
	ck_assert_int_eq(mprotect(ro, 4096, PROT_READ), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_error(sc_poll(&t, NULL, 1, 0), EFAULT);
	assert_error(sc_poll(&t, (struct pollfd *)1, 1, 0), EFAULT);
	assert_error(sc_poll(&t, ro, 1, 0), EFAULT);
	assert_error(sc_poll(NULL, NULL, 1, 0), EFAULT);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
	munmap(ro, 4096);
}
END_TEST

/*
 * A raw ppoll of one descriptor with a timeout the kernel cannot read, or
 * one it refuses: on either backend the syscall's own answer, never a read
 * of the bad memory by the library.
 */
START_TEST(bad_ppoll_timeout_is_EFAULT_or_EINVAL)
{
	struct timespec bad_ns = { 0, -1 };
	int p[2];

	make_pipe(p);
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	assert_error(sc_syscall(NULL, SYS_ppoll, (long)&pfd, 1, 16, 0, 8, 0), EFAULT);
	assert_error(sc_syscall(NULL, SYS_ppoll, (long)&pfd, 1, (long)&bad_ns, 0, 8, 0), EINVAL);
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

/* Bytes a reused allocation may hold: every state flag set, or a pointer-like pattern. */
static const unsigned char garbage_bytes[] = { 0xff, 0xa5, 0xbe };

START_TEST(garbage_filled_token_is_EINVAL_and_left_untouched)
{
	unsigned char want[sizeof(sc_token)];
	sc_token t;

	memset(&t, garbage_bytes[_i], sizeof(t));
	memcpy(want, &t, sizeof(t));
	ck_assert_int_eq(sc_token_destroy(&t), EINVAL);	/* first: no destroy to wait out */
	assert_token_rejected(&t);
	ck_assert_msg(!memcmp(&t, want, sizeof(t)), "the library wrote to a garbage token");
}
END_TEST

/* The parent's memory is reused once both are destroyed: the child must not lead there. */
START_TEST(destroyed_child_of_a_reused_parent_is_EINVAL_and_leaves_the_parent_alone)
{
	unsigned char want[sizeof(sc_token)];
	sc_token parent, child;

	ck_assert_int_eq(sc_token_init(&parent, NULL), 0);
	ck_assert_int_eq(sc_token_init(&child, &parent), 0);
	ck_assert_int_eq(sc_token_destroy(&child), 0);
	ck_assert_int_eq(sc_token_destroy(&parent), 0);
	memset(&parent, garbage_bytes[_i], sizeof(parent));
	memcpy(want, &parent, sizeof(parent));
	assert_token_rejected(&child);
	ck_assert_msg(!memcmp(&parent, want, sizeof(parent)),
		      "the library wrote to a destroyed token's former parent");
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
	for (int i = 0; i < ARRAY_SIZE(cmds); i++)
		assert_error(sc_fcntl_lock(NULL, fd, cmds[i], &fl), EINVAL);
	close(fd);
}
END_TEST

/* Fixture of the configuration tests: the environment chooses no signal unless a test says so. */
static void unset_signal_env(void)
{
	ck_assert_int_eq(unsetenv("SYSCANCEL_SIGNAL"), 0);
}

START_TEST(init_with_signal_zero_uses_a_free_realtime_signal)
{
	sc_config cfg = { .signo = 0 };

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

	ck_assert_int_eq(sc_init(&cfg), EINVAL);
	if (cfg.signo > 0 && cfg.signo <= SIGRTMAX)
		assert_handler(cfg.signo, SIG_DFL);	/* refused means untouched */
}
END_TEST

START_TEST(init_with_bad_backend_is_EINVAL)
{
	sc_config cfg = { .backend = (sc_backend)42 };

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

	install_handler(signo, app_handler, 0, NULL);
	ck_assert_int_eq(sc_init(&cfg), EBUSY);
	/* The application's handler is still the one installed. */
	assert_handler(signo, app_handler);
}
END_TEST

/* sc_init with signal first, then with second, which returns want; first stays in use. */
static void init_twice(int first, int second, int want)
{
	ck_assert_int_eq(sc_init(&(sc_config){ .signo = first }), 0);
	ck_assert_int_eq(sc_init(&(sc_config){ .signo = second }), want);
	ck_assert_int_eq(sc_signal_number(), first);
}

START_TEST(init_twice_with_different_signals_is_EALREADY)
{
	init_twice(SIGRTMIN + 4, SIGRTMIN + 5, EALREADY);
}
END_TEST

START_TEST(init_twice_with_same_signal_succeeds)
{
	init_twice(SIGRTMIN + 4, SIGRTMIN + 4, 0);
}
END_TEST

START_TEST(init_after_first_call_with_another_signal_is_EALREADY)
{
	sc_token t;

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

/* Each spelling of SYSCANCEL_SIGNAL, with the signal it names. */
static const struct {
	const char *text;
	int rtmin_offset, rtmax_offset;	/* the signal: SIGRTMIN + one, or SIGRTMAX - other */
} signal_spellings[] = {
	{ "RTMIN+7", 7, -1 }, { "SIGRTMIN+7", 7, -1 }, { "RTMAX-4", -1, 4 },
	{ "SIGRTMAX-2", -1, 2 }, { "RTMIN", 0, -1 }, { "", 7, -1 },
	{ "SIGRTMAX", -1, 0 },	/* last: valgrind keeps SIGRTMAX for itself */
};

START_TEST(signal_from_environment_is_used)
{
	char val[16];
	sc_token t;
	int want = signal_spellings[_i].rtmin_offset >= 0 ?
		SIGRTMIN + signal_spellings[_i].rtmin_offset :
		SIGRTMAX - signal_spellings[_i].rtmax_offset;

	snprintf(val, sizeof(val), "%d", want);
	ck_assert_int_eq(setenv("SYSCANCEL_SIGNAL", *signal_spellings[_i].text ?
				signal_spellings[_i].text : val, 1), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_sleep(&t, 0).status, SC_OK);
	ck_assert_int_eq(sc_signal_number(), want);
	assert_library_handles(want);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

static const char *const garbage_signals[] = {
	"garbage", "5", "40abc", "1000", "-34", " 40", "RTMAX-+4", "RTMAX+1", "RTMIN-1", "SIG",
};

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

/* The kernel refuses io_uring, as seccomp or io_uring_disabled would. */
static void refuse_io_uring(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { ARRAY_SIZE(filter), filter };

	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

/* _i 0: asked by sc_init, 1: by sc_thread_backend, 2: by the environment. */
START_TEST(io_uring_refused_gives_ENOTSUP_and_the_signal_path_keeps_working)
{
	sc_token t;
	char b;
	int p[2];

	refuse_io_uring();
	if (_i == 2)
		ck_assert_int_eq(setenv("SYSCANCEL_BACKEND", "uring", 1), 0);
	else
		ck_assert_int_eq(unsetenv("SYSCANCEL_BACKEND"), 0);
	if (_i == 0)
		ck_assert_int_eq(sc_init(&(sc_config){ .backend = SC_BACKEND_URING }), ENOTSUP);
	if (_i == 1)
		ck_assert_int_eq(sc_thread_backend(SC_BACKEND_URING), ENOTSUP);

	make_pipe_with_byte(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_ok(sc_read(&t, p[0], &b, 1), 1);
	ck_assert_int_eq(sc_cancel(&t), 0);
	assert_cancelled(sc_read(&t, p[0], &b, 1));
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("badinput");
	TCase *tc = add_tcase(s, "arguments", 30, NULL);
	TCase *init = add_tcase(s, "configuration", 30, unset_signal_env);

	tcase_add_test(tc, bad_fd_is_EBADF);
	tcase_add_test(tc, bad_buffer_pointer_is_EFAULT);
	tcase_add_test(tc, bad_poll_array_is_EFAULT);
	if (!under_valgrind())	/* memcheck reports the bad pointer the kernel is given */
		tcase_add_test(tc, bad_ppoll_timeout_is_EFAULT_or_EINVAL);
	tcase_add_test(tc, null_token_pointer_is_EINVAL);
	tcase_add_test(tc, null_token_is_never_cancelled);
	tcase_add_test(tc, zeroed_token_is_EINVAL);
	tcase_add_test(tc, destroyed_token_is_EINVAL);
	tcase_add_loop_test(tc, garbage_filled_token_is_EINVAL_and_left_untouched,
			    0, ARRAY_SIZE(garbage_bytes));
	tcase_add_loop_test(tc,
			    destroyed_child_of_a_reused_parent_is_EINVAL_and_leaves_the_parent_alone,
			    0, ARRAY_SIZE(garbage_bytes));
	tcase_add_test(tc, negative_sleep_is_EINVAL);
	tcase_add_test(tc, negative_deadline_is_EINVAL_and_changes_nothing);
	tcase_add_test(tc, cancel_cause_that_is_not_positive_is_EINVAL_and_cancels_nothing);
	tcase_add_test(tc, fcntl_lock_with_non_lock_command_is_EINVAL);

	tcase_add_test(init, init_with_signal_zero_uses_a_free_realtime_signal);
	tcase_add_test(init, signal_number_reports_configured_signal);
	tcase_add_loop_test(init, init_with_non_realtime_signal_is_EINVAL, 0, 5);
	tcase_add_test(init, init_with_bad_backend_is_EINVAL);
	tcase_add_test(init, init_with_signal_the_application_handles_is_EBUSY);
	tcase_add_test(init, init_twice_with_different_signals_is_EALREADY);
	tcase_add_test(init, init_twice_with_same_signal_succeeds);
	tcase_add_test(init, init_after_first_call_with_another_signal_is_EALREADY);
	bool rtmax_taken = under_valgrind() ||
		skipped_under_emulator("signal_from_environment_is_used with SIGRTMAX",
				       "qemu-user keeps the last real-time signals for itself");

	tcase_add_loop_test(init, signal_from_environment_is_used, 0,
			    ARRAY_SIZE(signal_spellings) - rtmax_taken);
	tcase_add_loop_test(init, garbage_signal_in_environment_makes_calls_fail_with_EINVAL,
			    0, ARRAY_SIZE(garbage_signals));
	tcase_add_loop_test(init, garbage_signal_in_environment_makes_init_EINVAL,
			    0, ARRAY_SIZE(garbage_signals));
	if (!skipped_under_emulator("io_uring_refused_gives_ENOTSUP_and_the_signal_path_"
				    "keeps_working", "qemu-user refuses seccomp filters"))
		tcase_add_loop_test(init,
			io_uring_refused_gives_ENOTSUP_and_the_signal_path_keeps_working, 0, 3);
	/* Each test needs a fresh library: keep fork mode even if CK_FORK=no. */
	return run_suite(s, CK_FORK);
}
