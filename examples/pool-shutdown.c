/*
 * pool-shutdown: one sc_cancel stops a whole pool of blocked workers.
 *
 * Eight workers block in accept (a loopback listener), recv (socketpairs) and
 * a long sc_sleep, each under its own child of one root token.  Once every
 * worker sleeps in the kernel, main cancels the root, joins the pool and
 * prints how long the shutdown took and what each worker got back.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <syscancel.h>

#define NWORKERS 8
#define SEC_NS 1000000000LL

enum job { JOB_ACCEPT, JOB_RECV, JOB_SLEEP };
static const char *const job_name[] = { "accept", "recv", "sleep 60 s" };

struct worker {
	pthread_t thread;
	enum job job;
	int fd, peer;		/* peer: the other end of a recv worker's socketpair */
	sc_token tok;		/* a child of the pool's root */
	pid_t tid;		/* published just before the blocking call */
	sc_result res;
	int64_t returned_ns;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char buf[16];

	__atomic_store_n(&w->tid, gettid(), __ATOMIC_RELEASE);
	switch (w->job) {
	case JOB_ACCEPT:
		w->res = sc_accept(&w->tok, w->fd, NULL, NULL, SOCK_CLOEXEC);
		break;
	case JOB_RECV:
		w->res = sc_recv(&w->tok, w->fd, buf, sizeof(buf), 0);
		break;
	case JOB_SLEEP:
		w->res = sc_sleep(&w->tok, 60 * SEC_NS);
		break;
	}
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
	struct worker pool[NWORKERS];
	sc_token root;
	int listener = make_listener(), failures = 0;

	if (listener < 0 || sc_token_init(&root, NULL) != 0)
		return fail("setup");
	for (int i = 0; i < NWORKERS; i++) {
		struct worker *w = &pool[i];
		*w = (struct worker){ .job = i % 3, .fd = listener, .peer = -1 };
		if (w->job == JOB_RECV) {
			int sv[2];
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
				return fail("socketpair");
			w->fd = sv[0];
			w->peer = sv[1];
		}
		if (sc_token_init(&w->tok, &root) != 0 ||
		    pthread_create(&w->thread, NULL, worker_main, w) != 0)
			return fail("start worker");
	}

	int64_t give_up = sc_now_ns() + 5 * SEC_NS;
	for (int i = 0; i < NWORKERS; i++) {
		pid_t tid;
		while (!(tid = __atomic_load_n(&pool[i].tid, __ATOMIC_ACQUIRE)) ||
		       thread_state(tid) != 'S') {
			if (sc_now_ns() > give_up)
				return fail("waiting for the workers to block");
			sched_yield();
		}
	}
	printf("%d workers blocked; cancelling the root token\n", NWORKERS);

	int64_t t0 = sc_now_ns();
	sc_cancel(&root);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(pool[i].thread, NULL);
	printf("shutdown took %.1f us (cancel to last join)\n", (sc_now_ns() - t0) / 1e3);

	for (int i = 0; i < NWORKERS; i++) {
		struct worker *w = &pool[i];
		printf("  worker %d  %-10s  SC_%-9s  returned %7.1f us after cancel\n", i,
		       job_name[w->job], status_name[w->res.status],
		       (w->returned_ns - t0) / 1e3);
		if (w->res.status != SC_CANCELLED)
			failures++;
		if (sc_token_destroy(&w->tok) != 0)
			failures++;
		if (w->peer >= 0) {
			close(w->fd);
			close(w->peer);
		}
	}
	if (sc_token_destroy(&root) != 0)
		failures++;
	close(listener);
	printf("%s\n", failures ? "FAILED" : "ok: every worker cancelled, every token released");
	return failures ? 1 : 0;
}
