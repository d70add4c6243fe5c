/*
 * Scopes: every blocking syscall a thread makes, from any code, obeys the
 * tokens of the scopes it has open.  Entering and leaving are plain stores,
 * and nothing happens per syscall until a scope's token is cancelled or its
 * deadline passes.  From then on cancellers and the scope service look in
 * /proc at what the thread waits in, and signal it only while it waits in a
 * syscall that can wait; the handler ends that syscall without effect, from
 * the registers the arch code reads (lib/arch/<arch>/scope.c).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Ordered against the canceller's membarrier, as a call's entry is. */
static void publish_barrier(void)
{
	if (sc_g.use_membarrier)
		compiler_barrier();
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void scope_pop(struct sc_slot *s)
{
	store_release(&s->scope_depth, s->scope_depth - 1);
	publish_barrier();
	if (unlikely(load_acquire(&s->pins)))
		sc_slot_settle(s);
}

/* A token with a deadline, cancelled, dying or new to this thread. */
static int enter_slow(struct sc_slot *s, sc_token *tok)
{
	int64_t dl;
	int st = sc_chain_settle(tok, load_relaxed(&s->tid), &dl);

	if (st == SC_CHAIN_INVALID) {
		scope_pop(s);
		return EINVAL;
	}
	if (st == SC_CHAIN_CANCELLED)
		sc_service_notify(s, 0);
	else if (dl != SC_NO_DEADLINE && dl < load_acquire(&s->svc_deadline))
		sc_service_notify(s, dl);
	return 0;
}

int sc_scope_enter(sc_token *tok)
{
	struct sc_slot *s = sc_self;
	int err, depth;

	if (!tok)
		return EINVAL;
	if (unlikely(!s) && !(s = sc_slot_claim(&err)))
		return err;
	if (unlikely(!sc_service_running()) && (err = sc_service_start()))
		return err;
	depth = s->scope_depth;
	if (depth >= SC_SCOPE_MAX)
		return ENOSPC;
	/* A new id before the token: see read_scope() in introspect.c. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	store_relaxed(&s->scope_ids[depth], ++s->scope_seq);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	store_relaxed(&s->scopes[depth], tok);
	store_release(&s->scope_depth, depth + 1);
	publish_barrier();
	if (likely(sc_chain_plain(tok, load_relaxed(&s->tid))))
		return 0;
	return enter_slow(s, tok);
}

int sc_scope_exit(void)
{
	struct sc_slot *s = sc_self;

	if (!s || !s->scope_depth)
		return EINVAL;
	scope_pop(s);
	return 0;
}

/* Thread exit inside scopes: leave them all, taking the signals on their way. */
void sc_scope_release(struct sc_slot *s)
{
	while (s->scope_depth)
		scope_pop(s);
}

int sc_scope_check(const struct sc_slot *s, int64_t *deadline)
{
	int depth = load_acquire(&s->scope_depth);
	int64_t dl = SC_NO_DEADLINE;

	for (int i = 0; i < depth; i++) {
		int64_t d = SC_NO_DEADLINE;
		if (sc_chain_check(load_relaxed(&s->scopes[i]), &d) == SC_CHAIN_CANCELLED)
			return SC_CHAIN_CANCELLED;
		if (d < dl)
			dl = d;
	}
	*deadline = dl;
	return SC_CHAIN_LIVE;
}

int sc_scope_ended(const struct sc_slot *s)
{
	int64_t dl;

	if (sc_scope_check(s, &dl) == SC_CHAIN_CANCELLED)
		return ECANCELED;
	return dl != SC_NO_DEADLINE && sc_now_ns() >= dl ? ETIMEDOUT : 0;
}

int sc_scope_contains(const struct sc_slot *s, const sc_token *tok)
{
	int depth = load_acquire(&s->scope_depth);

	for (int i = 0; i < depth; i++)
		if (sc_chain_contains(load_relaxed(&s->scopes[i]), tok))
			return 1;
	return 0;
}

/* What the handler compares: the syscall's arguments, stack and return address. */
uint64_t sc_syscall_signature(const struct sc_syscall *c, uint64_t sp, uint64_t pc)
{
	uint64_t h = 0x5c5c0000u ^ (uint64_t)c->nr;
	uint64_t words[8] = { sp, pc };

	for (int i = 0; i < 6; i++)
		words[i + 2] = (uint64_t)c->args[i];
	for (int i = 0; i < 8; i++) {
		h = (h ^ words[i]) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 31;
	}
	return h;
}

/* Test build only: room for the thread to move on between the look in /proc and the signal. */
static void widen_window(void)
{
#ifdef SC_WIDE_WINDOW
	int64_t end = sc_now_ns() + 20000;

	while (sc_now_ns() < end)
		;
#endif
}

/*
 * The slot is pinned and one of its scopes has ended.  Signal the thread if
 * it waits in a syscall that can wait; a thread that runs is left alone
 * (the scope service looks again within a millisecond).
 */
int sc_scope_poke(struct sc_slot *s)
{
	struct sc_syscall c;
	uint64_t sp, pc;

	if (!sc_arch_scopes || load_acquire(&s->signal_pins))	/* one on its way is enough */
		return 0;
	store_relaxed(&s->scope_poked, sc_now_ns());
	if (sc_proc_blocked_syscall(load_relaxed(&s->tid), &c, &sp, &pc) ||
	    !sc_syscall_may_wait(c.nr))
		return 0;
	widen_window();
	return sc_send_scope_signal(s, c.nr, sc_syscall_signature(&c, sp, pc));
}

/*
 * A cancel reached a thread in a scope: the deadline service looks at it
 * again a tick after this poke, and every tick until the scope is left.
 */
void sc_scope_watch(struct sc_slot *s)
{
	if (load_relaxed(&s->scope_depth) && sc_service_running())
		sc_service_notify(s, sc_now_ns() + SC_SCOPE_TICK_NS);
}

/* An interrupted connect may go on in the kernel: dissolve it, as sc_connect does. */
static void undo_started(const struct sc_syscall *c)
{
	const struct sockaddr unspec = { .sa_family = AF_UNSPEC };

	if (c->nr == SYS_connect)
		syscall(SYS_connect, c->args[0], &unspec, sizeof(unspec));
}

#ifdef SC_WIDE_WINDOW
int sc_scope_diversion = 1;
#else
#define sc_scope_diversion 1
#endif

/* Our signal on a thread in a scope, outside any syscancel call. */
void sc_scope_on_signal(struct sc_slot *s, const siginfo_t *si, void *ctx)
{
	struct sc_syscall c;
	uint64_t sp, pc, sig;
	int err = sc_scope_ended(s);

	if (!err || !sc_scope_diversion)
		return;
	if (sc_arch_before_syscall(ctx, &c)) {
		if (sc_syscall_can_wait(&c)) {
			if (c.entered)
				undo_started(&c);
			sc_arch_skip_syscall(ctx, -err);
			__atomic_fetch_add(&sc_signal_counts.scope_skipped, 1, __ATOMIC_RELAXED);
			return;
		}
	} else if (sc_arch_after_eintr(ctx, &c, &sp, &pc) &&
		   sc_scope_signal_names(si, &c.nr, &sig) &&
		   sc_syscall_signature(&c, sp, pc) == sig && sc_syscall_can_wait(&c)) {
		undo_started(&c);
		sc_arch_set_return(ctx, -err);
		__atomic_fetch_add(&sc_signal_counts.scope_rewritten, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_fetch_add(&sc_signal_counts.scope_missed, 1, __ATOMIC_RELAXED);
}
