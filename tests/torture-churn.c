/*
 * Thread churn: threads start, make one call, wait a moment outside any
 * call, and exit, while another thread cancels their tokens in a loop.  A
 * library signal outside a call shows as an EINTR in that wait and in the
 * handler's stray count; the registry must stay as small as the number of
 * threads alive at once.
 */
#define _GNU_SOURCE
#include "torture-entries.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#define ALIVE 32

struct churn {
	struct entry entries[ALIVE];
	int idle[2];		/* a pipe nobody writes: reads block until cancelled */
	int ready[2];		/* a pipe holding a byte: polls complete at once */
	struct tally t;
};

struct churner {
	struct churn *c;
	struct entry *e;
	long n;
};

/* A short wait in the kernel after the call, where a late signal would land. */
static void idle_outside_calls(struct tally *t)
{
	struct timespec ts = { 0, 20000 };
	sigset_t mask;

	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	if (ppoll(NULL, 0, &ts, &mask) < 0 && errno == EINTR)
		add(&t->stray_eintr, 1);
}

static sc_result one_call(struct churn *c, sc_token *tok, long n)
{
	char b;
	struct pollfd p = { .fd = c->ready[0], .events = POLLIN };

	switch (n % 3) {
	case 0:
		return sc_read(tok, c->idle[0], &b, 1);
	case 1:
		return sc_sleep(tok, 10000);
	default:
		return sc_poll(tok, &p, 1, -1);
	}
}

static void *churner(void *arg)
{
	struct churner *ch = arg;
	struct tally *t = &ch->c->t;

	entry_open(ch->e);
	sc_result r = one_call(ch->c, &ch->e->tok, ch->n);
	if (r.status == SC_CANCELLED)
		add(&t->cancelled, 1);
	else if (r.status == SC_OK && ch->n % 3)
		add(&t->completed, 1);
	else
		add(&t->errors, 1);
	idle_outside_calls(t);
	entry_close(ch->e);
	return NULL;
}

void torture_churn(void)
{
	struct churn *c = calloc(1, sizeof(*c));
	struct churner ch[ALIVE];
	pthread_t th[ALIVE];
	struct cancel_loop cl;
	long total = torture_scaled(1000);
	unsigned slots, taken;

	ck_assert_ptr_nonnull(c);
	make_pipe(c->idle);
	make_pipe_with_byte(c->ready);
	cancel_loop_start(&cl, c->entries, ALIVE);
	for (long n = 0; n < total + ALIVE; n++) {
		int i = (int)(n % ALIVE);
		if (n >= ALIVE)
			join_within(th[i], 10 * SEC_NS, "churning thread");
		if (n >= total)
			continue;
		ch[i] = (struct churner){ c, &c->entries[i], n };
		ck_assert_int_eq(pthread_create(&th[i], NULL, churner, &ch[i]), 0);
	}
	c->t.attempts = cancel_loop_stop(&cl);
	c->t.stray_signals = (long)stray_signals();
	registry_slots(&slots, &taken);
	printf("churn            %ld threads, at most %d alive: registry slots %u, %u in use at the end\n",
	       total, ALIVE, slots, taken);
	ck_assert_msg(slots <= 2 * ALIVE, "the registry grew to %u slots", slots);
	tally_report("churn", &c->t, landings());
	close_pipe(c->idle);
	close_pipe(c->ready);
	free(c);
}
