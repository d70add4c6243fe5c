/*
 * sc_cond: a condition variable whose waits a token can end.
 *
 * A waiter queues a node on its own stack and sleeps on the node's word in
 * a cancellable futex wait, the same call path as every sc_* call.  A
 * signal takes the oldest node off the queue and marks it woken; a
 * broadcast does so for every node.  The queue and the nodes' states change
 * only under the cond's own lock, held for a few instructions and a futex
 * wake.  A waiter that a cancel or a deadline released leaves the queue
 * itself, unless a signal took it off first: then it reports the wake.  So
 * a signal is never swallowed by a cancelled waiter, and a completed wake
 * is never reported as cancelled.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#define COND_LIVE 0x5c0c0a11u
#define COND_DEAD 0x5c0cdeadu

enum { WAITING, WOKEN };

struct waiter {
	uint32_t state;		/* the futex word its thread sleeps on */
	struct waiter *prev, *next;
};

static const sc_result woken = { SC_OK, 0, 0 };

static void futex_wake_one(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static int is_live(const sc_cond *c)
{
	return c && load_acquire(&c->priv_state) == COND_LIVE;
}

/* The cond's lock word: 0 free, 1 taken, 2 taken with threads asleep on it. */
static void cond_lock(sc_cond *c)
{
	uint32_t expected = 0;

	if (__atomic_compare_exchange_n(&c->priv_lock, &expected, 1, false,
					__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return;
	while (__atomic_exchange_n(&c->priv_lock, 2, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &c->priv_lock, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

static void cond_unlock(sc_cond *c)
{
	if (__atomic_exchange_n(&c->priv_lock, 0, __ATOMIC_RELEASE) == 2)
		futex_wake_one(&c->priv_lock);
}

/* Memory that is not a live cond is never locked: its lock word could be anything. */
static int lock_live(sc_cond *c)
{
	if (!is_live(c))
		return 0;
	cond_lock(c);
	if (is_live(c))
		return 1;
	cond_unlock(c);
	return 0;
}

static void enqueue(sc_cond *c, struct waiter *w)
{
	struct waiter *tail = c->priv_tail;

	w->prev = tail;
	w->next = NULL;
	if (tail)
		tail->next = w;
	else
		c->priv_head = w;
	c->priv_tail = w;
}

static void unlink_waiter(sc_cond *c, struct waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		c->priv_head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		c->priv_tail = w->prev;
}

/*
 * Once marked woken, w's thread may return and reuse its stack: only the
 * word's address is used after that.  A futex wake there is at worst a
 * spurious wake-up for a later futex user, which every futex user must
 * tolerate anyway (glibc's own mutexes and semaphores wake so too).
 */
static void wake(sc_cond *c, struct waiter *w)
{
	uint32_t *word = &w->state;

	unlink_waiter(c, w);
	store_release(word, WOKEN);
	futex_wake_one(word);
}

static void wake_oldest(sc_cond *c)
{
	if (c->priv_head)
		wake(c, c->priv_head);
}

/* Until a signal marks w, or the wait ends otherwise: a cancel, a deadline, a bad token. */
static sc_result await_wake(sc_token *tok, struct waiter *w)
{
	while (load_acquire(&w->state) == WAITING) {
		sc_result r = sc_run(tok, SYS_futex, (long)&w->state, FUTEX_WAIT_PRIVATE,
				     WAITING, 0, 0, 0);
		if (r.status != SC_OK && !(r.status == SC_ERROR && r.error == EAGAIN))
			return r;
	}
	return woken;
}

/* A wait that ended otherwise leaves the queue, unless a signal took w off it first. */
static int leave(sc_cond *c, struct waiter *w)
{
	int queued;

	cond_lock(c);
	queued = load_acquire(&w->state) == WAITING;
	if (queued)
		unlink_waiter(c, w);
	cond_unlock(c);
	return queued;
}

/*
 * The node is queued before m is unlocked, so a signal sent at any time
 * after that finds it: no wake-up is lost between the unlock and the sleep.
 */
sc_result sc_cond_wait(sc_token *tok, sc_cond *c, pthread_mutex_t *m)
{
	struct waiter w = { .state = WAITING };
	sc_result r;
	int err;

	if (!m || !lock_live(c))
		return sc_error(EINVAL);
	enqueue(c, &w);
	cond_unlock(c);
	err = pthread_mutex_unlock(m);
	if (err) {
		/* Not the caller's to unlock; a signal that found w goes to the next waiter. */
		if (!leave(c, &w)) {
			cond_lock(c);
			wake_oldest(c);
			cond_unlock(c);
		}
		return sc_error(err);
	}
	r = await_wake(tok, &w);
	if (r.status != SC_OK && !leave(c, &w))
		r = woken;
	err = pthread_mutex_lock(m);
	return err ? sc_error(err) : r;
}

int sc_cond_signal(sc_cond *c)
{
	if (!lock_live(c))
		return EINVAL;
	wake_oldest(c);
	cond_unlock(c);
	return 0;
}

int sc_cond_broadcast(sc_cond *c)
{
	if (!lock_live(c))
		return EINVAL;
	while (c->priv_head)
		wake(c, c->priv_head);
	cond_unlock(c);
	return 0;
}

int sc_cond_init(sc_cond *c)
{
	if (!c)
		return EINVAL;
	*c = (sc_cond){ .priv_state = COND_LIVE };
	return 0;
}

/* Threads woken but not yet returned no longer count: they do not touch the cond. */
int sc_cond_destroy(sc_cond *c)
{
	int busy;

	if (!lock_live(c))
		return EINVAL;
	busy = c->priv_head != NULL;
	if (!busy)
		store_release(&c->priv_state, COND_DEAD);
	cond_unlock(c);
	return busy ? EBUSY : 0;
}
