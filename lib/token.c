/* Tokens: a tree of cancellation scopes with sticky cancel and deadlines. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <time.h>
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>	/* a no-op outside valgrind */
#else
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)0)
#endif

static int state_of(const sc_token *tok)
{
	return load_acquire(&tok->priv_state);
}

static int live_state(int st)
{
	return (st & ~SC_TOK_FLAGS) == SC_TOK_LIVE;
}

/* Initialised and not destroyed; a token whose destroy is deciding still counts. */
static int is_live(const sc_token *tok)
{
	return tok && live_state(state_of(tok));
}

/*
 * Waits out a destroy in progress: it ends within one registry walk.  Only
 * a live token can be dying; memory that was never a token returns at once.
 */
static int settled_state(const sc_token *tok)
{
	int st;

	while (live_state(st = state_of(tok)) && (st & SC_TOK_DYING))
		sched_yield();
	return st;
}

int64_t sc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Walks tok to the root: cancelled, invalid, or live with its earliest deadline. */
int sc_chain_check(const sc_token *tok, int64_t *deadline)
{
	int64_t dl = SC_NO_DEADLINE;
	int dying = 0;

	for (const sc_token *t = tok; t; t = t->priv_parent) {
		int st = state_of(t);
		if (unlikely(!live_state(st)))
			return SC_CHAIN_INVALID;
		if (st & SC_TOK_CANCELLED)
			return SC_CHAIN_CANCELLED;
		dying |= st & SC_TOK_DYING;
		int64_t d = load_relaxed(&t->priv_deadline);
		if (d < dl)
			dl = d;
	}
	*deadline = dl;
	return dying ? SC_CHAIN_DYING : SC_CHAIN_LIVE;
}

/*
 * A call may be published under a dead token whose parent is freed: it
 * fails once it checks its chain.  Its parent pointer is not followed.
 */
int sc_chain_contains(const sc_token *tok, const sc_token *ancestor)
{
	for (const sc_token *t = tok; t; t = t->priv_parent) {
		if (t == ancestor)
			return 1;
		if (!live_state(state_of(t)))
			return 0;
	}
	return 0;
}

static void mark_user(sc_token *t, int tid)
{
	int user = 0;

	if (!__atomic_compare_exchange_n(&t->priv_user, &user, tid, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
	    user != tid && user != SC_TOK_SHARED)
		__atomic_exchange_n(&t->priv_user, SC_TOK_SHARED, __ATOMIC_SEQ_CST);
}

/*
 * Records which threads ran calls under each token of the chain, so that
 * destroy and set_deadline can skip the registry walk for a token no other
 * thread used.  A locked instruction, once per token and thread: it orders
 * the mark before the chain check, against those two functions.
 *
 * The walk climbs past a token only if it was live, and not dying, after
 * its mark: its destroy then sees the mark and fails, so its parent, which
 * cannot die before it, stays allocated.  A dead or never-initialised token
 * ends the walk before its parent pointer is followed.  Returns whether the
 * whole chain was marked.
 */
int sc_chain_mark(sc_token *tok, int tid)
{
	for (sc_token *t = tok; t; t = t->priv_parent) {
		if (!live_state(state_of(t)))
			return 0;
		mark_user(t, tid);
		int st = __atomic_load_n(&t->priv_state, __ATOMIC_SEQ_CST);
		if (!live_state(st) || (st & SC_TOK_DYING))
			return 0;
	}
	return 1;
}

/*
 * A token being destroyed: its destroy sees this call or scope and gives up,
 * or the token dies.  A mark cut short by a destroy that gave up is redone.
 */
int sc_chain_settle(sc_token *tok, int tid, int64_t *deadline)
{
	int st;

	for (;;) {
		int marked = sc_chain_mark(tok, tid);
		st = sc_chain_check(tok, deadline);
		if (st != SC_CHAIN_DYING && (marked || st != SC_CHAIN_LIVE))
			return st;
		sched_yield();
	}
}

/* Could a call or scope of another thread, or a scope of this one, use tok? */
static int maybe_used_elsewhere(const sc_token *tok)
{
	const struct sc_slot *self = sc_self;
	int user;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	user = load_relaxed(&tok->priv_user);
	if (!user)
		return 0;
	return !self || user != load_relaxed(&self->tid) || call_active(self) ||
	       load_relaxed(&self->scope_depth);
}

/*
 * A live token is let go of first, as a destroy would: one that children,
 * calls or scopes still use stays as it is (EBUSY), and its parent stops
 * counting it.
 */
int sc_token_init(sc_token *tok, sc_token *parent)
{
	int err;

	if (!tok || (parent && !is_live(parent)) || parent == tok)
		return EINVAL;
	/* Most tokens are new memory here: reading its state is the point, not a bug. */
	VALGRIND_MAKE_MEM_DEFINED(&tok->priv_state, sizeof(tok->priv_state));
	if (is_live(tok) && (err = sc_token_destroy(tok)))
		return err == EINVAL ? EBUSY : err;
	if (parent) {
		__atomic_fetch_add(&parent->priv_children, 1, __ATOMIC_SEQ_CST);
		if (!live_state(settled_state(parent))) {
			__atomic_fetch_sub(&parent->priv_children, 1, __ATOMIC_SEQ_CST);
			return EINVAL;
		}
	}
	tok->priv_parent = parent;
	tok->priv_deadline = SC_NO_DEADLINE;
	tok->priv_cause = 0;
	tok->priv_children = 0;
	tok->priv_user = 0;
	store_release(&tok->priv_state, SC_TOK_LIVE);
	return 0;
}

static int mark_in_use(struct sc_slot *s, void *arg)
{
	(void)s;
	*(int *)arg = 1;
	return 0;
}

/*
 * A token only one thread used can be in use only by that thread's slot:
 * a thread that has none (it exited) is in no call, and another thread that
 * starts one under the token marks it shared first or sees it dying.
 */
static int in_use(const sc_token *tok)
{
	int used = __atomic_load_n(&tok->priv_children, __ATOMIC_SEQ_CST) != 0;
	struct sc_slot *s;
	int user;

	if (used || !maybe_used_elsewhere(tok))
		return used;
	user = __atomic_load_n(&tok->priv_user, __ATOMIC_SEQ_CST);
	if (user == SC_TOK_SHARED) {
		sc_registry_visit(tok, mark_in_use, &used);
		return used;
	}
	s = sc_slot_of(user);
	return s && sc_registry_slot_runs_under(s, tok);
}

int sc_token_destroy(sc_token *tok)
{
	int st;

	do {
		if (!tok)
			return EINVAL;
		st = settled_state(tok);
		if ((st & ~SC_TOK_CANCELLED) != SC_TOK_LIVE)
			return EINVAL;
	} while (!__atomic_compare_exchange_n(&tok->priv_state, &st, st | SC_TOK_DYING, false,
					      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	if (in_use(tok)) {
		__atomic_fetch_and(&tok->priv_state, ~SC_TOK_DYING, __ATOMIC_SEQ_CST);
		return EBUSY;
	}
	store_release(&tok->priv_state, SC_TOK_DEAD);
	if (tok->priv_parent)
		__atomic_fetch_sub(&tok->priv_parent->priv_children, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int lower_call_deadline(struct sc_slot *s, void *arg)
{
	int64_t dl, scope_dl = SC_NO_DEADLINE;

	if (load_relaxed(&s->scope_depth)) {
		sc_service_notify(s, *(const int64_t *)arg);
		if (sc_scope_check(s, &scope_dl) == SC_CHAIN_CANCELLED)
			return 0;
	}
	if (!call_active(s) ||
	    sc_chain_check(load_relaxed(&s->tok), &dl) == SC_CHAIN_INVALID)
		return 0;
	if (load_relaxed(&s->scope_depth) && scope_dl < dl)
		dl = scope_dl;
	if (!load_acquire(&s->via_ring))
		sc_deadline_lower(s, dl);
	else if (sc_deadline_min(s, dl))
		sc_uring_kick(s);	/* the owner resubmits with the new deadline */
	return 0;
}

int sc_token_set_deadline(sc_token *tok, int64_t deadline_ns)
{
	if (!is_live(tok) || deadline_ns < 0)
		return EINVAL;
	store_release(&tok->priv_deadline, deadline_ns);
	if (deadline_ns != SC_NO_DEADLINE && load_acquire(&sc_g.signo) &&
	    maybe_used_elsewhere(tok))
		sc_registry_visit(tok, lower_call_deadline, &deadline_ns);
	return 0;
}

int sc_token_set_timeout(sc_token *tok, int64_t timeout_ns)
{
	if (timeout_ns == SC_NO_DEADLINE)
		return sc_token_set_deadline(tok, SC_NO_DEADLINE);
	if (timeout_ns < 0)
		return EINVAL;
	int64_t now = sc_now_ns();
	if (timeout_ns >= SC_NO_DEADLINE - now)
		return is_live(tok) ? EOVERFLOW : EINVAL;
	return sc_token_set_deadline(tok, now + timeout_ns);
}

int64_t sc_token_deadline(const sc_token *tok)
{
	int64_t dl = SC_NO_DEADLINE;

	if (!is_live(tok))
		return SC_NO_DEADLINE;
	for (const sc_token *t = tok; t; t = t->priv_parent) {
		int64_t d = load_relaxed(&t->priv_deadline);
		dl = d < dl ? d : dl;
	}
	return dl;
}

/*
 * The calls signalled, whose landing is looked at after the walk: by then
 * most signals have landed, and the look at a thread's mask is dear.  When
 * more are signalled, the one signalled longest ago is looked at first.
 */
#define CANCEL_LATER_CHECKS 32

struct cancel_visit {
	int cause;
	int unreachable;	/* set when a call's thread cannot get the signal */
	unsigned n_sent;
	struct sc_sent sent[CANCEL_LATER_CHECKS];
};

static void check_later(struct cancel_visit *v, const struct sc_sent *x)
{
	unsigned i = v->n_sent++ % CANCEL_LATER_CHECKS;

	if (v->n_sent > CANCEL_LATER_CHECKS && !v->unreachable)
		v->unreachable = sc_cancel_held_back(&v->sent[i]);
	v->sent[i] = *x;
}

static int any_held_back(const struct cancel_visit *v)
{
	unsigned n = v->n_sent < CANCEL_LATER_CHECKS ? v->n_sent : CANCEL_LATER_CHECKS;

	for (unsigned i = 0; i < n && !v->unreachable; i++)
		if (sc_cancel_held_back(&v->sent[i]))
			return 1;
	return v->unreachable;
}

static int cancel_call(struct sc_slot *s, void *arg)
{
	struct cancel_visit *v = arg;
	uint64_t call = load_relaxed(&s->call);

	sc_introspect_cause(s, v->cause);
	if (!call_active(s)) {
		int handed = sc_scope_poke(s);
		sc_scope_watch(s);
		return handed;
	}
	sc_scope_watch(s);
	if (!load_acquire(&s->via_ring)) {
		struct sc_sent x = { s, call, load_acquire(&s->landings) };
		int handed = sc_send_cancel(s, call, &v->unreachable);

		check_later(v, &x);
		return handed;
	}
	store_release(&s->abort, call);
	sc_uring_kick(s);
	return 0;
}

/*
 * EIO: the token is cancelled, but a call in flight under it cannot be
 * interrupted, for its thread blocks the library's signal or the signal's
 * handler is no longer the library's.
 */
int sc_cancel_cause(sc_token *tok, int cause)
{
	int none = 0;
	struct cancel_visit v = { 0 };

	if (!is_live(tok) || cause <= 0)
		return EINVAL;
	__atomic_compare_exchange_n(&tok->priv_cause, &none, cause, false,
				    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
	__atomic_fetch_or(&tok->priv_state, SC_TOK_CANCELLED, __ATOMIC_SEQ_CST);
	v.cause = load_acquire(&tok->priv_cause);	/* the first recorded wins, for snapshots too */
	if (load_acquire(&sc_g.signo))
		sc_registry_visit(tok, cancel_call, &v);
	return any_held_back(&v) ? EIO : 0;
}

int sc_cancel(sc_token *tok)
{
	return sc_cancel_cause(tok, ECANCELED);
}

int sc_token_cause(const sc_token *tok)
{
	if (!is_live(tok))
		return 0;
	for (const sc_token *t = tok; t; t = t->priv_parent)
		if (state_of(t) & SC_TOK_CANCELLED)
			return load_acquire(&t->priv_cause);
	return sc_token_deadline(tok) <= sc_now_ns() ? ETIMEDOUT : 0;
}

bool sc_is_cancelled(const sc_token *tok)
{
	if (!is_live(tok))
		return false;
	for (const sc_token *t = tok; t; t = t->priv_parent)
		if (state_of(t) & SC_TOK_CANCELLED)
			return true;
	return false;
}
