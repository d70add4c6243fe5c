/* The library's signal: sending it, and what the handler does with it. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

struct sc_signal_counts sc_signal_counts;

static void count(uint64_t *n)
{
	__atomic_fetch_add(n, 1, __ATOMIC_RELAXED);
}

#ifdef SC_HAVE_STUB
#include "arch/ucontext.h"

extern const char sc_stub_enter_label[] __asm__("sc_stub_enter") SC_HIDDEN;
extern const char sc_stub_begin[] SC_HIDDEN;
extern const char sc_stub_syscall[] SC_HIDDEN;
extern const char sc_stub_end[] SC_HIDDEN;
extern const char sc_stub_cancel[] SC_HIDDEN;
extern const char sc_stub_leave[] SC_HIDDEN;

static int in_range(uintptr_t pc, const char *lo, const char *hi)
{
	return pc >= (uintptr_t)lo && pc < (uintptr_t)hi;
}

/*
 * The stub is on the stack but the handler interrupted something else: an
 * application handler that itself interrupted the stub.  When that handler
 * returns the kernel may restart the syscall; keep our signal pending and
 * blocked until then, so it lands again on the restarted syscall.
 */
static void redeliver_after_nested_handler(ucontext_t *uc, int sig)
{
	sigaddset(&uc->uc_sigmask, sig);
	syscall(SYS_tgkill, sc_g.pid, gettid(), sig);
}

#ifdef SC_WIDE_WINDOW
int sc_pc_check = 1;
#else
#define sc_pc_check 1
#endif

/* Where in its call a cancel landed, for the torture's counts. */
static void count_landing(const ucontext_t *uc)
{
	uintptr_t pc = uc_pc(uc);

	if (in_range(pc, sc_stub_begin, sc_stub_syscall))
		count(&sc_signal_counts.window);
	else if (pc == (uintptr_t)sc_stub_syscall ||
		 (pc == (uintptr_t)sc_stub_end && uc_result(uc) == -EINTR))
		count(&sc_signal_counts.in_kernel);
	else
		count(&sc_signal_counts.elsewhere);
}

static void divert(struct sc_slot *s, ucontext_t *uc, int sig)
{
	uintptr_t pc = uc_pc(uc);

	count_landing(uc);
	if (in_range(pc, sc_stub_begin, sc_stub_end)) {
		if (sc_pc_check)
			uc_set_pc(uc, sc_stub_cancel);
	} else if (load_relaxed(&s->inside) &&
		 !in_range(pc, sc_stub_enter_label, sc_stub_leave))
		redeliver_after_nested_handler(uc, sig);
}
#define SA_LIBRARY (SA_SIGINFO | SA_RESTART)
#define SC_STUB_PRESENT 1
#else
#define SC_STUB_PRESENT 0
static void divert(struct sc_slot *s, ucontext_t *uc, int sig)
{
	(void)s, (void)uc, (void)sig;
}
/* No restart: an interrupted call returns EINTR and sees its abort flag. */
#define SA_LIBRARY SA_SIGINFO
#endif

/*
 * Tells the signals cancellers send, which carry a pin, from any other: a
 * call's cancel, or a scope's naming the syscall it was sent for (its
 * number in si_pid, its signature in the value).  The cookie is in si_errno,
 * and again in si_uid for qemu-user, which passes si_errno on as 0.
 */
#define PIN_COOKIE 0x5c51
#define SCOPE_COOKIE 0x5c52

static int cookie(const siginfo_t *si)
{
	if (si->si_code != SI_QUEUE)
		return 0;
	return si->si_errno ? si->si_errno : (int)si->si_uid;
}

static int carries_pin(const siginfo_t *si)
{
	return cookie(si) == PIN_COOKIE || cookie(si) == SCOPE_COOKIE;
}

int sc_scope_signal_names(const siginfo_t *si, long *nr, uint64_t *sig)
{
	if (cookie(si) != SCOPE_COOKIE)
		return 0;
	*nr = si->si_pid;
	*sig = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
	return 1;
}

static void drop_signal_pin(struct sc_slot *s)
{
	uint32_t n = load_relaxed(&s->signal_pins);

	while (n && !__atomic_compare_exchange_n(&s->signal_pins, &n, n - 1, true,
						  __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		;
	if (n)
		sc_slot_unpin(s);
}

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
	struct sc_slot *s = sc_self;
	int saved_errno = errno;

	if (s)
		store_release(&s->landings, s->landings + 1);

	/*
	 * Between clearing the in-flight bit and the slow end of a call, only a
	 * signal a pin or the armed timer stands for can land; it is in the call.
	 */
	if (!s || (!call_active(s) && !load_acquire(&s->exiting) &&
		   !load_acquire(&s->pins) && !load_acquire(&s->timer_armed)))
		count(&sc_signal_counts.stray);
	if (s && call_active(s)) {
		if (!call_aborted(s) && sc_deadline_passed(s))
			store_relaxed(&s->abort, s->call);
		if (call_aborted(s))
			divert(s, ctx, sig);
	} else if (s && load_relaxed(&s->scope_depth)) {
		sc_scope_on_signal(s, si, ctx);
	}
	if (s && carries_pin(si))
		drop_signal_pin(s);
	errno = saved_errno;
}

/* The signal's disposition is still the library's handler; no other may ever get it. */
int sc_handler_in_place(void)
{
	struct sigaction cur;

	return !sigaction(sc_g.signo, NULL, &cur) && (cur.sa_flags & SA_SIGINFO) &&
	       cur.sa_sigaction == on_signal;
}

/*
 * A call that ends waits for the signals sent to it.  One sent while the
 * thread blocked the library's signal is pending: let it land now, in a
 * moment with the signal unblocked.  Nothing is unblocked under another
 * handler, which must never get the signal.  Returns whether it was blocked.
 */
int sc_signal_take_pending(void)
{
	sigset_t set, old;
	int was_blocked = 0;

	if (!sc_handler_in_place())
		return 0;
	sigemptyset(&set);
	sigaddset(&set, sc_g.signo);
	if (!pthread_sigmask(SIG_UNBLOCK, &set, &old)) {
		was_blocked = sigismember(&old, sc_g.signo) == 1;
		if (was_blocked)
			pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return was_blocked;
}

/*
 * After a long wait: the signals still missing were taken by a signalfd or
 * a sigwait of this thread, or went to a handler that replaced the
 * library's, and will never be counted.  Stop waiting for them.
 */
void sc_signal_unstick(struct sc_slot *s)
{
	if (!sc_signal_take_pending() && sc_handler_in_place())
		return;
	for (uint32_t n = __atomic_exchange_n(&s->signal_pins, 0, __ATOMIC_ACQ_REL); n; n--)
		sc_slot_unpin(s);
}

int sc_handler_install(int signo)
{
	struct sigaction sa = { .sa_sigaction = on_signal, .sa_flags = SA_LIBRARY };
	struct sigaction old;

	if (sigaction(signo, NULL, &old))
		return errno;
	if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
		return EBUSY;
	sigemptyset(&sa.sa_mask);
	return sigaction(signo, &sa, NULL) ? errno : 0;
}

/* cookie tells the handler whether the signal carries a pin, and what for. */
static int send_signal(int tid, int cookie, int pid, uint64_t value)
{
	siginfo_t si = { .si_signo = sc_g.signo, .si_code = SI_QUEUE, .si_errno = cookie };

	/* Assigned, not designated: the three share a union in glibc's siginfo_t. */
	si.si_pid = pid;
	si.si_uid = cookie;
	si.si_value.sival_ptr = (void *)(uintptr_t)value;
	return syscall(SYS_rt_tgsigqueueinfo, sc_g.pid, tid, sc_g.signo, &si) ? errno : 0;
}

/*
 * The thread's own timer can deliver the signal too, from a queue entry
 * reserved when the timer was made: it still gets through when the signal
 * queue is full, and on the fallback entry it keeps firing every millisecond
 * until the call has left (REFIRE_NS in deadline.c).
 */
static void kick_timer(struct sc_slot *s)
{
	sc_timer_kick(s);
}

/* A signal carrying a pin, or on the portable entry the timer a send kicked. */
static int signal_on_its_way(struct sc_slot *s)
{
	if (SC_STUB_PRESENT)
		return load_acquire(&s->signal_pins) != 0;
	return load_acquire(&s->timer_armed) != 0;
}

/*
 * After sc_send_cancel, for a canceller that answers for the call: the
 * signal has not landed, and will not while the call waits, for the thread
 * blocks it.  It stays pending until the call ends on its own, which takes
 * it (registry.c).  Asked last, so that most signals have landed by then:
 * the look at the mask is dear.
 */
int sc_cancel_held_back(const struct sc_sent *x)
{
	return SC_STUB_PRESENT && !sc_signal_landed(x) && sc_signal_held_back(x->slot, x) &&
	       load_acquire(&x->slot->call) == x->call;
}

/*
 * Called with the slot pinned and its call seen in flight under a cancelled
 * token.  Where the handler is gone or the call would take the signal as
 * data (reach.c), nothing is sent and *unreachable is set; a canceller that
 * answers for the call asks sc_cancel_held_back() later.  With the stub
 * the pin travels with the signal: the target drops it when the signal
 * lands, so it need not wait for this thread to run again.  Without it a
 * signal landing just before the kernel entry is lost, so the timer backs
 * every cancel up; no canceller ever waits, not even one in a handler on
 * top of the very call it cancels.
 */
int sc_send_cancel(struct sc_slot *s, uint64_t call, int *unreachable)
{
	int tid = load_relaxed(&s->tid);

	/*
	 * Repeated cancels must not flood the queue: one signal on its way (or
	 * the timer it kicked) is enough.  One that could not be sent is
	 * looked at again.
	 */
	if (load_acquire(&s->abort) == call && signal_on_its_way(s))
		return 0;
	store_release(&s->abort, call);
	/* A thread not yet past the stub's check still sees the abort. */
	if (!sc_signal_may_reach(s, 1)) {
		*unreachable = 1;
		return 0;
	}
	if (SC_STUB_PRESENT) {
		__atomic_fetch_add(&s->signal_pins, 1, __ATOMIC_RELEASE);
		if (!send_signal(tid, PIN_COOKIE, sc_g.pid, 0))
			return 1;
		__atomic_fetch_sub(&s->signal_pins, 1, __ATOMIC_RELAXED);
		count(&sc_signal_counts.refused);
	} else if (sc_signal_held_back(s, NULL)) {
		/* No pin to take it at the call's end: ask first, send nothing. */
		*unreachable = 1;
		return 0;
	} else if (send_signal(tid, 0, sc_g.pid, 0)) {
		count(&sc_signal_counts.refused);
	}
	kick_timer(s);
	return 0;
}

/*
 * Called with the slot pinned, its thread seen in a scope that ended and
 * waiting in syscall nr.  The pin travels with the signal, so the scope's
 * exit waits until it has landed.
 */
int sc_send_scope_signal(struct sc_slot *s, long nr, uint64_t sig)
{
	if (!sc_signal_may_reach(s, 0))
		return 0;
	__atomic_fetch_add(&s->signal_pins, 1, __ATOMIC_RELEASE);
	if (!send_signal(load_relaxed(&s->tid), SCOPE_COOKIE, (int)nr, sig))
		return 1;
	__atomic_fetch_sub(&s->signal_pins, 1, __ATOMIC_RELAXED);
	count(&sc_signal_counts.refused);
	return 0;
}
