"""The C extension's build: where libsyscancel's header and library are.

Looked for in this order: $SYSCANCEL_INCLUDEDIR and $SYSCANCEL_LIBDIR (at
build time only), pkg-config's syscancel, the source tree around this
directory once the library is built there.  The extension is linked with an
rpath to that library directory, so it needs nothing at run time.
"""

import os
import shutil
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def pkg_config(var):
    if not shutil.which("pkg-config"):
        return None
    try:
        out = subprocess.run(["pkg-config", "--variable=" + var, "syscancel"],
                             capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError:
        return None
    return out.stdout.strip() or None


def locate():
    inc = os.environ.get("SYSCANCEL_INCLUDEDIR")
    lib = os.environ.get("SYSCANCEL_LIBDIR")
    if inc and lib:
        return inc, lib
    inc, lib = pkg_config("includedir"), pkg_config("libdir")
    if inc and lib:
        return inc, lib
    top = os.path.dirname(HERE)
    if os.path.exists(os.path.join(top, ".libs", "libsyscancel.so")):
        return os.path.join(top, "include"), os.path.join(top, ".libs")
    raise SystemExit(
        "syscancel: libsyscancel not found.  Install the C library first "
        "(./configure && make && make install, so that pkg-config finds "
        "syscancel.pc), or set SYSCANCEL_INCLUDEDIR and SYSCANCEL_LIBDIR to "
        "the directories of syscancel.h and libsyscancel.so")


def extension():
    inc, lib = locate()
    if not os.path.exists(os.path.join(inc, "syscancel.h")):
        raise SystemExit("syscancel: no syscancel.h in %s" % inc)
    return Extension("syscancel._syscancel", ["syscancel/_syscancel.c"],
                     include_dirs=[inc], library_dirs=[lib],
                     runtime_library_dirs=[lib], libraries=["syscancel"],
                     extra_compile_args=["-std=gnu11"])


setup(ext_modules=[extension()])
