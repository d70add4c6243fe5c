/*
 * Threads that block every signal and take them from a signalfd (whose
 * mask holds the library's signal too) or a sigwait on a full set, while
 * their calls are cancelled at random moments.  One thread blocks the
 * library's signal as well, after its first call; the other blocked
 * everything before it, so that call unblocked the library's.  Each round a
 * read of a pipe under a token, cancelled or fed, then a wait for the
 * application's SIGUSR1 (through sc_read of the signalfd, cancelled or not,
 * or a plain sigwait).  The library's signal is never read as data, no
 * call hangs, no byte is lost, a cancel either ends its call or says EIO.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct sigfd_worker {
	int sigwait;		/* wait with sigwaitinfo instead of reading a signalfd */
	int blocked_first;	/* every signal blocked before the first call */
	int fds[2];
	int sfd;
	sc_token read_tok, wait_tok;
	long tid;
	long go;		/* rounds the main thread has set up */
	long reading;		/* rounds whose pipe read has started */
	long read_done;
	long waiting;		/* rounds whose signal wait has started */
	long wait_done;
	long rounds;
	uint64_t pos;		/* bytes of the stream read */
	sc_result read_res;
	struct tally t;		/* the worker's own failure counts */
};

static void block_everything(void)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* One signal taken; anything but SIGUSR1 is a signal that should not be there. */
static void take_signal(struct sigfd_worker *w)
{
	struct signalfd_siginfo info;
	sigset_t all;
	int sig;

	if (w->sigwait) {
		sigfillset(&all);
		do
			sig = sigwaitinfo(&all, NULL);
		while (sig < 0 && errno == EINTR);
	} else {
		sc_result r = sc_read(&w->wait_tok, w->sfd, &info, sizeof(info));
		if (r.status == SC_CANCELLED)	/* cancelled before it began: read it plainly */
			r.value = read(w->sfd, &info, sizeof(info));
		else if (r.status != SC_OK)
			w->t.errors++;
		sig = r.value == sizeof(info) ? (int)info.ssi_signo : -1;
	}
	if (sig == sc_signal_number())
		w->t.stray_signals++;
	else if (sig != SIGUSR1)
		w->t.errors++;
}

static void read_pipe(struct sigfd_worker *w)
{
	uint8_t b;

	w->read_res = sc_read(&w->read_tok, w->fds[0], &b, 1);
	if (w->read_res.status == SC_OK && w->read_res.value == 1)
		w->t.bad_bytes += stream_check(&w->pos, &b, 1);
}

static void *sigfd_worker_main(void *arg)
{
	struct sigfd_worker *w = arg;
	sigset_t all;

	if (w->blocked_first)
		block_everything();
	if (sc_sleep(NULL, 0).status != SC_OK)
		w->t.errors++;
	if (!w->blocked_first)
		block_everything();
	sigfillset(&all);
	w->sfd = w->sigwait ? -1 : signalfd(-1, &all, SFD_CLOEXEC);
	store(&w->tid, gettid());
	for (long r = 1; r <= w->rounds; r++) {
		wait_at_least(&w->go, r, "round %ld set up", r);
		store(&w->reading, r);
		read_pipe(w);
		store(&w->read_done, r);
		store(&w->waiting, r);
		take_signal(w);
		store(&w->wait_done, r);
	}
	if (w->sfd >= 0)
		close(w->sfd);
	return NULL;
}

/* Wait for the worker to finish a step; a step over HANG_NS is a hang, unstuck with a byte. */
static void await_step(const long *done, long r, struct tally *t)
{
	int64_t since = sc_now_ns();
	bool hung = false;

	while (load(done) < r) {
		if (!hung && sc_now_ns() - since > HANG_NS) {
			t->hangs++;
			hung = true;
		}
		ck_assert_msg(sc_now_ns() - since < 30 * SEC_NS, "worker stuck");
		sched_yield();
	}
}

/* A cancel that cannot reach the call says EIO; any other answer is an error. */
static int cancel_counted(sc_token *tok, struct tally *t)
{
	int err = sc_cancel(tok);

	t->attempts++;
	if (err && err != EIO)
		t->errors++;
	return err;
}

/* Gives a cancel that was sent time to end the read before its byte comes. */
static void let_cancel_land(const struct sigfd_worker *w, long r)
{
	int64_t end = sc_now_ns() + 20000000;

	while (load(&w->read_done) < r && sc_now_ns() < end)
		sched_yield();
}

static void one_round(struct sigfd_worker *w, long r, uint32_t *seed, uint64_t *written,
		      struct tally *t)
{
	/* A byte a cancelled read left is this round's; else one comes after the cancel. */
	bool empty = *written == w->pos;
	uint8_t b;

	ck_assert_int_eq(sc_token_init(&w->read_tok, NULL), 0);
	ck_assert_int_eq(sc_token_init(&w->wait_tok, NULL), 0);
	store(&w->go, r);
	wait_at_least(&w->reading, r, "round %ld read", r);
	spin_ns(xorshift(seed) % 200000);
	if ((xorshift(seed) & 1) && !cancel_counted(&w->read_tok, t))
		let_cancel_land(w, r);
	if (empty) {
		stream_fill(written, &b, 1);
		ck_assert_int_eq(write(w->fds[1], &b, 1), 1);
	}
	await_step(&w->read_done, r, t);
	if (w->read_res.status == SC_CANCELLED)
		t->cancelled++;
	else if (w->read_res.status == SC_OK)
		t->completed++;
	else
		t->errors++;

	wait_at_least(&w->waiting, r, "round %ld wait", r);
	spin_ns(xorshift(seed) % 200000);
	if (!w->sigwait && (xorshift(seed) & 1))
		cancel_counted(&w->wait_tok, t);
	ck_assert_int_eq(tgkill(getpid(), (pid_t)w->tid, SIGUSR1), 0);
	await_step(&w->wait_done, r, t);
	ck_assert_int_eq(sc_token_destroy(&w->read_tok), 0);
	ck_assert_int_eq(sc_token_destroy(&w->wait_tok), 0);
}

/* The bytes a cancelled read left in the pipe are the stream's next ones. */
static void drain(struct sigfd_worker *w, uint64_t written)
{
	uint8_t b;

	while (w->pos < written) {
		ck_assert_int_eq(read(w->fds[0], &b, 1), 1);
		w->t.bad_bytes += stream_check(&w->pos, &b, 1);
	}
}

static void run_worker(struct sigfd_worker *w, struct tally *t, uint32_t seed)
{
	pthread_t th;
	uint64_t written = 0;

	make_pipe(w->fds);
	ck_assert_int_eq(pthread_create(&th, NULL, sigfd_worker_main, w), 0);
	wait_at_least(&w->tid, 1, "worker starts");
	for (long r = 1; r <= w->rounds; r++)
		one_round(w, r, &seed, &written, t);
	join_within(th, PROMPT_NS, "signalfd worker");
	drain(w, written);
	t->bad_bytes += w->t.bad_bytes;
	t->stray_signals += w->t.stray_signals;
	t->errors += w->t.errors;
	close_pipe(w->fds);
}

/* sigwait 0: a signalfd, 1: sigwaitinfo on a full set. */
void torture_sigfd(int sigwait)
{
	struct tally t = { 0 };
	struct landing before = landings();
	uint64_t strays = stray_signals();

	for (int blocked_first = 0; blocked_first < 2; blocked_first++) {
		struct sigfd_worker *w = calloc(1, sizeof(*w));

		ck_assert_ptr_nonnull(w);
		w->sigwait = sigwait;
		w->blocked_first = blocked_first;
		w->rounds = torture_scaled(100);
		run_worker(w, &t, 0x5c1f0u + (uint32_t)blocked_first);
		free(w);
	}
	t.stray_signals += (long)(stray_signals() - strays);
	tally_report(sigwait ? "sigwait" : "signalfd", &t, landings_since(before));
}
