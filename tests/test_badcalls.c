/*
 * I7 across every call: a descriptor that is not open, a pointer the kernel
 * cannot use, or a count, flag or number out of range gets the kernel's own
 * error as SC_ERROR, with a token or without one, never a crash or a hang,
 * and the token is left as it was (not cancelled, no call still under it).
 * Every argument but the bad one would let the call complete at once.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <syscancel.h>
#include "helpers.h"

/* Descriptors each ready for its call, and a page the kernel cannot touch. */
struct fx {
	int pipe_[2];		/* [0] holds a byte */
	int sock[2];		/* [0] holds a byte */
	int listener;		/* a connection waits on it */
	int client;		/* that connection's other end */
	struct sockaddr_un addr;	/* the listener's */
	socklen_t alen;
	int file;		/* a regular file holding a byte */
	int epfd;		/* watches pipe_[0] */
	void *bad;		/* PROT_NONE: every access faults */
};

static struct fx fx;
static char buf[16];
static struct iovec iov = { buf, 1 };

static void open_listener(void)
{
	fx.listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fx.listener, 0);
	fx.addr.sun_family = AF_UNIX;
	/* Abstract: nothing to unlink, nothing left behind. */
	fx.alen = offsetof(struct sockaddr_un, sun_path) + 1 +
		  snprintf(fx.addr.sun_path + 1, sizeof(fx.addr.sun_path) - 1,
			   "syscancel-badcalls-%d", getpid());
	ck_assert_int_eq(bind(fx.listener, (struct sockaddr *)&fx.addr, fx.alen), 0);
	ck_assert_int_eq(listen(fx.listener, 8), 0);
	fx.client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fx.client, 0);
	ck_assert_int_eq(connect(fx.client, (struct sockaddr *)&fx.addr, fx.alen), 0);
}

static void open_file_with_byte(void)
{
	char path[] = "/tmp/sc-badcalls-XXXXXX";

	fx.file = mkostemp(path, O_CLOEXEC);
	ck_assert_int_ge(fx.file, 0);
	unlink(path);
	ck_assert_int_eq(pwrite(fx.file, "x", 1, 0), 1);
}

static void fx_open(void)
{
	struct epoll_event ev = { .events = EPOLLIN };

	make_pipe_with_byte(fx.pipe_);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fx.sock), 0);
	ck_assert_int_eq(write(fx.sock[1], "x", 1), 1);
	open_listener();
	open_file_with_byte();
	fx.epfd = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_ge(fx.epfd, 0);
	ck_assert_int_eq(epoll_ctl(fx.epfd, EPOLL_CTL_ADD, fx.pipe_[0], &ev), 0);
	fx.bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(fx.bad, MAP_FAILED);
}

static void fx_close(void)
{
	close_pipe(fx.pipe_);
	close(fx.sock[0]);
	close(fx.sock[1]);
	close(fx.listener);
	close(fx.client);
	close(fx.file);
	close(fx.epfd);
	munmap(fx.bad, 4096);
}

/* Every call that takes a descriptor, with fd in its place. */
struct fd_call {
	const char *name;
	sc_result (*run)(sc_token *t, int fd);
};

static sc_result read_fd(sc_token *t, int fd) { return sc_read(t, fd, buf, 1); }
static sc_result write_fd(sc_token *t, int fd) { return sc_write(t, fd, "x", 1); }
static sc_result readv_fd(sc_token *t, int fd) { return sc_readv(t, fd, &iov, 1); }
static sc_result writev_fd(sc_token *t, int fd) { return sc_writev(t, fd, &iov, 1); }
static sc_result pread_fd(sc_token *t, int fd) { return sc_pread(t, fd, buf, 1, 0); }
static sc_result pwrite_fd(sc_token *t, int fd) { return sc_pwrite(t, fd, "x", 1, 0); }
static sc_result recv_fd(sc_token *t, int fd) { return sc_recv(t, fd, buf, 1, 0); }
static sc_result send_fd(sc_token *t, int fd) { return sc_send(t, fd, "x", 1, 0); }

static sc_result recvfrom_fd(sc_token *t, int fd)
{
	return sc_recvfrom(t, fd, buf, 1, 0, NULL, NULL);
}

static sc_result sendto_fd(sc_token *t, int fd)
{
	return sc_sendto(t, fd, "x", 1, 0, NULL, 0);
}

static sc_result recvmsg_fd(sc_token *t, int fd)
{
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	return sc_recvmsg(t, fd, &m, 0);
}

static sc_result sendmsg_fd(sc_token *t, int fd)
{
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	return sc_sendmsg(t, fd, &m, 0);
}

static sc_result accept_fd(sc_token *t, int fd) { return sc_accept(t, fd, NULL, NULL, 0); }

static sc_result connect_fd(sc_token *t, int fd)
{
	return sc_connect(t, fd, (struct sockaddr *)&fx.addr, fx.alen);
}

static sc_result epoll_wait_fd(sc_token *t, int fd)
{
	struct epoll_event ev;

	return sc_epoll_wait(t, fd, &ev, 1, 0);
}

static sc_result openat_fd(sc_token *t, int fd) { return sc_openat(t, fd, "x", O_RDONLY, 0); }
static sc_result flock_fd(sc_token *t, int fd) { return sc_flock(t, fd, LOCK_EX); }

static sc_result fcntl_lock_fd(sc_token *t, int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	return sc_fcntl_lock(t, fd, F_SETLKW, &fl);
}

static const struct fd_call fd_calls[] = {
	{ "sc_read", read_fd }, { "sc_write", write_fd },
	{ "sc_readv", readv_fd }, { "sc_writev", writev_fd },
	{ "sc_pread", pread_fd }, { "sc_pwrite", pwrite_fd },
	{ "sc_recv", recv_fd }, { "sc_send", send_fd },
	{ "sc_recvfrom", recvfrom_fd }, { "sc_sendto", sendto_fd },
	{ "sc_recvmsg", recvmsg_fd }, { "sc_sendmsg", sendmsg_fd },
	{ "sc_accept", accept_fd }, { "sc_connect", connect_fd },
	{ "sc_epoll_wait", epoll_wait_fd }, { "sc_openat", openat_fd },
	{ "sc_flock", flock_fd }, { "sc_fcntl_lock", fcntl_lock_fd },
};

/* Fail unless r is SC_ERROR with want, and tok was left alone (NULL: nothing to check). */
static void assert_failed_cleanly(sc_token *tok, sc_result r, int want, const char *what)
{
	assert_status(r, SC_ERROR, "%s", what);
	ck_assert_msg(r.error == want, "%s: error %d (%s), want %d (%s)", what, r.error,
		      strerror(r.error), want, strerror(want));
	if (tok) {
		ck_assert_msg(!sc_is_cancelled(tok), "%s cancelled its token", what);
		ck_assert_msg(sc_token_destroy(tok) == 0, "%s left a call under its token", what);
	}
}

/* A descriptor number nothing has open: a closed one, high enough that nobody takes it. */
static int closed_fd(void)
{
	int fd = fcntl(fx.pipe_[0], F_DUPFD_CLOEXEC, 900);

	ck_assert_int_ge(fd, 900);
	close(fd);
	return fd;
}

START_TEST(every_call_given_a_descriptor_that_is_not_open_is_EBADF)
{
	const struct fd_call *c = &fd_calls[_i];
	sc_token t;

	fx_open();
	const int bad_fds[] = { -1, closed_fd(), INT_MAX };
	for (int i = 0; i < ARRAY_SIZE(bad_fds); i++) {
		ck_assert_int_eq(sc_token_init(&t, NULL), 0);
		assert_failed_cleanly(&t, c->run(&t, bad_fds[i]), EBADF, c->name);
		assert_failed_cleanly(NULL, c->run(NULL, bad_fds[i]), EBADF, c->name);
	}
	fx_close();
}
END_TEST

/* Every call that takes a pointer, with a page the kernel cannot touch in its place. */
struct ptr_call {
	const char *name;
	sc_result (*run)(sc_token *t, void *bad);
};

static sc_result read_ptr(sc_token *t, void *p) { return sc_read(t, fx.pipe_[0], p, 1); }
static sc_result write_ptr(sc_token *t, void *p) { return sc_write(t, fx.pipe_[1], p, 1); }
static sc_result readv_ptr(sc_token *t, void *p) { return sc_readv(t, fx.pipe_[0], p, 1); }
static sc_result writev_ptr(sc_token *t, void *p) { return sc_writev(t, fx.pipe_[1], p, 1); }
static sc_result pread_ptr(sc_token *t, void *p) { return sc_pread(t, fx.file, p, 1, 0); }
static sc_result pwrite_ptr(sc_token *t, void *p) { return sc_pwrite(t, fx.file, p, 1, 0); }
static sc_result recv_ptr(sc_token *t, void *p) { return sc_recv(t, fx.sock[0], p, 1, 0); }
static sc_result send_ptr(sc_token *t, void *p) { return sc_send(t, fx.sock[1], p, 1, 0); }

static sc_result recvfrom_ptr(sc_token *t, void *p)
{
	return sc_recvfrom(t, fx.sock[0], p, 1, 0, NULL, NULL);
}

static sc_result sendto_ptr(sc_token *t, void *p)
{
	return sc_sendto(t, fx.sock[1], "x", 1, 0, p, sizeof(struct sockaddr_un));
}

static sc_result recvmsg_ptr(sc_token *t, void *p) { return sc_recvmsg(t, fx.sock[0], p, 0); }
static sc_result sendmsg_ptr(sc_token *t, void *p) { return sc_sendmsg(t, fx.sock[1], p, 0); }

/* The waiting connection is accepted, then its address cannot be stored. */
static sc_result accept_ptr(sc_token *t, void *p)
{
	return sc_accept(t, fx.listener, p, p, SOCK_CLOEXEC);
}

static sc_result connect_ptr(sc_token *t, void *p)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sc_result r;

	ck_assert_int_ge(fd, 0);
	r = sc_connect(t, fd, p, sizeof(struct sockaddr_un));
	close(fd);
	return r;
}

static sc_result poll_ptr(sc_token *t, void *p) { return sc_poll(t, p, 1, 0); }
static sc_result epoll_wait_ptr(sc_token *t, void *p) { return sc_epoll_wait(t, fx.epfd, p, 1, 0); }

/* A child that has exited: it is reaped, then its status cannot be stored. */
static sc_result waitpid_ptr(sc_token *t, void *p)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	ck_assert_int_gt(pid, 0);
	return sc_waitpid(t, pid, p, 0);
}

static sc_result openat_ptr(sc_token *t, void *p) { return sc_openat(t, AT_FDCWD, p, O_RDONLY, 0); }
static sc_result futex_wait_ptr(sc_token *t, void *p) { return sc_futex_wait(t, p, 0); }
static sc_result fcntl_lock_ptr(sc_token *t, void *p) { return sc_fcntl_lock(t, fx.file, F_SETLKW, p); }

static const struct ptr_call ptr_calls[] = {
	{ "sc_read", read_ptr }, { "sc_write", write_ptr },
	{ "sc_readv", readv_ptr }, { "sc_writev", writev_ptr },
	{ "sc_pread", pread_ptr }, { "sc_pwrite", pwrite_ptr },
	{ "sc_recv", recv_ptr }, { "sc_send", send_ptr },
	{ "sc_recvfrom", recvfrom_ptr }, { "sc_sendto", sendto_ptr },
	{ "sc_recvmsg", recvmsg_ptr }, { "sc_sendmsg", sendmsg_ptr },
	{ "sc_accept", accept_ptr }, { "sc_connect", connect_ptr },
	{ "sc_poll", poll_ptr }, { "sc_epoll_wait", epoll_wait_ptr },
	{ "sc_waitpid", waitpid_ptr }, { "sc_openat", openat_ptr },
	{ "sc_futex_wait", futex_wait_ptr }, { "sc_fcntl_lock", fcntl_lock_ptr },
};

START_TEST(every_call_given_a_pointer_the_kernel_cannot_touch_is_EFAULT)
{
	const struct ptr_call *c = &ptr_calls[_i];
	sc_token t;

	fx_open();
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_failed_cleanly(&t, c->run(&t, fx.bad), EFAULT, c->name);
	fx_close();
	fx_open();
	assert_failed_cleanly(NULL, c->run(NULL, fx.bad), EFAULT, c->name);
	fx_close();
}
END_TEST

/* Counts, flags and numbers the kernel refuses, each with the error it gives. */
struct range_call {
	const char *name;
	sc_result (*run)(sc_token *t);
	int error;
};

static sc_result readv_negative_count(sc_token *t) { return sc_readv(t, fx.pipe_[0], &iov, -1); }

static sc_result writev_count_over_IOV_MAX(sc_token *t)
{
	static const struct iovec many[IOV_MAX + 1];

	return sc_writev(t, fx.pipe_[1], many, IOV_MAX + 1);
}

static sc_result poll_count_over_the_fd_limit(sc_token *t)
{
	struct pollfd p = { .fd = fx.pipe_[0], .events = POLLIN };

	return sc_poll(t, &p, UINT_MAX, 0);
}

/* The kernel's count is an unsigned int: this one must not wrap to 0. */
static sc_result poll_count_over_UINT_MAX(sc_token *t)
{
	struct pollfd p = { .fd = fx.pipe_[0], .events = POLLIN };

	return sc_poll(t, &p, (nfds_t)UINT_MAX + 1, 0);
}

static sc_result epoll_wait_zero_events(sc_token *t)
{
	struct epoll_event ev;

	return sc_epoll_wait(t, fx.epfd, &ev, 0, 0);
}

static sc_result accept_unknown_flag(sc_token *t)
{
	return sc_accept(t, fx.listener, NULL, NULL, 0x40000000);
}

static sc_result waitpid_unknown_option(sc_token *t)
{
	return sc_waitpid(t, -1, NULL, 0x00400000);
}

static sc_result waitpid_without_children(sc_token *t) { return sc_waitpid(t, -1, NULL, 0); }
static sc_result flock_without_operation(sc_token *t) { return sc_flock(t, fx.file, 0); }

static sc_result fcntl_lock_unknown_type(sc_token *t)
{
	struct flock fl = { .l_type = 0x7f, .l_whence = SEEK_SET };

	return sc_fcntl_lock(t, fx.file, F_SETLKW, &fl);
}

static sc_result futex_wait_misaligned(sc_token *t)
{
	static uint32_t words[2];

	return sc_futex_wait(t, (const uint32_t *)((char *)words + 1), 0);
}

static sc_result syscall_negative_number(sc_token *t) { return sc_syscall(t, -1, 0, 0, 0, 0, 0, 0); }
static sc_result syscall_unknown_number(sc_token *t) { return sc_syscall(t, 100000, 0, 0, 0, 0, 0, 0); }

static const struct range_call range_calls[] = {
	{ "sc_readv with a negative count", readv_negative_count, EINVAL },
	{ "sc_writev with more than IOV_MAX", writev_count_over_IOV_MAX, EINVAL },
	{ "sc_poll over UINT_MAX", poll_count_over_UINT_MAX, EINVAL },
	{ "sc_epoll_wait for no events", epoll_wait_zero_events, EINVAL },
	{ "sc_accept with an unknown flag", accept_unknown_flag, EINVAL },
	{ "sc_waitpid with an unknown option", waitpid_unknown_option, EINVAL },
	{ "sc_waitpid without children", waitpid_without_children, ECHILD },
	{ "sc_flock without an operation", flock_without_operation, EINVAL },
	{ "sc_fcntl_lock with an unknown lock type", fcntl_lock_unknown_type, EINVAL },
	{ "sc_futex_wait on a misaligned word", futex_wait_misaligned, EINVAL },
	{ "sc_syscall with a negative number", syscall_negative_number, ENOSYS },
	{ "sc_syscall with an unknown number", syscall_unknown_number, ENOSYS },
	/* Last: memcheck would walk its four billion entries before the kernel refuses it. */
	{ "sc_poll over the descriptor limit", poll_count_over_the_fd_limit, EINVAL },
};

START_TEST(every_call_given_a_count_flag_or_number_out_of_range_gets_the_kernels_error)
{
	const struct range_call *c = &range_calls[_i];

	if (c->run == accept_unknown_flag &&
	    skipped_under_emulator(c->name, "qemu-user drops accept4 flags it does not know"))
		return;
	sc_token t;

	fx_open();
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_failed_cleanly(&t, c->run(&t), c->error, c->name);
	assert_failed_cleanly(NULL, c->run(NULL), c->error, c->name);
	fx_close();
}
END_TEST

START_TEST(thread_backend_out_of_range_is_EINVAL_and_changes_nothing)
{
	sc_token t;

	fx_open();
	ck_assert_int_eq(sc_thread_backend((sc_backend)99), EINVAL);
	ck_assert_int_eq(sc_thread_backend((sc_backend)-1), EINVAL);
	ck_assert_int_eq(sc_token_init(&t, NULL), 0);
	assert_ok(sc_read(&t, fx.pipe_[0], buf, 1), 1);
	ck_assert_int_eq(sc_token_destroy(&t), 0);
	fx_close();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("badcalls");
	TCase *tc = add_tcase(s, "calls", 30, init_library);

	tcase_add_loop_test(tc, every_call_given_a_descriptor_that_is_not_open_is_EBADF, 0,
			    ARRAY_SIZE(fd_calls));
	/*
	 * memcheck reports each bad pointer before the kernel refuses it, and
	 * its suppressions cannot match syscall parameters by pattern.
	 */
	if (!under_valgrind())
		tcase_add_loop_test(tc, every_call_given_a_pointer_the_kernel_cannot_touch_is_EFAULT,
				    0, ARRAY_SIZE(ptr_calls));
	tcase_add_loop_test(tc,
			    every_call_given_a_count_flag_or_number_out_of_range_gets_the_kernels_error,
			    0, ARRAY_SIZE(range_calls) - under_valgrind());
	tcase_add_test(tc, thread_backend_out_of_range_is_EINVAL_and_changes_nothing);
	return run_suite(s, CK_FORK_GETENV);
}
