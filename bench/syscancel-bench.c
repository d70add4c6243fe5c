/*
 * syscancel-bench: what syscancel costs, next to what the kernel costs.
 *
 * Fast path: ns per uncancelled 1-byte read from a pipe that is never empty
 * (filled before each timed batch, only the reads are timed), raw read(2)
 * against sc_read, interleaved in rounds; median of the rounds.
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
 * Usage: syscancel-bench [--quick] [--csv FILE]
 * CSV: method,sample_ns with method as id@same-cpu or id@two-cpus.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <syscancel.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SEC_NS 1000000000LL

static void die(const char *what, int err)
{
	fprintf(stderr, "syscancel-bench: %s: %s\n", what, strerror(err));
	exit(2);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The p-th percentile (0..100) of v[0..n-1]; sorts v. */
static double percentile(double *v, int n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	int i = (int)(p / 100.0 * n);
	return v[i < n ? i : n - 1];
}

/*
 * Switch this thread to backend b (SC_BACKEND_DEFAULT: leave it alone, the
 * method makes no syscancel call); false if this build or kernel lacks it.
 */
static bool use_backend(sc_backend b)
{
	return b == SC_BACKEND_DEFAULT || sc_thread_backend(b) == 0;
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

struct fast_method {
	const char *name;
	long (*read1)(int fd, char *c);
	sc_backend backend;	/* SC_BACKEND_DEFAULT: not a syscancel call */
	double *ns;		/* ns/call of each round */
};

#define FAST(name_, read1_, backend_) { .name = name_, .read1 = read1_, .backend = backend_ }

static struct fast_method fast_methods[] = {
	FAST("read(2), libc", read_libc, SC_BACKEND_DEFAULT),
	FAST("syscall(SYS_read)", read_raw, SC_BACKEND_DEFAULT),
	FAST("sc_read(NULL)", read_sc_null, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok)", read_sc_tok, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok), deadline in 1 h", read_sc_deadline, SC_BACKEND_SIGNAL),
	FAST("token per call, 100 ms timeout", read_sc_fresh, SC_BACKEND_SIGNAL),
	FAST("sc_read(tok), io_uring", read_sc_tok, SC_BACKEND_URING),
};

/* ns per read over iters 1-byte reads; refills untimed, cap bytes at a time. */
static double fast_round(const struct fast_method *m, int pfd[2], long iters, long cap)
{
	static char fill[1 << 20];
	int64_t spent = 0;
	char c;

	for (long done = 0, batch; done < iters; done += batch) {
		batch = iters - done < cap ? iters - done : cap;
		if (write(pfd[1], fill, batch) != batch)
			die("pipe refill", errno);
		int64_t t0 = sc_now_ns();
		for (long i = 0; i < batch; i++)
			if (m->read1(pfd[0], &c) != 1)
				die(m->name, EIO);
		spent += sc_now_ns() - t0;
	}
	return (double)spent / iters;
}

static void bench_fast_path(int rounds, long iters)
{
	const int n = ARRAY_SIZE(fast_methods);
	bool usable[ARRAY_SIZE(fast_methods)];
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("pipe2", errno);
	fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);	/* fewer refills; fine if refused */
	long cap = fcntl(pfd[1], F_GETPIPE_SZ);
	if (cap > 1 << 20)
		cap = 1 << 20;		/* the size of fast_round's fill buffer */
	int err = sc_token_init(&live_tok, NULL);
	if (!err)
		err = sc_token_init(&deadline_tok, NULL);
	if (!err)
		err = sc_token_set_timeout(&deadline_tok, 3600 * SEC_NS);
	if (cap <= 0 || err)
		die("fast path setup", cap <= 0 ? errno : err);

	for (int k = 0; k < n; k++) {
		struct fast_method *m = &fast_methods[k];
		usable[k] = use_backend(m->backend);
		m->ns = calloc(rounds, sizeof(double));
		if (usable[k])
			fast_round(m, pfd, iters / 10 + 1, cap);	/* warm-up */
	}
	for (int r = 0; r < rounds; r++) {
		for (int j = 0; j < n; j++) {
			int k = (r + j) % n;	/* rotate the order against drift */
			if (!usable[k])
				continue;
			use_backend(fast_methods[k].backend);
			fast_methods[k].ns[r] = fast_round(&fast_methods[k], pfd, iters, cap);
		}
	}
	use_backend(SC_BACKEND_SIGNAL);

	printf("Fast path: uncancelled 1-byte read from a non-empty pipe\n");
	printf("  %d rounds x %ld reads per method, methods interleaved\n\n", rounds, iters);
	printf("  %-32s %10s %10s %10s %10s\n", "method", "median ns", "min ns", "+ns", "ratio");
	double base = percentile(fast_methods[0].ns, rounds, 50);
	for (int k = 0; k < n; k++) {
		struct fast_method *m = &fast_methods[k];
		if (!usable[k]) {
			printf("  %-32s %10s\n", m->name, "n/a (backend not available)");
		} else {
			double med = percentile(m->ns, rounds, 50);	/* sorts: ns[0] is the min */
			printf("  %-32s %10.1f %10.1f %+10.1f %9.3fx\n", m->name, med, m->ns[0],
			       med - base, med / base);
		}
		free(m->ns);
	}
	printf("\n");
	sc_token_destroy(&live_tok);
	sc_token_destroy(&deadline_tok);
	close(pfd[0]);
	close(pfd[1]);
}

/* ---- wake-up latency ---------------------------------------------------- */

struct lat_ctx {
	int pipe[2];
	int efd;
	sc_token tok;			/* fresh for every sample */
	const struct lat_method *m;	/* NULL: the worker exits */
	pid_t tid;
	unsigned go, entered, done;	/* sample sequence numbers */
	bool ok;			/* the call returned what the method expects */
	int64_t t1;
};

struct lat_method {
	const char *name, *id;
	bool (*block)(struct lat_ctx *c);	/* worker: the blocking call */
	void (*wake)(struct lat_ctx *c);	/* main: make it return */
	sc_backend backend;
	double *ns;		/* wake-up latency of each sample */
	double *waker_ns;	/* how long the wake call itself took, in main */
};

static bool block_read(struct lat_ctx *c)
{
	char b;
	return read(c->pipe[0], &b, 1) == 1;
}

static bool block_read_eintr(struct lat_ctx *c)
{
	char b;
	return read(c->pipe[0], &b, 1) < 0 && errno == EINTR;
}

static bool block_poll(struct lat_ctx *c)
{
	struct pollfd p[2] = { { .fd = c->pipe[0], .events = POLLIN },
			       { .fd = c->efd, .events = POLLIN } };
	eventfd_t v;
	return poll(p, 2, -1) == 1 && eventfd_read(c->efd, &v) == 0;
}

static bool block_sc_read(struct lat_ctx *c)
{
	char b;
	sc_result r = sc_read(&c->tok, c->pipe[0], &b, 1);
	return r.status == SC_CANCELLED && r.error == ECANCELED;
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

static void wake_eventfd(struct lat_ctx *c) { eventfd_write(c->efd, 1); }
static void wake_tgkill(struct lat_ctx *c) { tgkill(getpid(), c->tid, SIGUSR1); }
static void wake_cancel(struct lat_ctx *c) { sc_cancel(&c->tok); }

#define LAT(name_, id_, block_, wake_, backend_) \
	{ .name = name_, .id = id_, .block = block_, .wake = wake_, .backend = backend_ }

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
};

static void on_sigusr1(int sig) { (void)sig; }

static void *lat_worker(void *arg)
{
	struct lat_ctx *c = arg;

	__atomic_store_n(&c->tid, gettid(), __ATOMIC_RELEASE);
	for (unsigned seq = 1;; seq++) {
		while (__atomic_load_n(&c->go, __ATOMIC_ACQUIRE) != seq)
			sched_yield();
		const struct lat_method *m = c->m;
		if (!m)
			return NULL;
		use_backend(m->backend);
		__atomic_store_n(&c->entered, seq, __ATOMIC_RELEASE);
		bool ok = m->block(c);
		c->t1 = sc_now_ns();
		c->ok = ok;
		__atomic_store_n(&c->done, seq, __ATOMIC_RELEASE);
	}
}

static char thread_state(pid_t tid)
{
	char path[64], buf[512] = "";
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = 0;
		close(fd);
	}
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* After a call that misbehaved: empty the pipe and the eventfd for the next sample. */
static void drain(struct lat_ctx *c)
{
	struct pollfd p[2] = { { .fd = c->pipe[0], .events = POLLIN },
			       { .fd = c->efd, .events = POLLIN } };
	char b[64];

	while (poll(p, 2, 0) > 0) {
		if ((p[0].revents && read(c->pipe[0], b, sizeof(b)) <= 0) ||
		    (p[1].revents && read(c->efd, b, 8) != 8))
			die("drain", errno);
	}
}

/* One sample of m: ns from wake to return (-1 if the call misbehaved), and the waker's ns. */
static double lat_sample(struct lat_ctx *c, const struct lat_method *m, unsigned seq,
			 double *waker_ns)
{
	int err = sc_token_init(&c->tok, NULL);
	if (err)
		die("sc_token_init", err);
	c->m = m;
	__atomic_store_n(&c->go, seq, __ATOMIC_RELEASE);
	while (__atomic_load_n(&c->entered, __ATOMIC_ACQUIRE) != seq)
		sched_yield();
	int64_t give_up = sc_now_ns() + 10 * SEC_NS;
	while (thread_state(c->tid) != 'S' && __atomic_load_n(&c->done, __ATOMIC_ACQUIRE) != seq) {
		if (sc_now_ns() > give_up) {
			fprintf(stderr, "syscancel-bench: %s: thread never blocked\n", m->name);
			exit(2);
		}
		sched_yield();
	}
	bool early = __atomic_load_n(&c->done, __ATOMIC_ACQUIRE) == seq;
	int64_t t0 = sc_now_ns();
	m->wake(c);
	*waker_ns = sc_now_ns() - t0;
	while (__atomic_load_n(&c->done, __ATOMIC_ACQUIRE) != seq)
		sched_yield();
	err = sc_token_destroy(&c->tok);
	if (early || !c->ok || err) {
		fprintf(stderr, "syscancel-bench: %s: sample %u: %s\n", m->name, seq,
			early ? "returned before the wake-up" : err ? "token busy after return" :
			"unexpected result");
		drain(c);
		return -1;
	}
	return c->t1 - t0;
}

/* The first two CPUs in set: main wakes from one, the worker sleeps on the other. */
static int pick_cpus(const cpu_set_t *set, int cpu[2])
{
	int n = 0;

	for (int i = 0; i < CPU_SETSIZE && n < 2; i++)
		if (CPU_ISSET(i, set))
			cpu[n++] = i;
	return n;
}

static void pin(pthread_t t, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(t, sizeof(set), &set);
}

/* Latency with main and the worker on one CPU or on two; returns the samples dropped. */
static int bench_latency(int samples, FILE *csv, bool two_cpus)
{
	const int n = ARRAY_SIZE(lat_methods);
	struct lat_ctx c = { .efd = eventfd(0, EFD_CLOEXEC) };
	struct sigaction sa = { .sa_handler = on_sigusr1 };	/* no SA_RESTART: EINTR */
	bool usable[ARRAY_SIZE(lat_methods)];
	int count[ARRAY_SIZE(lat_methods)] = { 0 }, bad = 0;
	unsigned seq = 0;
	double waker;
	pthread_t worker;
	int cpu[2];
	cpu_set_t allowed;
	const char *where = two_cpus ? "two-cpus" : "same-cpu";

	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		die("sched_getaffinity", errno);
	if (pick_cpus(&allowed, cpu) < 1 + two_cpus) {
		printf("Wake-up latency, %s: not enough CPUs\n\n", where);
		return 0;
	}
	if (c.efd < 0 || pipe2(c.pipe, O_CLOEXEC) < 0 || sigaction(SIGUSR1, &sa, NULL) < 0)
		die("latency setup", errno);
	int err = pthread_create(&worker, NULL, lat_worker, &c);
	if (err)
		die("pthread_create", err);
	while (!__atomic_load_n(&c.tid, __ATOMIC_ACQUIRE))
		sched_yield();
	pin(pthread_self(), cpu[0]);
	pin(worker, cpu[two_cpus]);
	for (int k = 0; k < n; k++) {
		usable[k] = use_backend(lat_methods[k].backend);
		lat_methods[k].ns = calloc(samples, sizeof(double));
		lat_methods[k].waker_ns = calloc(samples, sizeof(double));
		if (usable[k])
			lat_sample(&c, &lat_methods[k], ++seq, &waker);	/* warm-up */
	}
	use_backend(SC_BACKEND_SIGNAL);
	for (int s = 0; s < samples; s++) {
		for (int j = 0; j < n; j++) {
			int k = (s + j) % n;
			if (!usable[k])
				continue;
			double ns = lat_sample(&c, &lat_methods[k], ++seq, &waker);
			if (ns < 0) {
				bad++;
				continue;
			}
			lat_methods[k].waker_ns[count[k]] = waker;
			lat_methods[k].ns[count[k]++] = ns;
		}
	}
	c.m = NULL;
	__atomic_store_n(&c.go, ++seq, __ATOMIC_RELEASE);
	pthread_join(worker, NULL);
	sched_setaffinity(0, sizeof(allowed), &allowed);

	for (int k = 0; csv && k < n; k++)
		for (int s = 0; s < count[k]; s++)
			fprintf(csv, "%s@%s,%.0f\n", lat_methods[k].id, where, lat_methods[k].ns[s]);

	printf("Wake-up latency, %s: main on CPU %d wakes a thread blocked on an empty pipe"
	       " on CPU %d\n", where, cpu[0], cpu[two_cpus]);
	printf("  %d samples per method, interleaved; ns from the wake call to the return;\n",
	       samples);
	printf("  waker: ns spent in the wake call itself (write, tgkill, sc_cancel, ...)%s\n\n",
	       two_cpus ? "" : ",\n  here including the woken thread's run, which preempts it");
	printf("  %-32s %9s %9s %9s %9s %11s\n", "method", "p50 ns", "p90 ns", "p99 ns",
	       "p50 ratio", "waker p50");
	double base = count[0] ? percentile(lat_methods[0].ns, count[0], 50) : 1;
	for (int k = 0; k < n; k++) {
		struct lat_method *m = &lat_methods[k];
		if (!usable[k] || !count[k]) {
			printf("  %-32s %9s\n", m->name, usable[k] ? "no samples" :
			       "n/a (backend not available)");
		} else {
			double p50 = percentile(m->ns, count[k], 50);
			printf("  %-32s %9.0f %9.0f %9.0f %8.2fx %11.0f\n", m->name, p50,
			       percentile(m->ns, count[k], 90), percentile(m->ns, count[k], 99),
			       p50 / base, percentile(m->waker_ns, count[k], 50));
		}
		free(m->ns);
		free(m->waker_ns);
	}
	if (bad)
		printf("\n  %d samples dropped: the call did not return as expected\n", bad);
	printf("\n");
	close(c.pipe[0]);
	close(c.pipe[1]);
	close(c.efd);
	return bad;
}

int main(int argc, char **argv)
{
	bool quick = false;
	const char *csv_path = NULL;
	FILE *csv = NULL;
	struct utsname u;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
			csv_path = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--quick] [--csv FILE]\n", argv[0]);
			return 2;
		}
	}
	if (csv_path && (!(csv = fopen(csv_path, "w")) || fprintf(csv, "method,sample_ns\n") < 0))
		die(csv_path, errno);
	uname(&u);
	printf("syscancel-bench: Linux %s %s, %ld CPUs, signal %d%s\n\n", u.release, u.machine,
	       sysconf(_SC_NPROCESSORS_ONLN), sc_signal_number(), quick ? ", --quick" : "");
	bench_fast_path(quick ? 10 : 20, quick ? 100000 : 200000);
	int bad = bench_latency(quick ? 1000 : 10000, csv, false);
	bad += bench_latency(quick ? 1000 : 10000, csv, true);
	if (csv && fclose(csv))
		die(csv_path, errno);
	return bad ? 1 : 0;
}
