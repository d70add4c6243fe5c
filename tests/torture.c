/*
 * tests/torture [--full] [--no-pc-check] [--no-scope-diversion]: every
 * torture case, each in a child process, with its counts printed and the
 * run's totals at the end.  CK_RUN_CASE picks one case (race, storm,
 * nested, churn, fork, queue, scope, cond, sigfd).
 */
#define _GNU_SOURCE
#include "torture.h"
#include "config.h"
#include "../lib/internal.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

bool torture_full;

/* The run's totals, in memory shared with the children that run the cases. */
static struct totals {
	struct tally t;
	struct landing l;
	long cases;
	long races;
} *totals;

/*
 * The wide-window build must land cancels in the window thousands of times
 * in the long run (unloaded, the short run alone gets about 8000).
 */
#define WIDE_WINDOW_HITS (torture_full ? 5000 : torture_scaled(500))

/* Under an emulator the short run is an eighth: qemu-user runs it some 20 times slower. */
long torture_scaled(long short_count)
{
	const char *emulator = getenv("SC_EMULATOR");

	if (torture_full)
		return short_count * TORTURE_FULL_SCALE;
	return emulator && *emulator && short_count >= 8 ? short_count / 8 : short_count;
}

static long signal_count(const uint64_t *n)
{
	return (long)__atomic_load_n(n, __ATOMIC_RELAXED);
}

struct landing landings(void)
{
	return (struct landing){
		.window = signal_count(&sc_signal_counts.window),
		.in_kernel = signal_count(&sc_signal_counts.in_kernel),
		.elsewhere = signal_count(&sc_signal_counts.elsewhere),
	};
}

bool kernel_landings_required(void)
{
#if defined(SC_HAVE_STUB) && !defined(SC_WIDE_WINDOW)
	return true;
#else
	return false;
#endif
}

struct landing landings_since(struct landing before)
{
	struct landing now = landings();

	return (struct landing){
		.window = now.window - before.window,
		.in_kernel = now.in_kernel - before.in_kernel,
		.elsewhere = now.elsewhere - before.elsewhere,
	};
}

/*
 * Under TSan the handler runs late, at the thread's next intercepted call,
 * when the call it interrupted may have ended: it cannot tell where the
 * signal landed.  The EINTR count still shows a signal outside a call.
 */
uint64_t stray_signals(void)
{
	return SC_TSAN ? 0 : __atomic_load_n(&sc_signal_counts.stray, __ATOMIC_RELAXED);
}

uint64_t refused_signals(void)
{
	return __atomic_load_n(&sc_signal_counts.refused, __ATOMIC_RELAXED);
}

void registry_slots(unsigned *slots, unsigned *taken)
{
	sc_registry_count(slots, taken);
}

static void print_tally(const char *name, const struct tally *t, const struct landing *l)
{
	printf("%-16s attempts %8ld  cancelled %8ld  completed %8ld | hangs %ld  bad bytes %ld  "
	       "spurious %ld  lost cancels %ld  stray EINTR %ld  stray signals %ld  errors %ld | "
	       "landed: window hits %ld  in kernel %ld  elsewhere %ld\n",
	       name, t->attempts, t->cancelled, t->completed, t->hangs, t->bad_bytes,
	       t->spurious, t->lost_cancels, t->stray_eintr, t->stray_signals, t->errors,
	       l->window, l->in_kernel, l->elsewhere);
	fflush(stdout);
}

static long failures(const struct tally *t)
{
	return t->hangs + t->bad_bytes + t->spurious + t->lost_cancels + t->stray_eintr +
	       t->stray_signals + t->errors;
}

void count_race(void)
{
	add(&totals->races, 1);
}

static void add_longs(long *to, const void *from, size_t size)
{
	for (size_t i = 0; i < size / sizeof(long); i++)
		add(&to[i], ((const long *)from)[i]);
}

void tally_report(const char *name, const struct tally *t, struct landing l)
{
	print_tally(name, t, &l);
	add_longs((long *)&totals->t, t, sizeof(*t));
	add_longs((long *)&totals->l, &l, sizeof(l));
	add(&totals->cases, 1);
	ck_assert_msg(!failures(t), "%s: %ld failures", name, failures(t));
}

int make_eventfd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

void post_eventfd(int fd)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

int wait_readable_counting_eintr(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec bound = { 30, 0 };
	sigset_t mask, foreign;
	uint64_t v;
	int eintr = 0, n;

	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	foreign_signal_set(&foreign);
	sigorset(&mask, &mask, &foreign);
	while ((n = ppoll(&p, 1, &bound, &mask)) < 0 && errno == EINTR)
		eintr++;
	ck_assert_msg(n == 1, "ppoll: %d (%s)", n, n ? strerror(errno) : "timed out");
	ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
	return eintr;
}

long stream_check(uint64_t *pos, const uint8_t *buf, size_t n)
{
	long bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += buf[i] != stream_byte((*pos)++);
	return bad;
}

void stream_fill(uint64_t *pos, uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = stream_byte((*pos)++);
}

void disable_pc_check(void)
{
#if defined(SC_WIDE_WINDOW) && defined(SC_HAVE_STUB)
	sc_pc_check = 0;
#else
	fprintf(stderr, "--no-pc-check needs the stub entry and --enable-wide-window\n");
	exit(2);
#endif
}

struct scope_landing scope_landings(void)
{
	return (struct scope_landing){
		.skipped = signal_count(&sc_signal_counts.scope_skipped),
		.rewritten = signal_count(&sc_signal_counts.scope_rewritten),
		.missed = signal_count(&sc_signal_counts.scope_missed),
	};
}

struct scope_landing scope_landings_since(struct scope_landing before)
{
	struct scope_landing now = scope_landings();

	return (struct scope_landing){
		.skipped = now.skipped - before.skipped,
		.rewritten = now.rewritten - before.rewritten,
		.missed = now.missed - before.missed,
	};
}

bool scopes_end_plain_calls(void)
{
	return sc_arch_scopes;
}

void disable_scope_diversion(void)
{
#ifdef SC_WIDE_WINDOW
	if (!sc_arch_scopes) {
		fprintf(stderr, "--no-scope-diversion: no plain syscall ends in this build\n");
		exit(77);
	}
	sc_scope_diversion = 0;
#else
	fprintf(stderr, "--no-scope-diversion needs --enable-wide-window\n");
	exit(2);
#endif
}

void run_on_cpu(int which)
{
	cpu_set_t set;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cpus < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(which % cpus, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

START_TEST(race)
{
	torture_race(_i);
}
END_TEST

START_TEST(storm)
{
	torture_race_under_storm(_i);
}
END_TEST

START_TEST(nested)
{
	torture_nested(_i);
}
END_TEST

START_TEST(churn)
{
	torture_churn();
}
END_TEST

START_TEST(fork_during_calls)
{
	torture_fork();
}
END_TEST

START_TEST(queue)
{
	torture_queue();
}
END_TEST

START_TEST(scope)
{
	torture_scope(_i);
}
END_TEST

START_TEST(cond)
{
	torture_cond(_i);
}
END_TEST

START_TEST(sigfd)
{
	torture_sigfd(_i);
}
END_TEST

#if SC_TSAN
/* The fork case's children start threads; TSan would kill them for it. */
const char *__tsan_default_options(void)
{
	return "die_after_fork=0";
}
#endif

static Suite *torture_suite(void)
{
	Suite *s = suite_create("torture");
	double bound = torture_full ? 3600 : 300;

	tcase_add_loop_test(add_tcase(s, "race", bound, init_library), race, 0, torture_kind_count);
	/*
	 * TSan runs an application's handlers only at its next intercepted
	 * call, never on a thread blocked in the library's raw syscall: the
	 * cases that need them to run there cannot pass under it.
	 */
	if (!SC_TSAN) {
		tcase_add_loop_test(add_tcase(s, "storm", bound, init_library), storm, 0,
				    torture_kind_count);
		tcase_add_loop_test(add_tcase(s, "nested", bound, init_library), nested, 0, 2);
	}
	tcase_add_test(add_tcase(s, "churn", bound, init_library), churn);
	if (!skipped_under_emulator("the torture's fork case", QEMU_FORK))
		tcase_add_test(add_tcase(s, "fork", bound, init_library), fork_during_calls);
	if (!skipped_under_emulator("the torture's queue case", QEMU_TIMERS))
		tcase_add_test(add_tcase(s, "queue", bound, init_library), queue);
	tcase_add_loop_test(add_tcase(s, "cond", bound, init_library), cond, 0, torture_cond_count);
	tcase_add_loop_test(add_tcase(s, "sigfd", bound, init_library), sigfd, 0, 2);
	if (scopes_end_plain_calls())
		tcase_add_loop_test(add_tcase(s, "scope", bound, init_library), scope, 0,
				    torture_scope_count);
	return s;
}

static bool pc_check = true;

/* Whether the wide-window build hit its window as often as it must. */
static bool window_hit_enough(void)
{
#if defined(SC_WIDE_WINDOW) && defined(SC_HAVE_STUB)
	if (pc_check && totals->races == 2 * torture_kind_count &&
	    totals->l.window < WIDE_WINDOW_HITS) {
		printf("torture: only %ld cancels landed in the widened window\n", totals->l.window);
		return false;
	}
#endif
	return true;
}

static void parse_options(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--full")) {
			torture_full = true;
		} else if (!strcmp(argv[i], "--no-pc-check")) {
			disable_pc_check();
			pc_check = false;
		} else if (!strcmp(argv[i], "--no-scope-diversion")) {
			disable_scope_diversion();
		} else {
			fprintf(stderr,
				"usage: %s [--full] [--no-pc-check] [--no-scope-diversion]\n",
				argv[0]);
			exit(2);
		}
	}
}

int main(int argc, char **argv)
{
	parse_options(argc, argv);
	totals = mmap(NULL, sizeof(*totals), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (totals == MAP_FAILED)
		return 99;
	printf("torture: %s run\n", torture_full ? "full" : "short");
	int status = run_suite(torture_suite(), CK_FORK);
	print_tally("total", &totals->t, &totals->l);
	printf("torture: %ld cases reported, failure counts %s\n", totals->cases,
	       failures(&totals->t) ? "NOT all 0" : "all 0");
	return window_hit_enough() ? status : EXIT_FAILURE;
}
