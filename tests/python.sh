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
	"$srcdir"/python/syscancel/py.typed "$ext"; do
	ln -s "$f" "$stage/syscancel/" || exit 99
done
PYTHONPATH=$stage${PYTHONPATH:+:$PYTHONPATH}
SC_PYTHON_EXAMPLES=$srcdir/python/examples
PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH SC_PYTHON_EXAMPLES PYTHONDONTWRITEBYTECODE
"${PYTHON:-python3}" "$srcdir/tests/test_python.py"
