/* sc_cond: waits that a signal, a broadcast, a cancel or a deadline ends, the mutex held after. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

/* One thread that waits on a cond until *ready, or until its wait fails. */
struct waiter {
	pthread_t thread;
	sc_cond *cond;
	pthread_mutex_t *m;
	sc_token *tok;
	sc_token *scope;	/* unless NULL, the wait runs in a scope of it */
	long *ready;		/* the predicate, under m; NULL: a single wait */
	long in_wait;		/* set under m just before the first wait */
	long tid;
	sc_result res;
	int64_t returned_ns;
	long done;		/* res is set; m is still held */
	long release;		/* the test has looked: unlock m and end */
	int unlock_err;		/* what unlocking m after the wait gave */
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	store(&w->tid, gettid());
	if (w->scope)
		ck_assert_int_eq(sc_scope_enter(w->scope), 0);
	ck_assert_int_eq(pthread_mutex_lock(w->m), 0);
	store(&w->in_wait, 1);
	do
		w->res = sc_cond_wait(w->tok, w->cond, w->m);
	while (w->res.status == SC_OK && w->ready && !*w->ready);
	w->returned_ns = sc_now_ns();
	store(&w->done, 1);
	wait_at_least(&w->release, 1, "the test looks at the waiter");
	w->unlock_err = pthread_mutex_unlock(w->m);
	if (w->scope)
		ck_assert_int_eq(sc_scope_exit(), 0);
	return NULL;
}

static void launch(struct waiter *w)
{
	ck_assert_int_eq(pthread_create(&w->thread, NULL, waiter_main, w), 0);
	wait_at_least(&w->in_wait, 1, "the waiter starts");
}

static void start_waiter(struct waiter *w, sc_cond *c, pthread_mutex_t *m, sc_token *tok)
{
	*w = (struct waiter){ .cond = c, .m = m, .tok = tok };
	launch(w);
}

/* Lock m, failing instead of hanging if it stays taken. */
static void lock_within(pthread_mutex_t *m, const char *what)
{
	int64_t end = sc_now_ns() + PROMPT_NS;
	int err;

	while ((err = pthread_mutex_trylock(m)) == EBUSY) {
		ck_assert_msg(sc_now_ns() < end, "%s: the mutex stays locked", what);
		sched_yield();
	}
	ck_assert_int_eq(err, 0);
}

/*
 * The waiter took m to wait, and gave it back only once queued on the
 * cond; then it sleeps in the kernel.
 */
static void wait_queued(struct waiter *w)
{
	lock_within(w->m, "waiting for the waiter to queue");
	ck_assert_int_eq(pthread_mutex_unlock(w->m), 0);
	wait_blocked((pid_t)load(&w->tid));
	ck_assert(!load(&w->done));
}

/* The syscall thread tid is in, and its first argument; -1 if it runs or is gone. */
static long blocked_syscall(pid_t tid, unsigned long *arg0)
{
	char path[64], buf[256] = "";
	long nr = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%ld %lx", &nr, arg0) != 2)
		nr = -1;
	fclose(f);
	return nr;
}

/* Thread tid sleeps in a futex wait on mutex m (pthread_mutex_lock). */
static void wait_blocked_on(pid_t tid, pthread_mutex_t *m)
{
	int64_t end = sc_now_ns() + PROMPT_NS;
	unsigned long a = 0, lo = (unsigned long)m, hi = lo + sizeof(*m);

	while (!(blocked_syscall(tid, &a) == SYS_futex && a >= lo && a < hi &&
		 thread_state(tid) == 'S')) {
		ck_assert_msg(sc_now_ns() < end, "thread %d never waited for the mutex", tid);
		sched_yield();
	}
}

static void start_queued(struct waiter *w, sc_cond *c, pthread_mutex_t *m, sc_token *tok)
{
	start_waiter(w, c, m, tok);
	wait_queued(w);
}

/* The waiter has returned holding m: another thread cannot take it. */
static sc_result returned_holding(struct waiter *w)
{
	wait_at_least(&w->done, 1, "the wait returns");
	ck_assert_int_eq(pthread_mutex_trylock(w->m), EBUSY);
	return w->res;
}

static void finish(struct waiter *w)
{
	wait_at_least(&w->done, 1, "the wait returns");
	store(&w->release, 1);
	join_within(w->thread, PROMPT_NS, "the waiter");
	ck_assert_int_eq(w->unlock_err, 0);
}

static void make_mutex(pthread_mutex_t *m, int type)
{
	pthread_mutexattr_t a;

	ck_assert_int_eq(pthread_mutexattr_init(&a), 0);
	ck_assert_int_eq(pthread_mutexattr_settype(&a, type), 0);
	ck_assert_int_eq(pthread_mutex_init(m, &a), 0);
	pthread_mutexattr_destroy(&a);
}

static void signal_under(pthread_mutex_t *m, sc_cond *c, long *ready)
{
	lock_within(m, "signal");
	if (ready)
		*ready = 1;
	ck_assert_int_eq(sc_cond_signal(c), 0);
	ck_assert_int_eq(pthread_mutex_unlock(m), 0);
}

START_TEST(a_signal_wakes_the_waiter_and_it_returns_holding_the_mutex)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w;
	sc_cond c;
	sc_token t;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	start_queued(&w, &c, &m, &t);
	signal_under(&m, &c, NULL);
	assert_ok(returned_holding(&w), 0);
	finish(&w);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
}
END_TEST

START_TEST(a_wait_without_a_token_is_ended_by_a_signal)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w;
	sc_cond c;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	start_queued(&w, &c, &m, NULL);
	signal_under(&m, &c, NULL);
	assert_ok(returned_holding(&w), 0);
	finish(&w);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
}
END_TEST

START_TEST(a_signal_wakes_the_thread_that_waited_longest_and_no_other)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w[3];
	sc_cond c;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	for (int i = 0; i < 3; i++)
		start_queued(&w[i], &c, &m, NULL);
	for (int i = 0; i < 3; i++) {
		signal_under(&m, &c, NULL);
		assert_ok(returned_holding(&w[i]), 0);
		for (int j = i + 1; j < 3; j++)
			ck_assert_msg(!load(&w[j].done), "signal %d woke waiter %d too", i, j);
		finish(&w[i]);
	}
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
}
END_TEST

START_TEST(a_broadcast_wakes_every_waiting_thread)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w[5];
	sc_cond c;
	long ready = 0;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	for (int i = 0; i < 5; i++) {
		start_waiter(&w[i], &c, &m, NULL);
		w[i].ready = &ready;
		store(&w[i].release, 1);
		wait_queued(&w[i]);
	}
	lock_within(&m, "broadcast");
	ready = 1;
	ck_assert_int_eq(sc_cond_broadcast(&c), 0);
	ck_assert_int_eq(pthread_mutex_unlock(&m), 0);
	for (int i = 0; i < 5; i++) {
		finish(&w[i]);
		assert_ok(w[i].res, 0);
	}
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
}
END_TEST

/* A wait that ends without a wake: after a cancel (cancel != NULL) or at tok's deadline. */
static void assert_released_holding(int type, sc_token *tok, sc_token *cancel, sc_status want)
{
	pthread_mutex_t m;
	struct waiter w;
	sc_cond c;

	make_mutex(&m, type);
	ck_assert_int_eq(sc_cond_init(&c), 0);
	start_queued(&w, &c, &m, tok);
	if (cancel)
		ck_assert_int_eq(sc_cancel(cancel), 0);
	assert_status(returned_holding(&w), want, "the wait");
	finish(&w);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
	ck_assert_int_eq(pthread_mutex_destroy(&m), 0);
}

START_TEST(a_cancel_releases_the_waiter_with_the_mutex_held)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	/* errorcheck: the waiter's own unlock afterwards fails unless it holds the mutex */
	assert_released_holding(PTHREAD_MUTEX_ERRORCHECK, &t, &t, SC_CANCELLED);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(cancelling_an_ancestor_releases_the_waiter_with_the_mutex_held)
{
	struct token_chain ch;

	chain_init(&ch);
	assert_released_holding(PTHREAD_MUTEX_NORMAL, &ch.leaf, &ch.root, SC_CANCELLED);
	chain_destroy(&ch);
}
END_TEST

START_TEST(a_deadline_releases_the_waiter_with_the_mutex_held_not_before_it)
{
	sc_token t;
	int64_t dl;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 100 * MS_NS), 0);
	dl = sc_token_deadline(&t);
	assert_released_holding(PTHREAD_MUTEX_ERRORCHECK, &t, NULL, SC_TIMEDOUT);
	ck_assert_int_ge(sc_now_ns(), dl);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(a_priority_inheritance_mutex_is_given_back_after_a_cancel)
{
	pthread_mutexattr_t a;
	pthread_mutex_t m;
	struct waiter w;
	sc_cond c;
	sc_token t;

	ck_assert_int_eq(pthread_mutexattr_init(&a), 0);
	ck_assert_int_eq(pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT), 0);
	ck_assert_int_eq(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK), 0);
	ck_assert_int_eq(pthread_mutex_init(&m, &a), 0);
	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	start_queued(&w, &c, &m, &t);
	ck_assert_int_eq(sc_cancel(&t), 0);
	assert_cancelled(returned_holding(&w));
	finish(&w);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
	ck_assert_int_eq(pthread_mutex_destroy(&m), 0);
	pthread_mutexattr_destroy(&a);
}
END_TEST

START_TEST(a_cancelled_waiter_returns_only_once_it_has_the_mutex_again)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w;
	sc_cond c;
	sc_token t;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	start_queued(&w, &c, &m, &t);
	lock_within(&m, "holding the mutex over the cancel");
	ck_assert_int_eq(sc_cancel(&t), 0);
	wait_blocked_on((pid_t)load(&w.tid), &m);
	ck_assert(!load(&w.done));
	ck_assert_int_eq(pthread_mutex_unlock(&m), 0);
	assert_cancelled(returned_holding(&w));
	finish(&w);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
}
END_TEST

START_TEST(a_wait_under_a_cancelled_token_returns_at_once_holding_the_mutex)
{
	pthread_mutex_t m;
	struct waiter w;
	sc_cond c;
	sc_token t;

	make_mutex(&m, PTHREAD_MUTEX_ERRORCHECK);
	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cancel(&t), 0);
	start_waiter(&w, &c, &m, &t);
	assert_cancelled(returned_holding(&w));
	finish(&w);
	/* It left no node behind. */
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(a_wait_in_a_scope_ends_when_the_scope_token_is_cancelled)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w;
	sc_cond c;
	sc_token scope;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_token_init(&scope, NULL), 0);
	w = (struct waiter){ .cond = &c, .m = &m, .scope = &scope };
	launch(&w);
	wait_queued(&w);
	ck_assert_int_eq(sc_cancel(&scope), 0);
	assert_cancelled(returned_holding(&w));
	finish(&w);
	ck_assert_int_eq(sc_token_destroy(&scope), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
}
END_TEST

/* No wake-up is lost: producers and consumers pass every item exactly once. */
#define STORM_PRODUCERS 6
#define STORM_CONSUMERS 6

struct storm {
	pthread_mutex_t m;
	sc_cond c;
	sc_token tok;		/* the consumers', never cancelled */
	long items;
	long *queue;		/* item ids, under m */
	long head, tail;
	unsigned char *taken;	/* per id, under m */
	long consumed;
	long stop;
	long bad;		/* waits that did not return SC_OK */
};

struct producer {
	struct storm *s;
	int index;
	pthread_t thread;
};

/* Signals and broadcasts, under the mutex and after it, in turn. */
static void *produce(void *arg)
{
	struct producer *p = arg;
	struct storm *s = p->s;
	uint32_t rng = 0x9e3779b9u * (p->index + 1);

	for (long id = p->index; id < s->items; id += STORM_PRODUCERS) {
		uint32_t how = xorshift(&rng) % 4;

		pthread_mutex_lock(&s->m);
		s->queue[s->tail++] = id;
		if (how == 0)
			sc_cond_signal(&s->c);
		else if (how == 1)
			sc_cond_broadcast(&s->c);
		pthread_mutex_unlock(&s->m);
		if (how == 2)
			sc_cond_signal(&s->c);
		else if (how == 3 && xorshift(&rng) % 8 == 0)
			sc_cond_broadcast(&s->c);
		else if (how == 3)
			sc_cond_signal(&s->c);
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct storm *s = arg;

	pthread_mutex_lock(&s->m);
	for (;;) {
		while (s->head == s->tail && !s->stop) {
			sc_result r = sc_cond_wait(&s->tok, &s->c, &s->m);
			if (r.status != SC_OK)
				s->bad++;
		}
		if (s->head == s->tail)
			break;
		s->taken[s->queue[s->head++]]++;
		s->consumed++;
	}
	pthread_mutex_unlock(&s->m);
	return NULL;
}

static long consumed(struct storm *s)
{
	long n;

	pthread_mutex_lock(&s->m);
	n = s->consumed;
	pthread_mutex_unlock(&s->m);
	return n;
}

START_TEST(no_wake_up_is_lost_under_a_storm_of_signals_and_broadcasts)
{
	struct producer p[STORM_PRODUCERS];
	pthread_t cons[STORM_CONSUMERS];
	struct storm s = { .m = PTHREAD_MUTEX_INITIALIZER, .items = under_valgrind() ? 2000 : 40000 };
	int64_t end;

	s.queue = calloc(s.items, sizeof(*s.queue));
	s.taken = calloc(s.items, 1);
	ck_assert(s.queue && s.taken);
	ck_assert_int_eq(sc_cond_init(&s.c), 0);
	ck_assert_int_eq(sc_token_init(&s.tok, NULL), 0);
	for (int i = 0; i < STORM_CONSUMERS; i++)
		ck_assert_int_eq(pthread_create(&cons[i], NULL, consume, &s), 0);
	for (int i = 0; i < STORM_PRODUCERS; i++) {
		p[i] = (struct producer){ &s, i, 0 };
		ck_assert_int_eq(pthread_create(&p[i].thread, NULL, produce, &p[i]), 0);
	}
	for (int i = 0; i < STORM_PRODUCERS; i++)
		join_within(p[i].thread, stretched(60 * SEC_NS), "producer");
	/* Every item is taken before the final broadcast could rescue a lost wake-up. */
	end = sc_now_ns() + stretched(PROMPT_NS);
	while (consumed(&s) < s.items) {
		ck_assert_msg(sc_now_ns() < end, "%ld of %ld items taken: a wake-up was lost",
			      consumed(&s), s.items);
		sched_yield();
	}
	pthread_mutex_lock(&s.m);
	s.stop = 1;
	sc_cond_broadcast(&s.c);
	pthread_mutex_unlock(&s.m);
	for (int i = 0; i < STORM_CONSUMERS; i++)
		join_within(cons[i], PROMPT_NS, "consumer");
	for (long id = 0; id < s.items; id++)
		ck_assert_msg(s.taken[id] == 1, "item %ld taken %d times", id, s.taken[id]);
	ck_assert_int_eq(s.bad, 0);
	ck_assert_int_eq(sc_cond_destroy(&s.c), 0);
	ck_assert_int_eq(sc_token_destroy(&s.tok), 0);
	free(s.queue);
	free(s.taken);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cond");
	TCase *tc = add_tcase(s, "waits", 30, init_library);

	tcase_add_test(tc, a_signal_wakes_the_waiter_and_it_returns_holding_the_mutex);
	tcase_add_test(tc, a_wait_without_a_token_is_ended_by_a_signal);
	tcase_add_test(tc, a_signal_wakes_the_thread_that_waited_longest_and_no_other);
	tcase_add_test(tc, a_broadcast_wakes_every_waiting_thread);
	tcase_add_test(tc, a_cancel_releases_the_waiter_with_the_mutex_held);
	tcase_add_test(tc, cancelling_an_ancestor_releases_the_waiter_with_the_mutex_held);
	tcase_add_test(tc, a_deadline_releases_the_waiter_with_the_mutex_held_not_before_it);
	tcase_add_test(tc, a_priority_inheritance_mutex_is_given_back_after_a_cancel);
	tcase_add_test(tc, a_cancelled_waiter_returns_only_once_it_has_the_mutex_again);
	tcase_add_test(tc, a_wait_under_a_cancelled_token_returns_at_once_holding_the_mutex);
	tcase_add_test(tc, a_wait_in_a_scope_ends_when_the_scope_token_is_cancelled);
	tc = add_tcase(s, "storms", 120, init_library);
	tcase_add_test(tc, no_wake_up_is_lost_under_a_storm_of_signals_and_broadcasts);
	return run_suite(s, CK_FORK_GETENV);
}
