/* What the benchmark's sections share: see bench.h. */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

void die(const char *what, int err)
{
	fprintf(stderr, "syscancel-bench: %s: %s\n", what, strerror(err));
	exit(2);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

double percentile(double *v, int n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	int i = (int)(p / 100.0 * n);
	return v[i < n ? i : n - 1];
}

bool use_backend(sc_backend b)
{
	return b == SC_BACKEND_DEFAULT || sc_thread_backend(b) == 0;
}

char thread_state(pid_t tid)
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

bool wait_sleeping(pid_t tid, const unsigned *done, unsigned idle, const char *what)
{
	int64_t give_up = sc_now_ns() + 10 * SEC_NS;

	while (thread_state(tid) != 'S' && __atomic_load_n(done, __ATOMIC_ACQUIRE) == idle) {
		if (sc_now_ns() > give_up) {
			fprintf(stderr, "syscancel-bench: %s: thread never blocked\n", what);
			exit(2);
		}
		sched_yield();
	}
	return __atomic_load_n(done, __ATOMIC_ACQUIRE) == idle;
}

int pick_cpus(const cpu_set_t *set, int cpu[2])
{
	int n = 0;

	for (int i = 0; i < CPU_SETSIZE && n < 2; i++)
		if (CPU_ISSET(i, set))
			cpu[n++] = i;
	return n;
}

void pin(pthread_t t, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(t, sizeof(set), &set);
}

/* ---- fast path ---------------------------------------------------------- */

long fast_pipe(int pfd[2])
{
	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("pipe2", errno);
	fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);	/* fewer refills; fine if refused */
	long cap = fcntl(pfd[1], F_GETPIPE_SZ);
	if (cap <= 0)
		die("F_GETPIPE_SZ", errno);
	return cap > 1 << 20 ? 1 << 20 : cap;	/* the size of fast_round's fill buffer */
}

/* ns per read over iters 1-byte reads; refills untimed, cap bytes at a time. */
double fast_round(const struct fast_method *m, int pfd[2], long iters, long cap)
{
	static char fill[1 << 20];
	int64_t spent = 0;
	char c;

	if (m->scope && sc_scope_enter(m->scope))
		die("sc_scope_enter", EINVAL);
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
	if (m->scope && sc_scope_exit())
		die("sc_scope_exit", EINVAL);
	return (double)spent / iters;
}

void fast_run(struct fast_method *m, int n, int rounds, long iters, int pfd[2], long cap)
{
	for (int k = 0; k < n; k++) {
		m[k].usable = use_backend(m[k].backend);
		m[k].ns = calloc(rounds, sizeof(double));
		if (m[k].usable)
			fast_round(&m[k], pfd, iters / 10 + 1, cap);	/* warm-up */
	}
	for (int r = 0; r < rounds; r++) {
		for (int j = 0; j < n; j++) {
			int k = (r + j) % n;	/* rotate the order against drift */
			if (!m[k].usable)
				continue;
			use_backend(m[k].backend);
			m[k].ns[r] = fast_round(&m[k], pfd, iters, cap);
		}
	}
	use_backend(SC_BACKEND_SIGNAL);
}

void fast_head(void)
{
	printf("  %-32s %10s %10s %10s %10s\n", "method", "median ns", "min ns", "+ns", "ratio");
}

void fast_row(const char *name, double *ns, int rounds, double base)
{
	double med = percentile(ns, rounds, 50);	/* sorts: ns[0] is the min */

	printf("  %-32s %10.1f %10.1f %+10.1f %9.3fx\n", name, med, ns[0], med - base,
	       med / base);
}

void fast_table(struct fast_method *m, int n, int rounds)
{
	fast_head();
	double base = percentile(m[0].ns, rounds, 50);
	for (int k = 0; k < n; k++) {
		if (!m[k].usable)
			printf("  %-32s %10s\n", m[k].name, "n/a (backend not available)");
		else
			fast_row(m[k].name, m[k].ns, rounds, base);
		free(m[k].ns);
	}
}

/* ---- wake-up latency ---------------------------------------------------- */

bool sc_read_cancelled(sc_token *tok, int fd)
{
	char b;
	sc_result r = sc_read(tok, fd, &b, 1);
	return r.status == SC_CANCELLED && r.error == ECANCELED;
}

bool block_sc_read(struct lat_ctx *c) { return sc_read_cancelled(&c->tok, c->pipe[0]); }
void wake_cancel(struct lat_ctx *c) { sc_cancel(&c->tok); }

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
		c->t1 = 0;
		__atomic_store_n(&c->entered, seq, __ATOMIC_RELEASE);
		bool ok = m->block(c);
		if (!c->t1)
			c->t1 = sc_now_ns();
		c->ok = ok;
		__atomic_store_n(&c->done, seq, __ATOMIC_RELEASE);
	}
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
	bool early = !wait_sleeping(c->tid, &c->done, seq - 1, m->name);
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

int lat_run(struct lat_method *m, int n, int samples, bool two_cpus, int cpu[2])
{
	struct lat_ctx c = { .efd = eventfd(0, EFD_CLOEXEC) };
	unsigned seq = 0;
	double waker;
	pthread_t worker;
	cpu_set_t allowed;
	int bad = 0;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) < 0)
		die("sched_getaffinity", errno);
	if (pick_cpus(&allowed, cpu) < 1 + two_cpus) {
		if (c.efd >= 0)
			close(c.efd);
		return -1;
	}
	if (c.efd < 0 || pipe2(c.pipe, O_CLOEXEC) < 0)
		die("latency setup", errno);
	int err = pthread_create(&worker, NULL, lat_worker, &c);
	if (err)
		die("pthread_create", err);
	while (!__atomic_load_n(&c.tid, __ATOMIC_ACQUIRE))
		sched_yield();
	pin(pthread_self(), cpu[0]);
	pin(worker, cpu[two_cpus]);
	for (int k = 0; k < n; k++) {
		m[k].usable = use_backend(m[k].backend);
		m[k].count = 0;
		m[k].ns = calloc(samples, sizeof(double));
		m[k].waker_ns = calloc(samples, sizeof(double));
		if (m[k].usable)
			lat_sample(&c, &m[k], ++seq, &waker);	/* warm-up */
	}
	use_backend(SC_BACKEND_SIGNAL);
	for (int s = 0; s < samples; s++) {
		for (int j = 0; j < n; j++) {
			int k = (s + j) % n;
			if (!m[k].usable)
				continue;
			double ns = lat_sample(&c, &m[k], ++seq, &waker);
			if (ns < 0) {
				bad++;
				continue;
			}
			m[k].waker_ns[m[k].count] = waker;
			m[k].ns[m[k].count++] = ns;
		}
	}
	c.m = NULL;
	__atomic_store_n(&c.go, ++seq, __ATOMIC_RELEASE);
	pthread_join(worker, NULL);
	sched_setaffinity(0, sizeof(allowed), &allowed);
	close(c.pipe[0]);
	close(c.pipe[1]);
	close(c.efd);
	return bad;
}

void lat_csv(FILE *csv, const struct lat_method *m, int n, const char *where)
{
	for (int k = 0; csv && k < n; k++)
		for (int s = 0; s < m[k].count; s++)
			fprintf(csv, "%s@%s,%.0f\n", m[k].id, where, m[k].ns[s]);
}

void lat_table(struct lat_method *m, int n)
{
	printf("  %-32s %9s %9s %9s %9s %11s\n", "method", "p50 ns", "p90 ns", "p99 ns",
	       "p50 ratio", "waker p50");
	double base = m[0].count ? percentile(m[0].ns, m[0].count, 50) : 1;
	for (int k = 0; k < n; k++) {
		if (!m[k].usable || !m[k].count) {
			printf("  %-32s %9s\n", m[k].name, m[k].usable ? "no samples" :
			       "n/a (backend not available)");
		} else {
			double p50 = percentile(m[k].ns, m[k].count, 50);
			printf("  %-32s %9.0f %9.0f %9.0f %8.2fx %11.0f\n", m[k].name, p50,
			       percentile(m[k].ns, m[k].count, 90),
			       percentile(m[k].ns, m[k].count, 99), p50 / base,
			       percentile(m[k].waker_ns, m[k].count, 50));
		}
		free(m[k].ns);
		free(m[k].waker_ns);
	}
}

/* ---- many threads, each blocked on its own empty pipe ------------------- */

long futex(unsigned *word, int op, unsigned val, const struct timespec *timeout)
{
	return syscall(SYS_futex, word, op, val, timeout, NULL, 0);
}

bool read_eintr(int fd)
{
	char b;
	return read(fd, &b, 1) < 0 && errno == EINTR;
}

static void on_sigusr1(int sig) { (void)sig; }

void catch_sigusr1(void)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };

	if (sigaction(SIGUSR1, &sa, NULL) < 0)
		die("sigaction", errno);
}

bool fd_room(long n)
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
 * The read end reopened through /proc for reading and writing, as a FIFO
 * would be: 10,000 of them fit under a limit of 20,000 descriptors.
 */
int lone_pipe(void)
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

void wait_count(unsigned *count, unsigned n, const char *what)
{
	const struct timespec tick = { 1, 0 };
	int64_t give_up = sc_now_ns() + 30 * SEC_NS;
	unsigned seen;

	while ((seen = __atomic_load_n(count, __ATOMIC_ACQUIRE)) != n) {
		if (sc_now_ns() > give_up) {
			fprintf(stderr, "syscancel-bench: %s: %u of %u threads never returned\n",
				what, n - seen, n);
			exit(2);
		}
		futex(count, FUTEX_WAIT_PRIVATE, seen, &tick);
	}
}
