/*
 * Wake-up latency: a thread blocks on an empty pipe; main takes t0 and wakes
 * it (a byte, an eventfd, a signal, sc_cancel); the thread takes t1 as soon
 * as its call returns.  Methods are interleaved sample by sample, and each
 * sample starts only once the thread sleeps in the kernel.
 *
 * Run twice: both threads pinned to one CPU (no IPI, no idle exit: the software
 * path alone), then to two CPUs (the usual case, where waking a halted CPU can
 * dominate, above all under a hypervisor).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

static bool block_read(struct lat_ctx *c)
{
	char b;
	return read(c->pipe[0], &b, 1) == 1;
}

static bool block_read_eintr(struct lat_ctx *c) { return read_eintr(c->pipe[0]); }

static bool block_poll(struct lat_ctx *c)
{
	struct pollfd p[2] = { { .fd = c->pipe[0], .events = POLLIN },
			       { .fd = c->efd, .events = POLLIN } };
	eventfd_t v;
	return poll(p, 2, -1) == 1 && eventfd_read(c->efd, &v) == 0;
}

static bool block_sc_read_data(struct lat_ctx *c)
{
	char b;
	sc_result r = sc_read(&c->tok, c->pipe[0], &b, 1);
	return r.status == SC_OK && r.value == 1;
}

static void wake_write(struct lat_ctx *c)
{
	if (write(c->pipe[1], "x", 1) != 1)
		die("write", errno);
}

static void *cancellable_read(void *arg)
{
	struct lat_ctx *c = arg;
	char b;

	__atomic_store_n(&c->sub_tid, gettid(), __ATOMIC_RELEASE);
	if (read(c->pipe[0], &b, 1) < 0)	/* a cancellation point */
		return NULL;
	return arg;
}

/* pthread_cancel's way: the read runs in a thread of its own, which the cancel ends. */
static bool block_pthread_read(struct lat_ctx *c)
{
	void *ret;

	c->sub_tid = 0;
	if (pthread_create(&c->sub, NULL, cancellable_read, c))
		return false;
	while (!__atomic_load_n(&c->sub_tid, __ATOMIC_ACQUIRE) || thread_state(c->sub_tid) != 'S')
		sched_yield();
	return !pthread_join(c->sub, &ret) && ret == PTHREAD_CANCELED;
}

static void wake_pthread_cancel(struct lat_ctx *c) { pthread_cancel(c->sub); }
static void wake_eventfd(struct lat_ctx *c) { eventfd_write(c->efd, 1); }
static void wake_tgkill(struct lat_ctx *c) { tgkill(getpid(), c->tid, SIGUSR1); }

static struct lat_method lat_methods[] = {
	LAT("read(2) woken by write(2)", "read_write", block_read, wake_write,
	    SC_BACKEND_DEFAULT),
	LAT("poll(pipe, eventfd) by eventfd", "poll_eventfd", block_poll, wake_eventfd,
	    SC_BACKEND_DEFAULT),
	LAT("read(2) EINTR by tgkill(2)", "read_tgkill", block_read_eintr, wake_tgkill,
	    SC_BACKEND_DEFAULT),
	LAT("sc_read(tok) woken by write(2)", "sc_read_write", block_sc_read_data, wake_write,
	    SC_BACKEND_SIGNAL),
	LAT("sc_read by sc_cancel, signal", "sc_cancel_signal", block_sc_read, wake_cancel,
	    SC_BACKEND_SIGNAL),
	LAT("sc_read by sc_cancel, io_uring", "sc_cancel_uring", block_sc_read, wake_cancel,
	    SC_BACKEND_URING),
	LAT("read(2) by pthread_cancel+join", "pthread_cancel", block_pthread_read,
	    wake_pthread_cancel, SC_BACKEND_DEFAULT),
};

/* Latency with main and the worker on one CPU or on two; returns the samples dropped. */
int bench_latency(int samples, FILE *csv, bool two_cpus)
{
	const int n = ARRAY_SIZE(lat_methods);
	const char *where = two_cpus ? "two-cpus" : "same-cpu";
	int cpu[2];

	catch_sigusr1();
	int bad = lat_run(lat_methods, n, samples, two_cpus, cpu);
	if (bad < 0) {
		printf("Wake-up latency, %s: not enough CPUs\n\n", where);
		return 0;
	}
	lat_csv(csv, lat_methods, n, where);

	printf("Wake-up latency, %s: main on CPU %d wakes a thread blocked on an empty pipe"
	       " on CPU %d\n", where, cpu[0], cpu[two_cpus]);
	printf("  %d samples per method, interleaved; ns from the wake call to the return;\n",
	       samples);
	printf("  waker: ns spent in the wake call itself (write, tgkill, sc_cancel, ...)%s\n\n",
	       two_cpus ? "" : ",\n  here including the woken thread's run, which preempts it");
	lat_table(lat_methods, n);
	if (bad)
		printf("\n  %d samples dropped: the call did not return as expected\n", bad);
	printf("\n");
	return bad;
}
