/*
 * syscancel-bench: what syscancel costs, next to what the kernel costs.
 * One file per section, run in this order:
 *
 * bench/fast_path.c  ns per uncancelled 1-byte read, raw read(2) against
 *                    sc_read, with and without deadlines, on both backends;
 * bench/memory.c     what the library allocates, seen by this program's malloc;
 * bench/latency.c    wake-up latency: a blocked read woken by a byte, an
 *                    eventfd, a signal or sc_cancel, on one CPU, then two;
 * bench/shutdown.c   N threads blocked on empty pipes, released by one
 *                    sc_cancel of their root or by N tgkill(2)s;
 * bench/scope.c      sc_scope_enter+exit, plain read(2) in a live scope, a
 *                    cancel ending it, and its retry;
 * bench/lateness.c   N threads each in sc_read with its own deadline: how late
 *                    they return, next to clock_nanosleep to the same deadlines;
 * bench/destroy.c    destroying the child tokens of N threads cancelled and
 *                    joined, next to destroying N tokens no call used;
 * bench/cond.c       a turn passed back and forth on sc_cond, next to
 *                    pthread_cond.
 *
 * What they share: bench/common.c (bench.h).
 *
 * Usage: syscancel-bench [--quick] [--large] [--csv FILE]
 * --large adds a shutdown of 10,000 threads, and runs the deadline lateness
 * and the destroy with 10,000 threads under --quick too.
 * CSV: method,sample_ns with method as id@same-cpu, id@two-cpus, shutdown-N@id,
 * lateness-N@id (a sample per thread and round, negative if early) or
 * destroy-N@id (a sample per round: all N destroys, or the cancel and joins),
 * cond@id (ns per round trip, a sample per round);
 * the scope section's ids start with scope_.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <syscancel.h>
#include "bench.h"

int main(int argc, char **argv)
{
	static const int sizes[] = { 10, 100, 1000, 10000 };
	static const int destroy_sizes[] = { 1000, 10000 };
	bool quick = false, large = false;
	const char *csv_path = NULL;
	FILE *csv = NULL;
	struct utsname u;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = true;
		} else if (!strcmp(argv[i], "--large")) {
			large = true;
		} else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
			csv_path = argv[++i];
		} else if (!strcmp(argv[i], "--help")) {
			printf("usage: %s [--quick] [--large] [--csv FILE]\n", argv[0]);
			return 0;
		} else {
			fprintf(stderr, "usage: %s [--quick] [--large] [--csv FILE]\n", argv[0]);
			return 2;
		}
	}
	if (csv_path && (!(csv = fopen(csv_path, "w")) || fprintf(csv, "method,sample_ns\n") < 0))
		die(csv_path, errno);
	uname(&u);
	printf("syscancel-bench: Linux %s %s, %ld CPUs, signal %d%s\n\n", u.release, u.machine,
	       sysconf(_SC_NPROCESSORS_ONLN), sc_signal_number(), quick ? ", --quick" : "");
	bench_fast_path(quick ? 10 : 20, quick ? 100000 : 200000);
	bench_memory(100000);
	int bad = bench_latency(quick ? 1000 : 10000, csv, false);
	bad += bench_latency(quick ? 1000 : 10000, csv, true);
	bad += bench_shutdown(sizes, large ? 4 : quick ? 2 : 3, quick, csv);
	bad += bench_scopes(quick, csv);
	bool small = quick && !large;
	bad += bench_lateness(small ? 1000 : 10000, quick ? 1 : 3, csv);
	bad += bench_destroy(destroy_sizes, small ? 1 : 2, quick, csv);
	bad += bench_cond(quick, csv);
	if (csv && fclose(csv))
		die(csv_path, errno);
	return bad ? 1 : 0;
}
