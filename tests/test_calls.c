/*
 * Each call gives the plain syscall's result: the same value or errno on
 * either backend, without waiting where the syscall would not.  A call that
 * waits by mistake runs into its token's deadline and fails the test.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

static void guard_init(sc_token *t)
{
	ck_assert_int_eq(sc_token_init(t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(t, PROMPT_NS), 0);
}

static void set_nonblock(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFL);

	ck_assert_int_ge(flags, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK), 0);
}

/* Writes to fd until it takes no more, leaving it as blocking as it was. */
static void fill(int fd)
{
	static char junk[4096];
	int flags = fcntl(fd, F_GETFL);

	set_nonblock(fd, true);
	while (write(fd, junk, sizeof(junk)) > 0)
		;
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(fcntl(fd, F_SETFL, flags), 0);
}

static struct msghdr one_byte_msg(struct iovec *iov, char *b)
{
	*iov = (struct iovec){ b, 1 };
	return (struct msghdr){ .msg_iov = iov, .msg_iovlen = 1 };
}

START_TEST(reads_and_writes_on_nonblocking_pipes_return_EAGAIN_at_once)
{
	struct iovec iov = { "x", 1 };
	sc_token t;
	int p[2];
	char b;

	guard_init(&t);
	make_pipe(p);
	set_nonblock(p[0], true);
	set_nonblock(p[1], true);
	assert_error(sc_read(&t, p[0], &b, 1), EAGAIN);
	assert_error(sc_readv(&t, p[0], &(struct iovec){ &b, 1 }, 1), EAGAIN);
	fill(p[1]);
	assert_error(sc_write(&t, p[1], "x", 1), EAGAIN);
	assert_error(sc_writev(&t, p[1], &iov, 1), EAGAIN);
	close_pipe(p);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(socket_calls_on_nonblocking_sockets_return_EAGAIN_at_once)
{
	struct iovec iov;
	sc_token t;
	int s[2];
	char b = 'x';
	struct msghdr msg = one_byte_msg(&iov, &b);

	guard_init(&t);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s), 0);
	assert_error(sc_recv(&t, s[0], &b, 1, 0), EAGAIN);
	assert_error(sc_recvmsg(&t, s[0], &msg, 0), EAGAIN);
	fill(s[1]);
	assert_error(sc_send(&t, s[1], "x", 1, MSG_NOSIGNAL), EAGAIN);
	assert_error(sc_sendmsg(&t, s[1], &msg, MSG_NOSIGNAL), EAGAIN);
	close_pipe(s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(recv_and_send_with_MSG_DONTWAIT_return_EAGAIN_at_once)
{
	struct iovec iov;
	sc_token t;
	int s[2];
	char b = 'x';
	struct msghdr msg = one_byte_msg(&iov, &b);

	guard_init(&t);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	assert_error(sc_recv(&t, s[0], &b, 1, MSG_DONTWAIT), EAGAIN);
	assert_error(sc_recvmsg(&t, s[0], &msg, MSG_DONTWAIT), EAGAIN);
	fill(s[1]);
	assert_error(sc_send(&t, s[1], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL), EAGAIN);
	assert_error(sc_sendmsg(&t, s[1], &msg, MSG_DONTWAIT | MSG_NOSIGNAL), EAGAIN);
	close_pipe(s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(accept_on_a_nonblocking_listener_returns_EAGAIN_at_once)
{
	struct sockaddr_storage addr;
	socklen_t alen;
	sc_token t;
	int lfd = make_listener(&addr, &alen, 1);

	guard_init(&t);
	set_nonblock(lfd, true);
	assert_error(sc_accept(&t, lfd, NULL, NULL, SOCK_CLOEXEC), EAGAIN);
	close(lfd);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

/*
 * A TCP listener whose queue holds a connection (*queued) and takes no
 * more: the SYN of a new connect goes unanswered.
 */
static int make_full_listener(struct sockaddr_storage *addr, socklen_t *alen, int *queued)
{
	int lfd = make_listener(addr, alen, 0);
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };

	*queued = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(*queued, 0);
	ck_assert_int_eq(connect(*queued, (struct sockaddr *)addr, *alen), 0);
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	return lfd;
}

START_TEST(connect_on_a_nonblocking_socket_returns_EINPROGRESS_at_once)
{
	struct sockaddr_storage addr;
	socklen_t alen;
	sc_token t;
	int queued, lfd = make_full_listener(&addr, &alen, &queued);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	guard_init(&t);
	assert_error(sc_connect(&t, fd, (struct sockaddr *)&addr, alen), EINPROGRESS);
	close(fd);
	close(queued);
	close(lfd);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

/* connect(2) on a blocking socket waits for the connection under way, not EALREADY. */
START_TEST(a_blocking_connect_waits_for_the_connection_already_under_way)
{
	struct sockaddr_storage addr;
	socklen_t alen;
	sc_token t;
	int queued, lfd = make_full_listener(&addr, &alen, &queued);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, alen), -1);
	ck_assert_int_eq(errno, EINPROGRESS);
	set_nonblock(fd, false);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	ck_assert_int_eq(sc_token_set_timeout(&t, 100 * MS_NS), 0);
	assert_status(sc_connect(&t, fd, (struct sockaddr *)&addr, alen), SC_TIMEDOUT,
		      "connect under way");
	close(fd);
	close(queued);
	close(lfd);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

/* A file holding "abc", already unlinked. */
static int make_file(void)
{
	char path[] = "/tmp/sc-calls-XXXXXX";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(write(fd, "abc", 3), 3);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

START_TEST(pread_and_pwrite_on_a_pipe_or_a_socket_are_ESPIPE)
{
	sc_token t;
	int p[2], s[2];
	char b;

	guard_init(&t);
	make_pipe_with_byte(p);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	assert_error(sc_pread(&t, p[0], &b, 1, 0), ESPIPE);
	assert_error(sc_pwrite(&t, p[1], "y", 1, 0), ESPIPE);
	assert_error(sc_pread(&t, s[0], &b, 1, 0), ESPIPE);
	assert_error(sc_pwrite(&t, s[1], "y", 1, 0), ESPIPE);
	/* Nothing was read or written. */
	assert_byte_still_readable(p[0]);
	ck_assert_int_eq(poll(&(struct pollfd){ .fd = p[0], .events = POLLIN }, 1, 0), 0);
	ck_assert_int_eq(recv(s[0], &b, 1, MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);
	close_pipe(p);
	close_pipe(s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

START_TEST(pread_and_pwrite_at_a_negative_offset_are_EINVAL)
{
	sc_token t;
	int fd = make_file();
	char buf[4];

	guard_init(&t);
	assert_error(sc_pread(&t, fd, buf, 1, -1), EINVAL);
	assert_error(sc_pwrite(&t, fd, "z", 1, -1), EINVAL);
	assert_error(sc_pread(&t, fd, buf, 1, -4096), EINVAL);
	/* Nothing was read or written at the file position. */
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 0);
	assert_ok(sc_pread(&t, fd, buf, sizeof(buf), 0), 3);
	ck_assert_mem_eq(buf, "abc", 3);
	close(fd);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

struct bg_poll {
	struct pollfd pfd;
	int timeout_ms;
};

static sc_result bg_poll(struct bg_call *c)
{
	struct bg_poll *p = c->arg;

	return sc_poll(c->tok, &p->pfd, 1, p->timeout_ms);
}

/* poll(2) reports POLLRDHUP only when asked; io_uring's poll reports it always. */
START_TEST(a_poll_woken_by_the_peers_shutdown_reports_only_the_events_asked)
{
	struct bg_poll p = { .timeout_ms = -1 };
	struct bg_call c = { .fn = bg_poll, .arg = &p };
	sc_token t;
	int s[2];

	guard_init(&t);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	p.pfd = (struct pollfd){ .fd = s[0], .events = POLLIN };
	c.tok = &t;
	bg_start_blocked(&c);
	ck_assert_int_eq(shutdown(s[1], SHUT_WR), 0);
	assert_ok(bg_join(&c), 1);
	ck_assert_int_eq(p.pfd.revents, POLLIN);
	close_pipe(s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

/*
 * The peer's shutdown wakes a poll for POLLOUT with POLLRDHUP alone, which
 * poll(2) neither reports nor ends on: the poll runs to its timeout.
 */
START_TEST(a_poll_for_POLLOUT_goes_on_waiting_after_the_peers_shutdown)
{
	struct bg_poll p = { .timeout_ms = 1000 };
	struct bg_call c = { .fn = bg_poll, .arg = &p };
	sc_token t;
	int s[2];

	guard_init(&t);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	fill(s[0]);
	p.pfd = (struct pollfd){ .fd = s[0], .events = POLLOUT };
	c.tok = &t;
	bg_start_blocked(&c);
	ck_assert_int_eq(shutdown(s[1], SHUT_WR), 0);
	assert_ok(bg_join(&c), 0);
	ck_assert_int_eq(p.pfd.revents, 0);
	close_pipe(s);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("calls");
	TCase *tc = add_tcase(s, "nonblocking", 30, init_library);

	tcase_add_test(tc, reads_and_writes_on_nonblocking_pipes_return_EAGAIN_at_once);
	tcase_add_test(tc, socket_calls_on_nonblocking_sockets_return_EAGAIN_at_once);
	tcase_add_test(tc, recv_and_send_with_MSG_DONTWAIT_return_EAGAIN_at_once);
	tcase_add_test(tc, accept_on_a_nonblocking_listener_returns_EAGAIN_at_once);
	tcase_add_test(tc, connect_on_a_nonblocking_socket_returns_EINPROGRESS_at_once);

	tc = add_tcase(s, "connect", 30, init_library);
	tcase_add_test(tc, a_blocking_connect_waits_for_the_connection_already_under_way);

	tc = add_tcase(s, "arguments", 30, init_library);
	tcase_add_test(tc, pread_and_pwrite_on_a_pipe_or_a_socket_are_ESPIPE);
	tcase_add_test(tc, pread_and_pwrite_at_a_negative_offset_are_EINVAL);

	tc = add_tcase(s, "poll", 30, init_library);
	tcase_add_test(tc, a_poll_woken_by_the_peers_shutdown_reports_only_the_events_asked);
	tcase_add_test(tc, a_poll_for_POLLOUT_goes_on_waiting_after_the_peers_shutdown);
	return run_suite(s, CK_FORK_GETENV);
}
