#!/bin/sh
# Tests of the Python binding, run by make check from the build directory.
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
