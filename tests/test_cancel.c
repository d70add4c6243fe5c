/* Cancelling calls: I1 (no lost cancel), I2 (no lost result), I3 (no spurious cancel). */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

/*
 * Every call kind, each with a setup that makes the call block in the kernel.
 * One context holds whatever the kind needs; cleanup closes it all.
 */
struct call_ctx {
	int fd[3];		/* fd[0] is the one the call uses */
	pid_t pid;		/* a child to kill and reap */
	char dir[32];
	char path[64];
	uint32_t futex;
	char buf[64];
	struct iovec iov;
	struct msghdr msg;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct flock lock;
	struct epoll_event ev;
};

struct call_kind {
	const char *name;
	void (*setup)(struct call_ctx *x);
	sc_result (*call)(sc_token *tok, struct call_ctx *x);
};

static void ctx_init(struct call_ctx *x)
{
	memset(x, 0, sizeof(*x));
	x->fd[0] = x->fd[1] = x->fd[2] = -1;
	x->iov = (struct iovec){ x->buf, 1 };
	x->msg.msg_iov = &x->iov;
	x->msg.msg_iovlen = 1;
}

static void ctx_cleanup(struct call_ctx *x)
{
	for (int i = 0; i < 3; i++)
		if (x->fd[i] >= 0)
			close(x->fd[i]);
	if (x->pid > 0) {
		kill(x->pid, SIGKILL);
		waitpid(x->pid, NULL, 0);
	}
	if (x->path[0])
		unlink(x->path);
	if (x->dir[0])
		rmdir(x->dir);
}

static void make_temp_path(struct call_ctx *x, const char *name)
{
	strcpy(x->dir, "/tmp/sc-cancel-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(x->dir));
	snprintf(x->path, sizeof(x->path), "%s/%s", x->dir, name);
}

static void setup_none(struct call_ctx *x)
{
	(void)x;
}

static void setup_pipe(struct call_ctx *x)
{
	make_pipe(x->fd);
}

/* fd[0]: the write end of a pipe that is full. */
static void setup_full_pipe(struct call_ctx *x)
{
	int p[2];

	make_pipe(p);
	x->fd[0] = p[1];
	x->fd[1] = p[0];
	ck_assert_int_eq(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
	while (write(p[1], x->buf, sizeof(x->buf)) > 0)
		;
	while (write(p[1], x->buf, 1) > 0)
		;
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(fcntl(p[1], F_SETFL, 0), 0);
}

static void setup_socketpair(struct call_ctx *x, int type)
{
	ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, x->fd), 0);
}

static void setup_stream(struct call_ctx *x)
{
	setup_socketpair(x, SOCK_STREAM);
}

static void setup_dgram(struct call_ctx *x)
{
	setup_socketpair(x, SOCK_DGRAM);
}

/* fd[0]: a socket whose send buffer (or peer's queue) is full. */
static void fill_socket(struct call_ctx *x, int type)
{
	setup_socketpair(x, type);
	while (send(x->fd[0], x->buf, sizeof(x->buf), MSG_DONTWAIT) > 0)
		;
	while (send(x->fd[0], x->buf, 1, MSG_DONTWAIT) > 0)
		;
	ck_assert_int_eq(errno, EAGAIN);
}

static void setup_full_stream(struct call_ctx *x)
{
	fill_socket(x, SOCK_STREAM);
}

static void setup_full_dgram(struct call_ctx *x)
{
	fill_socket(x, SOCK_DGRAM);
}

static void setup_listener(struct call_ctx *x)
{
	x->fd[0] = make_listener(&x->addr, &x->alen, 64);
}

/*
 * fd[0]: an unconnected socket; addr: a listener (fd[1], backlog 0) whose
 * accept queue already holds a connection (fd[2]), so the kernel drops new
 * SYNs and connect() waits for a SYN-ACK that does not come.
 */
static void setup_backlog_full(struct call_ctx *x)
{
	struct pollfd pfd;

	x->fd[1] = make_listener(&x->addr, &x->alen, 0);
	x->fd[2] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(x->fd[2], 0);
	ck_assert_int_eq(connect(x->fd[2], (struct sockaddr *)&x->addr, x->alen), 0);
	pfd = (struct pollfd){ .fd = x->fd[1], .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);

	x->fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(x->fd[0], 0);
}

static void setup_epoll(struct call_ctx *x)
{
	make_pipe(&x->fd[1]);
	x->fd[0] = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_ge(x->fd[0], 0);
	x->ev = (struct epoll_event){ .events = EPOLLIN };
	ck_assert_int_eq(epoll_ctl(x->fd[0], EPOLL_CTL_ADD, x->fd[1], &x->ev), 0);
}

/* fork(); the child dies with us if the test fails, at once if we are gone already. */
static pid_t fork_tied(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
	}
	return pid;
}

/* A child that lives until killed. */
static void setup_child(struct call_ctx *x)
{
	x->pid = fork_tied();
	if (x->pid == 0) {
		pause();
		_exit(0);
	}
}

static void setup_fifo(struct call_ctx *x)
{
	make_temp_path(x, "fifo");
	ck_assert_int_eq(mkfifo(x->path, 0600), 0);
}

/* fd[0] and fd[1]: two open file descriptions of the same file. */
static void setup_two_opens(struct call_ctx *x)
{
	make_temp_path(x, "lock");
	x->fd[1] = open(x->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(x->fd[1], 0);
	x->fd[0] = open(x->path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(x->fd[0], 0);
	/* Locks belong to the open files: the name can go now, even if the test fails. */
	unlink(x->path);
	rmdir(x->dir);
	x->path[0] = x->dir[0] = 0;
	x->lock = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET };
}

static void setup_flocked(struct call_ctx *x)
{
	setup_two_opens(x);
	ck_assert_int_eq(flock(x->fd[1], LOCK_EX), 0);
}

static void setup_ofd_locked(struct call_ctx *x)
{
	setup_two_opens(x);
	ck_assert_int_eq(fcntl(x->fd[1], F_OFD_SETLK, &x->lock), 0);
}

/* A child process holds a POSIX record lock on the file until killed. */
static void setup_posix_locked(struct call_ctx *x)
{
	int p[2];
	char b;

	setup_two_opens(x);
	make_pipe(p);
	x->pid = fork_tied();
	if (x->pid == 0) {
		if (fcntl(x->fd[1], F_SETLK, &x->lock) == 0 && write(p[1], "L", 1) == 1)
			pause();
		_exit(1);
	}
	close(p[1]);
	ck_assert_int_eq(read(p[0], &b, 1), 1);
	close(p[0]);
}

static sc_result call_read(sc_token *tok, struct call_ctx *x)
{
	return sc_read(tok, x->fd[0], x->buf, 1);
}

static sc_result call_readv(sc_token *tok, struct call_ctx *x)
{
	return sc_readv(tok, x->fd[0], &x->iov, 1);
}

static sc_result call_write(sc_token *tok, struct call_ctx *x)
{
	return sc_write(tok, x->fd[0], x->buf, 1);
}

static sc_result call_writev(sc_token *tok, struct call_ctx *x)
{
	return sc_writev(tok, x->fd[0], &x->iov, 1);
}

static sc_result call_recv(sc_token *tok, struct call_ctx *x)
{
	return sc_recv(tok, x->fd[0], x->buf, 1, 0);
}

static sc_result call_recvfrom(sc_token *tok, struct call_ctx *x)
{
	x->alen = sizeof(x->addr);
	return sc_recvfrom(tok, x->fd[0], x->buf, 1, 0, (struct sockaddr *)&x->addr, &x->alen);
}

static sc_result call_recvmsg(sc_token *tok, struct call_ctx *x)
{
	return sc_recvmsg(tok, x->fd[0], &x->msg, 0);
}

static sc_result call_send(sc_token *tok, struct call_ctx *x)
{
	return sc_send(tok, x->fd[0], x->buf, 1, 0);
}

static sc_result call_sendto(sc_token *tok, struct call_ctx *x)
{
	return sc_sendto(tok, x->fd[0], x->buf, 1, 0, NULL, 0);
}

static sc_result call_sendmsg(sc_token *tok, struct call_ctx *x)
{
	return sc_sendmsg(tok, x->fd[0], &x->msg, 0);
}

static sc_result call_accept(sc_token *tok, struct call_ctx *x)
{
	return sc_accept(tok, x->fd[0], NULL, NULL, SOCK_CLOEXEC);
}

static sc_result call_connect(sc_token *tok, struct call_ctx *x)
{
	return sc_connect(tok, x->fd[0], (struct sockaddr *)&x->addr, x->alen);
}

static sc_result call_poll(sc_token *tok, struct call_ctx *x)
{
	struct pollfd pfd = { .fd = x->fd[0], .events = POLLIN };

	return sc_poll(tok, &pfd, 1, -1);
}

static sc_result call_epoll_wait(sc_token *tok, struct call_ctx *x)
{
	struct epoll_event ev;

	return sc_epoll_wait(tok, x->fd[0], &ev, 1, -1);
}

static sc_result call_sleep(sc_token *tok, struct call_ctx *x)
{
	(void)x;
	return sc_sleep(tok, 3600 * SEC_NS);
}

static sc_result call_waitpid(sc_token *tok, struct call_ctx *x)
{
	int st;

	return sc_waitpid(tok, x->pid, &st, 0);
}

static sc_result call_openat(sc_token *tok, struct call_ctx *x)
{
	return sc_openat(tok, AT_FDCWD, x->path, O_RDONLY | O_CLOEXEC, 0);
}

static sc_result call_flock(sc_token *tok, struct call_ctx *x)
{
	return sc_flock(tok, x->fd[0], LOCK_EX);
}

static sc_result call_ofd_setlkw(sc_token *tok, struct call_ctx *x)
{
	return sc_fcntl_lock(tok, x->fd[0], F_OFD_SETLKW, &x->lock);
}

static sc_result call_setlkw(sc_token *tok, struct call_ctx *x)
{
	return sc_fcntl_lock(tok, x->fd[0], F_SETLKW, &x->lock);
}

static sc_result call_futex_wait(sc_token *tok, struct call_ctx *x)
{
	return sc_futex_wait(tok, &x->futex, 0);
}

static sc_result call_syscall_read(sc_token *tok, struct call_ctx *x)
{
	return sc_syscall(tok, SYS_read, x->fd[0], (long)x->buf, 1, 0, 0, 0);
}

/* pread/pwrite are left out: on a pipe they fail with ESPIPE, on a file they never block. */
enum {
	K_READ, K_READV, K_WRITE, K_WRITEV, K_RECV, K_RECVFROM, K_RECVMSG, K_SEND,
	K_SENDTO, K_SENDMSG, K_ACCEPT, K_CONNECT, K_POLL, K_EPOLL_WAIT, K_SLEEP,
	K_WAITPID, K_OPENAT, K_FLOCK, K_OFD_SETLKW, K_SETLKW, K_FUTEX_WAIT, K_SYSCALL,
	K_COUNT
};

static const struct call_kind kinds[K_COUNT] = {
	[K_READ] = { "read", setup_pipe, call_read },
	[K_READV] = { "readv", setup_pipe, call_readv },
	[K_WRITE] = { "write", setup_full_pipe, call_write },
	[K_WRITEV] = { "writev", setup_full_pipe, call_writev },
	[K_RECV] = { "recv", setup_stream, call_recv },
	[K_RECVFROM] = { "recvfrom", setup_dgram, call_recvfrom },
	[K_RECVMSG] = { "recvmsg", setup_stream, call_recvmsg },
	[K_SEND] = { "send", setup_full_stream, call_send },
	[K_SENDTO] = { "sendto", setup_full_dgram, call_sendto },
	[K_SENDMSG] = { "sendmsg", setup_full_dgram, call_sendmsg },
	[K_ACCEPT] = { "accept", setup_listener, call_accept },
	[K_CONNECT] = { "connect", setup_backlog_full, call_connect },
	[K_POLL] = { "poll", setup_pipe, call_poll },
	[K_EPOLL_WAIT] = { "epoll_wait", setup_epoll, call_epoll_wait },
	[K_SLEEP] = { "sleep", setup_none, call_sleep },
	[K_WAITPID] = { "waitpid", setup_child, call_waitpid },
	[K_OPENAT] = { "openat", setup_fifo, call_openat },
	[K_FLOCK] = { "flock", setup_flocked, call_flock },
	[K_OFD_SETLKW] = { "fcntl_lock F_OFD_SETLKW", setup_ofd_locked, call_ofd_setlkw },
	[K_SETLKW] = { "fcntl_lock F_SETLKW", setup_posix_locked, call_setlkw },
	[K_FUTEX_WAIT] = { "futex_wait", setup_none, call_futex_wait },
	[K_SYSCALL] = { "syscall(SYS_read)", setup_pipe, call_syscall_read },
};

/* A blocked call of one kind, run in its own thread. */
struct kind_call {
	struct bg_call bg;
	const struct call_kind *kind;
	struct call_ctx ctx;
};

static sc_result run_kind(struct bg_call *c)
{
	struct kind_call *k = c->arg;

	return k->kind->call(c->tok, &k->ctx);
}

static void kind_call_start_blocked(struct kind_call *k, int kind, sc_token *tok)
{
	k->kind = &kinds[kind];
	ctx_init(&k->ctx);
	k->kind->setup(&k->ctx);
	k->bg = (struct bg_call){ .fn = run_kind, .tok = tok, .arg = k };
	bg_start_blocked(&k->bg);
}

static void kind_call_assert_cancelled(struct kind_call *k, int64_t cancelled_ns)
{
	sc_result r = bg_join(&k->bg);

	ck_assert_msg(r.status == SC_CANCELLED && r.error == ECANCELED,
		      "%s: status %d error %d value %ld, expected SC_CANCELLED",
		      k->kind->name, r.status, r.error, r.value);
	ck_assert_msg(k->bg.returned_ns - cancelled_ns < PROMPT_NS,
		      "%s returned %lld ns after the cancel", k->kind->name,
		      (long long)(k->bg.returned_ns - cancelled_ns));
}

START_TEST(each_call_kind_blocked_in_kernel_is_cancelled)
{
	struct kind_call k;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	kind_call_start_blocked(&k, _i, &t);

	int64_t t0 = sc_now_ns();

	ck_assert_int_eq(sc_cancel(&t), 0);
	kind_call_assert_cancelled(&k, t0);
	ctx_cleanup(&k.ctx);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

/*
 * The deadline is set while the call waits.  Through io_uring the owner
 * submits the request again when a deadline comes: a TCP connect, already
 * on its way, must not then fail with EALREADY.
 */
START_TEST(each_call_kind_blocked_in_kernel_times_out_at_a_deadline_set_meanwhile)
{
	struct kind_call k;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	kind_call_start_blocked(&k, _i, &t);
	int64_t deadline = sc_now_ns() + 100 * MS_NS;

	ck_assert_int_eq(sc_token_set_deadline(&t, deadline), 0);
	sc_result r = bg_join(&k.bg);
	assert_status(r, SC_TIMEDOUT, "%s", k.kind->name);
	ck_assert_int_ge(k.bg.returned_ns, deadline);
	ctx_cleanup(&k.ctx);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

#define NTHREADS 64
#define NCHILDREN 8

START_TEST(one_cancel_of_root_releases_64_threads_in_mixed_calls)
{
	static const int mixed[] = { K_READ, K_ACCEPT, K_RECV, K_POLL, K_SLEEP };
	static struct kind_call calls[NTHREADS];
	sc_token root, child[NCHILDREN];

	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	for (int i = 0; i < NCHILDREN; i++)
		ck_assert_int_eq(sc_token_init(&child[i], &root), 0);
	for (int i = 0; i < NTHREADS; i++)
		kind_call_start_blocked(&calls[i], mixed[i % 5], &child[i % NCHILDREN]);

	int64_t t0 = sc_now_ns();

	ck_assert_int_eq(sc_cancel(&root), 0);
	for (int i = 0; i < NTHREADS; i++)
		kind_call_assert_cancelled(&calls[i], t0);
	ck_assert_int_lt(sc_now_ns() - t0, PROMPT_NS);

	for (int i = 0; i < NTHREADS; i++)
		ctx_cleanup(&calls[i].ctx);
	for (int i = 0; i < NCHILDREN; i++)
		ck_assert_int_eq(sc_token_destroy(&child[i]), 0);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
}
END_TEST

/* The first read is cancelled; the same thread then blocks again under a live token. */
struct read_twice {
	sc_token live;
	sc_result first;
	int64_t first_ns;
	long first_done;
};

static sc_result read_cancelled_then_read_live(struct bg_call *c)
{
	struct read_twice *rt = c->arg;

	rt->first = bg_read(c);
	rt->first_ns = sc_now_ns();
	store(&rt->first_done, 1);
	return sc_read(&rt->live, c->fd, c->buf, sizeof(c->buf));
}

START_TEST(read_blocked_on_empty_pipe_is_cancelled_and_thread_lives_on)
{
	struct read_twice rt = { 0 };
	sc_token t;
	struct bg_call c = { .fn = read_cancelled_then_read_live, .tok = &t, .arg = &rt };

	bg_pipe(&c);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_init(&rt.live, NULL), 0);
	bg_start_blocked(&c);
	int64_t t0 = sc_now_ns();

	ck_assert_int_eq(sc_cancel(&t), 0);
	wait_at_least(&rt.first_done, 1, "the cancelled read returns");
	assert_cancelled(rt.first);
	ck_assert_int_lt(rt.first_ns - t0, PROMPT_NS);

	/* No leftover of the cancel may hit the next call of the same thread. */
	ck_assert_msg(bg_wait_blocked(&c), "the read after the cancelled one returned: "
		      "status %d error %d", c.res.status, c.res.error);
	ck_assert_int_eq(write(c.peer, "y", 1), 1);
	assert_ok(bg_join(&c), 1);

	ck_assert_int_eq(sc_token_destroy(&rt.live), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
}
END_TEST

START_TEST(cancel_before_call_returns_cancelled_without_consuming_data)
{
	sc_token t;
	int p[2];
	char b;

	make_pipe_with_byte(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cancel(&t), 0);

	int64_t t0 = sc_now_ns();

	assert_cancelled(sc_read(&t, p[0], &b, 1));
	ck_assert_int_lt(sc_now_ns() - t0, PROMPT_NS);
	assert_byte_still_readable(p[0]);

	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(deadline_returns_timedout_not_before_the_deadline)
{
	sc_token t;
	int p[2];
	char b;

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 200 * MS_NS), 0);
	int64_t deadline = sc_token_deadline(&t);

	sc_result r = sc_read(&t, p[0], &b, 1);
	int64_t now = sc_now_ns();

	assert_status(r, SC_TIMEDOUT, "read under a deadline");
	ck_assert_int_ge(now, deadline);
	ck_assert_int_lt(now - deadline, PROMPT_NS);
	ck_assert(!sc_is_cancelled(&t));

	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

static void assert_timed_out_after(struct bg_call *c, int64_t deadline)
{
	assert_status(bg_join(c), SC_TIMEDOUT, "read blocked when the deadline was set");
	ck_assert_int_ge(c->returned_ns, deadline);
	ck_assert_int_lt(c->returned_ns - deadline, PROMPT_NS);
}

START_TEST(deadline_set_while_call_blocks_still_fires)
{
	struct bg_call c;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	bg_read_blocked(&c, &t);
	int64_t deadline = sc_now_ns() + 100 * MS_NS;

	ck_assert_int_eq(sc_token_set_deadline(&t, deadline), 0);
	assert_timed_out_after(&c, deadline);

	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
}
END_TEST

START_TEST(earlier_deadline_on_root_fires_for_blocked_grandchild_call)
{
	struct token_chain ch;
	struct bg_call c;

	chain_init(&ch);
	ck_assert_int_eq(sc_token_set_timeout(&ch.leaf, 3600 * SEC_NS), 0);
	bg_read_blocked(&c, &ch.leaf);
	int64_t deadline = sc_now_ns() + 100 * MS_NS;

	ck_assert_int_eq(sc_token_set_deadline(&ch.root, deadline), 0);
	assert_timed_out_after(&c, deadline);

	chain_destroy(&ch);
	bg_close_pipe(&c);
}
END_TEST

START_TEST(grandchild_call_is_cancelled_through_its_root)
{
	struct token_chain ch;
	struct bg_call c;

	chain_init(&ch);
	bg_read_blocked(&c, &ch.leaf);
	int64_t t0 = sc_now_ns();

	ck_assert_int_eq(sc_cancel(&ch.root), 0);
	assert_cancelled(bg_join(&c));
	ck_assert_int_lt(c.returned_ns - t0, PROMPT_NS);

	chain_destroy(&ch);
	bg_close_pipe(&c);
}
END_TEST

START_TEST(completed_call_is_ok_with_its_value)
{
	sc_token t;
	int p[2];
	char buf[16];

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_ok(sc_write(&t, p[1], "abc", 3), 3);
	assert_ok(sc_read(&t, p[0], buf, sizeof(buf)), 3);
	ck_assert_mem_eq(buf, "abc", 3);

	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(blocked_read_woken_by_data_is_ok_with_its_value)
{
	struct bg_call c;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	bg_read_blocked(&c, &t);
	ck_assert_int_eq(write(c.peer, "z", 1), 1);
	assert_ok(bg_join(&c), 1);
	/* A cancel after the call completed changes nothing. */
	ck_assert_int_eq(sc_cancel(&t), 0);
	ck_assert_int_eq(c.res.status, SC_OK);

	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
}
END_TEST

START_TEST(null_token_call_still_returns_structured_result)
{
	int p[2];
	char b = 0;

	make_pipe(p);
	ck_assert_int_eq(write(p[1], "n", 1), 1);
	assert_ok(sc_read(NULL, p[0], &b, 1), 1);
	ck_assert_int_eq(b, 'n');

	assert_error(sc_read(NULL, p[1], &b, 1), EBADF);	/* the write end */
	ck_assert_int_eq(sc_sleep(NULL, MS_NS).status, SC_OK);
	close_pipe(p);
}
END_TEST

START_TEST(sleep_without_cancel_returns_ok_after_its_duration)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 3600 * SEC_NS), 0);
	int64_t t0 = sc_now_ns();

	assert_ok(sc_sleep(&t, 20 * MS_NS), 0);
	ck_assert_int_ge(sc_now_ns() - t0, 20 * MS_NS);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(poll_timeout_is_ok_zero_not_timedout)
{
	sc_token t;
	int p[2];
	struct pollfd pfd;

	make_pipe(p);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 3600 * SEC_NS), 0);
	int64_t t0 = sc_now_ns();

	assert_ok(sc_poll(&t, &pfd, 1, 50), 0);
	ck_assert_int_ge(sc_now_ns() - t0, 49 * MS_NS);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(cancelling_sibling_never_cancels_call_under_live_token)
{
	sc_token root, a, b;
	struct bg_call ca, cb;

	ck_assert_int_eq(sc_token_init(&root, NULL), 0);
	ck_assert_int_eq(sc_token_init(&a, &root), 0);
	ck_assert_int_eq(sc_token_init(&b, &root), 0);
	bg_read_blocked(&ca, &a);
	bg_read_blocked(&cb, &b);
	ck_assert_int_eq(sc_cancel(&a), 0);
	assert_cancelled(bg_join(&ca));

	/* b's call is still waiting, and completes with the data it was waiting for. */
	ck_assert(!bg_done(&cb));
	ck_assert(!sc_is_cancelled(&b));
	ck_assert_int_eq(write(cb.peer, "b", 1), 1);
	assert_ok(bg_join(&cb), 1);

	ck_assert_int_eq(sc_token_destroy(&a), 0);
	ck_assert_int_eq(sc_token_destroy(&b), 0);
	ck_assert_int_eq(sc_token_destroy(&root), 0);
	bg_close_pipe(&ca);
	bg_close_pipe(&cb);
}
END_TEST

/*
 * A listening unix socket with a backlog of 0 and a connection queued, held
 * by *queued: a blocking connect to it waits.
 */
static int make_full_unix_listener(struct sockaddr_un *addr, socklen_t *alen, int *queued)
{
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(lfd, 0);
	*addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)addr, sizeof(sa_family_t)), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	*alen = sizeof(*addr);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)addr, alen), 0);
	*queued = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(*queued, (struct sockaddr *)addr, *alen), 0);
	ck_assert_int_eq(connect(probe, (struct sockaddr *)addr, *alen), -1);
	ck_assert_int_eq(errno, EAGAIN);
	close(probe);
	return lfd;
}

struct unix_connect {
	struct sockaddr_un addr;
	socklen_t alen;
};

static sc_result bg_unix_connect(struct bg_call *c)
{
	struct unix_connect *u = c->arg;

	return sc_connect(c->tok, c->fd, (struct sockaddr *)&u->addr, u->alen);
}

/*
 * The deadline is lowered at moments spread over the connect's start, from
 * before its submission to after it waits in the kernel.  Through io_uring a
 * timeout that fired while the request was still on its way to io-wq used
 * to be lost, and the connect waited forever.
 */
START_TEST(a_connect_times_out_at_a_deadline_lowered_while_it_starts)
{
	struct unix_connect u;
	int queued, lfd = make_full_unix_listener(&u.addr, &u.alen, &queued);

	for (int round = 0; round < 60; round++) {
		struct bg_call c = { .fn = bg_unix_connect, .arg = &u };
		sc_token t;

		ck_assert_int_eq(sc_token_init(&t, NULL), 0);
		c.tok = &t;
		c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(c.fd, 0);
		bg_start(&c);
		spin_ns(round % 15 * 20000);
		ck_assert_int_eq(sc_token_set_deadline(&t, sc_now_ns() + round % 4 * 50000), 0);
		assert_status(bg_join(&c), SC_TIMEDOUT, "connect in round %d", round);
		close(c.fd);
		ck_assert_int_eq(sc_token_destroy(&t), 0);
	}
	close(queued);
	close(lfd);
}
END_TEST

/*
 * With the real-time signal queue full the cancel signal cannot be queued;
 * the thread's deadline timer, whose queue entry was reserved when it was
 * made, must deliver the cancel instead.
 */
START_TEST(cancel_gets_through_when_the_signal_queue_is_full)
{
	struct rlimit none, saved;
	struct bg_call c;
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	bg_read_blocked(&c, &t);
	ck_assert_int_eq(getrlimit(RLIMIT_SIGPENDING, &saved), 0);
	none = (struct rlimit){ 0, saved.rlim_max };
	ck_assert_int_eq(setrlimit(RLIMIT_SIGPENDING, &none), 0);
	int queued = sigqueue(getpid(), SIGRTMIN, (union sigval){ 0 });
	int queue_err = errno;
	ck_assert_int_eq(sc_cancel(&t), 0);
	sc_result r = bg_join(&c);
	ck_assert_int_eq(setrlimit(RLIMIT_SIGPENDING, &saved), 0);

	ck_assert_int_eq(queued, -1);
	ck_assert_int_eq(queue_err, EAGAIN);
	assert_cancelled(r);

	ck_assert_int_eq(sc_token_destroy(&t), 0);
	bg_close_pipe(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cancel");
	TCase *tc = add_tcase(s, "cancel", 30, init_library);
	TCase *kinds_tc = add_tcase(s, "call kinds", 30, init_library);
	/* No early init here: the workers' first calls also set the library up. */
	TCase *many = add_tcase(s, "many threads", 60, NULL);

	tcase_add_test(tc, read_blocked_on_empty_pipe_is_cancelled_and_thread_lives_on);
	tcase_add_test(tc, cancel_before_call_returns_cancelled_without_consuming_data);
	tcase_add_test(tc, deadline_returns_timedout_not_before_the_deadline);
	tcase_add_test(tc, deadline_set_while_call_blocks_still_fires);
	tcase_add_test(tc, earlier_deadline_on_root_fires_for_blocked_grandchild_call);
	tcase_add_test(tc, grandchild_call_is_cancelled_through_its_root);
	tcase_add_test(tc, completed_call_is_ok_with_its_value);
	tcase_add_test(tc, blocked_read_woken_by_data_is_ok_with_its_value);
	tcase_add_test(tc, null_token_call_still_returns_structured_result);
	tcase_add_test(tc, sleep_without_cancel_returns_ok_after_its_duration);
	tcase_add_test(tc, poll_timeout_is_ok_zero_not_timedout);
	tcase_add_test(tc, cancelling_sibling_never_cancels_call_under_live_token);
	tcase_add_test(tc, cancel_gets_through_when_the_signal_queue_is_full);
	tcase_add_test(tc, a_connect_times_out_at_a_deadline_lowered_while_it_starts);
	/*
	 * valgrind 3.19 runs F_OFD_SETLKW as a call that never blocks: waiting
	 * in it, the thread keeps valgrind's lock and the whole process stops.
	 */
	if (under_valgrind()) {
		tcase_add_loop_test(kinds_tc, each_call_kind_blocked_in_kernel_is_cancelled,
				    0, K_OFD_SETLKW);
		tcase_add_loop_test(kinds_tc, each_call_kind_blocked_in_kernel_is_cancelled,
				    K_OFD_SETLKW + 1, K_COUNT);
		tcase_add_loop_test(kinds_tc,
				    each_call_kind_blocked_in_kernel_times_out_at_a_deadline_set_meanwhile,
				    0, K_OFD_SETLKW);
		tcase_add_loop_test(kinds_tc,
				    each_call_kind_blocked_in_kernel_times_out_at_a_deadline_set_meanwhile,
				    K_OFD_SETLKW + 1, K_COUNT);
	} else {
		tcase_add_loop_test(kinds_tc, each_call_kind_blocked_in_kernel_is_cancelled,
				    0, K_COUNT);
		tcase_add_loop_test(kinds_tc,
				    each_call_kind_blocked_in_kernel_times_out_at_a_deadline_set_meanwhile,
				    0, K_COUNT);
	}
	if (!skipped_under_emulator("one_cancel_of_root_releases_64_threads_in_mixed_calls",
				    QEMU_TIMERS))
		tcase_add_test(many, one_cancel_of_root_releases_64_threads_in_mixed_calls);
	return run_suite(s, CK_FORK_GETENV);
}
