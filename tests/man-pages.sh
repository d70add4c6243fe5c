#!/bin/sh
# Every function the library exports has a man page, syscancel.7 exists,
# and every page passes mandoc's lint.  Run from the build directory, with
# srcdir set to the source directory (the test harness does both).
srcdir=${srcdir:-.}
lib=.libs/libsyscancel.so
fail=0

if [ ! -f "$lib" ]; then
	echo "man-pages.sh: $lib not built" >&2
	exit 1
fi
funcs=$(nm -D --defined-only "$lib" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }')
if [ -z "$funcs" ]; then
	echo "man-pages.sh: no exported function found in $lib" >&2
	exit 1
fi
for f in $funcs; do
	if [ ! -f "$srcdir/doc/$f.3" ]; then
		echo "man-pages.sh: $f has no man page doc/$f.3" >&2
		fail=1
	fi
done
if [ ! -f "$srcdir/doc/syscancel.7" ]; then
	echo "man-pages.sh: doc/syscancel.7 is missing" >&2
	fail=1
fi

if ! command -v mandoc >/dev/null 2>&1; then
	echo "man-pages.sh: mandoc not installed, lint skipped" >&2
	[ "$fail" -eq 0 ] && exit 77
	exit 1
fi
for page in "$srcdir"/doc/*.3 "$srcdir"/doc/*.7; do
	[ -f "$page" ] || continue
	out=$(mandoc -T lint -W warning "$page" 2>&1)
	if [ -n "$out" ]; then
		printf '%s\n' "$out" >&2
		fail=1
	fi
done
[ "$fail" -eq 0 ] && echo "$(ls "$srcdir"/doc/*.[37] | wc -l) pages, one per exported function, lint-clean"
exit "$fail"
