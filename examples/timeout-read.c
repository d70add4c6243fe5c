/*
 * timeout-read: a read with a deadline.
 *
 * First read: nobody writes to the pipe, the token's 100 ms deadline passes
 * and sc_read returns SC_TIMEDOUT.  Second read: a writer thread sends a line
 * after 20 ms, well within the deadline, and sc_read returns SC_OK with it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <syscancel.h>

#define MS_NS 1000000LL
#define TIMEOUT_NS (100 * MS_NS)

static const char message[] = "hello before the deadline";

static const char *status_name(sc_status s)
{
	switch (s) {
	case SC_OK:		return "SC_OK";
	case SC_ERROR:		return "SC_ERROR";
	case SC_CANCELLED:	return "SC_CANCELLED";
	case SC_TIMEDOUT:	return "SC_TIMEDOUT";
	}
	return "?";
}

/* One read under a fresh token that expires TIMEOUT_NS from now. */
static sc_result read_with_timeout(int fd, char *buf, size_t len, double *elapsed_ms)
{
	sc_token tok;
	sc_result r = { .status = SC_ERROR };
	int err = sc_token_init(&tok, NULL);

	if (err == 0)
		err = sc_token_set_timeout(&tok, TIMEOUT_NS);
	if (err) {
		r.error = err;
		return r;
	}
	int64_t t0 = sc_now_ns();
	r = sc_read(&tok, fd, buf, len);
	*elapsed_ms = (sc_now_ns() - t0) / 1e6;
	sc_token_destroy(&tok);
	return r;
}

static void *late_writer(void *arg)
{
	int fd = *(int *)arg;
	sc_sleep(NULL, 20 * MS_NS);
	if (write(fd, message, strlen(message)) < 0)
		perror("write");
	return NULL;
}

int main(void)
{
	int fds[2];
	char buf[64];
	double ms;
	int failures = 0;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		perror("pipe2");
		return 1;
	}

	printf("read 1: nobody writes, deadline %lld ms\n", TIMEOUT_NS / MS_NS);
	sc_result r = read_with_timeout(fds[0], buf, sizeof(buf), &ms);
	printf("  -> %s (error %d: %s) after %.1f ms\n", status_name(r.status),
	       r.error, strerror(r.error), ms);
	if (r.status != SC_TIMEDOUT || ms < 90) {
		fprintf(stderr, "  expected SC_TIMEDOUT after about %lld ms\n",
			TIMEOUT_NS / MS_NS);
		failures++;
	}

	pthread_t writer;
	if (pthread_create(&writer, NULL, late_writer, &fds[1]) != 0) {
		fprintf(stderr, "pthread_create failed\n");
		return 1;
	}
	printf("read 2: a writer sends a line after 20 ms, deadline %lld ms\n",
	       TIMEOUT_NS / MS_NS);
	r = read_with_timeout(fds[0], buf, sizeof(buf), &ms);
	pthread_join(writer, NULL);
	if (r.status == SC_OK) {
		printf("  -> SC_OK, %ld bytes after %.1f ms: \"%.*s\"\n", r.value, ms,
		       (int)r.value, buf);
	} else {
		printf("  -> %s (error %d: %s) after %.1f ms\n", status_name(r.status),
		       r.error, strerror(r.error), ms);
	}
	if (r.status != SC_OK || r.value != (long)strlen(message) ||
	    memcmp(buf, message, strlen(message)) != 0) {
		fprintf(stderr, "  expected SC_OK with the whole line\n");
		failures++;
	}

	close(fds[0]);
	close(fds[1]);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
