#!/bin/sh
# Tests of the Python package, run by make check from the build directory:
# the package's modules from the source tree and the C extension built
# here (linked with an rpath to this tree's library), staged side by side.
case ${SC_SANITIZERS:-no} in no) ;; *)
	# ASan's runtime must come first, TSan's needs static TLS left at dlopen
	echo "sanitizers ($SC_SANITIZERS): python3 cannot load the sanitized library: skipped"
	exit 77
esac
ext=$PWD/python/syscancel/.libs/_syscancel.so
if [ ! -f "$ext" ]; then
	echo "$ext not built (configure found no python3 with headers): skipped"
	exit 77
fi
srcdir=$(cd "${srcdir:-.}" && pwd) || exit 99
stage=$(mktemp -d) || exit 99
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/syscancel" || exit 99
for f in "$srcdir"/python/syscancel/*.py "$srcdir"/python/syscancel/*.pyi \
	"$srcdir"/python/syscancel/py.typed; do
	ln -s "$f" "$stage/syscancel/" || exit 99
done
# A copy of the extension, not a link: make install (install.sh may run
# alongside) relinks it in place for a moment, with the run path of libdir
# alone, keeping the build's own as _syscancel.soU.  The copy must have this
# tree's .libs in its run path.
copy=$stage/syscancel/_syscancel.so
tries=0
until { cp "${ext}U" "$copy" 2>/dev/null || cp "$ext" "$copy" 2>/dev/null; } &&
	grep -a -q -F "$PWD/.libs" "$copy"; do
	tries=$((tries + 1))
	[ "$tries" -lt 300 ] || { echo "no usable copy of $ext"; exit 99; }
	sleep 0.1
done
PYTHONPATH=$stage${PYTHONPATH:+:$PYTHONPATH}
SC_PYTHON_EXAMPLES=$srcdir/python/examples
PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH SC_PYTHON_EXAMPLES PYTHONDONTWRITEBYTECODE
"${PYTHON:-python3}" "$srcdir/tests/test_python.py"
