"""Scopes: any code of a thread made cancellable (sc_scope_enter/exit).

Inside a scope, once its token (or the token of an enclosing scope) is
cancelled or past its deadline, every blocking system call the thread makes
fails with ECANCELED (ETIMEDOUT for a deadline), so socket, urllib,
subprocess and time.sleep raise OSError.  Futex waits are never ended:
threading locks, Event.wait and queue.Queue.get stay blocked.

Nesting follows Trio: the cancellation is caught by the scope whose own
token was cancelled, the outermost one if several were; a cancel of an
enclosing scope passes through inner move_on_after blocks.  Leaving a scope
never replaces an exception the body raised for another reason.
"""

import errno
import threading
from types import TracebackType
from typing import List, Optional, Type

from ._syscancel import TimedOut, Token, scope_enter, scope_exit

_CANCEL_ERRNOS = (errno.ECANCELED, errno.ETIMEDOUT)
_local = threading.local()


def _stack() -> "List[CancelScope]":
    try:
        return _local.stack
    except AttributeError:
        _local.stack = []
        return _local.stack


def current_token() -> Optional[Token]:
    """The token of this thread's innermost scope, or None."""
    stack = _stack()
    return stack[-1].token if stack else None


def _is_cancellation(exc: BaseException) -> bool:
    """exc is, wraps or was raised while handling an ECANCELED/ETIMEDOUT."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _CANCEL_ERRNOS:
            return True
        reason = getattr(e, "reason", None)     # urllib.error.URLError
        if isinstance(reason, BaseException):
            todo.append(reason)
        todo += [e.__cause__, e.__context__]
    return False


class CancelScope:
    """A scope of token in this thread, entered by ``with``.

    catch: swallow the cancellation this scope's own token caused
    (move_on_after); fail: raise TimedOut instead (fail_after).
    """

    def __init__(self, token: Token, *, catch: bool = False,
                 fail: bool = False) -> None:
        if not isinstance(token, Token):
            raise TypeError("token must be a syscancel.Token")
        self.token = token
        self.cancelled_caught = False
        self._catch, self._fail = catch or fail, fail
        self._entered = False

    @property
    def deadline(self) -> Optional[float]:
        """The token's deadline in seconds of time.monotonic(), or None."""
        return self.token.deadline()

    @property
    def cancel_called(self) -> bool:
        return self.token.is_cancelled()

    def cancel(self) -> None:
        """Cancel the scope: its blocking calls fail from now on."""
        self.token.cancel()

    def __enter__(self) -> "CancelScope":
        if self._entered:
            raise RuntimeError("a CancelScope can be entered only once")
        scope_enter(self.token)
        self._entered = True
        _stack().append(self)
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]],
                 exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> bool:
        stack = _stack()
        if not stack or stack[-1] is not self:
            raise RuntimeError("scopes must be left in the order entered, "
                               "in the thread that entered them")
        caught = (exc is not None and self._catch and self._own_cancel(stack)
                  and _is_cancellation(exc))
        stack.pop()
        scope_exit()
        if not caught:
            return False
        self.cancelled_caught = True
        if self._fail:
            raise TimedOut(errno.ETIMEDOUT, "fail_after: the deadline passed") \
                from exc
        return True

    def _own_cancel(self, stack: "List[CancelScope]") -> bool:
        """This scope's token ended the body, not an enclosing scope's."""
        if not self.token.cause():
            return False
        return not any(s.token.cause() for s in stack[:-1])


def scope(token: Token) -> CancelScope:
    """Make the thread's blocking calls obey token; nothing is swallowed.

    Once token is cancelled, code in the block sees OSError ECANCELED
    (ETIMEDOUT past its deadline) from every blocking call.
    """
    return CancelScope(token)


def move_on_at(deadline: Optional[float]) -> CancelScope:
    """move_on_after with an absolute deadline of time.monotonic()."""
    tok = Token()
    tok.set_deadline(deadline)
    return CancelScope(tok, catch=True)


def move_on_after(seconds: Optional[float]) -> CancelScope:
    """A scope with its own deadline whose cancellation is swallowed.

    The block ends at the first blocking call after the deadline (or a
    cancel()); afterwards the scope's cancelled_caught says whether it did.
    None, or a time too far to count, means no deadline.
    """
    return CancelScope(Token(timeout=seconds), catch=True)


def fail_at(deadline: Optional[float]) -> CancelScope:
    """fail_after with an absolute deadline of time.monotonic()."""
    tok = Token()
    tok.set_deadline(deadline)
    return CancelScope(tok, fail=True)


def fail_after(seconds: Optional[float]) -> CancelScope:
    """As move_on_after, but raise TimedOut (a TimeoutError) instead."""
    return CancelScope(Token(timeout=seconds), fail=True)
