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
	return v == -1 ? sc_error(errno) : sc_completed(v);
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

/* Before the first attempt: the chain is cancelled, invalid, or has a deadline. */
static int check_chain(struct sc_slot *s, const sc_token *tok, sc_result *r)
{
	int64_t dl;

	switch (sc_chain_check(tok, &dl)) {
	case SC_CHAIN_CANCELLED:
		*r = cancelled;
		return 1;
	case SC_CHAIN_INVALID:
		*r = sc_error(EINVAL);
		return 1;
	}
	if (dl != SC_NO_DEADLINE) {
		if (sc_now_ns() >= dl) {
			*r = timedout;
			return 1;
		}
		sc_deadline_lower(s, dl);
	}
	return 0;
}

static sc_result run_attempts(struct sc_slot *s, sc_token *tok, const struct sc_req *req,
			      long v)
{
	sc_result r;
	int retried = v != SC_NOT_ENTERED;

	if (!retried && check_chain(s, tok, &r))
		return r;
	for (;; retried = 1) {
		if (v != SC_NOT_ENTERED) {
			if (v == -EINTR && (req->flags & SC_REQ_NO_RETRY))
				return sc_error(EINTR);
			if (interrupted(s, tok, &r))
				return r;
		}
		load_stub(&s->stub, req);
		v = sc_stub_enter(&s->stub);
		if (v != -EINTR && v != SC_STUB_CANCELLED) {
			if (retried && v == -EISCONN && (req->flags & SC_REQ_CONNECT))
				v = 0;
			return sc_completed(v);
		}
	}
}

/* Takes over a call in flight from the inline fast path, and ends it. */
sc_result sc_run_resume(struct sc_slot *s, sc_token *tok, const struct sc_req *req, long v)
{
	sc_result r = run_attempts(s, tok, req, v);

	sc_call_exit(s);
	return r;
}

/* The first call of a thread, a nested call, or one with a timeout to recompute. */
sc_result sc_run_slow(sc_token *tok, const struct sc_req *req)
{
	struct sc_slot *s = sc_self;
	int err;

	if (!s && !(s = sc_slot_claim(&err)))
		return sc_error(err);
	if (call_active(s))
		return run_nested(req);
	sc_call_enter(s, tok);
	return sc_run_resume(s, tok, req, SC_NOT_ENTERED);
}
