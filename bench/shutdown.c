/*
 * Shutdown: N threads, each blocked on its own empty pipe, released at once:
 * by one sc_cancel of the root token above theirs, or by N tgkill(2) to plain
 * read(2)s (the floor).  ns from the release to the last thread's return.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

struct shut_pool;

struct shut_worker {
	struct shut_pool *pool;
	pthread_t thread;
	pid_t tid;
	int fd;			/* an empty pipe: the read blocks until released */
	sc_token tok;		/* its own child of the pool's root, for one round */
	bool ok;		/* the call returned what the method expects */
	int64_t t1;		/* when it returned */
};

struct shut_method {
	const char *name, *id;
	bool (*block)(struct shut_worker *w);	/* worker: the blocking call */
	void (*release)(struct shut_pool *p);	/* main: make every worker return */
	sc_backend backend;
	int max_threads;	/* 0: any number */
	double *ns;		/* release time of each round */
	double *call_ns;	/* how long the release call itself took */
};

struct shut_pool {
	int n;
	struct shut_worker *w;
	sc_token root;
	const struct shut_method *m;	/* NULL: the workers exit */
	unsigned go;			/* round number; a futex */
	unsigned entered;		/* workers about to block in this round */
	unsigned done;			/* workers back in this round; a futex */
};

static bool shut_read_eintr(struct shut_worker *w) { return read_eintr(w->fd); }
static bool shut_sc_read(struct shut_worker *w) { return sc_read_cancelled(&w->tok, w->fd); }

static void release_tgkill(struct shut_pool *p)
{
	const pid_t pid = getpid();

	for (int i = 0; i < p->n; i++)
		tgkill(pid, p->w[i].tid, SIGUSR1);
}

static void release_cancel(struct shut_pool *p) { sc_cancel(&p->root); }

#define SHUT(name_, id_, block_, release_, backend_, max_) { .name = name_, .id = id_, \
	.block = block_, .release = release_, .backend = backend_, .max_threads = max_ }

static struct shut_method shut_methods[] = {
	SHUT("tgkill(2) x N, read(2) EINTR", "tgkill", shut_read_eintr, release_tgkill,
	     SC_BACKEND_DEFAULT, 0),
	SHUT("sc_cancel(root), signal", "sc_cancel_signal", shut_sc_read, release_cancel,
	     SC_BACKEND_SIGNAL, 0),
	SHUT("sc_cancel(root), io_uring", "sc_cancel_uring", shut_sc_read, release_cancel,
	     SC_BACKEND_URING, 1000),
};

static void *shut_worker(void *arg)
{
	struct shut_worker *w = arg;
	struct shut_pool *p = w->pool;

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	for (unsigned seq = 1, go;; seq++) {
		while ((go = __atomic_load_n(&p->go, __ATOMIC_ACQUIRE)) != seq)
			futex(&p->go, FUTEX_WAIT_PRIVATE, go, NULL);
		const struct shut_method *m = p->m;
		if (!m)
			return NULL;
		use_backend(m->backend);
		int err = sc_token_init(&w->tok, &p->root);
		__atomic_fetch_add(&p->entered, 1, __ATOMIC_RELEASE);
		bool ok = m->block(w);
		w->t1 = sc_now_ns();
		/* by its only user, so without a walk of the registry */
		w->ok = ok && !err && !sc_token_destroy(&w->tok);
		if (__atomic_add_fetch(&p->done, 1, __ATOMIC_ACQ_REL) == (unsigned)p->n)
			futex(&p->done, FUTEX_WAKE_PRIVATE, 1, NULL);
	}
}

/* Starts round seq of m (NULL: the end); returns once every worker has left the futex. */
static void shut_go(struct shut_pool *p, const struct shut_method *m, unsigned seq)
{
	p->m = m;
	__atomic_store_n(&p->entered, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->go, seq, __ATOMIC_RELEASE);
	futex(&p->go, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
	while (m && __atomic_load_n(&p->entered, __ATOMIC_ACQUIRE) != (unsigned)p->n)
		sched_yield();
}

/*
 * One round of m: ns from the release to the last worker's return (-1 if a
 * call misbehaved), and the ns of the release call.
 */
static double shut_round(struct shut_pool *p, const struct shut_method *m, unsigned seq,
			 double *call_ns)
{
	int err = sc_token_init(&p->root, NULL);
	bool ok = true;

	if (err)
		die("sc_token_init", err);
	shut_go(p, m, seq);
	for (int i = 0; i < p->n && ok; i++)
		ok = wait_sleeping(p->w[i].tid, &p->done, 0, m->name);
	int64_t t0 = sc_now_ns(), last = t0;
	m->release(p);
	*call_ns = sc_now_ns() - t0;
	wait_count(&p->done, p->n, m->name);
	for (int i = 0; i < p->n; i++) {
		ok &= p->w[i].ok;
		if (p->w[i].t1 > last)
			last = p->w[i].t1;
	}
	if (sc_token_destroy(&p->root) || !ok) {
		fprintf(stderr, "syscancel-bench: shutdown of %d, %s: round %u: %s\n", p->n,
			m->name, seq, ok ? "root token busy after return" : "unexpected result");
		return -1;
	}
	return last - t0;
}

static void shut_start(struct shut_pool *p, int n)
{
	pthread_attr_t attr;

	*p = (struct shut_pool){ .n = n, .w = calloc(n, sizeof(*p->w)) };
	if (!p->w)
		die("calloc", ENOMEM);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SMALL_STACK);
	for (int i = 0; i < n; i++) {
		struct shut_worker *w = &p->w[i];
		w->pool = p;
		w->fd = lone_pipe();
		if (w->fd < 0)
			die("pipe", errno);
		int err = pthread_create(&w->thread, &attr, shut_worker, w);
		if (err)
			die("pthread_create", err);
	}
	pthread_attr_destroy(&attr);
	for (int i = 0; i < n; i++)
		while (!__atomic_load_n(&p->w[i].tid, __ATOMIC_ACQUIRE))
			sched_yield();
}

static void shut_stop(struct shut_pool *p, unsigned seq)
{
	shut_go(p, NULL, seq);
	for (int i = 0; i < p->n; i++) {
		pthread_join(p->w[i].thread, NULL);
		close(p->w[i].fd);
	}
	free(p->w);
}

static bool too_many(const struct shut_method *m, int n)
{
	return m->max_threads && n > m->max_threads;
}

/* Many rounds for few threads, a few for many. */
static int shut_rounds(int n, bool quick)
{
	int r = (quick ? 2000 : 20000) / n;
	int lo = quick ? 3 : 5, hi = quick ? 50 : 200;

	return r < lo ? lo : r > hi ? hi : r;
}

/* The rows for n threads, methods interleaved round by round; returns the rounds dropped. */
static int shut_size(int n, int rounds, FILE *csv)
{
	const int nm = ARRAY_SIZE(shut_methods);
	bool usable[ARRAY_SIZE(shut_methods)];
	int count[ARRAY_SIZE(shut_methods)] = { 0 }, bad = 0;
	struct shut_pool p;
	unsigned seq = 0;
	double call;

	if (!fd_room(n)) {
		printf("  %-30s %7d  n/a (RLIMIT_NOFILE too low for %d pipes)\n", "all methods",
		       n, n);
		return 0;
	}
	shut_start(&p, n);
	for (int k = 0; k < nm; k++) {
		struct shut_method *m = &shut_methods[k];
		usable[k] = !too_many(m, n) && use_backend(m->backend);
		m->ns = calloc(rounds, sizeof(double));
		m->call_ns = calloc(rounds, sizeof(double));
		if (usable[k])
			shut_round(&p, m, ++seq, &call);	/* warm-up: slots, rings */
	}
	use_backend(SC_BACKEND_SIGNAL);
	for (int r = 0; r < rounds; r++) {
		for (int j = 0; j < nm; j++) {
			int k = (r + j) % nm;
			if (!usable[k])
				continue;
			double ns = shut_round(&p, &shut_methods[k], ++seq, &call);
			if (ns < 0) {
				bad++;
				continue;
			}
			shut_methods[k].call_ns[count[k]] = call;
			shut_methods[k].ns[count[k]++] = ns;
		}
	}
	shut_stop(&p, ++seq);

	double base = count[0] ? percentile(shut_methods[0].ns, count[0], 50) : 1;
	for (int k = 0; k < nm; k++) {
		struct shut_method *m = &shut_methods[k];
		for (int s = 0; csv && s < count[k]; s++)
			fprintf(csv, "shutdown-%d@%s,%.0f\n", n, m->id, m->ns[s]);
		if (!count[k]) {
			printf("  %-30s %7d  %s\n", m->name, n, usable[k] ? "no samples" :
			       too_many(m, n) ? "n/a (not run at this size)" :
			       "n/a (backend not available)");
		} else {
			double p50 = percentile(m->ns, count[k], 50);
			printf("  %-30s %7d %7d %10.1f %10.1f %8.2fx %10.0f %10.1f\n", m->name,
			       n, count[k], p50 / 1000, m->ns[0] / 1000, p50 / base, p50 / n,
			       percentile(m->call_ns, count[k], 50) / 1000);
		}
		free(m->ns);
		free(m->call_ns);
	}
	return bad;
}

int bench_shutdown(const int *sizes, int n_sizes, bool quick, FILE *csv)
{
	int bad = 0;

	catch_sigusr1();
	printf("Shutdown: N threads blocked reading their own empty pipes, released at once\n");
	printf("  syscancel: sc_read under children of one root, one sc_cancel(root);\n");
	printf("  floor: plain read(2), one tgkill(2) per thread, no-op handler, EINTR;\n");
	printf("  us from just before the release to the last thread's return, median of\n");
	printf("  the rounds, methods interleaved; ratio to the floor at the same N;\n");
	printf("  call: us spent in the release itself (the tgkill loop, sc_cancel)\n\n");
	printf("  %-30s %7s %7s %10s %10s %9s %10s %10s\n", "method", "threads", "rounds",
	       "p50 us", "min us", "p50 ratio", "ns/thread", "call p50");
	for (int i = 0; i < n_sizes; i++) {
		if (i)
			printf("\n");
		bad += shut_size(sizes[i], shut_rounds(sizes[i], quick), csv);
	}
	if (bad)
		printf("\n  %d rounds dropped: a call did not return as expected\n", bad);
	printf("\n");
	return bad;
}
