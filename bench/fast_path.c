/*
 * Fast path: ns per uncancelled 1-byte read from a pipe that is never empty
 * (filled before each timed batch, only the reads are timed), raw read(2)
 * against sc_read, interleaved in rounds; median of the rounds.  A deadline
 * that does not fire should cost what a plain call costs: the rows with one
 * show how near they come, on both backends.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

static sc_token live_tok, deadline_tok;

static long read_libc(int fd, char *c) { return read(fd, c, 1); }
static long read_raw(int fd, char *c) { return syscall(SYS_read, fd, c, 1); }

static long sc_value(sc_result r)
{
	return r.status == SC_OK ? r.value : -1;
}
static long read_sc_null(int fd, char *c) { return sc_value(sc_read(NULL, fd, c, 1)); }
static long read_sc_tok(int fd, char *c) { return sc_value(sc_read(&live_tok, fd, c, 1)); }
static long read_sc_deadline(int fd, char *c)
{
	return sc_value(sc_read(&deadline_tok, fd, c, 1));
}

/*
 * The timeout pattern: a token per request, with its own deadline.  A call
 * that a loaded machine kept from running for 100 ms times out, without
 * effect: it is counted and made again.
 */
static long fresh_timeouts;

static long read_sc_fresh(int fd, char *c)
{
	sc_result r = { .status = SC_TIMEDOUT };
	sc_token tok;

	for (int tries = 0; r.status == SC_TIMEDOUT && tries < 10; tries++) {
		if (sc_token_init(&tok, NULL) || sc_token_set_timeout(&tok, 100000000))
			return -1;
		r = sc_read(&tok, fd, c, 1);
		if (sc_token_destroy(&tok))
			return -1;
		fresh_timeouts += r.status == SC_TIMEDOUT;
	}
	return sc_value(r);
}

/* The hand-rolled way: wait for data or for a cancel eventfd, then read. */
static long read_poll_eventfd(int fd, char *c)
{
	static int cancel_efd = -1;

	if (cancel_efd < 0 && (cancel_efd = eventfd(0, EFD_CLOEXEC)) < 0)
		die("eventfd", errno);
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
			       { .fd = cancel_efd, .events = POLLIN } };
	if (poll(p, 2, -1) < 0 || p[1].revents)
		return -1;
	return read(fd, c, 1);
}

static struct fast_method fast_methods[] = {
	FAST("read(2), libc", read_libc, SC_BACKEND_DEFAULT),
	FAST("syscall(SYS_read)", read_raw, SC_BACKEND_DEFAULT),
	FAST("sc_read(NULL)", read_sc_null, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok)", read_sc_tok, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok), deadline in 1 h", read_sc_deadline, SC_BACKEND_SIGNAL),
	FAST("token per call, 100 ms timeout", read_sc_fresh, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok), io_uring", read_sc_tok, SC_BACKEND_URING),
	FAST("io_uring, deadline in 1 h", read_sc_deadline, SC_BACKEND_URING),
	FAST("io_uring, token per call, 100 ms", read_sc_fresh, SC_BACKEND_URING),
	FAST("poll(fd, eventfd) + read(2)", read_poll_eventfd, SC_BACKEND_DEFAULT),
};

void bench_fast_path(int rounds, long iters)
{
	const int n = ARRAY_SIZE(fast_methods);
	int pfd[2];
	long cap = fast_pipe(pfd);

	int err = sc_token_init(&live_tok, NULL);
	if (!err)
		err = sc_token_init(&deadline_tok, NULL);
	if (!err)
		err = sc_token_set_timeout(&deadline_tok, 3600 * SEC_NS);
	if (err)
		die("fast path setup", err);
	fast_run(fast_methods, n, rounds, iters, pfd, cap);

	printf("Fast path: uncancelled 1-byte read from a non-empty pipe\n");
	printf("  %d rounds x %ld reads per method, methods interleaved\n", rounds, iters);
	printf("  targets, ratio to read(2), libc: sc_read(NULL) and sc_read(tok) <= 1.03x,\n");
	printf("  deadline in 1 h <= 1.15x, token per call with a 100 ms timeout <= 1.25x\n\n");
	fast_table(fast_methods, n, rounds);
	if (fresh_timeouts)
		printf("\n  %ld calls of a token per call timed out (the machine kept them from running\n"
		       "  for 100 ms) and were made again\n", fresh_timeouts);
	printf("\n");
	sc_token_destroy(&live_tok);
	sc_token_destroy(&deadline_tok);
	close(pfd[0]);
	close(pfd[1]);
}
