/* The public calls: each one is a request over the common path in call.c. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <sys/syscall.h>
#include <time.h>

#define L(x) ((long)(x))
/* One line per call whose arguments go to the kernel unchanged. */
#define SC_CALL(name, params, nr, ...) \
	sc_result name params { return sc_run(tok, nr, __VA_ARGS__); }

SC_CALL(sc_read, (sc_token *tok, int fd, void *buf, size_t len),
	SYS_read, L(fd), L(buf), L(len), 0, 0, 0)
SC_CALL(sc_write, (sc_token *tok, int fd, const void *buf, size_t len),
	SYS_write, L(fd), L(buf), L(len), 0, 0, 0)
SC_CALL(sc_readv, (sc_token *tok, int fd, const struct iovec *iov, int iovcnt),
	SYS_readv, L(fd), L(iov), L(iovcnt), 0, 0, 0)
SC_CALL(sc_writev, (sc_token *tok, int fd, const struct iovec *iov, int iovcnt),
	SYS_writev, L(fd), L(iov), L(iovcnt), 0, 0, 0)
SC_CALL(sc_pread, (sc_token *tok, int fd, void *buf, size_t len, off_t off),
	SYS_pread64, L(fd), L(buf), L(len), L(off), 0, 0)
SC_CALL(sc_pwrite, (sc_token *tok, int fd, const void *buf, size_t len, off_t off),
	SYS_pwrite64, L(fd), L(buf), L(len), L(off), 0, 0)
SC_CALL(sc_recv, (sc_token *tok, int fd, void *buf, size_t len, int flags),
	SYS_recvfrom, L(fd), L(buf), L(len), L(flags), 0, 0)
SC_CALL(sc_send, (sc_token *tok, int fd, const void *buf, size_t len, int flags),
	SYS_sendto, L(fd), L(buf), L(len), L(flags), 0, 0)
SC_CALL(sc_recvfrom, (sc_token *tok, int fd, void *buf, size_t len, int flags,
		      struct sockaddr *addr, socklen_t *alen),
	SYS_recvfrom, L(fd), L(buf), L(len), L(flags), L(addr), L(alen))
SC_CALL(sc_sendto, (sc_token *tok, int fd, const void *buf, size_t len, int flags,
		    const struct sockaddr *addr, socklen_t alen),
	SYS_sendto, L(fd), L(buf), L(len), L(flags), L(addr), L(alen))
SC_CALL(sc_recvmsg, (sc_token *tok, int fd, struct msghdr *msg, int flags),
	SYS_recvmsg, L(fd), L(msg), L(flags), 0, 0, 0)
SC_CALL(sc_sendmsg, (sc_token *tok, int fd, const struct msghdr *msg, int flags),
	SYS_sendmsg, L(fd), L(msg), L(flags), 0, 0, 0)
SC_CALL(sc_accept, (sc_token *tok, int fd, struct sockaddr *addr, socklen_t *alen, int flags),
	SYS_accept4, L(fd), L(addr), L(alen), L(flags), 0, 0)
SC_CALL(sc_waitpid, (sc_token *tok, pid_t pid, int *wstatus, int options),
	SYS_wait4, L(pid), L(wstatus), L(options), 0, 0, 0)
SC_CALL(sc_openat, (sc_token *tok, int dirfd, const char *path, int flags, mode_t mode),
	SYS_openat, L(dirfd), L(path), L(flags), L(mode), 0, 0)
SC_CALL(sc_flock, (sc_token *tok, int fd, int operation),
	SYS_flock, L(fd), L(operation), 0, 0, 0, 0)
SC_CALL(sc_futex_wait, (sc_token *tok, const uint32_t *addr, uint32_t expected),
	SYS_futex, L(addr), FUTEX_WAIT, L(expected), 0, 0, 0)

/* The rest of the table goes through what sc_syscall knows (syscall.c). */
SC_SYSCALL(sc_waitid, (sc_token *tok, idtype_t idtype, id_t id, siginfo_t *info, int options),
	   SYS_waitid, idtype, L(id), L(info), options, 0)
SC_SYSCALL(sc_recvmmsg, (sc_token *tok, int fd, struct mmsghdr *msgvec, unsigned int vlen,
			 int flags, struct timespec *timeout),
	   SYS_recvmmsg, fd, L(msgvec), vlen, flags, L(timeout))
SC_SYSCALL(sc_sendmmsg, (sc_token *tok, int fd, struct mmsghdr *msgvec, unsigned int vlen,
			 int flags),
	   SYS_sendmmsg, fd, L(msgvec), vlen, flags)
SC_SYSCALL(sc_preadv, (sc_token *tok, int fd, const struct iovec *iov, int iovcnt, off_t off,
		       int flags),
	   SYS_preadv2, fd, L(iov), iovcnt, L(off), 0, flags)
SC_SYSCALL(sc_pwritev, (sc_token *tok, int fd, const struct iovec *iov, int iovcnt, off_t off,
			int flags),
	   SYS_pwritev2, fd, L(iov), iovcnt, L(off), 0, flags)
SC_SYSCALL(sc_msgrcv, (sc_token *tok, int msqid, void *msgp, size_t msgsz, long msgtyp,
		       int msgflg),
	   SYS_msgrcv, msqid, L(msgp), L(msgsz), msgtyp, msgflg)
SC_SYSCALL(sc_msgsnd, (sc_token *tok, int msqid, const void *msgp, size_t msgsz, int msgflg),
	   SYS_msgsnd, msqid, L(msgp), L(msgsz), msgflg)
SC_SYSCALL(sc_mq_timedreceive, (sc_token *tok, mqd_t mqdes, char *msg, size_t len,
				unsigned int *prio, const struct timespec *abs_timeout),
	   SYS_mq_timedreceive, mqdes, L(msg), L(len), L(prio), L(abs_timeout))
SC_SYSCALL(sc_mq_timedsend, (sc_token *tok, mqd_t mqdes, const char *msg, size_t len,
			     unsigned int prio, const struct timespec *abs_timeout),
	   SYS_mq_timedsend, mqdes, L(msg), L(len), prio, L(abs_timeout))
SC_SYSCALL(sc_semtimedop, (sc_token *tok, int semid, struct sembuf *sops, size_t nsops,
			   const struct timespec *timeout),
	   SYS_semtimedop, semid, L(sops), L(nsops), L(timeout))
SC_SYSCALL(sc_splice, (sc_token *tok, int fd_in, off_t *off_in, int fd_out, off_t *off_out,
		       size_t len, unsigned int flags),
	   SYS_splice, fd_in, L(off_in), fd_out, L(off_out), L(len), flags)
SC_SYSCALL(sc_tee, (sc_token *tok, int fd_in, int fd_out, size_t len, unsigned int flags),
	   SYS_tee, fd_in, fd_out, L(len), flags)

/* The kernel writes the time left into *timeout, as select(2) does on Linux. */
#ifdef SYS_select
SC_SYSCALL(sc_select, (sc_token *tok, int nfds, fd_set *readfds, fd_set *writefds,
		       fd_set *exceptfds, struct timeval *timeout),
	   SYS_select, nfds, L(readfds), L(writefds), L(exceptfds), L(timeout))
#else
sc_result sc_select(sc_token *tok, int nfds, fd_set *readfds, fd_set *writefds,
		    fd_set *exceptfds, struct timeval *timeout)
{
	struct timeval tv;
	struct timespec ts;
	sc_result r;

	if (timeout && sc_copy_in(&tv, timeout, sizeof(tv)))
		return sc_error(EFAULT);
	if (timeout && (tv.tv_sec < 0 || tv.tv_usec < 0))
		return sc_error(EINVAL);
	if (timeout)
		ts = (struct timespec){ tv.tv_sec + tv.tv_usec / 1000000, tv.tv_usec % 1000000 * 1000 };
	r = sc_run_syscall(tok, &(struct sc_req){ .nr = SYS_pselect6, .args = {
		nfds, L(readfds), L(writefds), L(exceptfds), timeout ? L(&ts) : 0 } });
	if (timeout) {
		tv = (struct timeval){ ts.tv_sec, ts.tv_nsec / 1000 };
		sc_copy_out(timeout, &tv, sizeof(tv));
	}
	return r;
}
#endif

static void write_rem(const struct sc_req *r, struct timespec *rem)
{
	int64_t end = sc_timeout_end(r), left = end - sc_now_ns();

	if (end == SC_NO_DEADLINE)
		return;
	left = left < 0 ? 0 : left;
	sc_copy_out(rem, &(struct timespec){ left / 1000000000LL, left % 1000000000LL },
		    sizeof(*rem));
}

/*
 * A relative sleep cancelled or timed out leaves in *rem the time it had
 * left, as clock_nanosleep does after EINTR.
 */
sc_result sc_clock_nanosleep(sc_token *tok, clockid_t clock, int flags,
			     const struct timespec *req, struct timespec *rem)
{
	struct sc_req r = { .nr = SYS_clock_nanosleep, .args = { clock, flags, L(req), L(rem) } };
	sc_result res = sc_run_syscall(tok, &r);

	if ((res.status == SC_CANCELLED || res.status == SC_TIMEDOUT) && rem &&
	    r.timeout == SC_TIMEOUT_TIMESPEC)
		write_rem(&r, rem);
	return res;
}

/*
 * The kernel writes the time left back into ts, so a retry keeps the total.
 * It takes the count as an unsigned int: a larger one would wrap to a few.
 */
sc_result sc_poll(sc_token *tok, struct pollfd *fds, nfds_t n, int timeout_ms)
{
	struct timespec ts = { timeout_ms / 1000, timeout_ms % 1000 * 1000000L };

	if (n > UINT_MAX)
		return sc_error(EINVAL);
	return sc_run(tok, SYS_ppoll, L(fds), L(n), timeout_ms < 0 ? 0 : L(&ts), 0, 8, 0);
}

SC_SYSCALL(sc_epoll_wait, (sc_token *tok, int epfd, struct epoll_event *events, int maxevents,
			   int timeout_ms),
	   SYS_epoll_pwait, epfd, L(events), maxevents, timeout_ms, 0, SC_KERNEL_SIGSET)

/* The io_uring backend runs this sleep, and only this one, as a timeout of its own. */
sc_result sc_sleep(sc_token *tok, int64_t ns)
{
	int64_t now = sc_now_ns();
	int64_t end = ns > SC_NO_DEADLINE - now ? SC_NO_DEADLINE : now + ns;
	struct timespec ts = { end / 1000000000LL, end % 1000000000LL };

	if (ns < 0)
		return sc_error(EINVAL);
	return sc_run_req(tok, &(struct sc_req){ .nr = SYS_clock_nanosleep, .flags = SC_REQ_SLEEP,
		.args = { CLOCK_MONOTONIC, TIMER_ABSTIME, L(&ts) } });
}

sc_result sc_fcntl_lock(sc_token *tok, int fd, int cmd, struct flock *lock)
{
	switch (cmd) {
	case F_SETLKW:
	case F_OFD_SETLKW:
	case F_SETLK:
	case F_OFD_SETLK:
	case F_GETLK:
	case F_OFD_GETLK:
		return sc_run(tok, SYS_fcntl, L(fd), L(cmd), L(lock), 0, 0, 0);
	}
	return sc_error(EINVAL);
}

static int is_unconnected_tcp(int fd)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	int type = 0, proto = 0;
	socklen_t len = sizeof(int);

	return !getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) && type == SOCK_STREAM &&
	       !getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) && proto == IPPROTO_TCP &&
	       getpeername(fd, (struct sockaddr *)&peer, &plen) && errno == ENOTCONN;
}

/*
 * A TCP connect interrupted in the kernel goes on in the background; a
 * cancelled one is dissolved (connect to AF_UNSPEC) so that it had no effect.
 */
sc_result sc_connect(sc_token *tok, int fd, const struct sockaddr *addr, socklen_t alen)
{
	struct sc_req req = {
		.nr = SYS_connect,
		.args = { fd, L(addr), alen },
		.flags = SC_REQ_CONNECT,
	};
	int dissolve = tok && is_unconnected_tcp(fd);
	sc_result r = sc_run_req(tok, &req);

	if (dissolve && (r.status == SC_CANCELLED || r.status == SC_TIMEDOUT)) {
		struct sockaddr unspec = { .sa_family = AF_UNSPEC };
		connect(fd, &unspec, sizeof(unspec));
	}
	return r;
}
