/*
 * The scope service: one thread per process, started by its first scope.
 * While a scope has ended it looks at that scope's thread every millisecond
 * and signals it whenever it waits in a syscall that can wait, so that a
 * library's retry loop ends too; it wakes at the earliest scope deadline,
 * which ends a scope as a cancel does.  Otherwise it sleeps.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 1000000
#define WALKING INT64_MIN	/* next_wake while the service looks at the slots */

static int running;		/* in this process: a fork child starts its own */
static uint32_t wake_seq;	/* futex word: bumped to wake the service */
static int64_t next_wake = SC_NO_DEADLINE;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

struct walk {
	int64_t now;
	int64_t next;
};

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/*
 * A call in flight in an ended scope ends by its own means (the cancel's
 * signal, the call's deadline timer); the thread is signalled once it waits
 * outside the call.
 */
static int look_at(struct sc_slot *s, void *arg)
{
	struct walk *w = arg;
	int64_t dl;

	if (sc_scope_check(s, &dl) != SC_CHAIN_CANCELLED && dl > w->now) {
		w->next = min64(w->next, dl);
		return 0;
	}
	w->next = min64(w->next, w->now + TICK_NS);
	return !call_active(s) && sc_scope_poke(s);
}

static void sleep_until(uint32_t seq, int64_t when)
{
	struct timespec ts = { when / 1000000000LL, when % 1000000000LL };

	syscall(SYS_futex, &wake_seq, FUTEX_WAIT_BITSET_PRIVATE, seq,
		when == SC_NO_DEADLINE ? NULL : &ts, NULL, FUTEX_BITSET_MATCH_ANY);
}

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		uint32_t seq = load_acquire(&wake_seq);
		struct walk w = { sc_now_ns(), SC_NO_DEADLINE };

		__atomic_store_n(&next_wake, WALKING, __ATOMIC_SEQ_CST);
		sc_registry_visit_scoped(look_at, &w);
		__atomic_store_n(&next_wake, w.next, __ATOMIC_SEQ_CST);
		sleep_until(seq, w.next);
	}
	return NULL;
}

int sc_service_running(void)
{
	return load_acquire(&running);
}

/* The service takes no signal: the library's and the application's go elsewhere. */
int sc_service_start(void)
{
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	int err = 0;

	pthread_mutex_lock(&start_lock);
	if (!running) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, 64 * 1024);
		err = pthread_create(&thread, &attr, serve, NULL);
		pthread_attr_destroy(&attr);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (!err) {
			pthread_setname_np(thread, "syscancel");
			store_release(&running, 1);
		}
	}
	pthread_mutex_unlock(&start_lock);
	return err;
}

/*
 * Asks the service to look at the slots by when.  Async-signal-safe.  The
 * fence pairs with the service's membarrier: a scope published before it is
 * either seen by the walk under way, or this sees the walk's result.
 */
void sc_service_wake(int64_t when)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	int64_t next = __atomic_load_n(&next_wake, __ATOMIC_SEQ_CST);

	if (next != WALKING && when >= next)
		return;
	__atomic_fetch_add(&wake_seq, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Only the forking thread lives on in the child; the service starts again. */
void sc_service_after_fork(int in_scope)
{
	pthread_mutex_init(&start_lock, NULL);
	running = 0;
	wake_seq = 0;
	next_wake = SC_NO_DEADLINE;
	if (in_scope)
		sc_service_start();
}
