#!/bin/sh
# The shared library exports exactly the functions of the public header,
# each at symbol version SYSCANCEL_1.0.
set -eu
lib=.libs/libsyscancel.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sed -n 's/^\(const \)\{0,1\}[a-z_0-9]* \**\(sc_[a-z_0-9]*\)(.*/\2/p' "$srcdir/include/syscancel.h" |
	sort -u >"$tmp/header"
nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sort -u >"$tmp/exported"
sed 's/$/@@SYSCANCEL_1.0/' "$tmp/header" >"$tmp/expected"

if ! cmp -s "$tmp/expected" "$tmp/exported"; then
	echo "exported symbols differ from the header (- header, + library):"
	diff "$tmp/expected" "$tmp/exported" | sed -n 's/^< /- /p; s/^> /+ /p'
	exit 1
fi
echo "$(wc -l <"$tmp/header") functions exported, all at SYSCANCEL_1.0"
