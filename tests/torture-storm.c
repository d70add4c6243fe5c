/*
 * Foreign signals while cancels fly: SIGUSR1 with SA_RESTART and SIGUSR2
 * without it sent to the worker, SIGCHLD from children that exit at once,
 * SIGALRM from an interval timer.  Only the worker leaves them unblocked,
 * so every one of them lands there.
 */
#define _GNU_SOURCE
#include "torture.h"

#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const struct {
	int signo;
	int flags;
} foreign[] = {
	{ SIGUSR1, SA_RESTART },
	{ SIGUSR2, 0 },
	{ SIGCHLD, SA_RESTART | SA_NOCLDSTOP },
	{ SIGALRM, SA_RESTART },
};

static long handler_runs[ARRAY_SIZE(foreign)];

struct storm {
	pthread_t thread;
	pid_t target;
	long stop;
};

void foreign_signal_set(sigset_t *set)
{
	sigemptyset(set);
	for (int i = 0; i < ARRAY_SIZE(foreign); i++)
		sigaddset(set, foreign[i].signo);
}

static void on_foreign(int sig)
{
	for (int i = 0; i < ARRAY_SIZE(foreign); i++)
		if (foreign[i].signo == sig)
			add(&handler_runs[i], 1);
}

static void install_handlers(void)
{
	for (int i = 0; i < ARRAY_SIZE(foreign); i++) {
		struct sigaction sa = { .sa_handler = on_foreign, .sa_flags = foreign[i].flags };
		sigemptyset(&sa.sa_mask);
		ck_assert_int_eq(sigaction(foreign[i].signo, &sa, NULL), 0);
		store(&handler_runs[i], 0);
	}
}

static void set_alarm_interval(long us)
{
	struct itimerval it = { { 0, us }, { 0, us } };

	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void child_that_exits(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}

/*
 * The storm shares a CPU with the canceller: it sleeps between signals, so
 * the canceller's delays stay short enough to land inside short calls.
 */
static void pause_briefly(void)
{
	struct timespec ts = { 0, 10000 };

	nanosleep(&ts, NULL);
}

static void *storm_loop(void *arg)
{
	struct storm *st = arg;
	pid_t pid = getpid();

	prctl(PR_SET_TIMERSLACK, 1UL);
	for (long n = 1; !load(&st->stop); n++) {
		tgkill(pid, st->target, SIGUSR1);
		pause_briefly();
		tgkill(pid, st->target, SIGUSR2);
		pause_briefly();
		if (n % 32 == 0)
			child_that_exits();
	}
	return NULL;
}

/* The caller has the foreign signals blocked; the storm thread inherits that. */
struct storm *storm_start(pid_t target)
{
	struct storm *st = calloc(1, sizeof(*st));

	ck_assert_ptr_nonnull(st);
	st->target = target;
	install_handlers();
	set_alarm_interval(300);
	ck_assert_int_eq(pthread_create(&st->thread, NULL, storm_loop, st), 0);
	return st;
}

void storm_stop(struct storm *st)
{
	store(&st->stop, 1);
	join_within(st->thread, 30 * SEC_NS, "storm thread");
	set_alarm_interval(0);
	free(st);
	for (int i = 0; i < ARRAY_SIZE(foreign); i++)
		ck_assert_msg(load(&handler_runs[i]) > 0, "the handler of %s never ran",
			      strsignal(foreign[i].signo));
	printf("storm            handler runs: SIGUSR1 %ld  SIGUSR2 %ld  SIGCHLD %ld  SIGALRM %ld\n",
	       handler_runs[0], handler_runs[1], handler_runs[2], handler_runs[3]);
}
