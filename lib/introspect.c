/*
 * Introspection: which thread waits in what, under which token, since when.
 * The registry is read without locks, pins or signals, so a snapshot never
 * holds up a call.  Each slot is read like a seqlock: its key (the call
 * word, or the innermost scope's id) before and after the fields, so an
 * entry is one call's or scope's, whole, or left out.
 *
 * A call does not read the clock: the first snapshot that sees it stamps
 * its start, keyed on the call word, so a later call of the thread never
 * inherits it.  Nor is a token followed: a call's token may be destroyed
 * the moment the call ends, so what a snapshot says of the chain comes from
 * the slot (its deadline, its abort word, a canceller's cause).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define READ_TRIES 8		/* a slot whose calls churn faster is left out */
#define PROC_READS_MAX 64	/* scoped threads looked up in /proc per snapshot */

/* A scope's key is even, a call word odd; 0 is neither. */
static uint64_t scope_key(uint64_t id)
{
	return id << 2;
}

static uint64_t current_key(const struct sc_slot *s)
{
	uint64_t call = load_acquire(&s->call);
	int depth;

	if (call & SC_CALL_ACTIVE)
		return call;
	depth = load_acquire(&s->scope_depth);
	return depth ? scope_key(load_relaxed(&s->scope_ids[depth - 1])) : 0;
}

void sc_introspect_cause(struct sc_slot *s, int cause)
{
	uint64_t key = current_key(s);

	if (!key)
		return;
	store_relaxed(&s->cause, cause);
	store_release(&s->cause_key, key);
}

/* What the slot says of the thing keyed key: its cause and its first sighting. */
static void read_marks(const struct sc_slot *s, uint64_t key, sc_call_info *ci)
{
	ci->cause = load_acquire(&s->cause_key) == key ? load_relaxed(&s->cause) : 0;
	ci->started_ns = load_acquire(&s->seen_key) == key ? load_relaxed(&s->seen_ns) : -1;
}

/* A walk is a chain of cache misses: start on the next slot's two lines early. */
static void prefetch_next(const struct sc_slot *s)
{
	const char *next = (const char *)s->next;

	if (next) {
		__builtin_prefetch(next);
		__builtin_prefetch(next + 64);
	}
}

/* 1: read whole; -1: the call changed meanwhile. */
static int read_call(const struct sc_slot *s, uint64_t call, sc_call_info *ci)
{
	ci->tid = load_relaxed(&s->tid);
	ci->syscall = load_relaxed(&s->nr);
	ci->arg = load_relaxed(&s->arg);
	ci->token = load_relaxed(&s->tok);
	ci->deadline_ns = load_relaxed(&s->deadline);
	ci->in_scope = 0;
	read_marks(s, call, ci);
	ci->cancelled = load_relaxed(&s->abort) == call || ci->cause;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return load_relaxed(&s->call) == call ? 1 : -1;
}

/*
 * Scope entry writes the id, then the token, then the depth, so an id read
 * again unchanged vouches for the token read between.  The scope's deadline
 * would need its tokens followed: not known here.
 */
static int read_scope(const struct sc_slot *s, uint64_t call, sc_call_info *ci, uint64_t *key)
{
	int depth = load_acquire(&s->scope_depth);
	uint64_t id;

	if (!depth || depth > SC_SCOPE_MAX)
		return 0;
	id = load_relaxed(&s->scope_ids[depth - 1]);
	ci->tid = load_relaxed(&s->tid);
	ci->syscall = -1;
	ci->arg = 0;
	ci->token = load_relaxed(&s->scopes[depth - 1]);
	ci->deadline_ns = SC_NO_DEADLINE;
	ci->in_scope = 1;
	*key = scope_key(id);
	read_marks(s, *key, ci);
	ci->cancelled = ci->cause != 0;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	if (load_relaxed(&s->call) != call || load_relaxed(&s->scope_depth) != depth ||
	    load_relaxed(&s->scope_ids[depth - 1]) != id)
		return -1;
	return 1;
}

/* The consistent read of one slot, with its key; 0 if it runs nothing. */
static uint64_t read_slot(const struct sc_slot *s, sc_call_info *ci)
{
	for (int i = 0; i < READ_TRIES; i++) {
		uint64_t call = load_acquire(&s->call), key = call;
		int r = call & SC_CALL_ACTIVE ? read_call(s, call, ci) :
						read_scope(s, call, ci, &key);
		if (r >= 0)
			return r ? key : 0;
	}
	return 0;
}

/*
 * The first sighting of what is keyed key, if it still runs: a time taken
 * after the slot was seen running it.  The lock only keeps snapshots apart;
 * one that finds it taken takes its own time and stamps nothing.  -1: it
 * has ended.
 */
static int64_t stamp(struct sc_slot *s, uint64_t key)
{
	int64_t t = -1;

	if (__atomic_exchange_n(&s->seen_lock, 1, __ATOMIC_ACQUIRE))
		return current_key(s) == key ? sc_now_ns() : -1;
	if (current_key(s) == key) {
		if (load_relaxed(&s->seen_key) == key) {
			t = load_relaxed(&s->seen_ns);
		} else {
			t = sc_now_ns();
			store_relaxed(&s->seen_ns, t);
			store_release(&s->seen_key, key);
		}
	}
	store_release(&s->seen_lock, 0);
	return t;
}

/* A scope's thread, if it waits in a syscall: which, from /proc (a read, not a signal). */
static int learn_scope_syscall(struct sc_slot *s, uint64_t key, sc_call_info *ci)
{
	struct sc_syscall c;
	uint64_t sp, pc;

	if (sc_proc_blocked_syscall(ci->tid, &c, &sp, &pc))
		return 1;
	if (current_key(s) != key)
		return 0;
	ci->syscall = c.nr;
	ci->arg = c.args[0];
	return 1;
}

/* Fills *ci from s; 0 if s runs nothing, or what it ran ended while we looked. */
static int read_entry(struct sc_slot *s, sc_call_info *ci, int *proc_left)
{
	uint64_t key = read_slot(s, ci);

	if (!key)
		return 0;
	if (ci->cancelled && !ci->cause)
		ci->cause = ci->deadline_ns != SC_NO_DEADLINE && sc_now_ns() >= ci->deadline_ns ?
			ETIMEDOUT : ECANCELED;
	if (ci->in_scope && *proc_left > 0) {
		--*proc_left;
		if (!learn_scope_syscall(s, key, ci))
			return 0;
	}
	if (ci->started_ns < 0 && (ci->started_ns = stamp(s, key)) < 0)
		return 0;
	return 1;
}

int sc_snapshot(sc_call_info *out, int max)
{
	int n = 0, proc_left = PROC_READS_MAX, no_proc = 0;

	if (max < 0 || (!out && max > 0)) {
		errno = EINVAL;
		return -1;
	}
	/* Past max, calls are only counted (and stamped, for a later snapshot's ages). */
	for (struct sc_slot *s = sc_registry_first(); s; s = s->next) {
		sc_call_info ci;

		prefetch_next(s);
		if (n < max)
			n += read_entry(s, &out[n], &proc_left);
		else
			n += read_entry(s, &ci, &no_proc);
	}
	return n;
}

/* ---- sc_dump: formatted by hand, written with write(2), for signal handlers ---- */

/* Lines gathered in a buffer on the stack, written a few kilobytes at a time. */
#define LINE_MAX_LEN 255

struct line {
	char buf[4096];
	size_t len;
	size_t start;		/* of the line being formatted */
	int fd;
	int err;		/* of the first write that failed */
};

static int room(const struct line *l)
{
	return l->len < sizeof(l->buf) - 1 && l->len - l->start < LINE_MAX_LEN;
}

static void put(struct line *l, const char *str)
{
	while (*str && room(l))
		l->buf[l->len++] = *str++;
}

static void put_unsigned(struct line *l, uint64_t v, unsigned base, int min_digits)
{
	char d[24];
	int n = 0;

	do {
		d[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v || n < min_digits);
	while (n && room(l))
		l->buf[l->len++] = d[--n];
}

static void put_dec(struct line *l, int64_t v)
{
	if (v < 0)
		put(l, "-");
	put_unsigned(l, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, 1);
}

static void put_hex(struct line *l, uint64_t v)
{
	put(l, "0x");
	put_unsigned(l, v, 16, 1);
}

/* ns >= 0 as seconds with milliseconds: 12.345s */
static void put_secs(struct line *l, int64_t ns)
{
	put_unsigned(l, (uint64_t)ns / 1000000000u, 10, 1);
	put(l, ".");
	put_unsigned(l, (uint64_t)ns % 1000000000u / 1000000u, 10, 3);
	put(l, "s");
}

/* Pads the line to column col with spaces, keeping one at least. */
static void pad(struct line *l, size_t col)
{
	do
		put(l, " ");
	while (l->len - l->start < col && room(l));
}

/* What the first argument of nr is, for the ones worth naming. */
static const char *arg_label(long nr)
{
	switch (nr) {
	case SYS_wait4:
		return "pid ";
	case SYS_futex:
		return "addr ";
	case SYS_msgrcv:
	case SYS_msgsnd:
		return "msqid ";
	case SYS_semop:
	case SYS_semtimedop:
		return "semid ";
	case SYS_openat:
		return "dirfd ";
	case SYS_read: case SYS_write: case SYS_readv: case SYS_writev:
	case SYS_pread64: case SYS_pwrite64: case SYS_recvfrom: case SYS_sendto:
	case SYS_recvmsg: case SYS_sendmsg: case SYS_recvmmsg: case SYS_sendmmsg:
	case SYS_accept: case SYS_accept4: case SYS_connect: case SYS_flock: case SYS_fcntl:
	case SYS_epoll_pwait: case SYS_io_uring_enter:
	case SYS_close: case SYS_fsync: case SYS_fdatasync: case SYS_ioctl:
#ifdef SYS_epoll_wait
	case SYS_epoll_wait:
#endif
#ifdef SYS_epoll_pwait2
	case SYS_epoll_pwait2:
#endif
		return "fd ";
	}
	return NULL;
}

static void put_call(struct line *l, const sc_call_info *ci)
{
	const char *name = sc_syscall_name(ci->syscall), *label;

	if (ci->in_scope)
		put(l, "scope ");
	if (ci->syscall < 0) {
		put(l, "(no syscall seen)");
		return;
	}
	if (name) {
		put(l, name);
	} else {
		put(l, "syscall ");
		put_dec(l, ci->syscall);
	}
	label = arg_label(ci->syscall);
	if (!label)
		return;
	put(l, "(");
	put(l, label);
	if (ci->syscall == SYS_futex)
		put_hex(l, (uint64_t)ci->arg);
	else
		put_dec(l, ci->arg);
	put(l, ")");
}

static void put_cause(struct line *l, int cause)
{
	if (cause == ECANCELED) {
		put(l, "ECANCELED");
	} else if (cause == ETIMEDOUT) {
		put(l, "ETIMEDOUT");
	} else {
		put(l, "cause ");
		put_dec(l, cause);
	}
}

static void put_deadline(struct line *l, int64_t deadline, int64_t now)
{
	if (deadline == SC_NO_DEADLINE) {
		put(l, "no deadline");
	} else if (deadline > now) {
		put(l, "deadline in ");
		put_secs(l, deadline - now);
	} else {
		put(l, "deadline passed ");
		put_secs(l, now - deadline);
		put(l, " ago");
	}
}

/* tid  call(arg)  token  [cancelled: cause]  age  deadline */
static void format_entry(struct line *l, const sc_call_info *ci, int64_t now)
{
	put(l, "tid ");
	put_dec(l, ci->tid);
	pad(l, 12);
	put_call(l, ci);
	pad(l, 40);
	put(l, "token ");
	put_hex(l, (uint64_t)(uintptr_t)ci->token);
	pad(l, 66);
	if (ci->cancelled) {
		put(l, "cancelled: ");
		put_cause(l, ci->cause);
		put(l, "  ");
	}
	put(l, "age ");
	put_secs(l, now > ci->started_ns ? now - ci->started_ns : 0);
	put(l, "  ");
	if (ci->in_scope)
		put(l, "scope deadline not shown");
	else
		put_deadline(l, ci->deadline_ns, now);
	put(l, "\n");
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? errno : EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void flush(struct line *l)
{
	if (!l->err && l->len)
		l->err = write_all(l->fd, l->buf, l->len);
	l->len = l->start = 0;
}

/* A new line, with room for a whole one after it. */
static void begin_line(struct line *l)
{
	if (sizeof(l->buf) - l->len < LINE_MAX_LEN + 2)
		flush(l);
	l->start = l->len;
}

int sc_dump(int fd)
{
	int saved_errno = errno, n = 0, proc_left = PROC_READS_MAX;
	struct line l = { .fd = fd };
	int64_t now = 0;

	begin_line(&l);
	put(&l, "syscancel: calls in flight in process ");
	put_dec(&l, getpid());
	put(&l, "\n");
	flush(&l);	/* a bad fd shows before the walk */
	for (struct sc_slot *s = sc_registry_first(); s && !l.err; s = s->next) {
		sc_call_info ci;

		prefetch_next(s);
		if (!read_entry(s, &ci, &proc_left))
			continue;
		n++;
		/* One clock read serves until a call stamped after it. */
		if (ci.started_ns > now || !now)
			now = sc_now_ns();
		begin_line(&l);
		format_entry(&l, &ci, now);
	}
	begin_line(&l);
	put(&l, "syscancel: ");
	put_dec(&l, n);
	put(&l, n == 1 ? " entry\n" : " entries\n");
	flush(&l);
	errno = saved_errno;
	return l.err;
}
