#define _GNU_SOURCE
#include "helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>	/* installed with valgrind itself */
#endif

#define CHILD_BOUND_NS (10 * SEC_NS)
#define BLOCK_BOUND_NS (10 * SEC_NS)

void init_library(void)
{
	ck_assert_int_eq(sc_init(&(sc_config){ 0 }), 0);
}

TCase *add_tcase(Suite *s, const char *name, double timeout_s, void (*setup)(void))
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, timeout_s);
	if (setup)
		tcase_add_checked_fixture(tc, setup, NULL);
	suite_add_tcase(s, tc);
	return tc;
}

int run_suite(Suite *s, enum fork_status mode)
{
	SRunner *sr = srunner_create(s);

	srunner_set_fork_status(sr, mode);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);

	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void wait_at_least(const long *p, long v, const char *what, ...)
{
	int64_t end = sc_now_ns() + PROMPT_NS;
	char msg[160];
	va_list ap;

	va_start(ap, what);
	vsnprintf(msg, sizeof(msg), what, ap);
	va_end(ap);
	while (load(p) < v) {
		ck_assert_msg(sc_now_ns() < end, "%s: stuck at %ld, waiting for %ld", msg,
			      load(p), v);
		sched_yield();
	}
}

int64_t stretched(int64_t ns)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	long k = m ? strtol(m, NULL, 10) : 1;

	return k > 1 ? ns * k : ns;
}

void spin_ns(int64_t ns)
{
	int64_t end = sc_now_ns() + ns;

	while (sc_now_ns() < end)
		;
}

void join_within(pthread_t t, int64_t ns, const char *what)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);	/* pthread_timedjoin_np's clock */
	ts.tv_sec += ns / SEC_NS;
	ts.tv_nsec += ns % SEC_NS;
	if (ts.tv_nsec >= SEC_NS) {
		ts.tv_sec++;
		ts.tv_nsec -= SEC_NS;
	}
	ck_assert_msg(pthread_timedjoin_np(t, NULL, &ts) == 0, "%s did not finish", what);
}

char thread_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	const char *p = strrchr(buf, ')');	/* the name may hold spaces */
	return p && p[1] == ' ' ? p[2] : '?';
}

void wait_blocked(pid_t tid)
{
	int64_t end = sc_now_ns() + BLOCK_BOUND_NS;
	for (;;) {
		char s = thread_state(tid);
		if (s == 'S')	/* D is not a cancellable wait: library setup sleeps there */
			return;
		ck_assert_msg(sc_now_ns() < end, "thread %d never blocked (state %c)", tid, s);
		sched_yield();
	}
}

static const char *status_name(sc_status s)
{
	static const char *const names[] = {
		[SC_OK] = "SC_OK",
		[SC_ERROR] = "SC_ERROR",
		[SC_CANCELLED] = "SC_CANCELLED",
		[SC_TIMEDOUT] = "SC_TIMEDOUT",
	};

	return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "an unknown status";
}

/* The error each status but SC_ERROR comes with. */
static int implied_error(sc_status s)
{
	return s == SC_CANCELLED ? ECANCELED : s == SC_TIMEDOUT ? ETIMEDOUT : 0;
}

static void assert_result(sc_result r, sc_status status, int error, const char *what)
{
	ck_assert_msg(r.status == status && r.error == error,
		      "%s: expected %s error %d, got %s error %d (%s) value %ld", what,
		      status_name(status), error, status_name(r.status), r.error,
		      strerror(r.error), r.value);
}

void assert_ok(sc_result r, long value)
{
	assert_result(r, SC_OK, 0, "call");
	ck_assert_msg(r.value == value, "expected SC_OK value %ld, got value %ld", value, r.value);
}

void assert_cancelled(sc_result r)
{
	assert_result(r, SC_CANCELLED, ECANCELED, "call");
}

void assert_error(sc_result r, int error)
{
	assert_result(r, SC_ERROR, error, "call");
}

void assert_status(sc_result r, sc_status want, const char *what, ...)
{
	char msg[160];
	va_list ap;

	va_start(ap, what);
	vsnprintf(msg, sizeof(msg), what, ap);
	va_end(ap);
	if (want == SC_ERROR)
		ck_assert_msg(r.status == SC_ERROR, "%s: expected SC_ERROR, got %s value %ld", msg,
			      status_name(r.status), r.value);
	else
		assert_result(r, want, implied_error(want), msg);
}

static void *bg_main(void *arg)
{
	struct bg_call *c = arg;
	__atomic_store_n(&c->tid, gettid(), __ATOMIC_RELEASE);
	c->res = c->fn(c);
	c->returned_ns = sc_now_ns();
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

void bg_start(struct bg_call *c)
{
	c->tid = 0;
	c->done = 0;
	ck_assert_int_eq(pthread_create(&c->thread, NULL, bg_main, c), 0);
	while (!__atomic_load_n(&c->tid, __ATOMIC_ACQUIRE))
		sched_yield();
}

bool bg_done(const struct bg_call *c)
{
	return __atomic_load_n(&c->done, __ATOMIC_ACQUIRE);
}

bool bg_wait_blocked(struct bg_call *c)
{
	int64_t end = sc_now_ns() + BLOCK_BOUND_NS;
	for (;;) {
		char s = thread_state(c->tid);
		if (s == 'S')	/* D is not a cancellable wait: library setup sleeps there */
			return !bg_done(c);
		if (bg_done(c))	/* the thread is gone: its state says nothing */
			return false;
		ck_assert_msg(sc_now_ns() < end, "thread %d never blocked (state %c)", c->tid, s);
		sched_yield();
	}
}

void bg_start_blocked(struct bg_call *c)
{
	bg_start(c);
	ck_assert_msg(bg_wait_blocked(c),
		      "call in thread %d returned instead of blocking: %s error %d (%s) value %ld",
		      c->tid, status_name(c->res.status), c->res.error, strerror(c->res.error),
		      c->res.value);
}

sc_result bg_wait(struct bg_call *c)
{
	int64_t end = sc_now_ns() + PROMPT_NS;
	while (!bg_done(c)) {
		ck_assert_msg(sc_now_ns() < end, "call in thread %d did not return", c->tid);
		sched_yield();
	}
	return c->res;
}

sc_result bg_join(struct bg_call *c)
{
	sc_result r = bg_wait(c);

	pthread_join(c->thread, NULL);
	return r;
}

sc_result bg_read(struct bg_call *c)
{
	return sc_read(c->tok, c->fd, c->buf, sizeof(c->buf));
}

void bg_pipe(struct bg_call *c)
{
	int p[2];

	make_pipe(p);
	c->fd = p[0];
	c->peer = p[1];
}

void bg_close_pipe(struct bg_call *c)
{
	close(c->fd);
	close(c->peer);
}

void bg_read_blocked(struct bg_call *c, sc_token *tok)
{
	*c = (struct bg_call){ .fn = bg_read, .tok = tok };
	bg_pipe(c);
	bg_start_blocked(c);
}

void make_pipe(int fds[2])
{
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
}

void make_pipe_with_byte(int fds[2])
{
	make_pipe(fds);
	ck_assert_int_eq(write(fds[1], "x", 1), 1);
}

void assert_byte_still_readable(int fd)
{
	char b = 0;

	ck_assert_int_eq(read(fd, &b, 1), 1);
	ck_assert_int_eq(b, 'x');
}

void close_pipe(int fds[2])
{
	close(fds[0]);
	close(fds[1]);
}

int make_listener(struct sockaddr_storage *addr, socklen_t *alen, int backlog)
{
	struct sockaddr_in *in = (struct sockaddr_in *)addr;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	memset(addr, 0, sizeof(*addr));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*alen = sizeof(*in);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)in, *alen), 0);
	ck_assert_int_eq(listen(fd, backlog), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, alen), 0);
	return fd;
}

void chain_init(struct token_chain *ch)
{
	ck_assert_int_eq(sc_token_init(&ch->root, NULL), 0);
	ck_assert_int_eq(sc_token_init(&ch->mid, &ch->root), 0);
	ck_assert_int_eq(sc_token_init(&ch->leaf, &ch->mid), 0);
}

void chain_destroy(struct token_chain *ch)
{
	ck_assert_int_eq(sc_token_destroy(&ch->leaf), 0);
	ck_assert_int_eq(sc_token_destroy(&ch->mid), 0);
	ck_assert_int_eq(sc_token_destroy(&ch->root), 0);
}

void install_handler(int sig, void (*fn)(int), int flags, const sigset_t *mask)
{
	struct sigaction sa = { .sa_handler = fn, .sa_flags = flags };

	if (mask)
		sa.sa_mask = *mask;
	else
		sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(sig, &sa, NULL), 0);
}

void assert_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;

	ck_assert_int_eq(sigaction(sig, NULL, &sa), 0);
	ck_assert_msg(sa.sa_handler == fn && !(sa.sa_flags & SA_SIGINFO),
		      "signal %d: handler %p flags %#x, expected %p without SA_SIGINFO", sig,
		      (void *)sa.sa_handler, (unsigned)sa.sa_flags, (void *)fn);
}

void assert_library_handles(int sig)
{
	struct sigaction sa;

	ck_assert_int_eq(sigaction(sig, NULL, &sa), 0);
	ck_assert(sa.sa_flags & SA_SIGINFO);
	ck_assert_ptr_ne((void *)sa.sa_sigaction, (void *)SIG_DFL);
	ck_assert_ptr_ne((void *)sa.sa_sigaction, (void *)SIG_IGN);
}

/* Whether child pid exits within ns; it stays waitable. */
static bool exits_within(pid_t pid, int64_t ns)
{
	/* valgrind 3.19 has no pidfd_open: there, look every millisecond. */
	int fd = under_valgrind() ? -1 : syscall(SYS_pidfd_open, pid, 0);
	int64_t end = sc_now_ns() + ns;
	siginfo_t si;

	if (fd >= 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n = poll(&pfd, 1, ns / MS_NS);
		close(fd);
		return n == 1;
	}
	ck_assert_msg(under_valgrind(), "pidfd_open: %s", strerror(errno));
	do {
		si.si_pid = 0;
		ck_assert_int_eq(waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT), 0);
		if (si.si_pid)
			return true;
		poll(NULL, 0, 1);
	} while (sc_now_ns() < end);
	return false;
}

int wait_child(pid_t pid)
{
	bool exited = exits_within(pid, CHILD_BOUND_NS);
	int st;

	if (!exited)
		kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(exited, "child %d did not exit within %lld ms", pid,
		      (long long)(CHILD_BOUND_NS / MS_NS));
	return st;
}

void assert_child_succeeded(pid_t pid)
{
	int st = wait_child(pid);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "child failed: %s %d", WIFEXITED(st) ? "exit" : "signal",
		      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

bool under_valgrind(void)
{
#ifdef RUNNING_ON_VALGRIND
	return RUNNING_ON_VALGRIND;
#else
	return false;
#endif
}

bool skipped_under_emulator(const char *test, const char *why)
{
	const char *e = getenv("SC_EMULATOR");

	if (!e || !*e)
		return false;
	printf("%s: SKIP under %s: %s\n", test, e, why);
	return true;
}

bool backend_is_uring(void)
{
	const char *b = getenv("SYSCANCEL_BACKEND");

	return b && !strcmp(b, "uring");
}
