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

int main(void)
{
	Suite *s = suite_create("hostile");
	TCase *ring = add_tcase(s, "io_uring", 30, init_library);

	tcase_add_test(ring, a_thread_whose_ring_cannot_be_made_takes_the_signal_path);
	return run_suite(s, CK_FORK);
}
