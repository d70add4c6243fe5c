/*
 * What introspection costs.  A program of its own: it links the library's
 * objects, so that it can build a call's inline path twice, with and
 * without the bookkeeping only snapshots read (the syscall number and its
 * first argument, stored beside the token; no clock is read per call).
 *
 * Fast path: ns per uncancelled 1-byte read of a non-empty pipe, as in
 * syscancel-bench: raw read(2), sc_read(tok), and the inline path built
 * with and without the bookkeeping, interleaved, ratios to read(2) measured
 * in the same run.  Target: the path with it <= 1.03x read(2).
 *
 * Snapshot: N threads blocked in sc_read, each on its own empty pipe; ms
 * per sc_snapshot of all of them (the first, which stamps every call's
 * start, then the steady state), and per sc_dump to /dev/null.
 * Target: 10,000 threads in calls, a snapshot <= 5 ms.
 *
 * Usage: introspect-bench [--quick]   (--quick: 1,000 threads, fewer rounds)
 */
#define _GNU_SOURCE
#include "bench.h"
#include "introspect.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static sc_token live_tok;

static long read_libc(int fd, char *c) { return read(fd, c, 1); }
static long read_sc_tok(int fd, char *c)
{
	sc_result r = sc_read(&live_tok, fd, c, 1);

	return r.status == SC_OK ? r.value : -1;
}
static long read_on(int fd, char *c) { return read_published(&live_tok, fd, c); }
static long read_off(int fd, char *c) { return read_unpublished(&live_tok, fd, c); }

static struct fast_method methods[] = {
	FAST("read(2), libc", read_libc, SC_BACKEND_DEFAULT),
	FAST("sc_read(tok)", read_sc_tok, SC_BACKEND_SIGNAL),
	FAST("inline path, with bookkeeping", read_on, SC_BACKEND_SIGNAL),
	FAST("inline path, without", read_off, SC_BACKEND_SIGNAL),
};

static void fast_path(int rounds, long iters)
{
	int pfd[2];
	long cap = fast_pipe(pfd);
	int err = sc_token_init(&live_tok, NULL);

	if (err)
		die("sc_token_init", err);
	fast_run(methods, ARRAY_SIZE(methods), rounds, iters, pfd, cap);
	printf("Fast path with and without the bookkeeping snapshots read\n");
	printf("  uncancelled 1-byte read from a non-empty pipe, %d rounds x %ld reads,\n",
	       rounds, iters);
	printf("  methods interleaved; target: with bookkeeping <= 1.03x read(2)\n\n");
	fast_table(methods, ARRAY_SIZE(methods), rounds);
	printf("\n");
	sc_token_destroy(&live_tok);
	close(pfd[0]);
	close(pfd[1]);
}

struct blocked {
	pthread_t thread;
	pid_t tid;
	int fd;
	sc_token *root;
	unsigned *entered;
	int n;
};

static void *blocked_reader(void *arg)
{
	struct blocked *b = arg;

	/* A first call takes the thread's slot: after it, the thread sleeps only in its read. */
	sc_sleep(NULL, 1);
	__atomic_store_n(&b->tid, gettid(), __ATOMIC_RELEASE);
	if (__atomic_add_fetch(b->entered, 1, __ATOMIC_ACQ_REL) == (unsigned)b->n)
		futex(b->entered, FUTEX_WAKE_PRIVATE, 1, NULL);
	if (!sc_read_cancelled(b->root, b->fd))
		die("a blocked read was not cancelled", EIO);
	return NULL;
}

/* Until every thread sleeps in its read: no snapshot has seen the calls yet. */
static void wait_blocked_all(const struct blocked *b, int n)
{
	static const unsigned done;

	for (int i = 0; i < n; i++)
		if (!wait_sleeping(__atomic_load_n(&b[i].tid, __ATOMIC_ACQUIRE), &done, 0,
				   "snapshot"))
			die("snapshot: a thread never blocked", EIO);
}

static double ms_since(int64_t t0)
{
	return (double)(sc_now_ns() - t0) / 1e6;
}

static void snapshot_rows(int n, int rounds, sc_call_info *out, int devnull)
{
	double *snap = calloc(rounds, sizeof(double)), *dump = calloc(rounds, sizeof(double));
	int64_t t0 = sc_now_ns();
	int got = sc_snapshot(out, n);
	double first = ms_since(t0);

	if (!snap || !dump)
		die("calloc", ENOMEM);
	if (got != n)
		die("snapshot: a count other than the threads blocked", EIO);
	for (int r = 0; r < rounds; r++) {
		t0 = sc_now_ns();
		got = sc_snapshot(out, n);
		snap[r] = ms_since(t0);
		if (got != n)
			die("snapshot: a count other than the threads blocked", EIO);
		t0 = sc_now_ns();
		int err = sc_dump(devnull);
		dump[r] = ms_since(t0);
		if (err)
			die("sc_dump", err);
	}
	double snap_p50 = percentile(snap, rounds, 50), dump_p50 = percentile(dump, rounds, 50);

	/* percentile() sorted the samples: [0] is the least. */
	printf("  %-34s %7d %10.3f %10s\n", "sc_snapshot, the first", n, first, "-");
	printf("  %-34s %7d %10.3f %10.3f\n", "sc_snapshot, then", n, snap_p50, snap[0]);
	printf("  %-34s %7d %10.3f %10.3f\n", "sc_dump to /dev/null", n, dump_p50, dump[0]);
	free(snap);
	free(dump);
}

static void snapshot_size(int n, int rounds, int devnull)
{
	struct blocked *b = calloc(n, sizeof(*b));
	sc_call_info *out = calloc(n, sizeof(*out));
	unsigned entered = 0;
	pthread_attr_t attr;
	sc_token root;

	if (!fd_room(n)) {
		printf("  %-34s %7d  n/a (RLIMIT_NOFILE too low for %d pipes)\n", "all", n, n);
		return;
	}
	if (!b || !out)
		die("calloc", ENOMEM);
	int err = sc_token_init(&root, NULL);
	if (err)
		die("sc_token_init", err);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SMALL_STACK);
	for (int i = 0; i < n; i++) {
		b[i] = (struct blocked){ .fd = lone_pipe(), .root = &root, .entered = &entered,
					 .n = n };
		if (b[i].fd < 0)
			die("pipe", errno);
		if ((err = pthread_create(&b[i].thread, &attr, blocked_reader, &b[i])))
			die("pthread_create", err);
	}
	pthread_attr_destroy(&attr);
	wait_count(&entered, n, "snapshot: start");
	wait_blocked_all(b, n);
	snapshot_rows(n, rounds, out, devnull);
	sc_cancel(&root);
	for (int i = 0; i < n; i++) {
		pthread_join(b[i].thread, NULL);
		close(b[i].fd);
	}
	sc_token_destroy(&root);
	free(out);
	free(b);
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && !strcmp(argv[1], "--quick");
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (argc > 2 || (argc == 2 && !quick)) {
		fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
		return 2;
	}
	if (devnull < 0)
		die("/dev/null", errno);
	fast_path(quick ? 10 : 20, quick ? 100000 : 200000);
	printf("Snapshot of N threads blocked in sc_read; target: 10,000 in <= 5 ms\n\n");
	printf("  %-34s %7s %10s %10s\n", "what", "N", "median ms", "min ms");
	snapshot_size(1000, quick ? 5 : 20, devnull);
	if (!quick)
		snapshot_size(10000, 10, devnull);
	close(devnull);
	return 0;
}
