/*
 * Signal queue exhaustion: many threads block in calls, the process's
 * signal queue is filled with signals nobody takes (to the last entry on
 * odd rounds, all but a few on even ones), then every call is cancelled.
 * A send the kernel refuses must go through the thread's timer, whose
 * queue entry was reserved when the timer was made: nothing is lost.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#define THREADS 64
#define HEADROOM 64	/* queue entries above those in use when the limit is lowered */
#define SPARED 8	/* entries left free on even rounds */

struct queue_run {
	sc_token tok[THREADS];
	long tid[THREADS];
	long done[THREADS];
	sc_result res[THREADS];
	long round;
	int idle[2];
	int filler;		/* the signal that fills the queue, blocked everywhere */
};

struct reader {
	struct queue_run *q;
	int i;
	pthread_t thread;
};

static void *reader(void *arg)
{
	struct reader *r = arg;
	struct queue_run *q = r->q;
	char b;

	sc_sleep(NULL, 0);	/* takes the slot and makes the timer before the limit drops */
	store(&q->tid[r->i], gettid());
	for (long round = 1;; round++) {
		while (load(&q->round) < round && load(&q->round) >= 0)
			sched_yield();
		if (load(&q->round) < 0)
			return NULL;
		q->res[r->i] = sc_read(&q->tok[r->i], q->idle[0], &b, 1);
		store(&q->done[r->i], round);
	}
}

/* The entries in use for this user, from /proc/self/status. */
static long signals_queued(void)
{
	char line[256];
	long used = -1, limit;
	FILE *f = fopen("/proc/self/status", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "SigQ: %ld/%ld", &used, &limit) == 2)
			break;
	fclose(f);
	ck_assert_int_ge(used, 0);
	return used;
}

static void lower_queue_limit(void)
{
	rlim_t lim = (rlim_t)(signals_queued() + HEADROOM);
	struct rlimit rl = { lim, lim };

	ck_assert_int_eq(setrlimit(RLIMIT_SIGPENDING, &rl), 0);
}

static long fill_queue(int filler)
{
	long n = 0;

	while (sigqueue(getpid(), filler, (union sigval){ 0 }) == 0)
		n++;
	ck_assert_int_eq(errno, EAGAIN);
	return n;
}

static void take_queued(int filler, long n)
{
	struct timespec now = { 0, 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, filler);
	while (n-- && sigtimedwait(&set, NULL, &now) == filler)
		;
}

static void await_round(struct queue_run *q, long round, struct tally *t)
{
	int64_t since = sc_now_ns();

	for (int i = 0; i < THREADS; i++) {
		while (load(&q->done[i]) < round) {
			if (sc_now_ns() - since > HANG_NS) {
				t->hangs++;
				ck_assert_int_eq(write(q->idle[1], "x", 1), 1);
				since += 30 * SEC_NS;
			}
			sched_yield();
		}
		if (q->res[i].status == SC_CANCELLED)
			t->cancelled++;
		else
			t->errors++;
		ck_assert_int_eq(sc_token_destroy(&q->tok[i]), 0);
	}
}

static void one_round(struct queue_run *q, long round, struct tally *t)
{
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(sc_token_init(&q->tok[i], NULL), 0);
	store(&q->round, round);
	for (int i = 0; i < THREADS; i++)
		wait_blocked((pid_t)q->tid[i]);
	long filled = fill_queue(q->filler);
	if (round % 2 == 0)
		take_queued(q->filler, SPARED);
	for (int i = 0; i < THREADS; i++) {
		ck_assert_int_eq(sc_cancel(&q->tok[i]), 0);
		t->attempts++;
	}
	await_round(q, round, t);
	take_queued(q->filler, filled);
}

void torture_queue(void)
{
	struct queue_run *q = calloc(1, sizeof(*q));
	struct reader r[THREADS];
	struct tally t = { 0 };
	long rounds = torture_scaled(6);
	uint64_t refused = refused_signals();
	sigset_t set;

	ck_assert_ptr_nonnull(q);
	make_pipe(q->idle);
	q->filler = sc_signal_number() == SIGRTMIN + 2 ? SIGRTMIN + 3 : SIGRTMIN + 2;
	sigemptyset(&set);
	sigaddset(&set, q->filler);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct reader){ q, i, 0 };
		ck_assert_int_eq(pthread_create(&r[i].thread, NULL, reader, &r[i]), 0);
		wait_at_least(&q->tid[i], 1, "reader %d starts", i);
	}
	lower_queue_limit();
	for (long round = 1; round <= rounds; round++)
		one_round(q, round, &t);
	store(&q->round, -1);
	for (int i = 0; i < THREADS; i++)
		join_within(r[i].thread, 30 * SEC_NS, "queue reader");
	refused = refused_signals() - refused;
	printf("queue            %ld rounds of %d cancels with the signal queue full: "
	       "%llu sends refused, delivered by the timer instead\n",
	       rounds, THREADS, (unsigned long long)refused);
	ck_assert_msg(refused > 0, "the queue never refused a send: the test tests nothing");
	t.stray_signals = (long)stray_signals();
	tally_report("queue", &t, landings());
	close_pipe(q->idle);
	free(q);
}
