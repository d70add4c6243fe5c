/*
 * Signal sets the library hands the kernel never hold its signal, as glibc
 * keeps its own out of the sets it is given: a wait for a set holding it
 * would take a cancel as its data, and a mask holding it would keep every
 * cancel out.  Also the calls that take a signal set.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <sys/syscall.h>

#define L(x) ((long)(x))

/*
 * set without the library's signal, copied into room; set itself where it
 * does not hold it, or where the kernel will refuse it (a size other than
 * its own, memory it cannot read) and says so.
 */
static long spare(long set, long size, sigset_t *room)
{
	int signo = sc_signal_number();

	if (!set || size != SC_KERNEL_SIGSET || signo < 0)
		return set;
	sigemptyset(room);
	if (sc_copy_in(room, (const void *)set, SC_KERNEL_SIGSET) || !sigismember(room, signo))
		return set;
	sigdelset(room, signo);
	return L(room);
}

/* pselect6's sixth argument points to the set and its size. */
static long spare_pselect(long data, struct sc_sets *room)
{
	long set;

	if (!data || sc_copy_in(&room->pselect, (const void *)data, sizeof(room->pselect)))
		return data;
	set = spare(L(room->pselect.set), room->pselect.size, &room->set);
	if (set == L(room->pselect.set))
		return data;
	room->pselect.set = (const sigset_t *)set;
	return L(&room->pselect);
}

void sc_req_spare_our_signal(struct sc_req *req, struct sc_sets *room)
{
	long *a = req->args;

	switch (req->nr) {
	case SYS_rt_sigtimedwait:
		a[0] = spare(a[0], a[3], &room->set);
		break;
	case SYS_rt_sigsuspend:
		a[0] = spare(a[0], a[1], &room->set);
		break;
	case SYS_ppoll:
		a[3] = spare(a[3], a[4], &room->set);
		break;
	case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
#endif
		a[4] = spare(a[4], a[5], &room->set);
		break;
	case SYS_pselect6:
		a[5] = spare_pselect(a[5], room);
		break;
	}
}

SC_SYSCALL(sc_sigtimedwait, (sc_token *tok, const sigset_t *set, siginfo_t *info,
			     const struct timespec *timeout),
	   SYS_rt_sigtimedwait, L(set), L(info), L(timeout), SC_KERNEL_SIGSET)
SC_SYSCALL(sc_sigsuspend, (sc_token *tok, const sigset_t *mask),
	   SYS_rt_sigsuspend, L(mask), SC_KERNEL_SIGSET)
SC_SYSCALL(sc_epoll_pwait, (sc_token *tok, int epfd, struct epoll_event *events, int maxevents,
			    int timeout_ms, const sigset_t *sigmask),
	   SYS_epoll_pwait, epfd, L(events), maxevents, timeout_ms, L(sigmask), SC_KERNEL_SIGSET)

/* A timeout the kernel writes the time left back into: a copy of it, for it is const. */
static int copy_timeout(struct timespec *copy, const struct timespec *timeout)
{
	return timeout ? sc_copy_in(copy, timeout, sizeof(*copy)) : 0;
}

sc_result sc_ppoll(sc_token *tok, struct pollfd *fds, nfds_t n, const struct timespec *timeout,
		   const sigset_t *sigmask)
{
	struct timespec ts;

	if (n > UINT_MAX)
		return sc_error(EINVAL);
	if (copy_timeout(&ts, timeout))
		return sc_error(EFAULT);
	return sc_run_syscall(tok, &(struct sc_req){ .nr = SYS_ppoll, .args = {
		L(fds), L(n), timeout ? L(&ts) : 0, L(sigmask), SC_KERNEL_SIGSET } });
}

sc_result sc_pselect(sc_token *tok, int nfds, fd_set *readfds, fd_set *writefds,
		     fd_set *exceptfds, const struct timespec *timeout, const sigset_t *sigmask)
{
	struct sc_pselect_mask mask = { sigmask, SC_KERNEL_SIGSET };
	struct timespec ts;

	if (copy_timeout(&ts, timeout))
		return sc_error(EFAULT);
	return sc_run_syscall(tok, &(struct sc_req){ .nr = SYS_pselect6, .args = {
		nfds, L(readfds), L(writefds), L(exceptfds), timeout ? L(&ts) : 0,
		L(&mask) } });
}
