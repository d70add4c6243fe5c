/*
 * Condition variables: two threads pass a turn back and forth under one
 * mutex, each waiting for its turn on a condition variable and signalling
 * the other's.  ns per round trip (two waits, two signals), pthread_cond
 * against sc_cond without a token, under a live token, and under a token
 * with a deadline that does not fire; ratio to pthread_cond in the same run.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <stdlib.h>

enum cond_kind { PTHREAD, SC_NULL, SC_TOKEN, SC_DEADLINE, KINDS };

static const struct {
	const char *name, *id;
} kinds[KINDS] = {
	[PTHREAD] = { "pthread_cond_wait + signal", "pthread_cond" },
	[SC_NULL] = { "sc_cond_wait, NULL token", "sc_cond_null" },
	[SC_TOKEN] = { "sc_cond_wait, live token", "sc_cond_token" },
	[SC_DEADLINE] = { "sc_cond_wait, token with a deadline", "sc_cond_deadline" },
};

struct pingpong {
	enum cond_kind kind;
	pthread_mutex_t lock;
	pthread_cond_t pc;
	sc_cond sc;
	sc_token tok;
	long turn, iters;
	bool ok;
};

/* With the lock held: wait until the turn is t. */
static bool wait_turn(struct pingpong *p, long t)
{
	while (p->turn != t) {
		if (p->kind == PTHREAD) {
			pthread_cond_wait(&p->pc, &p->lock);
			continue;
		}
		sc_result r = sc_cond_wait(p->kind == SC_NULL ? NULL : &p->tok, &p->sc, &p->lock);
		if (r.status != SC_OK)
			return false;
	}
	return true;
}

static void pass_turn(struct pingpong *p)
{
	p->turn++;
	if (p->kind == PTHREAD)
		pthread_cond_signal(&p->pc);
	else
		sc_cond_signal(&p->sc);
}

static void *partner(void *arg)
{
	struct pingpong *p = arg;

	pthread_mutex_lock(&p->lock);
	for (long i = 0; i < p->iters && (p->ok = wait_turn(p, 2 * i + 1)); i++)
		pass_turn(p);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ns per round trip, -1 if a wait failed. */
static double round_trips(enum cond_kind kind, long iters)
{
	struct pingpong p = { .kind = kind, .lock = PTHREAD_MUTEX_INITIALIZER,
			      .pc = PTHREAD_COND_INITIALIZER, .iters = iters };
	pthread_t t;
	bool ok = true;
	int err;

	if ((err = sc_cond_init(&p.sc)) || (err = sc_token_init(&p.tok, NULL)))
		die("sc_cond_init", err);
	if (kind == SC_DEADLINE && (err = sc_token_set_timeout(&p.tok, 3600 * SEC_NS)))
		die("sc_token_set_timeout", err);
	if ((err = pthread_create(&t, NULL, partner, &p)))
		die("pthread_create", err);
	pthread_mutex_lock(&p.lock);
	int64_t t0 = sc_now_ns();
	for (long i = 0; i < iters && ok; i++) {
		pass_turn(&p);
		ok = wait_turn(&p, 2 * i + 2);
	}
	int64_t t1 = sc_now_ns();
	pthread_mutex_unlock(&p.lock);
	pthread_join(t, NULL);
	ok &= p.ok;
	if (sc_cond_destroy(&p.sc) || sc_token_destroy(&p.tok))
		ok = false;
	pthread_cond_destroy(&p.pc);
	return ok ? (double)(t1 - t0) / iters : -1;
}

int bench_cond(bool quick, FILE *csv)
{
	int rounds = quick ? 5 : 11, bad = 0;
	long iters = quick ? 2000 : 20000;
	double *ns[KINDS];
	int count[KINDS] = { 0 };

	printf("Condition variables: two threads pass a turn back and forth, each waiting\n");
	printf("  for it on a condition variable under one mutex, where the scheduler puts\n");
	printf("  them; ns per round trip (two waits, two signals), median of %d rounds of\n",
	       rounds);
	printf("  %ld; ratio to pthread_cond in the same run\n\n", iters);
	printf("  %-36s %10s %10s %9s\n", "what", "p50 ns", "min ns", "p50 ratio");
	for (int k = 0; k < KINDS; k++)
		if (!(ns[k] = calloc(rounds, sizeof(double))))
			die("calloc", ENOMEM);
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < KINDS; k++) {
			/* every other round backwards, so no kind always runs first */
			int kind = r & 1 ? KINDS - 1 - k : k;
			double v = round_trips(kind, iters);
			if (v < 0) {
				bad++;
				continue;
			}
			ns[kind][count[kind]++] = v;
			if (csv)
				fprintf(csv, "cond@%s,%.1f\n", kinds[kind].id, v);
		}
	}
	double base = count[PTHREAD] ? percentile(ns[PTHREAD], count[PTHREAD], 50) : 1;
	for (int k = 0; k < KINDS; k++) {
		if (!count[k]) {
			printf("  %-36s  no samples\n", kinds[k].name);
			continue;
		}
		double p50 = percentile(ns[k], count[k], 50);
		printf("  %-36s %10.0f %10.0f %8.2fx\n", kinds[k].name, p50, ns[k][0], p50 / base);
	}
	for (int k = 0; k < KINDS; k++)
		free(ns[k]);
	if (bad)
		printf("\n  %d rounds dropped: a wait did not return SC_OK\n", bad);
	printf("\n");
	return bad;
}
