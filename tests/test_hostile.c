/*
 * Hostile processes: threads that block the library's signal and read
 * signals through a signalfd, handlers replaced or ignored after
 * initialisation, and a thread whose io_uring cannot be made.  No call
 * hangs, the library's signal is never anyone's data, and a cancel that
 * cannot reach a call says so.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

/* Descriptors taken until none is left; given back by give_back_descriptors(). */
struct filler {
	int fds[256];
	int n;
	struct rlimit old;
};

static void use_up_descriptors(struct filler *f)
{
	struct rlimit low;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &f->old), 0);
	low = f->old;
	low.rlim_cur = 64;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	f->n = 0;
	while (f->n < ARRAY_SIZE(f->fds) && (f->fds[f->n] = dup(0)) >= 0)
		f->n++;
	ck_assert_int_eq(errno, EMFILE);
}

static void give_back_descriptors(struct filler *f)
{
	while (f->n)
		close(f->fds[--f->n]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &f->old), 0);
}

/* Asks for io_uring, then reads the byte waiting and blocks in a second read. */
static sc_result read_twice_asking_for_the_ring(struct bg_call *c)
{
	sc_result r;

	ck_assert_int_eq(sc_thread_backend(SC_BACKEND_URING), 0);
	r = sc_read(c->tok, c->fd, c->buf, 1);
	store(c->arg, 1);
	if (r.status != SC_OK)
		return r;
	return bg_read(c);
}

/*
 * A thread whose ring cannot be made, as at thousands of threads with one
 * descriptor each: its calls run on the signal path, complete and cancel.
 */
START_TEST(a_thread_whose_ring_cannot_be_made_takes_the_signal_path)
{
	long first_done = 0;
	struct bg_call c = { .fn = read_twice_asking_for_the_ring, .arg = &first_done };
	struct filler f;
	sc_token tok;

	if (sc_thread_backend(SC_BACKEND_URING) == ENOTSUP)
		return;		/* no io_uring here: nothing to fall back from */
	ck_assert_int_eq(sc_thread_backend(SC_BACKEND_DEFAULT), 0);
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	c.tok = &tok;
	bg_pipe(&c);
	ck_assert_int_eq(write(c.peer, "x", 1), 1);
	use_up_descriptors(&f);
	bg_start(&c);
	wait_at_least(&first_done, 1, "first call");
	/* The thread stays on the signal path; looking at it needs descriptors again. */
	give_back_descriptors(&f);
	ck_assert_msg(bg_wait_blocked(&c), "first read: status %d error %d",
		      c.res.status, c.res.error);
	ck_assert_int_eq(c.buf[0], 'x');
	ck_assert_int_eq(sc_cancel(&tok), 0);
	assert_cancelled(bg_join(&c));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

/* What a thread that reads its signals through a signalfd shares with the test. */
struct sigfd_reader {
	int blocked_first;	/* all signals blocked before the first call, which unblocks the library's */
	int sfd;
	int poll;		/* poll the signalfd instead of reading it */
	long ready;		/* the signalfd is made, its call about to start */
	struct signalfd_siginfo info;
};

/*
 * The common pattern: after a first call of the library, block every signal
 * and take them from a signalfd whose mask holds them all, the library's too.
 */
static sc_result read_signals_through_a_signalfd(struct bg_call *c)
{
	struct sigfd_reader *r = c->arg;
	sigset_t all;

	sigfillset(&all);
	if (r->blocked_first)
		pthread_sigmask(SIG_BLOCK, &all, NULL);
	assert_ok(sc_sleep(NULL, 0), 0);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	r->sfd = signalfd(-1, &all, SFD_CLOEXEC);
	ck_assert_int_ge(r->sfd, 0);
	store(&r->ready, 1);
	if (r->poll) {
		struct pollfd pfd = { .fd = r->sfd, .events = POLLIN };
		return sc_poll(c->tok, &pfd, 1, -1);
	}
	return sc_read(c->tok, r->sfd, &r->info, sizeof(r->info));
}

static void start_signalfd_reader(struct bg_call *c, struct sigfd_reader *r, sc_token *tok)
{
	*c = (struct bg_call){ .fn = read_signals_through_a_signalfd, .tok = tok, .arg = r };
	ck_assert_int_eq(sc_token_init(tok, NULL), 0);
	bg_start(c);
	wait_at_least(&r->ready, 1, "signalfd made");
	ck_assert(bg_wait_blocked(c));
}

/* The call is still waiting for a while: nothing the library did woke it. */
static void assert_still_waiting(struct bg_call *c)
{
	int64_t end = sc_now_ns() + 100000000;

	while (sc_now_ns() < end) {
		ck_assert_msg(!bg_done(c), "the call returned: status %d value %ld",
			      c->res.status, c->res.value);
		sched_yield();
	}
}

/* Only the application's own signal is in the signalfd: the library's never. */
static void assert_only_application_signals(int sfd, const struct signalfd_siginfo *first)
{
	struct signalfd_siginfo more;

	if (first)
		ck_assert_int_eq(first->ssi_signo, SIGUSR1);
	ck_assert_int_eq(fcntl(sfd, F_SETFL, O_NONBLOCK), 0);
	while (read(sfd, &more, sizeof(more)) == sizeof(more))
		ck_assert_msg(more.ssi_signo != (unsigned)sc_signal_number(),
			      "the library's signal read from a signalfd");
	ck_assert_int_eq(errno, EAGAIN);
}

/*
 * _i 0: a read of the signalfd is cancelled; 1: it has a deadline; 2: a poll
 * of it is cancelled; 3, 4: a read and a poll cancelled in a thread that
 * blocked every signal before its first call, which unblocked the
 * library's.  The library's signal cannot reach the call (the thread blocks
 * it, or the signalfd would take it first): a cancel says so with EIO, and
 * nothing is sent that the signalfd could hand over as data or report as
 * ready.  The call ends on the application's own signal, with it.
 */
START_TEST(a_signalfd_that_holds_the_library_signal_never_gets_it)
{
	struct sigfd_reader r = { .poll = _i == 2 || _i == 4, .blocked_first = _i >= 3,
 };
	struct bg_call c;
	sc_token tok;

	if (backend_is_uring() && !r.poll)
		return;		/* a read of a signalfd on the ring needs no signal */
	/*
	 * Valgrind makes the syscall from its own code: a canceller cannot tell
	 * the call's wait from a handler's, and sends.
	 */
	if (under_valgrind())
		return;
	start_signalfd_reader(&c, &r, &tok);
	if (backend_is_uring()) {
		/* The ring's poll is cancelled with io_uring's own cancel. */
		ck_assert_int_eq(sc_cancel(&tok), 0);
		assert_cancelled(bg_join(&c));
		assert_only_application_signals(r.sfd, NULL);
		close(r.sfd);
		ck_assert_int_eq(sc_token_destroy(&tok), 0);
		return;
	}
	if (_i == 1) {
		/* A deadline for the call in flight, which then passes. */
		ck_assert_int_eq(sc_token_set_timeout(&tok, 10000000), 0);
		spin_ns(40000000);
	} else
		ck_assert_int_eq(sc_cancel(&tok), EIO);
	assert_still_waiting(&c);
	ck_assert_int_eq(pthread_kill(c.thread, SIGUSR1), 0);
	sc_result res = bg_join(&c);
	assert_ok(res, r.poll ? 1 : (long)sizeof(r.info));
	assert_only_application_signals(r.sfd, r.poll ? NULL : &r.info);
	close(r.sfd);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
}
END_TEST

static long foreign_handled;

static void foreign_handler(int sig)
{
	(void)sig;
	add(&foreign_handled, 1);
}

/* _i 0: another handler, 1: SIG_IGN, 2: SIG_DFL, which would end the process. */
static void take_the_signal_away(int i)
{
	struct sigaction sa = { .sa_handler = i == 0 ? foreign_handler :
					     i == 1 ? SIG_IGN : SIG_DFL };

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(sc_signal_number(), &sa, NULL), 0);
}

/*
 * The application replaces the library's handler after initialisation: a
 * cancel cannot reach the blocked read and says so with EIO, the library
 * never sends its signal to another handler (or to SIG_DFL, which would end
 * the process), and the read completes when its data comes.
 */
START_TEST(a_cancel_after_the_handler_was_replaced_is_EIO_and_sends_nothing)
{
	struct bg_call c;
	sc_token tok;

	if (backend_is_uring())
		return;		/* its cancels need no signal */
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	bg_read_blocked(&c, &tok);
	take_the_signal_away(_i);
	ck_assert_int_eq(sc_cancel(&tok), EIO);
	ck_assert_int_eq(sc_cancel(&tok), EIO);
	assert_still_waiting(&c);
	ck_assert_int_eq(write(c.peer, "x", 1), 1);
	assert_ok(bg_join(&c), 1);
	ck_assert_int_eq(load(&foreign_handled), 0);
	/* Later calls under the cancelled token end at once, no signal needed. */
	assert_cancelled(sc_read(&tok, c.fd, c.buf, 1));
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

/* Likewise, a deadline that passes is never sent where the handler is gone. */
START_TEST(a_deadline_after_the_handler_was_replaced_sends_nothing)
{
	struct bg_call c = { .fn = bg_read };
	sc_token tok;

	if (backend_is_uring())
		return;
	ck_assert_int_eq(sc_token_init(&tok, NULL), 0);
	c.tok = &tok;
	bg_pipe(&c);
	take_the_signal_away(_i);
	bg_start_blocked(&c);
	ck_assert_int_eq(sc_token_set_timeout(&tok, 10000000), 0);
	spin_ns(40000000);
	assert_still_waiting(&c);
	ck_assert_int_eq(write(c.peer, "x", 1), 1);
	assert_ok(bg_join(&c), 1);
	ck_assert_int_eq(load(&foreign_handled), 0);
	ck_assert_int_eq(sc_token_destroy(&tok), 0);
	bg_close_pipe(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile");
	TCase *sigfd = add_tcase(s, "signalfd", 30, init_library);
	TCase *taken = add_tcase(s, "handler replaced", 30, init_library);
	TCase *ring = add_tcase(s, "io_uring", 30, init_library);

	tcase_add_loop_test(sigfd, a_signalfd_that_holds_the_library_signal_never_gets_it, 0, 5);
	tcase_add_loop_test(taken, a_cancel_after_the_handler_was_replaced_is_EIO_and_sends_nothing,
			    0, 3);
	tcase_add_loop_test(taken, a_deadline_after_the_handler_was_replaced_sends_nothing, 0, 3);

	tcase_add_test(ring, a_thread_whose_ring_cannot_be_made_takes_the_signal_path);
	return run_suite(s, CK_FORK);
}
