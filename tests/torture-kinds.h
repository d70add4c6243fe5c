/* The calls the race torture aims its cancels at, and their accounting. */
#ifndef SC_TORTURE_KINDS_H
#define SC_TORTURE_KINDS_H

#include "torture.h"

#include <sys/un.h>

#define CHUNK_MAX 512

struct race {
	const struct kind *kind;
	int fds[2];		/* [0] the call's end, [1] the supplier's; write: the other way */
	int lfd;		/* accept: the listening socket */
	struct sockaddr_un addr;
	socklen_t alen;
	uint32_t word;		/* futex: bumped by each supply */
	uint64_t sent;		/* stream bytes written, by whoever writes */
	uint64_t received;	/* stream bytes read and checked, by whoever reads */
	long connects, accepts;
	uint8_t call_buf[CHUNK_MAX];
	uint8_t supply_buf[CHUNK_MAX];
	struct tally t;
};

/*
 * call runs in the worker under tok; after_ok accounts for what a call that
 * completed did; supply (the canceller's thread) lets a blocked call
 * complete, and is what the watchdog uses to release a hung call; finish
 * drains what is left and compares both ends.
 */
struct kind {
	const char *name;
	void (*setup)(struct race *r);
	sc_result (*call)(struct race *r, sc_token *tok, uint32_t rnd);
	void (*after_ok)(struct race *r, sc_result res);
	void (*supply)(struct race *r, uint32_t rnd);
	void (*finish)(struct race *r);
};

extern const struct kind torture_kinds[];

#endif
