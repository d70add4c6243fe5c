#define _GNU_SOURCE
#include "torture-entries.h"

#include <sched.h>

void entry_open(struct entry *e)
{
	ck_assert_int_eq(sc_token_init(&e->tok, NULL), 0);
	store(&e->state, ENTRY_LIVE);
}

void entry_close(struct entry *e)
{
	long live = ENTRY_LIVE;

	while (!__atomic_compare_exchange_n(&e->state, &live, ENTRY_EMPTY, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		live = ENTRY_LIVE;
		sched_yield();
	}
	ck_assert_int_eq(sc_token_destroy(&e->tok), 0);
}

static bool cancel_entry(struct entry *e)
{
	long live = ENTRY_LIVE;

	if (!__atomic_compare_exchange_n(&e->state, &live, ENTRY_CANCELLING, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return false;
	ck_assert_int_eq(sc_cancel(&e->tok), 0);
	store(&e->state, ENTRY_LIVE);
	return true;
}

static void *cancel_loop(void *arg)
{
	struct cancel_loop *c = arg;

	while (!load(&c->stop)) {
		for (int i = 0; i < c->count; i++)
			c->cancels += cancel_entry(&c->entries[i]);
		sched_yield();
	}
	return NULL;
}

void cancel_loop_start(struct cancel_loop *c, struct entry *entries, int count)
{
	c->entries = entries;
	c->count = count;
	c->stop = 0;
	c->cancels = 0;
	ck_assert_int_eq(pthread_create(&c->thread, NULL, cancel_loop, c), 0);
}

long cancel_loop_stop(struct cancel_loop *c)
{
	store(&c->stop, 1);
	join_within(c->thread, 30 * SEC_NS, "cancel loop");
	return c->cancels;
}
