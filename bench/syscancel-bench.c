/*
 * syscancel-bench: what syscancel costs, next to what the kernel costs.
 *
 * Fast path: ns per uncancelled 1-byte read from a pipe that is never empty
 * (filled before each timed batch, only the reads are timed), raw read(2)
 * against sc_read, interleaved in rounds; median of the rounds.
 *
 * Memory: this program replaces malloc and friends with counting wrappers
 * around glibc's own, so it sees what the library allocates: a thread's first
 * call, and the calls after it (which must allocate nothing).
 *
 * Wake-up latency: a thread blocks on an empty pipe; main takes t0 and wakes
 * it (a byte, an eventfd, a signal, sc_cancel); the thread takes t1 as soon
 * as its call returns.  Methods are interleaved sample by sample, and each
 * sample starts only once the thread sleeps in the kernel.
 *
 * Run twice: both threads pinned to one CPU (no IPI, no idle exit: the software
 * path alone), then to two CPUs (the usual case, where waking a halted CPU can
 * dominate, above all under a hypervisor).
 *
 * Shutdown: N threads, each blocked on its own empty pipe, released at once:
 * by one sc_cancel of the root token above theirs, or by N tgkill(2) to plain
 * read(2)s (the floor).  ns from the release to the last thread's return.
 *
 * Scopes (bench/scope.c): sc_scope_enter+exit, plain read(2) in a live scope,
 * and a cancel ending a plain read(2) in a scope, then its retry.
 *
 * Usage: syscancel-bench [--quick] [--large] [--csv FILE]
 * --large adds a shutdown of 10,000 threads.
 * CSV: method,sample_ns with method as id@same-cpu, id@two-cpus or shutdown-N@id
 * (the scope section's ids start with scope_).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <syscancel.h>
#include "bench.h"

static long futex(unsigned *word, int op, unsigned val, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

/* ---- heap accounting ---------------------------------------------------- */

/*
 * glibc lets a program replace malloc: every allocation of the process, the
 * library's included, lands here.  The wrappers forward to glibc's own entry
 * points, which need no dlsym() and so work from the first allocation of
 * the dynamic loader on; the counters are plain atomics, no TLS, no lock.
 * A sanitizer build keeps the sanitizer's malloc.
 */
struct heap_use {
	unsigned long allocs, frees, bytes;	/* bytes asked for, not returned */
};

static struct heap_use heap;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_COUNTED false
#else
#define HEAP_COUNTED true
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

static void *counted(void *p, size_t size)
{
	if (p) {
		__atomic_fetch_add(&heap.allocs, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&heap.bytes, size, __ATOMIC_RELAXED);
	}
	return p;
}

void *malloc(size_t size) { return counted(__libc_malloc(size), size); }
void *calloc(size_t n, size_t size) { return counted(__libc_calloc(n, size), n * size); }
void *realloc(void *p, size_t size) { return counted(__libc_realloc(p, size), size); }
void *memalign(size_t align, size_t size) { return counted(__libc_memalign(align, size), size); }
void *aligned_alloc(size_t align, size_t size) { return memalign(align, size); }

int posix_memalign(void **p, size_t align, size_t size)
{
	if (align % sizeof(void *) || align & (align - 1))
		return EINVAL;
	void *q = memalign(align, size);
	if (!q)
		return ENOMEM;
	*p = q;
	return 0;
}

void free(void *p)
{
	if (p)
		__atomic_fetch_add(&heap.frees, 1, __ATOMIC_RELAXED);
	__libc_free(p);
}
#endif

/* What the process allocated since *before. */
static struct heap_use heap_since(const struct heap_use *before)
{
	return (struct heap_use){
		.allocs = __atomic_load_n(&heap.allocs, __ATOMIC_RELAXED) - before->allocs,
		.frees = __atomic_load_n(&heap.frees, __ATOMIC_RELAXED) - before->frees,
		.bytes = __atomic_load_n(&heap.bytes, __ATOMIC_RELAXED) - before->bytes,
	};
}

static struct heap_use heap_now(void)
{
	return heap_since(&(struct heap_use){ 0 });
}

/* ---- fast path ---------------------------------------------------------- */

static sc_token live_tok, deadline_tok;

static long read_libc(int fd, char *c) { return read(fd, c, 1); }
static long read_raw(int fd, char *c) { return syscall(SYS_read, fd, c, 1); }

static long sc_value(sc_result r)
{
	return r.status == SC_OK ? r.value : -1;
}
static long read_sc_null(int fd, char *c) { return sc_value(sc_read(NULL, fd, c, 1)); }
static long read_sc_tok(int fd, char *c) { return sc_value(sc_read(&live_tok, fd, c, 1)); }
static long read_sc_deadline(int fd, char *c)
{
	return sc_value(sc_read(&deadline_tok, fd, c, 1));
}

/* The timeout pattern: a token per request, with its own deadline. */
static long read_sc_fresh(int fd, char *c)
{
	sc_token tok;
	long v = -1;

	if (!sc_token_init(&tok, NULL) && !sc_token_set_timeout(&tok, 100000000))
		v = sc_value(sc_read(&tok, fd, c, 1));
	return sc_token_destroy(&tok) ? -1 : v;
}

/* The hand-rolled way: wait for data or for a cancel eventfd, then read. */
static long read_poll_eventfd(int fd, char *c)
{
	static int cancel_efd = -1;

	if (cancel_efd < 0 && (cancel_efd = eventfd(0, EFD_CLOEXEC)) < 0)
		die("eventfd", errno);
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
			       { .fd = cancel_efd, .events = POLLIN } };
	if (poll(p, 2, -1) < 0 || p[1].revents)
		return -1;
	return read(fd, c, 1);
}

static struct fast_method fast_methods[] = {
	FAST("read(2), libc", read_libc, SC_BACKEND_DEFAULT),
	FAST("syscall(SYS_read)", read_raw, SC_BACKEND_DEFAULT),
	FAST("sc_read(NULL)", read_sc_null, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok)", read_sc_tok, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok), deadline in 1 h", read_sc_deadline, SC_BACKEND_SIGNAL),
	FAST("token per call, 100 ms timeout", read_sc_fresh, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok), io_uring", read_sc_tok, SC_BACKEND_URING),
	FAST("poll(fd, eventfd) + read(2)", read_poll_eventfd, SC_BACKEND_DEFAULT),
};

static void bench_fast_path(int rounds, long iters)
{
	const int n = ARRAY_SIZE(fast_methods);
	int pfd[2];
	long cap = fast_pipe(pfd);

	int err = sc_token_init(&live_tok, NULL);
	if (!err)
		err = sc_token_init(&deadline_tok, NULL);
	if (!err)
		err = sc_token_set_timeout(&deadline_tok, 3600 * SEC_NS);
	if (err)
		die("fast path setup", err);
	fast_run(fast_methods, n, rounds, iters, pfd, cap);

	printf("Fast path: uncancelled 1-byte read from a non-empty pipe\n");
	printf("  %d rounds x %ld reads per method, methods interleaved\n\n", rounds, iters);
	fast_table(fast_methods, n, rounds);
	printf("\n");
	sc_token_destroy(&live_tok);
	sc_token_destroy(&deadline_tok);
	close(pfd[0]);
	close(pfd[1]);
}

/* ---- memory ------------------------------------------------------------- */

/* A new thread on backend b: its first sc_read (with the backend switch), then iters more. */
struct mem_probe {
	sc_backend backend;
	int *pfd;
	long cap, iters;
	bool usable;
	struct heap_use first, after;
};

static void *mem_thread(void *arg)
{
	static const struct fast_method m = FAST("sc_read(tok)", read_sc_tok, SC_BACKEND_SIGNAL);
	struct mem_probe *p = arg;
	struct heap_use h = heap_now();

	p->usable = use_backend(p->backend);
	if (!p->usable)
		return NULL;
	fast_round(&m, p->pfd, 1, p->cap);
	p->first = heap_since(&h);
	h = heap_now();
	fast_round(&m, p->pfd, p->iters, p->cap);
	p->after = heap_since(&h);
	return NULL;
}

/* Runs the probe on pipe pfd alone: this thread only waits, so the counts are the probe's. */
static void mem_run(struct mem_probe *p, int pfd[2], long cap)
{
	pthread_t t;

	p->pfd = pfd;
	p->cap = cap;
	int err = pthread_create(&t, NULL, mem_thread, p);
	if (err)
		die("pthread_create", err);
	pthread_join(t, NULL);
}

static void mem_row(const char *what, const struct mem_probe *p, const struct heap_use *h)
{
	if (!p->usable)
		printf("  %-46s %10s\n", what, "n/a (backend not available)");
	else
		printf("  %-46s %10lu %8lu %8lu\n", what, h->bytes, h->allocs, h->frees);
}

/*
 * Run before any other thread has made a syscancel call and left: the first
 * probe then finds no free slot to reuse, the second reuses the first's.
 */
static void bench_memory(long iters)
{
	int pfd[2];

	if (!HEAP_COUNTED) {
		printf("Memory: n/a (a sanitizer build keeps its own malloc)\n\n");
		return;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("pipe2", errno);
	long cap = fcntl(pfd[1], F_GETPIPE_SZ);
	int err = sc_token_init(&live_tok, NULL);
	if (cap <= 0 || err)
		die("memory setup", cap <= 0 ? errno : err);
	struct mem_probe fresh = { .backend = SC_BACKEND_SIGNAL, .iters = iters },
			 reused = { .backend = SC_BACKEND_SIGNAL, .iters = iters },
			 uring = { .backend = SC_BACKEND_URING, .iters = iters };
	mem_run(&fresh, pfd, cap);
	mem_run(&reused, pfd, cap);
	mem_run(&uring, pfd, cap);
	sc_token_destroy(&live_tok);
	close(pfd[0]);
	close(pfd[1]);

	printf("Memory: heap use seen by this program's malloc, calloc, realloc, memalign,\n");
	printf("  aligned_alloc, posix_memalign and free; the library's calls land there too;\n");
	printf("  first call: the new thread's sc_thread_backend and its first sc_read\n\n");
	printf("  %-46s %10s %8s %8s\n", "what", "bytes", "allocs", "frees");
	printf("  %-46s %10zu %8s %8s\n", "sc_token: sizeof, wherever the caller puts it",
	       sizeof(sc_token), "-", "-");
	mem_row("new thread's first call, new slot, signal", &fresh, &fresh.first);
	mem_row("new thread's first call, reused slot, signal", &reused, &reused.first);
	mem_row("new thread's first call, reused slot, io_uring", &uring, &uring.first);
	char what[64];
	snprintf(what, sizeof(what), "%ld sc_read(tok) after the first, signal", iters);
	mem_row(what, &fresh, &fresh.after);
	snprintf(what, sizeof(what), "%ld sc_read(tok) after the first, io_uring", iters);
	mem_row(what, &uring, &uring.after);
	printf("\n");
}

/* ---- wake-up latency ---------------------------------------------------- */

static bool block_read(struct lat_ctx *c)
{
	char b;
	return read(c->pipe[0], &b, 1) == 1;
}

/* The blocking calls, also of the shutdown's workers. */
static bool read_eintr(int fd)
{
	char b;
	return read(fd, &b, 1) < 0 && errno == EINTR;
}

static bool block_read_eintr(struct lat_ctx *c) { return read_eintr(c->pipe[0]); }

static bool block_poll(struct lat_ctx *c)
{
	struct pollfd p[2] = { { .fd = c->pipe[0], .events = POLLIN },
			       { .fd = c->efd, .events = POLLIN } };
	eventfd_t v;
	return poll(p, 2, -1) == 1 && eventfd_read(c->efd, &v) == 0;
}

static bool block_sc_read_data(struct lat_ctx *c)
{
	char b;
	sc_result r = sc_read(&c->tok, c->pipe[0], &b, 1);
	return r.status == SC_OK && r.value == 1;
}

static void wake_write(struct lat_ctx *c)
{
	if (write(c->pipe[1], "x", 1) != 1)
		die("write", errno);
}

static void *cancellable_read(void *arg)
{
	struct lat_ctx *c = arg;
	char b;

	__atomic_store_n(&c->sub_tid, gettid(), __ATOMIC_RELEASE);
	if (read(c->pipe[0], &b, 1) < 0)	/* a cancellation point */
		return NULL;
	return arg;
}

/* pthread_cancel's way: the read runs in a thread of its own, which the cancel ends. */
static bool block_pthread_read(struct lat_ctx *c)
{
	void *ret;

	c->sub_tid = 0;
	if (pthread_create(&c->sub, NULL, cancellable_read, c))
		return false;
	while (!__atomic_load_n(&c->sub_tid, __ATOMIC_ACQUIRE) || thread_state(c->sub_tid) != 'S')
		sched_yield();
	return !pthread_join(c->sub, &ret) && ret == PTHREAD_CANCELED;
}

static void wake_pthread_cancel(struct lat_ctx *c) { pthread_cancel(c->sub); }
static void wake_eventfd(struct lat_ctx *c) { eventfd_write(c->efd, 1); }
static void wake_tgkill(struct lat_ctx *c) { tgkill(getpid(), c->tid, SIGUSR1); }

static struct lat_method lat_methods[] = {
	LAT("read(2) woken by write(2)", "read_write", block_read, wake_write,
	    SC_BACKEND_DEFAULT),
	LAT("poll(pipe, eventfd) by eventfd", "poll_eventfd", block_poll, wake_eventfd,
	    SC_BACKEND_DEFAULT),
	LAT("read(2) EINTR by tgkill(2)", "read_tgkill", block_read_eintr, wake_tgkill,
	    SC_BACKEND_DEFAULT),
	LAT("sc_read(tok) woken by write(2)", "sc_read_write", block_sc_read_data, wake_write,
	    SC_BACKEND_SIGNAL),
	LAT("sc_read by sc_cancel, signal", "sc_cancel_signal", block_sc_read, wake_cancel,
	    SC_BACKEND_SIGNAL),
	LAT("sc_read by sc_cancel, io_uring", "sc_cancel_uring", block_sc_read, wake_cancel,
	    SC_BACKEND_URING),
	LAT("read(2) by pthread_cancel+join", "pthread_cancel", block_pthread_read,
	    wake_pthread_cancel, SC_BACKEND_DEFAULT),
};

static void on_sigusr1(int sig) { (void)sig; }

/* A no-op handler without SA_RESTART: a signal makes a blocked read(2) fail with EINTR. */
static void catch_sigusr1(void)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };

	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		die("sigaction", errno);
}

/* Latency with main and the worker on one CPU or on two; returns the samples dropped. */
static int bench_latency(int samples, FILE *csv, bool two_cpus)
{
	const int n = ARRAY_SIZE(lat_methods);
	const char *where = two_cpus ? "two-cpus" : "same-cpu";
	int cpu[2];

	catch_sigusr1();
	int bad = lat_run(lat_methods, n, samples, two_cpus, cpu);
	if (bad < 0) {
		printf("Wake-up latency, %s: not enough CPUs\n\n", where);
		return 0;
	}
	lat_csv(csv, lat_methods, n, where);

	printf("Wake-up latency, %s: main on CPU %d wakes a thread blocked on an empty pipe"
	       " on CPU %d\n", where, cpu[0], cpu[two_cpus]);
	printf("  %d samples per method, interleaved; ns from the wake call to the return;\n",
	       samples);
	printf("  waker: ns spent in the wake call itself (write, tgkill, sc_cancel, ...)%s\n\n",
	       two_cpus ? "" : ",\n  here including the woken thread's run, which preempts it");
	lat_table(lat_methods, n);
	if (bad)
		printf("\n  %d samples dropped: the call did not return as expected\n", bad);
	printf("\n");
	return bad;
}

/* ---- shutdown ----------------------------------------------------------- */

#define SHUT_STACK (64 << 10)	/* so that 10,000 threads fit */

struct shut_pool;

struct shut_worker {
	struct shut_pool *pool;
	pthread_t thread;
	pid_t tid;
	int fd;			/* an empty pipe: the read blocks until released */
	sc_token tok;		/* its own child of the pool's root, for one round */
	bool ok;		/* the call returned what the method expects */
	int64_t t1;		/* when it returned */
};

struct shut_method {
	const char *name, *id;
	bool (*block)(struct shut_worker *w);	/* worker: the blocking call */
	void (*release)(struct shut_pool *p);	/* main: make every worker return */
	sc_backend backend;
	int max_threads;	/* 0: any number */
	double *ns;		/* release time of each round */
	double *call_ns;	/* how long the release call itself took */
};

struct shut_pool {
	int n;
	struct shut_worker *w;
	sc_token root;
	const struct shut_method *m;	/* NULL: the workers exit */
	unsigned go;			/* round number; a futex */
	unsigned entered;		/* workers about to block in this round */
	unsigned done;			/* workers back in this round; a futex */
};

static bool shut_read_eintr(struct shut_worker *w) { return read_eintr(w->fd); }
static bool shut_sc_read(struct shut_worker *w) { return sc_read_cancelled(&w->tok, w->fd); }

static void release_tgkill(struct shut_pool *p)
{
	const pid_t pid = getpid();

	for (int i = 0; i < p->n; i++)
		tgkill(pid, p->w[i].tid, SIGUSR1);
}

static void release_cancel(struct shut_pool *p) { sc_cancel(&p->root); }

#define SHUT(name_, id_, block_, release_, backend_, max_) { .name = name_, .id = id_, \
	.block = block_, .release = release_, .backend = backend_, .max_threads = max_ }

static struct shut_method shut_methods[] = {
	SHUT("tgkill(2) x N, read(2) EINTR", "tgkill", shut_read_eintr, release_tgkill,
	     SC_BACKEND_DEFAULT, 0),
	SHUT("sc_cancel(root), signal", "sc_cancel_signal", shut_sc_read, release_cancel,
	     SC_BACKEND_SIGNAL, 0),
	SHUT("sc_cancel(root), io_uring", "sc_cancel_uring", shut_sc_read, release_cancel,
	     SC_BACKEND_URING, 1000),
};

static void *shut_worker(void *arg)
{
	struct shut_worker *w = arg;
	struct shut_pool *p = w->pool;

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	for (unsigned seq = 1, go;; seq++) {
		while ((go = __atomic_load_n(&p->go, __ATOMIC_ACQUIRE)) != seq)
			futex(&p->go, FUTEX_WAIT_PRIVATE, go, NULL);
		const struct shut_method *m = p->m;
		if (!m)
			return NULL;
		use_backend(m->backend);
		int err = sc_token_init(&w->tok, &p->root);
		__atomic_fetch_add(&p->entered, 1, __ATOMIC_RELEASE);
		bool ok = m->block(w);
		w->t1 = sc_now_ns();
		/* by its only user, so without a walk of the registry */
		w->ok = ok && !err && !sc_token_destroy(&w->tok);
		if (__atomic_add_fetch(&p->done, 1, __ATOMIC_ACQ_REL) == (unsigned)p->n)
			futex(&p->done, FUTEX_WAKE_PRIVATE, 1, NULL);
	}
}

/* Starts round seq of m (NULL: the end); returns once every worker has left the futex. */
static void shut_go(struct shut_pool *p, const struct shut_method *m, unsigned seq)
{
	p->m = m;
	__atomic_store_n(&p->entered, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->go, seq, __ATOMIC_RELEASE);
	futex(&p->go, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
	while (m && __atomic_load_n(&p->entered, __ATOMIC_ACQUIRE) != (unsigned)p->n)
		sched_yield();
}

static void shut_wait_done(struct shut_pool *p, const char *what)
{
	const struct timespec tick = { 1, 0 };
	int64_t give_up = sc_now_ns() + 30 * SEC_NS;
	unsigned done;

	while ((done = __atomic_load_n(&p->done, __ATOMIC_ACQUIRE)) != (unsigned)p->n) {
		if (sc_now_ns() > give_up) {
			fprintf(stderr, "syscancel-bench: %s: %u of %d threads never returned\n",
				what, p->n - done, p->n);
			exit(2);
		}
		futex(&p->done, FUTEX_WAIT_PRIVATE, done, &tick);
	}
}

/*
 * One round of m: ns from the release to the last worker's return (-1 if a
 * call misbehaved), and the ns of the release call.
 */
static double shut_round(struct shut_pool *p, const struct shut_method *m, unsigned seq,
			 double *call_ns)
{
	int err = sc_token_init(&p->root, NULL);
	bool ok = true;

	if (err)
		die("sc_token_init", err);
	shut_go(p, m, seq);
	for (int i = 0; i < p->n && ok; i++)
		ok = wait_sleeping(p->w[i].tid, &p->done, 0, m->name);
	int64_t t0 = sc_now_ns(), last = t0;
	m->release(p);
	*call_ns = sc_now_ns() - t0;
	shut_wait_done(p, m->name);
	for (int i = 0; i < p->n; i++) {
		ok &= p->w[i].ok;
		if (p->w[i].t1 > last)
			last = p->w[i].t1;
	}
	if (sc_token_destroy(&p->root) || !ok) {
		fprintf(stderr, "syscancel-bench: shutdown of %d, %s: round %u: %s\n", p->n,
			m->name, seq, ok ? "root token busy after return" : "unexpected result");
		return -1;
	}
	return last - t0;
}

/* Room for n more descriptors: raises RLIMIT_NOFILE if it must (and may). */
static bool fd_room(long n)
{
	const rlim_t need = n + 256;	/* and the few this program has open */
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return false;
	if (rl.rlim_cur >= need)
		return true;
	rl.rlim_cur = need;
	if (rl.rlim_max < need)
		rl.rlim_max = need;	/* needs CAP_SYS_RESOURCE */
	return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

/*
 * An empty pipe held by one descriptor open for reading and writing (the read
 * end reopened through /proc, as a FIFO would be): a read of it blocks, never
 * sees end of file, and 10,000 of them fit under a limit of 20,000 descriptors.
 */
static int lone_pipe(void)
{
	char path[64];
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	close(p[0]);
	close(p[1]);
	return fd;
}

static void shut_start(struct shut_pool *p, int n)
{
	pthread_attr_t attr;

	*p = (struct shut_pool){ .n = n, .w = calloc(n, sizeof(*p->w)) };
	if (!p->w)
		die("calloc", ENOMEM);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, SHUT_STACK);
	for (int i = 0; i < n; i++) {
		struct shut_worker *w = &p->w[i];
		w->pool = p;
		w->fd = lone_pipe();
		if (w->fd < 0)
			die("pipe", errno);
		int err = pthread_create(&w->thread, &attr, shut_worker, w);
		if (err)
			die("pthread_create", err);
	}
	pthread_attr_destroy(&attr);
	for (int i = 0; i < n; i++)
		while (!__atomic_load_n(&p->w[i].tid, __ATOMIC_ACQUIRE))
			sched_yield();
}

static void shut_stop(struct shut_pool *p, unsigned seq)
{
	shut_go(p, NULL, seq);
	for (int i = 0; i < p->n; i++) {
		pthread_join(p->w[i].thread, NULL);
		close(p->w[i].fd);
	}
	free(p->w);
}

static bool too_many(const struct shut_method *m, int n)
{
	return m->max_threads && n > m->max_threads;
}

/* Many rounds for few threads, a few for many. */
static int shut_rounds(int n, bool quick)
{
	int r = (quick ? 2000 : 20000) / n;
	int lo = quick ? 3 : 5, hi = quick ? 50 : 200;

	return r < lo ? lo : r > hi ? hi : r;
}

/* The rows for n threads, methods interleaved round by round; returns the rounds dropped. */
static int shut_size(int n, int rounds, FILE *csv)
{
	const int nm = ARRAY_SIZE(shut_methods);
	bool usable[ARRAY_SIZE(shut_methods)];
	int count[ARRAY_SIZE(shut_methods)] = { 0 }, bad = 0;
	struct shut_pool p;
	unsigned seq = 0;
	double call;

	if (!fd_room(n)) {
		printf("  %-30s %7d  n/a (RLIMIT_NOFILE too low for %d pipes)\n", "all methods",
		       n, n);
		return 0;
	}
	shut_start(&p, n);
	for (int k = 0; k < nm; k++) {
		struct shut_method *m = &shut_methods[k];
		usable[k] = !too_many(m, n) && use_backend(m->backend);
		m->ns = calloc(rounds, sizeof(double));
		m->call_ns = calloc(rounds, sizeof(double));
		if (usable[k])
			shut_round(&p, m, ++seq, &call);	/* warm-up: slots, rings */
	}
	use_backend(SC_BACKEND_SIGNAL);
	for (int r = 0; r < rounds; r++) {
		for (int j = 0; j < nm; j++) {
			int k = (r + j) % nm;
			if (!usable[k])
				continue;
			double ns = shut_round(&p, &shut_methods[k], ++seq, &call);
			if (ns < 0) {
				bad++;
				continue;
			}
			shut_methods[k].call_ns[count[k]] = call;
			shut_methods[k].ns[count[k]++] = ns;
		}
	}
	shut_stop(&p, ++seq);

	double base = count[0] ? percentile(shut_methods[0].ns, count[0], 50) : 1;
	for (int k = 0; k < nm; k++) {
		struct shut_method *m = &shut_methods[k];
		for (int s = 0; csv && s < count[k]; s++)
			fprintf(csv, "shutdown-%d@%s,%.0f\n", n, m->id, m->ns[s]);
		if (!count[k]) {
			printf("  %-30s %7d  %s\n", m->name, n, usable[k] ? "no samples" :
			       too_many(m, n) ? "n/a (not run at this size)" :
			       "n/a (backend not available)");
		} else {
			double p50 = percentile(m->ns, count[k], 50);
			printf("  %-30s %7d %7d %10.1f %10.1f %8.2fx %10.0f %10.1f\n", m->name,
			       n, count[k], p50 / 1000, m->ns[0] / 1000, p50 / base, p50 / n,
			       percentile(m->call_ns, count[k], 50) / 1000);
		}
		free(m->ns);
		free(m->call_ns);
	}
	return bad;
}

static int bench_shutdown(const int *sizes, int n_sizes, bool quick, FILE *csv)
{
	int bad = 0;

	catch_sigusr1();
	printf("Shutdown: N threads blocked reading their own empty pipes, released at once\n");
	printf("  syscancel: sc_read under children of one root, one sc_cancel(root);\n");
	printf("  floor: plain read(2), one tgkill(2) per thread, no-op handler, EINTR;\n");
	printf("  us from just before the release to the last thread's return, median of\n");
	printf("  the rounds, methods interleaved; ratio to the floor at the same N;\n");
	printf("  call: us spent in the release itself (the tgkill loop, sc_cancel)\n\n");
	printf("  %-30s %7s %7s %10s %10s %9s %10s %10s\n", "method", "threads", "rounds",
	       "p50 us", "min us", "p50 ratio", "ns/thread", "call p50");
	for (int i = 0; i < n_sizes; i++) {
		if (i)
			printf("\n");
		bad += shut_size(sizes[i], shut_rounds(sizes[i], quick), csv);
	}
	if (bad)
		printf("\n  %d rounds dropped: a call did not return as expected\n", bad);
	printf("\n");
	return bad;
}

int main(int argc, char **argv)
{
	static const int sizes[] = { 10, 100, 1000, 10000 };
	bool quick = false, large = false;
	const char *csv_path = NULL;
	FILE *csv = NULL;
	struct utsname u;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--large")) {
			large = true;
		} else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
			csv_path = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--quick] [--large] [--csv FILE]\n", argv[0]);
			return 2;
		}
	}
	if (csv_path && (!(csv = fopen(csv_path, "w")) || fprintf(csv, "method,sample_ns\n") < 0))
		die(csv_path, errno);
	uname(&u);
	printf("syscancel-bench: Linux %s %s, %ld CPUs, signal %d%s\n\n", u.release, u.machine,
	       sysconf(_SC_NPROCESSORS_ONLN), sc_signal_number(), quick ? ", --quick" : "");
	bench_fast_path(quick ? 10 : 20, quick ? 100000 : 200000);
	bench_memory(100000);
	int bad = bench_latency(quick ? 1000 : 10000, csv, false);
	bad += bench_latency(quick ? 1000 : 10000, csv, true);
	bad += bench_shutdown(sizes, large ? 4 : quick ? 2 : 3, quick, csv);
	bad += bench_scopes(quick, csv);
	if (csv && fclose(csv))
		die(csv_path, errno);
	return bad ? 1 : 0;
}
