/*
 * A call's deadline lives in its slot, where the deadline service
 * (deadline_service.c) finds it.  Each thread also owns a POSIX timer that
 * delivers the library's signal to that thread alone, from a queue entry
 * reserved when the timer was made: a cancel fires it when the signal queue
 * is full, and on the portable entry, where a signal landing just before
 * the kernel entry is lost, it fires again every millisecond until the call
 * has left.  No timer is armed for a deadline.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SIGEV_THREAD_ID
#define SIGEV_THREAD_ID 4
#endif

#ifdef SC_HAVE_STUB
#define REFIRE_NS 0
#else
#define REFIRE_NS 1000000
#endif

int sc_timer_create(struct sc_slot *s)
{
	struct sigevent sev;
	int id;

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = sc_g.signo;
	sev._sigev_un._tid = load_relaxed(&s->tid);
	if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &id))
		return errno;
	s->timer = id;
	return 0;
}

void sc_timer_delete(struct sc_slot *s)
{
	if (s->timer >= 0)
		syscall(SYS_timer_delete, s->timer);
	s->timer = -1;
	s->timer_armed = 0;
}

static void timer_set(struct sc_slot *s, int64_t at)
{
	struct itimerspec its = {
		.it_value = { at / 1000000000LL, at % 1000000000LL },
		.it_interval = { 0, at ? REFIRE_NS : 0 },
	};

	syscall(SYS_timer_settime, s->timer, TIMER_ABSTIME, &its, NULL);
}

/* Fires the thread's timer at once; the end of the call disarms it. */
void sc_timer_kick(struct sc_slot *s)
{
	store_release(&s->timer_armed, 1);
	timer_set(s, 1);
}

void sc_timer_disarm(struct sc_slot *s)
{
	timer_set(s, 0);
	store_relaxed(&s->timer_armed, 0);
}

/*
 * The owner at call entry and a canceller moving a deadline earlier may race
 * here; the deadline only goes down.
 */
int sc_deadline_min(struct sc_slot *s, int64_t deadline)
{
	int64_t cur = load_relaxed(&s->deadline);

	do {
		if (deadline >= cur)
			return 0;
	} while (!__atomic_compare_exchange_n(&s->deadline, &cur, deadline, true,
					      __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	return 1;
}

/*
 * Publishes a lower deadline; the service hears of it only if it would
 * otherwise look at the slot later.  The barrier pairs with the service's:
 * either it sees this deadline, or this sees the slot's kept deadline drop.
 * Where no service thread can be started (a process at its thread limit,
 * or a fork child: see sc_service_may_start), the thread's own timer fires
 * at the deadline instead.
 */
void sc_deadline_lower(struct sc_slot *s, int64_t deadline)
{
	if (!sc_deadline_min(s, deadline))
		return;
	compiler_barrier();
	if (deadline >= load_acquire(&s->svc_deadline))
		return;
	if (sc_service_running() || (sc_service_may_start() && !sc_service_start())) {
		sc_service_notify(s, deadline);
		return;
	}
	store_release(&s->timer_armed, 1);
	timer_set(s, deadline > 0 ? deadline : 1);
}

int sc_deadline_passed(const struct sc_slot *s)
{
	int64_t dl = load_acquire(&s->deadline);

	return dl != SC_NO_DEADLINE && sc_now_ns() >= dl;
}
