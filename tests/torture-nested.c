/*
 * The cancel lands while an application handler runs on top of a blocked
 * read: when the handler returns, the read is cancelled, whether the
 * handler asked for a restart (the kernel restarts the read) or not (the
 * read sees EINTR).
 */
#define _GNU_SOURCE
#include "torture.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct nest {
	int fds[2];
	sc_token tok;
	long tid;
	long in_handler;
	long cancel_sent;
	long returned;
	sc_result res;
};

static struct nest *nest;

/* Holds the thread in the handler until the cancel has been sent. */
static void on_usr1(int sig)
{
	int64_t end = sc_now_ns() + PROMPT_NS;

	(void)sig;
	store(&nest->in_handler, 1);
	while (!load(&nest->cancel_sent) && sc_now_ns() < end)
		;
}

static void *reader(void *arg)
{
	struct nest *n = arg;
	char c;

	store(&n->tid, gettid());
	n->res = sc_read(&n->tok, n->fds[0], &c, 1);
	store(&n->returned, 1);
	return NULL;
}

static void install_usr1(int restart)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = restart ? SA_RESTART : 0 };

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
}

/* A hung read is counted, then released with a byte so the run can go on. */
static void await_return(struct nest *n, struct tally *t)
{
	int64_t since = sc_now_ns();

	while (!load(&n->returned)) {
		if (sc_now_ns() - since > HANG_NS) {
			add(&t->hangs, 1);
			ck_assert_int_eq(write(n->fds[1], "x", 1), 1);
			since = sc_now_ns() + 30 * SEC_NS;
		}
		sched_yield();
	}
}

static void one_nested_cancel(struct nest *n, struct tally *t)
{
	pthread_t th;

	memset(n, 0, sizeof(*n));
	make_pipe(n->fds);
	ck_assert_int_eq(sc_token_init(&n->tok, NULL), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, reader, n), 0);
	wait_at_least(&n->tid, 1, "reader starts");
	wait_blocked((pid_t)load(&n->tid));
	ck_assert_int_eq(tgkill(getpid(), (pid_t)n->tid, SIGUSR1), 0);
	wait_at_least(&n->in_handler, 1, "application handler starts");
	ck_assert_int_eq(sc_cancel(&n->tok), 0);
	t->attempts++;
	store(&n->cancel_sent, 1);
	await_return(n, t);
	join_within(th, PROMPT_NS, "nested reader");
	if (n->res.status == SC_CANCELLED)
		t->cancelled++;
	else
		t->errors++;
	ck_assert_int_eq(sc_token_destroy(&n->tok), 0);
	close_pipe(n->fds);
}

void torture_nested(int restart)
{
	struct tally t = { 0 };

	nest = calloc(1, sizeof(*nest));
	ck_assert_ptr_nonnull(nest);
	install_usr1(restart);
	for (long i = torture_scaled(100); i > 0; i--)
		one_nested_cancel(nest, &t);
	t.stray_signals = (long)stray_signals();
	tally_report(restart ? "nested restart" : "nested no-restart", &t, landings());
	free(nest);
}
