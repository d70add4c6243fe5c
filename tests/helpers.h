/* Shared test helpers: wait for states, never for sleeps. */
#ifndef SC_TEST_HELPERS_H
#define SC_TEST_HELPERS_H

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <syscancel.h>

/* Built with ThreadSanitizer: GCC says so with a macro, clang with a feature. */
#if defined(__SANITIZE_THREAD__)
#define SC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SC_TSAN 1
#endif
#endif
#ifndef SC_TSAN
#define SC_TSAN 0
#endif

#define SEC_NS 1000000000LL
#define MS_NS 1000000LL

/* Generous bound for anything that should happen "promptly". */
#define PROMPT_NS (5 * SEC_NS)

#define ARRAY_SIZE(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))

/*
 * Checked fixture: initialise the library up front.  Its one-time setup may
 * sleep in the kernel (membarrier registration waits for an RCU grace period
 * once threads exist), which wait_blocked() would take for the call under test.
 */
void init_library(void);
/* A test case added to s, with a timeout and, unless NULL, a checked fixture. */
TCase *add_tcase(Suite *s, const char *name, double timeout_s, void (*setup)(void));
/* The suites run a second time with SYSCANCEL_BACKEND=uring (tests/uring.sh). */
bool backend_is_uring(void);
/* Running under valgrind (make check-valgrind). */
bool under_valgrind(void);
/*
 * Running under a user-mode emulator (qemu-user runs a cross build's suites;
 * $SC_EMULATOR names it).  If so, prints that test is skipped and why.
 */
bool skipped_under_emulator(const char *test, const char *why);
#define QEMU_MASKS "qemu-user keeps the guest's signal masks itself: /proc shows the library's " \
	"signal open in a thread that blocks it"
#define QEMU_PROC_SYSCALL "qemu-user's threads show the host's syscall numbers in " \
	"/proc/TID/syscall"
#define QEMU_TIMERS "qemu-user gives a process 32 POSIX timers, fewer than one per thread here"
#define QEMU_FORK "qemu-user fails an assertion when a fork child of a multithreaded process " \
	"makes threads"
#define QEMU_PREADV2 "qemu-user has no preadv2 or pwritev2 (ENOSYS)"
#define QEMU_SPLICE "qemu-user makes splice and tee outside its interruptible syscall path: " \
	"a signal waits until they return"
#define QEMU_TIME_LEFT "qemu-user writes a ppoll's or select's time left back only on success, " \
	"not at EINTR"
#define QEMU_NO_VM_READV "qemu-user has no process_vm_readv: the library copies with memcpy, " \
	"as the C library would, and a bad pointer faults"

/* Run s; mode CK_FORK_GETENV follows $CK_FORK.  Returns main's exit status. */
int run_suite(Suite *s, enum fork_status mode);

/*
 * Flags and counters shared between threads and signal handlers.  Sequentially
 * consistent: the race tests' hazard protocol needs stores ordered before loads.
 */
static inline long load(const long *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static inline void store(long *p, long v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static inline void add(long *p, long v)
{
	__atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}

/* Wait until *p reaches at least v; fail after PROMPT_NS, saying what did not happen. */
void wait_at_least(const long *p, long v, const char *what, ...) PRINTF_LIKE(3, 4);

static inline uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* ns times CK_TIMEOUT_MULTIPLIER: a bound for work that slows down with the whole run. */
int64_t stretched(int64_t ns);
/* Busy-wait for ns: a delay that never sleeps in the kernel. */
void spin_ns(int64_t ns);
/* Join t, failing if it has not finished within ns. */
void join_within(pthread_t t, int64_t ns, const char *what);

/* Thread tid's state letter in /proc/self/task (R, S, D, ...), '?' if it is gone. */
char thread_state(pid_t tid);
/* Wait until thread tid sleeps interruptibly in the kernel (state S); fail after 10 s. */
void wait_blocked(pid_t tid);

/* Fail unless r is SC_OK with no error and the given value. */
void assert_ok(sc_result r, long value);
/* Fail unless r is SC_CANCELLED with ECANCELED. */
void assert_cancelled(sc_result r);
/* Fail unless r is SC_ERROR with the given errno. */
void assert_error(sc_result r, int error);
/* Fail unless r has status want (and the error that status implies); what names the call. */
void assert_status(sc_result r, sc_status want, const char *what, ...) PRINTF_LIKE(3, 4);

#define BG_READ_LEN 16

/* A call run in its own thread, with its result and tid published. */
struct bg_call {
	pthread_t thread;
	sc_result (*fn)(struct bg_call *c);
	sc_token *tok;
	int fd;
	int peer;		/* bg_pipe(): the write end of the pipe fd reads */
	void *arg;
	char buf[BG_READ_LEN];	/* bg_read() reads into it */
	pid_t tid;		/* set before fn runs */
	sc_result res;
	int64_t returned_ns;	/* sc_now_ns() when fn returned */
	int done;		/* 1 once res is set */
};

/* Start c->fn in a new thread and wait until its tid is known. */
void bg_start(struct bg_call *c);
/*
 * Wait until c's thread blocks in the kernel: true; false if its call has
 * returned instead.  Fail if neither happens within 10 s.
 */
bool bg_wait_blocked(struct bg_call *c);
/* Start, then wait until the thread is blocked in the kernel; fail if the call returns. */
void bg_start_blocked(struct bg_call *c);
/* Whether c's call has returned. */
bool bg_done(const struct bg_call *c);
/* Wait until c's call returns, within PROMPT_NS; the thread is left to exit on its own. */
sc_result bg_wait(struct bg_call *c);
/* bg_wait(), then join. */
sc_result bg_join(struct bg_call *c);

/* A bg_call fn: read up to sizeof(c->buf) bytes from c->fd into c->buf under c->tok. */
sc_result bg_read(struct bg_call *c);
/* Give c an empty pipe: c->fd is its read end, c->peer its write end. */
void bg_pipe(struct bg_call *c);
void bg_close_pipe(struct bg_call *c);
/* A bg_read() of a new empty pipe under tok, started and blocked. */
void bg_read_blocked(struct bg_call *c, sc_token *tok);

/* Make a pipe, fail the test if it cannot. */
void make_pipe(int fds[2]);
/* A pipe holding one byte, 'x'. */
void make_pipe_with_byte(int fds[2]);
/* The 'x' of make_pipe_with_byte() is still there: read it. */
void assert_byte_still_readable(int fd);
void close_pipe(int fds[2]);
/* A listening TCP socket on 127.0.0.1 with an ephemeral port. */
int make_listener(struct sockaddr_storage *addr, socklen_t *alen, int backlog);

/* Three tokens, each the parent of the next. */
struct token_chain {
	sc_token root, mid, leaf;
};

void chain_init(struct token_chain *ch);
/* Leaf first. */
void chain_destroy(struct token_chain *ch);

/* Install fn on sig with sa_flags flags, blocking mask (none if NULL) while it runs. */
void install_handler(int sig, void (*fn)(int), int flags, const sigset_t *mask);
/* fn, as a plain handler (no SA_SIGINFO), is sig's disposition: SIG_DFL for untouched. */
void assert_handler(int sig, void (*fn)(int));
/* The library's handler (SA_SIGINFO, not a default or ignore) is installed on sig. */
void assert_library_handles(int sig);

/* Wait for child pid to exit within 10 s (killing it if not); return its wait status. */
int wait_child(pid_t pid);
/* The child exits with status 0 within 10 s. */
void assert_child_succeeded(pid_t pid);

#endif
