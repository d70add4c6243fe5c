/*
 * Deadlines and the deadline service: one thread per process sleeps until
 * the earliest deadline of the calls in flight and signals a call whose
 * deadline passed, pinned like a cancel.  Many calls with deadlines that
 * never fire, thousands of deadlines in flight at once, deadlines racing
 * the return of their call, fork, and the slots and tokens threads leave
 * behind.
 *
 * Covered elsewhere, not repeated here: a deadline in flight fires, not
 * before it, within a bound (test_cancel:
 * deadline_returns_timedout_not_before_the_deadline); a deadline moved
 * earlier from another thread reaches a call already in flight under a 1 h
 * deadline (test_cancel: earlier_deadline_on_root_fires_for_blocked_grandchild_call,
 * deadline_set_while_call_blocks_still_fires); a call outliving its
 * deadline leaves nothing to fire later (test_signals); a destroy while the
 * token's call blocks is EBUSY (test_tokens).
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__)
#define SC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SC_ASAN 1
#endif
#endif
#ifndef SC_ASAN
#define SC_ASAN 0
#endif

/* Fewer threads and calls where every one costs much more. */
static bool sanitized(void)
{
	const char *san = getenv("SC_SANITIZERS");	/* set by make check */

	return SC_TSAN || SC_ASAN || (san && *san && strcmp(san, "no"));
}

static bool light_run(void)
{
	return under_valgrind() || sanitized();
}

/* A wait outside any call, where a signal of the library that went astray would land. */
#define QUIET_MS 2

static bool quiet_wait_interrupted(void)
{
	return poll(NULL, 0, QUIET_MS) < 0 && errno == EINTR;
}

/*
 * Wait until *p reaches v, looking every millisecond (a fleet's threads
 * need the CPUs more than a spinning waiter); fail after ns.
 */
static void wait_count(const long *p, long v, int64_t ns, const char *what)
{
	int64_t end = sc_now_ns() + ns;
	const struct timespec ms = { 0, MS_NS };

	while (load(p) < v) {
		ck_assert_msg(sc_now_ns() < end, "%s: stuck at %ld of %ld", what, load(p), v);
		nanosleep(&ms, NULL);
	}
}

/* bound: how late it may return; generous, it is no speed target. */
static void assert_timed_out_within(sc_result r, int64_t deadline, int64_t returned,
				    int64_t bound, const char *what)
{
	assert_status(r, SC_TIMEDOUT, "%s", what);
	ck_assert_msg(returned >= deadline, "%s returned %lld us before its deadline", what,
		      (long long)(deadline - returned) / 1000);
	ck_assert_msg(returned - deadline < bound, "%s returned %lld ms after its deadline",
		      what, (long long)(returned - deadline) / MS_NS);
}

static void assert_timed_out_in_time(sc_result r, int64_t deadline, int64_t returned,
				     const char *what)
{
	assert_timed_out_within(r, deadline, returned, stretched(PROMPT_NS), what);
}

/*
 * A call that should have completed timed out.  On a loaded machine its
 * thread may not have run between setting the deadline and its syscall:
 * then the deadline had passed and the call used almost no CPU.  A call
 * signalled before its deadline either returns early or, with the stub,
 * spins until its deadline: neither passes for starved.
 */
#define STARVED_CPU_NS (10 * MS_NS)

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * SEC_NS + ts.tv_nsec;
}

static bool starved(sc_result r, int64_t deadline, int64_t returned, int64_t cpu_ns)
{
	return r.status == SC_TIMEDOUT && returned >= deadline && cpu_ns < STARVED_CPU_NS;
}

/* A read of an empty pipe under a new token with the given timeout: it must time out. */
static void assert_read_times_out(int fd, int64_t timeout_ns, const char *what)
{
	sc_token t;
	char b;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, timeout_ns), 0);
	int64_t deadline = sc_token_deadline(&t);
	sc_result r = sc_read(&t, fd, &b, 1);

	assert_timed_out_in_time(r, deadline, sc_now_ns(), what);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}

/* What a process holds that threads with slots could leave behind. */
struct holdings {
	long threads, timers, fds;
};

static long count_threads(void)
{
	char line[128];
	long n = -1;
	FILE *f = fopen("/proc/self/status", "re");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* POSIX timers of the process: each thread with a slot owns one. */
static long count_timers(void)
{
	char line[128];
	long n = 0;
	FILE *f = fopen("/proc/self/timers", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += !strncmp(line, "ID:", 3);
	fclose(f);
	return n;
}

/* Open descriptors: an io_uring thread's ring is one. */
static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = -1;	/* the directory's own */

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2;	/* . and .. */
}

static struct holdings holdings(void)
{
	return (struct holdings){ count_threads(), count_timers(), count_fds() };
}

/*
 * A call with a deadline in flight on this thread, in a scope: the service
 * is started (a scope starts it on either backend; a call's deadline only on
 * the signal path), so that it does not count as a thread left behind.
 */
static struct holdings holdings_baseline(void)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 10 * SEC_NS), 0);
	ck_assert_int_eq(sc_scope_enter(&t), 0);
	assert_ok(sc_sleep(&t, MS_NS), 0);
	ck_assert_int_eq(sc_scope_exit(), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	return holdings();
}

/* Threads that exited took their slot's timer and ring with them. */
static void assert_nothing_left_behind(struct holdings before)
{
	int64_t end = sc_now_ns() + PROMPT_NS;
	struct holdings now;

	/* A joined thread may still be counted for a moment while the kernel reaps it. */
	while ((now = holdings()).threads != before.threads && sc_now_ns() < end)
		sched_yield();
	ck_assert_msg(now.threads == before.threads, "threads: %ld before, %ld after",
		      before.threads, now.threads);
	ck_assert_msg(now.timers == before.timers, "POSIX timers: %ld before, %ld after",
		      before.timers, now.timers);
	ck_assert_msg(now.fds == before.fds, "descriptors: %ld before, %ld after", before.fds,
		      now.fds);
}

/*
 * Many calls with deadlines that never fire: four threads each read a
 * byte that is already there, under a new token with a 100 ms timeout, for
 * 2000 calls and at least three timeouts' worth of time, so the service
 * wakes at deadlines of calls long gone while later calls with later
 * deadlines run on the same slots.  None may time out (unless its thread
 * was starved past its deadline); then each thread's next call, blocked,
 * still times out at its deadline.
 */
#define STEADY_THREADS 4
#define STEADY_TIMEOUT_NS (100 * MS_NS)

struct steady {
	int p[2];
	long calls, ok, starved;
	sc_result first_bad;
	long first_bad_call;
	int64_t end_ns;		/* the calls go on at least until then */
	sc_result last;		/* the blocked call at the end */
	int64_t last_deadline, last_returned;
};

static void *steady_caller(void *arg)
{
	struct steady *st = arg;
	long want = light_run() ? 200 : 2000;

	for (long i = 0; i < want || sc_now_ns() < st->end_ns; i++) {
		char sent = (char)('a' + i % 26), got = 0;
		sc_token t;

		if (write(st->p[1], &sent, 1) != 1 || sc_token_init(&t, NULL) ||
		    sc_token_set_timeout(&t, STEADY_TIMEOUT_NS))
			abort();
		int64_t cpu = thread_cpu_ns();
		sc_result r = sc_read(&t, st->p[0], &got, 1);
		int64_t returned = sc_now_ns();

		cpu = thread_cpu_ns() - cpu;
		st->calls++;
		if (r.status == SC_OK && r.value == 1 && got == sent) {
			st->ok++;
		} else if (starved(r, sc_token_deadline(&t), returned, cpu)) {
			st->starved++;
		} else if (st->ok + st->starved + 1 == st->calls) {	/* the first bad one */
			st->first_bad = r, st->first_bad_call = i;
		}
		if (r.status == SC_TIMEDOUT && read(st->p[0], &got, 1) != 1)	/* left unread */
			abort();
		if (sc_token_destroy(&t))
			abort();
	}

	sc_token t;
	char b;

	if (sc_token_init(&t, NULL) || sc_token_set_timeout(&t, 50 * MS_NS))
		abort();
	st->last_deadline = sc_token_deadline(&t);
	st->last = sc_read(&t, st->p[0], &b, 1);
	st->last_returned = sc_now_ns();
	if (sc_token_destroy(&t))
		abort();
	return NULL;
}

START_TEST(thousands_of_deadlines_that_never_fire_leave_the_service_working)
{
	static struct steady st[STEADY_THREADS];
	pthread_t th[STEADY_THREADS];
	int64_t end = sc_now_ns() + 3 * STEADY_TIMEOUT_NS;

	for (int i = 0; i < STEADY_THREADS; i++) {
		st[i] = (struct steady){ .end_ns = end };
		make_pipe(st[i].p);
		ck_assert_int_eq(pthread_create(&th[i], NULL, steady_caller, &st[i]), 0);
	}
	for (int i = 0; i < STEADY_THREADS; i++)
		join_within(th[i], stretched(60 * SEC_NS), "a thread making calls with deadlines");
	for (int i = 0; i < STEADY_THREADS; i++) {
		ck_assert_msg(st[i].ok + st[i].starved == st[i].calls,
			      "thread %d: %ld of %ld calls failed, first (call %ld): "
			      "status %d error %d value %ld", i,
			      st[i].calls - st[i].ok - st[i].starved,
			      st[i].calls, st[i].first_bad_call, st[i].first_bad.status,
			      st[i].first_bad.error, st[i].first_bad.value);
		assert_timed_out_in_time(st[i].last, st[i].last_deadline, st[i].last_returned,
					 "the blocked call after the others");
		close_pipe(st[i].p);
	}
	printf("deadlines: %d threads made %ld, %ld, %ld and %ld calls with deadlines "
	       "(%ld starved past their deadline)\n", STEADY_THREADS, st[0].calls, st[1].calls,
	       st[2].calls, st[3].calls,
	       st[0].starved + st[1].starved + st[2].starved + st[3].starved);
}
END_TEST

/*
 * A fleet: threads parked at a gate, then each reads an empty pipe under a
 * token with its own deadline, base + index * step, base set when the gate
 * opens.  Every one must time out, none before its deadline; then each
 * waits a moment outside any call, where a stray signal would show.
 */
struct fleet_reader {
	struct fleet *fleet;
	pthread_t thread;
	int index;
	int failed_setup;
	int stray_eintr;
	int64_t deadline, entered_ns, returned_ns;
	sc_result res;
};

struct fleet {
	int gate[2];		/* readable once the deadlines are set */
	int empty[2];
	long base;		/* int64_t ns, stored before the gate opens */
	int64_t step_ns;
	long parked, done;
	struct fleet_reader *readers;
};

static void *fleet_read(void *arg)
{
	struct fleet_reader *r = arg;
	struct fleet *f = r->fleet;
	struct pollfd gate = { .fd = f->gate[0], .events = POLLIN };
	sc_token t;
	char b;

	add(&f->parked, 1);
	while (poll(&gate, 1, -1) < 0)
		r->stray_eintr += errno == EINTR;
	r->deadline = load(&f->base) + r->index * f->step_ns;
	if (sc_token_init(&t, NULL) || sc_token_set_deadline(&t, r->deadline)) {
		r->failed_setup = 1;
	} else {
		r->entered_ns = sc_now_ns();
		r->res = sc_read(&t, f->empty[0], &b, 1);
		r->returned_ns = sc_now_ns();
		r->stray_eintr += quiet_wait_interrupted();
		r->failed_setup = sc_token_destroy(&t) != 0;
	}
	add(&f->done, 1);
	return NULL;
}

struct fleet_outcome {
	long entered_late;	/* started its call after its deadline: proves less */
	int64_t max_late_ns;	/* of the others */
};

static struct fleet_outcome run_fleet(int n, int64_t lead_ns, int64_t step_ns, size_t stack)
{
	struct fleet f = { .step_ns = step_ns };
	struct fleet_outcome out = { 0 };
	pthread_attr_t attr;
	int64_t bound = stretched(60 * SEC_NS);
	/* Each thread needs the CPU when its deadline passes; two CPUs take turns. */
	int64_t late_bound = stretched(PROMPT_NS + n * MS_NS);

	f.readers = calloc(n, sizeof(*f.readers));
	ck_assert_ptr_nonnull(f.readers);
	make_pipe(f.gate);
	make_pipe(f.empty);
	ck_assert_int_eq(pthread_attr_init(&attr), 0);
	/* aarch64's least stack is 128 KiB. */
	if (stack < (size_t)PTHREAD_STACK_MIN)
		stack = PTHREAD_STACK_MIN;
	ck_assert_int_eq(pthread_attr_setstacksize(&attr, stack), 0);
	for (int i = 0; i < n; i++) {
		f.readers[i] = (struct fleet_reader){ .fleet = &f, .index = i };
		int err = pthread_create(&f.readers[i].thread, &attr, fleet_read, &f.readers[i]);
		ck_assert_msg(err == 0, "thread %d of %d: %s", i, n, strerror(err));
	}
	pthread_attr_destroy(&attr);
	wait_count(&f.parked, n, bound, "threads parked at the gate");

	store(&f.base, sc_now_ns() + lead_ns);
	ck_assert_int_eq(write(f.gate[1], "g", 1), 1);
	wait_count(&f.done, n, bound, "threads whose deadline passed");
	for (int i = 0; i < n; i++)
		join_within(f.readers[i].thread, PROMPT_NS, "a thread whose call returned");

	for (int i = 0; i < n; i++) {
		struct fleet_reader *r = &f.readers[i];
		char what[64];

		snprintf(what, sizeof(what), "thread %d's read", i);
		ck_assert_msg(!r->failed_setup, "%s: token init, deadline or destroy failed", what);
		ck_assert_msg(!r->stray_eintr, "%s: EINTR outside any call", what);
		assert_timed_out_within(r->res, r->deadline, r->returned_ns, late_bound, what);
		if (r->entered_ns >= r->deadline)
			out.entered_late++;
		else if (r->returned_ns - r->deadline > out.max_late_ns)
			out.max_late_ns = r->returned_ns - r->deadline;
	}
	close_pipe(f.gate);
	close_pipe(f.empty);
	free(f.readers);
	return out;
}

#define STAGGERED 200

START_TEST(staggered_deadlines_of_200_blocked_threads_each_fire_at_their_own_time)
{
	/* Under valgrind the threads take longer than 20 ms to make their first calls. */
	int lead_ms = under_valgrind() ? 200 : 20;
	struct fleet_outcome o = run_fleet(STAGGERED, lead_ms * MS_NS, MS_NS, 256 * 1024);

	printf("deadlines: %d staggered over %d..%d ms: max lateness %.3f ms "
	       "(%ld began their call after their deadline)\n", STAGGERED, lead_ms,
	       lead_ms + STAGGERED - 1, (double)o.max_late_ns / MS_NS, o.entered_late);
}
END_TEST

/*
 * 10,000 threads with deadlines in flight at once, 50 us apart; valgrind
 * handles at most 500 threads, sanitizers make each far costlier.
 */
START_TEST(ten_thousand_threads_with_deadlines_all_time_out_and_leave_nothing_behind)
{
	int n = under_valgrind() ? 400 : sanitized() ? 1000 : 10000;
	size_t stack = sanitized() ? 256 * 1024 : 64 * 1024;
	int empty[2];
	struct holdings before = holdings_baseline();
	int64_t t0 = sc_now_ns();
	/* Time for every thread to make its first call before the first deadline. */
	int64_t lead = 20 * MS_NS + n * (under_valgrind() ? MS_NS : 50000LL);
	struct fleet_outcome o = run_fleet(n, lead, 50000, stack);

	printf("deadlines: %d threads, deadlines 50 us apart: all timed out %.0f ms after the "
	       "start, max lateness %.3f ms (%ld began their call after their deadline)\n", n,
	       (double)(sc_now_ns() - t0) / MS_NS, (double)o.max_late_ns / MS_NS,
	       o.entered_late);

	/* Healthy: nothing left behind, and deadlines and cancels still work. */
	assert_nothing_left_behind(before);
	make_pipe(empty);
	assert_read_times_out(empty[0], 20 * MS_NS, "a read after the fleet");

	struct bg_call c;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 3600 * SEC_NS), 0);
	bg_read_blocked(&c, &t);
	ck_assert_int_eq(sc_cancel(&t), 0);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
	close_pipe(empty);
}
END_TEST

/* bg_call fns: read c->fd under c->tok with a deadline of the thread's own, stored at c->arg. */
#define OWN_DEADLINE_NS (200 * MS_NS)

static sc_result read_with_own_deadline(struct bg_call *c)
{
	int64_t *deadline = c->arg;

	if (sc_token_set_timeout(c->tok, OWN_DEADLINE_NS))
		return (sc_result){ SC_ERROR, EINVAL, -1 };
	__atomic_store_n(deadline, sc_token_deadline(c->tok), __ATOMIC_RELEASE);
	return bg_read(c);
}

static int64_t load_deadline(const int64_t *deadline)
{
	return __atomic_load_n(deadline, __ATOMIC_ACQUIRE);
}

static sc_result read_with_50ms_deadline(struct bg_call *c)
{
	if (sc_token_set_timeout(c->tok, 50 * MS_NS))
		return (sc_result){ SC_ERROR, EINVAL, -1 };
	__atomic_store_n((int64_t *)c->arg, sc_token_deadline(c->tok), __ATOMIC_RELEASE);
	return bg_read(c);
}

/*
 * fork while a thread blocks with a deadline in flight: the child's
 * service starts afresh (its thread did not survive the fork), the
 * parent's keeps the blocked call's deadline.  _i 0: the forking thread
 * never made a call before (with CK_FORK=no earlier tests may have made
 * one); 1: it made one with a deadline, so it owns a slot the service knew.
 */
static void child_after_fork(int empty_rd)
{
	int full[2];
	char b = 0;
	sc_token t, nt;
	int64_t nt_deadline;
	struct bg_call other = { .fn = read_with_50ms_deadline, .tok = &nt, .fd = empty_rd,
				 .arg = &nt_deadline };

	assert_read_times_out(empty_rd, 50 * MS_NS, "the child's read with a 50 ms deadline");

	make_pipe_with_byte(full);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, SEC_NS), 0);
	assert_ok(sc_read(&t, full[0], &b, 1), 1);
	ck_assert_int_eq(b, 'x');
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(full);

	/*
	 * A new thread of the child too; not joined (see test_fork.c on TSan).
	 * Not under a sanitizer: a new thread under ASan can hang on a lock of
	 * its runtime that another thread of the parent held at the fork.
	 */
	if (sanitized())
		_exit(0);
	ck_assert_int_eq(sc_token_init(&nt, NULL), 0);
	bg_start(&other);
	sc_result r = bg_wait(&other);

	assert_timed_out_in_time(r, nt_deadline, other.returned_ns,
				 "the read of a new thread of the child");
	_exit(0);
}

#if SC_TSAN
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}
#endif

START_TEST(a_deadline_in_flight_at_fork_fires_and_the_child_has_deadlines_of_its_own)
{
	int64_t deadline = 0;
	struct bg_call c;
	sc_token t;

	if (_i == 1) {
		int p[2];

		make_pipe(p);
		assert_read_times_out(p[0], MS_NS, "the forking thread's read before the fork");
		close_pipe(p);
	}
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	c = (struct bg_call){ .fn = read_with_own_deadline, .tok = &t, .arg = &deadline };
	bg_pipe(&c);
	bg_start_blocked(&c);

	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_after_fork(c.fd);
	assert_child_succeeded(pid);
	sc_result r = bg_join(&c);

	assert_timed_out_in_time(r, load_deadline(&deadline), c.returned_ns,
				 "the parent's read blocked across the fork");
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
}
END_TEST

/*
 * The service signals a call at its deadline as a cancel does; when the
 * process's signal queue is full, the thread's timer, whose queue entry was
 * reserved when it was made, must carry the signal instead.
 */
START_TEST(a_deadline_fires_when_the_signal_queue_is_full)
{
	int64_t deadline = 0, end;
	struct rlimit none, saved;
	struct bg_call c;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	c = (struct bg_call){ .fn = read_with_own_deadline, .tok = &t, .arg = &deadline };
	bg_pipe(&c);
	bg_start_blocked(&c);
	ck_assert_int_eq(getrlimit(RLIMIT_SIGPENDING, &saved), 0);
	none = (struct rlimit){ 0, saved.rlim_max };
	ck_assert_int_eq(setrlimit(RLIMIT_SIGPENDING, &none), 0);
	int64_t full_at = sc_now_ns();
	int queued = sigqueue(getpid(), SIGRTMIN, (union sigval){ 0 });
	int queue_err = errno;

	/* Not bg_wait(): the limit goes back before anything can fail. */
	end = sc_now_ns() + stretched(PROMPT_NS);
	while (!bg_done(&c) && sc_now_ns() < end)
		poll(NULL, 0, 1);
	ck_assert_int_eq(setrlimit(RLIMIT_SIGPENDING, &saved), 0);

	ck_assert_int_eq(queued, -1);
	ck_assert_int_eq(queue_err, EAGAIN);
	if (full_at >= load_deadline(&deadline))
		printf("deadlines: the queue filled only after the deadline had passed\n");
	assert_timed_out_in_time(bg_join(&c), load_deadline(&deadline), c.returned_ns,
				 "a read whose deadline passed with the signal queue full");
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
}
END_TEST

/*
 * A deadline that fires just as its call returns: the byte the call waits
 * for is written at about the deadline, up to 200 us either side.  The
 * call either read it (SC_OK, byte gone) or timed out (SC_TIMEDOUT, byte
 * still there: no effect); and right after, a plain poll must never see
 * EINTR.  _i 0: the call's own deadline; 1: a 1 h deadline in flight that
 * the main thread lowers to now, just before or just after the write.
 */
#define PHOTO_LEAD_NS (2 * MS_NS)
#define PHOTO_JITTER_US 200

struct photo {
	int p[2];
	int lowered;
	long rounds;
	long ready, written, done;	/* round numbers */
	long deadline;			/* int64_t; the call's, when its own */
	sc_token *tok;
	long ok, timedout, other, stray_eintr, lost_bytes, bad_destroy;
	sc_result first_other;
};

static void photo_judge(struct photo *ph, sc_result r)
{
	int queued = -1;
	char b;

	while (load(&ph->written) < load(&ph->ready))
		sched_yield();
	if (ioctl(ph->p[0], FIONREAD, &queued))
		abort();
	if (r.status == SC_OK && r.value == 1 && queued == 0) {
		ph->ok++;
	} else if (r.status == SC_TIMEDOUT && r.error == ETIMEDOUT && queued == 1) {
		ph->timedout++;
		if (read(ph->p[0], &b, 1) != 1)
			abort();
	} else if (r.status == SC_TIMEDOUT || r.status == SC_OK) {
		ph->lost_bytes++;	/* a timeout that read, or a read that left the byte */
	} else if (ph->other++ == 0) {
		ph->first_other = r;
	}
}

static void *photo_caller(void *arg)
{
	struct photo *ph = arg;

	for (long k = 1; k <= ph->rounds; k++) {
		sc_token t;
		char b;

		if (sc_token_init(&t, NULL) ||
		    sc_token_set_timeout(&t, ph->lowered ? 3600 * SEC_NS : PHOTO_LEAD_NS))
			abort();
		store(&ph->deadline, sc_token_deadline(&t));
		ph->tok = &t;
		store(&ph->ready, k);
		sc_result r = sc_read(&t, ph->p[0], &b, 1);

		ph->stray_eintr += quiet_wait_interrupted();
		photo_judge(ph, r);
		ph->bad_destroy += sc_token_destroy(&t) != 0;
		store(&ph->done, k);
	}
	return NULL;
}

static void photo_finish(struct photo *ph, long k, uint32_t *seed)
{
	int64_t jitter = ((int64_t)(xorshift(seed) % (2 * PHOTO_JITTER_US + 1)) -
			  PHOTO_JITTER_US) * 1000;
	int64_t at = (ph->lowered ? sc_now_ns() + PHOTO_LEAD_NS : load(&ph->deadline)) + jitter;

	spin_ns(at - sc_now_ns());
	if (ph->lowered && k % 2)
		ck_assert_int_eq(sc_token_set_deadline(ph->tok, sc_now_ns()), 0);
	ck_assert_int_eq(write(ph->p[1], "x", 1), 1);
	if (ph->lowered && !(k % 2))
		ck_assert_int_eq(sc_token_set_deadline(ph->tok, sc_now_ns()), 0);
	store(&ph->written, k);
}

START_TEST(a_deadline_firing_as_its_call_returns_never_signals_outside_the_call)
{
	static struct photo ph;
	uint32_t seed = 0x9e3779b9u;
	pthread_t th;

	ph = (struct photo){ .lowered = _i, .rounds = light_run() ? 40 : 400 };
	make_pipe(ph.p);
	ck_assert_int_eq(pthread_create(&th, NULL, photo_caller, &ph), 0);
	for (long k = 1; k <= ph.rounds; k++) {
		wait_at_least(&ph.ready, k, "round %ld starts", k);
		photo_finish(&ph, k, &seed);
		wait_at_least(&ph.done, k, "round %ld ends", k);
	}
	join_within(th, PROMPT_NS, "the caller");

	printf("deadlines: %s deadline at the data, %ld rounds: %ld read it, %ld timed out\n",
	       ph.lowered ? "a lowered" : "the call's own", ph.rounds, ph.ok, ph.timedout);
	ck_assert_msg(ph.stray_eintr == 0, "%ld plain polls after a call saw EINTR",
		      ph.stray_eintr);
	ck_assert_msg(ph.lost_bytes == 0, "%ld calls lost or kept a byte against their result",
		      ph.lost_bytes);
	ck_assert_msg(ph.other == 0, "%ld unexpected results, first: status %d error %d",
		      ph.other, ph.first_other.status, ph.first_other.error);
	ck_assert_int_eq(ph.bad_destroy, 0);
	ck_assert_int_eq(ph.ok + ph.timedout, ph.rounds);
	close_pipe(ph.p);
}
END_TEST

/*
 * Destroying many tokens from one thread: 10,000 children of a root, each
 * used by one short-lived thread (eight alive at a time), all joined;
 * then the main thread destroys every one.
 */
#define USER_PARALLEL 8

struct token_user {
	sc_token *tok;
	int fd;
	sc_result res;
	char got;
};

static void *use_token_once(void *arg)
{
	struct token_user *u = arg;

	u->res = sc_read(u->tok, u->fd, &u->got, 1);
	return NULL;
}

START_TEST(ten_thousand_tokens_each_used_by_an_exited_thread_all_destroy_from_one_thread)
{
	int n = light_run() ? 1000 : 10000;
	sc_token root, *toks = calloc(n, sizeof(*toks));
	struct token_user *users = calloc(n, sizeof(*users));
	pthread_t th[USER_PARALLEL];
	char bytes[1000];
	int p[2];

	ck_assert_ptr_nonnull(toks);
	ck_assert_ptr_nonnull(users);
	make_pipe(p);
	if (fcntl(p[1], F_GETPIPE_SZ) < n)
		ck_assert_int_ge(fcntl(p[1], F_SETPIPE_SZ, n), n);
	memset(bytes, 'x', sizeof(bytes));
	for (int i = 0, k; i < n; i += k) {
		k = n - i < (int)sizeof(bytes) ? n - i : (int)sizeof(bytes);
		ck_assert_int_eq(write(p[1], bytes, k), k);
	}
	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	for (int i = 0; i < n; i++) {
		int slot = i % USER_PARALLEL;

		if (i >= USER_PARALLEL)
			join_within(th[slot], PROMPT_NS, "a thread using its token");
		ck_assert_int_eq(sc_token_init(&toks[i], &root), 0);
		users[i] = (struct token_user){ .tok = &toks[i], .fd = p[0] };
		ck_assert_int_eq(pthread_create(&th[slot], NULL, use_token_once, &users[i]), 0);
	}
	for (int i = 0; i < USER_PARALLEL && i < n; i++)
		join_within(th[i], PROMPT_NS, "a thread using its token");
	for (int i = 0; i < n; i++) {
		ck_assert_msg(users[i].res.status == SC_OK && users[i].res.value == 1 &&
			      users[i].got == 'x', "thread %d's read: status %d error %d", i,
			      users[i].res.status, users[i].res.error);
	}

	int64_t t0 = sc_now_ns();

	for (int i = 0; i < n; i++) {
		int err = sc_token_destroy(&toks[i]);

		ck_assert_msg(err == 0, "destroying token %d: %s", i, strerror(err));
	}
	printf("deadlines: destroying %d tokens used by exited threads took %.3f ms\n", n,
	       (double)(sc_now_ns() - t0) / MS_NS);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
	close_pipe(p);
	free(users);
	free(toks);
}
END_TEST

/*
 * One thread used a token: while it blocks under it the token is busy;
 * once that call ended the token is free, even while the same thread,
 * alive, blocks under another token.
 */
struct one_user {
	sc_token *tok, *other;
	int p[2];		/* holds a byte for the first call, then empty */
	int other_rd;
	long stage;
	sc_result first, second;
};

static sc_result use_then_block_twice(struct bg_call *c)
{
	struct one_user *u = c->arg;
	char b;

	u->first = sc_read(u->tok, u->p[0], &b, 1);
	store(&u->stage, 1);
	u->second = sc_read(u->tok, u->p[0], &b, 1);
	store(&u->stage, 2);
	return sc_read(u->other, u->other_rd, &b, 1);
}

START_TEST(a_token_whose_one_user_blocks_under_it_is_busy_and_free_once_that_call_ends)
{
	sc_token tok, other;
	struct one_user u = { .tok = &tok, .other = &other };
	struct bg_call c = { .fn = use_then_block_twice, .arg = &u };

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	ck_assert_int_eq(sc_token_init(&other, NULL), 0);
	make_pipe_with_byte(u.p);
	bg_pipe(&c);
	u.other_rd = c.fd;
	bg_start(&c);

	wait_at_least(&u.stage, 1, "the first call returns");
	ck_assert_msg(bg_wait_blocked(&c), "the second call returned");
	ck_assert_int_eq(load(&u.stage), 1);
	ck_assert_int_eq(sc_token_destroy(&tok), EBUSY);

	ck_assert_int_eq(write(u.p[1], "y", 1), 1);
	wait_at_least(&u.stage, 2, "the second call returns");
	ck_assert_msg(bg_wait_blocked(&c), "the third call returned");
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	ck_assert_int_eq(sc_token_destroy(&other), EBUSY);

	ck_assert_int_eq(sc_cancel(&other), 0);
	assert_cancelled(bg_join(&c));
	assert_ok(u.first, 1);
	assert_ok(u.second, 1);
	ck_assert_int_eq(sc_token_destroy(&other), 0);
	close_pipe(u.p);
	bg_close_pipe(&c);
}
END_TEST

/*
 * A deadline set on a token while a plain call blocks under it, and the
 * call then completes before that deadline: the thread's next call, under
 * a token with no deadline, must not time out when the old deadline passes,
 * whether the service fires it or an application signal interrupts the call.
 */
struct two_calls {
	sc_token *first, *second;
	int first_rd, second_rd;
	long stage;
	sc_result a;
};

static sc_result read_under_two_tokens(struct bg_call *c)
{
	struct two_calls *t = c->arg;
	char b;

	/* The first read finds a byte and makes the token this thread's: the second is plain. */
	t->a = sc_read(t->first, t->first_rd, &b, 1);
	if (t->a.status == SC_OK)
		t->a = sc_read(t->first, t->first_rd, &b, 1);
	store(&t->stage, 1);
	return sc_read(t->second, t->second_rd, &b, 1);
}

static long pokes;

static void count_poke(int sig)
{
	(void)sig;
	add(&pokes, 1);
}

static void sleep_until(int64_t at)
{
	struct timespec ts = { at / SEC_NS, at % SEC_NS };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

START_TEST(a_deadline_moved_onto_a_call_that_then_completes_leaves_the_next_call_alone)
{
	sc_token first, second;
	int p[2], q[2];
	struct two_calls t = { .first = &first, .second = &second };
	struct bg_call c = { .fn = read_under_two_tokens, .arg = &t };
	int64_t deadline;

	ck_assert_int_eq(sc_token_init(&first, NULL), 0);
	ck_assert_int_eq(sc_token_init(&second, NULL), 0);
	make_pipe_with_byte(p);
	make_pipe(q);
	t.first_rd = p[0];
	t.second_rd = q[0];
	bg_start_blocked(&c);

	deadline = sc_now_ns() + stretched(SEC_NS);
	ck_assert_int_eq(sc_token_set_deadline(&first, deadline), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	wait_at_least(&t.stage, 1, "the first call returns");
	assert_ok(t.a, 1);
	ck_assert_msg(sc_now_ns() < deadline, "the first call returned after its deadline");
	ck_assert_msg(bg_wait_blocked(&c), "the second call returned");

	install_handler(SIGUSR1, count_poke, 0, NULL);
	sleep_until(deadline + stretched(200 * MS_NS));
	ck_assert_msg(!bg_done(&c), "the second call returned at the first call's deadline");
	ck_assert_int_eq(pthread_kill(c.thread, SIGUSR1), 0);
	wait_at_least(&pokes, 1, "the application's handler runs");
	ck_assert_msg(bg_wait_blocked(&c), "the second call returned on an application signal");
	ck_assert_int_eq(write(q[1], "y", 1), 1);
	assert_ok(bg_join(&c), 1);
	ck_assert_int_eq(sc_token_destroy(&first), 0);
	ck_assert_int_eq(sc_token_destroy(&second), 0);
	close_pipe(p);
	close_pipe(q);
}
END_TEST

/*
 * Threads come and go, four at a time; each makes one call, its first,
 * with a deadline, on a slot an exited thread left (a slot the service
 * may still keep for a deadline of that thread).  Odd threads read a byte
 * that is there under a 100 ms timeout (unless starved past it); even ones
 * block on an empty pipe with a 1..3 ms deadline.  Then a new thread's
 * first call still times out.
 */
#define COMERS_PARALLEL 4

struct comer {
	int data_rd, empty_rd;
	int index;
	sc_result res;
	int64_t deadline, returned_ns, cpu_ns;
	char got;
};

static void *come_and_go(void *arg)
{
	struct comer *c = arg;
	sc_token t;

	if (sc_token_init(&t, NULL) ||
	    sc_token_set_timeout(&t, c->index % 2 ? 100 * MS_NS : (1 + c->index % 3) * MS_NS))
		abort();
	c->deadline = sc_token_deadline(&t);
	c->cpu_ns = thread_cpu_ns();
	c->res = sc_read(&t, c->index % 2 ? c->data_rd : c->empty_rd, &c->got, 1);
	c->returned_ns = sc_now_ns();
	c->cpu_ns = thread_cpu_ns() - c->cpu_ns;
	if (sc_token_destroy(&t))
		abort();
	return NULL;
}

START_TEST(threads_whose_first_call_takes_a_slot_an_exited_thread_left_get_their_deadlines)
{
	int n = light_run() ? 200 : 1000;
	struct comer *comers = calloc(n, sizeof(*comers));
	pthread_t th[COMERS_PARALLEL];
	int data[2], empty[2];
	struct holdings before;
	long n_starved = 0;

	ck_assert_ptr_nonnull(comers);
	make_pipe(data);
	make_pipe(empty);
	before = holdings_baseline();
	for (int i = 1; i < n; i += 2)
		ck_assert_int_eq(write(data[1], "x", 1), 1);
	for (int i = 0; i < n; i++) {
		int slot = i % COMERS_PARALLEL;

		if (i >= COMERS_PARALLEL)
			join_within(th[slot], PROMPT_NS, "a thread making its first call");
		comers[i] = (struct comer){ .data_rd = data[0], .empty_rd = empty[0], .index = i };
		ck_assert_int_eq(pthread_create(&th[slot], NULL, come_and_go, &comers[i]), 0);
	}
	for (int i = 0; i < COMERS_PARALLEL && i < n; i++)
		join_within(th[i], PROMPT_NS, "a thread making its first call");
	for (int i = 0; i < n; i++) {
		struct comer *c = &comers[i];
		char what[64];

		snprintf(what, sizeof(what), "thread %d's first call", i);
		if (!(i % 2)) {
			assert_timed_out_in_time(c->res, c->deadline, c->returned_ns, what);
		} else if (starved(c->res, c->deadline, c->returned_ns, c->cpu_ns)) {
			n_starved++;
		} else {
			assert_status(c->res, SC_OK, "%s", what);
			ck_assert_int_eq(c->got, 'x');
		}
	}
	assert_nothing_left_behind(before);
	if (n_starved)
		printf("deadlines: %ld threads starved past their deadline\n", n_starved);

	sc_token t;
	int64_t deadline = 0;
	struct bg_call last = { .fn = read_with_50ms_deadline, .tok = &t, .fd = empty[0],
				.arg = &deadline };

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	bg_start(&last);
	sc_result r = bg_join(&last);

	assert_timed_out_in_time(r, deadline, last.returned_ns, "a new thread's first call");
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(data);
	close_pipe(empty);
	free(comers);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("deadlines");
	TCase *tc = add_tcase(s, "deadlines", 60, init_library);
	TCase *many = add_tcase(s, "many threads", 120, init_library);

	tcase_add_test(tc, thousands_of_deadlines_that_never_fire_leave_the_service_working);
	if (!skipped_under_emulator("a_deadline_in_flight_at_fork_fires_and_the_child_has_"
				    "deadlines_of_its_own", QEMU_FORK))
		tcase_add_loop_test(tc,
			a_deadline_in_flight_at_fork_fires_and_the_child_has_deadlines_of_its_own,
			0, 2);
	tcase_add_loop_test(tc,
		a_deadline_firing_as_its_call_returns_never_signals_outside_the_call, 0, 2);
	tcase_add_test(tc, a_deadline_fires_when_the_signal_queue_is_full);
	tcase_add_test(tc,
		a_token_whose_one_user_blocks_under_it_is_busy_and_free_once_that_call_ends);
	tcase_add_test(tc,
		a_deadline_moved_onto_a_call_that_then_completes_leaves_the_next_call_alone);
	if (!skipped_under_emulator("the many-threads deadline fleets", QEMU_TIMERS)) {
		tcase_add_test(many,
			staggered_deadlines_of_200_blocked_threads_each_fire_at_their_own_time);
		tcase_add_test(many,
			ten_thousand_threads_with_deadlines_all_time_out_and_leave_nothing_behind);
	}
	tcase_add_test(many,
		ten_thousand_tokens_each_used_by_an_exited_thread_all_destroy_from_one_thread);
	tcase_add_test(many,
		threads_whose_first_call_takes_a_slot_an_exited_thread_left_get_their_deadlines);
	return run_suite(s, CK_FORK_GETENV);
}
