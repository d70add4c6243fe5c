/*
 * Threads coming and going (I5): cancels racing thread start and exit never
 * signal a thread outside a syscancel call, slots are reused safely, and a
 * root token releases every thread blocked under it, round after round.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

/*
 * Churn: short-lived threads each make a few calls under a child of the
 * newest root while a canceller keeps making roots and cancelling them.
 * Around their calls the threads sleep in plain nanosleep and poll: a
 * library signal meant for another thread, an exited one or an ended call
 * would surface there as EINTR.
 */
#define CHURN_THREADS 2000
#define CHURN_PARALLEL 8
#define CHURN_CALLS 2
#define CHURN_ROOTS 32768

enum churn_kind { SLEEP_SHORT, READ_WITH_DEADLINE, POLL_SHORT, N_CHURN_KINDS };

struct churn {
	sc_token roots[CHURN_ROOTS];
	long newest;		/* index of the newest root */
	long stop;
	int empty_rd;
	long ok, cancelled, timedout, other, app_eintr;
	sc_result first_other;
	int other_kind;
};

struct churn_job {
	struct churn *churn;
	uint32_t seed;
};

static void app_sleeps(struct churn *ch)
{
	struct timespec ts = { .tv_nsec = 1000 };

	if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
		add(&ch->app_eintr, 1);
	if (poll(NULL, 0, 1) < 0 && errno == EINTR)
		add(&ch->app_eintr, 1);
}

static sc_result churn_call(struct churn *ch, sc_token *tok, enum churn_kind kind, uint32_t *seed)
{
	uint32_t x = xorshift(seed);
	char b;

	switch (kind) {
	case SLEEP_SHORT:
		return sc_sleep(tok, x % 4 ? x % (200 * 1000) : 0);
	case READ_WITH_DEADLINE:
		if (sc_token_set_timeout(tok, x % (300 * 1000)))
			abort();
		return sc_read(tok, ch->empty_rd, &b, 1);
	case POLL_SHORT:
	case N_CHURN_KINDS:
		break;
	}
	return sc_poll(tok, NULL, 0, x % 2);
}

static void churn_count(struct churn *ch, sc_result r, enum churn_kind kind)
{
	if (r.status == SC_OK && kind != READ_WITH_DEADLINE) {
		add(&ch->ok, 1);
	} else if (r.status == SC_CANCELLED && r.error == ECANCELED) {
		add(&ch->cancelled, 1);
	} else if (r.status == SC_TIMEDOUT && r.error == ETIMEDOUT &&
		   kind == READ_WITH_DEADLINE) {
		add(&ch->timedout, 1);
	} else if (__atomic_fetch_add(&ch->other, 1, __ATOMIC_RELAXED) == 0) {
		ch->first_other = r;
		ch->other_kind = kind;
	}
}

static void *churn_worker(void *arg)
{
	struct churn_job *job = arg;
	struct churn *ch = job->churn;

	app_sleeps(ch);
	for (int i = 0; i < CHURN_CALLS; i++) {
		enum churn_kind kind = xorshift(&job->seed) % N_CHURN_KINDS;
		sc_token tok;

		if (sc_token_init(&tok, &ch->roots[load(&ch->newest)]))
			abort();
		churn_count(ch, churn_call(ch, &tok, kind, &job->seed), kind);
		if (sc_token_destroy(&tok))
			abort();
		app_sleeps(ch);
	}
	return NULL;
}

static void *churn_canceller(void *arg)
{
	struct churn *ch = arg;
	uint32_t seed = 99991u;

	for (long i = 1; i < CHURN_ROOTS && !load(&ch->stop); i++) {
		if (sc_token_init(&ch->roots[i], NULL))
			abort();
		store(&ch->newest, i);
		spin_ns(xorshift(&seed) % (400 * 1000));
		sc_cancel(&ch->roots[i]);
		sc_cancel(&ch->roots[i - 1]);
	}
	return NULL;
}

START_TEST(threads_coming_and_going_under_cancels_never_see_a_stray_signal)
{
	static struct churn ch;
	static struct churn_job jobs[CHURN_PARALLEL];
	pthread_t workers[CHURN_PARALLEL], canceller;
	struct bg_call bystander, after;
	sc_token by_tok, fresh;
	int empty[2];

	/* A bystander blocked under its own token all along must stay blocked. */
	ck_assert_int_eq(sc_token_init(&by_tok, NULL), 0);
	bg_read_blocked(&bystander, &by_tok);

	make_pipe(empty);
	ch.empty_rd = empty[0];
	ck_assert_int_eq(sc_token_init(&ch.roots[0], NULL), 0);
	ck_assert_int_eq(pthread_create(&canceller, NULL, churn_canceller, &ch), 0);
	for (int n = 0; n < CHURN_THREADS; n++) {
		int slot = n % CHURN_PARALLEL;

		if (n >= CHURN_PARALLEL)
			join_within(workers[slot], PROMPT_NS, "a churning thread");
		jobs[slot] = (struct churn_job){ .churn = &ch, .seed = 2166136261u + n };
		ck_assert_int_eq(pthread_create(&workers[slot], NULL, churn_worker, &jobs[slot]),
				 0);
	}
	for (int slot = 0; slot < CHURN_PARALLEL; slot++)
		join_within(workers[slot], PROMPT_NS, "a churning thread");
	store(&ch.stop, 1);
	join_within(canceller, PROMPT_NS, "the canceller");

	ck_assert_msg(ch.other == 0, "%ld unexpected results, first (kind %d): status %d error %d",
		      ch.other, ch.other_kind, ch.first_other.status, ch.first_other.error);
	ck_assert_int_eq(ch.app_eintr, 0);
	ck_assert_int_eq(ch.ok + ch.cancelled + ch.timedout, CHURN_THREADS * CHURN_CALLS);
	ck_assert_int_ge(ch.cancelled, 100);
	/* Under valgrind the deadline service runs only when valgrind lets it. */
	ck_assert_int_ge(ch.timedout, under_valgrind() ? 1 : 10);

	ck_assert_msg(!bg_done(&bystander), "the bystander returned: status %d error %d",
		      bystander.res.status, bystander.res.error);
	ck_assert_int_eq(write(bystander.peer, "x", 1), 1);
	assert_ok(bg_join(&bystander), 1);

	/* After the churn, a new thread's call can still be cancelled. */
	ck_assert_int_eq(sc_token_init(&fresh, NULL), 0);
	bg_read_blocked(&after, &fresh);
	ck_assert_int_eq(sc_cancel(&fresh), 0);
	assert_status(bg_join(&after), SC_CANCELLED, "the thread after the churn");
	ck_assert_int_eq(sc_token_destroy(&fresh), 0);
	ck_assert_int_eq(sc_token_destroy(&by_tok), 0);
	for (long i = 0; i <= ch.newest; i++)
		ck_assert_int_eq(sc_token_destroy(&ch.roots[i]), 0);
	close_pipe(empty);
	bg_close_pipe(&after);
	bg_close_pipe(&bystander);
}
END_TEST

/*
 * A fleet of threads blocked under children of one root: cancelling one
 * child releases only its thread, cancelling the root releases the rest.
 * Each round uses new threads, so slots of exited threads get reused.
 */
#define FLEET 64
#define FLEET_ROUNDS 6

struct fleet {
	sc_token root, child[FLEET];
	struct bg_call calls[FLEET];
};

static void fleet_start(struct fleet *f)
{
	ck_assert_int_eq(sc_token_init(&f->root, NULL), 0);
	for (int i = 0; i < FLEET; i++) {
		ck_assert_int_eq(sc_token_init(&f->child[i], &f->root), 0);
		bg_read_blocked(&f->calls[i], &f->child[i]);
	}
}

static void fleet_finish(struct fleet *f)
{
	for (int i = 0; i < FLEET; i++) {
		ck_assert_int_eq(sc_token_destroy(&f->child[i]), 0);
		bg_close_pipe(&f->calls[i]);
	}
	ck_assert_int_eq(sc_token_destroy(&f->root), 0);
}

START_TEST(cancelling_a_root_releases_every_thread_blocked_under_it_round_after_round)
{
	static struct fleet f;

	for (int round = 0; round < FLEET_ROUNDS; round++) {
		int lone = (round * 23 + 5) % FLEET;

		fleet_start(&f);
		ck_assert_int_eq(sc_cancel(&f.child[lone]), 0);
		assert_status(bg_join(&f.calls[lone]), SC_CANCELLED, "thread %d", lone);
		for (int i = 0; i < FLEET; i++) {
			if (i == lone)
				continue;
			ck_assert_msg(bg_wait_blocked(&f.calls[i]),
				      "round %d: thread %d returned when only %d was cancelled",
				      round, i, lone);
		}
		ck_assert_int_eq(sc_cancel(&f.root), 0);
		for (int i = 0; i < FLEET; i++)
			if (i != lone)
				assert_status(bg_join(&f.calls[i]), SC_CANCELLED, "thread %d", i);
		fleet_finish(&f);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = add_tcase(s, "threads", 60, init_library);

	tcase_add_test(tc, threads_coming_and_going_under_cancels_never_see_a_stray_signal);
	if (!skipped_under_emulator("cancelling_a_root_releases_every_thread_blocked_under_it_"
				    "round_after_round", QEMU_TIMERS))
		tcase_add_test(tc,
			cancelling_a_root_releases_every_thread_blocked_under_it_round_after_round);
	return run_suite(s, CK_FORK_GETENV);
}
