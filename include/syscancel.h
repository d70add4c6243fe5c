/* syscancel: cancel a blocking system call running in another thread. */
#ifndef SYSCANCEL_H
#define SYSCANCEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <poll.h>
#include <mqueue.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SC_OK = 0, SC_ERROR, SC_CANCELLED, SC_TIMEDOUT } sc_status;

/*
 * error: errno for SC_ERROR, ECANCELED for SC_CANCELLED, ETIMEDOUT for
 * SC_TIMEDOUT, 0 for SC_OK.  value: the syscall's return value for SC_OK.
 */
typedef struct {
	sc_status status;
	int error;
	long value;
} sc_result;

/*
 * A cancellation scope.  The type is complete so that a token can live on
 * the stack or inside another object; its fields are private: use the
 * functions below.
 */
typedef struct sc_token sc_token;
struct sc_token {
	struct sc_token *priv_parent;
	int64_t priv_deadline;
	int priv_state;
	int priv_cause;
	int priv_children;
	int priv_user;
};

/* No deadline: the value sc_token_deadline() reports for a token without one. */
#define SC_NO_DEADLINE INT64_MAX

/*
 * Tokens.  Functions returning int give 0 or a positive errno value.
 *
 * sc_token_init       EINVAL: tok NULL, parent not a live token.  A child of a
 *                     cancelled parent starts cancelled.
 * sc_token_destroy    EINVAL: NULL, never initialised or already destroyed;
 *                     EBUSY: a child token or a call in flight still uses it.
 * sc_token_set_deadline  absolute CLOCK_MONOTONIC ns; SC_NO_DEADLINE clears it.
 *                     EINVAL: bad token or negative deadline.  Applies to calls
 *                     already in flight too.
 * sc_token_set_timeout   deadline = now + timeout_ns.  EINVAL: negative;
 *                     EOVERFLOW: now + timeout_ns does not fit (SC_NO_DEADLINE
 *                     is accepted and clears the deadline).
 * sc_token_deadline   the effective deadline: the earliest in the chain, or
 *                     SC_NO_DEADLINE (also for a bad token).
 * sc_cancel           sticky, idempotent, reaches every descendant and every
 *                     call in flight under it; async-signal-safe.  EINVAL: bad token.
 * sc_cancel_cause     as sc_cancel, recording cause (> 0, e.g. an errno value);
 *                     the first cause recorded wins.  sc_cancel records ECANCELED.
 * sc_token_cause      the cause of the nearest cancelled token in the chain
 *                     (the token itself first), else ETIMEDOUT if the chain's
 *                     deadline has passed, else 0 (also for a bad token).
 * sc_is_cancelled     the token or one of its ancestors is cancelled.
 */
int sc_token_init(sc_token *tok, sc_token *parent);
int sc_token_destroy(sc_token *tok);
int sc_token_set_deadline(sc_token *tok, int64_t deadline_ns);
int sc_token_set_timeout(sc_token *tok, int64_t timeout_ns);
int64_t sc_token_deadline(const sc_token *tok);
int sc_cancel(sc_token *tok);
int sc_cancel_cause(sc_token *tok, int cause);
int sc_token_cause(const sc_token *tok);
bool sc_is_cancelled(const sc_token *tok);
int64_t sc_now_ns(void);	/* CLOCK_MONOTONIC in ns */

/*
 * Scopes: cancelling code that knows nothing of syscancel.  Between
 * sc_scope_enter(tok) and the matching sc_scope_exit(), once tok, one of its
 * ancestors or the token of an enclosing scope of the thread is cancelled
 * (or its deadline passes), every blocking syscall the thread makes, from
 * any code, fails with ECANCELED (ETIMEDOUT for a deadline) and has no
 * effect, until the scope is left.  While nothing is cancelled a scope costs
 * nothing per syscall.  Which syscalls count as blocking: syscancel(7).
 *
 * sc_scope_enter  EINVAL: tok NULL or not a live token; ENOSPC: SC_SCOPE_MAX
 *                 scopes already open in this thread; else what the first
 *                 use's initialisation returns (see sc_init).  The token
 *                 cannot be destroyed (EBUSY) while a scope uses it.
 * sc_scope_exit   leaves the innermost scope; EINVAL: no scope open.
 */
#define SC_SCOPE_MAX 32
int sc_scope_enter(sc_token *tok);
int sc_scope_exit(void);

typedef enum {
	SC_BACKEND_DEFAULT = 0,
	SC_BACKEND_SIGNAL,
	SC_BACKEND_URING,
} sc_backend;

typedef struct {
	int signo;		/* 0: $SYSCANCEL_SIGNAL, else the library default */
	sc_backend backend;	/* SC_BACKEND_DEFAULT: $SYSCANCEL_BACKEND, else signal */
} sc_config;

/*
 * Optional: the first call initialises with defaults.  EINVAL: signal number
 * outside SIGRTMIN..SIGRTMAX or bad backend; EBUSY: the application already
 * has a handler on that signal; EALREADY: initialised before with another
 * configuration; ENOTSUP: io_uring asked for and unavailable (no liburing in
 * this build, or the kernel refuses it).
 */
int sc_init(const sc_config *cfg);
int sc_signal_number(void);	/* the signal in use, or -1 if initialisation failed */
/* Per-thread override of the backend; ENOTSUP where io_uring is unavailable. */
int sc_thread_backend(sc_backend backend);

/*
 * Blocking calls.  tok may be NULL: the call is then not cancellable.
 * SC_CANCELLED: a token in the chain was cancelled and the call had no effect.
 * SC_TIMEDOUT: the chain's deadline passed first; no effect either.
 * SC_OK: the syscall completed; value is what it returned.
 * SC_ERROR: error is the syscall's errno, or EINVAL for a destroyed token.
 * EINTR from the application's own signals is retried, never reported.
 * Not async-signal-safe; a call made from a signal handler that interrupted
 * another syscancel call of the same thread runs without cancellation.
 */
sc_result sc_read(sc_token *tok, int fd, void *buf, size_t len);
sc_result sc_write(sc_token *tok, int fd, const void *buf, size_t len);
sc_result sc_readv(sc_token *tok, int fd, const struct iovec *iov, int iovcnt);
sc_result sc_writev(sc_token *tok, int fd, const struct iovec *iov, int iovcnt);
sc_result sc_pread(sc_token *tok, int fd, void *buf, size_t len, off_t off);
sc_result sc_pwrite(sc_token *tok, int fd, const void *buf, size_t len, off_t off);
sc_result sc_recv(sc_token *tok, int fd, void *buf, size_t len, int flags);
sc_result sc_send(sc_token *tok, int fd, const void *buf, size_t len, int flags);
sc_result sc_recvfrom(sc_token *tok, int fd, void *buf, size_t len, int flags,
		      struct sockaddr *addr, socklen_t *alen);
sc_result sc_sendto(sc_token *tok, int fd, const void *buf, size_t len, int flags,
		    const struct sockaddr *addr, socklen_t alen);
sc_result sc_recvmsg(sc_token *tok, int fd, struct msghdr *msg, int flags);
sc_result sc_sendmsg(sc_token *tok, int fd, const struct msghdr *msg, int flags);
sc_result sc_accept(sc_token *tok, int fd, struct sockaddr *addr, socklen_t *alen, int flags);
/* A cancelled connect that had started is aborted: the socket is left unconnected. */
sc_result sc_connect(sc_token *tok, int fd, const struct sockaddr *addr, socklen_t alen);
sc_result sc_poll(sc_token *tok, struct pollfd *fds, nfds_t n, int timeout_ms);
sc_result sc_epoll_wait(sc_token *tok, int epfd, struct epoll_event *events,
			int maxevents, int timeout_ms);
sc_result sc_sleep(sc_token *tok, int64_t ns);	/* EINVAL if ns < 0 */
sc_result sc_waitpid(sc_token *tok, pid_t pid, int *wstatus, int options);
sc_result sc_openat(sc_token *tok, int dirfd, const char *path, int flags, mode_t mode);
sc_result sc_flock(sc_token *tok, int fd, int operation);
/* cmd: F_SETLKW, F_OFD_SETLKW (or the non-blocking F_SETLK, F_OFD_SETLK, F_GETLK,
   F_OFD_GETLK); anything else is EINVAL. */
sc_result sc_fcntl_lock(sc_token *tok, int fd, int cmd, struct flock *lock);
/* SC_OK when woken; SC_ERROR EAGAIN if *addr != expected.  Shared futex. */
sc_result sc_futex_wait(sc_token *tok, const uint32_t *addr, uint32_t expected);
/*
 * The rest of the C library's blocking calls, with its arguments.  Signal
 * sets given to the kernel never hold the library's signal (sc_signal_number).
 * sc_sigsuspend returns SC_ERROR EINTR once an application handler has run;
 * the others go on after it, relative timeouts with the time that remains.
 * sc_select updates *timeout as select(2) does; a cancelled or timed-out
 * relative sc_clock_nanosleep leaves in *rem the time it had left.
 * sc_preadv and sc_pwritev are preadv2 and pwritev2.
 */
struct mmsghdr;
struct sembuf;
sc_result sc_select(sc_token *tok, int nfds, fd_set *readfds, fd_set *writefds,
		    fd_set *exceptfds, struct timeval *timeout);
sc_result sc_pselect(sc_token *tok, int nfds, fd_set *readfds, fd_set *writefds,
		     fd_set *exceptfds, const struct timespec *timeout, const sigset_t *sigmask);
sc_result sc_ppoll(sc_token *tok, struct pollfd *fds, nfds_t n, const struct timespec *timeout,
		   const sigset_t *sigmask);
sc_result sc_epoll_pwait(sc_token *tok, int epfd, struct epoll_event *events, int maxevents,
			 int timeout_ms, const sigset_t *sigmask);
/* Their types are POSIX's: hidden, as the C library's own, in strict ISO C. */
#if defined(_POSIX_C_SOURCE) || defined(_XOPEN_SOURCE) || defined(_GNU_SOURCE) || \
	defined(_DEFAULT_SOURCE) || defined(_BSD_SOURCE) || defined(__cplusplus)
sc_result sc_waitid(sc_token *tok, idtype_t idtype, id_t id, siginfo_t *info, int options);
sc_result sc_sigtimedwait(sc_token *tok, const sigset_t *set, siginfo_t *info,
			  const struct timespec *timeout);
#endif
sc_result sc_sigsuspend(sc_token *tok, const sigset_t *mask);
sc_result sc_clock_nanosleep(sc_token *tok, clockid_t clock, int flags,
			     const struct timespec *req, struct timespec *rem);
sc_result sc_recvmmsg(sc_token *tok, int fd, struct mmsghdr *msgvec, unsigned int vlen,
		      int flags, struct timespec *timeout);
sc_result sc_sendmmsg(sc_token *tok, int fd, struct mmsghdr *msgvec, unsigned int vlen,
		      int flags);
sc_result sc_preadv(sc_token *tok, int fd, const struct iovec *iov, int iovcnt, off_t off,
		    int flags);
sc_result sc_pwritev(sc_token *tok, int fd, const struct iovec *iov, int iovcnt, off_t off,
		     int flags);
sc_result sc_msgrcv(sc_token *tok, int msqid, void *msgp, size_t msgsz, long msgtyp,
		    int msgflg);
sc_result sc_msgsnd(sc_token *tok, int msqid, const void *msgp, size_t msgsz, int msgflg);
sc_result sc_mq_timedreceive(sc_token *tok, mqd_t mqdes, char *msg, size_t len,
			     unsigned int *prio, const struct timespec *abs_timeout);
sc_result sc_mq_timedsend(sc_token *tok, mqd_t mqdes, const char *msg, size_t len,
			  unsigned int prio, const struct timespec *abs_timeout);
/* timeout NULL: semop. */
sc_result sc_semtimedop(sc_token *tok, int semid, struct sembuf *sops, size_t nsops,
			const struct timespec *timeout);
sc_result sc_splice(sc_token *tok, int fd_in, off_t *off_in, int fd_out, off_t *off_out,
		    size_t len, unsigned int flags);
sc_result sc_tee(sc_token *tok, int fd_in, int fd_out, size_t len, unsigned int flags);

/*
 * Any other syscall.  Relative timeouts go on with the time that remains
 * after someone else's signal; pause and rt_sigsuspend return SC_ERROR EINTR
 * once an application handler has run; close is never retried.
 */
sc_result sc_syscall(sc_token *tok, long nr, long a1, long a2, long a3,
		     long a4, long a5, long a6);

/*
 * A condition variable whose waits a token ends, used with an ordinary
 * pthread_mutex_t.  Complete type, private fields, no allocation;
 * process-private (not for shared memory).  Functions returning int give
 * 0 or a positive errno value: EINVAL for NULL or a cond that is not live.
 *
 * sc_cond_init       makes *c a live cond that nobody waits on.
 * sc_cond_destroy    EBUSY: threads wait on it.  Safe right after a
 *                    broadcast, before the woken threads have returned.
 * sc_cond_wait       unlocks m, waits for a signal or broadcast, relocks m.
 *                    m is held on return, whatever the status (a cancel or a
 *                    deadline still waits to relock it), except after EPERM
 *                    (m not held: errorcheck and robust mutexes) and
 *                    ENOTRECOVERABLE; EINVAL for a bad c or m leaves m
 *                    untouched.  SC_OK: woken, and a wake is never reported
 *                    as cancelled.  tok NULL: not cancellable.  Wait in a
 *                    loop on the predicate.
 * sc_cond_signal     wakes the thread that has waited longest, if any.
 * sc_cond_broadcast  wakes every thread waiting.
 */
typedef struct sc_cond sc_cond;
struct sc_cond {
	void *priv_head;
	void *priv_tail;
	uint32_t priv_lock;
	uint32_t priv_state;
};
int sc_cond_init(sc_cond *c);
int sc_cond_destroy(sc_cond *c);
sc_result sc_cond_wait(sc_token *tok, sc_cond *c, pthread_mutex_t *m);
int sc_cond_signal(sc_cond *c);
int sc_cond_broadcast(sc_cond *c);

/*
 * Introspection: every call in flight, and every thread inside a scope.
 *
 * sc_snapshot     fills out[0..max-1] and returns how many there are (may be
 *                 more than max); -1 with errno EINVAL if max < 0, or out is
 *                 NULL and max > 0.  Never blocks a call, never signals.
 * sc_dump         writes a table of them to fd, one line each; 0 or an errno
 *                 value.  Async-signal-safe: may run in a SIGQUIT handler.
 * sc_syscall_name "read", "recvfrom", ...; NULL for a number it does not know.
 */
typedef struct {
	pid_t tid;
	long syscall;		/* the syscall number, or -1 for a scope with no call */
	const sc_token *token;	/* the call's token (or the innermost scope's) */
	int64_t started_ns;	/* CLOCK_MONOTONIC; the first snapshot that saw it, at the latest */
	int64_t deadline_ns;	/* the effective deadline, SC_NO_DEADLINE if none */
	int cancelled;		/* its chain is cancelled, the call is on its way out */
	int in_scope;		/* a syscall made inside a scope rather than an sc_* call */
	long arg;		/* the syscall's first argument (a descriptor for most) */
	int cause;		/* if cancelled: the canceller's cause, or ETIMEDOUT */
} sc_call_info;

int sc_snapshot(sc_call_info *out, int max);
int sc_dump(int fd);
const char *sc_syscall_name(long nr);

#ifdef __cplusplus
}
#endif

#endif
