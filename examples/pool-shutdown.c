/*
 * pool-shutdown: one sc_cancel stops a whole job-queue pool.
 *
 * Six workers take jobs from a queue, waiting for work on an sc_cond.  Some
 * jobs are quick; others block in accept (a loopback listener nobody
 * connects to), recv (a socketpair nobody writes to) or a 60 s sleep.  Once
 * the queue is empty and every worker either waits for work or blocks in
 * I/O, main cancels the root token: both kinds of worker return at once.
 * It prints what each worker did and how long the shutdown took.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <syscancel.h>

#define NWORKERS 6
#define SEC_NS 1000000000LL

enum job { JOB_QUICK, JOB_ACCEPT, JOB_RECV, JOB_SLEEP };
static const char *const job_name[] = { "a quick job", "accept", "recv", "sleep 60 s" };
static const enum job jobs[] = { JOB_QUICK, JOB_ACCEPT, JOB_QUICK, JOB_RECV,
				 JOB_QUICK, JOB_RECV, JOB_SLEEP, JOB_QUICK };
#define NJOBS (sizeof(jobs) / sizeof(jobs[0]))

static struct queue {
	pthread_mutex_t lock;
	sc_cond ready;		/* signalled for each job queued */
	enum job job[NJOBS];
	unsigned head, tail;
} q = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int listener, silent[2];	/* what the blocking jobs wait on */

struct worker {
	pthread_t thread;
	sc_token tok;		/* a child of the pool's root */
	pid_t tid;
	const char *doing;	/* NULL while running, else what it waits for */
	int jobs_done;
	sc_result res;		/* how its last wait ended */
	int64_t returned_ns;
};

static sc_result take_job(struct worker *w, enum job *job)
{
	sc_result r = { SC_OK, 0, 0 };

	pthread_mutex_lock(&q.lock);
	__atomic_store_n(&w->doing, "waiting for work", __ATOMIC_RELEASE);
	while (q.head == q.tail && r.status == SC_OK)
		r = sc_cond_wait(&w->tok, &q.ready, &q.lock);
	if (r.status == SC_OK)
		*job = q.job[q.head++];
	pthread_mutex_unlock(&q.lock);
	return r;
}

static sc_result run_job(struct worker *w, enum job job)
{
	char buf[16];

	__atomic_store_n(&w->doing, job == JOB_QUICK ? NULL : job_name[job], __ATOMIC_RELEASE);
	switch (job) {
	case JOB_ACCEPT:
		return sc_accept(&w->tok, listener, NULL, NULL, SOCK_CLOEXEC);
	case JOB_RECV:
		return sc_recv(&w->tok, silent[0], buf, sizeof(buf), 0);
	case JOB_SLEEP:
		return sc_sleep(&w->tok, 60 * SEC_NS);
	default:
		return sc_sleep(&w->tok, 1000000);	/* 1 ms of "work" */
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	enum job job;

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	while ((w->res = take_job(w, &job)).status == SC_OK &&
	       (w->res = run_job(w, job)).status == SC_OK)
		w->jobs_done++;
	w->returned_ns = sc_now_ns();
	return NULL;
}

/* The scheduler state of thread tid ('S': sleeping in the kernel). */
static char thread_state(pid_t tid)
{
	char path[64], buf[512] = "";
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	FILE *f = fopen(path, "re");
	if (f) {
		buf[fread(buf, 1, sizeof(buf) - 1, f)] = 0;
		fclose(f);
	}
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Every job taken, and every worker asleep waiting for work or blocked in I/O. */
static int pool_settled(struct worker *pool)
{
	pthread_mutex_lock(&q.lock);
	int queued = q.head != q.tail;
	pthread_mutex_unlock(&q.lock);
	for (int i = 0; i < NWORKERS && !queued; i++) {
		pid_t tid = __atomic_load_n(&pool[i].tid, __ATOMIC_ACQUIRE);
		if (!tid || !__atomic_load_n(&pool[i].doing, __ATOMIC_ACQUIRE) ||
		    thread_state(tid) != 'S')
			return 0;
	}
	return !queued;
}

static int fail(const char *what)
{
	fprintf(stderr, "pool-shutdown: %s failed\n", what);
	return 1;
}

static int make_listener(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&in, sizeof(in)) < 0 || listen(fd, 8) < 0)
		return -1;
	return fd;
}

int main(void)
{
	static const char *const status_name[] = { "OK", "ERROR", "CANCELLED", "TIMEDOUT" };
	struct worker pool[NWORKERS] = { 0 };
	sc_token root;
	int failures = 0, done = 0, quick = 0;

	listener = make_listener();
	if (listener < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, silent) < 0 ||
	    sc_token_init(&root, NULL) != 0 || sc_cond_init(&q.ready) != 0)
		return fail("setup");
	for (int i = 0; i < NWORKERS; i++)
		if (sc_token_init(&pool[i].tok, &root) != 0 ||
		    pthread_create(&pool[i].thread, NULL, worker_main, &pool[i]) != 0)
			return fail("start worker");
	for (unsigned i = 0; i < NJOBS; i++) {
		pthread_mutex_lock(&q.lock);
		q.job[q.tail++] = jobs[i];
		quick += jobs[i] == JOB_QUICK;
		sc_cond_signal(&q.ready);
		pthread_mutex_unlock(&q.lock);
	}

	int64_t give_up = sc_now_ns() + 5 * SEC_NS;
	while (!pool_settled(pool)) {
		if (sc_now_ns() > give_up)
			return fail("waiting for the pool to settle");
		sched_yield();
	}
	printf("%d workers, %zu jobs queued and taken; cancelling the root token\n", NWORKERS,
	       NJOBS);

	int64_t t0 = sc_now_ns();
	sc_cancel(&root);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(pool[i].thread, NULL);
	printf("shutdown took %.1f us (cancel to last join)\n", (sc_now_ns() - t0) / 1e3);

	for (int i = 0; i < NWORKERS; i++) {
		struct worker *w = &pool[i];
		printf("  worker %d  %d quick jobs done, then %-16s  SC_%-9s  returned %7.1f us "
		       "after cancel\n", i, w->jobs_done, w->doing, status_name[w->res.status],
		       (w->returned_ns - t0) / 1e3);
		done += w->jobs_done;
		if (w->res.status != SC_CANCELLED || sc_token_destroy(&w->tok) != 0)
			failures++;
	}
	if (done != quick || sc_token_destroy(&root) != 0 || sc_cond_destroy(&q.ready) != 0)
		failures++;
	close(listener);
	close(silent[0]);
	close(silent[1]);
	printf("%s\n", failures ? "FAILED"
				: "ok: waiting for work or blocked in I/O, every worker cancelled, "
				  "every token released");
	return failures ? 1 : 0;
}
