#!/bin/sh
# Tests of the Python binding, run by make check from the build directory.
case ${SC_SANITIZERS:-no} in no) ;; *)
	# ASan's runtime must come first, TSan's needs static TLS left at dlopen
	echo "sanitizers ($SC_SANITIZERS): python3 cannot load the sanitized library: skipped"
	exit 77
esac
if ! command -v python3 >/dev/null 2>&1; then
	echo "python3 not found: skipped"
	exit 77
fi
lib=$PWD/.libs/libsyscancel.so
if [ ! -f "$lib" ]; then
	echo "$lib not built (shared library disabled?): skipped"
	exit 77
fi
srcdir=$(cd "${srcdir:-.}" && pwd) || exit 99
SYSCANCEL_LIBRARY=$lib
PYTHONPATH=$srcdir/python${PYTHONPATH:+:$PYTHONPATH}
PYTHONDONTWRITEBYTECODE=1
export SYSCANCEL_LIBRARY PYTHONPATH PYTHONDONTWRITEBYTECODE
exec python3 "$srcdir/tests/test_python.py"
