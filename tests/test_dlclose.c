/*
 * The library loaded as a plugin: dlopen, calls from threads, dlclose.
 * Its signal handler, its thread-exit destructor and its deadline service
 * stay valid after dlclose, and a second dlopen gives a working library.
 * This program does not link the library; it loads the one just built.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <syscancel.h>

#define SEC_NS 1000000000LL

/* The functions used, looked up in one load of the library. */
struct lib {
	void *handle;
	int (*signal_number)(void);
	int (*token_init)(sc_token *, sc_token *);
	int (*token_destroy)(sc_token *);
	int (*token_set_timeout)(sc_token *, int64_t);
	int (*cancel)(sc_token *);
	sc_result (*read)(sc_token *, int, void *, size_t);
};

static void *symbol(void *handle, const char *name)
{
	void *p = dlsym(handle, name);

	ck_assert_msg(p, "%s: %s", name, dlerror());
	return p;
}

static void load(struct lib *l)
{
	l->handle = dlopen(SC_SHARED_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(l->handle, "dlopen: %s", dlerror());
	l->signal_number = symbol(l->handle, "sc_signal_number");
	l->token_init = symbol(l->handle, "sc_token_init");
	l->token_destroy = symbol(l->handle, "sc_token_destroy");
	l->token_set_timeout = symbol(l->handle, "sc_token_set_timeout");
	l->cancel = symbol(l->handle, "sc_cancel");
	l->read = symbol(l->handle, "sc_read");
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * SEC_NS + ts.tv_nsec;
}

static long load_flag(const long *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void store_flag(long *p, long v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static void wait_flag(const long *p, long v, const char *what)
{
	int64_t end = now_ns() + 10 * SEC_NS;

	while (load_flag(p) < v) {
		ck_assert_msg(now_ns() < end, "%s: never happened", what);
		sched_yield();
	}
}

/* Whether thread tid sleeps in the kernel. */
static int sleeping(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

static void wait_sleeping(pid_t tid)
{
	int64_t end = now_ns() + 10 * SEC_NS;

	while (!sleeping(tid)) {
		ck_assert_msg(now_ns() < end, "thread %d never blocked", tid);
		sched_yield();
	}
}

static void pipe_with_byte(int p[2])
{
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
}

/* A thread that makes calls through the library, then outlives its dlclose. */
struct caller {
	struct lib *lib;
	pthread_t thread;
	long tid;
	long calls_done;
	long may_exit;
	sc_result first, timed;
};

static void *make_calls(void *arg)
{
	struct caller *c = arg;
	sc_token tok;
	char b;
	int p[2];

	store_flag(&c->tid, gettid());
	pipe_with_byte(p);
	c->first = c->lib->read(NULL, p[0], &b, 1);
	/* A deadline starts the library's deadline service. */
	if (!c->lib->token_init(&tok, NULL) && !c->lib->token_set_timeout(&tok, 20000000))
		c->timed = c->lib->read(&tok, p[0], &b, 1);
	c->lib->token_destroy(&tok);
	close(p[0]);
	close(p[1]);
	store_flag(&c->calls_done, 1);
	wait_flag(&c->may_exit, 1, "leave");
	return NULL;
}

/* A second load: the library initialises, and its calls complete and cancel. */
static void assert_library_works(struct lib *l, int signo)
{
	sc_token tok;
	char b;
	int p[2];

	ck_assert_int_eq(l->signal_number(), signo);
	pipe_with_byte(p);
	ck_assert_int_eq(l->read(NULL, p[0], &b, 1).status, SC_OK);
	ck_assert_int_eq(l->token_init(&tok, NULL), 0);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(l->token_destroy(&tok), 0);
}

/* Blocks in a read under a token until cancelled. */
struct blocked {
	struct lib *lib;
	sc_token *tok;
	int fd;
	long tid;
	sc_result r;
};

static void *read_until_cancelled(void *arg)
{
	struct blocked *b = arg;
	char c;

	store_flag(&b->tid, gettid());
	b->r = b->lib->read(b->tok, b->fd, &c, 1);
	return NULL;
}

static void assert_cancel_works(struct lib *l)
{
	struct blocked b = { .lib = l };
	pthread_t t;
	sc_token tok;
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(l->token_init(&tok, NULL), 0);
	b.tok = &tok;
	b.fd = p[0];
	ck_assert_int_eq(pthread_create(&t, NULL, read_until_cancelled, &b), 0);
	wait_flag(&b.tid, 1, "reader starts");
	wait_sleeping((pid_t)b.tid);
	ck_assert_int_eq(l->cancel(&tok), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(b.r.status, SC_CANCELLED);
	ck_assert_int_eq(l->token_destroy(&tok), 0);
	close(p[0]);
	close(p[1]);
}

START_TEST(a_thread_that_made_calls_exits_after_dlclose_and_a_second_dlopen_works)
{
	struct lib first, second;
	struct caller c = { .lib = &first };
	int signo;

	load(&first);
	signo = first.signal_number();
	ck_assert_int_gt(signo, 0);
	ck_assert_int_eq(pthread_create(&c.thread, NULL, make_calls, &c), 0);
	wait_flag(&c.calls_done, 1, "calls");
	ck_assert_int_eq(c.first.status, SC_OK);
	ck_assert_int_eq(c.timed.status, SC_TIMEDOUT);
	ck_assert_int_eq(dlclose(first.handle), 0);

	/* Its thread-exit destructor runs now, and the library's signal lands. */
	store_flag(&c.may_exit, 1);
	ck_assert_int_eq(pthread_join(c.thread, NULL), 0);
	ck_assert_int_eq(syscall(SYS_tgkill, getpid(), gettid(), signo), 0);

	load(&second);
	assert_library_works(&second, signo);
	assert_cancel_works(&second);
	ck_assert_int_eq(dlclose(second.handle), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dlclose");
	TCase *tc = tcase_create("plugin");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_thread_that_made_calls_exits_after_dlclose_and_a_second_dlopen_works);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	/* Each run loads the library afresh. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
