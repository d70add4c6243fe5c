/*
 * Tokens that threads come and go with, and a canceller that cancels them
 * in a loop.  An entry is cancelled only while marked live, so the thread
 * that owns it never destroys a token under a cancel in progress.
 */
#ifndef SC_TORTURE_ENTRIES_H
#define SC_TORTURE_ENTRIES_H

#include "torture.h"

enum { ENTRY_EMPTY, ENTRY_LIVE, ENTRY_CANCELLING };

struct entry {
	sc_token tok;
	long state;
};

struct cancel_loop {
	pthread_t thread;
	struct entry *entries;
	int count;
	long stop;
	long cancels;
};

/* The owner: init the token and make it cancellable; take it back and destroy it. */
void entry_open(struct entry *e);
void entry_close(struct entry *e);

void cancel_loop_start(struct cancel_loop *c, struct entry *entries, int count);
/* Stops the loop; returns the cancels it made. */
long cancel_loop_stop(struct cancel_loop *c);

#endif
