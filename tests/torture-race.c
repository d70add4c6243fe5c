/*
 * Cancels aimed at every point of a call's life: before it starts, after a
 * random delay while it runs (before the kernel entry, inside the syscall,
 * after the syscall returned), and after it ended; with and without the
 * data that lets it complete.  A worker makes the calls, the test thread
 * cancels them and is the watchdog.
 */
#define _GNU_SOURCE
#include "torture-kinds.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum plan { PLAN_NONE, PLAN_BEFORE, PLAN_DURING, PLAN_AFTER, PLAN_DEADLINE };
static const char *const plan_names[] = { "none", "before", "during", "after", "deadline" };

/* PLAN_DEADLINE: the token's timeout, up to this; the data may come around it. */
#define DEADLINE_MAX_NS (300 * 1000)

/* Between a supply that must let the call complete and the next one. */
#define RESUPPLY_NS (200 * 1000)

struct duel {
	struct race r;
	long attempts;
	int ack;		/* eventfd: the canceller is done with the attempt */
	long worker_tid;
	long stop;		/* a hang was found: end the run */
	/* The attempt in flight, published by the worker through seq. */
	long seq;
	sc_token *tok;
	enum plan plan;
	uint32_t rnd;
	long before_seq;	/* PLAN_BEFORE: the cancel has returned */
	long done_seq;		/* the call has returned */
};

static enum plan choose_plan(uint32_t rnd)
{
	switch (rnd % 10) {
	case 0:
		return PLAN_NONE;
	case 1:
		return PLAN_BEFORE;
	case 2:
		return PLAN_AFTER;
	case 3:
		return PLAN_DEADLINE;
	default:
		return PLAN_DURING;
	}
}

/*
 * Only a cancel before or during the call may cancel it; one before always
 * does.  Only a deadline may time it out, and never before it passed.
 */
static void judge(struct duel *d, enum plan plan, sc_result res, int64_t deadline)
{
	struct tally *t = &d->r.t;
	bool asked = plan == PLAN_BEFORE || plan == PLAN_DURING;

	if (res.status == SC_TIMEDOUT && plan == PLAN_DEADLINE) {
		add(sc_now_ns() >= deadline ? &t->cancelled : &t->spurious, 1);
	} else if (res.status == SC_CANCELLED) {
		add(asked ? &t->cancelled : &t->spurious, 1);
	} else if (res.status == SC_OK) {
		add(plan == PLAN_BEFORE ? &t->lost_cancels : &t->completed, 1);
		d->r.kind->after_ok(&d->r, res);
	} else {
		add(res.status == SC_TIMEDOUT ? &t->spurious : &t->errors, 1);
		fprintf(stderr, "%s: plan %s: status %d error %d\n", d->r.kind->name,
			plan_names[plan], res.status, res.error);
	}
}

static void unblock_foreign_signals(void)
{
	sigset_t set;

	foreign_signal_set(&set);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static void *worker(void *arg)
{
	struct duel *d = arg;
	uint32_t rng = 0x2545f491u;

	run_on_cpu(0);
	unblock_foreign_signals();
	store(&d->worker_tid, gettid());
	for (long i = 1; i <= d->attempts && !load(&d->stop); i++) {
		sc_token tok;
		uint32_t rnd = xorshift(&rng);

		ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
		d->tok = &tok;
		d->plan = choose_plan(rnd);
		d->rnd = xorshift(&rng);
		if (d->plan == PLAN_DEADLINE)
			ck_assert_int_eq(sc_token_set_timeout(&tok, d->rnd % DEADLINE_MAX_NS), 0);
		int64_t deadline = sc_token_deadline(&tok);
		store(&d->seq, i);
		if (d->plan == PLAN_BEFORE)
			wait_at_least(&d->before_seq, i, "cancel before attempt %ld", i);
		sc_result res = d->r.kind->call(&d->r, &tok, rnd);
		store(&d->done_seq, i);
		judge(d, d->plan, res, deadline);
		add(&d->r.t.stray_eintr, wait_readable_counting_eintr(d->ack));
		ck_assert_int_eq(sc_token_destroy(&tok), 0);
	}
	return NULL;
}

static void cancel_call(struct duel *d)
{
	ck_assert_int_eq(sc_cancel(d->tok), 0);
	add(&d->r.t.attempts, 1);
}

static int64_t delay_ns(uint32_t rnd)
{
	switch (rnd % 3) {
	case 0:
		return rnd % 2000;
	case 1:
		return rnd % 20000;
	default:
		return rnd % 100000;
	}
}

/* A cancel after a random delay, the data that completes the call before or after it. */
static void cancel_during(struct duel *d, uint32_t rnd)
{
	bool supply = rnd & 1, supply_first = rnd & 2;
	uint32_t r2 = rnd * 2654435761u;

	spin_ns(delay_ns(r2));
	if (supply && supply_first) {
		d->r.kind->supply(&d->r, r2);
		spin_ns(delay_ns(r2 >> 7) / 8);
	}
	cancel_call(d);
	if (supply && !supply_first) {
		spin_ns(delay_ns(r2 >> 7) / 8);
		d->r.kind->supply(&d->r, r2);
	}
}

static void report_hang(struct duel *d, long i)
{
	add(&d->r.t.hangs, 1);
	store(&d->stop, 1);
	fprintf(stderr, "%s: attempt %ld (plan %s) outlived its cancel by %lld ms; thread state %c\n",
		d->r.kind->name, i, plan_names[d->plan], HANG_NS / MS_NS,
		thread_state((pid_t)load(&d->worker_tid)));
}

/*
 * The watchdog: the call must return within HANG_NS of since.  A hung call
 * is counted, then released with supplies so the run can report.  A call
 * that needs data to complete (resupply) gets more now and then.
 */
static void wait_call_end(struct duel *d, long i, int64_t since, bool resupply)
{
	int64_t next_supply = since + RESUPPLY_NS;
	bool hung = false;

	while (load(&d->done_seq) < i) {
		int64_t now = sc_now_ns();
		if (!hung && now - since > HANG_NS) {
			report_hang(d, i);
			hung = resupply = true;
		}
		ck_assert_msg(now - since < 30 * SEC_NS, "%s: attempt %ld never returned",
			      d->r.kind->name, i);
		if (resupply && now > next_supply) {
			d->r.kind->supply(&d->r, (uint32_t)now);
			next_supply = now + RESUPPLY_NS;
		}
		sched_yield();
	}
}

static void act(struct duel *d, long i)
{
	enum plan plan = d->plan;
	uint32_t rnd = d->rnd;

	switch (plan) {
	case PLAN_BEFORE:
		cancel_call(d);
		store(&d->before_seq, i);
		break;
	case PLAN_DURING:
		cancel_during(d, rnd);
		break;
	case PLAN_NONE:
	case PLAN_AFTER:
		d->r.kind->supply(&d->r, rnd);
		break;
	case PLAN_DEADLINE:
		/* Half the time the data comes around the deadline, racing it. */
		if (rnd & 1) {
			spin_ns((rnd >> 1) % DEADLINE_MAX_NS);
			d->r.kind->supply(&d->r, rnd);
		}
		break;
	}
	wait_call_end(d, i, sc_now_ns(), plan == PLAN_NONE || plan == PLAN_AFTER);
	if (plan == PLAN_AFTER)
		cancel_call(d);
	post_eventfd(d->ack);
}

static void canceller(struct duel *d)
{
	for (long i = 1; i <= d->attempts; i++) {
		int64_t end = sc_now_ns() + PROMPT_NS;
		while (load(&d->seq) < i) {
			if (load(&d->stop))
				return;
			ck_assert_msg(sc_now_ns() < end, "%s: attempt %ld never started",
				      d->r.kind->name, i);
			sched_yield();
		}
		act(d, i);
	}
}

static void block_foreign_signals(void)
{
	sigset_t set;

	foreign_signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void race(int kind_index, bool with_storm)
{
	struct duel *d = calloc(1, sizeof(*d));
	struct storm *st = NULL;
	struct landing before = landings();
	uint64_t stray = stray_signals();
	pthread_t w;
	char name[64];

	ck_assert_ptr_nonnull(d);
	d->r.kind = &torture_kinds[kind_index];
	d->attempts = torture_scaled(3000);
	d->ack = make_eventfd();
	d->r.kind->setup(&d->r);
	block_foreign_signals();
	ck_assert_int_eq(pthread_create(&w, NULL, worker, d), 0);
	wait_at_least(&d->worker_tid, 1, "worker starts");
	run_on_cpu(1);
	if (with_storm)
		st = storm_start((pid_t)load(&d->worker_tid));
	canceller(d);
	join_within(w, 30 * SEC_NS, "race worker");
	if (st)
		storm_stop(st);
	d->r.kind->finish(&d->r);
	close(d->ack);
	snprintf(name, sizeof(name), "race %s%s", d->r.kind->name, with_storm ? " storm" : "");
	stray = stray_signals() - stray;
	d->r.t.stray_signals = (long)stray;
	count_race();
	struct landing l = landings_since(before);
	tally_report(name, &d->r.t, l);
	ck_assert_msg(!kernel_landings_required() || l.in_kernel > 0,
		      "%s: no cancel landed in a blocked syscall: the case misses that point", name);
	free(d);
}

void torture_race(int kind_index)
{
	race(kind_index, false);
}

void torture_race_under_storm(int kind_index)
{
	race(kind_index, true);
}
