/*
 * Scopes reach code that knows nothing of syscancel: hiredis blocked in a
 * BLPOP on a redis-server of the test's own, libcurl waiting for the reply
 * of a socket that never answers.  A cancel or a deadline ends the library
 * call with an error, and once the thread has left the scope the same
 * library works again.  Delays are printed, and only bounded generously.
 */
#define _GNU_SOURCE
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
#ifdef HAVE_LIBCURL
#include <curl/curl.h>
#endif

#include <syscancel.h>
#include "helpers.h"

#if defined(__x86_64__)

#define BLOCK_BOUND_NS (10 * SEC_NS)

static double ms(int64_t ns)
{
	return ns / 1e6;
}

/*
 * Whether thread tid sleeps in a syscall: on descriptor fd if fd >= 0, else
 * in any syscall but a futex wait (a lock, not the call under test).
 */
static bool sleeps_in_syscall(pid_t tid, int fd)
{
	char path[64], buf[256];
	long nr;
	unsigned long arg0;

	if (thread_state(tid) != 'S')
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return true;	/* unreadable here: the state is all there is */
	ssize_t n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return false;
	buf[n] = 0;
	if (sscanf(buf, "%ld %lx", &nr, &arg0) != 2)
		return false;	/* "running" */
	return fd >= 0 ? arg0 == (unsigned long)fd : nr != SYS_futex;
}

static void wait_sleeping_in_syscall(pid_t tid, int fd)
{
	int64_t end = sc_now_ns() + BLOCK_BOUND_NS;

	while (!sleeps_in_syscall(tid, fd)) {
		ck_assert_msg(sc_now_ns() < end, "thread %d never blocked in a syscall%s", tid,
			      fd >= 0 ? " on its socket" : "");
		sched_yield();
	}
}

/* The worker's part of a scoped library call, with the scope calls' results. */
struct scoped {
	sc_token tok;
	int port;
	int enter_err;
	int exit_err;
	int64_t returned_ns;	/* when the library call returned */
	long stage;		/* 1 once the scoped call has returned */
};

#ifdef HAVE_HIREDIS
/* ---- hiredis against a redis-server of the test's own ---- */

#define REDIS_ATTEMPTS 5

static struct {
	pid_t pid;
	int port;
} srv;

static int free_port(void)
{
	struct sockaddr_storage addr;
	socklen_t alen;
	int fd = make_listener(&addr, &alen, 1);
	int port = ntohs(((struct sockaddr_in *)&addr)->sin_port);

	close(fd);	/* a listener that took no connection leaves no TIME_WAIT */
	return port;
}

static pid_t spawn_redis(int port)
{
	char port_arg[16];
	pid_t parent = getpid();
	sigset_t none;

	snprintf(port_arg, sizeof(port_arg), "%d", port);
	sigemptyset(&none);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Gone with the test process, even when it dies in an assertion. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl(REDIS_SERVER, "redis-server", "--port", port_arg, "--bind", "127.0.0.1",
		      "--save", "", "--appendonly", "no", "--daemonize", "no",
		      "--loglevel", "warning", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static redisReply *command(redisContext *c, const char *cmd)
{
	redisReply *r = redisCommand(c, cmd);

	ck_assert_msg(r, "%s: %s", cmd, c->errstr);
	return r;
}

static bool is_status(const redisReply *r, const char *s)
{
	return r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, s);
}

/* INFO section's integer field name, e.g. blocked_clients in "clients". */
static long info_field(redisContext *c, const char *section, const char *name)
{
	char cmd[32], key[64];

	snprintf(cmd, sizeof(cmd), "INFO %s", section);
	snprintf(key, sizeof(key), "\n%s:", name);
	redisReply *r = command(c, cmd);
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	const char *p = strstr(r->str, key);
	ck_assert_msg(p, "INFO %s has no %s", section, name);
	long v = strtol(p + strlen(key), NULL, 10);
	freeReplyObject(r);
	return v;
}

/* Whether our redis-server answers PING on its port (not some other process there). */
static bool redis_answers(pid_t pid, int port)
{
	redisContext *c = redisConnect("127.0.0.1", port);
	bool ours = false;

	if (c && !c->err) {
		redisReply *r = redisCommand(c, "PING");
		ours = is_status(r, "PONG") && info_field(c, "server", "process_id") == pid;
		freeReplyObject(r);
	}
	redisFree(c);
	return ours;
}

/* Wait until redis-server pid answers on port: true; false if it exited first. */
static bool wait_redis_ready(pid_t pid, int port)
{
	int64_t end = sc_now_ns() + BLOCK_BOUND_NS;
	int st;

	while (!redis_answers(pid, port)) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return false;
		if (sc_now_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			ck_abort_msg("redis-server did not answer on port %d", port);
		}
		poll(NULL, 0, 1);	/* between connection attempts */
	}
	return true;
}

static void redis_setup(void)
{
	init_library();
	/* Someone may take the free port before redis binds it: then try another. */
	for (int i = 0; i < REDIS_ATTEMPTS; i++) {
		srv.port = free_port();
		srv.pid = spawn_redis(srv.port);
		if (wait_redis_ready(srv.pid, srv.port))
			return;
	}
	ck_abort_msg("redis-server failed to start %d times", REDIS_ATTEMPTS);
}

static void redis_teardown(void)
{
	ck_assert_int_eq(kill(srv.pid, SIGTERM), 0);
	int st = wait_child(srv.pid);

	ck_assert_msg(WIFEXITED(st), "redis-server ended by signal %d", WTERMSIG(st));
}

static redisContext *redis_connect(void)
{
	redisContext *c = redisConnect("127.0.0.1", srv.port);

	ck_assert_msg(c && !c->err, "connect to redis-server: %s", c ? c->errstr : "no memory");
	return c;
}

/* Wait until the server counts n clients blocked in BLPOP. */
static void wait_blocked_clients(redisContext *ctl, long n)
{
	int64_t end = sc_now_ns() + PROMPT_NS;
	long now;

	while ((now = info_field(ctl, "clients", "blocked_clients")) != n)
		ck_assert_msg(sc_now_ns() < end, "blocked_clients stuck at %ld, waiting for %ld",
			      now, n);
}

struct redis_job {
	struct scoped s;
	redisContext *c;	/* connected before the scope */
	int fd;
	bool got_reply;
	int err;
	char errstr[128];
	bool pong_after;	/* a new connection, outside any scope */
	bool pong_in_new_scope;	/* the same, inside a scope of a live token */
};

static bool ping(redisContext *c)
{
	redisReply *r = redisCommand(c, "PING");
	bool ok = is_status(r, "PONG");

	freeReplyObject(r);
	return ok;
}

/* Runs BLPOP in a scope of j->s.tok, then checks redis works outside it. */
static sc_result redis_blpop_scoped(struct bg_call *bg)
{
	struct redis_job *j = bg->arg;
	sc_token live;

	j->s.enter_err = sc_scope_enter(&j->s.tok);
	if (j->s.enter_err)
		return (sc_result){ .status = SC_ERROR, .error = j->s.enter_err };
	redisReply *r = redisCommand(j->c, "BLPOP q 0");
	j->s.returned_ns = sc_now_ns();
	j->got_reply = r != NULL;
	j->err = j->c->err;
	memcpy(j->errstr, j->c->errstr, sizeof(j->errstr));
	freeReplyObject(r);
	j->s.exit_err = sc_scope_exit();
	store(&j->s.stage, 1);
	redisFree(j->c);

	redisContext *c = redisConnect("127.0.0.1", j->s.port);
	if (!c || c->err) {
		redisFree(c);
		return (sc_result){ .status = SC_ERROR, .error = EIO };
	}
	j->pong_after = ping(c);
	if (!sc_token_init(&live, NULL)) {
		if (!sc_scope_enter(&live)) {
			j->pong_in_new_scope = ping(c);
			sc_scope_exit();
		}
		sc_token_destroy(&live);
	}
	redisFree(c);
	return (sc_result){ 0 };
}

static void redis_job_start(struct bg_call *bg, struct redis_job *j)
{
	*j = (struct redis_job){ .s.port = srv.port };
	*bg = (struct bg_call){ .fn = redis_blpop_scoped, .arg = j };
	j->c = redis_connect();
	j->fd = j->c->fd;
}

/* The worker failed the BLPOP with an error naming why, and redis works after the scope. */
static void assert_blpop_failed(struct bg_call *bg, struct redis_job *j, const char *why)
{
	sc_result r = bg_join(bg);

	ck_assert_int_eq(j->s.enter_err, 0);
	ck_assert_msg(r.status == SC_OK, "no new connection after the scope: %s",
		      strerror(r.error));
	ck_assert_msg(!j->got_reply, "BLPOP returned a reply");
	ck_assert_int_eq(j->err, REDIS_ERR_IO);
	ck_assert_msg(strcasestr(j->errstr, why), "BLPOP failed with \"%s\", expected \"%s\"",
		      j->errstr, why);
	ck_assert_int_eq(j->s.exit_err, 0);
	ck_assert_msg(j->pong_after, "no PONG on a new connection after the scope");
	ck_assert_msg(j->pong_in_new_scope, "no PONG in a scope of a live token");
}

START_TEST(a_hiredis_BLPOP_in_a_scope_fails_with_ECANCELED_when_cancelled)
{
	struct redis_job j;
	struct bg_call bg;
	redisContext *ctl = redis_connect();

	redis_job_start(&bg, &j);
	ck_assert_int_eq(sc_token_init(&j.s.tok, NULL), 0);
	bg_start(&bg);
	wait_blocked_clients(ctl, 1);
	wait_sleeping_in_syscall(bg.tid, j.fd);
	int64_t t0 = sc_now_ns();
	ck_assert_int_eq(sc_cancel(&j.s.tok), 0);
	wait_at_least(&j.s.stage, 1, "BLPOP returning after the cancel");
	int64_t took = j.s.returned_ns - t0;
	printf("hiredis BLPOP: \"%s\" %.3f ms after sc_cancel\n", j.errstr, ms(took));
	fflush(stdout);
	assert_blpop_failed(&bg, &j, strerror(ECANCELED));
	ck_assert_int_lt(took, PROMPT_NS);
	/* The server saw the connection go: nothing of the BLPOP is left. */
	wait_blocked_clients(ctl, 0);
	redisFree(ctl);
	ck_assert_int_eq(sc_token_destroy(&j.s.tok), 0);
}
END_TEST

START_TEST(a_hiredis_BLPOP_in_a_scope_fails_with_ETIMEDOUT_at_the_deadline)
{
	const int64_t timeout = 100 * MS_NS;
	struct redis_job j;
	struct bg_call bg;

	redis_job_start(&bg, &j);
	ck_assert_int_eq(sc_token_init(&j.s.tok, NULL), 0);
	int64_t t0 = sc_now_ns();
	ck_assert_int_eq(sc_token_set_timeout(&j.s.tok, timeout), 0);
	bg_start(&bg);
	wait_at_least(&j.s.stage, 1, "BLPOP returning at the deadline");
	int64_t took = j.s.returned_ns - t0;
	printf("hiredis BLPOP: \"%s\" after %.3f ms, deadline %.0f ms\n", j.errstr, ms(took),
	       ms(timeout));
	fflush(stdout);
	assert_blpop_failed(&bg, &j, strerror(ETIMEDOUT));
	ck_assert_int_ge(took, timeout);
	ck_assert_int_lt(took, timeout + PROMPT_NS);
	ck_assert_int_eq(sc_token_destroy(&j.s.tok), 0);
}
END_TEST
#endif /* HAVE_HIREDIS */

#ifdef HAVE_LIBCURL
/* ---- libcurl against the test's own socket ---- */

static const char http_reply[] =
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

struct curl_job {
	struct scoped s;
	bool then_answered;	/* a second request follows, outside the scope */
	CURLcode rc;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode rc_after;
	long http_code;
	char body[16];
	size_t body_len;
};

static int listener_port(const struct sockaddr_storage *addr)
{
	return ntohs(((const struct sockaddr_in *)addr)->sin_port);
}

static size_t keep_body(char *data, size_t size, size_t n, void *arg)
{
	struct curl_job *j = arg;
	size_t room = sizeof(j->body) - 1 - j->body_len;
	size_t len = size * n < room ? size * n : room;

	memcpy(j->body + j->body_len, data, len);
	j->body_len += len;
	return size * n;
}

static CURL *curl_handle(struct curl_job *j)
{
	char url[64];
	CURL *h = curl_easy_init();

	if (!h)
		return NULL;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", j->s.port);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROXY, "");	/* no proxy from the environment */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
	return h;
}

/* curl_easy_perform in a scope of j->s.tok; then, if asked, again outside it. */
static sc_result curl_perform_scoped(struct bg_call *bg)
{
	struct curl_job *j = bg->arg;
	CURL *h = curl_handle(j);

	if (!h)
		return (sc_result){ .status = SC_ERROR, .error = ENOMEM };
	j->s.enter_err = sc_scope_enter(&j->s.tok);
	if (j->s.enter_err) {
		curl_easy_cleanup(h);
		return (sc_result){ .status = SC_ERROR, .error = j->s.enter_err };
	}
	j->rc = curl_easy_perform(h);
	j->s.returned_ns = sc_now_ns();
	j->s.exit_err = sc_scope_exit();
	store(&j->s.stage, 1);
	if (j->then_answered) {
		j->body_len = 0;
		j->rc_after = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->http_code);
	}
	curl_easy_cleanup(h);
	return (sc_result){ 0 };
}

/* Wait until listener has a connection to accept; accept it. */
static int accept_within(int listener, int64_t ns)
{
	struct pollfd p = { .fd = listener, .events = POLLIN };

	ck_assert_msg(poll(&p, 1, ns / MS_NS) == 1, "no connection from curl");
	int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Read an HTTP request's head from fd: curl has sent all it will send. */
static void read_request(int fd)
{
	char req[2048];
	size_t len = 0;
	int64_t end = sc_now_ns() + PROMPT_NS;

	req[0] = 0;
	while (!strstr(req, "\r\n\r\n")) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = end - sc_now_ns();

		ck_assert_msg(left > 0 && poll(&p, 1, left / MS_NS + 1) == 1,
			      "no whole request from curl: \"%s\"", req);
		ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
		ck_assert_msg(n > 0, "request cut short: \"%s\"", req);
		len += n;
		req[len] = 0;
	}
}

START_TEST(a_curl_request_in_a_scope_fails_when_the_token_is_cancelled)
{
	struct sockaddr_storage addr;
	socklen_t alen;
	struct curl_job j = { .then_answered = true };
	struct bg_call bg = { .fn = curl_perform_scoped, .arg = &j };
	int listener = make_listener(&addr, &alen, 4);

	j.s.port = listener_port(&addr);
	ck_assert_int_eq(sc_token_init(&j.s.tok, NULL), 0);
	bg_start(&bg);
	int mute = accept_within(listener, PROMPT_NS);
	read_request(mute);
	wait_sleeping_in_syscall(bg.tid, -1);
	int64_t t0 = sc_now_ns();
	ck_assert_int_eq(sc_cancel(&j.s.tok), 0);
	wait_at_least(&j.s.stage, 1, "curl_easy_perform returning after the cancel");
	int64_t took = j.s.returned_ns - t0;
	printf("curl_easy_perform: %d (%s%s%s) %.3f ms after sc_cancel\n", j.rc,
	       curl_easy_strerror(j.rc), *j.errbuf ? ": " : "", j.errbuf, ms(took));
	fflush(stdout);
	ck_assert_int_eq(j.s.enter_err, 0);
	ck_assert_int_ne(j.rc, CURLE_OK);
	ck_assert_int_lt(took, PROMPT_NS);
	ck_assert_int_eq(j.s.exit_err, 0);
	close(mute);

	/* Out of the scope, the same handle gets an answer. */
	int answering = accept_within(listener, PROMPT_NS);
	read_request(answering);
	ck_assert_int_eq(send(answering, http_reply, strlen(http_reply), MSG_NOSIGNAL),
			 (ssize_t)strlen(http_reply));
	ck_assert_int_eq(bg_join(&bg).status, SC_OK);
	close(answering);
	ck_assert_msg(j.rc_after == CURLE_OK, "request after the scope: %d (%s: %s)", j.rc_after,
		      curl_easy_strerror(j.rc_after), j.errbuf);
	ck_assert_int_eq(j.http_code, 200);
	ck_assert_str_eq(j.body, "ok");
	close(listener);
	ck_assert_int_eq(sc_token_destroy(&j.s.tok), 0);
}
END_TEST

START_TEST(a_curl_request_in_a_scope_fails_at_the_tokens_deadline)
{
	const int64_t timeout = 200 * MS_NS;
	struct sockaddr_storage addr;
	socklen_t alen;
	struct curl_job j = { 0 };
	struct bg_call bg = { .fn = curl_perform_scoped, .arg = &j };
	/* Never accepted: the connection waits in the backlog, the request in its buffer. */
	int listener = make_listener(&addr, &alen, 4);

	j.s.port = listener_port(&addr);
	ck_assert_int_eq(sc_token_init(&j.s.tok, NULL), 0);
	int64_t t0 = sc_now_ns();
	ck_assert_int_eq(sc_token_set_timeout(&j.s.tok, timeout), 0);
	bg_start(&bg);
	ck_assert_int_eq(bg_join(&bg).status, SC_OK);
	int64_t took = j.s.returned_ns - t0;
	printf("curl_easy_perform: %d (%s%s%s) after %.3f ms, deadline %.0f ms\n", j.rc,
	       curl_easy_strerror(j.rc), *j.errbuf ? ": " : "", j.errbuf, ms(took), ms(timeout));
	fflush(stdout);
	ck_assert_int_eq(j.s.enter_err, 0);
	ck_assert_int_ne(j.rc, CURLE_OK);
	ck_assert_int_ge(took, timeout);
	ck_assert_int_lt(took, timeout + PROMPT_NS);
	ck_assert_int_eq(j.s.exit_err, 0);
	close(listener);
	ck_assert_int_eq(sc_token_destroy(&j.s.tok), 0);
}
END_TEST
#endif /* HAVE_LIBCURL */

int main(void)
{
	Suite *s;
	TCase *tc;
	int status;

	/* The signal path's program-counter check is what reaches foreign code. */
	if (under_valgrind() || SC_TSAN) {
		puts("scopes do not work under valgrind or ThreadSanitizer: skipped");
		return 77;
	}
	s = suite_create("scope_libs");
#ifdef HAVE_HIREDIS
	tc = add_tcase(s, "hiredis", 30, NULL);
	tcase_add_checked_fixture(tc, redis_setup, redis_teardown);
	tcase_add_test(tc, a_hiredis_BLPOP_in_a_scope_fails_with_ECANCELED_when_cancelled);
	tcase_add_test(tc, a_hiredis_BLPOP_in_a_scope_fails_with_ETIMEDOUT_at_the_deadline);
#endif
#ifdef HAVE_LIBCURL
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {	/* before any thread */
		puts("curl_global_init failed");
		return 99;
	}
	tc = add_tcase(s, "libcurl", 30, init_library);
	tcase_add_test(tc, a_curl_request_in_a_scope_fails_when_the_token_is_cancelled);
	tcase_add_test(tc, a_curl_request_in_a_scope_fails_at_the_tokens_deadline);
#endif
	(void)tc;
	status = run_suite(s, CK_FORK_GETENV);
#ifdef HAVE_LIBCURL
	curl_global_cleanup();
#endif
	return status;
}

#else /* !__x86_64__ */

int main(void)
{
	puts("scopes need x86_64: skipped");
	return 77;
}

#endif
