/*
 * Destroy: N threads blocked in sc_read, each under its own child of one
 * root, ended by one sc_cancel(root) and joined; then main destroys the N
 * child tokens.  A token that one thread used is looked for in that
 * thread's slot alone, so the N destroys should cost about what destroying
 * N tokens that no call used costs (the floor, the same array of children
 * of a root).  The cancel and the joins are timed too, for scale.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <unistd.h>

struct destroy_thread {
	pthread_t thread;
	pid_t tid;
	int fd;			/* an empty pipe: only the cancel ends the read */
	sc_token *tok;
	unsigned *entered, *done;	/* the threads about to block, back; futexes */
	int n;
	bool ok;		/* the call was cancelled */
};

enum { UNUSED, USED, CANCEL_JOIN, ROWS };

struct destroy_row {
	const char *name, *id;
	int count;
	double *ns;		/* each round's total */
};

static struct destroy_row destroy_rows[ROWS] = {
	[UNUSED] = { .name = "destroy, tokens no call used", .id = "destroy_unused" },
	[USED] = { .name = "destroy, after cancel and join", .id = "destroy_used" },
	[CANCEL_JOIN] = { .name = "sc_cancel(root) + N joins", .id = "cancel_join" },
};

static void *destroy_worker(void *arg)
{
	struct destroy_thread *t = arg;

	__atomic_store_n(&t->tid, gettid(), __ATOMIC_RELEASE);
	if (__atomic_add_fetch(t->entered, 1, __ATOMIC_ACQ_REL) == (unsigned)t->n)
		futex(t->entered, FUTEX_WAKE_PRIVATE, 1, NULL);
	t->ok = sc_read_cancelled(t->tok, t->fd);
	__atomic_add_fetch(t->done, 1, __ATOMIC_ACQ_REL);
	return NULL;
}

static void init_children(sc_token *root, sc_token *tok, int n)
{
	int err = sc_token_init(root, NULL);

	for (int i = 0; i < n && !err; i++)
		err = sc_token_init(&tok[i], root);
	if (err)
		die("sc_token_init", err);
}

/* ns for destroying tok[0..n-1], then their root; -1 if one of them was refused. */
static double destroy_children(sc_token *root, sc_token *tok, int n)
{
	int err = 0;
	int64_t t0 = sc_now_ns();

	for (int i = 0; i < n; i++)
		err |= sc_token_destroy(&tok[i]);
	int64_t t1 = sc_now_ns();
	return err || sc_token_destroy(root) ? -1 : (double)(t1 - t0);
}

/* The floor: children of a root that no call used. */
static double destroy_unused(sc_token *tok, int n)
{
	sc_token root;

	init_children(&root, tok, n);
	return destroy_children(&root, tok, n);
}

/*
 * n threads blocked under children of one root, cancelled and joined: the ns
 * of that in *cancel_ns; returns the ns of destroying the children, -1 if a
 * call or a destroy misbehaved.
 */
static double destroy_used(struct destroy_thread *t, sc_token *tok, int n, double *cancel_ns)
{
	unsigned entered = 0, done = 0;
	pthread_attr_t attr;
	sc_token root;
	bool ok = true;

	init_children(&root, tok, n);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SMALL_STACK);
	for (int i = 0; i < n; i++) {
		t[i].tid = 0;
		t[i].tok = &tok[i];
		t[i].entered = &entered;
		t[i].done = &done;
		t[i].n = n;
		int err = pthread_create(&t[i].thread, &attr, destroy_worker, &t[i]);
		if (err)
			die("pthread_create", err);
	}
	pthread_attr_destroy(&attr);
	wait_count(&entered, n, "destroy: start");
	for (int i = 0; i < n && ok; i++)
		ok = wait_sleeping(t[i].tid, &done, 0, "destroy");
	int64_t t0 = sc_now_ns();
	sc_cancel(&root);
	for (int i = 0; i < n; i++)
		pthread_join(t[i].thread, NULL);
	*cancel_ns = sc_now_ns() - t0;
	for (int i = 0; i < n; i++)
		ok &= t[i].ok;
	double ns = destroy_children(&root, tok, n);
	return ok ? ns : -1;
}

/* A few rounds: each starts and joins N threads. */
static int destroy_rounds(int n, bool quick)
{
	int r = (quick ? 5000 : 30000) / n;
	int lo = 3, hi = quick ? 5 : 10;

	return r < lo ? lo : r > hi ? hi : r;
}

static void destroy_table(int n)
{
	double base = destroy_rows[UNUSED].count ?
		percentile(destroy_rows[UNUSED].ns, destroy_rows[UNUSED].count, 50) : 1;

	for (int k = 0; k < ROWS; k++) {
		struct destroy_row *d = &destroy_rows[k];
		if (!d->count) {
			printf("  %-32s %7d  no samples\n", d->name, n);
			continue;
		}
		double p50 = percentile(d->ns, d->count, 50);
		printf("  %-32s %7d %7d %10.3f %10.3f %10.0f ", d->name, n, d->count, p50 / 1e6,
		       d->ns[0] / 1e6, p50 / n);
		if (k == CANCEL_JOIN)
			printf("%9s\n", "-");
		else
			printf("%8.2fx\n", p50 / base);
	}
}

static int destroy_size(int n, int rounds, FILE *csv)
{
	int bad = 0;

	if (!fd_room(n)) {
		printf("  %-32s %7d  n/a (RLIMIT_NOFILE too low for %d pipes)\n", "all", n, n);
		return 0;
	}
	struct destroy_thread *t = calloc(n, sizeof(*t));
	sc_token *tok = calloc(n, sizeof(*tok));
	if (!t || !tok)
		die("calloc", ENOMEM);
	for (int i = 0; i < n; i++)
		if ((t[i].fd = lone_pipe()) < 0)
			die("pipe", errno);
	for (int k = 0; k < ROWS; k++) {
		destroy_rows[k].count = 0;
		destroy_rows[k].ns = calloc(rounds, sizeof(double));
	}
	destroy_unused(tok, n);	/* warm-up */
	for (int r = 0; r < rounds; r++) {
		double unused = -1, used, cancel;
		if (r & 1)	/* the floor first every other round */
			unused = destroy_unused(tok, n);
		used = destroy_used(t, tok, n, &cancel);
		if (!(r & 1))
			unused = destroy_unused(tok, n);
		if (used < 0 || unused < 0) {
			fprintf(stderr, "syscancel-bench: destroy of %d: round %d: %s\n", n, r,
				used < 0 ? "a call or a destroy misbehaved" : "a destroy refused");
			bad++;
			continue;
		}
		destroy_rows[UNUSED].ns[destroy_rows[UNUSED].count++] = unused;
		destroy_rows[USED].ns[destroy_rows[USED].count++] = used;
		destroy_rows[CANCEL_JOIN].ns[destroy_rows[CANCEL_JOIN].count++] = cancel;
	}
	for (int k = 0; k < ROWS; k++)
		for (int s = 0; csv && s < destroy_rows[k].count; s++)
			fprintf(csv, "destroy-%d@%s,%.0f\n", n, destroy_rows[k].id,
				destroy_rows[k].ns[s]);
	destroy_table(n);
	for (int k = 0; k < ROWS; k++)
		free(destroy_rows[k].ns);
	for (int i = 0; i < n; i++)
		close(t[i].fd);
	free(t);
	free(tok);
	return bad;
}

int bench_destroy(const int *sizes, int n_sizes, bool quick, FILE *csv)
{
	int bad = 0;

	printf("Destroy: N threads blocked in sc_read, each under its own child of one root,\n");
	printf("  ended by one sc_cancel(root) and joined; then main destroys the N children;\n");
	printf("  floor: destroying N children of a root that no call used; ms for all N, median\n");
	printf("  of the rounds, and ns per token; ratio to the floor at the same N; the cancel\n");
	printf("  and the joins, for scale; target: 10,000 destroys after cancel and join\n");
	printf("  in <= 10 ms\n\n");
	printf("  %-32s %7s %7s %10s %10s %10s %9s\n", "what", "tokens", "rounds", "p50 ms",
	       "min ms", "ns/token", "p50 ratio");
	for (int i = 0; i < n_sizes; i++) {
		if (i)
			printf("\n");
		bad += destroy_size(sizes[i], destroy_rounds(sizes[i], quick), csv);
	}
	if (bad)
		printf("\n  %d rounds dropped: a call or a destroy did not return as expected\n",
		       bad);
	printf("\n");
	return bad;
}
