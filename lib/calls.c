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

sc_result sc_syscall(sc_token *tok, long nr, long a1, long a2, long a3,
		     long a4, long a5, long a6)
{
	struct sc_req req = { .nr = nr, .args = { a1, a2, a3, a4, a5, a6 }, .ms_arg = -1 };

	/* After EINTR the descriptor is gone: never retried, never "cancelled". */
	if (nr != SYS_close)
		return sc_run(tok, nr, a1, a2, a3, a4, a5, a6);
	req.flags = SC_REQ_NO_RETRY;
	return sc_run_req(tok, &req);
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

sc_result sc_epoll_wait(sc_token *tok, int epfd, struct epoll_event *events,
			int maxevents, int timeout_ms)
{
	struct sc_req req = {
		.nr = SYS_epoll_pwait,
		.args = { epfd, L(events), maxevents, timeout_ms, 0, 8 },
		.ms_arg = timeout_ms < 0 ? -1 : 3,
		.ms_end = sc_now_ns() + timeout_ms * 1000000LL,
	};

	return sc_run_req(tok, &req);
}

sc_result sc_sleep(sc_token *tok, int64_t ns)
{
	int64_t now = sc_now_ns();
	int64_t end = ns > SC_NO_DEADLINE - now ? SC_NO_DEADLINE : now + ns;
	struct timespec ts = { end / 1000000000LL, end % 1000000000LL };

	if (ns < 0)
		return sc_error(EINVAL);
	return sc_run(tok, SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, L(&ts), 0, 0, 0);
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
		.ms_arg = -1,
	};
	int dissolve = tok && is_unconnected_tcp(fd);
	sc_result r = sc_run_req(tok, &req);

	if (dissolve && (r.status == SC_CANCELLED || r.status == SC_TIMEDOUT)) {
		struct sockaddr unspec = { .sa_family = AF_UNSPEC };
		connect(fd, &unspec, sizeof(unspec));
	}
	return r;
}
