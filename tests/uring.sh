#!/bin/sh
# The Check suites again, with every call that has an io_uring equivalent
# going through the io_uring backend (the others fall back to the signal
# path).  Skipped where this build or the kernel has no io_uring.
skip() {
	echo "$*: skipped"
	exit 77
}
grep -q '^#define HAVE_LIBURING 1' config.h || skip "built without liburing"
[ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" = 0 ] ||
	skip "io_uring is disabled in this kernel"
status=0
for t in tokens cancel badinput badcalls calls calltable signals race threads fork scopes deadlines cond introspect hostile; do
	# Not piped straight into sed, whose status would hide a failing suite.
	out=$(SYSCANCEL_BACKEND=uring ./tests/test_$t) || status=1
	printf '%s\n' "$out" | sed "s/^[0-9]*%: Checks/uring test_$t: &/"
done
exit $status
