/*
 * The life of every call, on either backend, in one loop: publish it in the
 * thread's slot, check the token chain, enter the kernel (through the stub,
 * or the thread's io_uring), interpret what came back, withdraw it.  A
 * backend only says how to enter and how to read an attempt's result.
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

static int64_t timespec_ns(const struct timespec *ts)
{
	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L)
		return -1;
	if (ts->tv_sec >= SC_NO_DEADLINE / 1000000000LL - 1)
		return SC_NO_DEADLINE;
	return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

/* It cannot say without a timeout, for an infinite one, or memory it cannot read now. */
int64_t sc_timeout_end(const struct sc_req *req)
{
	long a = req->args[req->timeout_arg];
	struct timespec ts;
	int64_t ns = -1;

	if (req->timeout == SC_TIMEOUT_MS)
		ns = (int)a * 1000000LL;
	else if (req->timeout == SC_TIMEOUT_TIMESPEC && !sc_copy_in(&ts, (void *)a, sizeof(ts)))
		ns = timespec_ns(&ts);
	if (ns < 0 || ns > SC_NO_DEADLINE - req->timeout_start)
		return SC_NO_DEADLINE;
	return req->timeout_start + ns;
}

/*
 * The arguments of one attempt.  A retry after someone else's signal gets
 * the time that remains of a relative timeout; left holds it as a timespec.
 */
static void attempt_args(const struct sc_call *c, long a[6], struct timespec *left)
{
	const struct sc_req *req = c->req;
	int64_t end, rest;

	memcpy(a, req->args, sizeof(req->args));
	if (!c->retried || req->timeout == SC_TIMEOUT_NONE)
		return;
	end = sc_timeout_end(req);
	if (end == SC_NO_DEADLINE)
		return;
	rest = end - sc_now_ns();
	rest = rest < 0 ? 0 : rest;
	if (req->timeout == SC_TIMEOUT_MS) {
		rest = (rest + 999999) / 1000000;
		a[req->timeout_arg] = rest > INT_MAX ? INT_MAX : rest;
		return;
	}
	*left = (struct timespec){ rest / 1000000000LL, rest % 1000000000LL };
	a[req->timeout_arg] = (long)left;
}

/* The signal backend: the stub enters, a cancel or our signal ends the attempt with EINTR. */
static long stub_enter(struct sc_slot *s, struct sc_call *c)
{
	struct timespec left;
	long a[6];

	attempt_args(c, a, &left);
	return sc_stub_enter(s, c->req->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static int stub_interrupted(const struct sc_call *c, long v)
{
	(void)c;
	return v == -EINTR || v == SC_STUB_CANCELLED;
}

/* A retried connect that finds its socket connected: an earlier attempt's connection went through. */
static int stub_finish(struct sc_call *c, long v, sc_result *r)
{
	if (c->retried && v == -EISCONN && (c->req->flags & SC_REQ_CONNECT))
		v = 0;
	*r = sc_completed(v);
	return 0;
}

static const struct sc_backend signal_backend = {
	.deadline = sc_deadline_lower,
	.enter = stub_enter,
	.interrupted = stub_interrupted,
	.finish = stub_finish,
};

/* A call made from a handler on top of another call: not cancellable. */
static sc_result run_nested(const struct sc_req *req)
{
	struct sc_call c = { .req = req };
	struct timespec left;
	long a[6], v;

	for (;; c.retried = 1) {
		attempt_args(&c, a, &left);
		v = syscall(req->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		if (v != -1 || errno != EINTR || (req->flags & (SC_REQ_NO_RETRY | SC_REQ_SIGNAL_WAIT)))
			break;
	}
	return v == -1 ? sc_error(errno) : sc_completed(v);
}

/* Test build only: room for a cancel to land between the two reads of sc_interrupted(). */
static void widen_window(void)
{
#ifdef SC_WIDE_WINDOW
	int64_t end = sc_now_ns() + 50000;

	while (sc_now_ns() < end)
		;
#endif
}

/*
 * Our signal or someone else's: only a cancel or a deadline ends the call,
 * and a cancel wins over a deadline.
 */
int sc_interrupted(struct sc_slot *s, const sc_token *tok, sc_result *r)
{
	int passed = sc_deadline_passed(s);
	int scope = sc_scope_ended(s);
	int64_t dl;

	widen_window();
	if (sc_chain_check(tok, &dl) == SC_CHAIN_CANCELLED || scope == ECANCELED)
		*r = cancelled;
	else if (passed || scope == ETIMEDOUT)
		*r = timedout;
	else
		return 0;
	return 1;
}

/*
 * Before the first attempt: marks the chain as used by this thread, waits
 * out a destroy, and ends the call if the chain or a scope of the thread is
 * cancelled, the chain is invalid, or either is past its deadline.
 * *deadline: the earliest of the chain's and the scopes'.
 */
int sc_check_chain(struct sc_slot *s, sc_token *tok, sc_result *r, int64_t *deadline)
{
	int64_t dl, scope_dl;
	int st = sc_chain_settle(tok, load_relaxed(&s->tid), &dl);

	if (st == SC_CHAIN_LIVE && sc_scope_check(s, &scope_dl) == SC_CHAIN_CANCELLED)
		st = SC_CHAIN_CANCELLED;
	else if (st == SC_CHAIN_LIVE && scope_dl < dl)
		dl = scope_dl;
	switch (st) {
	case SC_CHAIN_CANCELLED:
		*r = cancelled;
		return 1;
	case SC_CHAIN_INVALID:
		*r = sc_error(EINVAL);
		return 1;
	}
	*deadline = dl;
	if (dl != SC_NO_DEADLINE && sc_now_ns() >= dl) {
		*r = timedout;
		return 1;
	}
	return 0;
}

/*
 * The life of a published call, on either backend: its chain checked, then
 * attempts until one is not interrupted, or a cancel or deadline ends it.
 * v: the result of an attempt the inline fast path made already.
 */
static sc_result live(struct sc_slot *s, sc_token *tok, const struct sc_backend *be,
		      struct sc_call *c, long v, int *handover)
{
	sc_result r;
	int64_t dl;

	*handover = 0;
	if (v == SC_NOT_ENTERED) {
		if (sc_check_chain(s, tok, &r, &dl))
			return r;
		if (dl != SC_NO_DEADLINE)
			be->deadline(s, dl);
		v = be->enter(s, c);
	}
	for (;;) {
		if (!be->interrupted(c, v)) {
			*handover = be->finish(c, v, &r);
			return r;
		}
		if (v == -EINTR && (c->req->flags & SC_REQ_NO_RETRY))
			return sc_error(EINTR);
		if (sc_interrupted(s, tok, &r))
			return r;
		if (v == -EINTR && (c->req->flags & SC_REQ_SIGNAL_WAIT))
			return sc_error(EINTR);
		if (be->expired && be->expired(c, &r))
			return r;
		c->retried = 1;
		v = be->enter(s, c);
	}
}

/* Takes over a call in flight from the inline fast path, and ends it. */
sc_result sc_run_resume(struct sc_slot *s, sc_token *tok, const struct sc_req *req, long v)
{
	struct sc_call c = { .req = req };
	int handover;
	sc_result r = live(s, tok, &signal_backend, &c, v, &handover);

	sc_call_exit(s);
	return r;
}

/*
 * On the ring: 0 with the result in *r, or nonzero when the ring cannot
 * finish the call as the syscall would, or cannot be made, and the signal
 * path takes it over.
 */
static int run_on_ring(struct sc_slot *s, sc_token *tok, const struct sc_req *req, sc_result *r)
{
	const struct sc_backend *be = &sc_uring_backend;
	struct sc_call c = { .req = req };
	int handover;

	if (be->begin(s, &c))
		return 1;
	sc_call_enter(s, tok, req->nr, req->args[0], req->args[1]);
	*r = live(s, tok, be, &c, SC_NOT_ENTERED, &handover);
	sc_call_exit(s);
	be->end(s);
	return handover;
}

/* The whole path, for the first call of a thread, a nested call, or a special request. */
sc_result sc_run_req(sc_token *tok, const struct sc_req *req)
{
	struct sc_slot *s = sc_self;
	sc_result r;
	int err;

	if (!s && !(s = sc_slot_claim(&err)))
		return sc_error(err);
	if (call_active(s))
		return run_nested(req);
	if ((s->call & SC_CALL_URING) && sc_uring_can_run(req) && !run_on_ring(s, tok, req, &r))
		return r;
	sc_call_enter(s, tok, req->nr, req->args[0], req->args[1]);
	return sc_run_resume(s, tok, req, SC_NOT_ENTERED);
}
