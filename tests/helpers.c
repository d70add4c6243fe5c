#define _GNU_SOURCE
#include "helpers.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char thread_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return '?';
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = 0;
	const char *p = strrchr(buf, ')');	/* the name may hold spaces */
	return p && p[1] == ' ' ? p[2] : '?';
}

void wait_blocked(pid_t tid)
{
	int64_t end = sc_now_ns() + 10 * SEC_NS;
	for (;;) {
		char s = thread_state(tid);
		if (s == 'S')	/* D is not a cancellable wait: library setup sleeps there */
			return;
		ck_assert_msg(sc_now_ns() < end, "thread %d never blocked (state %c)", tid, s);
		sched_yield();
	}
}

static void *bg_main(void *arg)
{
	struct bg_call *c = arg;
	__atomic_store_n(&c->tid, gettid(), __ATOMIC_RELEASE);
	c->res = c->fn(c);
	c->returned_ns = sc_now_ns();
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

void bg_start(struct bg_call *c)
{
	c->tid = 0;
	c->done = 0;
	ck_assert_int_eq(pthread_create(&c->thread, NULL, bg_main, c), 0);
	while (!__atomic_load_n(&c->tid, __ATOMIC_ACQUIRE))
		sched_yield();
}

void bg_start_blocked(struct bg_call *c)
{
	bg_start(c);
	wait_blocked(c->tid);
}

sc_result bg_join(struct bg_call *c)
{
	int64_t end = sc_now_ns() + PROMPT_NS;
	while (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
		ck_assert_msg(sc_now_ns() < end, "call in thread %d did not return", c->tid);
		sched_yield();
	}
	pthread_join(c->thread, NULL);
	return c->res;
}

void make_pipe(int fds[2])
{
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
}

int make_listener(struct sockaddr_storage *addr, socklen_t *alen)
{
	struct sockaddr_in *in = (struct sockaddr_in *)addr;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	memset(addr, 0, sizeof(*addr));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*alen = sizeof(*in);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)in, *alen), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)addr, alen), 0);
	return fd;
}
