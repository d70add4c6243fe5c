/* Scopes: code that knows nothing of syscancel has its blocking syscalls cancelled. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

/* Everything up to the argument checks needs the x86_64 entry: see scopes_work_here(). */
#if defined(__x86_64__)

/* What a plain libc call returned, errno with it, and when it ran. */
struct plain {
	long ret;
	int err;
	int64_t start_ns, end_ns;
};

/* Evaluate a libc call, keeping errno before anything else can change it. */
#define PLAIN(call) ({ \
	int64_t start_ = sc_now_ns(); \
	long ret_ = (call); \
	int err_ = errno; \
	(struct plain){ ret_, ret_ < 0 ? err_ : 0, start_, sc_now_ns() }; \
})

static void assert_plain_error(struct plain p, int err, const char *what)
{
	ck_assert_msg(p.ret == -1 && p.err == err,
		      "%s: expected -1 errno %d (%s), got %ld errno %d (%s)", what, err,
		      strerror(err), p.ret, p.err, strerror(p.err));
}

static void assert_plain_value(struct plain p, long value, const char *what)
{
	ck_assert_msg(p.ret == value, "%s: expected %ld, got %ld errno %d (%s)", what, value,
		      p.ret, p.err, strerror(p.err));
}

/*
 * A thread that opens a scope of bg.tok, runs body in it, leaves it, then
 * blocks in a plain read of after_rd: whoever writes a byte to after_wr sees
 * the thread alive and its reads outside the scope normal again.
 */
struct scoped {
	struct bg_call bg;
	void (*body)(struct scoped *s);
	void (*after_exit)(struct scoped *s);	/* optional, outside the scope */
	void *arg;
	int enter_err, exit_err;
	long entered, exited;
	long go;		/* main's go-ahead, for bodies that wait for one */
	long ready;		/* the body is about to make its call under test */
	long first_done, second_done, third_done;
	long second_ready;	/* the body is about to make its second call */
	struct plain first, second, third;
	sc_result res;		/* for bodies making an sc_* call */
	const int *reuse;	/* a pipe to read after the scope, instead of one of its own */
	int after_rd, after_wr;
	char after_byte;
	struct plain after;
};

static sc_result scoped_main(struct bg_call *c)
{
	struct scoped *s = c->arg;

	s->enter_err = sc_scope_enter(c->tok);
	store(&s->entered, 1);
	if (s->enter_err)
		return (sc_result){ .status = SC_ERROR, .error = s->enter_err };
	s->body(s);
	s->exit_err = sc_scope_exit();
	if (s->after_exit)
		s->after_exit(s);
	store(&s->exited, 1);
	s->after = PLAIN(read(s->after_rd, &s->after_byte, 1));
	return (sc_result){ .status = SC_OK };
}

static void wait_go(struct scoped *s)
{
	while (!load(&s->go))
		sched_yield();
}

static void record_first(struct scoped *s, struct plain p)
{
	s->first = p;
	store(&s->first_done, 1);
}

static void record_second(struct scoped *s, struct plain p)
{
	s->second = p;
	store(&s->second_done, 1);
}

/*
 * Start a thread as described by how (bg.tok, body, arg, and reuse or
 * after_exit if wanted) and wait until it is in its scope.
 */
static void scoped_start(struct scoped *s, const struct scoped *how)
{
	*s = *how;
	s->bg.fn = scoped_main;
	s->bg.arg = s;
	if (s->reuse) {
		s->after_rd = s->reuse[0];
		s->after_wr = s->reuse[1];
	} else {
		int p[2];

		make_pipe(p);
		s->after_rd = p[0];
		s->after_wr = p[1];
	}
	bg_start(&s->bg);
	wait_at_least(&s->entered, 1, "thread %d enters its scope", s->bg.tid);
	ck_assert_msg(s->enter_err == 0, "sc_scope_enter: %s", strerror(s->enter_err));
}

/*
 * Wait until the body, having set *ready, blocks in the kernel in its call;
 * fail if the call returned (set *done) instead.
 */
static void scoped_wait_blocked(struct scoped *s, const long *ready, const long *done)
{
	wait_at_least(ready, 1, "thread %d reaches its call", s->bg.tid);
	ck_assert(bg_wait_blocked(&s->bg));
	ck_assert_msg(!load(done), "thread %d's call returned instead of blocking", s->bg.tid);
}

static void scoped_start_blocked(struct scoped *s, const struct scoped *how)
{
	scoped_start(s, how);
	scoped_wait_blocked(s, &s->ready, &s->first_done);
}

/*
 * The thread left its scope and blocks in its read after it; a byte written
 * now is what that read returns, and the thread finishes.
 */
static void scoped_finish(struct scoped *s)
{
	wait_at_least(&s->exited, 1, "thread %d leaves its scope", s->bg.tid);
	ck_assert_msg(s->exit_err == 0, "sc_scope_exit: %s", strerror(s->exit_err));
	ck_assert_msg(bg_wait_blocked(&s->bg), "the read after the scope did not block: "
		      "%ld errno %d (%s)", s->after.ret, s->after.err, strerror(s->after.err));
	ck_assert_int_eq(write(s->after_wr, "a", 1), 1);
	bg_join(&s->bg);
	assert_plain_value(s->after, 1, "read after the scope");
	ck_assert_int_eq(s->after_byte, 'a');
	if (!s->reuse) {
		close(s->after_rd);
		close(s->after_wr);
	}
}

static struct plain read_one(int fd)
{
	char b;

	return PLAIN(read(fd, &b, 1));
}

/*
 * Body: one plain read of the pipe whose read end is *arg, an int (the first
 * member of the bodies' own structs).
 */
static void read_pipe(struct scoped *s)
{
	store(&s->ready, 1);
	record_first(s, read_one(*(int *)s->arg));
}

/* Body: one plain read of the pipe whose read end is *arg, after main's go-ahead. */
static void read_pipe_after_go(struct scoped *s)
{
	wait_go(s);
	read_pipe(s);
}

/* Body: two plain reads of the pipe whose read end is *arg, then a 60 s nanosleep. */
static void read_pipe_twice_then_sleep(struct scoped *s)
{
	read_pipe(s);
	record_second(s, read_one(*(int *)s->arg));
	s->third = PLAIN(nanosleep(&(struct timespec){ 60, 0 }, NULL));
	store(&s->third_done, 1);
}

/*
 * The call kinds a scope ends.  One context holds whatever a kind needs;
 * cleanup closes it all.
 */
struct call_ctx {
	int fd[3];		/* fd[0] is the one the call uses */
	pid_t pid;		/* a child to kill and reap */
	struct sockaddr_storage addr;
	socklen_t alen;
	char buf[16];
};

struct plain_kind {
	const char *name;
	void (*setup)(struct call_ctx *x);
	long (*call)(struct call_ctx *x);
	bool reads_fd0;		/* fd[1] writes what the call reads from fd[0] */
};

static void ctx_init(struct call_ctx *x)
{
	memset(x, 0, sizeof(*x));
	x->fd[0] = x->fd[1] = x->fd[2] = -1;
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
}

static void setup_none(struct call_ctx *x)
{
	(void)x;
}

static void setup_pipe(struct call_ctx *x)
{
	make_pipe(x->fd);
}

static void setup_socketpair(struct call_ctx *x)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->fd), 0);
}

static void setup_listener(struct call_ctx *x)
{
	x->fd[0] = make_listener(&x->addr, &x->alen, 8);
}

/*
 * fd[0]: an unconnected socket; addr: a listener (fd[1], backlog 0) whose
 * accept queue already holds a non-blocking connect's connection (fd[2]), so
 * the kernel drops new SYNs and a connect waits for a SYN-ACK that never comes.
 */
static void setup_full_backlog(struct call_ctx *x)
{
	struct pollfd pfd;

	x->fd[1] = make_listener(&x->addr, &x->alen, 0);
	x->fd[2] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(x->fd[2], 0);
	ck_assert(connect(x->fd[2], (struct sockaddr *)&x->addr, x->alen) == 0 ||
		  errno == EINPROGRESS);
	pfd = (struct pollfd){ .fd = x->fd[1], .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	x->fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(x->fd[0], 0);
}

/* A child that lives until killed, dying with us if the test fails. */
static void setup_child(struct call_ctx *x)
{
	pid_t parent = getpid();

	x->pid = fork();
	ck_assert_int_ge(x->pid, 0);
	if (x->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == parent)
			pause();
		_exit(0);
	}
}

/* fd[0] and fd[1]: two open file descriptions of one file; fd[1] holds its flock. */
static void setup_file_locked_elsewhere(struct call_ctx *x)
{
	char path[] = "/tmp/sc-scopes-XXXXXX";

	x->fd[1] = mkostemp(path, O_CLOEXEC);
	ck_assert_int_ge(x->fd[1], 0);
	x->fd[0] = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(x->fd[0], 0);
	unlink(path);
	ck_assert_int_eq(flock(x->fd[1], LOCK_EX | LOCK_NB), 0);
}

static long call_read(struct call_ctx *x)
{
	return read(x->fd[0], x->buf, sizeof(x->buf));
}

static long call_recv(struct call_ctx *x)
{
	return recv(x->fd[0], x->buf, sizeof(x->buf), 0);
}

static long call_accept(struct call_ctx *x)
{
	return accept(x->fd[0], NULL, NULL);
}

static long call_connect(struct call_ctx *x)
{
	return connect(x->fd[0], (struct sockaddr *)&x->addr, x->alen);
}

static long call_poll(struct call_ctx *x)
{
	struct pollfd pfd = { .fd = x->fd[0], .events = POLLIN };

	return poll(&pfd, 1, -1);
}

static long call_select(struct call_ctx *x)
{
	fd_set set;

	FD_ZERO(&set);
	FD_SET(x->fd[0], &set);
	return select(x->fd[0] + 1, &set, NULL, NULL, NULL);
}

static long call_nanosleep(struct call_ctx *x)
{
	(void)x;
	return nanosleep(&(struct timespec){ 60, 0 }, NULL);
}

static long call_waitpid(struct call_ctx *x)
{
	int st;

	return waitpid(x->pid, &st, 0);
}

/* SIGUSR2 is blocked in the calling thread and nobody sends it. */
static long call_sigtimedwait(struct call_ctx *x)
{
	sigset_t set;

	(void)x;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return sigtimedwait(&set, NULL, &(struct timespec){ 3600, 0 });
}

static long call_flock(struct call_ctx *x)
{
	return flock(x->fd[0], LOCK_EX);
}

#define KIND(n, ...) \
	static const struct plain_kind k_##n = { .name = #n, .call = call_##n, __VA_ARGS__ }
KIND(read, .setup = setup_pipe, .reads_fd0 = true);
KIND(recv, .setup = setup_socketpair, .reads_fd0 = true);
KIND(accept, .setup = setup_listener);
KIND(connect, .setup = setup_full_backlog);
KIND(poll, .setup = setup_pipe);
KIND(select, .setup = setup_pipe);
KIND(nanosleep, .setup = setup_none);
KIND(waitpid, .setup = setup_child);
KIND(sigtimedwait, .setup = setup_none);
KIND(flock, .setup = setup_file_locked_elsewhere);

struct kind_run {
	const struct plain_kind *kind;
	struct call_ctx ctx;
};

static void run_kind(struct scoped *s)
{
	struct kind_run *k = s->arg;

	store(&s->ready, 1);
	record_first(s, PLAIN(k->kind->call(&k->ctx)));
}

/*
 * The kind's call blocks in a scope; cancelling the scope's token makes it
 * fail promptly with ECANCELED, and the thread lives on.  A call that reads
 * fd[0] then reads, after the scope, the byte written to fd[1]: the cancelled
 * call took nothing.
 */
static void assert_cancelled_in_scope(const struct plain_kind *kind)
{
	struct kind_run k = { .kind = kind };
	struct scoped s;
	sc_token t;

	ctx_init(&k.ctx);
	kind->setup(&k.ctx);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = run_kind, .arg = &k,
						   .reuse = kind->reads_fd0 ? k.ctx.fd : NULL });
	int64_t t0 = sc_now_ns();

	ck_assert_int_eq(sc_cancel(&t), 0);
	wait_at_least(&s.first_done, 1, "%s returns after the cancel", kind->name);
	assert_plain_error(s.first, ECANCELED, kind->name);
	ck_assert_int_lt(s.first.end_ns - t0, PROMPT_NS);
	scoped_finish(&s);
	ctx_cleanup(&k.ctx);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}

START_TEST(a_read_of_an_empty_pipe_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_read);
}
END_TEST

START_TEST(recv_on_a_socketpair_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_recv);
}
END_TEST

START_TEST(accept_on_a_loopback_listener_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_accept);
}
END_TEST

START_TEST(connect_to_a_listener_with_a_full_backlog_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_connect);
}
END_TEST

START_TEST(poll_without_timeout_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_poll);
}
END_TEST

START_TEST(select_without_timeout_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_select);
}
END_TEST

START_TEST(a_60_s_nanosleep_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_nanosleep);
}
END_TEST

START_TEST(waitpid_for_a_sleeping_child_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_waitpid);
}
END_TEST

START_TEST(sigtimedwait_for_a_blocked_unused_signal_in_a_scope_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_sigtimedwait);
}
END_TEST

START_TEST(flock_of_a_file_locked_through_another_description_fails_with_ecanceled)
{
	assert_cancelled_in_scope(&k_flock);
}
END_TEST

#define COMPLETED_ROUNDS 20

/* Body: one plain read of up to sizeof(buf) bytes from fd into buf. */
struct big_read {
	int fd;
	char buf[256];
};

static void read_big(struct scoped *s)
{
	struct big_read *b = s->arg;

	store(&s->ready, 1);
	record_first(s, PLAIN(read(b->fd, b->buf, sizeof(b->buf))));
}

/*
 * The read already woke with the data when the cancel comes: it completed,
 * and returns every byte written, as written.
 */
START_TEST(a_read_that_completed_before_the_cancel_keeps_its_bytes)
{
	for (int round = 0; round < COMPLETED_ROUNDS; round++) {
		struct big_read b;
		struct scoped s;
		char data[200];
		int p[2];
		sc_token t;
		int n = 1 + round * 199 / (COMPLETED_ROUNDS - 1);

		for (int i = 0; i < n; i++)
			data[i] = (char)(round * 31 + i * 7 + 1);
		make_pipe(p);
		b.fd = p[0];
		ck_assert_int_eq(sc_token_init(&t, NULL), 0);
		scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = read_big,
							   .arg = &b });
		ck_assert_int_eq(write(p[1], data, n), n);
		ck_assert_int_eq(sc_cancel(&t), 0);
		wait_at_least(&s.first_done, 1, "the read in round %d returns", round);
		assert_plain_value(s.first, n, "read woken by data before the cancel");
		ck_assert_mem_eq(b.buf, data, n);
		scoped_finish(&s);
		ck_assert_int_eq(sc_token_destroy(&t), 0);
		close_pipe(p);
	}
}
END_TEST

#define RACE_ROUNDS 200
#define RACE_STEP_NS 2000

/*
 * The data comes at moments spread around the cancel's signal: the read
 * either completed, with every byte as written, or failed with ECANCELED
 * and left every byte in the pipe.
 */
START_TEST(a_read_racing_a_cancel_returns_its_bytes_or_leaves_them_in_the_pipe)
{
	static const char data[] = "racing bytes";
	const int n = sizeof(data) - 1;

	for (int round = 0; round < RACE_ROUNDS; round++) {
		struct big_read b;
		struct scoped s;
		char left[sizeof(data)];
		int p[2];
		sc_token t;

		make_pipe(p);
		b.fd = p[0];
		ck_assert_int_eq(sc_token_init(&t, NULL), 0);
		scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = read_big,
							   .arg = &b });
		ck_assert_int_eq(sc_cancel(&t), 0);
		spin_ns(round % 100 * RACE_STEP_NS);
		ck_assert_int_eq(write(p[1], data, n), n);
		wait_at_least(&s.first_done, 1, "the read in round %d returns", round);
		if (s.first.ret == n) {
			ck_assert_mem_eq(b.buf, data, n);
		} else {
			assert_plain_error(s.first, ECANCELED, "read racing a cancel");
			ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
			ck_assert_msg(read(p[0], left, sizeof(left)) == n && !memcmp(left, data, n),
				      "round %d: the cancelled read took bytes", round);
		}
		scoped_finish(&s);
		ck_assert_int_eq(sc_token_destroy(&t), 0);
		close_pipe(p);
	}
}
END_TEST

/*
 * Library retry loops must end: after the first ECANCELED the next blocking
 * read fails too, promptly, and so does a 60 s nanosleep after it.
 */
START_TEST(a_cancelled_scope_fails_every_later_blocking_call_promptly)
{
	struct scoped s;
	sc_token t;
	int p[2];

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = read_pipe_twice_then_sleep,
						   .arg = p, .reuse = p });
	ck_assert_int_eq(sc_cancel(&t), 0);
	wait_at_least(&s.first_done, 1, "the first read returns");
	assert_plain_error(s.first, ECANCELED, "first read");
	wait_at_least(&s.second_done, 1, "the second read returns");
	assert_plain_error(s.second, ECANCELED, "second read");
	ck_assert_msg(s.second.end_ns - s.second.start_ns < stretched(SEC_NS),
		      "the second read took %lld ms",
		      (long long)((s.second.end_ns - s.second.start_ns) / MS_NS));
	wait_at_least(&s.third_done, 1, "the 60 s nanosleep returns");
	assert_plain_error(s.third, ECANCELED, "60 s nanosleep after them");
	scoped_finish(&s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(a_scope_entered_on_a_cancelled_token_fails_its_first_blocking_call)
{
	struct scoped s;
	sc_token t;
	int p[2];

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_cancel(&t), 0);
	scoped_start(&s, &(struct scoped){ .bg.tok = &t, .body = read_pipe, .arg = p, .reuse = p });
	wait_at_least(&s.first_done, 1, "the read returns");
	assert_plain_error(s.first, ECANCELED, "read in a scope of a cancelled token");
	scoped_finish(&s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

/* The cancel lands while the thread runs in user space, between its scope's start and the read. */
START_TEST(a_cancel_before_the_blocking_call_starts_still_fails_it)
{
	struct scoped s;
	sc_token t;
	int p[2];

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	scoped_start(&s, &(struct scoped){ .bg.tok = &t, .body = read_pipe_after_go, .arg = p,
					   .reuse = p });
	ck_assert_int_eq(sc_cancel(&t), 0);
	store(&s.go, 1);
	wait_at_least(&s.first_done, 1, "the read returns");
	assert_plain_error(s.first, ECANCELED, "read started after the cancel");
	scoped_finish(&s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(a_scope_deadline_fails_a_blocking_read_with_etimedout)
{
	struct scoped s;
	sc_token t;
	int p[2];

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 50 * MS_NS), 0);
	int64_t deadline = sc_token_deadline(&t);

	scoped_start(&s, &(struct scoped){ .bg.tok = &t, .body = read_pipe, .arg = p, .reuse = p });
	wait_at_least(&s.first_done, 1, "the read returns at the deadline");
	assert_plain_error(s.first, ETIMEDOUT, "read in a scope with a deadline");
	ck_assert_int_ge(s.first.end_ns, deadline);
	ck_assert_int_lt(s.first.end_ns - deadline, PROMPT_NS);
	ck_assert(!sc_is_cancelled(&t));
	scoped_finish(&s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

START_TEST(a_deadline_set_while_a_read_blocks_in_a_scope_fails_it_with_etimedout)
{
	struct scoped s;
	sc_token t;
	int p[2];

	make_pipe(p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = read_pipe, .arg = p,
						   .reuse = p });
	int64_t deadline = sc_now_ns() + 50 * MS_NS;

	ck_assert_int_eq(sc_token_set_deadline(&t, deadline), 0);
	wait_at_least(&s.first_done, 1, "the read returns at the deadline");
	assert_plain_error(s.first, ETIMEDOUT, "read blocked when the deadline was set");
	ck_assert_int_ge(s.first.end_ns, deadline);
	scoped_finish(&s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(p);
}
END_TEST

/* An inner scope inside the thread's scope of bg.tok. */
struct nested {
	sc_token *inner;
	int fd;
	int enter_err, exit_err;
};

/*
 * Body: a read in an inner scope; once that scope is left, a second read in
 * the outer one.
 */
static void read_in_inner_then_outer_scope(struct scoped *s)
{
	struct nested *n = s->arg;
	struct plain p;

	n->enter_err = sc_scope_enter(n->inner);
	store(&s->ready, 1);
	p = read_one(n->fd);
	n->exit_err = sc_scope_exit();
	record_first(s, p);
	store(&s->second_ready, 1);
	record_second(s, read_one(n->fd));
}

START_TEST(cancelling_the_outer_scope_ends_a_read_in_the_inner_scope)
{
	sc_token outer, inner;
	struct scoped s;
	struct nested n = { .inner = &inner };
	int p[2];

	make_pipe(p);
	n.fd = p[0];
	ck_assert_int_eq(sc_token_init(&outer, NULL), 0);
	ck_assert_int_eq(sc_token_init(&inner, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &outer, .arg = &n,
						   .body = read_in_inner_then_outer_scope });
	ck_assert_int_eq(n.enter_err, 0);
	ck_assert_int_eq(sc_cancel(&outer), 0);
	wait_at_least(&s.first_done, 1, "the read in the inner scope returns");
	assert_plain_error(s.first, ECANCELED, "read in the inner scope");
	ck_assert_int_eq(n.exit_err, 0);
	wait_at_least(&s.second_done, 1, "the read in the cancelled outer scope returns");
	assert_plain_error(s.second, ECANCELED, "read in the outer scope");
	scoped_finish(&s);
	ck_assert_int_eq(sc_token_destroy(&inner), 0);
	ck_assert_int_eq(sc_token_destroy(&outer), 0);
	close_pipe(p);
}
END_TEST

START_TEST(after_a_cancelled_inner_scope_exits_the_outer_scope_reads_normally)
{
	sc_token outer, inner;
	struct scoped s;
	struct nested n = { .inner = &inner };
	int p[2];

	make_pipe(p);
	n.fd = p[0];
	ck_assert_int_eq(sc_token_init(&outer, NULL), 0);
	ck_assert_int_eq(sc_token_init(&inner, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &outer, .arg = &n,
						   .body = read_in_inner_then_outer_scope });
	ck_assert_int_eq(n.enter_err, 0);
	ck_assert_int_eq(sc_cancel(&inner), 0);
	wait_at_least(&s.first_done, 1, "the read in the inner scope returns");
	assert_plain_error(s.first, ECANCELED, "read in the inner scope");
	ck_assert_int_eq(n.exit_err, 0);

	scoped_wait_blocked(&s, &s.second_ready, &s.second_done);
	ck_assert_int_eq(write(p[1], "o", 1), 1);
	wait_at_least(&s.second_done, 1, "the read in the outer scope returns");
	assert_plain_value(s.second, 1, "read in the live outer scope");
	ck_assert(!sc_is_cancelled(&outer));
	scoped_finish(&s);
	ck_assert_int_eq(sc_token_destroy(&inner), 0);
	ck_assert_int_eq(sc_token_destroy(&outer), 0);
	close_pipe(p);
}
END_TEST

#define QUIET_POLLS 3
#define QUIET_POLL_MS 50

/* What a thread did after leaving its cancelled scope. */
struct after_exit {
	int p[2];
	struct plain write, read;
	char byte;
	struct plain polls[QUIET_POLLS];
};

static void write_read_and_poll(struct scoped *s)
{
	struct after_exit *a = s->arg;
	struct pollfd pfd = { .fd = a->p[0], .events = POLLIN };

	a->write = PLAIN(write(a->p[1], "w", 1));
	a->read = PLAIN(read(a->p[0], &a->byte, 1));
	for (int i = 0; i < QUIET_POLLS; i++)
		a->polls[i] = PLAIN(poll(&pfd, 1, QUIET_POLL_MS));
}

/*
 * Nothing of a cancelled scope outlives it: no error and no signal, which
 * would end a poll early with EINTR.
 */
START_TEST(after_a_cancelled_scope_exits_plain_calls_work_normally)
{
	struct after_exit a;
	struct scoped s;
	sc_token t;

	make_pipe(a.p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = read_pipe, .arg = &a,
						   .after_exit = write_read_and_poll });
	ck_assert_int_eq(sc_cancel(&t), 0);
	wait_at_least(&s.first_done, 1, "the read returns");
	assert_plain_error(s.first, ECANCELED, "read in the scope");
	scoped_finish(&s);
	assert_plain_value(a.write, 1, "write after the scope");
	assert_plain_value(a.read, 1, "read after the scope");
	ck_assert_int_eq(a.byte, 'w');
	for (int i = 0; i < QUIET_POLLS; i++) {
		assert_plain_value(a.polls[i], 0, "poll with a timeout after the scope");
		ck_assert_int_ge(a.polls[i].end_ns - a.polls[i].start_ns,
				 (QUIET_POLL_MS - 1) * MS_NS);
	}
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(a.p);
}
END_TEST

#define NONBLOCKING_NS (200 * MS_NS)

/* Calls that cannot wait, made for a while in a cancelled scope. */
struct nonblocking {
	int p[2];		/* p[0] blocks, for the cancelled reads */
	int nb[2];		/* an empty pipe, O_NONBLOCK */
	int sock[2];
	long rounds;
	struct plain bad;	/* the first call that did not do what it would outside */
	const char *bad_call;
	struct plain last;	/* a blocking read after them */
};

static bool nonblocking_ok(struct nonblocking *n, const char *call, struct plain p, long ret,
			   int err)
{
	if (p.ret == ret && p.err == err)
		return true;
	n->bad = p;
	n->bad_call = call;
	return false;
}

static void nonblocking_calls(struct scoped *s)
{
	struct nonblocking *n = s->arg;
	struct pollfd pfd = { .fd = n->nb[0], .events = POLLIN };
	int64_t end;
	char b;

	read_pipe(s);
	end = sc_now_ns() + NONBLOCKING_NS;
	while (sc_now_ns() < end) {
		n->rounds++;
		if (!nonblocking_ok(n, "read", PLAIN(read(n->nb[0], &b, 1)), -1, EAGAIN) ||
		    !nonblocking_ok(n, "poll", PLAIN(poll(&pfd, 1, 0)), 0, 0) ||
		    !nonblocking_ok(n, "recv", PLAIN(recv(n->sock[0], &b, 1, MSG_DONTWAIT)), -1,
				    EAGAIN))
			break;
	}
	n->last = read_one(n->p[0]);
}

START_TEST(calls_that_cannot_wait_run_normally_in_a_cancelled_scope)
{
	struct nonblocking n = { 0 };
	struct scoped s;
	sc_token t;

	make_pipe(n.p);
	make_pipe(n.nb);
	ck_assert_int_eq(fcntl(n.nb[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, n.sock), 0);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = nonblocking_calls,
						   .arg = &n });
	ck_assert_int_eq(sc_cancel(&t), 0);
	wait_at_least(&s.first_done, 1, "the blocking read returns");
	assert_plain_error(s.first, ECANCELED, "blocking read");
	scoped_finish(&s);
	ck_assert_msg(!n.bad_call, "%s in round %ld of a cancelled scope: %ld errno %d (%s)",
		      n.bad_call, n.rounds, n.bad.ret, n.bad.err, strerror(n.bad.err));
	assert_plain_error(n.last, ECANCELED, "blocking read after the non-blocking calls");
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(n.p);
	close_pipe(n.nb);
	close_pipe(n.sock);
}
END_TEST

#define FUTEX_WAIT_MS 100
#define REGULAR_READS_NS (100 * MS_NS)

/* Futex waits and regular-file reads in a cancelled scope. */
struct untouched {
	int p[2];		/* a blocking pipe, for the cancelled read */
	int file;		/* a regular file holding "regular" */
	struct plain cond, sem, bad_read;
	long reads;
	bool read_ok;		/* the last read of the file returned "regular" */
	char got[8];
};

/* CLOCK_REALTIME ns from now, the clock of pthread_cond_timedwait and sem_timedwait. */
static struct timespec realtime_in(int64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (ts.tv_nsec + ns) / SEC_NS;
	ts.tv_nsec = (ts.tv_nsec + ns) % SEC_NS;
	return ts;
}

/* A timed-out pthread_cond_timedwait, which returns its error rather than setting errno. */
static struct plain cond_timeout(void)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	struct timespec ts = realtime_in(FUTEX_WAIT_MS * MS_NS);
	int64_t start = sc_now_ns();

	pthread_mutex_lock(&m);
	int err = pthread_cond_timedwait(&c, &m, &ts);
	pthread_mutex_unlock(&m);
	return (struct plain){ err ? -1 : 0, err, start, sc_now_ns() };
}

static struct plain sem_timeout(void)
{
	struct timespec ts = realtime_in(FUTEX_WAIT_MS * MS_NS);
	sem_t sem;

	sem_init(&sem, 0, 0);
	struct plain p = PLAIN(sem_timedwait(&sem, &ts));
	sem_destroy(&sem);
	return p;
}

/* Whether the regular file reads back as "regular"; if not, *bad says what it did. */
static bool file_reads_back(struct untouched *u, struct plain *bad)
{
	struct plain p = PLAIN(u->reads % 2 ? pread(u->file, u->got, 7, 0) :
			       (lseek(u->file, 0, SEEK_SET), read(u->file, u->got, 7)));

	u->reads++;
	if (p.ret == 7 && !memcmp(u->got, "regular", 7))
		return true;
	*bad = p.ret < 0 ? p : (struct plain){ .ret = p.ret };
	return false;
}

static void futex_waits_and_file_reads(struct scoped *s)
{
	struct untouched *u = s->arg;
	int64_t end;

	read_pipe(s);
	u->cond = cond_timeout();
	u->sem = sem_timeout();
	end = sc_now_ns() + REGULAR_READS_NS;
	while (sc_now_ns() < end && (u->read_ok = file_reads_back(u, &u->bad_read)))
		;
}

/*
 * glibc aborts on an unexpected futex error, so futex waits end as they would
 * outside a scope; regular files are never cancelled.
 */
START_TEST(futex_waits_and_regular_file_reads_run_normally_in_a_cancelled_scope)
{
	char path[] = "/tmp/sc-scopes-XXXXXX";
	struct untouched u = { 0 };
	struct scoped s;
	sc_token t;

	make_pipe(u.p);
	u.file = mkostemp(path, O_CLOEXEC);
	ck_assert_int_ge(u.file, 0);
	unlink(path);
	ck_assert_int_eq(write(u.file, "regular", 7), 7);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = futex_waits_and_file_reads,
						   .arg = &u });
	ck_assert_int_eq(sc_cancel(&t), 0);
	wait_at_least(&s.first_done, 1, "the blocking read returns");
	assert_plain_error(s.first, ECANCELED, "blocking read");
	scoped_finish(&s);

	assert_plain_error(u.cond, ETIMEDOUT, "pthread_cond_timedwait");
	ck_assert_int_ge(u.cond.end_ns - u.cond.start_ns, (FUTEX_WAIT_MS - 1) * MS_NS);
	assert_plain_error(u.sem, ETIMEDOUT, "sem_timedwait");
	ck_assert_int_ge(u.sem.end_ns - u.sem.start_ns, (FUTEX_WAIT_MS - 1) * MS_NS);
	ck_assert_msg(u.read_ok,
		      "read %ld of a regular file: %ld errno %d (%s)", u.reads,
		      u.bad_read.ret, u.bad_read.err, strerror(u.bad_read.err));
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(u.p);
	close(u.file);
}
END_TEST

#define APP_SIGNALS 20

/* The application's SIGUSR1 handler writes to a non-blocking self-pipe. */
static int self_pipe[2];
static long app_handled, app_write_failures;

static void app_handler(int sig)
{
	int saved = errno;

	(void)sig;
	if (write(self_pipe[1], "u", 1) != 1)
		store(&app_write_failures, load(&app_write_failures) + 1);
	store(&app_handled, load(&app_handled) + 1);
	errno = saved;
}

/* Blocking reads in the cancelled scope, again and again, until main says go. */
struct busy_scope {
	int p[2];
	long reads;
	struct plain bad;
};

static void cancelled_reads_until_go(struct scoped *s)
{
	struct busy_scope *b = s->arg;

	read_pipe(s);
	while (!load(&s->go)) {
		struct plain p = read_one(b->p[0]);

		b->reads++;
		if (!(p.ret == -1 && p.err == ECANCELED) && !b->bad.err && !b->bad.ret)
			b->bad = p;
	}
}

START_TEST(an_application_signal_handler_works_in_a_thread_in_a_cancelled_scope)
{
	struct busy_scope b = { 0 };
	struct scoped s;
	sc_token t;
	char buf[APP_SIGNALS + 1];

	make_pipe(self_pipe);
	ck_assert_int_eq(fcntl(self_pipe[1], F_SETFL, O_NONBLOCK), 0);
	store(&app_handled, 0);
	store(&app_write_failures, 0);
	install_handler(SIGUSR1, app_handler, SA_RESTART, NULL);
	make_pipe(b.p);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	scoped_start_blocked(&s, &(struct scoped){ .bg.tok = &t, .body = cancelled_reads_until_go,
						   .arg = &b });
	ck_assert_int_eq(sc_cancel(&t), 0);
	wait_at_least(&s.first_done, 1, "the first blocking read returns");
	assert_plain_error(s.first, ECANCELED, "blocking read");
	for (int i = 0; i < APP_SIGNALS; i++) {
		ck_assert_int_eq(pthread_kill(s.bg.thread, SIGUSR1), 0);
		wait_at_least(&app_handled, i + 1, "SIGUSR1 number %d is handled", i + 1);
	}
	store(&s.go, 1);
	scoped_finish(&s);
	install_handler(SIGUSR1, SIG_DFL, 0, NULL);

	ck_assert_int_eq(load(&app_write_failures), 0);
	ck_assert_int_eq(read(self_pipe[0], buf, sizeof(buf)), APP_SIGNALS);
	ck_assert_msg(!b.bad.ret && !b.bad.err, "a read among %ld in the cancelled scope: "
		      "%ld errno %d (%s)", b.reads, b.bad.ret, b.bad.err, strerror(b.bad.err));
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	close_pipe(b.p);
	close_pipe(self_pipe);
}
END_TEST

/* An sc_read under its own token, in the thread's scope. */
struct own_token {
	sc_token *tok;
	int p[2];
};

/* Body: an sc_read under its own token, then a plain read in the same scope. */
static void sc_read_then_plain_read(struct scoped *s)
{
	struct own_token *o = s->arg;
	char b;

	store(&s->ready, 1);
	s->res = sc_read(o->tok, o->p[0], &b, 1);
	store(&s->first_done, 1);
	store(&s->second_ready, 1);
	record_second(s, read_one(o->p[0]));
}

static void assert_sc_read_ends(sc_token *scope_tok, sc_token *own, sc_token *cancelled,
				struct scoped *s, struct own_token *o)
{
	o->tok = own;
	make_pipe(o->p);
	scoped_start_blocked(s, &(struct scoped){ .bg.tok = scope_tok, .arg = o,
						  .body = sc_read_then_plain_read });
	ck_assert_int_eq(sc_cancel(cancelled), 0);
	wait_at_least(&s->first_done, 1, "sc_read returns after the cancel");
	assert_cancelled(s->res);
}

START_TEST(sc_read_in_a_scope_is_cancelled_by_the_scope_token)
{
	struct own_token o;
	struct scoped s;
	sc_token scope, own;

	ck_assert_int_eq(sc_token_init(&scope, NULL), 0);
	ck_assert_int_eq(sc_token_init(&own, NULL), 0);
	assert_sc_read_ends(&scope, &own, &scope, &s, &o);
	wait_at_least(&s.second_done, 1, "the plain read after it returns");
	assert_plain_error(s.second, ECANCELED, "plain read in the cancelled scope");
	scoped_finish(&s);
	ck_assert(!sc_is_cancelled(&own));
	ck_assert_int_eq(sc_token_destroy(&own), 0);
	ck_assert_int_eq(sc_token_destroy(&scope), 0);
	close_pipe(o.p);
}
END_TEST

START_TEST(sc_read_in_a_scope_is_still_cancelled_by_its_own_token)
{
	struct own_token o;
	struct scoped s;
	sc_token scope, own;

	ck_assert_int_eq(sc_token_init(&scope, NULL), 0);
	ck_assert_int_eq(sc_token_init(&own, NULL), 0);
	assert_sc_read_ends(&scope, &own, &own, &s, &o);
	/* The scope itself is live: the plain read after it waits for data. */
	scoped_wait_blocked(&s, &s.second_ready, &s.second_done);
	ck_assert_int_eq(write(o.p[1], "s", 1), 1);
	wait_at_least(&s.second_done, 1, "the plain read after it returns");
	assert_plain_value(s.second, 1, "plain read in the live scope");
	scoped_finish(&s);
	ck_assert(!sc_is_cancelled(&scope));
	ck_assert_int_eq(sc_token_destroy(&own), 0);
	ck_assert_int_eq(sc_token_destroy(&scope), 0);
	close_pipe(o.p);
}
END_TEST

START_TEST(sc_read_in_a_scope_times_out_at_the_scope_deadline)
{
	struct own_token o = { 0 };
	struct scoped s;
	sc_token scope, own;

	ck_assert_int_eq(sc_token_init(&scope, NULL), 0);
	ck_assert_int_eq(sc_token_init(&own, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&scope, 50 * MS_NS), 0);
	o.tok = &own;
	make_pipe(o.p);
	scoped_start(&s, &(struct scoped){ .bg.tok = &scope, .body = sc_read_then_plain_read,
					   .arg = &o });
	wait_at_least(&s.first_done, 1, "sc_read returns at the scope's deadline");
	assert_status(s.res, SC_TIMEDOUT, "sc_read in a scope with a deadline");
	wait_at_least(&s.second_done, 1, "the plain read after it returns");
	assert_plain_error(s.second, ETIMEDOUT, "plain read after the deadline");
	scoped_finish(&s);
	ck_assert_int_eq(sc_token_destroy(&own), 0);
	ck_assert_int_eq(sc_token_destroy(&scope), 0);
	close_pipe(o.p);
}
END_TEST

/* Opens a scope of its token, and one more of arg, and ends without leaving them. */
static sc_result enter_twice_and_exit_thread(struct bg_call *c)
{
	int err = sc_scope_enter(c->tok);

	if (!err)
		err = sc_scope_enter(c->arg);
	return (sc_result){ .status = err ? SC_ERROR : SC_OK, .error = err };
}

/*
 * A thread may end inside its scopes.  Cancelling their tokens later touches
 * nothing of it, nor of a new thread in a scope of its own, which may take
 * its place in the library; and the tokens can be destroyed.
 */
START_TEST(a_thread_that_exits_inside_a_scope_leaves_later_cancels_harmless)
{
	sc_token outer, inner, fresh;
	struct bg_call quitter = { .fn = enter_twice_and_exit_thread, .tok = &outer,
				   .arg = &inner };
	struct scoped next;
	int p[2];

	ck_assert_int_eq(sc_token_init(&outer, NULL), 0);
	ck_assert_int_eq(sc_token_init(&inner, NULL), 0);
	ck_assert_int_eq(sc_token_init(&fresh, NULL), 0);
	bg_start(&quitter);
	assert_ok(bg_join(&quitter), 0);

	make_pipe(p);
	scoped_start_blocked(&next, &(struct scoped){ .bg.tok = &fresh, .body = read_pipe,
						      .arg = p, .reuse = p });
	ck_assert_int_eq(sc_cancel(&inner), 0);
	ck_assert_int_eq(sc_cancel(&outer), 0);
	ck_assert_msg(!load(&next.first_done), "the new thread's read ended after the cancel: "
		      "%ld errno %d", next.first.ret, next.first.err);
	ck_assert_int_eq(write(p[1], "n", 1), 1);
	wait_at_least(&next.first_done, 1, "the new thread's read returns");
	assert_plain_value(next.first, 1, "read in the new thread's scope");
	scoped_finish(&next);
	close_pipe(p);

	ck_assert_int_eq(sc_token_destroy(&fresh), 0);
	ck_assert_int_eq(sc_token_destroy(&inner), 0);
	ck_assert_int_eq(sc_token_destroy(&outer), 0);
}
END_TEST

#endif /* __x86_64__ */

START_TEST(sc_scope_enter_refuses_a_null_token)
{
	ck_assert_int_eq(sc_scope_enter(NULL), EINVAL);
	ck_assert_int_eq(sc_scope_exit(), EINVAL);
}
END_TEST

START_TEST(sc_scope_enter_refuses_a_destroyed_token)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	ck_assert_int_eq(sc_scope_enter(&t), EINVAL);
	ck_assert_int_eq(sc_scope_exit(), EINVAL);
}
END_TEST

START_TEST(sc_scope_exit_without_a_scope_is_einval)
{
	ck_assert_int_eq(sc_scope_exit(), EINVAL);
}
END_TEST

START_TEST(the_33rd_nested_scope_is_enospc_and_the_32_open_ones_all_exit)
{
	sc_token t;

	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	for (int i = 0; i < SC_SCOPE_MAX; i++)
		ck_assert_msg(sc_scope_enter(&t) == 0, "scope %d", i + 1);
	ck_assert_int_eq(sc_scope_enter(&t), ENOSPC);
	for (int i = 0; i < SC_SCOPE_MAX; i++)
		ck_assert_msg(sc_scope_exit() == 0, "exit %d", i + 1);
	ck_assert_int_eq(sc_scope_exit(), EINVAL);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(a_token_an_open_scope_uses_cannot_be_destroyed_until_the_scope_exits)
{
	sc_token outer, inner;

	ck_assert_int_eq(sc_token_init(&outer, NULL), 0);
	ck_assert_int_eq(sc_token_init(&inner, NULL), 0);
	ck_assert_int_eq(sc_scope_enter(&outer), 0);
	ck_assert_int_eq(sc_scope_enter(&inner), 0);
	ck_assert_int_eq(sc_token_destroy(&outer), EBUSY);
	ck_assert_int_eq(sc_token_destroy(&inner), EBUSY);
	ck_assert_int_eq(sc_scope_exit(), 0);
	ck_assert_int_eq(sc_token_destroy(&inner), 0);
	ck_assert_int_eq(sc_token_destroy(&outer), EBUSY);
	ck_assert_int_eq(sc_scope_exit(), 0);
	ck_assert_int_eq(sc_token_destroy(&outer), 0);
}
END_TEST

/*
 * Scopes end plain syscalls from the library's signal handler, which looks at
 * the interrupted program counter: under valgrind that is valgrind's own code,
 * and ThreadSanitizer runs the handler only later, after the syscall.
 */
static bool scopes_work_here(void)
{
#if defined(__x86_64__)
	return !SC_TSAN && !under_valgrind();
#else
	return false;
#endif
}

int main(void)
{
	Suite *s = suite_create("scopes");
	TCase *args = add_tcase(s, "scope arguments", 30, init_library);

	tcase_add_test(args, sc_scope_enter_refuses_a_null_token);
	tcase_add_test(args, sc_scope_enter_refuses_a_destroyed_token);
	tcase_add_test(args, sc_scope_exit_without_a_scope_is_einval);
	tcase_add_test(args, the_33rd_nested_scope_is_enospc_and_the_32_open_ones_all_exit);
	tcase_add_test(args, a_token_an_open_scope_uses_cannot_be_destroyed_until_the_scope_exits);
	if (!scopes_work_here()) {
		printf("test_scopes: cancelling plain syscalls needs x86_64 without valgrind or "
		       "ThreadSanitizer: only the argument checks run\n");
		return run_suite(s, CK_FORK_GETENV);
	}
#if defined(__x86_64__)
	TCase *kinds = add_tcase(s, "call kinds", 30, init_library);
	TCase *tc = add_tcase(s, "scopes", 30, init_library);

	tcase_add_test(kinds,
		       a_read_of_an_empty_pipe_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds,
		       recv_on_a_socketpair_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds, accept_on_a_loopback_listener_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds,
		       connect_to_a_listener_with_a_full_backlog_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds, poll_without_timeout_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds, select_without_timeout_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds, a_60_s_nanosleep_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds, waitpid_for_a_sleeping_child_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds,
		       sigtimedwait_for_a_blocked_unused_signal_in_a_scope_fails_with_ecanceled);
	tcase_add_test(kinds,
		       flock_of_a_file_locked_through_another_description_fails_with_ecanceled);

	tcase_add_test(tc, a_read_that_completed_before_the_cancel_keeps_its_bytes);
	tcase_add_test(tc, a_read_racing_a_cancel_returns_its_bytes_or_leaves_them_in_the_pipe);
	tcase_add_test(tc, a_cancelled_scope_fails_every_later_blocking_call_promptly);
	tcase_add_test(tc, a_scope_entered_on_a_cancelled_token_fails_its_first_blocking_call);
	tcase_add_test(tc, a_cancel_before_the_blocking_call_starts_still_fails_it);
	tcase_add_test(tc, a_scope_deadline_fails_a_blocking_read_with_etimedout);
	tcase_add_test(tc, a_deadline_set_while_a_read_blocks_in_a_scope_fails_it_with_etimedout);
	tcase_add_test(tc, cancelling_the_outer_scope_ends_a_read_in_the_inner_scope);
	tcase_add_test(tc, after_a_cancelled_inner_scope_exits_the_outer_scope_reads_normally);
	tcase_add_test(tc, after_a_cancelled_scope_exits_plain_calls_work_normally);
	tcase_add_test(tc, calls_that_cannot_wait_run_normally_in_a_cancelled_scope);
	tcase_add_test(tc, futex_waits_and_regular_file_reads_run_normally_in_a_cancelled_scope);
	tcase_add_test(tc, an_application_signal_handler_works_in_a_thread_in_a_cancelled_scope);
	tcase_add_test(tc, sc_read_in_a_scope_is_cancelled_by_the_scope_token);
	tcase_add_test(tc, sc_read_in_a_scope_is_still_cancelled_by_its_own_token);
	tcase_add_test(tc, sc_read_in_a_scope_times_out_at_the_scope_deadline);
	tcase_add_test(tc, a_thread_that_exits_inside_a_scope_leaves_later_cancels_harmless);
#endif
	return run_suite(s, CK_FORK_GETENV);
}
