/*
 * Scopes: what sc_scope_enter(tok) ... sc_scope_exit() costs around code that
 * knows nothing of syscancel, and how fast a cancel ends that code's read(2).
 *
 * Enter+exit: ns per pair in a tight loop, next to an empty loop, the same
 * stores made by hand, and one syscall for scale.  A pair makes no syscall by
 * construction.  Linux counts a thread's syscalls only through perf or
 * seccomp, so the section shows what it can see instead: the thread's context
 * switches, minor faults and read/write-family syscalls across 10^6 pairs.
 *
 * Fast path: the fast path's 1-byte read of a non-empty pipe, plain read(2)
 * outside scopes and inside a live scope, and sc_read(tok), interleaved.
 *
 * Cancel latency: a thread blocked in plain read(2) on an empty pipe inside a
 * scope, ended by sc_cancel(tok) from main with ECANCELED, next to sc_read(tok)
 * ended by sc_cancel(tok); one CPU, then two.  The thread then retries, as a
 * library's loop would: the retry's duration, from its start to its
 * ECANCELED, is what the scope service's re-signalling (every ~1 ms) bounds.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Where a scope ends plain syscalls: x86_64, and not under ThreadSanitizer. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SCOPES_END_PLAIN_CALLS 0
#endif
#endif
#ifndef SCOPES_END_PLAIN_CALLS
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define SCOPES_END_PLAIN_CALLS 1
#else
#define SCOPES_END_PLAIN_CALLS 0
#endif
#endif

#define barrier() __asm__ volatile("" ::: "memory")

/* ---- enter + exit ------------------------------------------------------- */

static sc_token pair_tok;
static struct {
	sc_token *tok;
	int depth;
} by_hand;

static void loop_empty(long n)
{
	for (long i = 0; i < n; i++)
		barrier();
}

/* What a pair publishes, stored by hand: the token, the depth up, then down. */
static void loop_stores(long n)
{
	for (long i = 0; i < n; i++) {
		__atomic_store_n(&by_hand.tok, &pair_tok, __ATOMIC_RELAXED);
		__atomic_store_n(&by_hand.depth, 1, __ATOMIC_RELEASE);
		barrier();
		__atomic_store_n(&by_hand.depth, 0, __ATOMIC_RELEASE);
		barrier();
	}
}

static void loop_scope(long n)
{
	for (long i = 0; i < n; i++)
		if (sc_scope_enter(&pair_tok) || sc_scope_exit())
			die("sc_scope_enter/sc_scope_exit", EINVAL);
}

static void loop_getppid(long n)
{
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
}

struct pair_method {
	const char *name;
	void (*run)(long n);
	int shift;		/* runs n >> shift times: a syscall is slow */
	double *ns;		/* ns per iteration of each round */
};

#define PAIR(name_, run_, shift_) { .name = name_, .run = run_, .shift = shift_ }

static struct pair_method pair_methods[] = {
	PAIR("empty loop", loop_empty, 0),
	PAIR("the same stores by hand", loop_stores, 0),
	PAIR("sc_scope_enter + sc_scope_exit", loop_scope, 0),
	PAIR("syscall(SYS_getppid), for scale", loop_getppid, 6),
};

static double pair_round(const struct pair_method *m, long n)
{
	n >>= m->shift;
	int64_t t0 = sc_now_ns();
	m->run(n);
	return (double)(sc_now_ns() - t0) / n;
}

/* What this thread's counters show; syscr, syscw -1 without /proc/thread-self/io. */
struct seen {
	long nvcsw, nivcsw, minflt;
	long long syscr, syscw;
};

static long long io_field(const char *buf, const char *name)
{
	const char *p = strstr(buf, name);
	return p ? strtoll(p + strlen(name), NULL, 10) : -1;
}

static struct seen seen_now(void)
{
	struct seen s = { .syscr = -1, .syscw = -1 };
	struct rusage ru;
	char buf[512];

	if (getrusage(RUSAGE_THREAD, &ru) == 0) {
		s.nvcsw = ru.ru_nvcsw;
		s.nivcsw = ru.ru_nivcsw;
		s.minflt = ru.ru_minflt;
	}
	int fd = open("/proc/thread-self/io", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		s.syscr = io_field(buf, "syscr:");
		s.syscw = io_field(buf, "syscw:");
	}
	return s;
}

/*
 * The counters across n pairs.  Reading /proc/thread-self/io is itself a
 * read(2): an empty bracket measured first is taken off.
 */
static void pairs_seen(long n)
{
	struct seen a = seen_now(), b = seen_now();
	loop_scope(n);
	struct seen c = seen_now();

	printf("\n  %ld pairs, this thread's counters before and after (getrusage(RUSAGE_THREAD),\n"
	       "  /proc/thread-self/io): context switches %+ld voluntary, %+ld involuntary;\n"
	       "  minor faults %+ld; ", n, c.nvcsw - b.nvcsw, c.nivcsw - b.nivcsw,
	       c.minflt - b.minflt);
	if (a.syscr < 0 || a.syscw < 0)
		printf("read/write-family syscalls n/a (no /proc/thread-self/io)\n");
	else
		printf("read/write-family syscalls %+lld/%+lld\n",
		       (c.syscr - b.syscr) - (b.syscr - a.syscr),
		       (c.syscw - b.syscw) - (b.syscw - a.syscw));
	printf("  syscalls per pair: 0 by construction (loads and stores only); Linux counts a\n"
	       "  thread's syscalls only through perf or seccomp, so the line above is what this\n"
	       "  program can check\n");
}

static void scope_pairs(int rounds, long n)
{
	const int nm = ARRAY_SIZE(pair_methods);
	int err = sc_token_init(&pair_tok, NULL);

	if (err)
		die("sc_token_init", err);
	for (int k = 0; k < nm; k++) {
		pair_methods[k].ns = calloc(rounds, sizeof(double));
		pair_round(&pair_methods[k], n / 10);	/* warm-up; the token settles */
	}
	for (int r = 0; r < rounds; r++) {
		for (int j = 0; j < nm; j++) {
			int k = (r + j) % nm;	/* rotate the order against drift */
			pair_methods[k].ns[r] = pair_round(&pair_methods[k], n);
		}
	}

	printf("Scopes, enter+exit: ns per sc_scope_enter(tok) + sc_scope_exit() pair,\n"
	       "  uncancelled token; %d rounds x %ld pairs per method, methods interleaved;\n"
	       "  target <= 10 ns; ratio to the same stores by hand; the syscall: ns per call,\n"
	       "  %ld per round\n\n", rounds, n, n >> pair_methods[nm - 1].shift);
	fast_head();
	double base = percentile(pair_methods[1].ns, rounds, 50);
	for (int k = 0; k < nm; k++) {
		fast_row(pair_methods[k].name, pair_methods[k].ns, rounds, base);
		free(pair_methods[k].ns);
	}
	pairs_seen(1000000);
	printf("\n");
	if ((err = sc_token_destroy(&pair_tok)))
		die("sc_token_destroy", err);
}

/* ---- fast path ---------------------------------------------------------- */

static sc_token live_scope_tok, call_tok;

static long read_plain(int fd, char *c) { return read(fd, c, 1); }

static long read_sc(int fd, char *c)
{
	sc_result r = sc_read(&call_tok, fd, c, 1);
	return r.status == SC_OK ? r.value : -1;
}

static struct fast_method scope_fast[] = {
	FAST("read(2), outside scopes", read_plain, SC_BACKEND_DEFAULT),
	{ .name = "read(2), in a live scope", .read1 = read_plain,
	  .backend = SC_BACKEND_DEFAULT, .scope = &live_scope_tok },
	FAST("sc_read(tok), outside scopes", read_sc, SC_BACKEND_SIGNAL),
};

static void scope_fast_path(int rounds, long iters)
{
	const int n = ARRAY_SIZE(scope_fast);
	int pfd[2];
	long cap = fast_pipe(pfd);
	int err = sc_token_init(&live_scope_tok, NULL);

	if (!err)
		err = sc_token_init(&call_tok, NULL);
	if (err)
		die("sc_token_init", err);
	fast_run(scope_fast, n, rounds, iters, pfd, cap);

	printf("Scopes, fast path: uncancelled 1-byte read from a non-empty pipe\n");
	printf("  %d rounds x %ld reads per method, methods interleaved; the scope is entered\n",
	       rounds, iters);
	printf("  before each round's reads; targets: in a live scope <= 1.01x,"
	       " sc_read <= 1.03x\n\n");
	fast_table(scope_fast, n, rounds);
	printf("\n");
	sc_token_destroy(&live_scope_tok);
	sc_token_destroy(&call_tok);
	close(pfd[0]);
	close(pfd[1]);
}

/* ---- cancel latency, then the retry ------------------------------------- */

static struct {
	double *ns;
	int n, cap;
} retry;

/*
 * A library's retry: the next read(2) in the ended scope, from its start to
 * its ECANCELED; false if it ended otherwise.
 */
static bool time_retry(int fd)
{
	char b;
	int64_t t0 = sc_now_ns();
	bool ended = read(fd, &b, 1) < 0 && errno == ECANCELED;
	int64_t t1 = sc_now_ns();

	if (ended && retry.n < retry.cap)
		retry.ns[retry.n++] = t1 - t0;
	return ended;
}

static bool block_scoped_read(struct lat_ctx *c)
{
	char b;

	if (sc_scope_enter(&c->tok))
		return false;
	bool ended = read(c->pipe[0], &b, 1) < 0 && errno == ECANCELED;
	c->t1 = sc_now_ns();
	ended = ended && time_retry(c->pipe[0]);
	return !sc_scope_exit() && ended;
}

static struct lat_method scope_lat[] = {
	LAT("sc_read by sc_cancel, signal", "scope_sc_read_cancel", block_sc_read, wake_cancel,
	    SC_BACKEND_SIGNAL),
	LAT("read(2) in a scope by sc_cancel", "scope_read_cancel", block_scoped_read,
	    wake_cancel, SC_BACKEND_DEFAULT),
};

static void retry_table(void)
{
	printf("  %-32s %9s %9s %9s %9s %9s\n", "method", "p50 ns", "p90 ns", "p99 ns", "max ns",
	       "samples");
	if (!retry.n) {
		printf("  %-32s %9s\n", "read(2) after the ECANCELED", "no samples");
		return;
	}
	double p50 = percentile(retry.ns, retry.n, 50);
	printf("  %-32s %9.0f %9.0f %9.0f %9.0f %9d\n", "read(2) after the ECANCELED", p50,
	       percentile(retry.ns, retry.n, 90), percentile(retry.ns, retry.n, 99),
	       retry.ns[retry.n - 1], retry.n);
}

static int scope_latency(int samples, FILE *csv, bool two_cpus)
{
	const int n = ARRAY_SIZE(scope_lat);
	const char *where = two_cpus ? "two-cpus" : "same-cpu";
	int cpu[2];

	retry.n = 0;
	retry.cap = samples + 1;	/* and the warm-up's */
	retry.ns = calloc(retry.cap, sizeof(double));
	int bad = lat_run(scope_lat, n, samples, two_cpus, cpu);
	if (bad < 0) {
		printf("Scopes, cancel latency, %s: not enough CPUs\n\n", where);
		free(retry.ns);
		return 0;
	}
	lat_csv(csv, scope_lat, n, where);
	for (int s = 0; csv && s < retry.n; s++)
		fprintf(csv, "scope_retry@%s,%.0f\n", where, retry.ns[s]);

	printf("Scopes, cancel latency, %s: main on CPU %d cancels a thread blocked on an empty\n"
	       "  pipe on CPU %d; in a scope: plain read(2) inside sc_scope_enter(tok), which\n"
	       "  fails with ECANCELED; %d samples per method, interleaved; ns from just before\n"
	       "  sc_cancel(tok) to the read's return; target: p50 ratio <= 1.2x;\n"
	       "  waker: ns spent in sc_cancel itself%s\n\n", where, cpu[0], cpu[two_cpus],
	       samples, two_cpus ? "" : ", here including the woken thread's run");
	lat_table(scope_lat, n);
	printf("\n  the retry: that thread's next read(2) in the cancelled scope, as a library's\n"
	       "  loop would make it; ns from its start to its ECANCELED (sticky: the scope\n"
	       "  service re-signals every ~1 ms); target p99 <= 2 ms\n\n");
	retry_table();
	if (bad)
		printf("\n  %d samples dropped: the call or its retry did not return as expected\n",
		       bad);
	printf("\n");
	free(retry.ns);
	return bad;
}

int bench_scopes(bool quick, FILE *csv)
{
	int bad = 0;

	scope_pairs(quick ? 50 : 200, 200000);
	scope_fast_path(quick ? 30 : 50, quick ? 10000 : 50000);
	if (!SCOPES_END_PLAIN_CALLS) {
		printf("Scopes, cancel latency: n/a (in this build scopes end only syscancel"
		       " calls)\n\n");
		return 0;
	}
	bad += scope_latency(quick ? 300 : 3000, csv, false);
	bad += scope_latency(quick ? 300 : 3000, csv, true);
	return bad;
}
