/*
 * Which syscalls a scope ends: those that can wait, judged from their
 * number and arguments as the kernel would see them.  Never futex (glibc
 * aborts on an error it does not expect there), close, regular files,
 * block devices, or a call that cannot wait.  Also: reading from /proc
 * which syscall a thread waits in.  Everything here is async-signal-safe.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fd_flags_can_wait(long fd)
{
	int fl = fcntl((int)fd, F_GETFL);

	return fl != -1 && !(fl & O_NONBLOCK);
}

/* Sockets, pipes, FIFOs, ttys and character devices without O_NONBLOCK. */
static int fd_can_wait(long fd)
{
	struct stat st;

	if (!fd_flags_can_wait(fd) || fstat((int)fd, &st))
		return 0;
	return !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISBLK(st.st_mode);
}

/* Copies user memory the kernel would read, without faulting on a bad pointer. */
static int peek(long addr, void *out, size_t len)
{
	struct iovec local = { out, len }, remote = { (void *)addr, len };

	return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)len;
}

/* A NULL timeout waits for ever; a zero one not at all. */
static int timespec_can_wait(long addr)
{
	struct timespec ts;

	return !addr || (peek(addr, &ts, sizeof(ts)) && (ts.tv_sec || ts.tv_nsec));
}

#ifdef SYS_select
static int timeval_can_wait(long addr)
{
	struct timeval tv;

	return !addr || (peek(addr, &tv, sizeof(tv)) && (tv.tv_sec || tv.tv_usec));
}
#endif

static int fifo_open_can_wait(long dirfd, long path, long flags)
{
	struct stat st;

	return !(flags & O_NONBLOCK) && !fstatat((int)dirfd, (const char *)path, &st, 0) &&
	       S_ISFIFO(st.st_mode);
}

static int socket_call_can_wait(const struct sc_syscall *c, int flags_arg)
{
	return !(c->args[flags_arg] & MSG_DONTWAIT) && fd_can_wait(c->args[0]);
}

static int wait_call_can_wait(const struct sc_syscall *c)
{
	const long *a = c->args;

	/* poll, select, epoll_wait and pause are x86_64's alone: aarch64 has only the newer calls. */
	switch (c->nr) {
#ifdef SYS_poll
	case SYS_poll:
		return (int)a[2] != 0;
#endif
	case SYS_ppoll:
		return timespec_can_wait(a[2]);
#ifdef SYS_select
	case SYS_select:
		return timeval_can_wait(a[4]);
#endif
	case SYS_pselect6:
		return timespec_can_wait(a[4]);
#ifdef SYS_epoll_wait
	case SYS_epoll_wait:
#endif
	case SYS_epoll_pwait:
		return (int)a[3] != 0;
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
		return timespec_can_wait(a[3]);
#endif
	case SYS_nanosleep:
		return timespec_can_wait(a[0]);
	case SYS_clock_nanosleep:
		return (a[1] & TIMER_ABSTIME) || timespec_can_wait(a[2]);
	case SYS_rt_sigtimedwait:
		return timespec_can_wait(a[2]);
#ifdef SYS_pause
	case SYS_pause:
#endif
	case SYS_rt_sigsuspend:
		return 1;
	case SYS_io_getevents:
		return a[1] > 0 && timespec_can_wait(a[4]);
	case SYS_io_uring_enter:
		return (a[3] & IORING_ENTER_GETEVENTS) && a[2] > 0;
	}
	return 0;
}

static int ipc_call_can_wait(const struct sc_syscall *c)
{
	const long *a = c->args;

	switch (c->nr) {
	case SYS_wait4:
		return !(a[2] & WNOHANG);
	case SYS_waitid:
		return !(a[3] & WNOHANG);
	case SYS_flock:
		return !(a[1] & LOCK_NB);
	case SYS_fcntl:
		return a[1] == F_SETLKW || a[1] == F_OFD_SETLKW;
	case SYS_msgrcv:
		return !(a[4] & IPC_NOWAIT);
	case SYS_msgsnd:
		return !(a[3] & IPC_NOWAIT);
	case SYS_semop:
		return 1;
	case SYS_semtimedop:
		return timespec_can_wait(a[3]);
	case SYS_mq_timedreceive:
	case SYS_mq_timedsend:
		return fd_flags_can_wait(a[0]);	/* a message queue is a regular file */
	}
	return wait_call_can_wait(c);
}

int sc_syscall_can_wait(const struct sc_syscall *c)
{
	const long *a = c->args;

	switch (c->nr) {
	case SYS_read:
	case SYS_readv:
	case SYS_write:
	case SYS_writev:
	case SYS_accept:
	case SYS_accept4:
	case SYS_connect:
		return fd_can_wait(a[0]);
	case SYS_recvfrom:
	case SYS_sendto:
	case SYS_recvmmsg:
	case SYS_sendmmsg:
		return socket_call_can_wait(c, 3);
	case SYS_recvmsg:
	case SYS_sendmsg:
		return socket_call_can_wait(c, 2);
	case SYS_openat:
		return fifo_open_can_wait(a[0], a[1], a[2]);
#ifdef SYS_open
	case SYS_open:
		return fifo_open_can_wait(AT_FDCWD, a[0], a[1]);
#endif
	}
	return ipc_call_can_wait(c);
}

int sc_syscall_may_wait(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_readv: case SYS_write: case SYS_writev:
	case SYS_accept: case SYS_accept4: case SYS_connect:
	case SYS_recvfrom: case SYS_sendto: case SYS_recvmmsg: case SYS_sendmmsg:
	case SYS_recvmsg: case SYS_sendmsg: case SYS_openat:
#ifdef SYS_open
	case SYS_open:
#endif
#ifdef SYS_poll
	case SYS_poll: case SYS_select: case SYS_epoll_wait: case SYS_pause:
#endif
	case SYS_ppoll: case SYS_pselect6: case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
#endif
	case SYS_nanosleep: case SYS_clock_nanosleep: case SYS_rt_sigtimedwait:
	case SYS_rt_sigsuspend: case SYS_io_getevents: case SYS_io_uring_enter:
	case SYS_wait4: case SYS_waitid: case SYS_flock: case SYS_fcntl:
	case SYS_msgrcv: case SYS_msgsnd: case SYS_semop: case SYS_semtimedop:
	case SYS_mq_timedreceive: case SYS_mq_timedsend:
		return 1;
	}
	return 0;
}

/* Decimal, for the path: no snprintf in a signal handler. */
static char *put_int(char *p, unsigned v)
{
	char tmp[12];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static const char *get_num(const char *p, uint64_t *v, int *ok)
{
	int neg = 0, base = 10, digits = 0;

	*v = 0;
	while (*p == ' ')
		p++;
	if (*p == '-')
		neg = 1, p++;
	if (p[0] == '0' && p[1] == 'x')
		base = 16, p += 2;
	for (;; p++, digits++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' :
			base == 16 && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
		if (d < 0)
			break;
		*v = *v * (uint64_t)base + (uint64_t)d;
	}
	if (neg)
		*v = -*v;
	*ok &= digits > 0;
	return p;
}

/* "nr arg1 ... arg6 sp pc" while blocked in a syscall, "running" or "-1 sp pc" otherwise. */
int sc_proc_blocked_syscall(int tid, struct sc_syscall *c, uint64_t *sp, uint64_t *pc)
{
	static const char dir[] = "/proc/self/task/";
	char path[sizeof(dir) + 24], buf[256], *p;
	const char *q = buf;
	uint64_t v[9];
	int fd, ok = 1;
	ssize_t n;

	memcpy(path, dir, sizeof(dir) - 1);
	p = put_int(path + sizeof(dir) - 1, (unsigned)tid);
	memcpy(p, "/syscall", sizeof("/syscall"));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || buf[0] < '0' || buf[0] > '9')
		return EAGAIN;
	buf[n] = 0;
	for (int i = 0; i < 9; i++)
		q = get_num(q, &v[i], &ok);
	if (!ok)
		return EAGAIN;
	c->nr = (long)v[0];
	for (int i = 0; i < 6; i++)
		c->args[i] = (long)v[i + 1];
	c->entered = 1;
	*sp = v[7];
	*pc = v[8];
	return 0;
}
