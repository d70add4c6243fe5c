/*
 * Whether the library's signal can reach a thread's call.  An application
 * may block the signal in a thread after that thread's first call, or
 * replace its handler: a signal sent then would wait forever, or be read
 * as data by a signalfd or sigwait of that thread, or (SIG_DFL) kill the
 * process.  Cancellers ask before they send; the cost is theirs, a look at
 * /proc, never the calling thread's.  Async-signal-safe: open, read, close.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#ifdef SC_HAVE_STUB
extern const char sc_stub_end[] SC_HIDDEN;
#endif

/* How often a thread that blocks the signal and runs is looked at again. */
#define RUNNING_LOOKS 64

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
 * The SigBlk line of the thread's status, read in small pieces: 1 if it
 * holds the library's signal, 0 if not, -1 if it cannot be read.
 */
static int blocks_signal(int tid)
{
	static const char dir[] = "/proc/self/task/", key[] = "\nSigBlk:\t";
	char path[sizeof(dir) + 24], buf[256];
	unsigned matched = 1, hex = 0;	/* the file starts a line */
	uint64_t mask = 0;
	ssize_t n;
	int fd;

	memcpy(path, dir, sizeof(dir) - 1);
	memcpy(put_tid(path + sizeof(dir) - 1, (unsigned)tid), "/status", sizeof("/status"));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (matched < sizeof(key) - 1) {
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

/* Waiting in the call's own syscall, in the stub; elsewhere is a handler on top of the call. */
static int waits_in_call(uint64_t pc)
{
#ifdef SC_HAVE_STUB
	return pc == (uintptr_t)sc_stub_end;
#else
	(void)pc;
	return 1;
#endif
}

/*
 * The thread blocks the signal.  Waiting in its call's syscall, it blocked
 * it before the call (the mask does not change during one): no signal can
 * end that wait.  Waiting elsewhere, or running, it is in an application
 * handler on top of the call whose mask holds the signal, or between the
 * call's entry and its syscall: look again until it waits.  A handler that
 * runs on and on gets the signal, which lands when it returns.
 */
static int reaches_blocking_thread(int tid)
{
	for (int i = 0; i < RUNNING_LOOKS; i++) {
		struct sc_syscall c;
		uint64_t sp, pc;
		int err = sc_proc_blocked_syscall(tid, &c, &sp, &pc);

		if (!err)
			return !waits_in_call(pc);
		if (err != EAGAIN || blocks_signal(tid) != 1)
			return 1;
		sched_yield();
	}
	return 1;
}

/*
 * in_call: the thread is in a call of the library; else in a scope, where
 * any code runs and a blocked signal ends nothing.
 */
int sc_signal_reaches(const struct sc_slot *s, int in_call)
{
	int tid = load_relaxed(&s->tid);

	if (!sc_handler_in_place())
		return 0;
	/* A canceller in a handler on top of its own call: the signal lands once it returns. */
	if (tid == gettid() || blocks_signal(tid) != 1)
		return 1;
	return in_call && reaches_blocking_thread(tid);
}
