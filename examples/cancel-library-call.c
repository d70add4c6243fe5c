/*
 * cancel-library-call: abandon a library call that blocks inside.
 *
 * fetch_line() stands for a library function: it waits and reads in a loop
 * until it has a whole line, and it does all its blocking through sc_* calls
 * under the token its caller passes in.  The application runs it in a worker
 * thread three times: the reply arrives; the user gives up, which cancels the
 * session token with an application-defined cause; a deadline passes.  Each
 * time the caller reads back why the call ended with sc_token_cause().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <syscancel.h>

#define MS_NS 1000000LL
#define CAUSE_USER_STOP 1001	/* an application-defined cancel cause */

/* ---- the library: returns the line length, or -errno (-ECANCELED, ...) ---- */
static long fetch_line(sc_token *tok, int fd, char *line, size_t cap)
{
	size_t len = 0;

	while (len < cap - 1 && (len == 0 || line[len - 1] != '\n')) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		sc_result r = sc_poll(tok, &p, 1, -1);
		if (r.status == SC_OK)
			r = sc_read(tok, fd, line + len, cap - 1 - len);
		if (r.status != SC_OK)
			return -r.error;
		if (r.value == 0)
			break;
		len += r.value;
	}
	line[len] = 0;
	return len;
}

/* ---- the application ---- */
struct job {
	sc_token tok;		/* the call's token: a child of the session */
	int fd;
	char line[64];
	long ret;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	j->ret = fetch_line(&j->tok, j->fd, j->line, sizeof(j->line));
	return NULL;
}

enum action { REPLY, USER_STOP, DEADLINE };

/* Run fetch_line in a thread, act on it from here, check what came back. */
static int scenario(const char *title, enum action act, long want_ret, int want_cause)
{
	static const char reply[] = "200 OK\n";
	sc_token session;
	struct job j = { .ret = 1 };
	int fds[2], failed;
	pthread_t thread;

	if (pipe2(fds, O_CLOEXEC) < 0 || sc_token_init(&session, NULL) != 0 ||
	    sc_token_init(&j.tok, &session) != 0) {
		perror("setup");
		return 1;
	}
	j.fd = fds[0];
	if (act == DEADLINE)
		sc_token_set_timeout(&j.tok, 50 * MS_NS);
	int64_t t0 = sc_now_ns();
	if (pthread_create(&thread, NULL, job_main, &j) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	sc_sleep(NULL, 30 * MS_NS);	/* the call is blocked in the library by now */
	if (act == REPLY && write(fds[1], reply, strlen(reply)) < 0)
		perror("write");
	if (act == USER_STOP)
		sc_cancel_cause(&session, CAUSE_USER_STOP);
	pthread_join(thread, NULL);

	int cause = sc_token_cause(&j.tok);
	printf("%s\n  fetch_line returned %ld", title, j.ret);
	if (j.ret >= 0)
		printf(": \"%.*s\"", (int)strcspn(j.line, "\n"), j.line);
	else
		printf(" (%s)", strerror(-j.ret));
	printf(" after %.1f ms; sc_token_cause: %d (%s)\n", (sc_now_ns() - t0) / 1e6, cause,
	       cause == CAUSE_USER_STOP ? "CAUSE_USER_STOP" : cause ? strerror(cause) : "none");
	failed = j.ret != want_ret || cause != want_cause;
	if (failed)
		fprintf(stderr, "  expected %ld and cause %d\n", want_ret, want_cause);
	if (sc_token_destroy(&j.tok) != 0 || sc_token_destroy(&session) != 0)
		failed = 1;
	close(fds[0]);
	close(fds[1]);
	return failed;
}

int main(void)
{
	int failures = 0;

	failures += scenario("1. the reply arrives after 30 ms", REPLY, 7, 0);
	failures += scenario("2. at 30 ms the user stops the session: "
			     "sc_cancel_cause(&session, CAUSE_USER_STOP)",
			     USER_STOP, -ECANCELED, CAUSE_USER_STOP);
	failures += scenario("3. the call's token has a 50 ms deadline, no reply comes",
			     DEADLINE, -ETIMEDOUT, ETIMEDOUT);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
