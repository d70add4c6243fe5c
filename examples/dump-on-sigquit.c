/*
 * dump-on-sigquit: print every call in flight on SIGQUIT, as a JVM prints
 * its threads.
 *
 * Four workers block: a read of an empty pipe with a 30 s deadline, an
 * accept on a loopback listener, a recv on a socketpair under a child token,
 * and a 60 s sleep whose token times out in 10 s.  SIGQUIT's handler calls
 * sc_dump(), which is async-signal-safe.  Once sc_snapshot() counts all four
 * in flight, the program sends itself SIGQUIT (try kill -QUIT from another
 * terminal too: run it with an argument to make it wait for you), then
 * cancels the root token and joins the workers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <syscancel.h>

#define SEC_NS 1000000000LL
#define NWORKERS 4

enum job { JOB_READ, JOB_ACCEPT, JOB_RECV, JOB_SLEEP };

struct worker {
	pthread_t thread;
	enum job job;
	int fd;
	sc_token tok;
	sc_result res;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char buf[16];

	switch (w->job) {
	case JOB_READ:
		w->res = sc_read(&w->tok, w->fd, buf, sizeof(buf));
		break;
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
	return NULL;
}

static void on_sigquit(int sig)
{
	(void)sig;
	sc_dump(STDOUT_FILENO);
}

static int loopback_listener(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4))
		return -1;
	return fd;
}

/* Workers are listed from the moment their call starts: wait for all of them. */
static void wait_in_flight(int n)
{
	while (sc_snapshot(NULL, 0) < n)
		sc_sleep(NULL, SEC_NS / 1000);
}

int main(int argc, char **argv)
{
	static const char *const what[] = { "read", "accept", "recv", "sleep" };
	struct sigaction sa = { .sa_handler = on_sigquit, .sa_flags = SA_RESTART };
	struct worker w[NWORKERS];
	int pipe_fds[2], pair[2], err = 0;
	sc_token root;

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGQUIT, &sa, NULL) || pipe2(pipe_fds, O_CLOEXEC) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) ||
	    sc_token_init(&root, NULL)) {
		perror("setup");
		return 1;
	}
	int fds[NWORKERS] = { pipe_fds[0], loopback_listener(), pair[0], -1 };
	for (int i = 0; i < NWORKERS && !err; i++) {
		w[i] = (struct worker){ .job = (enum job)i, .fd = fds[i] };
		err = sc_token_init(&w[i].tok, &root);
	}
	if (!err)
		err = sc_token_set_timeout(&w[JOB_READ].tok, 30 * SEC_NS);
	if (!err)
		err = sc_token_set_timeout(&w[JOB_SLEEP].tok, 10 * SEC_NS);
	for (int i = 0; i < NWORKERS && !err; i++)
		err = pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
	if (err || fds[JOB_ACCEPT] < 0) {
		fprintf(stderr, "setup: %s\n", strerror(err ? err : EINVAL));
		return 1;
	}

	wait_in_flight(NWORKERS);
	sc_sleep(NULL, SEC_NS / 10);	/* ages count from the first snapshot that saw a call */
	fflush(stdout);
	if (argc > 1) {
		printf("pid %d: kill -QUIT %d to see the table, then press Enter\n",
		       (int)getpid(), (int)getpid());
		fflush(stdout);
		getchar();
	} else {
		raise(SIGQUIT);
	}

	sc_cancel(&root);
	for (int i = 0; i < NWORKERS; i++) {
		pthread_join(w[i].thread, NULL);
		printf("%-6s -> %s\n", what[i],
		       w[i].res.status == SC_CANCELLED ? "cancelled" : "not cancelled");
		err |= w[i].res.status != SC_CANCELLED;
		sc_token_destroy(&w[i].tok);
	}
	sc_token_destroy(&root);
	printf("%d calls in flight after the cancel\n", sc_snapshot(NULL, 0));
	(void)argv;
	return err ? 1 : 0;
}
