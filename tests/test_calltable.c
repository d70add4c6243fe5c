/*
 * The whole call table: every typed call, and the raw forms of the calls
 * that take a signal set or a relative timeout, blocked and then
 * cancelled, timed out, or interrupted by the application's own signals.
 * A cancelled or timed-out call had no effect: pipes, sockets, queues and
 * semaphores are as they were, and no child was reaped.  Signal sets given
 * to the kernel never hold the library's signal, so a wait on a full set
 * is cancellable (it took the cancel as data and hung before), and a
 * relative timeout goes on with the time that remains after a foreign
 * signal instead of starting again.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/msg.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

#define L(x) ((long)(x))
#define MSG_SIZE 32
#define KSET 8			/* the kernel's sigset size */

/* What every blocked call of the table waits on, and what it must leave alone. */
struct fx {
	int empty[2];		/* a pipe with nothing in it */
	int other[2];		/* where splice and tee would put bytes */
	int full[2];		/* a pipe that takes no more */
	int full_bytes;
	int sock[2];		/* a stream socket pair: [0] empty, [1] filled up towards [0] */
	int sock_queued;	/* bytes waiting at [0] */
	int epfd;		/* watches empty[0] */
	int msq_empty, msq_full, msq_full_count;
	mqd_t mq_empty, mq_full;
	int sem;		/* value 0 */
	int child_pipe[2];	/* the child waits for its end of file */
	pid_t child;
};

static struct fx fx;
static sigset_t all_but_usr1;	/* a "full" set: the library's signal is in it */
static long app_signals;

static void count_signal(int sig)
{
	(void)sig;
	add(&app_signals, 1);
}

static void set_nonblock(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFL);

	ck_assert_int_ge(flags, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK), 0);
}

static void fill(int fd)
{
	static char junk[4096];

	set_nonblock(fd, true);
	while (write(fd, junk, sizeof(junk)) > 0)
		;
	ck_assert_int_eq(errno, EAGAIN);
	/* A stream socket takes a little more once the peer has coalesced its buffers. */
	while (write(fd, junk, 1) > 0)
		;
	set_nonblock(fd, false);
}

static int queued(int fd)
{
	int n = -1;

	ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

static int msq_count(int id)
{
	struct msqid_ds ds;

	ck_assert_int_eq(msgctl(id, IPC_STAT, &ds), 0);
	return (int)ds.msg_qnum;
}

static void open_queues(void)
{
	struct msqid_ds ds;
	struct { long type; char text[MSG_SIZE]; } m = { 1, "x" };
	struct mq_attr attr = { .mq_maxmsg = 1, .mq_msgsize = MSG_SIZE };
	char name[64];

	fx.msq_empty = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	fx.msq_full = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	ck_assert_int_ge(fx.msq_empty, 0);
	ck_assert_int_ge(fx.msq_full, 0);
	ck_assert_int_eq(msgctl(fx.msq_full, IPC_STAT, &ds), 0);
	ds.msg_qbytes = 2 * MSG_SIZE;
	ck_assert_int_eq(msgctl(fx.msq_full, IPC_SET, &ds), 0);
	while (!msgsnd(fx.msq_full, &m, MSG_SIZE, IPC_NOWAIT))
		;
	ck_assert_int_eq(errno, EAGAIN);
	fx.msq_full_count = msq_count(fx.msq_full);

	snprintf(name, sizeof(name), "/syscancel-calltable-%d-e", getpid());
	fx.mq_empty = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
	ck_assert_int_ge(fx.mq_empty, 0);
	mq_unlink(name);
	snprintf(name, sizeof(name), "/syscancel-calltable-%d-f", getpid());
	fx.mq_full = mq_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &attr);
	ck_assert_int_ge(fx.mq_full, 0);
	mq_unlink(name);
	ck_assert_int_eq(mq_send(fx.mq_full, "x", 1, 0), 0);

	fx.sem = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	ck_assert_int_ge(fx.sem, 0);
}

/* A child that exits once its pipe is closed: waitid has something to wait for. */
static void start_child(void)
{
	char b;

	make_pipe(fx.child_pipe);
	fx.child = fork();
	ck_assert_int_ge(fx.child, 0);
	if (!fx.child) {
		close(fx.child_pipe[1]);
		while (read(fx.child_pipe[0], &b, 1) > 0)
			;
		_exit(0);
	}
	close(fx.child_pipe[0]);
}

static void fx_open(void)
{
	struct epoll_event ev = { .events = EPOLLIN };

	make_pipe(fx.empty);
	make_pipe(fx.other);
	make_pipe(fx.full);
	fill(fx.full[1]);
	fx.full_bytes = queued(fx.full[0]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fx.sock), 0);
	fill(fx.sock[1]);
	fx.sock_queued = queued(fx.sock[0]);
	fx.epfd = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_ge(fx.epfd, 0);
	ck_assert_int_eq(epoll_ctl(fx.epfd, EPOLL_CTL_ADD, fx.empty[0], &ev), 0);
	open_queues();
	start_child();
}

static void fx_close(void)
{
	close_pipe(fx.empty);
	close_pipe(fx.other);
	close_pipe(fx.full);
	close_pipe(fx.sock);
	close(fx.epfd);
	msgctl(fx.msq_empty, IPC_RMID, NULL);
	msgctl(fx.msq_full, IPC_RMID, NULL);
	mq_close(fx.mq_empty);
	mq_close(fx.mq_full);
	semctl(fx.sem, 0, IPC_RMID);
	close(fx.child_pipe[1]);
	ck_assert_int_eq(waitpid(fx.child, NULL, 0), fx.child);
}

/* Nothing read, written, received, sent, taken or reaped. */
static void assert_untouched(const char *name)
{
	struct mq_attr attr;
	siginfo_t si = { 0 };

	ck_assert_msg(queued(fx.empty[0]) == 0 && queued(fx.other[0]) == 0,
		      "%s: bytes appeared in an empty pipe", name);
	ck_assert_msg(queued(fx.full[0]) == fx.full_bytes, "%s: the full pipe changed", name);
	ck_assert_msg(queued(fx.sock[0]) == fx.sock_queued, "%s: the socket's bytes changed", name);
	ck_assert_msg(queued(fx.sock[1]) == 0, "%s: bytes appeared at the socket", name);
	ck_assert_msg(msq_count(fx.msq_empty) == 0 && msq_count(fx.msq_full) == fx.msq_full_count,
		      "%s: a message queue changed", name);
	ck_assert_int_eq(mq_getattr(fx.mq_empty, &attr), 0);
	ck_assert_msg(attr.mq_curmsgs == 0, "%s: the empty POSIX queue changed", name);
	ck_assert_int_eq(mq_getattr(fx.mq_full, &attr), 0);
	ck_assert_msg(attr.mq_curmsgs == 1, "%s: the full POSIX queue changed", name);
	ck_assert_msg(semctl(fx.sem, 0, GETVAL) == 0 && semctl(fx.sem, 0, GETNCNT) == 0,
		      "%s: the semaphore changed, or a waiter is left", name);
	ck_assert_int_eq(waitid(P_PID, fx.child, &si, WEXITED | WNOHANG | WNOWAIT), 0);
	ck_assert_msg(si.si_pid == 0, "%s: the child went away", name);
}

/* Kernels before 5.11 and valgrind 3.19 do not know epoll_pwait2. */
static bool have_epoll_pwait2(void)
{
#ifdef SYS_epoll_pwait2
	return syscall(SYS_epoll_pwait2, -1, NULL, 0, NULL, NULL, 0) == -1 && errno != ENOSYS;
#else
	return false;
#endif
}

/* What the aarch64 build's suites cannot check under qemu-user, which runs them. */
static bool have_preadv2(void)
{
	return !skipped_under_emulator("sc_preadv, sc_pwritev", QEMU_PREADV2);
}

static bool splice_interruptible(void)
{
	return !skipped_under_emulator("sc_splice, sc_tee", QEMU_SPLICE);
}

static bool time_left_written_back(void)
{
	return !skipped_under_emulator("sc_ppoll, sc_pselect, sc_select", QEMU_TIME_LEFT);
}

/* The calls, each blocked on the fixture. */
static struct timespec ts_100s = { 100, 0 };
static char buf[MSG_SIZE];
static struct iovec iov = { buf, sizeof(buf) };

static sc_result do_select(sc_token *t)
{
	fd_set r;

	FD_ZERO(&r);
	FD_SET(fx.empty[0], &r);
	return sc_select(t, fx.empty[0] + 1, &r, NULL, NULL, NULL);
}

static sc_result do_pselect(sc_token *t)
{
	fd_set r;

	FD_ZERO(&r);
	FD_SET(fx.empty[0], &r);
	return sc_pselect(t, fx.empty[0] + 1, &r, NULL, NULL, NULL, &all_but_usr1);
}

static sc_result do_ppoll(sc_token *t)
{
	struct pollfd p = { fx.empty[0], POLLIN, 0 };

	return sc_ppoll(t, &p, 1, NULL, &all_but_usr1);
}

/* No mask, one descriptor: on io_uring this one goes through the ring. */
static sc_result do_ppoll_nomask(sc_token *t)
{
	struct pollfd p = { fx.empty[0], POLLIN, 0 };

	return sc_ppoll(t, &p, 1, &ts_100s, NULL);
}

static sc_result do_epoll_pwait(sc_token *t)
{
	struct epoll_event ev;

	return sc_epoll_pwait(t, fx.epfd, &ev, 1, -1, &all_but_usr1);
}

static sc_result do_waitid(sc_token *t)
{
	siginfo_t si;

	return sc_waitid(t, P_PID, fx.child, &si, WEXITED);
}

static sc_result do_sigtimedwait(sc_token *t)
{
	return sc_sigtimedwait(t, &all_but_usr1, NULL, NULL);
}

static sc_result do_sigsuspend(sc_token *t)
{
	return sc_sigsuspend(t, &all_but_usr1);
}

static sc_result do_clock_nanosleep(sc_token *t)
{
	return sc_clock_nanosleep(t, CLOCK_MONOTONIC, 0, &ts_100s, NULL);
}

static sc_result do_clock_nanosleep_abs(sc_token *t)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 100;
	return sc_clock_nanosleep(t, CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL);
}

static sc_result do_recvmmsg(sc_token *t)
{
	struct mmsghdr m = { .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };

	return sc_recvmmsg(t, fx.sock[1], &m, 1, 0, NULL);
}

static sc_result do_sendmmsg(sc_token *t)
{
	struct mmsghdr m = { .msg_hdr = { .msg_iov = &iov, .msg_iovlen = 1 } };

	return sc_sendmmsg(t, fx.sock[1], &m, 1, MSG_NOSIGNAL);
}

static sc_result do_preadv(sc_token *t)
{
	return sc_preadv(t, fx.empty[0], &iov, 1, -1, 0);
}

static sc_result do_pwritev(sc_token *t)
{
	return sc_pwritev(t, fx.full[1], &iov, 1, -1, 0);
}

static sc_result do_msgrcv(sc_token *t)
{
	struct { long type; char text[MSG_SIZE]; } m;

	return sc_msgrcv(t, fx.msq_empty, &m, MSG_SIZE, 0, 0);
}

static sc_result do_msgsnd(sc_token *t)
{
	struct { long type; char text[MSG_SIZE]; } m = { 1, "y" };

	return sc_msgsnd(t, fx.msq_full, &m, MSG_SIZE, 0);
}

static sc_result do_mq_timedreceive(sc_token *t)
{
	return sc_mq_timedreceive(t, fx.mq_empty, buf, MSG_SIZE, NULL, NULL);
}

static sc_result do_mq_timedsend(sc_token *t)
{
	return sc_mq_timedsend(t, fx.mq_full, "y", 1, 0, NULL);
}

static sc_result do_semtimedop(sc_token *t)
{
	struct sembuf op = { 0, -1, 0 };

	return sc_semtimedop(t, fx.sem, &op, 1, NULL);
}

static sc_result do_splice(sc_token *t)
{
	return sc_splice(t, fx.empty[0], NULL, fx.other[1], NULL, 16, 0);
}

static sc_result do_tee(sc_token *t)
{
	return sc_tee(t, fx.empty[0], fx.other[1], 16, 0);
}

/* The raw forms, through sc_syscall, with the same full sets. */
static sc_result raw_sigtimedwait(sc_token *t)
{
	return sc_syscall(t, SYS_rt_sigtimedwait, L(&all_but_usr1), 0, 0, KSET, 0, 0);
}

static sc_result raw_sigsuspend(sc_token *t)
{
	return sc_syscall(t, SYS_rt_sigsuspend, L(&all_but_usr1), KSET, 0, 0, 0, 0);
}

#ifdef SYS_pause
static sc_result raw_pause(sc_token *t)
{
	return sc_syscall(t, SYS_pause, 0, 0, 0, 0, 0, 0);
}
#endif

static sc_result raw_ppoll(sc_token *t)
{
	struct pollfd p = { fx.empty[0], POLLIN, 0 };

	return sc_syscall(t, SYS_ppoll, L(&p), 1, 0, L(&all_but_usr1), KSET, 0);
}

static sc_result raw_pselect6(sc_token *t)
{
	struct { const sigset_t *set; size_t size; } mask = { &all_but_usr1, KSET };
	fd_set r;

	FD_ZERO(&r);
	FD_SET(fx.empty[0], &r);
	return sc_syscall(t, SYS_pselect6, fx.empty[0] + 1, L(&r), 0, 0, 0, L(&mask));
}

static sc_result raw_epoll_pwait(sc_token *t)
{
	struct epoll_event ev;

	return sc_syscall(t, SYS_epoll_pwait, fx.epfd, L(&ev), 1, -1, L(&all_but_usr1), KSET);
}

#ifdef SYS_epoll_pwait2
static sc_result raw_epoll_pwait2(sc_token *t)
{
	struct epoll_event ev;

	return sc_syscall(t, SYS_epoll_pwait2, fx.epfd, L(&ev), 1, 0, L(&all_but_usr1), KSET);
}
#endif

static sc_result raw_nanosleep(sc_token *t)
{
	return sc_syscall(t, SYS_nanosleep, L(&ts_100s), 0, 0, 0, 0, 0);
}

struct blocked_call {
	const char *name;
	sc_result (*run)(sc_token *t);
	bool ends_at_signal;	/* waits for a signal: an application handler ends it */
	bool (*available)(void);	/* NULL: everywhere */
};

static const struct blocked_call calls[] = {
	{ "sc_select", do_select, false, NULL },
	{ "sc_pselect", do_pselect, false, NULL },
	{ "sc_ppoll", do_ppoll, false, NULL },
	{ "sc_ppoll without a mask", do_ppoll_nomask, false, NULL },
	{ "sc_epoll_pwait", do_epoll_pwait, false, NULL },
	{ "sc_waitid", do_waitid, false, NULL },
	{ "sc_sigtimedwait", do_sigtimedwait, false, NULL },
	{ "sc_sigsuspend", do_sigsuspend, true, NULL },
	{ "sc_clock_nanosleep", do_clock_nanosleep, false, NULL },
	{ "sc_clock_nanosleep TIMER_ABSTIME", do_clock_nanosleep_abs, false, NULL },
	{ "sc_recvmmsg", do_recvmmsg, false, NULL },
	{ "sc_sendmmsg", do_sendmmsg, false, NULL },
	{ "sc_preadv", do_preadv, false, have_preadv2 },
	{ "sc_pwritev", do_pwritev, false, have_preadv2 },
	{ "sc_msgrcv", do_msgrcv, false, NULL },
	{ "sc_msgsnd", do_msgsnd, false, NULL },
	{ "sc_mq_timedreceive", do_mq_timedreceive, false, NULL },
	{ "sc_mq_timedsend", do_mq_timedsend, false, NULL },
	{ "sc_semtimedop", do_semtimedop, false, NULL },
	{ "sc_splice", do_splice, false, splice_interruptible },
	{ "sc_tee", do_tee, false, splice_interruptible },
	{ "rt_sigtimedwait", raw_sigtimedwait, false, NULL },
	{ "rt_sigsuspend", raw_sigsuspend, true, NULL },
#ifdef SYS_pause
	{ "pause", raw_pause, true, NULL },
#endif
	{ "ppoll", raw_ppoll, false, NULL },
	{ "pselect6", raw_pselect6, false, NULL },
	{ "epoll_pwait", raw_epoll_pwait, false, NULL },
#ifdef SYS_epoll_pwait2
	{ "epoll_pwait2", raw_epoll_pwait2, false, have_epoll_pwait2 },
#endif
	{ "nanosleep", raw_nanosleep, false, NULL },
};

static const struct blocked_call *call_of(struct bg_call *c)
{
	return c->arg;
}

static sc_result run_blocked_call(struct bg_call *c)
{
	return call_of(c)->run(c->tok);
}

/* The thread leaves SIGUSR1 open, whatever the test runner's mask. */
static void setup(void)
{
	sigset_t usr1;

	init_library();
	sigfillset(&all_but_usr1);
	sigdelset(&all_but_usr1, SIGUSR1);
	ck_assert(sigismember(&all_but_usr1, sc_signal_number()));
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &usr1, NULL), 0);
	fx_open();
}

static bool unavailable(bool (*available)(void))
{
	if (!available || available())
		return false;
	fx_close();
	return true;
}

static void start(struct bg_call *c, const struct blocked_call *call, sc_token *tok)
{
	*c = (struct bg_call){ .fn = run_blocked_call, .tok = tok, .arg = (void *)call };
	bg_start(c);
	ck_assert_msg(bg_wait_blocked(c), "%s returned instead of blocking: status %d error %d (%s)",
		      call->name, c->res.status, c->res.error, strerror(c->res.error));
}

START_TEST(a_blocked_call_cancelled_returns_SC_CANCELLED_and_had_no_effect)
{
	const struct blocked_call *call = &calls[_i];
	struct bg_call c;
	sc_token tok;

	if (unavailable(call->available))
		return;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	start(&c, call, &tok);
	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_status(bg_join(&c), SC_CANCELLED, "%s", call->name);
	assert_untouched(call->name);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	fx_close();
}
END_TEST

START_TEST(a_blocked_call_past_its_deadline_returns_SC_TIMEDOUT_and_had_no_effect)
{
	const struct blocked_call *call = &calls[_i];
	struct bg_call c;
	sc_token tok;

	if (unavailable(call->available))
		return;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&tok, 200 * MS_NS), 0);
	c = (struct bg_call){ .fn = run_blocked_call, .tok = &tok, .arg = (void *)call };
	bg_start(&c);
	assert_status(bg_join(&c), SC_TIMEDOUT, "%s", call->name);
	assert_untouched(call->name);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	fx_close();
}
END_TEST

#define FOREIGN_SIGNALS 5

/*
 * _i: the call, times two; odd with SA_RESTART.  The application's signals
 * neither end the call nor cancel it, but for the calls that wait for a
 * signal: those end with SC_ERROR EINTR, as sigsuspend(2) and pause(2) do.
 */
START_TEST(application_signals_end_only_the_calls_that_wait_for_a_signal)
{
	const struct blocked_call *call = &calls[_i / 2];
	struct bg_call c;
	sc_token tok;

	if (unavailable(call->available))
		return;

	install_handler(SIGUSR1, count_signal, _i % 2 ? SA_RESTART : 0, NULL);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	start(&c, call, &tok);
	for (int n = 1; n <= FOREIGN_SIGNALS && !bg_done(&c); n++) {
		ck_assert_int_eq(pthread_kill(c.thread, SIGUSR1), 0);
		wait_at_least(&app_signals, n, "%s: handler %d runs", call->name, n);
		if (!bg_wait_blocked(&c))
			break;
	}
	if (call->ends_at_signal) {
		assert_error(bg_join(&c), EINTR);
	} else {
		ck_assert_msg(!bg_done(&c), "%s ended at an application signal: status %d error %d",
			      call->name, c.res.status, c.res.error);
		ck_assert_int_eq(sc_cancel(&tok), 0);
		assert_status(bg_join(&c), SC_CANCELLED, "%s", call->name);
	}
	assert_untouched(call->name);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	fx_close();
}
END_TEST

/* Relative timeouts, each of TIMED_NS, and what each returns when it expires. */
#define TIMED_NS SEC_NS
#define SIGNAL_EVERY_NS (200 * MS_NS)
static const struct timespec ts_timed = { TIMED_NS / SEC_NS, TIMED_NS % SEC_NS };
static uint32_t futex_word;

static sc_result t_clock_nanosleep(sc_token *t)
{
	return sc_clock_nanosleep(t, CLOCK_MONOTONIC, 0, &ts_timed, NULL);
}

static sc_result t_clock_nanosleep_realtime(sc_token *t)
{
	return sc_clock_nanosleep(t, CLOCK_REALTIME, 0, &ts_timed, NULL);
}

static sc_result t_raw_nanosleep(sc_token *t)
{
	return sc_syscall(t, SYS_nanosleep, L(&ts_timed), 0, 0, 0, 0, 0);
}

static sc_result t_raw_clock_nanosleep(sc_token *t)
{
	return sc_syscall(t, SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, L(&ts_timed), 0, 0, 0);
}

static sc_result t_sigtimedwait(sc_token *t)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	return sc_sigtimedwait(t, &set, NULL, &ts_timed);
}

static sc_result t_raw_sigtimedwait(sc_token *t)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	return sc_syscall(t, SYS_rt_sigtimedwait, L(&set), 0, L(&ts_timed), KSET, 0, 0);
}

static sc_result t_semtimedop(sc_token *t)
{
	struct sembuf op = { 0, -1, 0 };

	return sc_semtimedop(t, fx.sem, &op, 1, &ts_timed);
}

static sc_result t_raw_futex(sc_token *t)
{
	return sc_syscall(t, SYS_futex, L(&futex_word), FUTEX_WAIT_PRIVATE, 0, L(&ts_timed), 0, 0);
}

#ifdef SYS_poll
static sc_result t_raw_poll(sc_token *t)
{
	struct pollfd p = { fx.empty[0], POLLIN, 0 };

	return sc_syscall(t, SYS_poll, L(&p), 1, TIMED_NS / MS_NS, 0, 0, 0);
}
#endif

#ifdef SYS_epoll_wait
static sc_result t_raw_epoll_wait(sc_token *t)
{
	struct epoll_event ev;

	return sc_syscall(t, SYS_epoll_wait, fx.epfd, L(&ev), 1, TIMED_NS / MS_NS, 0, 0);
}
#endif

#ifdef SYS_epoll_pwait2
static sc_result t_raw_epoll_pwait2(sc_token *t)
{
	struct epoll_event ev;

	return sc_syscall(t, SYS_epoll_pwait2, fx.epfd, L(&ev), 1, L(&ts_timed), 0, KSET);
}
#endif

static sc_result t_epoll_pwait(sc_token *t)
{
	struct epoll_event ev;

	return sc_epoll_pwait(t, fx.epfd, &ev, 1, TIMED_NS / MS_NS, &all_but_usr1);
}

static sc_result t_ppoll(sc_token *t)
{
	struct pollfd p = { fx.empty[0], POLLIN, 0 };

	return sc_ppoll(t, &p, 1, &ts_timed, &all_but_usr1);
}

static sc_result t_pselect(sc_token *t)
{
	fd_set r;

	FD_ZERO(&r);
	FD_SET(fx.empty[0], &r);
	return sc_pselect(t, fx.empty[0] + 1, &r, NULL, NULL, &ts_timed, &all_but_usr1);
}

static sc_result t_select(sc_token *t)
{
	struct timeval tv = { TIMED_NS / SEC_NS, TIMED_NS % SEC_NS / 1000 };
	fd_set r;

	FD_ZERO(&r);
	FD_SET(fx.empty[0], &r);
	return sc_select(t, fx.empty[0] + 1, &r, NULL, NULL, &tv);
}

static sc_result t_mq_timedreceive(sc_token *t)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += TIMED_NS / SEC_NS;
	return sc_mq_timedreceive(t, fx.mq_empty, buf, MSG_SIZE, NULL, &until);
}

struct timed_call {
	const char *name;
	sc_result (*run)(sc_token *t);
	int expired;		/* the error at expiry; 0: SC_OK with 0 */
	bool (*available)(void);	/* NULL: everywhere */
};

static const struct timed_call timed_calls[] = {
	{ "sc_clock_nanosleep", t_clock_nanosleep, 0, NULL },
	{ "sc_clock_nanosleep CLOCK_REALTIME", t_clock_nanosleep_realtime, 0, NULL },
	{ "nanosleep", t_raw_nanosleep, 0, NULL },
	{ "clock_nanosleep", t_raw_clock_nanosleep, 0, NULL },
	{ "sc_sigtimedwait", t_sigtimedwait, EAGAIN, NULL },
	{ "rt_sigtimedwait", t_raw_sigtimedwait, EAGAIN, NULL },
	{ "sc_semtimedop", t_semtimedop, EAGAIN, NULL },
	{ "futex", t_raw_futex, ETIMEDOUT, NULL },
#ifdef SYS_poll
	{ "poll", t_raw_poll, 0, NULL },
#endif
#ifdef SYS_epoll_wait
	{ "epoll_wait", t_raw_epoll_wait, 0, NULL },
#endif
#ifdef SYS_epoll_pwait2
	{ "epoll_pwait2", t_raw_epoll_pwait2, 0, have_epoll_pwait2 },
#endif
	{ "sc_epoll_pwait", t_epoll_pwait, 0, NULL },
	{ "sc_ppoll", t_ppoll, 0, time_left_written_back },
	{ "sc_pselect", t_pselect, 0, time_left_written_back },
	{ "sc_select", t_select, 0, time_left_written_back },
	{ "sc_mq_timedreceive", t_mq_timedreceive, ETIMEDOUT, NULL },
};

static const struct timed_call *timed_of(struct bg_call *c)
{
	return c->arg;
}

static sc_result run_timed_call(struct bg_call *c)
{
	return timed_of(c)->run(c->tok);
}

/*
 * _i: the call, times two; odd with SA_RESTART.  A foreign signal every
 * 200 ms must not start a 1 s timeout again: the call ends after about 1 s
 * (the slack stretched under valgrind, where a timeout started again still
 * never ends).
 */
START_TEST(a_relative_timeout_goes_on_with_the_time_left_after_application_signals)
{
	const struct timed_call *call = &timed_calls[_i / 2];
	struct bg_call c = { .fn = run_timed_call, .arg = (void *)call };
	int64_t started = sc_now_ns(), limit = started + TIMED_NS + stretched(2 * SEC_NS), elapsed;

	if (unavailable(call->available))
		return;

	install_handler(SIGUSR1, count_signal, _i % 2 ? SA_RESTART : 0, NULL);
	bg_start(&c);
	while (!bg_done(&c) && sc_now_ns() < limit) {
		struct timespec pause = { 0, SIGNAL_EVERY_NS };

		nanosleep(&pause, NULL);
		if (!bg_done(&c))
			pthread_kill(c.thread, SIGUSR1);
	}
	ck_assert_msg(bg_done(&c), "%s: still waiting %lld ms after its %lld ms timeout: restarted",
		      call->name, (long long)((sc_now_ns() - started - TIMED_NS) / MS_NS),
		      (long long)(TIMED_NS / MS_NS));
	sc_result r = bg_join(&c);
	elapsed = c.returned_ns - started;
	if (call->expired)
		assert_status(r, SC_ERROR, "%s", call->name);
	ck_assert_msg(r.error == call->expired && (call->expired || r.value == 0),
		      "%s: status %d error %d value %ld at expiry", call->name, r.status, r.error,
		      r.value);
	ck_assert_msg(elapsed >= TIMED_NS - MS_NS, "%s: ended after %lld ms", call->name,
		      (long long)(elapsed / MS_NS));
	ck_assert_int_ge(load(&app_signals), 1);
	fx_close();
}
END_TEST

/* After a cancel, rem holds what the sleep had left, as after clock_nanosleep's EINTR. */
START_TEST(a_cancelled_relative_clock_nanosleep_leaves_the_time_left_in_rem)
{
	struct timespec rem = { -1, -1 };
	sc_token tok;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_cancelled(sc_clock_nanosleep(&tok, CLOCK_MONOTONIC, 0, &ts_100s, &rem));
	ck_assert_msg(rem.tv_sec >= 99 && rem.tv_sec <= 100 && rem.tv_nsec >= 0 &&
		      rem.tv_nsec < SEC_NS, "rem %ld.%09ld", (long)rem.tv_sec, rem.tv_nsec);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	fx_close();
}
END_TEST

START_TEST(a_completed_clock_nanosleep_leaves_rem_alone)
{
	struct timespec rem = { 7, 7 }, short_sleep = { 0, MS_NS };

	assert_ok(sc_clock_nanosleep(NULL, CLOCK_MONOTONIC, 0, &short_sleep, &rem), 0);
	ck_assert(rem.tv_sec == 7 && rem.tv_nsec == 7);
	fx_close();
}
END_TEST

/* sc_select updates the timeval with the time not slept, as select(2) does on Linux. */
START_TEST(sc_select_leaves_the_time_not_slept_in_its_timeval)
{
	struct timeval tv = { 100, 0 };
	fd_set r;

	ck_assert_int_eq(write(fx.empty[1], "x", 1), 1);
	FD_ZERO(&r);
	FD_SET(fx.empty[0], &r);
	assert_ok(sc_select(NULL, fx.empty[0] + 1, &r, NULL, NULL, &tv), 1);
	ck_assert(FD_ISSET(fx.empty[0], &r));
	ck_assert_msg(tv.tv_sec >= 95 && tv.tv_sec < 100, "timeval %ld.%06ld", (long)tv.tv_sec,
		      (long)tv.tv_usec);
	ck_assert_int_eq(read(fx.empty[0], buf, 1), 1);
	fx_close();
}
END_TEST

/* The signal set the application passes is its own: the library works on a copy. */
START_TEST(the_applications_signal_set_is_left_as_it_was)
{
	sigset_t before = all_but_usr1;
	sc_token tok;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&tok, 50 * MS_NS), 0);
	assert_status(sc_sigtimedwait(&tok, &all_but_usr1, NULL, NULL), SC_TIMEDOUT, "wait");
	ck_assert(!memcmp(&before, &all_but_usr1, sizeof(before)));
	ck_assert(sigismember(&all_but_usr1, sc_signal_number()));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	fx_close();
}
END_TEST

/*
 * The case as applications write it: sigwait on sigfillset, raw.  The kernel
 * used to take the cancel as the signal waited for: the library's handler
 * never ran and the call waited for ever.
 */
static sc_result sigwait_full_set(struct bg_call *c)
{
	sigset_t all;

	sigfillset(&all);
	return sc_syscall(c->tok, SYS_rt_sigtimedwait, L(&all), 0, 0, KSET, 0, 0);
}

START_TEST(a_sigwait_on_a_full_set_through_sc_syscall_is_cancelled)
{
	sc_token tok;
	struct bg_call c = { .fn = sigwait_full_set, .tok = &tok };

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_start_blocked(&c);
	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	fx_close();
}
END_TEST

/* A signal wait takes what it waits for: a signal of the set that is pending. */
START_TEST(sc_sigtimedwait_takes_a_pending_signal_of_its_set)
{
	sigset_t set;
	siginfo_t si;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	ck_assert_int_eq(pthread_kill(pthread_self(), SIGUSR2), 0);
	assert_ok(sc_sigtimedwait(NULL, &set, &si, NULL), SIGUSR2);
	ck_assert_int_eq(si.si_signo, SIGUSR2);
	fx_close();
}
END_TEST

/* Bad memory is the kernel's EFAULT, never a crash, whether or not the library reads it. */
START_TEST(bad_sets_and_timeouts_are_EFAULT)
{
	void *bad = (void *)16;
	struct pollfd p = { fx.empty[0], POLLIN, 0 };

	assert_error(sc_sigtimedwait(NULL, bad, NULL, NULL), EFAULT);
	assert_error(sc_sigsuspend(NULL, bad), EFAULT);
	assert_error(sc_ppoll(NULL, &p, 1, bad, NULL), EFAULT);
	assert_error(sc_ppoll(NULL, &p, 1, &(struct timespec){ 0 }, bad), EFAULT);
	assert_error(sc_pselect(NULL, 1, NULL, NULL, NULL, bad, NULL), EFAULT);
	assert_error(sc_clock_nanosleep(NULL, CLOCK_MONOTONIC, 0, bad, NULL), EFAULT);
	assert_error(sc_syscall(NULL, SYS_pselect6, 1, 0, 0, 0, 0, L(bad)), EFAULT);
	fx_close();
}
END_TEST

/*
 * Under ThreadSanitizer an SA_RESTART handler cannot run on top of a call the
 * kernel restarts: it waits for instrumented code.  These calls take the
 * signal path on io_uring too, so the same holds there.
 */
static int foreign_cases(void)
{
	return ARRAY_SIZE(calls) * 2;
}

static bool foreign_case_runs(int i)
{
	return !(i % 2) || !SC_TSAN;
}

int main(void)
{
	Suite *s = suite_create("calltable");
	TCase *tc = add_tcase(s, "cancel", 30, setup);

	tcase_add_loop_test(tc, a_blocked_call_cancelled_returns_SC_CANCELLED_and_had_no_effect,
			    0, ARRAY_SIZE(calls));
	tcase_add_loop_test(tc, a_blocked_call_past_its_deadline_returns_SC_TIMEDOUT_and_had_no_effect,
			    0, ARRAY_SIZE(calls));
	tc = add_tcase(s, "foreign", 30, setup);
	for (int i = 0; i < foreign_cases(); i++)
		if (foreign_case_runs(i))
			tcase_add_loop_test(tc, application_signals_end_only_the_calls_that_wait_for_a_signal,
					    i, i + 1);
	tc = add_tcase(s, "time left", 30, setup);
	tcase_add_loop_test(tc, a_relative_timeout_goes_on_with_the_time_left_after_application_signals,
			    0, 2 * ARRAY_SIZE(timed_calls));
	tcase_add_test(tc, a_cancelled_relative_clock_nanosleep_leaves_the_time_left_in_rem);
	tcase_add_test(tc, a_completed_clock_nanosleep_leaves_rem_alone);
	tcase_add_test(tc, sc_select_leaves_the_time_not_slept_in_its_timeval);
	tc = add_tcase(s, "sets", 30, setup);
	tcase_add_test(tc, a_sigwait_on_a_full_set_through_sc_syscall_is_cancelled);
	tcase_add_test(tc, the_applications_signal_set_is_left_as_it_was);
	tcase_add_test(tc, sc_sigtimedwait_takes_a_pending_signal_of_its_set);
	/* memcheck reports the bad pointers the kernel is given */
	if (!under_valgrind() && !skipped_under_emulator("bad_sets_and_timeouts_are_EFAULT",
							 QEMU_NO_VM_READV))
		tcase_add_test(tc, bad_sets_and_timeouts_are_EFAULT);
	return run_suite(s, CK_FORK_GETENV);
}
