"""Cancel a blocking system call running in another Python thread.

A ctypes binding for the syscancel C library.  Python retries EINTR
(PEP 475), so a thread blocked in os.read() cannot be woken from another
thread; a thread blocked in syscancel.read() can::

    tok = syscancel.Token()
    # reader thread
    try:
        data = syscancel.read(fd, 4096, tok)
    except syscancel.Cancelled:
        ...
    # any other thread
    tok.cancel()

Results: the call's value on success; Cancelled (an OSError, errno
ECANCELED) if a token in the chain was cancelled; TimedOut (a TimeoutError,
errno ETIMEDOUT) if the chain's deadline passed; OSError(errno) otherwise.
Cancelled and TimedOut mean the call had no effect: no byte was read or
written.

The library is loaded from $SYSCANCEL_LIBRARY (a path), else the one
ctypes.util.find_library("syscancel") finds, else "libsyscancel.so.0".
Foreign calls release the GIL, so other threads run (and may cancel) while
a call blocks.  A call blocked in the main thread is not interrupted by
Ctrl-C (Python's signal handlers run only between bytecodes): block in
worker threads and cancel their tokens from the main thread or a handler.
Sockets must be in blocking mode (no settimeout); use a token deadline.

Code that knows nothing of syscancel (socket, urllib, a C extension) is
cancelled through a scope: inside ``with syscancel.scope(tok):``, once tok
is cancelled, every blocking system call of that thread fails with OSError
ECANCELED (ETIMEDOUT past the deadline) until the scope is left::

    with syscancel.scope(tok):
        data = sock.recv(4096)      # OSError(ECANCELED) once tok.cancel()
"""

import ctypes
import ctypes.util
import errno
import math
import os
import socket

__all__ = ["Token", "Cancelled", "TimedOut", "now_ns", "read", "write",
           "recv", "send", "accept", "sleep", "poll", "scope", "scope_enter",
           "scope_exit", "NO_DEADLINE"]

NO_DEADLINE = 2**63 - 1
_OK, _ERROR, _CANCELLED, _TIMEDOUT = range(4)


def _load():
    path = (os.environ.get("SYSCANCEL_LIBRARY")
            or ctypes.util.find_library("syscancel")
            or "libsyscancel.so.0")
    try:
        return ctypes.CDLL(path)    # CDLL, not PyDLL: releases the GIL
    except OSError as e:
        raise ImportError("syscancel: cannot load the C library %r (%s); "
                          "set SYSCANCEL_LIBRARY to the path of "
                          "libsyscancel.so" % (path, e)) from e


class _Token(ctypes.Structure):
    _fields_ = [("parent", ctypes.c_void_p), ("deadline", ctypes.c_int64),
                ("state", ctypes.c_int), ("cause", ctypes.c_int),
                ("children", ctypes.c_int), ("user", ctypes.c_int)]


class _Result(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("error", ctypes.c_int),
                ("value", ctypes.c_long)]


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short),
                ("revents", ctypes.c_short)]


_lib = _load()
_TP = ctypes.POINTER(_Token)
_int, _i64 = ctypes.c_int, ctypes.c_int64
_vp, _sz = ctypes.c_void_p, ctypes.c_size_t
for _name, _res, _args in [
        ("sc_token_init", _int, [_TP, _TP]),
        ("sc_token_destroy", _int, [_TP]),
        ("sc_token_set_deadline", _int, [_TP, _i64]),
        ("sc_token_set_timeout", _int, [_TP, _i64]),
        ("sc_token_deadline", _i64, [_TP]),
        ("sc_cancel", _int, [_TP]),
        ("sc_cancel_cause", _int, [_TP, _int]),
        ("sc_token_cause", _int, [_TP]),
        ("sc_is_cancelled", ctypes.c_bool, [_TP]),
        ("sc_now_ns", _i64, []),
        ("sc_read", _Result, [_TP, _int, _vp, _sz]),
        ("sc_write", _Result, [_TP, _int, _vp, _sz]),
        ("sc_recv", _Result, [_TP, _int, _vp, _sz, _int]),
        ("sc_send", _Result, [_TP, _int, _vp, _sz, _int]),
        ("sc_accept", _Result, [_TP, _int, _vp, _vp, _int]),
        ("sc_poll", _Result, [_TP, ctypes.POINTER(_PollFd), ctypes.c_ulong,
                              _int]),
        ("sc_sleep", _Result, [_TP, _i64]),
        ("sc_scope_enter", _int, [_TP]),
        ("sc_scope_exit", _int, [])]:
    _f = getattr(_lib, _name)
    _f.restype, _f.argtypes = _res, _args
del _name, _res, _args, _f
if ctypes.sizeof(_Token) != 32:
    raise ImportError("syscancel: unexpected sc_token layout")


class Cancelled(OSError):
    """The call was cancelled (errno ECANCELED); cause: the token's cause."""

    cause = 0


class TimedOut(TimeoutError):
    """The token chain's deadline passed before the call completed."""


def _check(err):
    if err:
        raise OSError(err, os.strerror(err))


def _ns(seconds):
    return None if seconds is None else int(round(seconds * 1e9))


class Token:
    """A cancellation scope (sc_token), optionally a child of parent."""

    def __init__(self, parent=None, timeout=None):
        self._tok = _Token()
        self._parent = parent       # keeps the parent's memory alive
        self._closed = True
        _check(_lib.sc_token_init(self._tok, _ptr(parent)))
        self._closed = False
        if timeout is not None:
            try:
                self.set_timeout(timeout)
            except BaseException:
                self.close()
                raise

    def cancel(self, cause=None):
        """Cancel every call under this token, now and later (sticky)."""
        if cause is None:
            _check(_lib.sc_cancel(self._tok))
        else:
            _check(_lib.sc_cancel_cause(self._tok, cause))

    def is_cancelled(self):
        return _lib.sc_is_cancelled(self._tok)

    def cause(self):
        """The cancel cause in the chain, ETIMEDOUT past the deadline, or 0."""
        return _lib.sc_token_cause(self._tok)

    def set_deadline_ns(self, deadline_ns):
        """Absolute CLOCK_MONOTONIC deadline (see now_ns); None clears it."""
        if deadline_ns is None:
            deadline_ns = NO_DEADLINE
        _check(_lib.sc_token_set_deadline(self._tok, deadline_ns))

    def set_timeout(self, seconds):
        """Deadline = now + seconds; None clears it."""
        ns = _ns(seconds)
        _check(_lib.sc_token_set_timeout(
            self._tok, NO_DEADLINE if ns is None else ns))

    def deadline(self):
        """The chain's earliest deadline in ns, or None."""
        dl = _lib.sc_token_deadline(self._tok)
        return None if dl == NO_DEADLINE else dl

    def close(self):
        """Destroy the token; OSError EBUSY while a call or child uses it."""
        if not self._closed:
            _check(_lib.sc_token_destroy(self._tok))
            self._closed = True
            self._parent = None

    destroy = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            if not self._closed:
                _lib.sc_token_destroy(self._tok)
        except Exception:
            pass


def _ptr(token):
    if token is None:
        return None
    if not isinstance(token, Token):
        raise TypeError("token must be a syscancel.Token or None")
    return ctypes.byref(token._tok)


def _fd(obj):
    return obj if isinstance(obj, int) else obj.fileno()


def _result(r, token):
    if r.status == _OK:
        return r.value
    if r.status == _CANCELLED:
        e = Cancelled(errno.ECANCELED, os.strerror(errno.ECANCELED))
        e.cause = token.cause() if token is not None else 0
        raise e
    if r.status == _TIMEDOUT:
        raise TimedOut(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
    raise OSError(r.error, os.strerror(r.error))


def now_ns():
    """CLOCK_MONOTONIC in nanoseconds (the clock of deadlines)."""
    return _lib.sc_now_ns()


def read(fd, n, token=None):
    """Read up to n bytes from fd (an int or an object with fileno())."""
    buf = ctypes.create_string_buffer(n)
    got = _result(_lib.sc_read(_ptr(token), _fd(fd), buf, n), token)
    return buf.raw[:got]


def write(fd, data, token=None):
    """Write data (bytes-like) to fd; return the number of bytes written."""
    data = bytes(data)
    return _result(_lib.sc_write(_ptr(token), _fd(fd), data, len(data)),
                   token)


def recv(sock, n, flags=0, token=None):
    """Receive up to n bytes from a blocking socket (or its fd)."""
    buf = ctypes.create_string_buffer(n)
    got = _result(_lib.sc_recv(_ptr(token), _fd(sock), buf, n, flags), token)
    return buf.raw[:got]


def send(sock, data, flags=0, token=None):
    """Send data on a blocking socket (or its fd); return bytes sent."""
    data = bytes(data)
    return _result(_lib.sc_send(_ptr(token), _fd(sock), data, len(data),
                                flags), token)


def accept(sock, flags=socket.SOCK_CLOEXEC, token=None):
    """Accept a connection on a listening socket; return the new fd."""
    return _result(_lib.sc_accept(_ptr(token), _fd(sock), None, None, flags),
                   token)


def sleep(seconds, token=None):
    """Sleep for seconds, or until the token is cancelled or times out."""
    _result(_lib.sc_sleep(_ptr(token), _ns(seconds)), token)


def poll(fds, timeout=None, token=None):
    """Poll [(fd, events), ...]; timeout in seconds, None: forever.

    Return [(fd, revents), ...] for the ready descriptors, like
    select.poll().poll().
    """
    arr = (_PollFd * len(fds))(*[_PollFd(_fd(f), ev, 0) for f, ev in fds])
    ms = -1 if timeout is None else max(0, math.ceil(timeout * 1000))
    _result(_lib.sc_poll(_ptr(token), arr, len(fds), ms), token)
    return [(p.fd, p.revents) for p in arr if p.revents]


def scope_enter(token):
    """Open a scope of token in this thread (sc_scope_enter).

    Until the matching scope_exit(), once the token is cancelled or its
    deadline passes, every blocking system call this thread makes fails
    with OSError ECANCELED (ETIMEDOUT for the deadline).  Keep the token
    alive and open while the scope is open (closing it raises EBUSY).
    """
    _check(_lib.sc_scope_enter(_ptr(token)))


def scope_exit():
    """Leave this thread's innermost scope; OSError EINVAL if none is open."""
    _check(_lib.sc_scope_exit())


class scope:
    """Context manager: scope_enter(token) on entry, scope_exit() on exit."""

    def __init__(self, token):
        if not isinstance(token, Token):
            raise TypeError("token must be a syscancel.Token")
        self.token = token

    def __enter__(self):
        scope_enter(self.token)
        return self.token

    def __exit__(self, *exc):
        scope_exit()


# Introspection (sc_snapshot): what every thread is blocked in.

class _CallInfo(ctypes.Structure):
    _fields_ = [("tid", ctypes.c_int), ("syscall", ctypes.c_long),
                ("token", ctypes.c_void_p), ("started_ns", ctypes.c_int64),
                ("deadline_ns", ctypes.c_int64), ("cancelled", ctypes.c_int),
                ("in_scope", ctypes.c_int), ("arg", ctypes.c_long),
                ("cause", ctypes.c_int)]


_lib.sc_snapshot.restype = ctypes.c_int
_lib.sc_snapshot.argtypes = [ctypes.POINTER(_CallInfo), ctypes.c_int]
_lib.sc_syscall_name.restype = ctypes.c_char_p
_lib.sc_syscall_name.argtypes = [ctypes.c_long]


def snapshot():
    """Every syscancel call in flight, and every thread inside a scope.

    A list of dicts: tid, syscall (its name, or its number if unknown; None
    for a scope with no syscall seen), arg (the first argument: the fd for
    most), token (its address, an int), age_s (seconds: at least since the
    first snapshot that saw the call), deadline_ns (None if none),
    cancelled, cause and in_scope.  See sc_snapshot(3).
    """
    n = 64
    while True:
        buf = (_CallInfo * n)()
        got = _lib.sc_snapshot(buf, n)
        if got <= n:
            break
        n = got + 16
    now = _lib.sc_now_ns()
    out = []
    for c in buf[:max(got, 0)]:
        name = _lib.sc_syscall_name(c.syscall) if c.syscall >= 0 else None
        out.append({
            "tid": c.tid,
            "syscall": name.decode() if name else
                       (c.syscall if c.syscall >= 0 else None),
            "arg": c.arg,
            "token": c.token or 0,
            "age_s": max(now - c.started_ns, 0) / 1e9,
            "deadline_ns": None if c.deadline_ns == NO_DEADLINE
                           else c.deadline_ns,
            "cancelled": bool(c.cancelled),
            "cause": c.cause,
            "in_scope": bool(c.in_scope)})
    return out


__all__.append("snapshot")
