#!/bin/sh
# make install puts the header, the libraries, the .pc file, the man pages,
# syscancel-bench and the Python package in DESTDIR and nothing else; the
# bench starts there without LD_LIBRARY_PATH; the examples build and run
# against that install with pkg-config alone, outside the source tree, shared
# and static; make uninstall removes every file again.
set -eu
case ${SC_SANITIZERS:-no} in no) ;; *)
	# pkg-config's flags alone do not link the sanitizer runtime in
	echo "sanitizers ($SC_SANITIZERS): examples cannot link the sanitized install: skipped"
	exit 77
esac
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
fail() { echo "$*"; exit 1; }

$MAKE -s install DESTDIR="$dest/root" >/dev/null 2>&1 || fail "make install failed"
find "$dest/root" -type f -o -type l | sed "s|^$dest/root||" | sort >"$dest/files"
unexpected=$(grep -v -E '/include/syscancel\.h$|/lib[^/]*/libsyscancel\.(so|so\.[0-9.]+|a|la)$|/pkgconfig/syscancel\.pc$|/man3/sc_[a-z_]+\.3$|/man7/syscancel\.7$|/bin/syscancel-bench$|/site-packages/syscancel/([a-z_]+\.(py|pyi|so|la)|py\.typed|__pycache__/[a-z_]+\.cpython-[0-9]+(\.opt-[12])?\.pyc)$' "$dest/files" || true)
[ -z "$unexpected" ] || fail "installed but not expected: $unexpected"
pages=$(grep -c '/man3/' "$dest/files" || true)
[ "$pages" -eq "$(ls "$srcdir"/doc/*.3 | wc -l)" ] || fail "$pages man pages installed"
for f in include/syscancel.h pkgconfig/syscancel.pc man7/syscancel.7 bin/syscancel-bench; do
	grep -q "/$f\$" "$dest/files" || fail "$f not installed"
done

# The installed bench starts from the staged tree with no LD_LIBRARY_PATH,
# on the library installed beside it (its run path is relative to bindir).
bench="$dest/root$(grep '/bin/syscancel-bench$' "$dest/files")"
found=$(env -u LD_LIBRARY_PATH ldd "$bench" | sed -n 's/^[[:space:]]*libsyscancel\.so[^ ]* => \([^ ]*\).*/\1/p')
case $found in "$dest/root"/*) ;; *) fail "installed syscancel-bench does not load the installed libsyscancel (ldd: $found)" ;; esac
env -u LD_LIBRARY_PATH "$bench" --help >/dev/null 2>&1 || fail "installed syscancel-bench --help failed"

pcdir=$(dirname "$(grep '/syscancel\.pc$' "$dest/files")")
export PKG_CONFIG_PATH="$dest/root$pcdir"
pc() { pkg-config --define-prefix "$@" syscancel; }
libdir=$(pc --variable=libdir)
static_libs=$(pc --static --libs | sed 's/-lsyscancel//')
# cancel-library-call needs libcurl, and scopes that reach any code (x86_64)
examples="timeout-read pool-shutdown"
if [ "$(uname -m)" = x86_64 ] && pkg-config --exists libcurl; then
	examples="$examples cancel-library-call"
fi
for ex in $examples; do
	case $ex in cancel-library-call) uses=$(pkg-config --cflags --libs libcurl) ;; *) uses= ;; esac
	cc -std=gnu11 $(pc --cflags) -o "$dest/$ex" "$srcdir/examples/$ex.c" $(pc --libs) $uses
	LD_LIBRARY_PATH="$libdir" "$dest/$ex" >/dev/null || fail "$ex (shared) failed"
	cc -std=gnu11 $(pc --cflags) -o "$dest/$ex-static" "$srcdir/examples/$ex.c" \
		-Wl,-Bstatic -lsyscancel -Wl,-Bdynamic -L"$libdir" $static_libs $uses
	"$dest/$ex-static" >/dev/null || fail "$ex (static) failed"
done

$MAKE -s uninstall DESTDIR="$dest/root" >/dev/null
left=$(find "$dest/root" -type f -o -type l)
[ -z "$left" ] || fail "left after uninstall: $left"
echo "$(wc -l <"$dest/files") files installed and removed;" \
	"$(echo $examples | wc -w) examples built shared and static"
