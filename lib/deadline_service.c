/*
 * The deadline service: one thread per process, started by the first call
 * or scope with a deadline, that sleeps until the earliest deadline of the
 * calls and scopes in flight.  A call publishes its deadline in its slot
 * with plain stores; it tells the service only when that deadline is
 * earlier than the one the service keeps for the slot, so back-to-back
 * calls with deadlines cost no syscall.  At a deadline the service signals
 * the call as a cancel would, with the slot pinned, so no thread outside a
 * call is ever signalled.  A scope that has ended is looked at every
 * millisecond until it is left, so that a library's retry loop ends too.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BATCH_NS 20000		/* deadlines this close are served in one wake-up */
#define WALKING INT64_MIN	/* next_wake while the service works */

static int running;		/* in this process: a fork child starts its own */
static int forked;		/* this process is a fork child that has not started one */
static uint32_t wake_seq;	/* futex word: bumped to wake the service */
static int64_t next_wake = SC_NO_DEADLINE;
static struct sc_slot *inbox;	/* slots whose deadline came earlier than the service knew */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

/* The service's own min-heap of slots by the deadline it keeps for them. */
static struct sc_slot **heap;
static int heap_len, heap_cap;

static int64_t key(const struct sc_slot *s)
{
	return s->svc_deadline;
}

static void heap_place(int i, struct sc_slot *s)
{
	heap[i] = s;
	s->svc_index = i;
}

static void sift_up(int i)
{
	struct sc_slot *s = heap[i];

	while (i > 0 && key(heap[(i - 1) / 2]) > key(s)) {
		heap_place(i, heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_place(i, s);
}

static void sift_down(int i)
{
	struct sc_slot *s = heap[i];

	for (;;) {
		int c = 2 * i + 1;
		if (c >= heap_len)
			break;
		if (c + 1 < heap_len && key(heap[c + 1]) < key(heap[c]))
			c++;
		if (key(heap[c]) >= key(s))
			break;
		heap_place(i, heap[c]);
		i = c;
	}
	heap_place(i, s);
}

static void heap_remove(struct sc_slot *s)
{
	int i = s->svc_index;
	struct sc_slot *last;

	if (i < 0)
		return;
	s->svc_index = -1;
	last = heap[--heap_len];
	if (last == s)
		return;
	heap_place(i, last);
	sift_up(i);
	sift_down(last->svc_index);
}

/* Out of memory: the slot is looked at again at the next wake-up, from the batch. */
static int heap_insert(struct sc_slot *s)
{
	if (heap_len == heap_cap) {
		int cap = heap_cap ? 2 * heap_cap : 64;
		struct sc_slot **h = realloc(heap, (size_t)cap * sizeof(*h));
		if (!h)
			return ENOMEM;
		heap = h;
		heap_cap = cap;
	}
	heap_place(heap_len++, s);
	sift_up(heap_len - 1);
	return 0;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/*
 * With the slot pinned: end what is due, and say when to look again.  A
 * call on the ring keeps its own time; a call in an ended scope ends by the
 * cancel's signal, and the scope's thread is signalled once it waits
 * outside the call.
 */
static int64_t serve_slot(struct sc_slot *s, int64_t now, int *handed)
{
	int64_t next = SC_NO_DEADLINE, dl;
	int unreachable = 0;	/* a deadline has no one to tell; see reach.c */

	if (call_active(s) && !load_acquire(&s->via_ring)) {
		dl = load_acquire(&s->deadline);
		if (dl <= now)
			*handed = sc_send_cancel(s, load_relaxed(&s->call), &unreachable);
		else
			next = dl;
	}
	if (!load_acquire(&s->scope_depth))
		return next;
	if (sc_scope_check(s, &dl) != SC_CHAIN_CANCELLED && dl > now)
		return min64(next, dl);
	dl = load_relaxed(&s->scope_poked) + SC_SCOPE_TICK_NS;
	if (dl > now + BATCH_NS)	/* a canceller looked just now */
		return min64(next, dl);
	if (!call_active(s) && !*handed)
		*handed = sc_scope_poke(s);
	return min64(next, now + SC_SCOPE_TICK_NS);
}

static struct sc_slot *take_inbox(void)
{
	return __atomic_exchange_n(&inbox, NULL, __ATOMIC_ACQ_REL);
}

/*
 * The batch: the inbox and the slots due now.  Each one's kept deadline
 * drops before the barrier: a call that publishes an earlier deadline
 * meanwhile either is seen below or sees that and tells the service.
 */
static struct sc_slot *gather(int64_t now)
{
	struct sc_slot *batch = NULL, *s, *next;

	for (s = take_inbox(); s; s = next) {
		next = s->svc_inbox_next;
		store_release(&s->svc_queued, 0);
		if (s->svc_batched)
			continue;
		heap_remove(s);
		s->svc_batched = 1;
		s->svc_batch_next = batch;
		batch = s;
	}
	while (heap_len && key(heap[0]) <= now + BATCH_NS) {
		s = heap[0];
		heap_remove(s);
		s->svc_batched = 1;
		s->svc_batch_next = batch;
		batch = s;
	}
	for (s = batch; s; s = s->svc_batch_next) {
		__atomic_store_n(&s->svc_deadline, SC_NO_DEADLINE, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&s->pins, 1, __ATOMIC_SEQ_CST);
	}
	return batch;
}

static void serve_batch(struct sc_slot *batch, int64_t now)
{
	for (struct sc_slot *s = batch, *next; s; s = next) {
		int handed = 0;
		int64_t at = serve_slot(s, now, &handed);

		next = s->svc_batch_next;
		s->svc_batched = 0;
		if (!handed)
			sc_slot_unpin(s);
		if (at == SC_NO_DEADLINE)
			continue;
		store_release(&s->svc_deadline, at);
		if (heap_insert(s))
			sc_service_notify(s, now);
	}
}

static void sleep_until(uint32_t seq, int64_t when)
{
	struct timespec ts = { when / 1000000000LL, when % 1000000000LL };

	syscall(SYS_futex, &wake_seq, FUTEX_WAIT_BITSET_PRIVATE, seq,
		when == SC_NO_DEADLINE ? NULL : &ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

static void *serve(void *arg)
{
	(void)arg;
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	for (;;) {
		uint32_t seq = load_acquire(&wake_seq);
		int64_t now = sc_now_ns();
		struct sc_slot *batch;

		__atomic_store_n(&next_wake, WALKING, __ATOMIC_SEQ_CST);
		batch = gather(now);
		if (batch) {
			sc_registry_barrier();
			serve_batch(batch, now);
		}
		__atomic_store_n(&next_wake, heap_len ? key(heap[0]) : SC_NO_DEADLINE,
				 __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&inbox, __ATOMIC_SEQ_CST))
			sleep_until(seq, load_relaxed(&next_wake));
	}
	return NULL;
}

int sc_service_running(void)
{
	return load_acquire(&running);
}

/*
 * Whether a call's deadline may start the service.  Not in a fork child:
 * a thread made there can hang on a lock that another thread of the parent
 * held at the fork (sanitizer runtimes do); its deadlines take the thread's
 * own timer.  A scope starts the service there all the same.
 */
int sc_service_may_start(void)
{
	return !load_relaxed(&forked);
}

/* The service takes no signal: the library's and the application's go elsewhere. */
int sc_service_start(void)
{
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	int err = 0;

	pthread_mutex_lock(&start_lock);
	if (!running) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 64 * 1024);
		err = pthread_create(&thread, &attr, serve, NULL);
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (!err) {
			pthread_setname_np(thread, "syscancel");
			store_release(&running, 1);
		}
	}
	pthread_mutex_unlock(&start_lock);
	return err;
}

static void wake(void)
{
	__atomic_fetch_add(&wake_seq, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/*
 * The slot needs looking at by when, earlier than the service knows.
 * Async-signal-safe: a lock-free push, and a wake-up only if the service
 * would sleep past when.
 */
void sc_service_notify(struct sc_slot *s, int64_t when)
{
	if (!__atomic_exchange_n(&s->svc_queued, 1, __ATOMIC_ACQ_REL)) {
		s->svc_inbox_next = load_relaxed(&inbox);
		while (!__atomic_compare_exchange_n(&inbox, &s->svc_inbox_next, s, true,
						    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
			;
	}
	int64_t next = __atomic_load_n(&next_wake, __ATOMIC_SEQ_CST);
	if (next == WALKING || when < next)
		wake();
}

/* Only the forking thread lives on in the child; the service starts again. */
void sc_service_after_fork(int needed)
{
	pthread_mutex_init(&start_lock, NULL);
	running = 0;
	forked = 1;
	wake_seq = 0;
	next_wake = SC_NO_DEADLINE;
	inbox = NULL;
	heap_len = 0;
	if (needed)
		sc_service_start();
}
