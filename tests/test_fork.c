/*
 * fork (I6): the child starts with an empty registry and the library works
 * there, whichever thread forked and whatever the other threads were doing;
 * nothing the child does reaches the parent's threads.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdlib.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

#define PARENT_READERS 4
#define DEADLINE_NS (50 * MS_NS)

/* For a bg_call whose tok has a deadline: a read that only the deadline ends. */
static sc_result read_with_deadline_call(struct bg_call *c)
{
	ck_assert_int_eq(sc_token_set_timeout(c->tok, DEADLINE_NS), 0);
	return bg_read(c);
}

/* A bg_call that cancels c->tok once the thread c->arg points at is asleep. */
static sc_result cancel_when_blocked_call(struct bg_call *c)
{
	wait_blocked(*(pid_t *)c->arg);
	return (sc_result){ .status = sc_cancel(c->tok) ? SC_ERROR : SC_OK };
}

/* What the parent sets up before forking, and what the child checks. */
struct fixture {
	int empty[2], full[2];
	sc_token sticky;		/* cancelled before the fork */
	sc_token parent_root;		/* the parent's readers run under its children */
	sc_token reader_tok[PARENT_READERS];
	struct bg_call readers[PARENT_READERS];
};

static void fixture_start(struct fixture *fx)
{
	make_pipe(fx->empty);
	make_pipe(fx->full);
	ck_assert_int_eq(write(fx->full[1], "data", 4), 4);
	ck_assert_int_eq(sc_token_init(&fx->sticky, NULL), 0);
	ck_assert_int_eq(sc_cancel(&fx->sticky), 0);
	ck_assert_int_eq(sc_token_init(&fx->parent_root, NULL), 0);
	for (int i = 0; i < PARENT_READERS; i++) {
		ck_assert_int_eq(sc_token_init(&fx->reader_tok[i], &fx->parent_root), 0);
		fx->readers[i] = (struct bg_call){ .fn = bg_read, .tok = &fx->reader_tok[i],
						   .fd = fx->empty[0] };
		bg_start_blocked(&fx->readers[i]);
	}
}

/* The child's fork-time snapshot of the parent's readers must not have touched them. */
static void fixture_finish(struct fixture *fx)
{
	for (int i = 0; i < PARENT_READERS; i++)
		ck_assert_msg(bg_wait_blocked(&fx->readers[i]),
			      "parent reader %d returned while the child ran", i);
	ck_assert_int_eq(sc_cancel(&fx->parent_root), 0);
	for (int i = 0; i < PARENT_READERS; i++) {
		assert_status(bg_join(&fx->readers[i]), SC_CANCELLED, "parent reader");
		ck_assert_int_eq(sc_token_destroy(&fx->reader_tok[i]), 0);
	}
	ck_assert_int_eq(sc_token_destroy(&fx->parent_root), 0);
	ck_assert_int_eq(sc_token_destroy(&fx->sticky), 0);
	close_pipe(fx->empty);
	close_pipe(fx->full);
}

/* A call with a deadline made by this thread, so it owns a slot and a timer before the fork. */
static void use_library_on_this_thread(struct fixture *fx)
{
	char buf[BG_READ_LEN];
	sc_token tok;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&tok, MS_NS), 0);
	assert_status(sc_read(&tok, fx->empty[0], buf, sizeof(buf)), SC_TIMEDOUT,
		      "parent read with a deadline");
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}

/* The forking thread, now alone in the child: its own calls, cancelled and timed out. */
static void child_checks_forking_thread(struct fixture *fx)
{
	char buf[BG_READ_LEN];
	sc_token tok;
	pid_t self = gettid();
	struct bg_call canceller = { .fn = cancel_when_blocked_call, .tok = &tok, .arg = &self };

	ck_assert(sc_is_cancelled(&fx->sticky));
	assert_status(sc_read(&fx->sticky, fx->full[0], buf, sizeof(buf)), SC_CANCELLED,
		      "child read under the parent's cancelled token");

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_start(&canceller);
	assert_status(sc_read(&tok, fx->empty[0], buf, sizeof(buf)), SC_CANCELLED,
		      "child's forking thread cancelled by a new thread");
	assert_status(bg_wait(&canceller), SC_OK, "child's canceller");
	ck_assert_int_eq(sc_token_destroy(&tok), 0);

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	int64_t start = sc_now_ns();	/* before the deadline is computed from now */
	ck_assert_int_eq(sc_token_set_timeout(&tok, DEADLINE_NS), 0);
	assert_status(sc_read(&tok, fx->empty[0], buf, sizeof(buf)), SC_TIMEDOUT,
		      "child's forking thread with a deadline");
	ck_assert_int_ge(sc_now_ns() - start, DEADLINE_NS);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}

/* New threads in the child: cancelled through the parent's root, and timed out. */
static void child_checks_new_threads(struct fixture *fx)
{
	sc_token under_parent, timed;
	struct bg_call cancelled = { .fn = bg_read, .tok = &under_parent, .fd = fx->empty[0] };
	struct bg_call timed_out = { .fn = read_with_deadline_call, .tok = &timed,
				     .fd = fx->empty[0] };

	ck_assert_int_eq(sc_token_init(&under_parent, &fx->parent_root), 0);
	bg_start_blocked(&cancelled);
	/* The parent's readers are in the registry snapshot but not in this process. */
	ck_assert_int_eq(sc_cancel(&fx->parent_root), 0);
	assert_status(bg_wait(&cancelled), SC_CANCELLED, "child's new thread");
	ck_assert_int_eq(sc_token_destroy(&under_parent), 0);

	ck_assert_int_eq(sc_token_init(&timed, NULL), 0);
	bg_start(&timed_out);
	assert_status(bg_wait(&timed_out), SC_TIMEDOUT, "child's new thread with a deadline");
	ck_assert_int_eq(sc_token_destroy(&timed), 0);
}

/*
 * The children start threads after a multi-threaded fork, which the library
 * supports.  ThreadSanitizer stops checking such a child and, unless told
 * otherwise, kills it (exit 66) when it starts a thread.  The children wait
 * for their threads' calls but never join them: GCC's ThreadSanitizer keeps
 * the parent's threads registered in the child, a new thread reuses one of
 * their stacks and so their pthread_t, and joining it dies ("dup thread
 * with used id").  The child exits right after anyway.
 */
#if SC_TSAN
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}
#endif

static pid_t fork_and_check(struct fixture *fx)
{
	use_library_on_this_thread(fx);
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		child_checks_forking_thread(fx);
		child_checks_new_threads(fx);
		_exit(0);
	}
	return pid;
}

static void *fork_and_check_thread(void *arg)
{
	struct fixture *fx = arg;

	return (void *)(intptr_t)fork_and_check(fx);
}

START_TEST(a_child_forked_from_the_main_thread_while_calls_block_gets_a_working_library)
{
	static struct fixture fx;

	fixture_start(&fx);
	assert_child_succeeded(fork_and_check(&fx));
	fixture_finish(&fx);
}
END_TEST

START_TEST(a_child_forked_from_another_thread_while_calls_block_gets_a_working_library)
{
	static struct fixture fx;
	pthread_t forker;
	void *pid;

	fixture_start(&fx);
	ck_assert_int_eq(pthread_create(&forker, NULL, fork_and_check_thread, &fx), 0);
	ck_assert_int_eq(pthread_join(forker, &pid), 0);
	assert_child_succeeded((pid_t)(intptr_t)pid);
	fixture_finish(&fx);
}
END_TEST

/*
 * Forks land while one thread walks the registry in sc_cancel and another
 * keeps starting and ending calls: no child may inherit a held lock or pin.
 */
#define BUSY_FORKS 50

struct busy {
	long stop;
	long cancels, calls;
};

/* Each cancel is a token's first: a full walk of the registry. */
static void *busy_canceller(void *arg)
{
	struct busy *b = arg;

	for (long i = 0; !load(&b->stop); i++) {
		sc_token tok;

		if (sc_token_init(&tok, NULL) || sc_cancel(&tok) || sc_token_destroy(&tok))
			abort();
		store(&b->cancels, i + 1);
	}
	return NULL;
}

/* Short sleeps cut shorter by a deadline: calls start, end and arm timers all the time. */
static void *busy_caller(void *arg)
{
	struct busy *b = arg;

	for (long i = 0; !load(&b->stop); i++) {
		sc_token tok;

		if (sc_token_init(&tok, NULL) || sc_token_set_timeout(&tok, 20 * 1000))
			abort();
		sc_sleep(&tok, 50 * 1000);
		if (sc_token_destroy(&tok))
			abort();
		store(&b->calls, i + 1);
	}
	return NULL;
}

static void busy_child(void)
{
	struct bg_call c;
	sc_token tok;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&c, &tok);
	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_status(bg_wait(&c), SC_CANCELLED, "busy child's thread");
	assert_status(bg_read(&c), SC_CANCELLED, "busy child's own call");
	_exit(0);
}

/*
 * The deadline service's thread starts at the first deadline, and under
 * ASan a thread's start allocates: a child forked meanwhile would inherit
 * the allocator's lock held.  A read that its deadline ends was ended by
 * that thread (or, where none can start, by the caller's own timer).
 */
static void start_deadline_service(void)
{
	sc_token tok;
	int p[2];
	char b;

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&tok, MS_NS), 0);
	assert_status(sc_read(&tok, p[0], &b, 1), SC_TIMEDOUT, "a read before the forks");
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	close_pipe(p);
}

START_TEST(forks_during_cancels_and_calls_in_other_threads_never_hang_the_child)
{
	static struct busy b;
	pthread_t canceller, caller;

	start_deadline_service();
	ck_assert_int_eq(pthread_create(&canceller, NULL, busy_canceller, &b), 0);
	ck_assert_int_eq(pthread_create(&caller, NULL, busy_caller, &b), 0);
	/*
	 * Not before both are busy: a thread still starting may be inside the
	 * allocator, whose lock the child would inherit held under a sanitizer
	 * (ASan's own thread start allocates; its allocator ignores fork).
	 */
	wait_at_least(&b.cancels, 1, "canceller starts");
	wait_at_least(&b.calls, 1, "caller starts");
	for (int i = 0; i < BUSY_FORKS; i++) {
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			busy_child();
		assert_child_succeeded(pid);
	}
	store(&b.stop, 1);
	pthread_join(canceller, NULL);
	pthread_join(caller, NULL);
}
END_TEST

int main(void)
{
	if (skipped_under_emulator("test_fork", QEMU_FORK))
		return 77;

	Suite *s = suite_create("fork");
	TCase *tc = add_tcase(s, "fork", 60, init_library);

	tcase_add_test(tc,
		       a_child_forked_from_the_main_thread_while_calls_block_gets_a_working_library);
	tcase_add_test(tc,
		       a_child_forked_from_another_thread_while_calls_block_gets_a_working_library);
	tcase_add_test(tc, forks_during_cancels_and_calls_in_other_threads_never_hang_the_child);
	return run_suite(s, CK_FORK_GETENV);
}
