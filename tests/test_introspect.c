/* Introspection: snapshots and dumps list every call in flight, whole. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

#define MAX_ENTRIES 64

struct snap {
	sc_call_info e[MAX_ENTRIES];
	int n;
	int64_t before_ns, after_ns;	/* sc_now_ns() around the snapshot */
};

static void take(struct snap *s)
{
	s->before_ns = sc_now_ns();
	s->n = sc_snapshot(s->e, MAX_ENTRIES);
	s->after_ns = sc_now_ns();
	ck_assert_msg(s->n >= 0 && s->n <= MAX_ENTRIES, "sc_snapshot returned %d", s->n);
}

/*
 * Until at least n calls are listed: a thread /proc shows asleep may not
 * have published its call yet (under qemu-user, the emulator's own waits).
 */
static void take_at_least(struct snap *s, int n)
{
	int64_t end = sc_now_ns() + 10 * SEC_NS;

	for (take(s); s->n < n && sc_now_ns() < end; take(s))
		sched_yield();
}

static const sc_call_info *find(const struct snap *s, pid_t tid)
{
	for (int i = 0; i < s->n; i++)
		if (s->e[i].tid == tid)
			return &s->e[i];
	return NULL;
}

static const sc_call_info *must_find(const struct snap *s, pid_t tid)
{
	const sc_call_info *ci = find(s, tid);

	ck_assert_msg(ci, "thread %d is not in the snapshot (%d entries)", (int)tid, s->n);
	return ci;
}

static void assert_call(const sc_call_info *ci, long nr, const sc_token *tok, long arg,
			int64_t deadline)
{
	ck_assert_msg(ci->syscall == nr, "thread %d: syscall %ld, expected %ld", (int)ci->tid,
		      ci->syscall, nr);
	ck_assert_ptr_eq(ci->token, tok);
	ck_assert_int_eq(ci->arg, arg);
	ck_assert_msg(ci->deadline_ns == deadline, "thread %d: deadline %lld, expected %lld",
		      (int)ci->tid, (long long)ci->deadline_ns, (long long)deadline);
	ck_assert_int_eq(ci->cancelled, 0);
	ck_assert_int_eq(ci->in_scope, 0);
}

static sc_result bg_accept(struct bg_call *c)
{
	return sc_accept(c->tok, c->fd, NULL, NULL, SOCK_CLOEXEC);
}

START_TEST(a_snapshot_lists_every_blocked_thread_with_its_tid_syscall_token_and_deadline)
{
	sc_token plain, timed, child;
	struct bg_call r1, r2, acc = { .fn = bg_accept };
	struct sockaddr_storage addr;
	socklen_t alen;
	struct snap s;

	ck_assert_int_eq(sc_token_init(&plain, NULL), 0);
	ck_assert_int_eq(sc_token_init(&timed, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&timed, 3600 * SEC_NS), 0);
	ck_assert_int_eq(sc_token_init(&child, &timed), 0);
	/* The child's own deadline is later: the chain's earliest is its parent's. */
	ck_assert_int_eq(sc_token_set_timeout(&child, 7200 * SEC_NS), 0);
	bg_read_blocked(&r1, &plain);
	bg_read_blocked(&r2, &child);
	acc.tok = &timed;
	acc.fd = make_listener(&addr, &alen, 4);
	bg_start_blocked(&acc);

	take_at_least(&s, 3);
	ck_assert_int_ge(s.n, 3);
	assert_call(must_find(&s, r1.tid), SYS_read, &plain, r1.fd, SC_NO_DEADLINE);
	assert_call(must_find(&s, r2.tid), SYS_read, &child, r2.fd, sc_token_deadline(&timed));
	assert_call(must_find(&s, acc.tid), SYS_accept4, &timed, acc.fd,
		    sc_token_deadline(&timed));
	for (int i = 0; i < s.n; i++)
		ck_assert_msg(s.e[i].started_ns <= s.after_ns, "a start after the snapshot");

	ck_assert_int_eq(sc_cancel(&plain), 0);
	ck_assert_int_eq(sc_cancel(&timed), 0);
	assert_cancelled(bg_join(&r1));
	assert_cancelled(bg_join(&r2));
	assert_cancelled(bg_join(&acc));
	bg_close_pipe(&r1);
	bg_close_pipe(&r2);
	close(acc.fd);
	ck_assert_int_eq(sc_token_destroy(&child), 0);
	ck_assert_int_eq(sc_token_destroy(&timed), 0);
	ck_assert_int_eq(sc_token_destroy(&plain), 0);
}
END_TEST

START_TEST(ages_grow_between_two_snapshots_and_the_start_stays)
{
	sc_token tok;
	struct bg_call r;
	struct snap a, b;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&r, &tok);
	take(&a);
	const sc_call_info *first = must_find(&a, r.tid);
	ck_assert_int_le(first->started_ns, a.after_ns);
	/* Time must pass for an age to grow: a few ms, whatever the machine's load. */
	while (sc_now_ns() < a.after_ns + 2 * MS_NS)
		assert_ok(sc_sleep(NULL, MS_NS), 0);
	take(&b);
	const sc_call_info *second = must_find(&b, r.tid);
	ck_assert_int_eq(second->started_ns, first->started_ns);
	ck_assert_int_gt(b.before_ns - second->started_ns, a.after_ns - first->started_ns);

	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_cancelled(bg_join(&r));
	bg_close_pipe(&r);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}
END_TEST

/* Reads twice: once to be seen, once more after main lets the first through. */
static sc_result read_twice(struct bg_call *c)
{
	sc_result r = sc_read(c->tok, c->fd, c->buf, 1);

	if (r.status != SC_OK)
		return r;
	return sc_read(c->tok, c->fd, c->buf, 1);
}

static const sc_call_info *wait_for_call_after(struct snap *s, pid_t tid, int64_t after)
{
	int64_t end = sc_now_ns() + stretched(PROMPT_NS);

	for (;;) {
		take(s);
		const sc_call_info *ci = find(s, tid);
		if (ci && ci->started_ns >= after)
			return ci;
		ck_assert_msg(sc_now_ns() < end, "the second call of thread %d never showed",
			      (int)tid);
		sched_yield();
	}
}

START_TEST(a_later_call_of_the_thread_gets_a_start_of_its_own)
{
	sc_token tok;
	struct bg_call r = { .fn = read_twice };
	struct snap a, b;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	r.tok = &tok;
	bg_pipe(&r);
	bg_start_blocked(&r);
	take(&a);
	int64_t first = must_find(&a, r.tid)->started_ns;
	int64_t released = sc_now_ns();
	ck_assert_int_eq(write(r.peer, "x", 1), 1);
	/* The second read is listed with a start after the first was let through. */
	const sc_call_info *ci = wait_for_call_after(&b, r.tid, released);
	ck_assert_int_gt(ci->started_ns, first);
	ck_assert_int_eq(ci->syscall, SYS_read);

	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_cancelled(bg_join(&r));
	bg_close_pipe(&r);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}
END_TEST

START_TEST(a_cancelled_call_is_gone_from_the_snapshot_once_it_returned)
{
	sc_token tok;
	struct bg_call r;
	struct snap s;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&r, &tok);
	take(&s);
	must_find(&s, r.tid);
	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_cancelled(bg_wait(&r));
	take(&s);
	ck_assert_msg(!find(&s, r.tid), "a returned call is still listed");
	join_within(r.thread, PROMPT_NS, "reader");
	bg_close_pipe(&r);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}
END_TEST

START_TEST(a_max_below_the_count_returns_the_count_and_fills_only_max)
{
	sc_token tok;
	struct bg_call r[3];
	sc_call_info out[2];

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	for (int i = 0; i < 3; i++)
		bg_read_blocked(&r[i], &tok);
	memset(out, 0xa5, sizeof(out));
	int n = sc_snapshot(out, 1);
	ck_assert_int_ge(n, 3);
	ck_assert_int_eq(sc_snapshot(NULL, 0), n);
	int ours = 0;
	for (int i = 0; i < 3; i++)
		ours += out[0].tid == r[i].tid;
	ck_assert_msg(ours == 1, "out[0] is not one of the readers (tid %d)", (int)out[0].tid);
	ck_assert_ptr_eq(out[0].token, &tok);
	const unsigned char *past = (const unsigned char *)&out[1];
	for (size_t i = 0; i < sizeof(out[1]); i++)
		ck_assert_msg(past[i] == 0xa5, "sc_snapshot wrote past max");

	ck_assert_int_eq(sc_cancel(&tok), 0);
	for (int i = 0; i < 3; i++) {
		assert_cancelled(bg_join(&r[i]));
		bg_close_pipe(&r[i]);
	}
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}
END_TEST

START_TEST(bad_snapshot_and_dump_arguments_are_refused)
{
	sc_call_info one;
	int p[2];

	errno = 0;
	ck_assert_int_eq(sc_snapshot(NULL, 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(sc_snapshot(&one, -1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(sc_snapshot(&one, INT_MIN), -1);
	ck_assert_int_ge(sc_snapshot(NULL, 0), 0);
	ck_assert_int_ge(sc_snapshot(&one, 0), 0);

	ck_assert_int_eq(sc_dump(-1), EBADF);
	make_pipe(p);
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	errno = 12345;
	ck_assert_int_eq(sc_dump(p[1]), EPIPE);
	ck_assert_int_eq(errno, 12345);
	close(p[1]);
}
END_TEST

START_TEST(syscall_names_cover_the_library_s_calls_and_refuse_unknown_numbers)
{
	static const struct {
		long nr;
		const char *name;
	} known[] = {
		{ SYS_read, "read" }, { SYS_write, "write" }, { SYS_readv, "readv" },
		{ SYS_writev, "writev" }, { SYS_pread64, "pread64" }, { SYS_pwrite64, "pwrite64" },
		{ SYS_recvfrom, "recvfrom" }, { SYS_sendto, "sendto" },
		{ SYS_recvmsg, "recvmsg" }, { SYS_sendmsg, "sendmsg" },
		{ SYS_recvmmsg, "recvmmsg" }, { SYS_sendmmsg, "sendmmsg" },
		{ SYS_accept, "accept" }, { SYS_accept4, "accept4" }, { SYS_connect, "connect" },
		{ SYS_wait4, "wait4" }, { SYS_waitid, "waitid" }, { SYS_openat, "openat" },
		{ SYS_flock, "flock" }, { SYS_fcntl, "fcntl" }, { SYS_futex, "futex" },
		{ SYS_ppoll, "ppoll" }, { SYS_pselect6, "pselect6" },
		{ SYS_epoll_pwait, "epoll_pwait" }, { SYS_clock_nanosleep, "clock_nanosleep" },
		{ SYS_nanosleep, "nanosleep" }, { SYS_rt_sigtimedwait, "rt_sigtimedwait" },
		{ SYS_rt_sigsuspend, "rt_sigsuspend" }, { SYS_io_getevents, "io_getevents" },
		{ SYS_io_uring_enter, "io_uring_enter" }, { SYS_msgrcv, "msgrcv" },
		{ SYS_msgsnd, "msgsnd" }, { SYS_semop, "semop" },
		{ SYS_semtimedop, "semtimedop" }, { SYS_mq_timedreceive, "mq_timedreceive" },
		{ SYS_mq_timedsend, "mq_timedsend" }, { SYS_close, "close" },
#ifdef SYS_poll
		{ SYS_poll, "poll" }, { SYS_select, "select" }, { SYS_pause, "pause" },
		{ SYS_epoll_wait, "epoll_wait" }, { SYS_open, "open" },
#endif
	};
	static const long unknown[] = { -1, -2, LONG_MIN, LONG_MAX, INT_MAX, 100000, 1L << 40 };

	for (int i = 0; i < ARRAY_SIZE(known); i++) {
		const char *name = sc_syscall_name(known[i].nr);
		ck_assert_msg(name && !strcmp(name, known[i].name), "syscall %ld: %s, expected %s",
			      known[i].nr, name ? name : "NULL", known[i].name);
	}
	for (int i = 0; i < ARRAY_SIZE(unknown); i++)
		ck_assert_ptr_null(sc_syscall_name(unknown[i]));
}
END_TEST

/* The dump's text, read back from a memfd. */
static char *dump_text(void)
{
	int fd = memfd_create("dump", MFD_CLOEXEC);
	static char text[1 << 16];
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(sc_dump(fd), 0);
	n = pread(fd, text, sizeof(text) - 1, 0);
	ck_assert_int_gt(n, 0);
	text[n] = 0;
	close(fd);
	return text;
}

static const char *line_of(const char *text, pid_t tid)
{
	char want[32];
	const char *p = text;

	snprintf(want, sizeof(want), "tid %d ", (int)tid);
	for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, want, strlen(want)))
			return p;
	ck_abort_msg("no line for thread %d in:\n%s", (int)tid, text);
	return NULL;
}

static void assert_line_has(const char *line, const char *what)
{
	const char *end = strchr(line, '\n');
	const char *hit = strstr(line, what);

	ck_assert_msg(hit && (!end || hit < end), "'%s' not in line: %.*s", what,
		      end ? (int)(end - line) : (int)strlen(line), line);
}

START_TEST(a_dump_has_a_line_per_call_with_its_thread_call_token_age_and_deadline)
{
	sc_token plain, timed;
	struct bg_call r1, r2;
	char want[64];

	ck_assert_int_eq(sc_token_init(&plain, NULL), 0);
	ck_assert_int_eq(sc_token_init(&timed, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&timed, 3600 * SEC_NS), 0);
	bg_read_blocked(&r1, &plain);
	bg_read_blocked(&r2, &timed);

	const char *text = dump_text();
	ck_assert_msg(strstr(text, "syscancel: calls in flight in process "), "%s", text);
	const char *l1 = line_of(text, r1.tid), *l2 = line_of(text, r2.tid);
	snprintf(want, sizeof(want), "read(fd %d)", r1.fd);
	assert_line_has(l1, want);
	snprintf(want, sizeof(want), "token %p", (void *)&plain);
	assert_line_has(l1, want);
	assert_line_has(l1, "age ");
	assert_line_has(l1, "no deadline");
	snprintf(want, sizeof(want), "read(fd %d)", r2.fd);
	assert_line_has(l2, want);
	assert_line_has(l2, "deadline in ");
	double left = strtod(strstr(l2, "deadline in ") + strlen("deadline in "), NULL);
	ck_assert_msg(left > 3000 && left <= 3600, "deadline in %.3f s, expected about 3600", left);
	ck_assert_msg(strstr(text, " entries\n"), "no closing line in:\n%s", text);

	ck_assert_int_eq(sc_cancel(&plain), 0);
	ck_assert_int_eq(sc_cancel(&timed), 0);
	assert_cancelled(bg_join(&r1));
	assert_cancelled(bg_join(&r2));
	bg_close_pipe(&r1);
	bg_close_pipe(&r2);
	ck_assert_int_eq(sc_token_destroy(&plain), 0);
	ck_assert_int_eq(sc_token_destroy(&timed), 0);
}
END_TEST

/* ---- sc_dump in a signal handler while calls start and end ---- */

#define CHURNERS 4

static int dump_fd = -1;
static long dumps, dump_errors;

static void dump_handler(int sig)
{
	int saved = errno;

	(void)sig;
	if (sc_dump(dump_fd))
		add(&dump_errors, 1);
	add(&dumps, 1);
	errno = saved;
}

struct churner {
	pthread_t thread;
	long tid;
	sc_token tok;
	int pipe[2];
	long stop;
	long calls;
};

/* Short calls that block and return, with and without deadlines, as fast as they go. */
static void *churn(void *arg)
{
	struct churner *c = arg;
	char b;

	store(&c->tid, gettid());
	while (!load(&c->stop)) {
		sc_result r = sc_read(&c->tok, c->pipe[0], &b, 1);
		if (r.status != SC_OK && r.status != SC_TIMEDOUT)
			break;
		sc_sleep(&c->tok, (load(&c->calls) % 3) * 1000);
		add(&c->calls, 1);
	}
	return NULL;
}

START_TEST(sc_dump_from_a_signal_handler_while_calls_start_and_end_completes_every_time)
{
	struct churner c[CHURNERS];
	int rounds = under_valgrind() ? 40 : 400;

	dump_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(dump_fd, 0);
	install_handler(SIGUSR2, dump_handler, SA_RESTART, NULL);
	for (int i = 0; i < CHURNERS; i++) {
		c[i] = (struct churner){ .stop = 0 };
		ck_assert_int_eq(sc_token_init(&c[i].tok, NULL), 0);
		if (i & 1)
			ck_assert_int_eq(sc_token_set_timeout(&c[i].tok, 3600 * SEC_NS), 0);
		make_pipe(c[i].pipe);
		ck_assert_int_eq(pthread_create(&c[i].thread, NULL, churn, &c[i]), 0);
	}
	for (int i = 0; i < CHURNERS; i++)
		wait_at_least(&c[i].tid, 1, "churner %d started", i);
	for (int i = 0; i < rounds; i++) {
		struct churner *t = &c[i % CHURNERS];
		/* A byte for one reader each round: its read ends and the next starts. */
		ck_assert_int_eq(write(t->pipe[1], "x", 1), 1);
		/* ThreadSanitizer runs a handler only once its thread calls into libc. */
		if (i % 3 == 0 || SC_TSAN)
			raise(SIGUSR2);
		else
			ck_assert_int_eq(pthread_kill(t->thread, SIGUSR2), 0);
		wait_at_least(&dumps, i + 1, "dump %d", i + 1);
	}
	ck_assert_int_eq(load(&dump_errors), 0);
	for (int i = 0; i < CHURNERS; i++) {
		store(&c[i].stop, 1);
		ck_assert_int_eq(sc_cancel(&c[i].tok), 0);
		join_within(c[i].thread, PROMPT_NS, "churner");
		ck_assert_int_gt(load(&c[i].calls), 0);
		close_pipe(c[i].pipe);
		ck_assert_int_eq(sc_token_destroy(&c[i].tok), 0);
	}
	signal(SIGUSR2, SIG_DFL);
	close(dump_fd);
}
END_TEST

/* ---- scopes ---- */

struct scoped_reader {
	pthread_t thread;
	sc_token *tok;
	int pipe[2];
	long tid;
	long entered, read_done, leave;
	long ret;
	int err;
};

/* In a scope: one plain read, then wait in the scope (no syscall) until told to leave. */
static void *scoped_read(void *arg)
{
	struct scoped_reader *r = arg;
	char b;

	store(&r->tid, gettid());
	if (sc_scope_enter(r->tok))
		return NULL;
	store(&r->entered, 1);
	r->ret = read(r->pipe[0], &b, 1);
	r->err = errno;
	store(&r->read_done, 1);
	while (!load(&r->leave))
		sched_yield();
	sc_scope_exit();
	return NULL;
}

START_TEST(a_thread_in_a_scope_is_listed_with_its_token_and_the_syscall_it_waits_in)
{
	sc_token tok;
	struct scoped_reader r = { .tok = &tok };
	struct snap s;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	make_pipe(r.pipe);
	ck_assert_int_eq(pthread_create(&r.thread, NULL, scoped_read, &r), 0);
	wait_at_least(&r.entered, 1, "scope entered");
	wait_blocked((pid_t)load(&r.tid));
	take(&s);
	const sc_call_info *ci = must_find(&s, (pid_t)r.tid);
	ck_assert_int_eq(ci->in_scope, 1);
	ck_assert_ptr_eq(ci->token, &tok);
	ck_assert_int_eq(ci->cancelled, 0);
	ck_assert_int_eq(ci->deadline_ns, SC_NO_DEADLINE);
	/* Learnt from /proc; a thread seen running meanwhile shows -1. */
	ck_assert_msg(ci->syscall == SYS_read || ci->syscall == -1, "syscall %ld", ci->syscall);
	if (ci->syscall == SYS_read)
		ck_assert_int_eq(ci->arg, r.pipe[0]);

	ck_assert_int_eq(write(r.pipe[1], "x", 1), 1);
	wait_at_least(&r.read_done, 1, "read done");
	store(&r.leave, 1);
	join_within(r.thread, PROMPT_NS, "scoped reader");
	take(&s);
	ck_assert_msg(!find(&s, (pid_t)r.tid), "a thread out of its scope is still listed");
	close_pipe(r.pipe);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}
END_TEST

#if defined(__x86_64__)
START_TEST(a_cancelled_scope_is_listed_cancelled_with_the_cancel_s_cause)
{
	sc_token tok;
	struct scoped_reader r = { .tok = &tok };
	struct snap s;

	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	make_pipe(r.pipe);
	ck_assert_int_eq(pthread_create(&r.thread, NULL, scoped_read, &r), 0);
	wait_at_least(&r.entered, 1, "scope entered");
	wait_blocked((pid_t)load(&r.tid));
	ck_assert_int_eq(sc_cancel_cause(&tok, 4242), 0);
	wait_at_least(&r.read_done, 1, "the read in the cancelled scope ended");
	ck_assert_int_eq(r.ret, -1);
	ck_assert_int_eq(r.err, ECANCELED);
	take(&s);
	const sc_call_info *ci = must_find(&s, (pid_t)r.tid);
	ck_assert_int_eq(ci->in_scope, 1);
	ck_assert_int_eq(ci->cancelled, 1);
	ck_assert_int_eq(ci->cause, 4242);

	store(&r.leave, 1);
	join_within(r.thread, PROMPT_NS, "scoped reader");
	close_pipe(r.pipe);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}
END_TEST

static bool scopes_end_syscalls_here(void)
{
	return !SC_TSAN && !under_valgrind();
}
#endif

int main(void)
{
	Suite *s = suite_create("introspect");
	TCase *calls = add_tcase(s, "calls", 30, init_library);
	TCase *dump = add_tcase(s, "dump", 60, init_library);
	TCase *scopes = add_tcase(s, "scopes", 30, init_library);

	tcase_add_test(calls,
		       a_snapshot_lists_every_blocked_thread_with_its_tid_syscall_token_and_deadline);
	tcase_add_test(calls, ages_grow_between_two_snapshots_and_the_start_stays);
	tcase_add_test(calls, a_later_call_of_the_thread_gets_a_start_of_its_own);
	tcase_add_test(calls, a_cancelled_call_is_gone_from_the_snapshot_once_it_returned);
	tcase_add_test(calls, a_max_below_the_count_returns_the_count_and_fills_only_max);
	tcase_add_test(calls, bad_snapshot_and_dump_arguments_are_refused);
	tcase_add_test(calls, syscall_names_cover_the_library_s_calls_and_refuse_unknown_numbers);
	tcase_add_test(dump, a_dump_has_a_line_per_call_with_its_thread_call_token_age_and_deadline);
	tcase_add_test(dump,
		       sc_dump_from_a_signal_handler_while_calls_start_and_end_completes_every_time);
	if (!skipped_under_emulator("a thread in a scope is listed", QEMU_PROC_SYSCALL))
		tcase_add_test(scopes,
			a_thread_in_a_scope_is_listed_with_its_token_and_the_syscall_it_waits_in);
#if defined(__x86_64__)
	if (scopes_end_syscalls_here())
		tcase_add_test(scopes, a_cancelled_scope_is_listed_cancelled_with_the_cancel_s_cause);
#endif
	return run_suite(s, CK_FORK_GETENV);
}
