/*
 * Deadline lateness: N threads, each blocked in sc_read on its own empty
 * pipe under a token of its own whose deadline no other thread shares, the
 * deadlines spread over 200 ms..1 s after the round starts.  Lateness: the
 * return less the deadline.  The deadline service sleeps until the earliest
 * deadline in flight and signals that call; the floor is the kernel's own
 * timer: the same threads in clock_nanosleep(TIMER_ABSTIME) to the same
 * deadlines, at the timer slack a thread has by default and at 1 ns (the
 * service's own).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define FIRST_NS (200 * MS_NS)	/* the earliest deadline, from the round's start */
#define SPREAD_NS (800 * MS_NS)	/* the deadlines spread over this much after it */
#define SETTLED_NS MS_NS	/* a call started later than this before its deadline: left out */

struct late_pool;

struct late_thread {
	struct late_pool *pool;
	pthread_t thread;
	int fd;			/* an empty pipe: only the deadline ends the read */
	sc_token tok;
	int64_t offset;		/* its deadline from the round's start, every round */
	int64_t deadline, t0, t1;	/* this round's deadline, the call's start and return */
	bool ok;		/* the call returned what the method expects */
};

struct late_method {
	const char *name, *id;
	bool (*block)(struct late_thread *t);	/* the call, which takes t->t1 */
	int count;		/* samples kept */
	int early;		/* of them, returns before the deadline */
	int unsettled;		/* calls started too near their deadline: left out */
	double *ns;		/* lateness of each sample */
};

struct late_pool {
	int n;
	struct late_thread *t;
	const struct late_method *m;	/* NULL: the threads exit */
	int64_t start;			/* the round's; the deadlines count from it */
	unsigned ready;			/* threads started; a futex */
	unsigned go;			/* round number; a futex */
	unsigned done;			/* threads back in this round; a futex */
};

/* slack 0: the thread's default timer slack */
static bool sleep_to_deadline(struct late_thread *t, unsigned long slack)
{
	const struct timespec ts = { t->deadline / SEC_NS, t->deadline % SEC_NS };
	int err;

	prctl(PR_SET_TIMERSLACK, slack, 0UL, 0UL, 0UL);
	while ((err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
		;
	t->t1 = sc_now_ns();
	return !err;
}

static bool block_sleep(struct late_thread *t) { return sleep_to_deadline(t, 0); }
static bool block_sleep_1ns(struct late_thread *t) { return sleep_to_deadline(t, 1); }

static bool block_sc_read_deadline(struct late_thread *t)
{
	char b;
	int err = sc_token_init(&t->tok, NULL);

	if (!err)
		err = sc_token_set_deadline(&t->tok, t->deadline);
	if (err)
		return false;
	sc_result r = sc_read(&t->tok, t->fd, &b, 1);
	t->t1 = sc_now_ns();
	return !sc_token_destroy(&t->tok) && r.status == SC_TIMEDOUT && r.error == ETIMEDOUT;
}

#define LATE(name_, id_, block_) { .name = name_, .id = id_, .block = block_ }

static struct late_method late_methods[] = {
	LATE("clock_nanosleep, default slack", "nanosleep", block_sleep),
	LATE("clock_nanosleep, 1 ns slack", "nanosleep_1ns", block_sleep_1ns),
	LATE("sc_read(tok), deadline, signal", "sc_read_deadline", block_sc_read_deadline),
};

static void *late_worker(void *arg)
{
	struct late_thread *t = arg;
	struct late_pool *p = t->pool;

	if (__atomic_add_fetch(&p->ready, 1, __ATOMIC_ACQ_REL) == (unsigned)p->n)
		futex(&p->ready, FUTEX_WAKE_PRIVATE, 1, NULL);
	for (unsigned seq = 1, go;; seq++) {
		while ((go = __atomic_load_n(&p->go, __ATOMIC_ACQUIRE)) != seq)
			futex(&p->go, FUTEX_WAIT_PRIVATE, go, NULL);
		const struct late_method *m = p->m;
		if (!m)
			return NULL;
		t->deadline = p->start + t->offset;
		t->t0 = sc_now_ns();
		t->ok = m->block(t);
		if (__atomic_add_fetch(&p->done, 1, __ATOMIC_ACQ_REL) == (unsigned)p->n)
			futex(&p->done, FUTEX_WAKE_PRIVATE, 1, NULL);
	}
}

/* Distinct deadlines, spread evenly, in an order unrelated to the threads' start. */
static void late_offsets(struct late_pool *p)
{
	uint64_t x = 88172645463325252ULL;	/* xorshift64, a fixed seed */

	for (int i = 0; i < p->n; i++)
		p->t[i].offset = FIRST_NS + SPREAD_NS * i / p->n;
	for (int i = p->n - 1; i > 0; i--) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int j = (int)(x % (uint64_t)(i + 1));
		int64_t o = p->t[i].offset;
		p->t[i].offset = p->t[j].offset;
		p->t[j].offset = o;
	}
}

static void late_start(struct late_pool *p, int n)
{
	pthread_attr_t attr;

	*p = (struct late_pool){ .n = n, .t = calloc(n, sizeof(*p->t)) };
	if (!p->t)
		die("calloc", ENOMEM);
	late_offsets(p);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SMALL_STACK);
	for (int i = 0; i < n; i++) {
		struct late_thread *t = &p->t[i];
		t->pool = p;
		t->fd = lone_pipe();
		if (t->fd < 0)
			die("pipe", errno);
		int err = pthread_create(&t->thread, &attr, late_worker, t);
		if (err)
			die("pthread_create", err);
	}
	pthread_attr_destroy(&attr);
	wait_count(&p->ready, n, "deadline lateness: start");
}

static void late_go(struct late_pool *p, const struct late_method *m, unsigned seq)
{
	p->m = m;
	__atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
	p->start = sc_now_ns();
	__atomic_store_n(&p->go, seq, __ATOMIC_RELEASE);
	futex(&p->go, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

static void late_stop(struct late_pool *p, unsigned seq)
{
	late_go(p, NULL, seq);
	for (int i = 0; i < p->n; i++) {
		pthread_join(p->t[i].thread, NULL);
		close(p->t[i].fd);
	}
	free(p->t);
}

/* One round of m: a sample per thread; returns the calls that misbehaved. */
static int late_round(struct late_pool *p, struct late_method *m, unsigned seq, FILE *csv)
{
	int bad = 0;

	late_go(p, m, seq);
	wait_count(&p->done, p->n, m->name);
	for (int i = 0; i < p->n; i++) {
		const struct late_thread *t = &p->t[i];
		if (!t->ok) {
			bad++;
			continue;
		}
		if (t->t0 > t->deadline - SETTLED_NS) {
			m->unsettled++;
			continue;
		}
		int64_t late = t->t1 - t->deadline;
		m->early += late < 0;
		m->ns[m->count++] = (double)late;
		if (csv)
			fprintf(csv, "lateness-%d@%s,%lld\n", p->n, m->id, (long long)late);
	}
	if (bad)
		fprintf(stderr, "syscancel-bench: deadline lateness of %d, %s: round %u: %d calls"
			" returned what they should not\n", p->n, m->name, seq, bad);
	return bad;
}

static void late_row(struct late_method *m, double base)
{
	if (!m->count) {
		printf("  %-32s %7s\n", m->name, "no samples");
		return;
	}
	double p50 = percentile(m->ns, m->count, 50);	/* sorts */
	printf("  %-32s %7d %8.1f %8.1f %8.1f %8.1f %5d %8.2fx\n", m->name, m->count,
	       p50 / 1000, percentile(m->ns, m->count, 90) / 1000,
	       percentile(m->ns, m->count, 99) / 1000, m->ns[m->count - 1] / 1000, m->early,
	       p50 / base);
}

static void late_table(int threads, int rounds)
{
	const int nm = ARRAY_SIZE(late_methods);
	int unsettled = 0;

	printf("Deadline lateness: %d threads, each blocked reading its own empty pipe until a\n"
	       "  deadline of its own, the deadlines spread evenly over 200 ms..1 s after the\n"
	       "  round's start; lateness: us from the deadline to the return; %d round%s per\n"
	       "  method, methods interleaved, a sample per thread and round; early: returns\n"
	       "  before the deadline; floor: the same threads in clock_nanosleep(TIMER_ABSTIME)\n"
	       "  to the same deadlines, at the default timer slack (%d us) and at 1 ns (the\n"
	       "  deadline service's); ratio: p50 to the first row's\n\n", threads, rounds,
	       rounds == 1 ? "" : "s", prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL) / 1000);
	printf("  %-32s %7s %8s %8s %8s %8s %5s %9s\n", "method", "samples", "p50 us", "p90 us",
	       "p99 us", "max us", "early", "p50 ratio");
	double base = late_methods[0].count ? percentile(late_methods[0].ns,
							 late_methods[0].count, 50) : 1;
	for (int k = 0; k < nm; k++) {
		late_row(&late_methods[k], base);
		unsettled += late_methods[k].unsettled;
		free(late_methods[k].ns);
	}
	printf("  %-32s %7s %8s %8s %8s %8s %5s\n", "targets for sc_read", "", "<= 100", "",
	       "<= 1000", "", "0");
	if (unsettled)
		printf("\n  %d calls left out: they started less than 1 ms before their deadline\n",
		       unsettled);
}

int bench_lateness(int threads, int rounds, FILE *csv)
{
	const int nm = ARRAY_SIZE(late_methods);
	struct late_pool p;
	unsigned seq = 0;
	int bad = 0;

	if (!fd_room(threads)) {
		printf("Deadline lateness: n/a (RLIMIT_NOFILE too low for %d pipes)\n\n", threads);
		return 0;
	}
	late_start(&p, threads);
	for (int k = 0; k < nm; k++) {
		late_methods[k].count = late_methods[k].early = late_methods[k].unsettled = 0;
		late_methods[k].ns = calloc((size_t)threads * rounds, sizeof(double));
		if (!late_methods[k].ns)
			die("calloc", ENOMEM);
	}
	for (int r = 0; r < rounds; r++)
		for (int j = 0; j < nm; j++)
			bad += late_round(&p, &late_methods[(r + j) % nm], ++seq, csv);
	late_stop(&p, ++seq);

	late_table(threads, rounds);
	if (bad)
		printf("\n  %d calls dropped: they did not return as expected\n", bad);
	printf("\n");
	return bad;
}
