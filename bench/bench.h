/*
 * What the benchmark's sections share (bench/common.c): errors, statistics,
 * pinning, the fast path's timed rounds and the wake-up latency's samples,
 * the tables both print, and the pools of threads blocked on empty pipes;
 * then each section's entry point, one file per section.
 */
#ifndef SYSCANCEL_BENCH_H
#define SYSCANCEL_BENCH_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <syscancel.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SEC_NS 1000000000LL
#define MS_NS 1000000LL
#define SMALL_STACK (64 << 10)	/* so that 10,000 threads fit */

__attribute__((noreturn)) void die(const char *what, int err);
/* The p-th percentile (0..100) of v[0..n-1]; sorts v. */
double percentile(double *v, int n, double p);
/*
 * Switch this thread to backend b (SC_BACKEND_DEFAULT: leave it alone, the
 * method makes no syscancel call); false if this build or kernel lacks it.
 */
bool use_backend(sc_backend b);
char thread_state(pid_t tid);
/* Waits until thread tid sleeps in the kernel; false if *done moves off idle first. */
bool wait_sleeping(pid_t tid, const unsigned *done, unsigned idle, const char *what);
/* The first two CPUs in set: main wakes from one, the worker sleeps on the other. */
int pick_cpus(const cpu_set_t *set, int cpu[2]);
void pin(pthread_t t, int cpu);

/* ---- fast path: ns per uncancelled 1-byte read of a pipe that is never empty ---- */

struct fast_method {
	const char *name;
	long (*read1)(int fd, char *c);
	sc_backend backend;	/* SC_BACKEND_DEFAULT: not a syscancel call */
	sc_token *scope;	/* non-NULL: the reads run inside sc_scope_enter(scope) */
	bool usable;
	double *ns;		/* ns/call of each round */
};

#define FAST(name_, read1_, backend_) { .name = name_, .read1 = read1_, .backend = backend_ }

/* A pipe for the rounds; returns how many bytes a refill may write at a time. */
long fast_pipe(int pfd[2]);
double fast_round(const struct fast_method *m, int pfd[2], long iters, long cap);
/* Warm-up, then rounds of iters reads per method, interleaved; fills m[k].ns. */
void fast_run(struct fast_method *m, int n, int rounds, long iters, int pfd[2], long cap);
void fast_head(void);
/* One row: the median of ns[0..rounds-1] (sorted), its min, and against base. */
void fast_row(const char *name, double *ns, int rounds, double base);
/* The header and a row per method, ratios to the first; frees the samples. */
void fast_table(struct fast_method *m, int n, int rounds);

/* ---- wake-up latency: a thread blocks, main takes t0 and wakes it ---- */

struct lat_ctx {
	int pipe[2];
	int efd;
	pthread_t sub;			/* pthread_cancel's victim */
	pid_t sub_tid;
	sc_token tok;			/* fresh for every sample */
	const struct lat_method *m;	/* NULL: the worker exits */
	pid_t tid;
	unsigned go, entered, done;	/* sample sequence numbers */
	bool ok;			/* the call returned what the method expects */
	int64_t t1;			/* the return; a method that goes on takes it itself */
};

struct lat_method {
	const char *name, *id;
	bool (*block)(struct lat_ctx *c);	/* worker: the blocking call */
	void (*wake)(struct lat_ctx *c);	/* main: make it return */
	sc_backend backend;
	bool usable;
	int count;		/* samples kept */
	double *ns;		/* wake-up latency of each sample */
	double *waker_ns;	/* how long the wake call itself took, in main */
};

#define LAT(name_, id_, block_, wake_, backend_) \
	{ .name = name_, .id = id_, .block = block_, .wake = wake_, .backend = backend_ }

bool sc_read_cancelled(sc_token *tok, int fd);
bool block_sc_read(struct lat_ctx *c);
void wake_cancel(struct lat_ctx *c);
/*
 * samples per method, interleaved, main on cpu[0] and the worker on cpu[0]
 * or cpu[1]; returns the samples dropped, or -1 if there are not enough CPUs.
 */
int lat_run(struct lat_method *m, int n, int samples, bool two_cpus, int cpu[2]);
void lat_csv(FILE *csv, const struct lat_method *m, int n, const char *where);
/* The header and a row per method, ratios to the first; frees the samples. */
void lat_table(struct lat_method *m, int n);

/* ---- many threads, each blocked on its own empty pipe ---- */

long futex(unsigned *word, int op, unsigned val, const struct timespec *timeout);
/* A plain read(2) of fd that a signal ends with EINTR. */
bool read_eintr(int fd);
/* A no-op handler without SA_RESTART: a signal makes a blocked read(2) fail with EINTR. */
void catch_sigusr1(void);
/* Room for n more descriptors: raises RLIMIT_NOFILE if it must (and may). */
bool fd_room(long n);
/* An empty pipe held by one descriptor: a read of it blocks and never sees end of file. */
int lone_pipe(void);
/* Waits until *count reaches n, on its futex; gives up (exits) after 30 s. */
void wait_count(unsigned *count, unsigned n, const char *what);

/*
 * The sections, in the order main runs them.  Those returning int return the
 * samples or rounds they dropped because a call did not return as expected.
 */
void bench_fast_path(int rounds, long iters);	/* bench/fast_path.c */
void bench_memory(long iters);			/* bench/memory.c */
int bench_latency(int samples, FILE *csv, bool two_cpus);	/* bench/latency.c */
int bench_shutdown(const int *sizes, int n_sizes, bool quick, FILE *csv); /* bench/shutdown.c */
int bench_scopes(bool quick, FILE *csv);	/* bench/scope.c */
int bench_lateness(int threads, int rounds, FILE *csv);	/* bench/lateness.c */
int bench_destroy(const int *sizes, int n_sizes, bool quick, FILE *csv); /* bench/destroy.c */
int bench_cond(bool quick, FILE *csv);		/* bench/cond.c */

#endif
