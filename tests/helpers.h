/* Shared test helpers: wait for states, never for sleeps. */
#ifndef SC_TEST_HELPERS_H
#define SC_TEST_HELPERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <syscancel.h>

#define SEC_NS 1000000000LL
#define MS_NS 1000000LL

/* Generous bound for anything that should happen "promptly". */
#define PROMPT_NS (5 * SEC_NS)

/* Wait until thread tid sleeps interruptibly in the kernel (state S); fail after 10 s. */
void wait_blocked(pid_t tid);

/* A call run in its own thread, with its result and tid published. */
struct bg_call {
	pthread_t thread;
	sc_result (*fn)(struct bg_call *c);
	sc_token *tok;
	int fd;
	void *arg;
	pid_t tid;		/* set before fn runs */
	sc_result res;
	int64_t returned_ns;	/* sc_now_ns() when fn returned */
	int done;		/* 1 once res is set */
};

/* Start c->fn in a new thread and wait until its tid is known. */
void bg_start(struct bg_call *c);
/* Start, then wait until the thread is blocked in the kernel. */
void bg_start_blocked(struct bg_call *c);
/* Join; fail if it does not finish within PROMPT_NS. */
sc_result bg_join(struct bg_call *c);

/* Make a pipe, fail the test if it cannot. */
void make_pipe(int fds[2]);
/* A listening TCP socket on 127.0.0.1 with an ephemeral port. */
int make_listener(struct sockaddr_storage *addr, socklen_t *alen);

#endif
