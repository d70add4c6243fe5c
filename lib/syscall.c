/*
 * What the library knows of the syscalls it makes, for sc_syscall and the
 * calls built on it: a relative timeout goes on with the time that remains
 * after someone else's signal, a signal set never holds the library's
 * signal, a wait for a signal ends at one, and close is never retried.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>

static unsigned flags_of(long nr)
{
	switch (nr) {
	case SYS_close:		/* after EINTR the descriptor is gone */
		return SC_REQ_NO_RETRY;
#ifdef SYS_pause
	case SYS_pause:
#endif
	case SYS_rt_sigsuspend:
		return SC_REQ_SIGNAL_WAIT;
	}
	return 0;
}

static void relative(struct sc_req *req, int kind, int arg)
{
	req->timeout = kind;
	req->timeout_arg = arg;
	req->timeout_start = sc_now_ns();
}

/* A CPU-time clock does not run at the pace of CLOCK_MONOTONIC. */
static int wall_clock(long clock)
{
	return clock >= 0 && clock != CLOCK_PROCESS_CPUTIME_ID && clock != CLOCK_THREAD_CPUTIME_ID;
}

/* Relative timeouts whose time left the kernel does not write back (ppoll and select do). */
static void find_timeout(struct sc_req *req)
{
	const long *a = req->args;

	switch (req->nr) {
	case SYS_nanosleep:
		relative(req, SC_TIMEOUT_TIMESPEC, 0);
		break;
	case SYS_clock_nanosleep:
		if (!(a[1] & TIMER_ABSTIME) && wall_clock(a[0]))
			relative(req, SC_TIMEOUT_TIMESPEC, 2);
		break;
	case SYS_futex:
		if ((a[1] & FUTEX_CMD_MASK) == FUTEX_WAIT && a[3])
			relative(req, SC_TIMEOUT_TIMESPEC, 3);
		break;
	case SYS_rt_sigtimedwait:
		if (a[2])
			relative(req, SC_TIMEOUT_TIMESPEC, 2);
		break;
	case SYS_semtimedop:
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
#endif
		if (a[3])
			relative(req, SC_TIMEOUT_TIMESPEC, 3);
		break;
	case SYS_io_getevents:
		if (a[4])
			relative(req, SC_TIMEOUT_TIMESPEC, 4);
		break;
#ifdef SYS_poll
	case SYS_poll:
		if ((int)a[2] >= 0)
			relative(req, SC_TIMEOUT_MS, 2);
		break;
#endif
#ifdef SYS_epoll_wait
	case SYS_epoll_wait:
#endif
	case SYS_epoll_pwait:
		if ((int)a[3] >= 0)
			relative(req, SC_TIMEOUT_MS, 3);
		break;
	}
}

sc_result sc_run_syscall(sc_token *tok, struct sc_req *req)
{
	const long *a = req->args;
	struct sc_sets room;

	req->flags |= flags_of(req->nr);
	find_timeout(req);
	sc_req_spare_our_signal(req, &room);
	if (req->flags || req->timeout != SC_TIMEOUT_NONE)
		return sc_run_req(tok, req);
	return sc_run(tok, req->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

sc_result sc_syscall(sc_token *tok, long nr, long a1, long a2, long a3,
		     long a4, long a5, long a6)
{
	return sc_run_syscall(tok, &(struct sc_req){ .nr = nr, .args = { a1, a2, a3, a4, a5, a6 } });
}
