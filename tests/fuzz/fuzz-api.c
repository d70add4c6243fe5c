/*
 * libFuzzer harness of the public API.  An input is a small program: one
 * configuration byte, then records of six bytes (an operation and five
 * arguments) over six tokens, two pipes, a socket pair, a listening socket,
 * a lock file and a futex word.  This thread makes the calls that cannot
 * block; blocking calls are handed to one of two worker threads.  A model of
 * what the contract guarantees checks every result, and abort() reports the
 * first broken invariant to libFuzzer.
 *
 * Only what holds whatever the timing is checked: a worker's result is
 * judged against everything that happened between the moment its call was
 * handed over and the moment its result was collected.
 *
 * FUZZ_TRACE=1 prints the operations as they run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Linked with the library's objects: its signal counters and registry are visible. */
#include "../../lib/internal.h"

#define NTOK 6
#define NCHAN 3
#define NWORK 2
#define MAX_OPS 64
#define REC_LEN 6
#define US 1000LL
#define MS 1000000LL
#define SEC 1000000000LL
#define HANG_NS (10 * SEC)	/* a call that must end and has not by then never will */
#define LONG_NS SEC		/* a sleep that cannot end on its own within an input */
#define BUF_LEN 512
#define FILL_MAX (256 * 1024)
#define SETTLE_TRIES 200

/* Token arguments besides the six slots. */
enum { TOK_ZERO = NTOK, TOK_NULL, TOK_GARBAGE };

enum { CH_SMALL_PIPE, CH_PIPE, CH_SOCK };

/* Application signals: two that interrupt workers, one whose handler cancels. */
#define SIG_POKE_RESTART (SIGRTMIN + 1)
#define SIG_POKE (SIGRTMIN + 2)
#define SIG_CANCEL (SIGRTMIN + 3)

struct mtok {
	sc_token *mem;		/* NULL once freed */
	sc_token *parent_mem;	/* what the token's parent pointer holds, even once dead */
	int parent;		/* slot of the parent, -1 for a root */
	bool live;
	bool cancelled;
	int cause;
	int64_t dl_lo, dl_hi;	/* own deadline; a timeout is only known within a range */
	int children;
};

struct chan {
	int r, w;		/* w is -1 once a pipe's write end is closed */
	bool sock;
	bool closed;		/* the write side is shut: EOF once drained */
	uint64_t wpos;		/* bytes whose write was reported */
	uint64_t rpos;		/* bytes whose read was reported */
};

enum job_kind {
	J_READ, J_READV, J_RECV, J_WRITE, J_SEND, J_POLL, J_EPOLL, J_SLEEP,
	J_FUTEX, J_ACCEPT, J_CONNECT, J_FLOCK, J_BACKEND, J_KINDS
};

static const char *const kind_names[J_KINDS] = {
	"read", "readv", "recv", "write", "send", "poll", "epoll_wait", "sleep",
	"futex_wait", "accept", "connect", "flock", "thread_backend",
};

/* What a worker is given, and what it fills in. */
struct call {
	enum job_kind kind;
	sc_token *tok;
	int fd;
	size_t len;
	int flags;		/* recv flags, poll events, epoll maxevents, backend */
	int timeout_ms;
	int64_t ns;
	uint32_t expect;
	sc_result res;
	int ret;
	struct pollfd pfd;
	struct epoll_event ev[4];
	uint8_t buf[BUF_LEN];
};

/* A call handed over, with what the model knew then and saw since. */
struct job {
	struct call call;
	int tok;
	int chan;
	bool reads, writes, uses_w;
	bool on_uring;		/* the worker's calls go through io_uring */
	bool dead_at_start, cancelled_at_start, expired_at_start;
	bool cancel_seen, deadline_seen, deadline_moved, destroyed, woken;
	unsigned chain;		/* slots of the token's chain */
	int64_t dl_bound;	/* the call's deadline is no later than this */
	uint32_t word_at_start;
};

enum { W_IDLE, W_POSTED, W_DONE, W_EXIT };

struct worker {
	pthread_t thread;
	bool running;
	bool uring;		/* its calls go through io_uring */
	bool busy;		/* a job was handed over and not collected */
	int state;		/* under lock */
	int started;		/* the call is about to be made */
	pid_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job job;
};

enum holder { HOLD_NONE, HOLD_A, HOLD_B };

static struct {
	struct mtok tok[NTOK];
	struct chan chan[NCHAN];
	struct worker work[NWORK];
	int epfd, lfd, lock_a, lock_b;
	struct sockaddr_un laddr;
	socklen_t laddr_len;
	unsigned connected, accepted;
	enum holder holder;
	bool on_uring;		/* this thread's calls go through io_uring */
	int first_free_fd;
	int op;
	const char *op_name;
} W;

static uint32_t futex_word;
static sc_token zero_tok, garbage_tok;
static bool uring_ok, uring_default, trace;

static sc_token *volatile sig_tok;
static volatile int sig_plain, sig_cause, sig_ret;

__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz-api: op %d (%s): ", W.op, W.op_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#define require(cond) \
	do { \
		if (!(cond)) \
			fail("%s (line %d)", #cond, __LINE__); \
	} while (0)

static void expect_int(int got, int want, const char *what)
{
	if (got != want)
		fail("%s returned %d, expected %d", what, got, want);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * SEC + ts.tv_nsec;
}

static void set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	require(fl >= 0);
	require(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) == 0);
}

static int lowest_free_fd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	require(fd >= 0);
	close(fd);
	return fd;
}

/* The byte at position pos of a channel's stream: a lost or repeated byte shows. */
static uint8_t stream_byte(int c, uint64_t pos)
{
	return ((uint32_t)pos * 0x9e3779b1u + (uint32_t)(c + 1) * 0x85ebca6bu) >> 24;
}

static void stream_fill(int c, uint64_t pos, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = stream_byte(c, pos + i);
}

/* ---- the token model ---- */

static bool is_slot(int t)
{
	return t >= 0 && t < NTOK;
}

static bool live(int t)
{
	return is_slot(t) && W.tok[t].live;
}

static sc_token *tok_ptr(int t)
{
	if (is_slot(t))
		return W.tok[t].mem;
	if (t == TOK_ZERO)
		return &zero_tok;
	return t == TOK_GARBAGE ? &garbage_tok : NULL;
}

/* Anything but freed memory may be passed as a token. */
static bool usable(int t)
{
	return !is_slot(t) || W.tok[t].mem;
}

static int pick_tok(unsigned byte)
{
	return byte % (TOK_GARBAGE + 1);
}

static unsigned chain_of(int t)
{
	unsigned mask = 0;

	for (; live(t); t = W.tok[t].parent)
		mask |= 1u << t;
	return mask;
}

static bool chain_cancelled(int t)
{
	for (; live(t); t = W.tok[t].parent)
		if (W.tok[t].cancelled)
			return true;
	return false;
}

static int chain_cause(int t)
{
	for (; live(t); t = W.tok[t].parent)
		if (W.tok[t].cancelled)
			return W.tok[t].cause;
	return 0;
}

static void chain_deadline(int t, int64_t *lo, int64_t *hi)
{
	*lo = *hi = SC_NO_DEADLINE;
	for (; live(t); t = W.tok[t].parent) {
		if (W.tok[t].dl_lo < *lo)
			*lo = W.tok[t].dl_lo;
		if (W.tok[t].dl_hi < *hi)
			*hi = W.tok[t].dl_hi;
	}
}

static int slot_of(const sc_token *p)
{
	for (int i = 0; p && i < NTOK; i++)
		if (W.tok[i].mem == p)
			return i;
	return -1;
}

/* Whether the library, following parent pointers from p, dead or not, comes to slot t. */
static bool reaches(const sc_token *p, int t)
{
	int i;

	for (int n = 0; n <= NTOK && (i = slot_of(p)) >= 0; n++, p = W.tok[i].parent_mem)
		if (i == t)
			return true;
	return false;
}

/* ---- results of calls made by this thread ---- */

enum verdict { V_RUN, V_INVALID, V_CANCELLED, V_TIMEDOUT, V_MAYBE_TIMEDOUT };

/* What the token makes of a call that ran between before and after. */
static enum verdict verdict(int t, int64_t before, int64_t after)
{
	int64_t lo, hi;

	if (t == TOK_NULL)
		return V_RUN;
	if (!live(t))
		return V_INVALID;
	if (chain_cancelled(t))
		return V_CANCELLED;
	chain_deadline(t, &lo, &hi);
	if (hi <= before)
		return V_TIMEDOUT;
	return lo <= after ? V_MAYBE_TIMEDOUT : V_RUN;
}

static void check_form(sc_result r)
{
	switch (r.status) {
	case SC_OK:
		require(r.error == 0 && r.value >= 0);
		break;
	case SC_ERROR:
		require(r.error > 0 && r.value == -1);
		break;
	case SC_CANCELLED:
		require(r.error == ECANCELED && r.value == -1);
		break;
	case SC_TIMEDOUT:
		require(r.error == ETIMEDOUT && r.value == -1);
		break;
	default:
		fail("unknown status %d", r.status);
	}
}

/* Checks what the token decided; true when the syscall ran and its result remains to check. */
static bool ran(sc_result r, enum verdict v)
{
	check_form(r);
	switch (v) {
	case V_INVALID:
		require(r.status == SC_ERROR && r.error == EINVAL);
		return false;
	case V_CANCELLED:
		require(r.status == SC_CANCELLED);
		return false;
	case V_TIMEDOUT:
		require(r.status == SC_TIMEDOUT);
		return false;
	case V_MAYBE_TIMEDOUT:
		if (r.status == SC_TIMEDOUT)
			return false;
		break;
	case V_RUN:
		break;
	}
	require(r.status == SC_OK || r.status == SC_ERROR);
	return true;
}

static void expect_error(sc_result r, int err)
{
	if (r.status != SC_ERROR || r.error != err)
		fail("status %d error %d, expected error %d", r.status, r.error, err);
}

/* ---- jobs and workers ---- */

static struct job *busy_job(int k)
{
	return W.work[k].busy ? &W.work[k].job : NULL;
}

static struct job *job_where(bool (*match)(const struct job *, int), int arg)
{
	for (int k = 0; k < NWORK; k++)
		if (busy_job(k) && match(busy_job(k), arg))
			return busy_job(k);
	return NULL;
}

static bool reads_chan(const struct job *j, int c)
{
	return j->reads && j->chan == c;
}

static bool writes_chan(const struct job *j, int c)
{
	return j->writes && j->chan == c;
}

static bool uses_w(const struct job *j, int c)
{
	return j->uses_w && j->chan == c;
}

static bool is_kind(const struct job *j, int kind)
{
	return j->call.kind == (enum job_kind)kind;
}

static unsigned busy_kind(enum job_kind kind)
{
	unsigned n = 0;

	for (int k = 0; k < NWORK; k++)
		n += busy_job(k) && is_kind(busy_job(k), kind);
	return n;
}

/* Bytes a worker may be writing to channel c beyond what was reported. */
static uint64_t pending_write(int c)
{
	struct job *j = job_where(writes_chan, c);

	return j ? j->call.len : 0;
}

static void jobs_cancelled(int t)
{
	for (int k = 0; k < NWORK; k++) {
		struct job *j = busy_job(k);
		if (j && (j->chain & 1u << t))
			j->cancel_seen = true;
	}
}

static void jobs_deadline_moved(int t)
{
	int64_t lo, hi;

	for (int k = 0; k < NWORK; k++) {
		struct job *j = busy_job(k);
		if (!j || !(j->chain & 1u << t) || j->destroyed)
			continue;
		chain_deadline(j->tok, &lo, &hi);
		j->deadline_moved = true;
		j->deadline_seen |= lo != SC_NO_DEADLINE;
		/* A later deadline does not extend a call in flight, an earlier one reaches it. */
		j->dl_bound = hi;
	}
}

/* What the kind of call waits for has come, or will come whatever else happens. */
static bool call_must_end(const struct job *j)
{
	const struct call *c = &j->call;
	const struct chan *ch = &W.chan[j->chan];
	bool data = ch->rpos < ch->wpos;

	switch (c->kind) {
	case J_READ:
	case J_READV:
		return ch->closed || data;
	case J_RECV:
		if (c->flags & MSG_WAITALL)
			return !ch->sock || ch->closed || ch->wpos - ch->rpos >= c->len;
		return !ch->sock || ch->closed || data;
	case J_WRITE:
		return !c->len;
	case J_SEND:
		return !c->len || !ch->sock;
	case J_POLL:
		return c->timeout_ms >= 0 || (c->flags == POLLIN && ch->closed);
	case J_EPOLL:
		return c->timeout_ms >= 0 || W.chan[0].closed || W.chan[1].closed ||
		       W.chan[2].closed;
	case J_SLEEP:
		return c->ns < LONG_NS;
	case J_FUTEX:
		/* The word only grows, and each step wakes: past expect, nothing waits. */
		return c->expect != __atomic_load_n(&futex_word, __ATOMIC_RELAXED);
	case J_ACCEPT:
		return W.connected > W.accepted;
	case J_CONNECT:
		return false;
	case J_FLOCK:
		return W.holder != HOLD_A;
	default:
		return true;
	}
}

static bool must_end(const struct job *j)
{
	return j->dead_at_start || j->destroyed || j->cancelled_at_start || j->cancel_seen ||
	       j->dl_bound <= now_ns() || call_must_end(j);
}

static void run_call(struct call *c)
{
	struct iovec iov[2] = {
		{ c->buf, c->len / 3 },
		{ c->buf + c->len / 3, c->len - c->len / 3 },
	};

	switch (c->kind) {
	case J_READ:
		c->res = sc_read(c->tok, c->fd, c->buf, c->len);
		break;
	case J_READV:
		c->res = sc_readv(c->tok, c->fd, iov, 2);
		break;
	case J_RECV:
		c->res = sc_recv(c->tok, c->fd, c->buf, c->len, c->flags);
		break;
	case J_WRITE:
		c->res = sc_write(c->tok, c->fd, c->buf, c->len);
		break;
	case J_SEND:
		c->res = sc_send(c->tok, c->fd, c->buf, c->len, MSG_NOSIGNAL);
		break;
	case J_POLL:
		c->pfd = (struct pollfd){ .fd = c->fd, .events = c->flags };
		c->res = sc_poll(c->tok, &c->pfd, 1, c->timeout_ms);
		break;
	case J_EPOLL:
		c->res = sc_epoll_wait(c->tok, c->fd, c->ev, c->flags, c->timeout_ms);
		break;
	case J_SLEEP:
		c->res = sc_sleep(c->tok, c->ns);
		break;
	case J_FUTEX:
		c->res = sc_futex_wait(c->tok, &futex_word, c->expect);
		break;
	case J_ACCEPT:
		c->res = sc_accept(c->tok, c->fd, NULL, NULL, SOCK_CLOEXEC);
		break;
	case J_CONNECT:
		c->res = sc_connect(c->tok, c->fd, (struct sockaddr *)&W.laddr, W.laddr_len);
		break;
	case J_FLOCK:
		c->res = sc_flock(c->tok, c->fd, LOCK_EX);
		break;
	default:
		c->ret = sc_thread_backend(c->flags);
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->state == W_IDLE || w->state == W_DONE)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->state == W_EXIT)
			break;
		pthread_mutex_unlock(&w->lock);
		__atomic_store_n(&w->started, 1, __ATOMIC_RELEASE);
		run_call(&w->job.call);
		pthread_mutex_lock(&w->lock);
		w->state = W_DONE;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void start_worker(struct worker *w)
{
	pthread_condattr_t ca;

	if (w->running)
		return;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&w->lock, NULL);
	w->state = W_IDLE;
	require(pthread_create(&w->thread, NULL, worker_main, w) == 0);
	w->running = true;
}

static void hand_over(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	__atomic_store_n(&w->started, 0, __ATOMIC_RELAXED);
	w->state = W_POSTED;
	w->busy = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static bool worker_done(struct worker *w)
{
	pthread_mutex_lock(&w->lock);
	bool done = w->state == W_DONE;
	pthread_mutex_unlock(&w->lock);
	return done;
}

static bool wait_done(struct worker *w, int64_t ns)
{
	struct timespec ts;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ns / SEC;
	pthread_mutex_lock(&w->lock);
	while (w->state != W_DONE && err != ETIMEDOUT)
		err = pthread_cond_timedwait(&w->cond, &w->lock, &ts);
	bool done = w->state == W_DONE;
	pthread_mutex_unlock(&w->lock);
	return done;
}

static void stop_worker(struct worker *w)
{
	if (!w->running)
		return;
	pthread_mutex_lock(&w->lock);
	w->state = W_EXIT;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	require(pthread_join(w->thread, NULL) == 0);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	w->running = false;
}

/* The state letter of a thread of this process (R, S, D...), '?' if unknown. */
static char task_state(pid_t tid)
{
	char path[64], buf[256];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	char *end = strrchr(buf, ')');
	return end && end[1] && end[2] ? end[2] : '?';
}

/* ---- accounting of the streams, the connections and the lock ---- */

static void check_bytes(int c, uint64_t pos, const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != stream_byte(c, pos + i))
			fail("channel %d: byte %llu read as %#x, written as %#x", c,
			     (unsigned long long)(pos + i), buf[i], stream_byte(c, pos + i));
}

/* A read of n bytes reported: they follow the last ones read, and were written. */
static void account_read(int c, const uint8_t *buf, size_t len, long n, bool peek)
{
	struct chan *ch = &W.chan[c];

	require(n >= 0 && (size_t)n <= len);
	if (ch->rpos + n > ch->wpos + pending_write(c))
		fail("channel %d: read %ld bytes at %llu, only %llu written", c, n,
		     (unsigned long long)ch->rpos, (unsigned long long)ch->wpos);
	check_bytes(c, ch->rpos, buf, n);
	if (n == 0 && len)
		require(ch->closed && ch->rpos == ch->wpos);
	if (!peek)
		ch->rpos += n;
}

static void account_write(int c, long n, size_t len)
{
	struct chan *ch = &W.chan[c];

	require(n >= 0 && (size_t)n <= len && (n > 0 || !len));
	ch->wpos += n;
	if (ch->rpos > ch->wpos)
		fail("channel %d: %llu bytes read, only %llu written", c,
		     (unsigned long long)ch->rpos, (unsigned long long)ch->wpos);
}

static int backend_result(int b)
{
	switch (b) {
	case SC_BACKEND_DEFAULT:
	case SC_BACKEND_SIGNAL:
		return 0;
	case SC_BACKEND_URING:
		return uring_ok ? 0 : ENOTSUP;
	default:
		return EINVAL;
	}
}

/* Whether a thread's calls go through io_uring once sc_thread_backend(b) returned ret. */
static bool uring_after(int b, int ret, bool before)
{
	if (ret)
		return before;
	return b == SC_BACKEND_URING || (b == SC_BACKEND_DEFAULT && uring_default);
}

/* ---- checks of a worker's result ---- */

/* What the token decided; true when the syscall ran and its result remains to check. */
static bool job_ran(const struct job *j, sc_result r)
{
	check_form(r);
	if (j->dead_at_start) {
		require(r.status == SC_ERROR && r.error == EINVAL);
		return false;
	}
	if (r.status == SC_CANCELLED) {
		if (!j->cancelled_at_start && !j->cancel_seen)
			fail("spurious cancel: no token of the chain was cancelled");
		return false;
	}
	if (j->destroyed && r.status == SC_ERROR && r.error == EINVAL)
		return false;
	if (j->cancelled_at_start)
		fail("lost cancel: status %d for a call started under a cancelled chain", r.status);
	if (r.status == SC_TIMEDOUT) {
		if (!j->deadline_seen)
			fail("spurious timeout: no deadline in the chain");
		return false;
	}
	if (j->expired_at_start && !j->deadline_moved)
		fail("lost deadline: status %d for a call started past its deadline", r.status);
	return true;
}

static void check_read_job(struct job *j, sc_result r)
{
	struct call *c = &j->call;

	if (c->kind == J_RECV && !W.chan[j->chan].sock) {
		expect_error(r, ENOTSOCK);
		return;
	}
	require(r.status == SC_OK);
	account_read(j->chan, c->buf, c->len, r.value, c->flags & MSG_PEEK);
}

static void check_write_job(struct job *j, sc_result r)
{
	if (j->call.kind == J_SEND && !W.chan[j->chan].sock) {
		expect_error(r, ENOTSOCK);
		return;
	}
	require(r.status == SC_OK);
	account_write(j->chan, r.value, j->call.len);
}

static void check_poll_job(struct job *j, sc_result r)
{
	struct call *c = &j->call;

	require(r.status == SC_OK && r.value <= 1);
	require((r.value == 1) == (c->pfd.revents != 0));
	require(r.value == 1 || c->timeout_ms >= 0);
	if (c->pfd.revents & ~(c->flags | POLLERR | POLLHUP))
		fail("poll for %#x reported %#x", c->flags, c->pfd.revents);
}

static void check_epoll_job(struct job *j, sc_result r)
{
	struct call *c = &j->call;
	unsigned seen = 0;

	require(r.status == SC_OK && r.value <= c->flags);
	require(r.value > 0 || c->timeout_ms >= 0);
	for (long i = 0; i < r.value; i++) {
		uint32_t ch = c->ev[i].data.u32;
		require(ch < NCHAN && !(seen & 1u << ch));
		seen |= 1u << ch;
	}
}

static void check_futex_job(struct job *j, sc_result r)
{
	if (r.status == SC_OK) {
		require(r.value == 0 && j->woken);
		return;
	}
	expect_error(r, EAGAIN);
	require(j->call.expect != j->word_at_start || j->woken);
}

static void check_accept_job(struct job *j, sc_result r)
{
	(void)j;
	require(r.status == SC_OK);
	close(r.value);
	W.accepted++;
	require(W.accepted <= W.connected + busy_kind(J_CONNECT));
}

static void check_job_result(struct job *j, sc_result r)
{
	switch (j->call.kind) {
	case J_READ:
	case J_READV:
	case J_RECV:
		check_read_job(j, r);
		break;
	case J_WRITE:
	case J_SEND:
		check_write_job(j, r);
		break;
	case J_POLL:
		check_poll_job(j, r);
		break;
	case J_EPOLL:
		check_epoll_job(j, r);
		break;
	case J_SLEEP:
		require(r.status == SC_OK && r.value == 0 && j->call.ns < LONG_NS);
		break;
	case J_FUTEX:
		check_futex_job(j, r);
		break;
	case J_ACCEPT:
		check_accept_job(j, r);
		break;
	case J_CONNECT:
		require(r.status == SC_OK && r.value == 0);
		W.connected++;
		break;
	case J_FLOCK:
		require(r.status == SC_OK && r.value == 0);
		if (W.holder == HOLD_A)
			fail("both descriptions hold the exclusive lock");
		W.holder = HOLD_B;
		break;
	default:
		break;
	}
}

static void check_job(struct job *j)
{
	struct call *c = &j->call;

	if (c->kind == J_BACKEND) {
		expect_int(c->ret, backend_result(c->flags), "sc_thread_backend");
		return;
	}
	if (c->kind == J_SLEEP && c->ns < 0) {
		expect_error(c->res, EINVAL);
		return;
	}
	if (job_ran(j, c->res))
		check_job_result(j, c->res);
}

static void collect(int k)
{
	struct worker *w = &W.work[k];
	struct job *j = &w->job;

	pthread_mutex_lock(&w->lock);
	w->state = W_IDLE;
	pthread_mutex_unlock(&w->lock);
	if (trace)
		fprintf(stderr, "  worker %d: %s returned status %d error %d value %ld\n", k,
			kind_names[j->call.kind], j->call.res.status, j->call.res.error,
			j->call.res.value);
	check_job(j);
	if (j->call.kind == J_BACKEND)
		w->uring = uring_after(j->call.flags, j->call.ret, w->uring);
	w->busy = false;
	if (j->call.kind == J_CONNECT)
		close(j->call.fd);
}

static void wait_and_collect(int k)
{
	if (!wait_done(&W.work[k], HANG_NS))
		fail("worker %d: %s has not returned after 10 s (lost cancel, deadline or wake-up)",
		     k, kind_names[W.work[k].job.call.kind]);
	collect(k);
}

/* ---- token operations ---- */

static void model_init(int t, int p)
{
	struct mtok *m = &W.tok[t];

	m->live = true;
	m->parent = is_slot(p) ? p : -1;
	m->parent_mem = tok_ptr(p);
	m->cancelled = false;
	m->cause = 0;
	m->dl_lo = m->dl_hi = SC_NO_DEADLINE;
	m->children = 0;
	if (is_slot(p))
		W.tok[p].children++;
}

static bool held_by_job(int t)
{
	for (int k = 0; k < NWORK; k++)
		if (busy_job(k) && busy_job(k)->tok == t)
			return true;
	return false;
}

/* Not zeroed (ASan fills it): "never initialised" must still be EINVAL. */
static sc_token *alloc_token(void)
{
	sc_token *t = malloc(sizeof(*t));

	require(t);
	return t;
}

static void op_init(int t, int p)
{
	if (!is_slot(t) || live(t) || held_by_job(t) || !usable(p))
		return;
	if (!W.tok[t].mem)
		W.tok[t].mem = alloc_token();
	int want = p == TOK_NULL || live(p) ? 0 : EINVAL;
	int got = sc_token_init(W.tok[t].mem, tok_ptr(p));
	expect_int(got, want, "sc_token_init");
	if (!got)
		model_init(t, p);
}

/* A worker's call may be running under t, or under a dead token whose parent pointer leads to t. */
static bool maybe_in_use(int t)
{
	for (int k = 0; k < NWORK; k++)
		if (busy_job(k) && !worker_done(&W.work[k]) && reaches(busy_job(k)->call.tok, t))
			return true;
	return false;
}

/*
 * Freed memory must not be reached by a call.  The parent pointer of a dead
 * token the program keeps may lead to freed memory: the library must not follow it.
 */
static bool may_free(int t)
{
	return !held_by_job(t);
}

static void destroyed(int t)
{
	struct mtok *m = &W.tok[t];

	m->live = false;
	if (m->parent >= 0)
		W.tok[m->parent].children--;
	for (int k = 0; k < NWORK; k++)
		if (busy_job(k) && reaches(busy_job(k)->call.tok, t))
			busy_job(k)->destroyed = true;
}

static void op_destroy(int t, bool release)
{
	if (!usable(t))
		return;
	if (!live(t)) {
		expect_int(sc_token_destroy(tok_ptr(t)), EINVAL, "sc_token_destroy");
		return;
	}
	bool racy = maybe_in_use(t);
	int got = sc_token_destroy(tok_ptr(t));
	if (W.tok[t].children || !racy)
		expect_int(got, W.tok[t].children ? EBUSY : 0, "sc_token_destroy");
	else if (got != 0 && got != EBUSY)
		fail("sc_token_destroy returned %d, expected 0 or EBUSY", got);
	if (got)
		return;
	destroyed(t);
	if (release && may_free(t)) {
		free(W.tok[t].mem);
		W.tok[t].mem = NULL;
	}
}

static const int causes[] = { 0, -1, INT_MIN, 1, EPIPE, ESHUTDOWN, ETIMEDOUT, INT_MAX };

static void on_cancel_signal(int sig)
{
	(void)sig;
	sig_ret = sig_plain ? sc_cancel(sig_tok) : sc_cancel_cause(sig_tok, sig_cause);
}

/* plain: sc_cancel(), else sc_cancel_cause(). */
static int cancel(sc_token *tok, bool plain, int cause, bool from_handler)
{
	if (!from_handler)
		return plain ? sc_cancel(tok) : sc_cancel_cause(tok, cause);
	sig_tok = tok;
	sig_plain = plain;
	sig_cause = cause;
	raise(SIG_CANCEL);
	return sig_ret;
}

static void model_cancel(int t, int cause)
{
	if (!W.tok[t].cancelled)
		W.tok[t].cause = cause;
	W.tok[t].cancelled = true;
	jobs_cancelled(t);
}

/* sel picks a cause, or sc_cancel() itself. */
static void op_cancel(int t, unsigned sel, bool from_handler)
{
	bool plain = sel % 9 == 8;
	int cause = plain ? ECANCELED : causes[sel % 9];
	bool valid = live(t) && cause > 0;

	if (!usable(t))
		return;
	expect_int(cancel(tok_ptr(t), plain, cause, from_handler), valid ? 0 : EINVAL,
		   "sc_cancel");
	if (valid)
		model_cancel(t, cause);
}

static int64_t pick_deadline(unsigned sel, int64_t now)
{
	static const int64_t edges[] = { 0, 1, SC_NO_DEADLINE, -1, INT64_MIN, SC_NO_DEADLINE - 1 };
	static const int64_t near[] = { -MS, 0, 50 * US, 500 * US, 3 * MS, 3600 * SEC };

	sel %= 12;
	return sel < 6 ? edges[sel] : now + near[sel - 6];
}

static const int64_t timeouts[] = {
	0, 1, 50 * US, 500 * US, 3 * MS, SC_NO_DEADLINE, -1, INT64_MIN,
	SC_NO_DEADLINE - 1, INT64_MAX / 2, 3600 * SEC, SC_NO_DEADLINE - 1000,
};

static void model_deadline(int t, int64_t lo, int64_t hi)
{
	W.tok[t].dl_lo = lo;
	W.tok[t].dl_hi = hi;
	jobs_deadline_moved(t);
}

static void set_deadline(int t, unsigned sel)
{
	int64_t dl = pick_deadline(sel, now_ns());
	bool valid = live(t) && dl >= 0;

	expect_int(sc_token_set_deadline(tok_ptr(t), dl), valid ? 0 : EINVAL,
		   "sc_token_set_deadline");
	if (valid)
		model_deadline(t, dl, dl);
}

static void set_timeout(int t, unsigned sel)
{
	int64_t to = timeouts[sel % (sizeof(timeouts) / sizeof(timeouts[0]))];
	int64_t before = now_ns();
	int got = sc_token_set_timeout(tok_ptr(t), to);
	int64_t after = now_ns();

	if (to == SC_NO_DEADLINE || (to >= 0 && to <= INT64_MAX / 2)) {
		expect_int(got, live(t) ? 0 : EINVAL, "sc_token_set_timeout");
		if (!got)
			model_deadline(t, to == SC_NO_DEADLINE ? to : before + to,
				       to == SC_NO_DEADLINE ? to : after + to);
	} else if (to < 0 || !live(t)) {
		if (got != EINVAL && !(to >= 0 && got == EOVERFLOW))
			fail("sc_token_set_timeout(%lld) returned %d", (long long)to, got);
	} else {
		expect_int(got, EOVERFLOW, "sc_token_set_timeout");
	}
}

static void op_deadline(int t, unsigned sel, bool relative)
{
	if (!usable(t))
		return;
	if (relative)
		set_timeout(t, sel);
	else
		set_deadline(t, sel);
}

static void op_query(int t)
{
	int64_t lo, hi, before, after;
	sc_token *tok = tok_ptr(t);

	if (!usable(t))
		return;
	chain_deadline(t, &lo, &hi);
	int64_t dl = sc_token_deadline(tok);
	if (dl < lo || dl > hi)
		fail("sc_token_deadline is %lld, expected %lld..%lld", (long long)dl,
		     (long long)lo, (long long)hi);
	require(sc_is_cancelled(tok) == chain_cancelled(t));
	before = now_ns();
	int cause = sc_token_cause(tok);
	after = now_ns();
	if (chain_cancelled(t))
		expect_int(cause, chain_cause(t), "sc_token_cause");
	else if (hi <= before)
		expect_int(cause, ETIMEDOUT, "sc_token_cause");
	else if (lo > after)
		expect_int(cause, 0, "sc_token_cause");
	else
		require(cause == 0 || cause == ETIMEDOUT);
	require(sc_now_ns() >= before);
}

/* ---- handing calls to workers ---- */

static const int poll_timeouts[] = { -1, 0, 1, 3, INT_MIN };
static const int64_t sleeps[] = {
	0, 1, 100 * US, 1 * MS, 3 * MS, 3600 * SEC, INT64_MAX, SC_NO_DEADLINE - 1, -1, INT64_MIN,
};
static const int backends[] = {
	SC_BACKEND_DEFAULT, SC_BACKEND_SIGNAL, SC_BACKEND_URING, 3, -1,
};

static bool prepare_io(struct job *j, unsigned d, unsigned e)
{
	struct call *c = &j->call;
	struct chan *ch = &W.chan[j->chan];

	if (c->kind == J_READ || c->kind == J_READV || c->kind == J_RECV) {
		if (job_where(reads_chan, j->chan))
			return false;
		j->reads = true;
		c->fd = ch->r;
		c->len = 1 + e * 2;
		if (c->kind == J_RECV)
			c->flags = (int[]){ 0, MSG_WAITALL, MSG_PEEK }[d / NCHAN % 3];
		return true;
	}
	if (ch->closed || job_where(writes_chan, j->chan))
		return false;
	j->writes = j->uses_w = true;
	c->fd = ch->w;
	c->len = e * 2;
	stream_fill(j->chan, ch->wpos, c->buf, c->len);
	return true;
}

static bool prepare_poll(struct job *j, unsigned d, unsigned e)
{
	struct call *c = &j->call;
	struct chan *ch = &W.chan[j->chan];

	j->uses_w = d / NCHAN & 1;
	c->flags = j->uses_w ? POLLOUT : POLLIN;
	c->fd = j->uses_w ? ch->w : ch->r;
	c->timeout_ms = poll_timeouts[e % 5];
	return c->fd >= 0;
}

static bool prepare(struct job *j, unsigned d, unsigned e)
{
	struct call *c = &j->call;

	j->chan = d % NCHAN;
	switch (c->kind) {
	case J_READ: case J_READV: case J_RECV: case J_WRITE: case J_SEND:
		return prepare_io(j, d, e);
	case J_POLL:
		return prepare_poll(j, d, e);
	case J_EPOLL:
		c->fd = W.epfd;
		c->flags = 1 + d % 4;
		c->timeout_ms = poll_timeouts[e % 5];
		return true;
	case J_SLEEP:
		c->ns = sleeps[e % (sizeof(sleeps) / sizeof(sleeps[0]))];
		return true;
	case J_FUTEX:
		c->expect = futex_word + (d & 1);
		return true;
	case J_ACCEPT:
		c->fd = W.lfd;
		return !busy_kind(J_ACCEPT);
	case J_CONNECT:
		return true;
	case J_FLOCK:
		c->fd = W.lock_b;
		return !busy_kind(J_FLOCK);
	default:
		c->flags = backends[d % 5];
		return true;
	}
}

static void snapshot(struct job *j)
{
	int64_t lo, hi, now = now_ns();

	j->dead_at_start = j->tok != TOK_NULL && !live(j->tok);
	j->chain = chain_of(j->tok);
	j->cancelled_at_start = chain_cancelled(j->tok);
	chain_deadline(j->tok, &lo, &hi);
	j->deadline_seen = lo != SC_NO_DEADLINE;
	j->expired_at_start = hi <= now;
	j->dl_bound = hi;
	j->word_at_start = futex_word;
}

static void op_post(const uint8_t *a)
{
	int k = a[0] % NWORK;
	struct worker *w = &W.work[k];
	struct job *j = &w->job;

	if (w->busy)
		return;
	memset(j, 0, sizeof(*j));
	j->call.kind = a[1] % J_KINDS;
	j->tok = pick_tok(a[2]);
	if (!usable(j->tok) || !prepare(j, a[3], a[4]))
		return;
	j->call.tok = tok_ptr(j->tok);
	j->on_uring = w->uring;
	snapshot(j);
	/* Without a token only a call that ends by itself may be handed over. */
	if (j->tok == TOK_NULL && !must_end(j))
		return;
	if (j->call.kind == J_CONNECT) {
		j->call.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		require(j->call.fd >= 0);
	}
	start_worker(w);
	hand_over(w);
	if (trace)
		fprintf(stderr, "  worker %d: %s under token %d\n", k, kind_names[j->call.kind],
			j->tok);
}

/* Collects the result if it is there, or waits for it if the call must end. */
static void op_collect(int k)
{
	struct worker *w = &W.work[k];

	if (!w->busy)
		return;
	if (must_end(&w->job))
		wait_and_collect(k);
	else if (worker_done(w))
		collect(k);
}

/* Gives the worker a moment to block in its call: only shapes the schedule. */
static void op_settle(int k)
{
	struct worker *w = &W.work[k];
	pid_t tid = __atomic_load_n(&w->tid, __ATOMIC_ACQUIRE);

	for (int i = 0; w->busy && tid && i < SETTLE_TRIES; i++) {
		if (worker_done(w) || (__atomic_load_n(&w->started, __ATOMIC_ACQUIRE) &&
				       task_state(tid) == 'S'))
			return;
		sched_yield();
	}
}

static void op_poke(int k, bool restart)
{
	struct worker *w = &W.work[k];

	if (w->running)
		pthread_kill(w->thread, restart ? SIG_POKE_RESTART : SIG_POKE);
}

/* ---- calls made by this thread, which never block ---- */

static sc_result read_nonblock(int c, sc_token *tok, uint8_t *buf, size_t len, unsigned how)
{
	struct chan *ch = &W.chan[c];
	struct iovec iov[2] = { { buf, len / 2 }, { buf + len / 2, len - len / 2 } };
	sc_result r;

	if (ch->sock && how % 4 >= 2)
		return sc_recv(tok, ch->r, buf, len, MSG_DONTWAIT | (how % 4 == 3 ? MSG_PEEK : 0));
	set_nonblock(ch->r, true);
	r = how & 1 ? sc_readv(tok, ch->r, iov, 2) : sc_read(tok, ch->r, buf, len);
	set_nonblock(ch->r, false);
	return r;
}

static void op_read(int c, int t, size_t len, unsigned how)
{
	struct chan *ch = &W.chan[c];
	uint8_t buf[BUF_LEN];
	bool dontwait = ch->sock && how % 4 >= 2;

	if (job_where(reads_chan, c) || !usable(t))
		return;
	int64_t before = now_ns();
	sc_result r = read_nonblock(c, tok_ptr(t), buf, len, how);
	if (!ran(r, verdict(t, before, now_ns())))
		return;
	if (r.status == SC_OK) {
		account_read(c, buf, len, r.value, dontwait && how % 4 == 3);
		return;
	}
	expect_error(r, EAGAIN);
	if (ch->closed || ch->rpos < ch->wpos)
		fail("channel %d: EAGAIN with %llu bytes unread", c,
		     (unsigned long long)(ch->wpos - ch->rpos));
}

static sc_result write_nonblock(int c, sc_token *tok, const uint8_t *buf, size_t len, bool send)
{
	struct chan *ch = &W.chan[c];
	sc_result r;

	if (send)
		return sc_send(tok, ch->w, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	set_nonblock(ch->w, true);
	r = sc_write(tok, ch->w, buf, len);
	set_nonblock(ch->w, false);
	return r;
}

static void op_write(int c, int t, size_t len, unsigned how)
{
	struct chan *ch = &W.chan[c];
	uint8_t buf[BUF_LEN];
	bool send = ch->sock && (how & 1);

	if (ch->closed || job_where(writes_chan, c) || !usable(t))
		return;
	stream_fill(c, ch->wpos, buf, len);
	int64_t before = now_ns();
	sc_result r = write_nonblock(c, tok_ptr(t), buf, len, send);
	if (!ran(r, verdict(t, before, now_ns())))
		return;
	if (r.status == SC_OK)
		account_write(c, r.value, len);
	else
		expect_error(r, EAGAIN);
}

/* Fills the channel until it takes no more: the next blocking write waits. */
static void op_fill(int c)
{
	struct chan *ch = &W.chan[c];
	uint8_t buf[4096];

	if (ch->closed || job_where(writes_chan, c))
		return;
	set_nonblock(ch->w, true);
	for (uint64_t start = ch->wpos; ch->wpos - start < FILL_MAX;) {
		stream_fill(c, ch->wpos, buf, sizeof(buf));
		ssize_t n = write(ch->w, buf, sizeof(buf));
		if (n < 0) {
			require(errno == EAGAIN);
			break;
		}
		ch->wpos += n;
	}
	set_nonblock(ch->w, false);
}

static void op_shut(int c)
{
	struct chan *ch = &W.chan[c];

	if (ch->closed || job_where(uses_w, c))
		return;
	if (ch->sock) {
		require(shutdown(ch->w, SHUT_WR) == 0);
	} else {
		close(ch->w);
		ch->w = -1;
	}
	ch->closed = true;
}

static void op_poll(int c, int t, bool out)
{
	struct chan *ch = &W.chan[c];
	struct pollfd pfd = { .fd = out ? ch->w : ch->r, .events = out ? POLLOUT : POLLIN };

	if (pfd.fd < 0 || !usable(t))
		return;
	int64_t before = now_ns();
	sc_result r = sc_poll(tok_ptr(t), &pfd, 1, 0);
	if (!ran(r, verdict(t, before, now_ns())))
		return;
	require(r.status == SC_OK && r.value <= 1 && (r.value == 1) == (pfd.revents != 0));
	if (!out && !job_where(reads_chan, c) && (ch->closed || ch->rpos < ch->wpos))
		require(r.value == 1);
}

static void op_sleep(int t, unsigned sel)
{
	static const int64_t short_sleeps[] = { 0, 1, 1000, 100 * US };

	if (!usable(t))
		return;
	int64_t before = now_ns();
	sc_result r = sc_sleep(tok_ptr(t), short_sleeps[sel % 4]);
	if (ran(r, verdict(t, before, now_ns())))
		require(r.status == SC_OK && r.value == 0);
}

static void op_futex(int t)
{
	if (!usable(t))
		return;
	int64_t before = now_ns();
	sc_result r = sc_futex_wait(tok_ptr(t), &futex_word, futex_word + 1);
	if (ran(r, verdict(t, before, now_ns())))
		expect_error(r, EAGAIN);
}

static void op_wake(void)
{
	__atomic_add_fetch(&futex_word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	for (int k = 0; k < NWORK; k++)
		if (busy_job(k) && is_kind(busy_job(k), J_FUTEX))
			busy_job(k)->woken = true;
}

static void op_connect(int t)
{
	int fd;

	if (!usable(t))
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	require(fd >= 0);
	int64_t before = now_ns();
	sc_result r = sc_connect(tok_ptr(t), fd, (struct sockaddr *)&W.laddr, W.laddr_len);
	if (ran(r, verdict(t, before, now_ns()))) {
		if (r.status == SC_OK)
			W.connected++;
		else
			expect_error(r, EAGAIN);
	}
	close(fd);
}

static void op_accept(int t)
{
	bool pending = W.connected > W.accepted;

	if (busy_kind(J_ACCEPT) || !usable(t))
		return;
	set_nonblock(W.lfd, true);
	int64_t before = now_ns();
	sc_result r = sc_accept(tok_ptr(t), W.lfd, NULL, NULL, SOCK_CLOEXEC);
	int64_t after = now_ns();
	set_nonblock(W.lfd, false);
	if (!ran(r, verdict(t, before, after)))
		return;
	if (r.status == SC_OK) {
		close(r.value);
		W.accepted++;
		require(W.accepted <= W.connected + busy_kind(J_CONNECT));
		return;
	}
	expect_error(r, EAGAIN);
	if (pending)
		fail("EAGAIN with %u connections pending", W.connected - W.accepted);
}

static void op_lock(int t)
{
	if (busy_kind(J_FLOCK) || !usable(t))
		return;
	int64_t before = now_ns();
	sc_result r = sc_flock(tok_ptr(t), W.lock_a, LOCK_EX | LOCK_NB);
	if (!ran(r, verdict(t, before, now_ns())))
		return;
	if (W.holder == HOLD_B) {
		expect_error(r, EWOULDBLOCK);
		return;
	}
	require(r.status == SC_OK && r.value == 0);
	W.holder = HOLD_A;
}

static void op_unlock(bool b)
{
	if (b && busy_kind(J_FLOCK))
		return;
	require(flock(b ? W.lock_b : W.lock_a, LOCK_UN) == 0);
	if (W.holder == (b ? HOLD_B : HOLD_A))
		W.holder = HOLD_NONE;
}

static void op_backend(unsigned sel)
{
	int b = backends[sel % 5];
	int ret = sc_thread_backend(b);

	expect_int(ret, backend_result(b), "sc_thread_backend");
	W.on_uring = uring_after(b, ret, W.on_uring);
}

/* ---- bad input: a documented error, never a crash ---- */

/* A call with a bad argument and the error it must give; *tokenless: given whatever the token. */
static sc_result bad_call(unsigned sel, sc_token *tok, int *err, bool *tokenless)
{
	int pr = W.chan[CH_SMALL_PIPE].r, sock = W.chan[CH_SOCK].w;
	const struct sockaddr *la = (const struct sockaddr *)&W.laddr;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct msghdr msg = { 0 };
	struct pollfd pfd = { .fd = pr, .events = POLLIN };
	static uint8_t buf[8];
	static struct epoll_event ev[1];
	static const int errs[] = {
		EBADF, EBADF, EBADF, ENOTSOCK, ESPIPE, EINVAL, EFAULT, EINVAL, EINVAL,
		EINVAL, EINVAL, EINVAL, EINVAL, EBADF, EINVAL, EFAULT, ENOSYS, ENOSYS,
		ENOTSOCK, EINVAL, EINVAL, ECHILD, ENOENT, ENOTSOCK, ENOTSOCK, EBADF,
		EFAULT, EISCONN, ENOTSOCK, EINVAL, 0,
	};

	sel %= sizeof(errs) / sizeof(errs[0]);
	*err = errs[sel];
	/* Arguments the library refuses itself, before it looks at the token. */
	*tokenless = sel == 7 || sel == 10 || sel == 11 || sel == 12;
	switch (sel) {
	case 0: return sc_read(tok, -1, buf, 1);
	case 1: return sc_write(tok, INT_MAX, buf, 1);
	case 2: return sc_write(tok, pr, buf, 1);
	case 3: return sc_recv(tok, pr, buf, 1, MSG_DONTWAIT);
	case 4: return sc_pread(tok, pr, buf, 1, 0);
	case 5: return sc_readv(tok, pr, NULL, -1);
	case 6: return sc_poll(tok, NULL, 1, 0);
	case 7: return sc_poll(tok, &pfd, (nfds_t)-1, 0);
	case 8: return sc_epoll_wait(tok, W.epfd, ev, 0, 0);
	case 9: return sc_epoll_wait(tok, pr, ev, 1, 0);
	case 10: return sc_sleep(tok, -1);
	case 11: return sc_sleep(tok, INT64_MIN);
	case 12: return sc_fcntl_lock(tok, W.lock_a, F_GETFL, &fl);
	case 13: return sc_fcntl_lock(tok, -1, F_SETLK, &fl);
	case 14: return sc_futex_wait(tok, (const uint32_t *)((const char *)&futex_word + 1), 0);
	case 15: return sc_futex_wait(tok, NULL, 0);
	case 16: return sc_syscall(tok, -1, 0, 0, 0, 0, 0, 0);
	case 17: return sc_syscall(tok, 100000, 0, 0, 0, 0, 0, 0);
	case 18: return sc_accept(tok, pr, NULL, NULL, 0);
	case 19: return sc_connect(tok, sock, la, 1);	/* too short for an address */
	case 20: return sc_flock(tok, W.lock_a, 0);
	case 21: return sc_waitpid(tok, INT_MAX, NULL, WNOHANG);
	case 22: return sc_openat(tok, AT_FDCWD, "", O_RDONLY, 0);
	case 23: return sc_recvmsg(tok, pr, &msg, MSG_DONTWAIT);
	case 24: return sc_sendmsg(tok, pr, &msg, 0);
	case 25: return sc_syscall(tok, SYS_close, -1, 0, 0, 0, 0, 0);
	case 26: return sc_readv(tok, pr, NULL, 1);
	case 27: return sc_sendto(tok, sock, buf, 1, MSG_DONTWAIT | MSG_NOSIGNAL, la, W.laddr_len);
	case 28: return sc_recvfrom(tok, pr, buf, 1, MSG_DONTWAIT, NULL, NULL);
	case 29: return sc_pwrite(tok, W.lock_a, buf, 1, -1);
	default: return sc_pread(tok, W.lock_a, buf, 1, 0);	/* empty file: 0 */
	}
}

static void op_bad_call(unsigned sel, int t)
{
	int err;
	bool tokenless;

	if (!usable(t))
		return;
	int64_t before = now_ns();
	sc_result r = bad_call(sel, tok_ptr(t), &err, &tokenless);
	if (tokenless) {
		expect_error(r, err);
	} else if (ran(r, verdict(t, before, now_ns()))) {
		if (err)
			expect_error(r, err);
		else
			require(r.status == SC_OK && r.value == 0);
	}
}

static void op_bad_api(unsigned sel)
{
	int signo = sc_signal_number();
	int other = signo == SIGRTMIN + 5 ? SIGRTMIN + 6 : SIGRTMIN + 5;

	require(signo >= SIGRTMIN && signo <= SIGRTMAX);
	switch (sel % 8) {
	case 0:
		expect_int(sc_token_init(NULL, NULL), EINVAL, "sc_token_init(NULL)");
		expect_int(sc_token_destroy(NULL), EINVAL, "sc_token_destroy(NULL)");
		break;
	case 1:
		expect_int(sc_cancel(NULL), EINVAL, "sc_cancel(NULL)");
		expect_int(sc_cancel_cause(NULL, EPIPE), EINVAL, "sc_cancel_cause(NULL)");
		break;
	case 2:
		expect_int(sc_token_set_deadline(NULL, 0), EINVAL, "sc_token_set_deadline(NULL)");
		expect_int(sc_token_set_timeout(NULL, 0), EINVAL, "sc_token_set_timeout(NULL)");
		break;
	case 3:
		require(sc_token_deadline(NULL) == SC_NO_DEADLINE);
		require(sc_token_cause(NULL) == 0 && !sc_is_cancelled(NULL));
		break;
	case 4:
		expect_int(sc_init(&(sc_config){ .signo = 1 }), EINVAL, "sc_init(signal 1)");
		expect_int(sc_init(&(sc_config){ .signo = SIGRTMAX + 1 }), EINVAL, "sc_init(RTMAX+1)");
		break;
	case 5:
		expect_int(sc_init(&(sc_config){ .backend = 9 }), EINVAL, "sc_init(backend 9)");
		expect_int(sc_init(&(sc_config){ .signo = other }), EALREADY, "sc_init(other signal)");
		break;
	case 6:
		expect_int(sc_init(NULL), 0, "sc_init(NULL)");
		require(sc_signal_number() == signo);
		break;
	default:
		expect_int(sc_thread_backend(3), EINVAL, "sc_thread_backend(3)");
		expect_int(sc_thread_backend(-1), EINVAL, "sc_thread_backend(-1)");
		break;
	}
}

/* ---- one input ---- */

enum {
	OP_INIT, OP_DESTROY, OP_CANCEL, OP_DEADLINE, OP_QUERY, OP_POST, OP_COLLECT,
	OP_SETTLE, OP_WRITE, OP_READ, OP_FILL, OP_SHUT, OP_POLL, OP_WAKE, OP_SLEEP,
	OP_FUTEX, OP_BAD_CALL, OP_BAD_API, OP_POKE, OP_CONNECT, OP_ACCEPT, OP_LOCK,
	OP_UNLOCK, OP_BACKEND, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"init", "destroy", "cancel", "deadline", "query", "post", "collect",
	"settle", "write", "read", "fill", "shut", "poll", "wake", "sleep",
	"futex", "bad_call", "bad_api", "poke", "connect", "accept", "lock",
	"unlock", "backend",
};

/* a[]: the record's five argument bytes. */
static void run_op(unsigned code, const uint8_t *a)
{
	switch (code) {
	case OP_INIT: op_init(a[0] % NTOK, pick_tok(a[1])); break;
	case OP_DESTROY: op_destroy(pick_tok(a[0]), a[1] & 1); break;
	case OP_CANCEL: op_cancel(pick_tok(a[0]), a[1], a[2] & 1); break;
	case OP_DEADLINE: op_deadline(pick_tok(a[0]), a[1], a[2] & 1); break;
	case OP_QUERY: op_query(pick_tok(a[0])); break;
	case OP_POST: op_post(a); break;
	case OP_COLLECT: op_collect(a[0] % NWORK); break;
	case OP_SETTLE: op_settle(a[0] % NWORK); break;
	case OP_WRITE: op_write(a[0] % NCHAN, pick_tok(a[1]), a[2] * 2, a[3]); break;
	case OP_READ: op_read(a[0] % NCHAN, pick_tok(a[1]), a[2] * 2, a[3]); break;
	case OP_FILL: op_fill(a[0] % NCHAN); break;
	case OP_SHUT: op_shut(a[0] % NCHAN); break;
	case OP_POLL: op_poll(a[0] % NCHAN, pick_tok(a[1]), a[2] & 1); break;
	case OP_WAKE: op_wake(); break;
	case OP_SLEEP: op_sleep(pick_tok(a[0]), a[1]); break;
	case OP_FUTEX: op_futex(pick_tok(a[0])); break;
	case OP_BAD_CALL: op_bad_call(a[0], pick_tok(a[1])); break;
	case OP_BAD_API: op_bad_api(a[0]); break;
	case OP_POKE: op_poke(a[0] % NWORK, a[1] & 1); break;
	case OP_CONNECT: op_connect(pick_tok(a[0])); break;
	case OP_ACCEPT: op_accept(pick_tok(a[0])); break;
	case OP_LOCK: op_lock(pick_tok(a[0])); break;
	case OP_UNLOCK: op_unlock(a[0] & 1); break;
	default: op_backend(a[0]); break;
	}
}

static void open_pipe(struct chan *ch, int size)
{
	int p[2];

	require(pipe2(p, O_CLOEXEC) == 0);
	if (size)
		require(fcntl(p[1], F_SETPIPE_SZ, size) >= size);
	ch->r = p[0];
	ch->w = p[1];
}

/* The smallest send buffer: a few writes fill it. */
static void open_socketpair(struct chan *ch)
{
	int sv[2], one = 1;

	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	require(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)) == 0);
	ch->w = sv[0];
	ch->r = sv[1];
	ch->sock = true;
}

static void open_channels(void)
{
	open_pipe(&W.chan[CH_SMALL_PIPE], 4096);
	open_pipe(&W.chan[CH_PIPE], 0);
	open_socketpair(&W.chan[CH_SOCK]);
	W.epfd = epoll_create1(EPOLL_CLOEXEC);
	require(W.epfd >= 0);
	for (int c = 0; c < NCHAN; c++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = c };
		require(epoll_ctl(W.epfd, EPOLL_CTL_ADD, W.chan[c].r, &ev) == 0);
	}
}

/* An abstract address the kernel picks, so that inputs never collide. */
static void open_listener(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	W.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	require(W.lfd >= 0);
	require(bind(W.lfd, (struct sockaddr *)&a, sizeof(sa_family_t)) == 0);
	require(listen(W.lfd, 1) == 0);
	W.laddr_len = sizeof(W.laddr);
	require(getsockname(W.lfd, (struct sockaddr *)&W.laddr, &W.laddr_len) == 0);
}

/* Two open file descriptions of one file: their flock locks conflict. */
static void open_locks(void)
{
	char path[64];
	int fd = memfd_create("fuzz-api", MFD_CLOEXEC);

	require(fd >= 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	W.lock_a = open(path, O_RDWR | O_CLOEXEC);
	W.lock_b = open(path, O_RDWR | O_CLOEXEC);
	require(W.lock_a >= 0 && W.lock_b >= 0);
	close(fd);
}

/* Config bit 0: start from a tree (0, 1 < 0, 2 < 1, 3, 4 < 3, 5 < 0) rather than from nothing. */
static void setup(unsigned config)
{
	static const int tree_parent[NTOK] = { TOK_NULL, 0, 1, TOK_NULL, 3, 0 };

	memset(&W, 0, sizeof(W));
	W.op_name = "setup";
	W.first_free_fd = lowest_free_fd();
	W.on_uring = uring_default;
	for (int k = 0; k < NWORK; k++)
		W.work[k].uring = uring_default;
	memset(&zero_tok, 0, sizeof(zero_tok));
	memset(&garbage_tok, config | 1, sizeof(garbage_tok));
	for (int t = 0; t < NTOK; t++) {
		W.tok[t].mem = alloc_token();
		W.tok[t].parent = -1;
	}
	for (int t = 0; (config & 1) && t < NTOK; t++)
		op_init(t, tree_parent[t]);
	open_channels();
	open_listener();
	open_locks();
}

static bool futex_waits(void)
{
	for (int k = 0; k < NWORK; k++)
		if (busy_job(k) && is_kind(busy_job(k), J_FUTEX) && !must_end(busy_job(k)))
			return true;
	return false;
}

/*
 * Every call handed over returns: by itself if it must, else once woken or
 * cancelled.  A wake may bring the word to what another wait expects: wake
 * until the word is past them all.
 */
static void release_workers(void)
{
	for (int i = 0; i <= NWORK && futex_waits(); i++)
		op_wake();
	for (int k = 0; k < NWORK; k++) {
		struct job *j = busy_job(k);
		if (j && !must_end(j)) {
			expect_int(sc_cancel(tok_ptr(j->tok)), 0, "sc_cancel at the end");
			model_cancel(j->tok, ECANCELED);
		}
	}
	for (int k = 0; k < NWORK; k++)
		if (busy_job(k))
			wait_and_collect(k);
	for (int k = 0; k < NWORK; k++)
		stop_worker(&W.work[k]);
}

/* Every byte written is read once, in order, and nothing else. */
static void drain_channel(int c)
{
	struct chan *ch = &W.chan[c];
	uint8_t buf[4096];
	ssize_t n;

	set_nonblock(ch->r, true);
	while ((n = read(ch->r, buf, sizeof(buf))) > 0)
		account_read(c, buf, sizeof(buf), n, false);
	require(n == 0 ? ch->closed : errno == EAGAIN && !ch->closed);
	if (ch->rpos != ch->wpos)
		fail("channel %d: %llu bytes written, %llu read", c,
		     (unsigned long long)ch->wpos, (unsigned long long)ch->rpos);
}

/* Every connection made is accepted once, and no cancelled connect made one. */
static void drain_listener(void)
{
	int fd;

	set_nonblock(W.lfd, true);
	while ((fd = accept4(W.lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(fd);
		W.accepted++;
	}
	require(errno == EAGAIN);
	if (W.accepted != W.connected)
		fail("%u connections made, %u accepted", W.connected, W.accepted);
}

/* Nothing uses the tokens any more: each one is destroyed, leaves first. */
static void destroy_tokens(void)
{
	for (bool again = true; again;) {
		again = false;
		for (int t = 0; t < NTOK; t++) {
			if (!live(t) || W.tok[t].children)
				continue;
			expect_int(sc_token_destroy(W.tok[t].mem), 0, "sc_token_destroy at the end");
			destroyed(t);
			again = true;
		}
	}
	for (int t = 0; t < NTOK; t++)
		free(W.tok[t].mem);
}

static void close_all(void)
{
	for (int c = 0; c < NCHAN; c++) {
		close(W.chan[c].r);
		if (W.chan[c].w >= 0)
			close(W.chan[c].w);
	}
	close(W.epfd);
	close(W.lfd);
	close(W.lock_a);
	close(W.lock_b);
}

/* The library signals a thread only inside a call. */
static void check_no_stray(void)
{
	if (__atomic_load_n(&sc_signal_counts.stray, __ATOMIC_RELAXED))
		fail("%llu library signals landed outside a call",
		     (unsigned long long)sc_signal_counts.stray);
}

/* No stray signal, no slot of a joined thread kept, no descriptor left open. */
static void check_leftovers(void)
{
	unsigned slots, taken;

	check_no_stray();
	sc_registry_count(&slots, &taken);
	if (taken > 1 || slots > NWORK + 1)
		fail("%u registry slots, %u taken, after the workers were joined", slots, taken);
	if (lowest_free_fd() != W.first_free_fd)
		fail("descriptors leaked: lowest free %d, was %d", lowest_free_fd(), W.first_free_fd);
}

static void cleanup(void)
{
	W.op_name = "cleanup";
	release_workers();
	for (int c = 0; c < NCHAN; c++)
		drain_channel(c);
	drain_listener();
	destroy_tokens();
	close_all();
	expect_int(sc_thread_backend(SC_BACKEND_DEFAULT), 0, "sc_thread_backend(DEFAULT)");
	check_leftovers();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t rec[REC_LEN];

	if (!size)
		return 0;
	setup(data[0]);
	data++, size--;
	for (W.op = 0; W.op < MAX_OPS && size; W.op++) {
		size_t n = size < REC_LEN ? size : REC_LEN;
		memset(rec, 0, sizeof(rec));
		memcpy(rec, data, n);
		data += n, size -= n;
		W.op_name = op_names[rec[0] % OP_COUNT];
		if (trace)
			fprintf(stderr, "op %d: %s %u %u %u %u %u\n", W.op, W.op_name,
				rec[1], rec[2], rec[3], rec[4], rec[5]);
		run_op(rec[0] % OP_COUNT, rec + 1);
		check_no_stray();
	}
	cleanup();
	return 0;
}

static void on_poke(int sig)
{
	(void)sig;
}

static void install(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa = { .sa_handler = fn, .sa_flags = flags };

	sigemptyset(&sa.sa_mask);
	require(sigaction(sig, &sa, NULL) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *env = getenv("SYSCANCEL_BACKEND");

	(void)argc, (void)argv;
	trace = getenv("FUZZ_TRACE") && *getenv("FUZZ_TRACE") == '1';
	expect_int(sc_init(NULL), 0, "sc_init");
	install(SIG_POKE_RESTART, on_poke, SA_RESTART);
	install(SIG_POKE, on_poke, 0);
	install(SIG_CANCEL, on_cancel_signal, SA_RESTART);
	install(SIGPIPE, SIG_IGN, 0);
	uring_ok = sc_thread_backend(SC_BACKEND_URING) == 0;
	uring_default = uring_ok && env && !strcmp(env, "uring");
	/* This thread's ring, once made, stays open: make it now, before descriptors are counted. */
	if (uring_ok)
		require(sc_sleep(NULL, 0).status == SC_OK);
	expect_int(sc_thread_backend(SC_BACKEND_DEFAULT), 0, "sc_thread_backend");
	return 0;
}
