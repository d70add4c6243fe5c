/*
 * The torture suite: the invariants under sustained adversarial load.  It
 * links the library's objects, so it can read what the handler counted.
 */
#ifndef SC_TORTURE_H
#define SC_TORTURE_H

#include "helpers.h"

#include <stdio.h>

/* Set by main: the long run of make check-torture, or the short one of make check. */
extern bool torture_full;

/* Attempts in the short run, scaled up by TORTURE_FULL_SCALE in the long one. */
#define TORTURE_FULL_SCALE 30
long torture_scaled(long short_count);

/*
 * A call that outlives its cancel by more than this is a hang; the CI's
 * emulator run stretches it with CK_TIMEOUT_MULTIPLIER.
 */
#define HANG_NS ((long long)stretched(SEC_NS))

/* What a torture case counts; failures are every field after completed. */
struct tally {
	long attempts;		/* sc_cancel calls aimed at a call */
	long cancelled;
	long completed;
	long hangs;
	long bad_bytes;		/* lost, duplicated or reordered bytes */
	long spurious;		/* SC_CANCELLED or SC_TIMEDOUT that nothing asked for */
	long lost_cancels;	/* a call that started after its cancel and ran */
	long stray_eintr;	/* EINTR in application code between calls */
	long stray_signals;	/* library signals that landed outside any call */
	long errors;		/* any other unexpected result */
};

/* Where the library's cancel signals landed in their calls (counted by its handler). */
struct landing {
	long window;		/* between the stub's abort check and its syscall instruction */
	long in_kernel;		/* in the syscall: rewound onto it by a restart, or EINTR */
	long elsewhere;		/* in the call but outside the stub, or after the syscall */
};
struct landing landings(void);
struct landing landings_since(struct landing before);
/*
 * Whether every race case must land cancels in a blocked syscall: where the
 * handler can tell (the stub entry), unless the widened window takes them.
 */
bool kernel_landings_required(void);

/*
 * Print t under name, with where its cancels landed, add both to the run's
 * totals, and fail the test if any failure count is not 0.
 */
void tally_report(const char *name, const struct tally *t, struct landing l);
/* A race case ran (the window hits are only judged when all did). */
void count_race(void);

/* The library's own counts (lib/internal.h). */
uint64_t stray_signals(void);
uint64_t refused_signals(void);	/* sends the full signal queue refused */
/* Registry slots in all, and those owned by a live thread. */
void registry_slots(unsigned *slots, unsigned *taken);
/* Test build only: stop the handler from diverting, to show the suite then fails. */
void disable_pc_check(void);

/* What the handler did with the signals of ended scopes (lib/internal.h). */
struct scope_landing {
	long skipped;		/* a blocking syscall about to run, or rewound, skipped */
	long rewritten;		/* a blocking syscall's EINTR made ECANCELED or ETIMEDOUT */
	long missed;		/* landed where no blocking syscall could be ended */
};
struct scope_landing scope_landings(void);
struct scope_landing scope_landings_since(struct scope_landing before);
/* Whether scopes end plain syscalls in this build (x86_64, not under TSan). */
bool scopes_end_plain_calls(void);
/* Test build only: scopes end no syscall, to show the scope cases then fail. */
void disable_scope_diversion(void);

/*
 * Worker and canceller on different CPUs where there are two: a cancel can
 * then land at any instruction of the call, not only where the worker
 * blocks or is preempted.
 */
void run_on_cpu(int which);

/*
 * Wait for fd (an eventfd) to become readable with the foreign signals
 * blocked, and consume it: any EINTR is then a library signal that landed
 * outside a call.  Returns the EINTRs seen.
 */
int wait_readable_counting_eintr(int fd);
/* An eventfd, failing the test if none can be made. */
int make_eventfd(void);
void post_eventfd(int fd);

/* The byte at offset pos of every checked stream: its 8-byte word's index. */
static inline uint8_t stream_byte(uint64_t pos)
{
	return (uint8_t)((pos / 8) >> (8 * (pos % 8)));
}

/* Compare n bytes at buf with the stream from *pos on; advance *pos.  Returns mismatches. */
long stream_check(uint64_t *pos, const uint8_t *buf, size_t n);
/* Fill buf with n bytes of the stream from *pos on; advance *pos. */
void stream_fill(uint64_t *pos, uint8_t *buf, size_t n);

/* torture-storm.c: foreign signals while cancels fly. */
struct storm;
struct storm *storm_start(pid_t target);
/* Stop the storm; fail unless the application's handlers ran. */
void storm_stop(struct storm *st);
/* The foreign signals of the storm, blocked while we count library EINTRs. */
void foreign_signal_set(sigset_t *set);

/* One test case each. */
void torture_race(int kind_index);
void torture_race_under_storm(int kind_index);
extern const int torture_kind_count;
void torture_nested(int restart);
void torture_churn(void);
void torture_fork(void);
void torture_queue(void);
/* torture-sigfd.c: 0 a signalfd, 1 sigwait, in threads that block every signal. */
void torture_sigfd(int sigwait);
/* torture-scope.c: plain libc calls in scopes, the kinds first with cancels, then deadlines. */
void torture_scope(int index);
extern const int torture_scope_count;
/* torture-cond.c: a wake and a cancel or a deadline aimed at one sc_cond waiter at once. */
void torture_cond(int index);
extern const int torture_cond_count;

#endif
