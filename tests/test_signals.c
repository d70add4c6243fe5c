/*
 * Signals: the application's own signals never cancel a call nor leak EINTR
 * out of it, and a late library signal never cancels a later call (I3); the
 * library's signal and its deadline timers never reach application code
 * (I4); sc_cancel works from a signal handler, also one running on top of
 * the call; the library's signal number is configurable and never stolen
 * from the application.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

/* How many times an application signal interrupts one blocked read. */
#define FOREIGN_SIGNALS 100
#define SLEEP_NS (200 * MS_NS)

/* Counts runs of the application's handlers. */
static long app_signals;

static void count_signal(int sig)
{
	(void)sig;
	add(&app_signals, 1);
}

static void block_signal(int sig)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
}

/* A reader that leaves SIGALRM to the other threads. */
static sc_result read_call_without_sigalrm(struct bg_call *c)
{
	block_signal(SIGALRM);
	return bg_read(c);
}

/* SA_RESTART or not: the library must hide the application's EINTR either way. */
static const int foreign_flags[] = { 0, SA_RESTART };

/*
 * ThreadSanitizer defers a handler until its thread runs instrumented code.
 * A read that an SA_RESTART handler interrupts never gets there: the kernel
 * restarts it at once, so such a handler cannot run on top of a blocked
 * read.  Without SA_RESTART the read's EINTR brings the thread back into
 * the library, and the handler runs there; so does every interrupted wait
 * of the io_uring path.  The loops put the cases that need an SA_RESTART
 * handler on a blocked read last, and register them only where it can run.
 */
static bool restarted_reads_run_handlers(void)
{
	return !SC_TSAN || backend_is_uring();
}

/* How many of a loop's n cases to register, when its last `needing` need such a handler. */
static int cases(int n, int needing)
{
	return restarted_reads_run_handlers() ? n : n - needing;
}

START_TEST(foreign_signals_at_a_blocked_read_neither_cancel_it_nor_leak_eintr)
{
	struct bg_call c;
	sc_token tok;

	install_handler(SIGUSR1, count_signal, foreign_flags[_i], NULL);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&c, &tok);
	for (int n = 1; n <= FOREIGN_SIGNALS; n++) {
		ck_assert_int_eq(pthread_kill(c.thread, SIGUSR1), 0);
		wait_at_least(&app_signals, n, "application handler runs");
		/* A leaked EINTR ends the call instead of letting it block again. */
		ck_assert_msg(bg_wait_blocked(&c),
			      "read returned after signal %d: status %d error %d (%s)",
			      n, c.res.status, c.res.error, strerror(c.res.error));
	}
	ck_assert_int_eq(write(c.peer, "hello", 5), 5);
	assert_ok(bg_join(&c), 5);
	ck_assert_mem_eq(c.buf, "hello", 5);
	ck_assert(!sc_is_cancelled(&tok));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

static sc_result sleep_call(struct bg_call *c)
{
	*(int64_t *)c->arg = sc_now_ns();
	return sc_sleep(c->tok, SLEEP_NS);
}

START_TEST(foreign_signals_neither_shorten_nor_stretch_a_sleep)
{
	int64_t started;
	sc_token tok;
	struct bg_call c = { .fn = sleep_call, .tok = &tok, .arg = &started };

	install_handler(SIGUSR1, count_signal, foreign_flags[_i], NULL);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_start_blocked(&c);

	/*
	 * Hammer: one signal at a time, each sent once the previous one ran and
	 * the thread sleeps again.  ThreadSanitizer holds back a handler for a
	 * signal that lands outside the kernel until the thread's next
	 * instrumented code, which may be after the whole sleep.
	 */
	int64_t end = sc_now_ns() + PROMPT_NS;
	while (bg_wait_blocked(&c) && sc_now_ns() < end) {
		long seen = load(&app_signals);

		pthread_kill(c.thread, SIGUSR1);
		while (load(&app_signals) == seen && !bg_done(&c) && sc_now_ns() < end)
			sched_yield();
	}
	sc_result r = bg_join(&c);
	int64_t elapsed = c.returned_ns - started;

	assert_ok(r, 0);
	ck_assert_msg(elapsed >= SLEEP_NS, "slept %lld ns of %lld", (long long)elapsed,
		      (long long)SLEEP_NS);
	ck_assert_msg(elapsed < SLEEP_NS + 2 * SEC_NS,
		      "sleep restarted from scratch: %lld ns", (long long)elapsed);
	ck_assert_int_ge(load(&app_signals), 20);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}
END_TEST

static sc_token *handler_tok;

static void cancel_from_handler(int sig)
{
	sc_cancel(handler_tok);
	count_signal(sig);
}

static void raise_on_main_thread(struct bg_call *c)
{
	(void)c;
	ck_assert_int_eq(pthread_kill(pthread_self(), SIGALRM), 0);
}

static void raise_by_interval_timer(struct bg_call *c)
{
	struct itimerval it = { .it_value = { .tv_usec = 1000 } };

	(void)c;
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

/* The handler runs on top of the blocked read itself. */
static void raise_on_blocked_thread(struct bg_call *c)
{
	ck_assert_int_eq(pthread_kill(c->thread, SIGALRM), 0);
}

static const struct {
	sc_result (*reader)(struct bg_call *c);
	void (*raise)(struct bg_call *c);
} handler_cancels[] = {
	{ read_call_without_sigalrm, raise_on_main_thread },
	{ read_call_without_sigalrm, raise_by_interval_timer },
	{ bg_read, raise_on_blocked_thread },	/* last: see cases() */
};

START_TEST(sc_cancel_from_a_signal_handler_cancels_a_blocked_read)
{
	sc_token tok;
	struct bg_call c = { .fn = handler_cancels[_i].reader, .tok = &tok };

	bg_pipe(&c);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	handler_tok = &tok;
	install_handler(SIGALRM, cancel_from_handler, SA_RESTART, NULL);
	bg_start_blocked(&c);
	handler_cancels[_i].raise(&c);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(load(&app_signals), 1);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

#define HANDLER_TOKENS 4096
#define NESTED_CANCELS_WANTED 2000
#define BYSTANDERS 4

static sc_token handler_toks[HANDLER_TOKENS];
static int handler_next;
static long kicker_stop;

static void cancel_next_from_handler(int sig)
{
	int i = __atomic_fetch_add(&handler_next, 1, __ATOMIC_RELAXED);

	sc_cancel(&handler_toks[i % HANDLER_TOKENS]);
	count_signal(sig);
}

/* Interrupts the target thread with SIGALRM, one signal at a time, until told to stop. */
static void *kicker_main(void *arg)
{
	pthread_t target = *(pthread_t *)arg;

	while (!load(&kicker_stop)) {
		long seen = load(&app_signals);

		pthread_kill(target, SIGALRM);
		while (load(&app_signals) == seen && !load(&kicker_stop))
			sched_yield();
	}
	return NULL;
}

START_TEST(sc_cancel_interrupted_by_a_cancelling_handler_does_not_deadlock)
{
	static sc_token main_toks[HANDLER_TOKENS];
	struct bg_call by[BYSTANDERS];
	sc_token by_tok;
	pthread_t self = pthread_self(), kicker;
	int p[2];

	/* Blocked bystanders give every registry walk slots to look at. */
	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&by_tok, NULL), 0);
	for (int i = 0; i < BYSTANDERS; i++) {
		by[i] = (struct bg_call){ .fn = read_call_without_sigalrm, .tok = &by_tok,
					  .fd = p[0] };
		bg_start_blocked(&by[i]);
	}
	for (int i = 0; i < HANDLER_TOKENS; i++) {
		ck_assert_int_eq(sc_token_init(&handler_toks[i], NULL), 0);
		ck_assert_int_eq(sc_token_init(&main_toks[i], NULL), 0);
	}
	install_handler(SIGALRM, cancel_next_from_handler, SA_RESTART, NULL);
	ck_assert_int_eq(pthread_create(&kicker, NULL, kicker_main, &self), 0);

	long main_cancels = 0;
	int64_t end = sc_now_ns() + 20 * SEC_NS;
	while ((load(&app_signals) < NESTED_CANCELS_WANTED ||
		main_cancels < NESTED_CANCELS_WANTED) && sc_now_ns() < end)
		ck_assert_int_eq(sc_cancel(&main_toks[main_cancels++ % HANDLER_TOKENS]), 0);
	store(&kicker_stop, 1);
	pthread_join(kicker, NULL);
	ck_assert_int_ge(load(&app_signals), NESTED_CANCELS_WANTED);
	ck_assert_int_ge(main_cancels, NESTED_CANCELS_WANTED);

	/* The bystanders were never cancelled, and the registry still works. */
	for (int i = 0; i < BYSTANDERS; i++)
		ck_assert_msg(!bg_done(&by[i]), "bystander %d returned: status %d", i,
			      by[i].res.status);
	ck_assert_int_eq(sc_cancel(&by_tok), 0);
	for (int i = 0; i < BYSTANDERS; i++)
		assert_cancelled(bg_join(&by[i]));
	close_pipe(p);
}
END_TEST

/*
 * I4: between its calls, the application sleeps in plain nanosleep and poll
 * while another thread cancels each call's token twice, and cancels the
 * previous call's (finished) token again.  A library signal sent after the
 * call ended would surface as EINTR in those sleeps.
 */
#define I4_ITERS 2000

struct i4_run {
	sc_token toks[I4_ITERS];
	long cur;		/* index of the token in use, -1 before the first */
	long stop;
	int rd, wr;
	int ok, cancelled, app_eintr;
	int other;		/* results that are neither SC_OK nor SC_CANCELLED */
	sc_result first_other;
};

static void app_sleeps(struct i4_run *run)
{
	struct timespec ts = { .tv_nsec = 100 * 1000 };

	if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
		run->app_eintr++;
	if (poll(NULL, 0, 1) < 0 && errno == EINTR)
		run->app_eintr++;
}

static void *i4_worker(void *arg)
{
	struct i4_run *run = arg;
	char b;

	for (int i = 0; i < I4_ITERS; i++) {
		sc_token *tok = &run->toks[i];

		if (sc_token_init(tok, NULL))
			abort();
		store(&run->cur, i);
		/* One call in four finds data: its cancel races a completed read. */
		if (i % 4 == 0 && write(run->wr, "x", 1) != 1)
			abort();
		sc_result r = sc_read(tok, run->rd, &b, 1);
		if (r.status == SC_OK && r.value == 1) {
			run->ok++;
		} else if (r.status == SC_CANCELLED && r.error == ECANCELED) {
			run->cancelled++;
		} else if (!run->other++) {
			run->first_other = r;
		}
		app_sleeps(run);
	}
	store(&run->stop, 1);
	return NULL;
}

static void *i4_canceller_paced(void *arg)
{
	struct i4_run *run = arg;
	uint32_t seed = 12345;
	long last = -1;

	while (!load(&run->stop)) {
		long i = load(&run->cur);

		if (i == last) {
			sched_yield();
			continue;
		}
		spin_ns(xorshift(&seed) % (50 * 1000));
		sc_cancel(&run->toks[i]);
		sc_cancel(&run->toks[i]);
		if (i > 0)
			sc_cancel(&run->toks[i - 1]);
		last = i;
	}
	return NULL;
}

/* Cancels the current token again and again, as fast as it can. */
static void *i4_canceller_tight(void *arg)
{
	struct i4_run *run = arg;

	while (!load(&run->stop)) {
		long i = load(&run->cur);

		if (i >= 0)
			sc_cancel(&run->toks[i]);
	}
	return NULL;
}

/* Holds up the canceller, maybe between finding a call in flight and signalling it. */
static void delay_handler(int sig)
{
	spin_ns(50 * 1000);
	count_signal(sig);
}

static const struct {
	void *(*canceller)(void *);
	bool delayed;		/* SIGALRM handlers keep interrupting the canceller */
} i4_cancellers[] = {
	{ i4_canceller_paced, false },
	{ i4_canceller_tight, true },
};

START_TEST(application_sleeps_between_calls_never_see_eintr_while_cancels_fly)
{
	struct i4_run *run = calloc(1, sizeof(*run));
	pthread_t worker, canceller, kicker;
	int p[2];

	ck_assert_ptr_nonnull(run);
	make_pipe(p);
	run->rd = p[0];
	run->wr = p[1];
	run->cur = -1;
	install_handler(SIGALRM, delay_handler, SA_RESTART, NULL);
	ck_assert_int_eq(pthread_create(&canceller, NULL, i4_cancellers[_i].canceller, run), 0);
	if (i4_cancellers[_i].delayed)
		ck_assert_int_eq(pthread_create(&kicker, NULL, kicker_main, &canceller), 0);
	ck_assert_int_eq(pthread_create(&worker, NULL, i4_worker, run), 0);
	join_within(worker, stretched(40 * SEC_NS), "worker");
	join_within(canceller, PROMPT_NS, "canceller");
	if (i4_cancellers[_i].delayed) {
		store(&kicker_stop, 1);
		join_within(kicker, PROMPT_NS, "kicker");
		ck_assert_int_ge(load(&app_signals), 1000);
	}

	ck_assert_msg(run->other == 0, "%d unexpected results, first: status %d error %d value %ld",
		      run->other, run->first_other.status, run->first_other.error,
		      run->first_other.value);
	ck_assert_int_eq(run->app_eintr, 0);
	ck_assert_int_eq(run->ok + run->cancelled, I4_ITERS);
	ck_assert_int_ge(run->cancelled, 1000);
	for (int i = 0; i < I4_ITERS; i++)
		ck_assert_int_eq(sc_token_destroy(&run->toks[i]), 0);
	free(run);
	close_pipe(p);
}
END_TEST

/*
 * I3: the canceller cancels a chain leaf first, so the later cancels of its
 * ancestors can queue more signals while the thread leaves its call.  None
 * of them may cancel the thread's next call, which is under another token.
 */
#define STALE_ROUNDS 300

struct stale_run {
	struct token_chain a[STALE_ROUNDS];	/* round r's first call: under a[r].leaf */
	sc_token b[STALE_ROUNDS];
	sc_result res_a[STALE_ROUNDS], res_b[STALE_ROUNDS];
	int a_rd, b_rd;
	long tid;
	long phase;		/* 2r+1: reading under a[r]; 2r+2: under b[r] */
	long rounds_done;
};

static void *stale_worker(void *arg)
{
	struct stale_run *run = arg;
	char buf;

	store(&run->tid, gettid());
	for (int r = 0; r < STALE_ROUNDS; r++) {
		store(&run->phase, 2 * r + 1);
		run->res_a[r] = sc_read(&run->a[r].leaf, run->a_rd, &buf, 1);
		store(&run->phase, 2 * r + 2);
		run->res_b[r] = sc_read(&run->b[r], run->b_rd, &buf, 1);
		store(&run->rounds_done, r + 1);
	}
	return NULL;
}

START_TEST(a_late_library_signal_never_cancels_the_next_call_of_the_same_thread)
{
	struct stale_run *run = calloc(1, sizeof(*run));
	pthread_t worker;
	int pa[2], pb[2];

	ck_assert_ptr_nonnull(run);
	make_pipe(pa);
	make_pipe(pb);
	run->a_rd = pa[0];
	run->b_rd = pb[0];
	for (int r = 0; r < STALE_ROUNDS; r++) {
		chain_init(&run->a[r]);
		ck_assert_int_eq(sc_token_init(&run->b[r], NULL), 0);
	}
	ck_assert_int_eq(pthread_create(&worker, NULL, stale_worker, run), 0);
	wait_at_least(&run->tid, 1, "worker starts");
	for (int r = 0; r < STALE_ROUNDS; r++) {
		wait_at_least(&run->phase, 2 * r + 1, "worker reads under a");
		wait_blocked(run->tid);
		ck_assert_int_eq(sc_cancel(&run->a[r].leaf), 0);
		ck_assert_int_eq(sc_cancel(&run->a[r].mid), 0);
		ck_assert_int_eq(sc_cancel(&run->a[r].root), 0);
		wait_at_least(&run->phase, 2 * r + 2, "worker reads under b");
		wait_blocked(run->tid);
		ck_assert_int_eq(write(pb[1], "b", 1), 1);
		wait_at_least(&run->rounds_done, r + 1, "worker finishes a round");

		sc_result a = run->res_a[r], b = run->res_b[r];
		ck_assert_msg(a.status == SC_CANCELLED, "round %d: cancelled call got status %d",
			      r, a.status);
		ck_assert_msg(b.status == SC_OK && b.value == 1,
			      "round %d: next call got status %d error %d value %ld",
			      r, b.status, b.error, b.value);
	}
	join_within(worker, PROMPT_NS, "worker");
	for (int r = 0; r < STALE_ROUNDS; r++) {
		chain_destroy(&run->a[r]);
		ck_assert_int_eq(sc_token_destroy(&run->b[r]), 0);
	}
	free(run);
	close_pipe(pa);
	close_pipe(pb);
}
END_TEST

/*
 * I4 for deadlines: a call that ends before its deadline (cancelled, or
 * completed) leaves no timer behind to interrupt the thread's next sleep.
 */
/* Generous: the call must end first however slow the machine, cancelled or completed. */
#define OUTLIVED_DEADLINE_NS SEC_NS
/* How long past the deadline the sleep after the call lasts. */
#define PAST_DEADLINE_MS 100

struct then_sleep {
	int sleep_ret, sleep_errno;
};

static sc_result read_then_sleep_call(struct bg_call *c)
{
	struct then_sleep *t = c->arg;

	ck_assert_int_eq(sc_token_set_timeout(c->tok, OUTLIVED_DEADLINE_NS), 0);
	int64_t deadline = sc_token_deadline(c->tok);
	sc_result r = bg_read(c);
	int64_t left = deadline - sc_now_ns();

	t->sleep_ret = poll(NULL, 0, (left > 0 ? left / MS_NS : 0) + PAST_DEADLINE_MS);
	t->sleep_errno = errno;
	return r;
}

/* _i 0: the call is cancelled; 1: data completes it. */
START_TEST(a_deadline_outlived_by_its_call_never_fires_into_application_code)
{
	struct then_sleep t;
	sc_token tok;
	struct bg_call c = { .fn = read_then_sleep_call, .tok = &tok, .arg = &t };

	bg_pipe(&c);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_start_blocked(&c);
	if (_i == 0)
		ck_assert_int_eq(sc_cancel(&tok), 0);
	else
		ck_assert_int_eq(write(c.peer, "x", 1), 1);
	sc_result r = bg_join(&c);

	if (_i == 0)
		assert_cancelled(r);
	else
		assert_ok(r, 1);
	ck_assert_msg(t.sleep_ret == 0, "the sleep after the call failed: %s",
		      strerror(t.sleep_errno));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

/* An application handler that holds its thread until the main thread says go. */
enum { NESTED_IDLE, NESTED_IN_HANDLER, NESTED_GO };
static long nested_state;

static void hold_until_go(int sig)
{
	int64_t end = sc_now_ns() + 10 * SEC_NS;

	(void)sig;
	store(&nested_state, NESTED_IN_HANDLER);
	while (load(&nested_state) != NESTED_GO && sc_now_ns() < end)
		sched_yield();
	/* The cancel's signal is pending by now: take it here, inside this handler. */
	sched_yield();
}

/*
 * Case i of the test below can run here.  Where the application's handler
 * leaves the library's signal open (bit 0 clear), the library's handler
 * finds itself on top of it and blocks its signal in the ucontext until the
 * application's handler returns; valgrind ignores that mask, delivers the
 * signal again at once, and the thread never leaves the library's handler.
 */
static bool landing_case_runs(int i)
{
	if ((i & 2) && !restarted_reads_run_handlers())
		return false;
	return (i & 1) || !under_valgrind() || backend_is_uring();
}

/* _i: bit 0 the library's signal blocked while the handler runs, bit 1 SA_RESTART. */
START_TEST(cancel_landing_during_an_application_handler_still_cancels_the_read)
{
	struct bg_call c;
	sc_token tok;
	sigset_t mask;

	sigemptyset(&mask);
	if (_i & 1)
		sigaddset(&mask, sc_signal_number());
	install_handler(SIGUSR2, hold_until_go, _i & 2 ? SA_RESTART : 0, &mask);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&c, &tok);
	ck_assert_int_eq(pthread_kill(c.thread, SIGUSR2), 0);
	wait_at_least(&nested_state, NESTED_IN_HANDLER, "application handler starts");
	ck_assert_int_eq(sc_cancel(&tok), 0);
	store(&nested_state, NESTED_GO);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

/* What the thread of the blocked-signal test reports. */
struct blocked_read {
	long reading;		/* its signal is blocked, its read about to start */
	int still_blocked;	/* the mask is as the application left it */
	int left_pending;	/* the library's signal still pending after the call */
};

/* A thread that makes one call, then blocks the library's signal and makes another. */
static sc_result read_with_library_signal_blocked(struct bg_call *c)
{
	struct blocked_read *b = c->arg;
	sigset_t set, now;

	sigemptyset(&set);
	sigaddset(&set, sc_signal_number());
	assert_ok(sc_sleep(NULL, 0), 0);	/* the first call unblocks it */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	store(&b->reading, 1);
	sc_result r = sc_read(c->tok, c->fd, c->buf, 1);
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	b->still_blocked = sigismember(&now, sc_signal_number());
	sigpending(&now);
	b->left_pending = sigismember(&now, sc_signal_number());
	return r;
}

/*
 * The application must not block the library's signal, but if it does, a
 * cancel cannot wake the call and sc_cancel() reports EIO; once the
 * syscall completes anyway the call still returns its result, the
 * application's mask is left as it was, and the signal that waited blocked
 * is gone with the call (a signalfd of the thread would read it later).  On
 * the io_uring path the cancel needs no signal and wakes the call.
 */
START_TEST(a_call_whose_thread_blocks_the_library_signal_still_returns)
{
	struct blocked_read b = { 0 };
	struct bg_call c = { .fn = read_with_library_signal_blocked, .arg = &b };
	sc_token tok;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	c.tok = &tok;
	bg_pipe(&c);
	bg_start(&c);
	/* Its first call may sleep in the kernel too: wait for the read itself. */
	wait_at_least(&b.reading, 1, "thread blocks the signal and starts its read");
	ck_assert(bg_wait_blocked(&c));
	/*
	 * The signal cannot reach the read: the cancel says so (EIO).  Under
	 * valgrind, which makes the syscall from its own code, the canceller
	 * cannot tell the call's wait from a handler's.
	 */
	int err = sc_cancel(&tok);
	if (under_valgrind())
		ck_assert(err == 0 || err == EIO);
	else
		ck_assert_int_eq(err, backend_is_uring() ? 0 : EIO);
	if (backend_is_uring()) {
		assert_cancelled(bg_join(&c));
	} else {
		ck_assert_int_eq(write(c.peer, "x", 1), 1);
		assert_ok(bg_join(&c), 1);
	}
	ck_assert_int_eq(b.still_blocked, 1);
	ck_assert_int_eq(b.left_pending, 0);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

#define CROWD 40	/* more calls than sc_cancel keeps to look at after its sends */

/* A plain read, or (arg set) one made with the library's signal blocked. */
static sc_result crowd_read(struct bg_call *c)
{
	if (c->arg)
		return read_with_library_signal_blocked(c);
	return bg_read(c);
}

/*
 * One of many calls under a root cannot take the signal: the cancel of the
 * root says EIO, whether that call is looked at after all the sends or
 * early, to make room; the others are cancelled all the same.  _i: the
 * blocking thread is the first started, or the last.
 */
START_TEST(a_cancel_of_many_calls_says_EIO_for_one_whose_thread_blocks_the_signal)
{
	static struct bg_call calls[CROWD];
	struct blocked_read b = { 0 };
	int odd = _i ? CROWD - 1 : 0;
	sc_token root;

	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	for (int i = 0; i < CROWD; i++) {
		calls[i] = (struct bg_call){ .fn = crowd_read, .tok = &root,
					     .arg = i == odd ? &b : NULL };
		bg_pipe(&calls[i]);
		bg_start(&calls[i]);
		if (i == odd)
			wait_at_least(&b.reading, 1, "thread blocks the signal and starts its read");
		ck_assert(bg_wait_blocked(&calls[i]));
	}
	ck_assert_int_eq(sc_cancel(&root), EIO);
	for (int i = 0; i < CROWD; i++)
		if (i != odd)
			assert_cancelled(bg_join(&calls[i]));
	ck_assert_msg(!bg_done(&calls[odd]), "the call that blocks the signal returned");
	ck_assert_int_eq(write(calls[odd].peer, "x", 1), 1);
	assert_ok(bg_join(&calls[odd]), 1);
	ck_assert_int_eq(b.left_pending, 0);
	for (int i = 0; i < CROWD; i++)
		bg_close_pipe(&calls[i]);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
}
END_TEST

/* Signals queued for this user, from the SigQ line of /proc/self/status. */
static long signals_queued(void)
{
	char line[128];
	long queued = -1;
	FILE *f = fopen("/proc/self/status", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigQ: %ld/", &queued) == 1)
			break;
	fclose(f);
	ck_assert_int_ge(queued, 0);
	return queued;
}

/*
 * While the call cannot take the signal (an application handler holds the
 * thread with the library's signal masked), cancelling it again and again
 * must not pile up real-time signals until the queue is full.
 */
START_TEST(repeated_cancels_of_a_call_that_cannot_take_the_signal_queue_one_signal)
{
	struct bg_call c;
	sc_token tok;
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, sc_signal_number());
	install_handler(SIGUSR2, hold_until_go, SA_RESTART, &mask);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&c, &tok);
	ck_assert_int_eq(pthread_kill(c.thread, SIGUSR2), 0);
	wait_at_least(&nested_state, NESTED_IN_HANDLER, "application handler starts");

	long before = signals_queued();
	for (int i = 0; i < 10000; i++)
		ck_assert_int_eq(sc_cancel(&tok), 0);
	long piled = signals_queued() - before;

	store(&nested_state, NESTED_GO);
	assert_cancelled(bg_join(&c));
	ck_assert_msg(piled < 100, "10000 cancels queued %ld signals", piled);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

/* The library's default signal, found in a child so this process stays uninitialised. */
static int default_signal(void)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsetenv("SYSCANCEL_SIGNAL");
		int s = sc_signal_number();
		_exit(s > 0 && s < 255 ? s : 255);
	}
	int st = wait_child(pid);

	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 255);
	return WEXITSTATUS(st);
}

/* _i 0: the application takes the signal it then asks for; 1: it takes the default. */
START_TEST(an_application_handler_on_the_library_signal_makes_sc_init_fail_with_ebusy)
{
	unsetenv("SYSCANCEL_SIGNAL");
	int taken = _i == 0 ? SIGRTMIN + 3 : default_signal();
	sc_config cfg = { .signo = _i == 0 ? taken : 0 };

	install_handler(taken, count_signal, 0, NULL);
	ck_assert_int_eq(sc_init(&cfg), EBUSY);
	assert_handler(taken, count_signal);	/* the library left the application's alone */
	ck_assert_int_ne(sc_signal_number(), taken);
}
END_TEST

START_TEST(syscancel_signal_environment_variable_selects_the_signal)
{
	char num[16];
	struct bg_call c;
	sc_token tok;
	int def = default_signal();
	int want = def == SIGRTMAX - 2 ? SIGRTMAX - 3 : SIGRTMAX - 2;

	snprintf(num, sizeof(num), "%d", want);
	ck_assert_int_eq(setenv("SYSCANCEL_SIGNAL", num, 1), 0);
	ck_assert_int_eq(sc_signal_number(), want);
	assert_library_handles(want);
	assert_handler(def, SIG_DFL);	/* the default signal was not taken too */

	/* And cancels travel on it. */
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&c, &tok);
	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("signals");
	TCase *tc = add_tcase(s, "signals", 60, init_library);
	/* These need a library that is not initialised yet. */
	TCase *cfg = add_tcase(s, "configuration", 60, NULL);

	tcase_add_loop_test(tc, foreign_signals_at_a_blocked_read_neither_cancel_it_nor_leak_eintr,
			    0, cases(ARRAY_SIZE(foreign_flags), 1));
	tcase_add_loop_test(tc, foreign_signals_neither_shorten_nor_stretch_a_sleep,
			    0, ARRAY_SIZE(foreign_flags));
	tcase_add_loop_test(tc, sc_cancel_from_a_signal_handler_cancels_a_blocked_read,
			    0, cases(ARRAY_SIZE(handler_cancels), 1));
	tcase_add_test(tc, sc_cancel_interrupted_by_a_cancelling_handler_does_not_deadlock);
	tcase_add_loop_test(tc, application_sleeps_between_calls_never_see_eintr_while_cancels_fly,
			    0, ARRAY_SIZE(i4_cancellers));
	tcase_add_test(tc, a_late_library_signal_never_cancels_the_next_call_of_the_same_thread);
	tcase_add_loop_test(tc, a_deadline_outlived_by_its_call_never_fires_into_application_code,
			    0, 2);
	for (int i = 0; i < 4; i++)
		if (landing_case_runs(i))
			tcase_add_loop_test(tc,
				cancel_landing_during_an_application_handler_still_cancels_the_read,
				i, i + 1);
	if (restarted_reads_run_handlers())
		tcase_add_test(tc,
			       repeated_cancels_of_a_call_that_cannot_take_the_signal_queue_one_signal);
	if (!skipped_under_emulator("a call whose thread blocks the library's signal", QEMU_MASKS))
		tcase_add_test(tc, a_call_whose_thread_blocks_the_library_signal_still_returns);
	/* Valgrind cannot tell a call's wait from a handler's; on the ring no signal is sent. */
	if (!under_valgrind() && !backend_is_uring() &&
	    !skipped_under_emulator("a cancel of many calls, one blocking the signal", QEMU_MASKS))
		tcase_add_loop_test(tc,
			a_cancel_of_many_calls_says_EIO_for_one_whose_thread_blocks_the_signal, 0, 2);
	tcase_add_loop_test(cfg,
			    an_application_handler_on_the_library_signal_makes_sc_init_fail_with_ebusy,
			    0, 2);
	tcase_add_test(cfg, syscancel_signal_environment_variable_selects_the_signal);
	return run_suite(s, CK_FORK_GETENV);
}
