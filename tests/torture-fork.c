/*
 * fork while other threads block in calls and a canceller cancels their
 * tokens in a loop.  The child must see no call in flight and no slot
 * taken but its own thread's, and every part of the library must work there.
 */
#define _GNU_SOURCE
#include "torture-entries.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 4

#if SC_TSAN || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* What a child found wrong: its exit status. */
enum { CHILD_OK, CHILD_INHERITED = 10, CHILD_PRE_CANCEL, CHILD_DATA, CHILD_DEADLINE,
       CHILD_THREAD_CANCEL };

struct fork_run {
	struct entry entries[WORKERS];
	int idle[2];
	long stop;
	long started;		/* workers running their own code */
	struct tally t;
};

struct worker {
	struct fork_run *f;
	struct entry *e;
	pthread_t thread;
};

static void *blocked_reader(void *arg)
{
	struct worker *w = arg;
	char b;

	add(&w->f->started, 1);
	while (!load(&w->f->stop)) {
		entry_open(w->e);
		sc_result r = sc_read(&w->e->tok, w->f->idle[0], &b, 1);
		add(r.status == SC_CANCELLED ? &w->f->t.cancelled : &w->f->t.errors, 1);
		entry_close(w->e);
	}
	return NULL;
}

struct child_call {
	sc_token tok;
	int fd;
	long tid;
	long returned;
	sc_result res;
};

static void *child_reader(void *arg)
{
	struct child_call *c = arg;
	char b;

	store(&c->tid, gettid());
	c->res = sc_read(&c->tok, c->fd, &b, 1);
	store(&c->returned, 1);
	return NULL;
}

/* Wait for *flag, or for thread tid to sleep in the kernel, within 10 s. */
static bool child_wait(const long *flag, pid_t tid)
{
	for (int64_t end = sc_now_ns() + 10 * SEC_NS; sc_now_ns() < end; sched_yield())
		if (flag ? load(flag) : thread_state(tid) == 'S')
			return true;
	return false;
}

static int child_thread_cancel(int fd)
{
	struct child_call c = { .fd = fd };
	pthread_t th;

	if (sc_token_init(&c.tok, NULL) || pthread_create(&th, NULL, child_reader, &c) ||
	    !child_wait(&c.tid, 0) || !child_wait(NULL, (pid_t)c.tid) || sc_cancel(&c.tok) ||
	    !child_wait(&c.returned, 0) || c.res.status != SC_CANCELLED)
		return CHILD_THREAD_CANCEL;
	pthread_join(th, NULL);
	return CHILD_OK;
}

static int child_checks(void)
{
	unsigned slots, taken;
	sc_token t, d;
	int p[2];
	char b;

	registry_slots(&slots, &taken);
	if (taken > 1)
		return CHILD_INHERITED;
	if (pipe(p) || sc_token_init(&t, NULL) || sc_cancel(&t) ||
	    sc_read(&t, p[0], &b, 1).status != SC_CANCELLED)
		return CHILD_PRE_CANCEL;
	if (write(p[1], "x", 1) != 1 || sc_read(NULL, p[0], &b, 1).value != 1)
		return CHILD_DATA;
	if (sc_token_init(&d, NULL) || sc_token_set_timeout(&d, MS_NS) ||
	    sc_sleep(&d, 10 * SEC_NS).status != SC_TIMEDOUT)
		return CHILD_DEADLINE;
	/*
	 * Not under a sanitizer: TSan keeps the parent's threads in the child
	 * and refuses a new one with their id; a new thread under ASan can hang
	 * on a lock of its runtime that another parent thread held at the fork.
	 */
	return SANITIZED ? CHILD_OK : child_thread_cancel(p[0]);
}

/* The child's status, or -1 if it did not finish within 10 s (then it is killed). */
static int reap(pid_t pid)
{
	int status;

	for (int64_t end = sc_now_ns() + 10 * SEC_NS; sc_now_ns() < end; sched_yield())
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static void fork_once(struct fork_run *f)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(child_checks());
	ck_assert_int_gt(pid, 0);
	int st = reap(pid);
	if (st == CHILD_OK)
		f->t.completed++;
	else if (st < 0)
		f->t.hangs++;
	else
		f->t.errors++;
	if (st)
		fprintf(stderr, "fork: child status %d\n", st);
}

void torture_fork(void)
{
	struct fork_run *f = calloc(1, sizeof(*f));
	struct worker w[WORKERS];
	struct cancel_loop cl;
	long forks = torture_scaled(50);

	ck_assert_ptr_nonnull(f);
	make_pipe(f->idle);
	for (int i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){ f, &f->entries[i], 0 };
		ck_assert_int_eq(pthread_create(&w[i].thread, NULL, blocked_reader, &w[i]), 0);
	}
	cancel_loop_start(&cl, f->entries, WORKERS);
	/*
	 * Not while a thread is still starting: under ASan its start allocates,
	 * and a child forked then would inherit the allocator's lock held.
	 */
	wait_at_least(&f->started, WORKERS, "fork: workers start");
	wait_at_least(&f->t.cancelled, 1, "fork: the cancel loop cancels");
	for (long i = 0; i < forks; i++)
		fork_once(f);
	store(&f->stop, 1);
	for (int i = 0; i < WORKERS; i++)
		join_within(w[i].thread, 30 * SEC_NS, "reader");
	f->t.attempts = cancel_loop_stop(&cl);
	f->t.stray_signals = (long)stray_signals();
	printf("fork             %ld children forked during calls and cancels, %ld passed every check\n",
	       forks, f->t.completed);
	tally_report("fork", &f->t, landings());
	close_pipe(f->idle);
	free(f);
}
