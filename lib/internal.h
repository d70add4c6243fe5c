/* Internals shared by the implementation; not installed. */
#ifndef SC_INTERNAL_H
#define SC_INTERNAL_H

#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
/* The public API is all the library exports; everything else is hidden. */
#pragma GCC visibility push(default)
#include <syscancel.h>
#pragma GCC visibility pop

#define SC_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define compiler_barrier() __asm__ __volatile__("" ::: "memory")

/* What the stub returns when it diverted the call before the kernel ran it. */
#define SC_STUB_CANCELLED LONG_MIN

/*
 * One per thread that has made a syscancel call.  Slots are never freed: a
 * thread's exit returns its slot for reuse, so the registry can be walked
 * without locks, from a signal handler too.
 *
 * The assembly stubs read the first three fields at fixed offsets: call 0,
 * abort 8, inside 16.  A call is aborted when abort equals its call word,
 * so a value left from an earlier call never matches a later one.
 */
struct io_uring;

struct sc_slot {
	uint64_t call;		/* generation << 2 | SC_CALL_URING | SC_CALL_ACTIVE */
	uint64_t abort;		/* the call word of the call that must not run */
	int inside;		/* the stub is on this thread's stack */
	int tid;		/* owner thread, 0 when free */
	sc_token *tok;		/* the token of the call in flight */
	int64_t deadline;	/* effective deadline of the call in flight */
	uint32_t pins;		/* cancellers looking at this slot, and signals on their way */
	uint32_t signal_pins;	/* of those pins, the ones our signals carry */
	uint32_t landings;	/* the library's signals this thread has taken */
	int exiting;		/* the owner is in the slow end of a call */
	int timer;		/* kernel id of the owner's deadline timer, -1 if none */
	int timer_armed;
	int via_ring;		/* the call in flight goes through the thread's io_uring */
	/*
	 * The second cache line (on 64-bit): what a snapshot reads besides the first, as
	 * it walks the list.  The call's syscall and first two arguments (a
	 * canceller looks for a signalfd in a poll's array with them); when a
	 * snapshot first saw the call or scope keyed seen_key (introspect.c);
	 * a canceller's cause for the one keyed cause_key.
	 */
	struct sc_slot *next;
	int scope_depth;	/* open scopes; scopes[0] is the outermost */
	int seen_lock;
	long nr;
	long arg;
	long arg2;
	uint64_t seen_key;
	int64_t seen_ns;
	uint64_t cause_key;
	int cause;
	int ring_fd;		/* for cancellers; -1 until the ring exists */
	struct io_uring *ring;
	struct sc_slot *free_next;	/* in the free list, while no thread owns it */
	struct sc_slot *tid_next;	/* in its tid's bucket, while a thread owns it */
	uint64_t scope_seq;		/* scopes entered so far */
	uint64_t scope_ids[SC_SCOPE_MAX];	/* scope_seq when each open scope was entered */
	sc_token *scopes[SC_SCOPE_MAX];
	int64_t scope_poked;	/* when a scope's thread was last looked at in /proc */
	/* the deadline service's: when it looks at the slot next, and its lists */
	int64_t svc_deadline;
	int svc_index;		/* in the service's heap, -1 if not there */
	int svc_queued;		/* in the service's inbox */
	int svc_batched;
	struct sc_slot *svc_inbox_next;
	struct sc_slot *svc_batch_next;
};

/* The call word's low bits: the fast path tests both with one load. */
#define SC_CALL_ACTIVE 1u	/* a call is in flight */
#define SC_CALL_URING 2u	/* this thread's calls go through its io_uring */
#define SC_CALL_NEXT 4u		/* one generation */

static inline int call_active(const struct sc_slot *s)
{
	return load_acquire(&s->call) & SC_CALL_ACTIVE;
}

static inline int call_aborted(const struct sc_slot *s)
{
	return load_acquire(&s->abort) == load_relaxed(&s->call);
}

/* init.c */
struct sc_globals {
	int signo;
	int pid;
	int use_membarrier;
	int uring_default;	/* new threads' calls go through io_uring */
};
extern struct sc_globals sc_g SC_HIDDEN;
int sc_ensure_init(void) SC_HIDDEN;
int sc_set_slot_key(struct sc_slot *s) SC_HIDDEN;

/* registry.c */
extern __thread struct sc_slot *sc_self __attribute__((tls_model("initial-exec"))) SC_HIDDEN;
struct sc_slot *sc_slot_claim(int *err) SC_HIDDEN;
void sc_slot_release(void *slot) SC_HIDDEN;
void sc_registry_after_fork(void) SC_HIDDEN;
/* Returns nonzero when it handed the slot's pin over to a signal. */
typedef int sc_slot_fn(struct sc_slot *s, void *arg);
void sc_slot_unpin(struct sc_slot *s) SC_HIDDEN;
void sc_registry_visit(const sc_token *tok, sc_slot_fn *fn, void *arg) SC_HIDDEN;
/* Calls fn on every slot with a scope open, pinned likewise. */
void sc_registry_visit_scoped(sc_slot_fn *fn, void *arg) SC_HIDDEN;
int sc_registry_slot_runs_under(struct sc_slot *s, const sc_token *tok) SC_HIDDEN;
struct sc_slot *sc_slot_of(int tid) SC_HIDDEN;
/* Orders the caller's earlier stores before its later loads, on every thread. */
void sc_registry_barrier(void) SC_HIDDEN;
void sc_registry_count(unsigned *slots, unsigned *taken) SC_HIDDEN;
struct sc_slot *sc_registry_first(void) SC_HIDDEN;

/* token.c; priv_state holds a magic number saying live or dead, plus flags */
#define SC_TOK_CANCELLED 0x1
#define SC_TOK_DYING 0x2
#define SC_TOK_FLAGS 0xff
#define SC_TOK_LIVE 0x5c7e0000
#define SC_TOK_DEAD 0x5cdd0000
/* priv_user: 0 before any call ran under the token, else the tid of the only
   thread whose calls did, or SC_TOK_SHARED */
#define SC_TOK_SHARED (-1)
int sc_chain_mark(sc_token *tok, int tid) SC_HIDDEN;
/* Marks the chain for this thread and waits out a destroy; the chain's state. */
int sc_chain_settle(sc_token *tok, int tid, int64_t *deadline) SC_HIDDEN;
enum { SC_CHAIN_LIVE, SC_CHAIN_DYING, SC_CHAIN_CANCELLED, SC_CHAIN_INVALID };
int sc_chain_check(const sc_token *tok, int64_t *deadline) SC_HIDDEN;
int sc_chain_contains(const sc_token *tok, const sc_token *ancestor) SC_HIDDEN;

/* deadline.c */
int sc_timer_create(struct sc_slot *s) SC_HIDDEN;
void sc_timer_delete(struct sc_slot *s) SC_HIDDEN;
void sc_timer_kick(struct sc_slot *s) SC_HIDDEN;
void sc_timer_disarm(struct sc_slot *s) SC_HIDDEN;
int sc_deadline_min(struct sc_slot *s, int64_t deadline) SC_HIDDEN;
void sc_deadline_lower(struct sc_slot *s, int64_t deadline) SC_HIDDEN;
int sc_deadline_passed(const struct sc_slot *s) SC_HIDDEN;

/* handler.c */
int sc_handler_install(int signo) SC_HIDDEN;
int sc_send_cancel(struct sc_slot *s, uint64_t call, int *unreachable) SC_HIDDEN;
/* A call a canceller signalled; landings: the slot's count before the send. */
struct sc_sent {
	struct sc_slot *slot;
	uint64_t call;
	uint32_t landings;
};
int sc_cancel_held_back(const struct sc_sent *x) SC_HIDDEN;
int sc_handler_in_place(void) SC_HIDDEN;
/* A signal for a thread in a scope, naming the syscall it was seen blocked in. */
int sc_send_scope_signal(struct sc_slot *s, long nr, uint64_t sig) SC_HIDDEN;
/* The syscall and signature a scope signal carries; 0 if it carries none. */
int sc_scope_signal_names(const siginfo_t *si, long *nr, uint64_t *sig) SC_HIDDEN;
int sc_signal_take_pending(void) SC_HIDDEN;
void sc_signal_unstick(struct sc_slot *s) SC_HIDDEN;

/*
 * What the handler saw, for the torture suite (which links the library's
 * objects and reads these directly).  stray: library signals that landed on
 * a thread outside any syscancel call, which must never happen.
 */
struct sc_signal_counts {
	uint64_t window;	/* cancels that landed between the abort check and the syscall */
	uint64_t in_kernel;	/* in the syscall: the kernel rewound it, or it returned EINTR */
	uint64_t elsewhere;	/* in the call, before the stub or after the syscall returned */
	uint64_t stray;
	uint64_t refused;	/* sends the full signal queue refused: the timer took over */
	uint64_t scope_skipped;	/* scope: a blocking syscall about to run (or rewound) skipped */
	uint64_t scope_rewritten;	/* scope: a blocking syscall's EINTR made ECANCELED/ETIMEDOUT */
	uint64_t scope_missed;	/* scope: landed where no blocking syscall could be ended */
};
extern struct sc_signal_counts sc_signal_counts SC_HIDDEN;
#if defined(SC_WIDE_WINDOW) && defined(SC_HAVE_STUB)
extern int sc_pc_check SC_HIDDEN;	/* 0: the handler never diverts, to prove the tests fail */
#endif
#ifdef SC_WIDE_WINDOW
extern int sc_scope_diversion SC_HIDDEN;	/* 0: scopes end no syscall, likewise */
#endif

/* reach.c: whether the signal can reach a thread's call or scope */
/* Before a send: the handler in place, and a call's syscall would not take it as data. */
int sc_signal_may_reach(const struct sc_slot *s, int in_call) SC_HIDDEN;
/* The thread blocks the signal where its call waits; x: the send, NULL before one. */
int sc_signal_held_back(const struct sc_slot *s, const struct sc_sent *x) SC_HIDDEN;

/*
 * The call has left, the signals carrying pins have all landed, or the
 * thread has taken one of the library's signals since: its call does not
 * block them, and the one sent lands in turn.
 */
static inline int sc_signal_landed(const struct sc_sent *x)
{
	const struct sc_slot *s = x->slot;

	return load_acquire(&s->call) != x->call || !load_acquire(&s->signal_pins) ||
	       load_acquire(&s->landings) != x->landings;
}

/* the stub, lib/arch/<arch>/: the syscall nr with its six arguments */
long sc_stub_enter(struct sc_slot *s, long nr, long a1, long a2, long a3,
		   long a4, long a5, long a6) SC_HIDDEN;

/* scope.c: scopes, and what the handler does for a thread in one */
/* The state of a thread's scopes: SC_CHAIN_LIVE or _CANCELLED, *deadline the earliest. */
int sc_scope_check(const struct sc_slot *s, int64_t *deadline) SC_HIDDEN;
/* ECANCELED or ETIMEDOUT once a scope of the thread has ended, else 0. */
int sc_scope_ended(const struct sc_slot *s) SC_HIDDEN;
int sc_scope_contains(const struct sc_slot *s, const sc_token *tok) SC_HIDDEN;
int sc_scope_poke(struct sc_slot *s) SC_HIDDEN;
void sc_scope_watch(struct sc_slot *s) SC_HIDDEN;
#define SC_SCOPE_TICK_NS 1000000	/* how often an ended scope's thread is looked at */
void sc_scope_release(struct sc_slot *s) SC_HIDDEN;
void sc_scope_on_signal(struct sc_slot *s, const siginfo_t *si, void *ctx) SC_HIDDEN;

/* scope_calls.c: which syscalls, with which arguments, can wait */
struct sc_syscall {
	long nr;
	long args[6];
	int entered;		/* rewound by the kernel for a restart, not just about to run */
};
int sc_syscall_can_wait(const struct sc_syscall *c) SC_HIDDEN;
/* By its number alone, for a syscall seen waiting: it is one a scope may end. */
int sc_syscall_may_wait(long nr) SC_HIDDEN;
/* From /proc: the syscall the thread waits in; EAGAIN if it runs or waits elsewhere. */
int sc_proc_blocked_syscall(int tid, struct sc_syscall *c, uint64_t *sp, uint64_t *pc) SC_HIDDEN;
/* What a canceller learns of a blocked syscall, and what the handler compares it with. */
uint64_t sc_syscall_signature(const struct sc_syscall *c, uint64_t sp, uint64_t pc) SC_HIDDEN;

/* introspect.c: a canceller, with the slot pinned, leaves its cause for snapshots */
void sc_introspect_cause(struct sc_slot *s, int cause) SC_HIDDEN;

/* deadline_service.c: fires the deadlines of calls and scopes, re-signals ended scopes */
int sc_service_running(void) SC_HIDDEN;
int sc_service_may_start(void) SC_HIDDEN;
int sc_service_start(void) SC_HIDDEN;
void sc_service_notify(struct sc_slot *s, int64_t when) SC_HIDDEN;
void sc_service_after_fork(int needed) SC_HIDDEN;

/* lib/arch/<arch>/scope.c: the registers of an interrupted syscall */
extern const int sc_arch_scopes SC_HIDDEN;	/* 0: plain syscalls in scopes run on */
/* At a syscall instruction, about to run or rewound by the kernel for a restart. */
int sc_arch_before_syscall(const void *ctx, struct sc_syscall *c) SC_HIDDEN;
/* Just after a syscall instruction that returned -EINTR; c->nr unknown (-1). */
int sc_arch_after_eintr(const void *ctx, struct sc_syscall *c, uint64_t *sp, uint64_t *pc) SC_HIDDEN;
void sc_arch_skip_syscall(void *ctx, long ret) SC_HIDDEN;
void sc_arch_set_return(void *ctx, long ret) SC_HIDDEN;

/* call.c: the out-of-line parts of a call */
/*
 * A relative timeout among a request's arguments: a retry after someone
 * else's signal passes what remains of it, not the whole again.  Calls whose
 * kernel writes the time left back (ppoll, select) need none.
 */
enum { SC_TIMEOUT_NONE, SC_TIMEOUT_MS, SC_TIMEOUT_TIMESPEC };

struct sc_req {
	long nr;
	long args[6];
	unsigned flags;
	int timeout;		/* SC_TIMEOUT_*: what args[timeout_arg] holds */
	int timeout_arg;
	int64_t timeout_start;	/* when the call began */
};
#define SC_REQ_NO_RETRY 1u	/* EINTR is final (close) */
#define SC_REQ_CONNECT 2u	/* a retried connect that finds the socket connected succeeded */
#define SC_REQ_SIGNAL_WAIT 4u	/* waits for a signal: EINTR is its result (pause, sigsuspend) */
#define SC_REQ_SLEEP 8u		/* sc_sleep's: until a CLOCK_MONOTONIC time the library holds */
#define SC_NOT_ENTERED (LONG_MIN + 1)
sc_result sc_run_req(sc_token *tok, const struct sc_req *req) SC_HIDDEN;
sc_result sc_run_resume(struct sc_slot *s, sc_token *tok, const struct sc_req *req,
			long v) SC_HIDDEN;
void sc_slot_settle(struct sc_slot *s) SC_HIDDEN;
void sc_call_exit_slow(struct sc_slot *s) SC_HIDDEN;
sc_result sc_error(int err) SC_HIDDEN;
int sc_check_chain(struct sc_slot *s, sc_token *tok, sc_result *r, int64_t *deadline) SC_HIDDEN;
int sc_interrupted(struct sc_slot *s, const sc_token *tok, sc_result *r) SC_HIDDEN;
/* When the request's relative timeout ends; SC_NO_DEADLINE if it cannot say. */
int64_t sc_timeout_end(const struct sc_req *req) SC_HIDDEN;

/*
 * A backend says how a call enters the kernel and how to read what came
 * back; the life of a call around it is one loop, in call.c.
 */
struct sc_call {
	const struct sc_req *req;
	int retried;		/* an earlier attempt was interrupted */
	/* the io_uring backend's */
	int64_t end;		/* when the request's own time is up */
	int kind;
	struct pollfd writable;
	struct sc_req connecting;
};

struct sc_backend {
	int (*begin)(struct sc_slot *s, struct sc_call *c);	/* before the call is published */
	void (*deadline)(struct sc_slot *s, int64_t deadline);
	long (*enter)(struct sc_slot *s, struct sc_call *c);
	int (*interrupted)(const struct sc_call *c, long v);	/* by a signal or a cancel */
	/* 0 with the call's result in *r; nonzero: the signal path takes the call over */
	int (*finish)(struct sc_call *c, long v, sc_result *r);
	int (*expired)(struct sc_call *c, sc_result *r);	/* the request's own time is up */
	void (*end)(struct sc_slot *s);				/* after the call is withdrawn */
};

/* syscall.c: sc_syscall's knowledge of the syscalls it makes, for every call */
sc_result sc_run_syscall(sc_token *tok, struct sc_req *req) SC_HIDDEN;
/* A public call that is the syscall nr as sc_syscall makes it. */
#define SC_SYSCALL(name, params, nr_, ...) \
	sc_result name params \
	{ return sc_run_syscall(tok, &(struct sc_req){ .nr = (nr_), .args = { __VA_ARGS__ } }); }
#define SC_KERNEL_SIGSET 8	/* the size of the kernel's signal set: _NSIG / 8 */

/* calls_signals.c: the signal sets a request hands the kernel, without our signal */
struct sc_pselect_mask {		/* pselect6's sixth argument */
	const sigset_t *set;
	size_t size;
};
struct sc_sets {
	sigset_t set;
	struct sc_pselect_mask pselect;
};
void sc_req_spare_our_signal(struct sc_req *req, struct sc_sets *room) SC_HIDDEN;

/* user_memory.c: what the application hands over, without faulting: 0 or EFAULT */
int sc_copy_in(void *dst, const void *src, size_t len) SC_HIDDEN;
int sc_copy_out(void *dst, const void *src, size_t len) SC_HIDDEN;

/* uring.c: the io_uring backend */
extern const struct sc_backend sc_uring_backend SC_HIDDEN;
int sc_uring_probe(void) SC_HIDDEN;
int sc_uring_select(struct sc_slot *s, int on) SC_HIDDEN;
int sc_uring_can_run(const struct sc_req *req) SC_HIDDEN;
void sc_uring_kick(struct sc_slot *s) SC_HIDDEN;
void sc_uring_release(struct sc_slot *s) SC_HIDDEN;

static inline sc_result sc_completed(long v)
{
	if (v < 0 && v >= -4095)
		return sc_error((int)-v);
	return (sc_result){ SC_OK, 0, v };
}

/*
 * The call word moves last, and the fence orders the end of the previous
 * call before the new fields: a snapshot that reads the same word before
 * and after the fields has read one call's (a no-op on x86).
 * SC_NO_CALL_INFO: the benchmark's build of the path without what only
 * snapshots read, to show what it costs.
 */
static inline void sc_call_enter(struct sc_slot *s, sc_token *tok, long nr, long arg,
				 long arg2)
{
#ifndef SC_NO_CALL_INFO
	__atomic_thread_fence(__ATOMIC_RELEASE);
	store_relaxed(&s->nr, nr);
	store_relaxed(&s->arg, arg);
	store_relaxed(&s->arg2, arg2);
#else
	(void)nr, (void)arg, (void)arg2;
#endif
	store_relaxed(&s->tok, tok);
	store_release(&s->call, s->call + SC_CALL_NEXT + SC_CALL_ACTIVE);
	/* Pairs with the canceller's membarrier: see sc_registry_visit(). */
	if (sc_g.use_membarrier)
		compiler_barrier();
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/*
 * The end of every call: after it, no signal of the library reaches this
 * thread, and no deadline of the call is left in its slot.
 */
static inline void sc_call_exit(struct sc_slot *s)
{
	store_release(&s->call, s->call & ~(uint64_t)SC_CALL_ACTIVE);
	if (sc_g.use_membarrier)
		compiler_barrier();
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (unlikely(load_acquire(&s->pins) | load_relaxed(&s->timer_armed)))
		sc_call_exit_slow(s);
	else if (unlikely(load_relaxed(&s->deadline) != SC_NO_DEADLINE))
		store_relaxed(&s->deadline, SC_NO_DEADLINE);	/* no canceller holds the slot */
}

/* Live, not cancelled, no deadline up the chain, and marked as used by this thread. */
static inline int sc_chain_plain(const sc_token *tok, int tid)
{
	for (const sc_token *t = tok; t; t = t->priv_parent) {
		int user = load_relaxed(&t->priv_user);
		if (load_acquire(&t->priv_state) != SC_TOK_LIVE ||
		    load_relaxed(&t->priv_deadline) != SC_NO_DEADLINE ||
		    (user != tid && user != SC_TOK_SHARED))
			return 0;
	}
	return 1;
}

/*
 * The mechanism behind every plain call, inlined into each wrapper: the
 * common case (no deadline, no cancel, no signal) stays on this path, and
 * the request is only built in memory when the call leaves it.
 */
#define SC_REQ(nr_, a1, a2, a3, a4, a5, a6) \
	(&(struct sc_req){ .nr = (nr_), .args = { a1, a2, a3, a4, a5, a6 } })

static inline __attribute__((always_inline))
sc_result sc_run(sc_token *tok, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	struct sc_slot *s = sc_self;
	long v = SC_NOT_ENTERED;

	if (unlikely(!s || (load_relaxed(&s->call) & (SC_CALL_ACTIVE | SC_CALL_URING)) ||
		     load_relaxed(&s->scope_depth)))
		return sc_run_req(tok, SC_REQ(nr, a1, a2, a3, a4, a5, a6));
	sc_call_enter(s, tok, nr, a1, a2);
	if (likely(sc_chain_plain(tok, load_relaxed(&s->tid)))) {
		v = sc_stub_enter(s, nr, a1, a2, a3, a4, a5, a6);
		if (likely(v != -EINTR && v != SC_STUB_CANCELLED)) {
			sc_call_exit(s);
			return sc_completed(v);
		}
	}
	return sc_run_resume(s, tok, SC_REQ(nr, a1, a2, a3, a4, a5, a6), v);
}

#endif
