#!/bin/sh
# The package installs into a fresh virtual environment with
# pip install --no-build-isolation (no package index), against this tree's
# library, and imports and works there with no environment variable.
set -u
case ${SC_SANITIZERS:-no} in no) ;; *)
	echo "sanitizers ($SC_SANITIZERS): python3 cannot load the sanitized library: skipped"
	exit 77
esac
# Debian's python3 where there is one: its setuptools and wheel build offline.
py=${PYTHON:-python3}
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
if [ ! -f "$PWD/python/syscancel/.libs/_syscancel.so" ]; then
	echo "no Python package in this build: skipped"
	exit 77
fi
if ! "$py" -c 'import venv, ensurepip' 2>/dev/null; then
	echo "$py has no venv/ensurepip (python3-venv): skipped"
	exit 77
fi
srcdir=$(cd "${srcdir:-.}" && pwd) || exit 99
dest=$(mktemp -d) || exit 99
trap 'rm -rf "$dest"' EXIT
fail() { echo "$*"; cat "$dest/log" 2>/dev/null; exit 1; }

"$py" -m venv "$dest/venv" >"$dest/log" 2>&1 || fail "python3 -m venv failed"
vpy=$dest/venv/bin/python
# Without setuptools and wheel in the venv (newer venvs have neither, none
# has wheel), the system's are used.
if ! "$vpy" -c 'import setuptools, wheel' 2>/dev/null; then
	rm -rf "$dest/venv"
	"$py" -m venv --system-site-packages "$dest/venv" >"$dest/log" 2>&1 ||
		fail "python3 -m venv --system-site-packages failed"
	"$vpy" -c 'import setuptools, wheel' 2>/dev/null || {
		echo "no setuptools or wheel for $py (python3-setuptools, python3-wheel): skipped"
		exit 77; }
fi
# A copy: pip builds in the source directory, which may be read-only.
cp -R "$srcdir/python" "$dest/src" && chmod -R u+w "$dest/src" || exit 99
SYSCANCEL_INCLUDEDIR=$srcdir/include SYSCANCEL_LIBDIR=$PWD/.libs \
	PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
	"$vpy" -m pip install --no-build-isolation "$dest/src" >"$dest/log" 2>&1 ||
	fail "pip install --no-build-isolation failed"
cd "$dest" || exit 99
env -u PYTHONPATH -u LD_LIBRARY_PATH "$vpy" -c '
import os, sys, syscancel
assert os.path.dirname(syscancel.__file__).startswith(sys.prefix), syscancel.__file__
assert os.path.exists(os.path.join(os.path.dirname(syscancel.__file__), "py.typed"))
r, w = os.pipe()
with syscancel.Token(timeout=0.05) as tok:
    try:
        syscancel.read(r, 1, tok)
    except syscancel.TimedOut:
        pass
    else:
        raise AssertionError("read did not time out")
os.write(w, b"k")
assert syscancel.read(r, 1) == b"k"
print("installed in a fresh venv and working:", syscancel.__file__)
' || fail "the installed package does not import or work"
echo "1 passed, 0 failed"
