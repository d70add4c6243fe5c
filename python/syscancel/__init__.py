"""Cancel blocking system calls in Python threads, and any code in a scope.

Python retries EINTR (PEP 475), so a thread blocked in a system call cannot
be woken from another thread.  syscancel's calls can, through a Token::

    tok = syscancel.Token()
    data = syscancel.read(fd, 4096, tok)    # another thread: tok.cancel()

and so can plain Python code, inside a scope::

    with syscancel.move_on_after(2.0) as s:
        data = sock.recv(4096)
    if s.cancelled_caught:
        ...

Every call takes its required arguments, then the token, then its options
by keyword; durations are seconds (int or float).  A call raises Cancelled
(an OSError, errno ECANCELED) when a token in its chain was cancelled,
TimedOut (a TimeoutError, errno ETIMEDOUT) when the chain's deadline
passed, OSError otherwise; Cancelled and TimedOut mean it had no effect.
See the README's Python section for scopes, asyncio, executors and Ctrl-C.
"""

try:
    from . import _syscancel
except ImportError as _e:
    import glob as _glob
    import os as _os
    _here = _os.path.dirname(_os.path.abspath(__file__))
    if not _glob.glob(_os.path.join(_here, "_syscancel*.so")):
        _why = ("the C extension is not built in %s (this is the source "
                "directory?): install the package with pip or make install"
                % _here)
    else:
        _why = ("the C extension failed to load (%s).  It is linked against "
                "libsyscancel.so.0 in the library directory it was built "
                "for; install that library again, or rebuild the package "
                "against the library where it is now" % _e)
    raise ImportError("syscancel: " + _why) from _e

from ._syscancel import (  # noqa: F401
    BACKEND_DEFAULT, BACKEND_SIGNAL, BACKEND_URING, NO_DEADLINE, SCOPE_MAX,
    Cancelled, TimedOut, Token, accept, cancel_on_signal, connect, epoll_wait,
    flock, init, lockf, now, now_ns, open, poll, pread, pwrite, read,
    readinto, readv, recv, recv_into, recvfrom, recvfrom_into, recvmsg,
    scope_enter, scope_exit, send, sendall, sendmsg, sendto, signal_number,
    sleep, snapshot, syscall, thread_backend, waitpid, write, writev)
from ._scope import (  # noqa: F401
    CancelScope, current_token, fail_after, fail_at, move_on_after, move_on_at,
    scope)
from ._futures import ThreadPoolExecutor, to_thread  # noqa: F401

# open is left out of __all__: a star import must not replace the builtin.
__all__ = [
    "BACKEND_DEFAULT", "BACKEND_SIGNAL", "BACKEND_URING", "NO_DEADLINE",
    "SCOPE_MAX", "CancelScope", "Cancelled", "ThreadPoolExecutor", "TimedOut",
    "Token", "accept", "cancel_on_signal", "connect", "current_token",
    "epoll_wait", "fail_after", "fail_at", "flock", "init", "lockf",
    "move_on_after", "move_on_at", "now", "now_ns", "poll", "pread",
    "pwrite", "read", "readinto", "readv", "recv", "recv_into", "recvfrom",
    "recvfrom_into", "recvmsg", "scope", "scope_enter", "scope_exit", "send",
    "sendall", "sendmsg", "sendto", "signal_number", "sleep", "snapshot", "syscall",
    "thread_backend", "to_thread", "waitpid", "write", "writev",
]
