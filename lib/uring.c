/*
 * The io_uring backend: the same calls and tokens through a ring of the
 * calling thread's own, entered from the life of a call in call.c.  A cancel never signals: the canceller removes the
 * request with IORING_REGISTER_SYNC_CANCEL on the owner's ring, and at a
 * deadline the owner, waiting with a timeout, cancels its own request.  The
 * owner reports only what the request's own completion says.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBURING
#include <liburing.h>

enum kind { PLAIN, POLL_ONE, SLEEP };

/*
 * liburing maps and unmaps rings with raw syscalls, unseen by
 * ThreadSanitizer: a thread's new ring at the address of an exited
 * thread's looks shared with it.  The kernel orders the unmapping before
 * any mapping that reuses the address; tell ThreadSanitizer so.
 */
#if defined(__SANITIZE_THREAD__)
#define SC_TSAN_RINGS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SC_TSAN_RINGS 1
#endif
#endif
#ifdef SC_TSAN_RINGS
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char rings_unmapped;
#define ring_unmapping() __tsan_release(&rings_unmapped)
#define ring_mapped() __tsan_acquire(&rings_unmapped)
#else
#define ring_unmapping() ((void)0)
#define ring_mapped() ((void)0)
#endif

static int probe_err;
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static int sync_cancel(int ring_fd, uint64_t user_data)
{
	struct io_uring_sync_cancel_reg reg = { .addr = user_data };

	return syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_SYNC_CANCEL, &reg, 1)
		? errno : 0;
}

/* A ring can be made here, and another thread can cancel on it. */
static void probe(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(4, &ring, 0)) {
		probe_err = ENOTSUP;
		return;
	}
	probe_err = sync_cancel(ring.ring_fd, 1) == ENOENT ? 0 : ENOTSUP;
	io_uring_queue_exit(&ring);
}

int sc_uring_probe(void)
{
	pthread_once(&probe_once, probe);
	return probe_err;
}

int sc_uring_select(struct sc_slot *s, int on)
{
	if (on && sc_uring_probe())
		return ENOTSUP;
	uint64_t call = s->call & ~(uint64_t)SC_CALL_URING;

	store_relaxed(&s->call, on ? call | SC_CALL_URING : call);
	return 0;
}

static int ring_open(struct sc_slot *s)
{
	struct io_uring *ring = calloc(1, sizeof(*ring));
	int err;

	if (!ring)
		return ENOMEM;
	err = -io_uring_queue_init(4, ring, 0);
	if (err) {
		free(ring);
		return err;
	}
	ring_mapped();
	s->ring = ring;
	store_release(&s->ring_fd, ring->ring_fd);
	return 0;
}

void sc_uring_release(struct sc_slot *s)
{
	if (!s->ring)
		return;
	ring_unmapping();
	io_uring_queue_exit(s->ring);
	free(s->ring);
	s->ring = NULL;
	store_relaxed(&s->ring_fd, -1);
}

/* Called with the slot pinned and its call in flight on the ring. */
void sc_uring_kick(struct sc_slot *s)
{
	sync_cancel(load_acquire(&s->ring_fd), load_relaxed(&s->call));
}

/*
 * A call that cannot wait: its descriptor is non-blocking or bad.  io_uring
 * would wait for it all the same where the syscall returns at once.
 */
static int cannot_wait(long fd)
{
	int flags = fcntl(fd, F_GETFL);

	return flags < 0 || (flags & O_NONBLOCK);
}

/*
 * pread and pwrite at an offset the syscall takes: io_uring reads offset -1
 * as "the file position", and reads a pipe or a socket.  lseek fails where
 * pread and pwrite fail with ESPIPE.
 */
static int positioned(long fd, long off)
{
	return off >= 0 && lseek(fd, 0, SEEK_CUR) >= 0;
}

/*
 * A poll of one descriptor goes to the ring only when poll(2) would wait,
 * which a poll with no timeout tells here without reading the array
 * ourselves: a bad array (EFAULT), a bad descriptor (POLLNVAL), a negative
 * one (never ready) or one ready now take the signal path.
 */
static int poll_would_wait(struct pollfd *pfd)
{
	return !poll(pfd, 1, 0) && pfd->fd >= 0;
}

/*
 * A ppoll's timeout, which the ring keeps itself: none, or one the kernel
 * would take.  A bad pointer (EFAULT) or value (EINVAL) takes the signal path.
 */
static int timeout_usable(long addr)
{
	struct timespec ts;

	if (!addr)
		return 1;
	return !sc_copy_in(&ts, (const void *)addr, sizeof(ts)) && ts.tv_sec >= 0 &&
	       ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L;
}

/*
 * Which requests the ring runs as the syscall would; the others take the
 * signal path, which gives the syscall's own result.
 */
int sc_uring_can_run(const struct sc_req *req)
{
	const long *a = req->args;

	switch (req->nr) {
	case SYS_read: case SYS_write: case SYS_readv: case SYS_writev:
	case SYS_accept4: case SYS_connect:
		return !cannot_wait(a[0]);
	case SYS_pread64:
	case SYS_pwrite64:
		return positioned(a[0], a[3]) && !cannot_wait(a[0]);
	case SYS_recvmsg:
	case SYS_sendmsg:
		return !(a[2] & MSG_DONTWAIT) && !cannot_wait(a[0]);
	case SYS_recvfrom:
	case SYS_sendto:		/* without an address: recv, send */
		return !a[4] && !(a[3] & MSG_DONTWAIT) && !cannot_wait(a[0]);
	case SYS_clock_nanosleep:
		return !!(req->flags & SC_REQ_SLEEP);
	case SYS_ppoll:			/* one fd, no mask */
		return a[1] == 1 && !a[3] && timeout_usable(a[2]) &&
		       poll_would_wait((struct pollfd *)a[0]);
	}
	return 0;
}

static struct __kernel_timespec kts(int64_t ns)
{
	return (struct __kernel_timespec){ ns / 1000000000LL, ns % 1000000000LL };
}

static int64_t ns_of(const struct timespec *ts)
{
	return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static enum kind prep(struct io_uring_sqe *sqe, const struct sc_req *req,
		      struct __kernel_timespec *sleep_until)
{
	const long *a = req->args;

	switch (req->nr) {
	case SYS_read:
		io_uring_prep_read(sqe, a[0], (void *)a[1], a[2], -1);
		break;
	case SYS_write:
		io_uring_prep_write(sqe, a[0], (const void *)a[1], a[2], -1);
		break;
	case SYS_readv:
		io_uring_prep_readv(sqe, a[0], (const struct iovec *)a[1], a[2], -1);
		break;
	case SYS_writev:
		io_uring_prep_writev(sqe, a[0], (const struct iovec *)a[1], a[2], -1);
		break;
	case SYS_pread64:
		io_uring_prep_read(sqe, a[0], (void *)a[1], a[2], a[3]);
		break;
	case SYS_pwrite64:
		io_uring_prep_write(sqe, a[0], (const void *)a[1], a[2], a[3]);
		break;
	case SYS_recvfrom:
		io_uring_prep_recv(sqe, a[0], (void *)a[1], a[2], a[3]);
		break;
	case SYS_sendto:
		io_uring_prep_send(sqe, a[0], (const void *)a[1], a[2], a[3]);
		break;
	case SYS_recvmsg:
		io_uring_prep_recvmsg(sqe, a[0], (struct msghdr *)a[1], a[2]);
		break;
	case SYS_sendmsg:
		io_uring_prep_sendmsg(sqe, a[0], (const struct msghdr *)a[1], a[2]);
		break;
	case SYS_accept4:
		io_uring_prep_accept(sqe, a[0], (struct sockaddr *)a[1], (socklen_t *)a[2], a[3]);
		break;
	case SYS_connect:
		io_uring_prep_connect(sqe, a[0], (const struct sockaddr *)a[1], a[2]);
		break;
	case SYS_ppoll:
		io_uring_prep_poll_add(sqe, ((struct pollfd *)a[0])->fd,
				       ((struct pollfd *)a[0])->events);
		return POLL_ONE;
	case SYS_clock_nanosleep:
		io_uring_prep_timeout(sqe, sleep_until, 0, IORING_TIMEOUT_ABS);
		return SLEEP;
	}
	return PLAIN;
}

/*
 * A ppoll's end, from the caller's timeout (checked, but the caller's to
 * change or unmap meanwhile: copied again, and one gone ends the poll).
 */
static int64_t poll_end(long addr, int64_t start)
{
	struct timespec ts;

	if (!addr)
		return SC_NO_DEADLINE;
	if (sc_copy_in(&ts, (const void *)addr, sizeof(ts)) || ts.tv_sec < 0 || ts.tv_nsec < 0)
		return start;
	if (ts.tv_sec >= (SC_NO_DEADLINE - start) / 1000000000LL - 1)
		return SC_NO_DEADLINE;
	return start + ns_of(&ts);
}

/* When the request's own time is up: a poll's timeout, a sleep's end (the library's). */
static int64_t own_end(const struct sc_req *req, int64_t start)
{
	if (req->nr == SYS_clock_nanosleep)
		return ns_of((const struct timespec *)req->args[2]);
	if (req->nr == SYS_ppoll)
		return poll_end(req->args[2], start);
	return SC_NO_DEADLINE;
}

static void cancel_own(struct io_uring *ring, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	io_uring_prep_cancel64(sqe, tag, 0);
	sqe->user_data = 0;
	io_uring_submit(ring);
}

/* The earlier of the request's own end and the call's deadline, which may move. */
static int64_t limit_of(const struct sc_slot *s, int64_t end)
{
	int64_t deadline = load_acquire(&s->deadline);

	return end < deadline ? end : deadline;
}

/*
 * Waits for the request's own completion, and cancels the request at its
 * limit, which a canceller may lower meanwhile.  The owner keeps the time
 * itself: a linked timeout that fires while the kernel is still moving the
 * request from its poll to io-wq (a connect does) finds nothing to cancel,
 * and the request then waits forever.  armed: a limit the request keeps
 * itself (a sleep's timeout).
 */
static long wait_for(struct sc_slot *s, uint64_t tag, int64_t end, int64_t armed)
{
	struct io_uring *ring = s->ring;

	for (;;) {
		int64_t limit = limit_of(s, end), left = limit - sc_now_ns();
		struct __kernel_timespec ts = kts(left);
		struct io_uring_cqe *cqe;
		int ret;

		if (limit < armed && left <= 0) {
			cancel_own(ring, tag);
			armed = limit;
		}
		if (limit < armed)
			ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
		else
			ret = io_uring_wait_cqe(ring, &cqe);
		if (ret == -EINTR || ret == -ETIME)	/* someone else's signal, or the limit */
			continue;
		if (ret < 0)
			return ret;
		uint64_t user_data = cqe->user_data;
		long res = cqe->res;
		io_uring_cqe_seen(ring, cqe);
		if (user_data == tag)
			return res;
	}
}

/* One submission of the request; its user_data is the call word. */
static long attempt(struct sc_slot *s, const struct sc_req *req, int64_t end, enum kind *kind)
{
	struct io_uring *ring = s->ring;
	uint64_t tag = s->call;
	int64_t limit = limit_of(s, end);
	struct __kernel_timespec sleep_until = kts(limit);
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int ret;

	*kind = prep(sqe, req, &sleep_until);
	sqe->user_data = tag;
	ret = io_uring_submit(ring);
	if (ret < 0)
		return ret;
	/* A cancel that came before the kernel had queued the request found nothing. */
	if (call_aborted(s))
		cancel_own(ring, tag);
	return wait_for(s, tag, end, *kind == SLEEP ? limit : SC_NO_DEADLINE);
}

/* Cancelled, timed out or interrupted (-512..-516: restart codes io-wq may leak). */
static int interrupted(long v, enum kind kind)
{
	return v == -ECANCELED || v == -EINTR || (v == -ETIME && kind == SLEEP) ||
	       (v <= -512 && v >= -516);
}

/* What poll(2) reports of what the ring's poll saw: the events asked, and those always reported. */
static short poll_revents(const struct pollfd *pfd, long seen)
{
	return seen & (pfd->events | POLLERR | POLLHUP | POLLNVAL);
}

/*
 * io_uring's poll also ends on POLLRDHUP, which poll(2) neither reports nor
 * ends on unless asked; a new ring poll would end at once again.  The
 * signal path waits for the rest of the timeout, which ppoll's timespec
 * carries, as the kernel's own ppoll writes it back.
 */
static int hand_over_poll(const struct sc_req *req, int64_t end)
{
	struct timespec *ts = (struct timespec *)req->args[2];
	int64_t left = end - sc_now_ns();

	if (ts) {
		left = left > 0 ? left : 0;
		*ts = (struct timespec){ left / 1000000000LL, left % 1000000000LL };
	}
	return 1;
}

/* How the connection that a connect waited for ended. */
static sc_result connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		err = errno;
	return err ? sc_error(err) : sc_completed(0);
}

/* The result of an attempt that ran to its end; nonzero: the signal path takes the call over. */
static int finish(const struct sc_req *req, long v, int retried, int64_t end, sc_result *r)
{
	struct pollfd *pfd = (struct pollfd *)req->args[0];

	if (req->nr != SYS_ppoll || v < 0) {
		/* As on the signal path: the connection of an earlier attempt went through. */
		if (retried && v == -EISCONN && (req->flags & SC_REQ_CONNECT))
			v = 0;
		*r = sc_completed(v);
		return 0;
	}
	pfd->revents = poll_revents(pfd, v);
	*r = sc_completed(1);
	return pfd->revents ? 0 : hand_over_poll(req, end);
}

/*
 * One attempt.  A connection already on its way (an interrupted attempt's,
 * or the application's): the ring's connect fails with EALREADY, the
 * blocking syscall waits for it, and so does the call, by polling for it.
 */
static long ring_enter(struct sc_slot *s, struct sc_call *c)
{
	for (;;) {
		enum kind kind;
		long v = attempt(s, c->req, c->end, &kind);

		c->kind = kind;
		if (c->req->nr != SYS_connect || v != -EALREADY)
			return v;
		c->writable = (struct pollfd){ .fd = (int)c->req->args[0], .events = POLLOUT };
		c->connecting = (struct sc_req){ .nr = SYS_ppoll, .args = { (long)&c->writable, 1 } };
		c->req = &c->connecting;
	}
}

static int ring_interrupted(const struct sc_call *c, long v)
{
	return interrupted(v, c->kind);
}

static int ring_finish(struct sc_call *c, long v, sc_result *r)
{
	if (c->req != &c->connecting)
		return finish(c->req, v, c->retried, c->end, r);
	*r = connect_result(c->writable.fd);
	return 0;
}

/* A poll's timeout or a sleep's end, which the request itself keeps. */
static int ring_expired(struct sc_call *c, sc_result *r)
{
	if (c->end == SC_NO_DEADLINE || sc_now_ns() < c->end)
		return 0;
	if (c->kind == POLL_ONE)
		((struct pollfd *)c->req->args[0])->revents = 0;
	*r = sc_completed(0);
	return 1;
}

/*
 * Before the call is published: cancellers must see it is on the ring.  A
 * thread whose ring cannot be made (no descriptor left, no memory, io_uring
 * turned off since the probe) moves to the signal path, which takes this
 * call and its later ones; sc_thread_backend() may try the ring again.
 */
static int ring_begin(struct sc_slot *s, struct sc_call *c)
{
	int err = s->ring ? 0 : ring_open(s);

	if (err) {
		sc_uring_select(s, 0);
		return err;
	}
	store_relaxed(&s->via_ring, 1);
	c->end = own_end(c->req, sc_now_ns());
	return 0;
}

static void ring_end(struct sc_slot *s)
{
	store_relaxed(&s->via_ring, 0);
}

/* The owner keeps its deadline itself: wait_for() times the request out. */
static void ring_deadline(struct sc_slot *s, int64_t deadline)
{
	sc_deadline_min(s, deadline);
}

const struct sc_backend sc_uring_backend = {
	.begin = ring_begin,
	.deadline = ring_deadline,
	.enter = ring_enter,
	.interrupted = ring_interrupted,
	.finish = ring_finish,
	.expired = ring_expired,
	.end = ring_end,
};

#else /* !HAVE_LIBURING */

int sc_uring_probe(void)
{
	return ENOTSUP;
}

int sc_uring_select(struct sc_slot *s, int on)
{
	(void)s;
	return on ? ENOTSUP : 0;
}

int sc_uring_can_run(const struct sc_req *req)
{
	(void)req;
	return 0;
}

/* Never chosen: sc_uring_can_run() refuses every request. */
const struct sc_backend sc_uring_backend;

void sc_uring_kick(struct sc_slot *s)
{
	(void)s;
}

void sc_uring_release(struct sc_slot *s)
{
	(void)s;
}

#endif
