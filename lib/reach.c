/*
 * Whether the library's signal can reach a thread's call.  An application
 * may block the signal in a thread after that thread's first call, or
 * replace its handler: a signal sent then would wait forever, or be read
 * as data by a signalfd or sigwait of that thread, or (SIG_DFL) kill the
 * process.  Cancellers ask before they send whether the handler is still
 * the library's and whether the call would take the signal as data; the
 * mask, the dearest look at /proc, only after sending, while the signal is
 * on its way.  The cost is the canceller's, never the calling thread's.
 * Async-signal-safe: open, read, readlink, fstat, close.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef SC_HAVE_STUB
extern const char sc_stub_end[] SC_HIDDEN;
#endif

/* How long a thread that blocks the signal and runs in its call is looked at. */
#define RUNNING_PATIENCE_NS 2000000
/* The most descriptors of a poll looked at for a signalfd. */
#define POLL_LOOKS 16

static char *put_tid(char *p, unsigned v)
{
	char digits[12];
	int n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*p++ = digits[--n];
	return p;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * The mask on the line of file path that starts with key, read in small
 * pieces: 1 if it holds the library's signal, 0 if not, -1 if unreadable.
 */
static int mask_line_holds_signal(const char *path, const char *key)
{
	char buf[256];
	size_t matched = 1, len = strlen(key), hex = 0;	/* the file starts a line */
	uint64_t mask = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (matched < len) {
				matched = buf[i] == key[matched] ? matched + 1 : buf[i] == '\n';
				continue;
			}
			int v = hex_value(buf[i]);
			if (v < 0)
				goto done;
			mask = mask << 4 | (unsigned)v;
			hex++;
		}
	}
done:
	close(fd);
	if (!hex)
		return -1;
	return (mask >> (sc_g.signo - 1)) & 1;
}

/* Whether thread tid blocks the library's signal, from SigBlk in its status. */
static int blocks_signal(int tid)
{
	static const char dir[] = "/proc/self/task/";
	char path[sizeof(dir) + 24];

	memcpy(path, dir, sizeof(dir) - 1);
	memcpy(put_tid(path + sizeof(dir) - 1, (unsigned)tid), "/status", sizeof("/status"));
	return mask_line_holds_signal(path, "\nSigBlk:\t");
}

/*
 * Waiting in the call's own syscall: in the stub, or without one, in the
 * syscall the call published.  Elsewhere is a handler on top of the call
 * (under TSan, its runtime waiting with every signal blocked).
 */
static int waits_in_call(const struct sc_slot *s, const struct sc_syscall *c, uint64_t pc)
{
#ifdef SC_HAVE_STUB
	(void)s, (void)c;
	return pc == (uintptr_t)sc_stub_end;
#else
	(void)pc;
	return c->nr == load_relaxed(&s->nr);
#endif
}

/* Sockets, pipes and devices, the usual descriptors, are told apart without a readlink. */
static int maybe_anon_inode(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		return 0;
	return !S_ISSOCK(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode) &&
	       !S_ISBLK(st.st_mode) && !S_ISDIR(st.st_mode);
}

/* The descriptor is a signalfd whose mask holds the library's signal. */
static int signalfd_holds_signal(long fd)
{
	static const char fds[] = "/proc/self/fd/", info[] = "/proc/self/fdinfo/";
	static const char kind[] = "anon_inode:[signalfd]";
	char path[sizeof(info) + 24], link[sizeof(kind)];
	ssize_t n;

	if (fd < 0 || fd > INT_MAX || !maybe_anon_inode((int)fd))
		return 0;
	memcpy(path, fds, sizeof(fds) - 1);
	*put_tid(path + sizeof(fds) - 1, (unsigned)fd) = 0;
	n = readlink(path, link, sizeof(link));
	if (n != sizeof(kind) - 1 || memcmp(link, kind, (size_t)n))
		return 0;
	memcpy(path, info, sizeof(info) - 1);
	*put_tid(path + sizeof(info) - 1, (unsigned)fd) = 0;
	return mask_line_holds_signal(path, "\nsigmask:\t") != 0;
}

/* Copies n bytes of the waiting thread's argument at addr; 0 if they cannot be read. */
static int peek(long addr, void *buf, size_t n)
{
	return addr && !sc_copy_in(buf, (const void *)addr, n);
}

/* A poll of a few descriptors, one of them such a signalfd. */
static int polls_signalfd(long addr, unsigned long n)
{
	struct pollfd fds[POLL_LOOKS];

	if (n > POLL_LOOKS || !peek(addr, fds, n * sizeof(fds[0])))
		return 0;
	for (unsigned long i = 0; i < n; i++)
		if ((fds[i].events & POLLIN) && signalfd_holds_signal(fds[i].fd))
			return 1;
	return 0;
}

/*
 * The call would take the library's signal as data rather than be
 * interrupted by it, even with the signal unblocked: a read of a signalfd
 * whose mask holds it, or a poll of one, which would report it ready.  The
 * slot says which syscall the call makes, with what.  Signal sets the
 * library hands the kernel never hold its signal (syscall.c), so no sigwait
 * is asked about.
 */
static int takes_signal_as_data(const struct sc_slot *s)
{
	switch (load_relaxed(&s->nr)) {
	case SYS_read:
	case SYS_readv:
		return signalfd_holds_signal(load_relaxed(&s->arg));
#ifdef SYS_poll
	case SYS_poll:
#endif
	case SYS_ppoll:
		return polls_signalfd(load_relaxed(&s->arg), (unsigned long)load_relaxed(&s->arg2));
	}
	return 0;
}

/*
 * Before a send.  in_call: the thread is in a call of the library; else in
 * a scope, where any code runs and a blocked signal ends nothing, so the
 * mask is looked at first.
 */
int sc_signal_may_reach(const struct sc_slot *s, int in_call)
{
	int tid = load_relaxed(&s->tid);

	if (!sc_handler_in_place())
		return 0;
	/* A canceller in a handler on top of its own call: the signal lands once it returns. */
	if (tid == gettid())
		return 1;
	return in_call ? !takes_signal_as_data(s) : blocks_signal(tid) != 1;
}

/*
 * After a send to a call (x), until the signal has landed, or before one:
 * whether the thread blocks the signal while waiting in its call, where it
 * would stay pending until the call ends on its own (the call's end then
 * takes it, registry.c).  Running with the signal blocked, the thread is in
 * a handler on top of the call or between the call's entry and its
 * syscall: look again, for a while, until it waits.  Waiting elsewhere it
 * is in an application handler, and the signal lands when that returns.
 */
int sc_signal_held_back(const struct sc_slot *s, const struct sc_sent *x)
{
	int tid = load_relaxed(&s->tid);
	int64_t end = sc_now_ns() + RUNNING_PATIENCE_NS;

	if (tid == gettid())
		return 0;
	while (!(x && sc_signal_landed(x)) && blocks_signal(tid) == 1) {
		struct sc_syscall c;
		uint64_t sp, pc;
		int err = sc_proc_blocked_syscall(tid, &c, &sp, &pc);

		if (!err)
			return waits_in_call(s, &c, pc) && blocks_signal(tid) == 1;
		if (err != EAGAIN || sc_now_ns() >= end)
			return 0;
		sched_yield();
	}
	return 0;
}
