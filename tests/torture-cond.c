/*
 * sc_cond under fire: a wake and a cancel (or a deadline) aimed at the same
 * waiter at once, round after round.  Waiter A queues first, waiter B
 * behind it; the test thread posts one item with a signal or a broadcast
 * while A's token is cancelled or reaches its deadline.  The item must be
 * taken exactly once, within HANG_NS: a cancelled A that swallowed the wake
 * leaves it behind.  A's status must be one its plan allows, and both
 * waiters must hold the (error-checking) mutex whenever their wait returns.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

enum plan { SIGNAL_CANCEL, SIGNAL_DEADLINE, BROADCAST_CANCEL };
static const char *const plan_names[] = { "cond signal", "cond deadline", "cond broadcast" };
const int torture_cond_count = 3;

#define DEADLINE_MAX_NS (40 * 1000)
#define CANCEL_DELAY_MAX_NS (20 * 1000)

struct cond_duel {
	enum plan plan;
	pthread_mutex_t m;
	sc_cond c;
	sc_token tok;		/* A's, this round */
	long round, b_go, fire, fired, stop;
	long items, over;	/* under m */
	long in[2], done[2], took[2];
	long unlock_errors;
	sc_result res;		/* A's */
	int64_t a_returned;
	struct tally t;
};

struct cond_player {
	struct cond_duel *d;
	int b;
	pthread_t thread;
};

static bool wait_round(const long *p, long r, const long *stop)
{
	while (load(p) < r && !load(stop))
		sched_yield();
	return !load(stop);
}

static void *play(void *arg)
{
	struct cond_player *p = arg;
	struct cond_duel *d = p->d;

	for (long r = 1; wait_round(p->b ? &d->b_go : &d->round, r, &d->stop); r++) {
		sc_token *tok = p->b ? NULL : &d->tok;
		sc_result res = { SC_OK, 0, 0 };

		pthread_mutex_lock(&d->m);
		store(&d->in[p->b], r);
		while (!d->items && d->over < r && res.status == SC_OK)
			res = sc_cond_wait(tok, &d->c, &d->m);
		d->took[p->b] = res.status == SC_OK && d->items;
		d->items -= d->took[p->b];
		if (pthread_mutex_unlock(&d->m))
			add(&d->unlock_errors, 1);
		if (!p->b) {
			d->res = res;
			d->a_returned = sc_now_ns();
		}
		store(&d->done[p->b], r);
	}
	return NULL;
}

static void *cancel_on_fire(void *arg)
{
	struct cond_duel *d = arg;
	uint32_t rng = 0x7f4a7c15u;

	for (long r = 1; wait_round(&d->fire, r, &d->stop); r++) {
		spin_ns(xorshift(&rng) % CANCEL_DELAY_MAX_NS);
		if (d->plan != SIGNAL_DEADLINE)
			ck_assert_int_eq(sc_cancel(&d->tok), 0);
		store(&d->fired, r);
	}
	return NULL;
}

/* Queued behind everyone else: it took m after the waiter let it go. */
static void wait_queued(struct cond_duel *d, int who, long r)
{
	wait_at_least(&d->in[who], r, "waiter %c waits in round %ld", "AB"[who], r);
	pthread_mutex_lock(&d->m);
	pthread_mutex_unlock(&d->m);
}

static long items_left(struct cond_duel *d)
{
	long n;

	pthread_mutex_lock(&d->m);
	n = d->items;
	pthread_mutex_unlock(&d->m);
	return n;
}

/* The wake comes before, around or after the cancel; sleeping lets A act on the cancel first. */
static void post_item(struct cond_duel *d, uint32_t rnd)
{
	if (rnd % 2)
		spin_ns(rnd % CANCEL_DELAY_MAX_NS);
	else
		nanosleep(&(struct timespec){ 0, rnd % (5 * CANCEL_DELAY_MAX_NS) }, NULL);
	pthread_mutex_lock(&d->m);
	d->items = 1;
	if (d->plan == BROADCAST_CANCEL)
		sc_cond_broadcast(&d->c);
	else
		sc_cond_signal(&d->c);
	pthread_mutex_unlock(&d->m);
}

static void report_hang(struct cond_duel *d, long r, const char *what)
{
	add(&d->t.hangs, 1);
	fprintf(stderr, "%s: round %ld: %s within %lld ms (A said %d)\n", plan_names[d->plan],
		r, what, HANG_NS / MS_NS, d->res.status);
}

/* Whether A returned and the item was taken in time; a hang is counted, not waited out. */
static bool settled(struct cond_duel *d, long r)
{
	int64_t end = sc_now_ns() + HANG_NS;

	while (load(&d->done[0]) < r || items_left(d)) {
		if (sc_now_ns() > end) {
			report_hang(d, r, load(&d->done[0]) < r ? "A outlived its cancel"
								: "nobody took the item");
			return false;
		}
		sched_yield();
	}
	return true;
}

/* A's status: one its plan allows, and SC_OK only with the item. */
static void judge(struct cond_duel *d, long r, int64_t deadline)
{
	struct tally *t = &d->t;
	sc_status st = d->res.status;

	if (d->took[0] + d->took[1] != 1) {
		t->errors++;
		fprintf(stderr, "%s: round %ld: the item was taken %ld times\n",
			plan_names[d->plan], r, d->took[0] + d->took[1]);
	}
	if (st == SC_OK && d->took[0])
		t->completed++;
	else if (st == SC_CANCELLED && d->plan != SIGNAL_DEADLINE)
		t->cancelled++;
	else if (st == SC_TIMEDOUT && d->plan == SIGNAL_DEADLINE)
		add(d->a_returned >= deadline ? &t->cancelled : &t->spurious, 1);
	else if (st == SC_CANCELLED || st == SC_TIMEDOUT)
		t->spurious++;
	else
		t->errors++;
}

static void end_round(struct cond_duel *d, long r)
{
	pthread_mutex_lock(&d->m);
	d->over = r;
	d->items = 0;
	sc_cond_broadcast(&d->c);
	pthread_mutex_unlock(&d->m);
	/* A hung A is released by its own deadline: the watchdog gives up on it. */
	if (load(&d->done[0]) < r)
		ck_assert_int_eq(sc_token_set_deadline(&d->tok, 0), 0);
	wait_at_least(&d->done[0], r, "round %ld: A returns", r);
	wait_at_least(&d->done[1], r, "round %ld: B returns", r);
	wait_at_least(&d->fired, r, "round %ld: the canceller is done", r);
}

static void one_round(struct cond_duel *d, long r, uint32_t *rng)
{
	int64_t deadline = SC_NO_DEADLINE;
	bool ok;

	ck_assert_int_eq(sc_token_init(&d->tok, NULL), 0);
	store(&d->round, r);
	wait_queued(d, 0, r);
	store(&d->b_go, r);
	wait_queued(d, 1, r);
	if (d->plan == SIGNAL_DEADLINE) {
		ck_assert_int_eq(sc_token_set_timeout(&d->tok, xorshift(rng) % DEADLINE_MAX_NS), 0);
		deadline = sc_token_deadline(&d->tok);
	}
	d->t.attempts++;
	store(&d->fire, r);
	post_item(d, xorshift(rng));
	ok = settled(d, r);
	end_round(d, r);
	if (ok)
		judge(d, r, deadline);
	else
		store(&d->stop, 1);
	ck_assert_int_eq(sc_token_destroy(&d->tok), 0);
}

void torture_cond(int index)
{
	static struct cond_duel d;
	struct cond_player p[2] = { { &d, 0, 0 }, { &d, 1, 0 } };
	long rounds = torture_scaled(2000);
	struct landing before = landings();
	pthread_mutexattr_t a;
	uint32_t rng = 0x2545f491u * (index + 1);
	pthread_t canceller;

	d = (struct cond_duel){ .plan = index };
	ck_assert_int_eq(pthread_mutexattr_init(&a), 0);
	ck_assert_int_eq(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK), 0);
	ck_assert_int_eq(pthread_mutex_init(&d.m, &a), 0);
	ck_assert_int_eq(sc_cond_init(&d.c), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&p[i].thread, NULL, play, &p[i]), 0);
	ck_assert_int_eq(pthread_create(&canceller, NULL, cancel_on_fire, &d), 0);
	for (long r = 1; r <= rounds && !load(&d.stop); r++)
		one_round(&d, r, &rng);
	store(&d.stop, 1);
	for (int i = 0; i < 2; i++)
		join_within(p[i].thread, 30 * SEC_NS, "cond waiter");
	join_within(canceller, 30 * SEC_NS, "cond canceller");
	d.t.errors += d.unlock_errors;
	d.t.stray_signals = (long)stray_signals();
	ck_assert_int_eq(sc_cond_destroy(&d.c), 0);
	pthread_mutex_destroy(&d.m);
	pthread_mutexattr_destroy(&a);
	tally_report(plan_names[index], &d.t, landings_since(before));
}
