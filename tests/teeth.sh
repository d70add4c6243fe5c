#!/bin/sh
# Tests with teeth.  In the wide-window build the race torture lands cancels
# between the stub's abort check and its syscall instruction (tests/torture
# requires it); here the handler stops diverting them, and the same torture
# must then fail, with the watchdog catching a call that outlived its cancel.
if [ "$SC_WIDE_WINDOW" != yes ] || ! grep -q '^#define SC_HAVE_STUB 1' config.h; then
	echo "needs the stub entry and a build configured with --enable-wide-window: skipped"
	exit 77
fi
out=$(CK_RUN_CASE=race ./tests/torture --no-pc-check 2>&1)
status=$?
printf '%s\n' "$out" | grep -E 'outlived|^race|^total'
if [ "$status" -eq 0 ]; then
	echo "the race torture passed with the program-counter check off: it cannot fail"
	exit 1
fi
if ! printf '%s\n' "$out" | grep -q 'outlived its cancel'; then
	echo "the race torture failed, but not with a hang"
	exit 1
fi
echo "with the program-counter check off the watchdog caught hangs, as it must"
