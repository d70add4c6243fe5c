/*
 * The common path of every call: publish it in the thread's slot, check the
 * token chain, enter the kernel through the stub, turn EINTR into a result.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const sc_result cancelled = { SC_CANCELLED, ECANCELED, -1 };
static const sc_result timedout = { SC_TIMEDOUT, ETIMEDOUT, -1 };

sc_result sc_error(int err)
{
	return (sc_result){ SC_ERROR, err, -1 };
}

static sc_result completed(long v)
{
	if (v < 0 && v >= -4095)
		return sc_error((int)-v);
	return (sc_result){ SC_OK, 0, v };
}

static long remaining_ms(int64_t end)
{
	int64_t left = end - sc_now_ns();

	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : left;
}

static void load_stub(struct sc_stub *st, const struct sc_req *req)
{
	st->nr = req->nr;
	memcpy(st->args, req->args, sizeof(st->args));
	if (req->ms_arg >= 0)
		st->args[req->ms_arg] = remaining_ms(req->ms_end);
}

/* A call made from a handler on top of another call: not cancellable. */
static sc_result run_nested(const struct sc_req *req)
{
	struct sc_stub st;
	long v;

	do {
		load_stub(&st, req);
		v = syscall(st.nr, st.args[0], st.args[1], st.args[2],
			    st.args[3], st.args[4], st.args[5]);
	} while (v == -1 && errno == EINTR && !(req->flags & SC_REQ_NO_RETRY));
	return v == -1 ? sc_error(errno) : completed(v);
}

static void call_enter(struct sc_slot *s, sc_token *tok)
{
	store_relaxed(&s->stub.abort, 0);
	store_relaxed(&s->deadline, SC_NO_DEADLINE);
	store_relaxed(&s->tok, tok);
	store_release(&s->call, s->call + 3);
	/* Pairs with the canceller's membarrier: see sc_registry_visit(). */
	if (sc_g.use_membarrier)
		compiler_barrier();
	else
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Our signal or someone else's: only a cancel or a deadline ends the call. */
static int interrupted(struct sc_slot *s, const sc_token *tok, sc_result *r)
{
	int64_t dl;

	if (sc_chain_check(tok, &dl) == SC_CHAIN_CANCELLED)
		*r = cancelled;
	else if (sc_deadline_passed(s))
		*r = timedout;
	else
		return 0;
	return 1;
}

static sc_result run_published(struct sc_slot *s, sc_token *tok, struct sc_req *req)
{
	int64_t dl;
	sc_result r;

	switch (sc_chain_check(tok, &dl)) {
	case SC_CHAIN_CANCELLED:
		return cancelled;
	case SC_CHAIN_INVALID:
		return sc_error(EINVAL);
	}
	if (dl != SC_NO_DEADLINE) {
		if (sc_now_ns() >= dl)
			return timedout;
		sc_deadline_lower(s, dl);
	}
	for (int retried = 0;; retried = 1) {
		load_stub(&s->stub, req);
		long v = sc_stub_enter(&s->stub);
		if (likely(v != -EINTR && v != SC_STUB_CANCELLED)) {
			if (retried && v == -EISCONN && (req->flags & SC_REQ_CONNECT))
				v = 0;
			return completed(v);
		}
		if (v == -EINTR && (req->flags & SC_REQ_NO_RETRY))
			return sc_error(EINTR);
		if (interrupted(s, tok, &r))
			return r;
	}
}

sc_result sc_run(sc_token *tok, struct sc_req *req)
{
	struct sc_slot *s = sc_self;
	sc_result r;
	int err;

	if (unlikely(!s) && !(s = sc_slot_claim(&err)))
		return sc_error(err);
	if (unlikely(call_active(s)))
		return run_nested(req);
	call_enter(s, tok);
	r = run_published(s, tok, req);
	sc_call_exit(s);
	return r;
}
