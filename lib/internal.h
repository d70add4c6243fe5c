/* Internals shared by the implementation; not installed. */
#ifndef SC_INTERNAL_H
#define SC_INTERNAL_H

#include "config.h"

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <syscancel.h>

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
 * The part of a slot the syscall stub reads.  The x86_64 stub hard-codes
 * these offsets: abort 0, inside 4, nr 8, args 16.
 */
struct sc_stub {
	int abort;		/* set before the signal: the call must not enter */
	int inside;		/* the stub is on this thread's stack */
	long nr;
	long args[6];
};

/*
 * One per thread that has made a syscancel call.  Slots are never freed: a
 * thread's exit returns its slot for reuse, so the registry can be walked
 * without locks, from a signal handler too.
 */
struct sc_slot {
	struct sc_stub stub;
	uint64_t call;		/* generation << 1 | 1 while a call is in flight */
	sc_token *tok;		/* the token of the call in flight */
	int64_t deadline;	/* effective deadline of the call in flight */
	uint32_t pins;		/* cancellers looking at this slot */
	int exit_waiting;	/* the owner waits for pins to drop */
	int tid;		/* owner thread, 0 when free */
	int timer;		/* kernel id of the owner's deadline timer, -1 if none */
	int timer_armed;
	struct sc_slot *next;
};

static inline int call_active(const struct sc_slot *s)
{
	return load_acquire(&s->call) & 1;
}

/* init.c */
struct sc_globals {
	int signo;
	int pid;
	int use_membarrier;
};
extern struct sc_globals sc_g SC_HIDDEN;
int sc_ensure_init(void) SC_HIDDEN;
int sc_set_slot_key(struct sc_slot *s) SC_HIDDEN;

/* registry.c */
extern __thread struct sc_slot *sc_self __attribute__((tls_model("initial-exec"))) SC_HIDDEN;
struct sc_slot *sc_slot_claim(int *err) SC_HIDDEN;
void sc_slot_release(void *slot) SC_HIDDEN;
void sc_registry_after_fork(void) SC_HIDDEN;
typedef void sc_slot_fn(struct sc_slot *s, void *arg);
void sc_registry_visit(const sc_token *tok, sc_slot_fn *fn, void *arg) SC_HIDDEN;
void sc_call_exit(struct sc_slot *s) SC_HIDDEN;

/* token.c */
enum { SC_CHAIN_LIVE, SC_CHAIN_CANCELLED, SC_CHAIN_INVALID };
int sc_chain_check(const sc_token *tok, int64_t *deadline) SC_HIDDEN;
int sc_chain_contains(const sc_token *tok, const sc_token *ancestor) SC_HIDDEN;

/* deadline.c */
int sc_timer_create(struct sc_slot *s) SC_HIDDEN;
void sc_timer_delete(struct sc_slot *s) SC_HIDDEN;
void sc_deadline_lower(struct sc_slot *s, int64_t deadline) SC_HIDDEN;
void sc_deadline_disarm(struct sc_slot *s) SC_HIDDEN;
int sc_deadline_passed(const struct sc_slot *s) SC_HIDDEN;

/* handler.c */
int sc_handler_install(int signo) SC_HIDDEN;
void sc_send_cancel(struct sc_slot *s, uint64_t call) SC_HIDDEN;

/* the stub, lib/arch/<arch>/ */
long sc_stub_enter(struct sc_stub *st) SC_HIDDEN;

/* call.c */
struct sc_req {
	long nr;
	long args[6];
	unsigned flags;
	int ms_arg;		/* index of an int ms timeout to recompute on retry, or -1 */
	int64_t ms_end;		/* when that timeout ends */
};
#define SC_REQ_NO_RETRY 1u	/* EINTR is final (close) */
#define SC_REQ_CONNECT 2u	/* a retried connect that finds the socket connected succeeded */
sc_result sc_run(sc_token *tok, struct sc_req *req) SC_HIDDEN;
sc_result sc_error(int err) SC_HIDDEN;

#endif
