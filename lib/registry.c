/*
 * The registry: one slot per thread, found through TLS, linked in a list
 * that only grows.  Cancellers walk it without locks and pin each slot while
 * they look at it; a call that ends while pinned waits for the pin to drop,
 * so a canceller never signals a thread that has left its call.  Threads
 * that come and go take and return slots under a lock, which also keeps
 * the slot of each thread findable by its tid.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread struct sc_slot *sc_self __attribute__((tls_model("initial-exec")));

static struct sc_slot *registry_head;

#define TID_BUCKETS 4096
static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sc_slot *free_slots;
static struct sc_slot *by_tid[TID_BUCKETS];

static struct sc_slot **bucket(int tid)
{
	return &by_tid[(unsigned)tid % TID_BUCKETS];
}

static void owner_add(struct sc_slot *s, int tid)
{
	s->tid_next = *bucket(tid);
	*bucket(tid) = s;
}

static void owner_remove(struct sc_slot *s, int tid)
{
	struct sc_slot **p = bucket(tid);

	while (*p && *p != s)
		p = &(*p)->tid_next;
	if (*p)
		*p = s->tid_next;
}

/* The slot thread tid owns, or NULL: a thread that has none is in no call. */
struct sc_slot *sc_slot_of(int tid)
{
	struct sc_slot *s;

	pthread_mutex_lock(&owners_lock);
	for (s = *bucket(tid); s && load_relaxed(&s->tid) != tid; s = s->tid_next)
		;
	pthread_mutex_unlock(&owners_lock);
	return s;
}

/*
 * Orders the canceller's earlier stores before its later loads on every
 * thread of the process, so the calling side needs only a compiler barrier.
 */
void sc_registry_barrier(void)
{
	if (!sc_g.use_membarrier ||
	    syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0))
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Under owners_lock.  The tid is stored with a full barrier, as a claim was always made. */
static struct sc_slot *slot_reuse(int tid)
{
	struct sc_slot *s = free_slots;

	if (s) {
		free_slots = s->free_next;
		__atomic_store_n(&s->tid, tid, __ATOMIC_SEQ_CST);
	}
	return s;
}

static void slot_return(struct sc_slot *s)
{
	int tid = load_relaxed(&s->tid);

	pthread_mutex_lock(&owners_lock);
	owner_remove(s, tid);
	store_release(&s->tid, 0);
	s->free_next = free_slots;
	free_slots = s;
	pthread_mutex_unlock(&owners_lock);
}

static struct sc_slot *slot_new(int tid)
{
	struct sc_slot *s = aligned_alloc(64, (sizeof(*s) + 63) & ~(size_t)63);

	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->tid = tid;
	s->timer = -1;
	s->ring_fd = -1;
	s->deadline = SC_NO_DEADLINE;
	s->svc_deadline = SC_NO_DEADLINE;
	s->svc_index = -1;
	s->next = load_relaxed(&registry_head);
	while (!__atomic_compare_exchange_n(&registry_head, &s->next, s, true,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
	return s;
}

static int unblock_signal(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sc_g.signo);
	return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* First call of a thread: take a slot, give it a deadline timer. */
struct sc_slot *sc_slot_claim(int *err)
{
	int tid = gettid();
	struct sc_slot *s;

	*err = sc_ensure_init();
	if (*err)
		return NULL;
	pthread_mutex_lock(&owners_lock);
	s = slot_reuse(tid);
	if (!s)
		s = slot_new(tid);
	if (s)
		owner_add(s, tid);
	pthread_mutex_unlock(&owners_lock);
	if (!s) {
		*err = ENOMEM;
		return NULL;
	}
	*err = sc_timer_create(s);
	if (!*err)
		*err = unblock_signal();
	if (!*err)
		*err = sc_set_slot_key(s);
	if (*err) {
		sc_timer_delete(s);
		slot_return(s);
		return NULL;
	}
	sc_uring_select(s, sc_g.uring_default);
	sc_self = s;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return s;
}

/* Thread exit.  A call still marked in flight was abandoned by a handler. */
void sc_slot_release(void *slot)
{
	struct sc_slot *s = slot;

	if (call_active(s))
		sc_call_exit(s);
	sc_scope_release(s);
	sc_self = NULL;
	compiler_barrier();
	sc_timer_delete(s);
	sc_uring_release(s);
	slot_return(s);
}

/* In the child only this thread exists, with a new tid and no timers. */
void sc_registry_after_fork(void)
{
	pthread_mutex_init(&owners_lock, NULL);
	free_slots = NULL;
	memset(by_tid, 0, sizeof(by_tid));
	for (struct sc_slot *s = registry_head; s; s = s->next) {
		s->pins = 0;
		s->signal_pins = 0;
		s->exiting = 0;
		s->timer = -1;
		s->timer_armed = 0;
		s->deadline = SC_NO_DEADLINE;
		s->svc_deadline = SC_NO_DEADLINE;	/* the service starts afresh */
		s->svc_index = -1;
		s->svc_queued = 0;
		s->svc_batched = 0;
		sc_uring_release(s);	/* the ring's memory is shared with the parent */
		if (s == sc_self) {
			store_relaxed(&s->tid, gettid());
			owner_add(s, s->tid);
			sc_timer_create(s);
		} else {
			s->call &= ~(uint64_t)SC_CALL_ACTIVE;
			s->via_ring = 0;
			s->tok = NULL;
			s->scope_depth = 0;
			store_relaxed(&s->tid, 0);
			s->free_next = free_slots;
			free_slots = s;
		}
	}
	sc_service_after_fork(sc_self && sc_self->scope_depth);
}

void sc_slot_unpin(struct sc_slot *s)
{
	if (__atomic_fetch_sub(&s->pins, 1, __ATOMIC_RELEASE) == 1 &&
	    load_acquire(&s->exiting))
		syscall(SYS_futex, &s->pins, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static int runs_under(const struct sc_slot *s, const sc_token *tok)
{
	const sc_token *t = call_active(s) ? load_relaxed(&s->tok) : NULL;

	return (t && sc_chain_contains(t, tok)) || sc_scope_contains(s, tok);
}

static int in_scope(const struct sc_slot *s, const sc_token *tok)
{
	(void)tok;
	return load_acquire(&s->scope_depth) != 0;
}

static void visit(int (*match)(const struct sc_slot *, const sc_token *),
		  const sc_token *tok, sc_slot_fn *fn, void *arg)
{
	struct sc_slot *head = load_acquire(&registry_head);

	for (struct sc_slot *s = head; s; s = s->next)
		__atomic_fetch_add(&s->pins, 1, __ATOMIC_SEQ_CST);
	sc_registry_barrier();
	for (struct sc_slot *s = head; s; s = s->next)
		if (!match(s, tok) || !fn(s, arg))
			sc_slot_unpin(s);
}

/*
 * Calls fn on every slot whose call in flight, or one of whose scopes, runs
 * under tok.  The slot stays pinned during fn: its call or scope cannot
 * end, its tokens and thread stay alive.  fn may hand the pin to a signal,
 * which drops it on delivery.  Async-signal-safe: no lock, no allocation.
 */
void sc_registry_visit(const sc_token *tok, sc_slot_fn *fn, void *arg)
{
	visit(runs_under, tok, fn, arg);
}

/* Whether the call or a scope of one slot runs under tok, looked at pinned. */
int sc_registry_slot_runs_under(struct sc_slot *s, const sc_token *tok)
{
	int used;

	__atomic_fetch_add(&s->pins, 1, __ATOMIC_SEQ_CST);
	sc_registry_barrier();
	used = runs_under(s, tok);
	sc_slot_unpin(s);
	return used;
}

void sc_registry_visit_scoped(sc_slot_fn *fn, void *arg)
{
	visit(in_scope, NULL, fn, arg);
}

/*
 * Signals sent to a thread that blocks the library's signal wait pending
 * (a cancel found it so, and said EIO): each look lets them land.  One may
 * be sent after the look, and is taken at the next.
 */
#define PENDING_LOOK_NS 1000000
#define UNSTICK_PATIENCE_NS 50000000

static void wait_unpinned(struct sc_slot *s)
{
	const struct timespec look = { 0, PENDING_LOOK_NS };
	int64_t give_up = sc_now_ns() + UNSTICK_PATIENCE_NS;
	uint32_t pins;

	while ((pins = load_acquire(&s->pins))) {
		if (load_acquire(&s->signal_pins))
			sc_signal_take_pending();
		if (syscall(SYS_futex, &s->pins, FUTEX_WAIT_PRIVATE, pins, &look, NULL, 0) &&
		    errno == ETIMEDOUT && sc_now_ns() >= give_up)
			sc_signal_unstick(s);
	}
	/* A signal sent while we were pinned may be pending: take it now, harmlessly. */
	syscall(SYS_getppid);
}

/*
 * A call or scope ends while pinned, or a call with the thread's timer
 * armed.  Until exiting drops, a signal of the library that lands is still
 * in the call or scope.
 */
void sc_slot_settle(struct sc_slot *s)
{
	store_relaxed(&s->exiting, 1);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (load_acquire(&s->pins))
		wait_unpinned(s);
	if (load_relaxed(&s->timer_armed))
		sc_timer_disarm(s);
	store_release(&s->exiting, 0);
}

/*
 * A call's deadline, its own or one a canceller moved onto a plain call,
 * must not outlive it.
 */
void sc_call_exit_slow(struct sc_slot *s)
{
	sc_slot_settle(s);
	store_relaxed(&s->deadline, SC_NO_DEADLINE);
}

/* The newest slot; next leads through all of them, and never changes. */
struct sc_slot *sc_registry_first(void)
{
	return load_acquire(&registry_head);
}

void sc_registry_count(unsigned *slots, unsigned *taken)
{
	*slots = *taken = 0;
	for (struct sc_slot *s = load_acquire(&registry_head); s; s = s->next) {
		++*slots;
		*taken += load_relaxed(&s->tid) != 0;
	}
}
