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
#include <time.h>
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
	/* A deadline may pass before the waiter is seen asleep: it then holds m already. */
	if (cancel)
		start_queued(&w, &c, &m, tok);
	else
		start_waiter(&w, &c, &m, tok);
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

START_TEST(destroy_while_a_thread_waits_is_EBUSY_until_it_has_left)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w;
	sc_cond c;
	sc_token t;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	start_queued(&w, &c, &m, &t);
	ck_assert_int_eq(sc_cond_destroy(&c), EBUSY);
	ck_assert_int_eq(sc_cond_signal(&c), 0);	/* still live */
	assert_ok(returned_holding(&w), 0);
	finish(&w);
	start_queued(&w, &c, &m, &t);
	ck_assert_int_eq(sc_cond_destroy(&c), EBUSY);
	ck_assert_int_eq(sc_cancel(&t), 0);
	assert_cancelled(returned_holding(&w));
	finish(&w);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(a_cond_can_be_destroyed_and_freed_right_after_a_broadcast)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w[3];
	sc_cond *c = malloc(sizeof(*c));

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(sc_cond_init(c), 0);
	for (int i = 0; i < 3; i++) {
		start_queued(&w[i], c, &m, NULL);
		store(&w[i].release, 1);	/* they return in any order */
	}
	/* The woken threads cannot return yet: this thread holds their mutex. */
	lock_within(&m, "broadcast");
	ck_assert_int_eq(sc_cond_broadcast(c), 0);
	ck_assert_int_eq(sc_cond_destroy(c), 0);
	memset(c, 0xa5, sizeof(*c));
	free(c);
	ck_assert_int_eq(pthread_mutex_unlock(&m), 0);
	for (int i = 0; i < 3; i++) {
		finish(&w[i]);
		assert_ok(w[i].res, 0);
	}
}
END_TEST

START_TEST(a_destroyed_cond_initialised_again_works_as_new)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct waiter w;
	sc_cond c;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
	ck_assert_int_eq(sc_cond_signal(&c), EINVAL);
	ck_assert_int_eq(sc_cond_init(&c), 0);
	start_queued(&w, &c, &m, NULL);
	signal_under(&m, &c, NULL);
	finish(&w);
	assert_ok(w.res, 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
}
END_TEST

START_TEST(a_signal_with_nobody_waiting_is_not_remembered)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	sc_cond c;
	sc_token t;

	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cond_signal(&c), 0);
	ck_assert_int_eq(sc_cond_broadcast(&c), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 50 * MS_NS), 0);
	ck_assert_int_eq(pthread_mutex_lock(&m), 0);
	assert_status(sc_cond_wait(&t, &c, &m), SC_TIMEDOUT, "a wait after the signals");
	ck_assert_int_eq(pthread_mutex_unlock(&m), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

/* An errorcheck mutex: unlocking it says whether this thread holds it. */
static void assert_still_held(pthread_mutex_t *m)
{
	ck_assert_int_eq(pthread_mutex_unlock(m), 0);
	ck_assert_int_eq(pthread_mutex_lock(m), 0);
}

START_TEST(bad_arguments_are_EINVAL_and_leave_the_mutex_alone)
{
	sc_cond c, zero, garbage;
	pthread_mutex_t m;

	make_mutex(&m, PTHREAD_MUTEX_ERRORCHECK);
	memset(&zero, 0, sizeof(zero));
	memset(&garbage, 0xff, sizeof(garbage));
	ck_assert_int_eq(sc_cond_init(NULL), EINVAL);
	ck_assert_int_eq(sc_cond_destroy(NULL), EINVAL);
	ck_assert_int_eq(sc_cond_signal(NULL), EINVAL);
	ck_assert_int_eq(sc_cond_broadcast(NULL), EINVAL);
	ck_assert_int_eq(pthread_mutex_lock(&m), 0);
	assert_error(sc_cond_wait(NULL, NULL, &m), EINVAL);
	assert_still_held(&m);
	ck_assert_int_eq(sc_cond_init(&c), 0);
	assert_error(sc_cond_wait(NULL, &c, NULL), EINVAL);
	/* never initialised, whatever the memory holds */
	for (sc_cond *bad = &zero; bad; bad = bad == &zero ? &garbage : NULL) {
		assert_error(sc_cond_wait(NULL, bad, &m), EINVAL);
		assert_still_held(&m);
		ck_assert_int_eq(sc_cond_signal(bad), EINVAL);
		ck_assert_int_eq(sc_cond_broadcast(bad), EINVAL);
		ck_assert_int_eq(sc_cond_destroy(bad), EINVAL);
	}
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), EINVAL);
	assert_error(sc_cond_wait(NULL, &c, &m), EINVAL);
	assert_still_held(&m);
	ck_assert_int_eq(sc_cond_signal(&c), EINVAL);
	ck_assert_int_eq(sc_cond_broadcast(&c), EINVAL);
	ck_assert_int_eq(pthread_mutex_unlock(&m), 0);
	ck_assert_int_eq(pthread_mutex_destroy(&m), 0);
}
END_TEST

START_TEST(a_wait_under_a_destroyed_token_is_EINVAL_with_the_mutex_held)
{
	pthread_mutex_t m;
	sc_cond c;
	sc_token t;

	make_mutex(&m, PTHREAD_MUTEX_ERRORCHECK);
	ck_assert_int_eq(sc_cond_init(&c), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	ck_assert_int_eq(pthread_mutex_lock(&m), 0);
	assert_error(sc_cond_wait(&t, &c, &m), EINVAL);
	assert_still_held(&m);
	ck_assert_int_eq(pthread_mutex_unlock(&m), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);	/* no node left behind */
	ck_assert_int_eq(pthread_mutex_destroy(&m), 0);
}
END_TEST

START_TEST(a_wait_on_an_errorcheck_mutex_the_caller_does_not_hold_is_EPERM)
{
	pthread_mutex_t m;
	sc_cond c;

	make_mutex(&m, PTHREAD_MUTEX_ERRORCHECK);
	ck_assert_int_eq(sc_cond_init(&c), 0);
	assert_error(sc_cond_wait(NULL, &c, &m), EPERM);
	ck_assert_int_eq(pthread_mutex_trylock(&m), 0);	/* not left locked */
	ck_assert_int_eq(pthread_mutex_unlock(&m), 0);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);	/* no node left behind */
	ck_assert_int_eq(pthread_mutex_destroy(&m), 0);
}
END_TEST

struct dying_owner {
	pthread_mutex_t *m;
	long locked;
	long die;
};

static void *lock_and_die(void *arg)
{
	struct dying_owner *o = arg;

	ck_assert_int_eq(pthread_mutex_lock(o->m), 0);
	store(&o->locked, 1);
	wait_at_least(&o->die, 1, "the test lets the owner die");
	return NULL;
}

START_TEST(a_robust_mutex_whose_owner_died_is_relocked_with_EOWNERDEAD)
{
	struct dying_owner o = { 0 };
	pthread_mutexattr_t a;
	pthread_mutex_t m;
	pthread_t owner;
	struct waiter w;
	sc_cond c;

	ck_assert_int_eq(pthread_mutexattr_init(&a), 0);
	ck_assert_int_eq(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST), 0);
	ck_assert_int_eq(pthread_mutex_init(&m, &a), 0);
	ck_assert_int_eq(sc_cond_init(&c), 0);
	start_queued(&w, &c, &m, NULL);
	o.m = &m;
	ck_assert_int_eq(pthread_create(&owner, NULL, lock_and_die, &o), 0);
	wait_at_least(&o.locked, 1, "the owner locks the mutex");
	ck_assert_int_eq(sc_cond_signal(&c), 0);
	wait_blocked_on((pid_t)load(&w.tid), &m);
	store(&o.die, 1);
	join_within(owner, PROMPT_NS, "the owner");
	assert_error(returned_holding(&w), EOWNERDEAD);
	finish(&w);
	pthread_mutex_destroy(&m);
	pthread_mutexattr_destroy(&a);
	ck_assert_int_eq(sc_cond_destroy(&c), 0);
}
END_TEST

/*
 * A wake and a cancel (or a deadline) aimed at the same waiter at once.
 * Waiter A queues first, waiter B after it; one item is posted with a
 * signal, which goes to A, while A's token is cancelled.  Either A's wait
 * says SC_OK and A takes the item, or it says SC_CANCELLED and the signal
 * went to B: an item left behind means A swallowed a wake.
 */
struct duel {
	pthread_mutex_t m;
	sc_cond c;
	sc_token tok;		/* A's, this round */
	int64_t deadline;	/* this round's, or SC_NO_DEADLINE */
	long round, b_go, fire, fired, stop;
	long items, over;	/* under m */
	long in[2], done[2], took[2];
	sc_result res;		/* A's */
	int64_t a_returned;
};

struct player {
	struct duel *d;
	int b;
	pthread_t thread;
};

static void *play(void *arg)
{
	struct player *p = arg;
	struct duel *d = p->d;

	for (long r = 1;; r++) {
		wait_at_least(p->b ? &d->b_go : &d->round, r, "round %ld starts", r);
		if (load(&d->stop))
			return NULL;
		sc_token *tok = p->b ? NULL : &d->tok;
		sc_result res = { SC_OK, 0, 0 };

		pthread_mutex_lock(&d->m);
		store(&d->in[p->b], r);
		while (!d->items && d->over < r && res.status == SC_OK)
			res = sc_cond_wait(tok, &d->c, &d->m);
		d->took[p->b] = res.status == SC_OK && d->items;
		d->items -= d->took[p->b];
		pthread_mutex_unlock(&d->m);
		if (!p->b) {
			d->res = res;
			d->a_returned = sc_now_ns();
		}
		store(&d->done[p->b], r);
	}
}

static void *cancel_on_fire(void *arg)
{
	struct duel *d = arg;
	uint32_t rng = 0x12345u;

	for (long r = 1;; r++) {
		wait_at_least(&d->fire, r, "round %ld fires", r);
		if (load(&d->stop))
			return NULL;
		spin_ns(xorshift(&rng) % 20000);
		if (r % 2)
			ck_assert_int_eq(sc_cancel(&d->tok), 0);
		store(&d->fired, r);
	}
}

static long items(struct duel *d)
{
	long n;

	pthread_mutex_lock(&d->m);
	n = d->items;
	pthread_mutex_unlock(&d->m);
	return n;
}

/* Queued behind everyone else: it took m after the waiter let it go. */
static void wait_in(struct duel *d, int who, long r)
{
	wait_at_least(&d->in[who], r, "waiter %c waits", "AB"[who]);
	pthread_mutex_lock(&d->m);
	pthread_mutex_unlock(&d->m);
}

static void one_round(struct duel *d, long r, uint32_t *rng, long outcome[3])
{
	int64_t end;

	ck_assert_int_eq(sc_token_init(&d->tok, NULL), 0);
	d->deadline = SC_NO_DEADLINE;
	store(&d->round, r);
	wait_in(d, 0, r);
	store(&d->b_go, r);
	wait_in(d, 1, r);
	if (r % 2 == 0) {
		ck_assert_int_eq(sc_token_set_timeout(&d->tok, xorshift(rng) % 30000), 0);
		d->deadline = sc_token_deadline(&d->tok);
	}
	store(&d->fire, r);
	/*
	 * The canceller waits up to 20 us: the wake comes before or after, and
	 * A needs a CPU to act on a cancel before it.
	 */
	uint32_t delay = xorshift(rng);
	if (delay % 2)
		spin_ns(delay % 20000);
	else
		nanosleep(&(struct timespec){ 0, delay % 100000 }, NULL);
	pthread_mutex_lock(&d->m);
	d->items = 1;
	ck_assert_int_eq(sc_cond_signal(&d->c), 0);
	pthread_mutex_unlock(&d->m);
	wait_at_least(&d->done[0], r, "round %ld: the cancelled waiter returns", r);
	/* Sooner than the waiters give up on the next round. */
	end = sc_now_ns() + PROMPT_NS / 2;
	while (items(d)) {
		ck_assert_msg(sc_now_ns() < end, "round %ld: A's wait said %d; nobody took the item",
			      r, d->res.status);
		sched_yield();
	}
	pthread_mutex_lock(&d->m);
	d->over = r;
	ck_assert_int_eq(sc_cond_broadcast(&d->c), 0);
	pthread_mutex_unlock(&d->m);
	wait_at_least(&d->done[1], r, "round %ld: the other waiter returns", r);
	wait_at_least(&d->fired, r, "round %ld: the canceller is done", r);
	ck_assert_int_eq(d->took[0] + d->took[1], 1);
	if (d->res.status == SC_OK) {
		ck_assert_msg(d->took[0], "round %ld: A woken, the item went to B", r);
		outcome[0]++;
	} else if (d->res.status == SC_CANCELLED) {
		ck_assert_msg(r % 2, "round %ld: cancelled, but nothing cancelled it", r);
		outcome[1]++;
	} else {
		assert_status(d->res, SC_TIMEDOUT, "round %ld: A's wait", r);
		ck_assert_msg(r % 2 == 0 && d->a_returned >= d->deadline,
			      "round %ld: timed out before its deadline", r);
		outcome[2]++;
	}
	ck_assert_int_eq(sc_token_destroy(&d->tok), 0);
}

START_TEST(a_wake_racing_a_cancel_or_a_deadline_is_taken_exactly_once)
{
	static struct duel d = { .m = PTHREAD_MUTEX_INITIALIZER };
	struct player p[2] = { { &d, 0, 0 }, { &d, 1, 0 } };
	long rounds = under_valgrind() ? 40 : 1000, outcome[3] = { 0 };
	uint32_t rng = 0xdeadbeefu;
	pthread_t canceller;

	ck_assert_int_eq(sc_cond_init(&d.c), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&p[i].thread, NULL, play, &p[i]), 0);
	ck_assert_int_eq(pthread_create(&canceller, NULL, cancel_on_fire, &d), 0);
	for (long r = 1; r <= rounds; r++)
		one_round(&d, r, &rng, outcome);
	store(&d.stop, 1);
	store(&d.round, rounds + 1);
	store(&d.b_go, rounds + 1);
	store(&d.fire, rounds + 1);
	for (int i = 0; i < 2; i++)
		join_within(p[i].thread, PROMPT_NS, "a waiter");
	join_within(canceller, PROMPT_NS, "the canceller");
	printf("%ld rounds: A woken %ld, cancelled %ld, timed out %ld\n", rounds, outcome[0],
	       outcome[1], outcome[2]);
	ck_assert_int_eq(sc_cond_destroy(&d.c), 0);
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
	if (!skipped_under_emulator("a cancelled waiter relocks the mutex", QEMU_PROC_SYSCALL))
		tcase_add_test(tc, a_cancelled_waiter_returns_only_once_it_has_the_mutex_again);
	tcase_add_test(tc, a_wait_under_a_cancelled_token_returns_at_once_holding_the_mutex);
	tcase_add_test(tc, a_wait_in_a_scope_ends_when_the_scope_token_is_cancelled);
	tcase_add_test(tc, destroy_while_a_thread_waits_is_EBUSY_until_it_has_left);
	tcase_add_test(tc, a_cond_can_be_destroyed_and_freed_right_after_a_broadcast);
	tcase_add_test(tc, a_destroyed_cond_initialised_again_works_as_new);
	tcase_add_test(tc, a_signal_with_nobody_waiting_is_not_remembered);
	tcase_add_test(tc, bad_arguments_are_EINVAL_and_leave_the_mutex_alone);
	tcase_add_test(tc, a_wait_under_a_destroyed_token_is_EINVAL_with_the_mutex_held);
	/* ThreadSanitizer reports the unlock the test provokes as a bug of its own. */
	if (!SC_TSAN)
		tcase_add_test(tc, a_wait_on_an_errorcheck_mutex_the_caller_does_not_hold_is_EPERM);
	if (!skipped_under_emulator("a robust mutex whose owner died", QEMU_PROC_SYSCALL))
		tcase_add_test(tc, a_robust_mutex_whose_owner_died_is_relocked_with_EOWNERDEAD);
	tc = add_tcase(s, "storms", 120, init_library);
	tcase_add_test(tc, a_wake_racing_a_cancel_or_a_deadline_is_taken_exactly_once);
	tcase_add_test(tc, no_wake_up_is_lost_under_a_storm_of_signals_and_broadcasts);
	return run_suite(s, CK_FORK_GETENV);
}
