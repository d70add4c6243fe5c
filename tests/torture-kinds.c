/*
 * Read, recv, poll, accept, write, sleep and futex wait, each with a way to
 * make a blocked call complete and an account of every byte or connection.
 */
#define _GNU_SOURCE
#include "torture-kinds.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void set_nonblocking(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), 0);
}

/* Read what fd holds now (it is non-blocking) and check it against the stream. */
static void drain_checked(struct race *r, int fd)
{
	uint8_t buf[CHUNK_MAX];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			add(&r->t.bad_bytes, stream_check(&r->received, buf, (size_t)n));
}

static void count_unequal(struct race *r, uint64_t a, uint64_t b)
{
	add(&r->t.bad_bytes, (long)(a > b ? a - b : b - a));
}

/* Calls that read a stream: the canceller supplies bytes, the worker checks them. */
static void pipe_setup(struct race *r)
{
	make_pipe(r->fds);
	set_nonblocking(r->fds[1], true);
}

static void socketpair_setup(struct race *r)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->fds), 0);
	set_nonblocking(r->fds[1], true);
}

static sc_result read_call(struct race *r, sc_token *tok, uint32_t rnd)
{
	return sc_read(tok, r->fds[0], r->call_buf, 1 + rnd % 64);
}

static sc_result recv_call(struct race *r, sc_token *tok, uint32_t rnd)
{
	return sc_recv(tok, r->fds[0], r->call_buf, 1 + rnd % 64, 0);
}

static void read_after_ok(struct race *r, sc_result res)
{
	add(&r->t.bad_bytes, stream_check(&r->received, r->call_buf, (size_t)res.value));
}

/*
 * Never blocks: a full pipe or socket already holds the data a call needs,
 * and a supplier stuck there would hold up the worker waiting for it.
 */
static void bytes_supply(struct race *r, uint32_t rnd)
{
	uint64_t pos = r->sent;
	size_t n = 1 + rnd % 16;
	ssize_t w;

	stream_fill(&pos, r->supply_buf, n);
	while ((w = write(r->fds[1], r->supply_buf, n)) < 0 && errno == EINTR)
		;
	if (w > 0)
		r->sent += (uint64_t)w;
	else
		ck_assert_msg(errno == EAGAIN, "supply: %s", strerror(errno));
}

static void stream_finish(struct race *r)
{
	set_nonblocking(r->fds[0], true);
	drain_checked(r, r->fds[0]);
	count_unequal(r, r->sent, r->received);
	close_pipe(r->fds);
}

/* poll: readiness only; the worker then takes all there is, so the next poll waits. */
static sc_result poll_call(struct race *r, sc_token *tok, uint32_t rnd)
{
	struct pollfd p = { .fd = r->fds[0], .events = POLLIN };

	(void)rnd;
	return sc_poll(tok, &p, 1, -1);
}

static void poll_after_ok(struct race *r, sc_result res)
{
	ssize_t n = res.value == 1 ? read(r->fds[0], r->call_buf, sizeof(r->call_buf)) : -1;

	if (n <= 0)
		add(&r->t.errors, 1);
	else
		add(&r->t.bad_bytes, stream_check(&r->received, r->call_buf, (size_t)n));
}

/*
 * write: the pipe (one page) is kept nearly full; the canceller makes room
 * and checks what it reads.  A pipe frees room only a whole page at a time,
 * so most writes wait for a supply that empties it.
 */
static void write_setup(struct race *r)
{
	uint8_t b;

	make_pipe(r->fds);
	fcntl(r->fds[1], F_SETPIPE_SZ, 4096);
	set_nonblocking(r->fds[1], true);
	for (;;) {
		uint64_t pos = r->sent;
		stream_fill(&pos, &b, 1);
		if (write(r->fds[1], &b, 1) != 1)
			break;
		r->sent = pos;
	}
	set_nonblocking(r->fds[1], false);
	set_nonblocking(r->fds[0], true);
}

static sc_result write_call(struct race *r, sc_token *tok, uint32_t rnd)
{
	uint64_t pos = r->sent;
	size_t n = 1 + rnd % CHUNK_MAX;

	stream_fill(&pos, r->call_buf, n);
	return sc_write(tok, r->fds[1], r->call_buf, n);
}

static void write_after_ok(struct race *r, sc_result res)
{
	r->sent += (uint64_t)res.value;
}

/* Mostly some bytes, now and then all there is. */
static void write_supply(struct race *r, uint32_t rnd)
{
	size_t want = rnd % 8 ? 64 + rnd % (CHUNK_MAX - 64) : 1 << 16;
	ssize_t n;

	for (size_t got = 0; got < want; got += (size_t)n) {
		n = read(r->fds[0], r->supply_buf, want - got < CHUNK_MAX ? want - got : CHUNK_MAX);
		if (n <= 0)
			break;
		add(&r->t.bad_bytes, stream_check(&r->received, r->supply_buf, (size_t)n));
	}
}

static void write_finish(struct race *r)
{
	drain_checked(r, r->fds[0]);
	count_unequal(r, r->sent, r->received);
	close_pipe(r->fds);
}

/* accept: each supply is one connection, each one accepted exactly once. */
static void accept_setup(struct race *r)
{
	static int serial;

	r->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(r->lfd, 0);
	memset(&r->addr, 0, sizeof(r->addr));
	r->addr.sun_family = AF_UNIX;
	r->alen = offsetof(struct sockaddr_un, sun_path) + 1 +
		  snprintf(r->addr.sun_path + 1, sizeof(r->addr.sun_path) - 1,
			   "syscancel-torture-%d-%d", getpid(), ++serial);
	ck_assert_int_eq(bind(r->lfd, (struct sockaddr *)&r->addr, r->alen), 0);
	ck_assert_int_eq(listen(r->lfd, 4096), 0);
}

static sc_result accept_call(struct race *r, sc_token *tok, uint32_t rnd)
{
	(void)rnd;
	return sc_accept(tok, r->lfd, NULL, NULL, SOCK_CLOEXEC);
}

static void accept_after_ok(struct race *r, sc_result res)
{
	close((int)res.value);
	r->accepts++;
}

static void accept_supply(struct race *r, uint32_t rnd)
{
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	(void)rnd;
	ck_assert_int_ge(c, 0);
	if (!connect(c, (struct sockaddr *)&r->addr, r->alen))
		add(&r->connects, 1);
	close(c);
}

static void accept_finish(struct race *r)
{
	int fd;

	set_nonblocking(r->lfd, true);
	while ((fd = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(fd);
		r->accepts++;
	}
	count_unequal(r, (uint64_t)load(&r->connects), (uint64_t)r->accepts);
	close(r->lfd);
}

/* sleep: it always ends by itself; there is nothing to supply. */
static void no_setup(struct race *r)
{
	(void)r;
}

static sc_result sleep_call(struct race *r, sc_token *tok, uint32_t rnd)
{
	(void)r;
	return sc_sleep(tok, (rnd % 40) * 1000);
}

static void nothing_after_ok(struct race *r, sc_result res)
{
	(void)r, (void)res;
}

static void no_supply(struct race *r, uint32_t rnd)
{
	(void)r, (void)rnd;
}

static void no_finish(struct race *r)
{
	(void)r;
}

/* futex: a supply bumps the word and wakes; a wait on a stale value is EAGAIN. */
static sc_result futex_call(struct race *r, sc_token *tok, uint32_t rnd)
{
	sc_result res = sc_futex_wait(tok, &r->word, __atomic_load_n(&r->word, __ATOMIC_SEQ_CST));

	(void)rnd;
	if (res.status == SC_ERROR && res.error == EAGAIN)
		res = (sc_result){ SC_OK, 0, 0 };
	return res;
}

static void futex_supply(struct race *r, uint32_t rnd)
{
	(void)rnd;
	__atomic_add_fetch(&r->word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &r->word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

const struct kind torture_kinds[] = {
	{ "read", pipe_setup, read_call, read_after_ok, bytes_supply, stream_finish },
	{ "recv", socketpair_setup, recv_call, read_after_ok, bytes_supply, stream_finish },
	{ "poll", pipe_setup, poll_call, poll_after_ok, bytes_supply, stream_finish },
	{ "accept", accept_setup, accept_call, accept_after_ok, accept_supply, accept_finish },
	{ "write", write_setup, write_call, write_after_ok, write_supply, write_finish },
	{ "sleep", no_setup, sleep_call, nothing_after_ok, no_supply, no_finish },
	{ "futex", no_setup, futex_call, nothing_after_ok, futex_supply, no_finish },
};
const int torture_kind_count = ARRAY_SIZE(torture_kinds);
