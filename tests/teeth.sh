#!/bin/sh
# Tests with teeth, in the wide-window build.  There the race torture lands
# cancels between the stub's abort check and its syscall instruction
# (tests/torture requires it); with the handler no longer diverting them the
# same torture must fail, the watchdog catching a call that outlived its
# cancel.  Likewise the scope torture when the handler of an ended scope
# ends no syscall: its plain calls must then hang.  The race teeth need the
# stub entry; the scope teeth need scopes that end plain syscalls (x86_64).
# A cross build runs the torture under the emulator $SC_EMULATOR names.
if [ "$SC_WIDE_WINDOW" != yes ]; then
	echo "needs a build configured with --enable-wide-window: skipped"
	exit 77
fi

bitten=0
failed=0

# bite CASE FLAG WHAT: the torture's CASE, run with FLAG (which turns WHAT
# off), must fail with a hang.
bite() {
	out=$(CK_RUN_CASE=$1 $SC_EMULATOR ./tests/torture "$2" 2>&1)
	status=$?
	if [ "$status" -eq 77 ]; then
		printf '%s\n' "$out" | tail -n 1
		echo "$1: skipped"
		return
	fi
	printf '%s\n' "$out" | grep -E "outlived|^$1 .* attempts |^total"
	if [ "$status" -eq 0 ]; then
		echo "the $1 torture passed with $3 off: it cannot fail"
		failed=1
	elif ! printf '%s\n' "$out" | grep -q 'outlived its cancel'; then
		echo "the $1 torture failed, but not with a hang"
		failed=1
	else
		echo "with $3 off the watchdog caught hangs in the $1 torture, as it must"
		bitten=$((bitten + 1))
	fi
}

if grep -q '^#define SC_HAVE_STUB 1' config.h; then
	bite race --no-pc-check "the program-counter check"
else
	echo "race: needs the stub entry: skipped"
fi
bite scope --no-scope-diversion "the scope diversion"
[ "$failed" -eq 0 ] || exit 1
[ "$bitten" -gt 0 ] || exit 77
