"""Worker threads whose work is cancelled, not abandoned.

to_thread() runs a function in the event loop's executor inside a scope
that cancelling the awaiting task cancels; ThreadPoolExecutor's futures
cancel a running call's scope.  A call cancelled this way sees OSError
ECANCELED from its next blocking system call and the thread is free again.
"""

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, RUNNING
from typing import Any, Callable, Set, TypeVar

from ._scope import scope
from ._syscancel import Token

T = TypeVar("T")


def _in_scope(token: Token, fn: Callable[..., T], *args: Any,
              **kwargs: Any) -> T:
    with scope(token):
        return fn(*args, **kwargs)


async def to_thread(func: Callable[..., T], /, *args: Any,
                    **kwargs: Any) -> T:
    """As asyncio.to_thread, but a cancelled task cancels the thread's work.

    When the awaiting task is cancelled (or an asyncio.timeout expires),
    the worker's scope is cancelled and the task waits for the worker to
    leave it, so the thread is free when the CancelledError arrives.  A
    second cancel while waiting abandons the worker.
    """
    loop = asyncio.get_running_loop()
    token = Token()
    call = functools.partial(contextvars.copy_context().run, _in_scope,
                             token, func, *args, **kwargs)
    fut = loop.run_in_executor(None, call)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        token.cancel()
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            raise
        except BaseException:
            pass
        raise


class _Future(concurrent.futures.Future):
    """A future whose cancel() also cancels the call while it runs."""

    _sc_token: Token
    _sc_cancelled = False

    def cancel(self) -> bool:
        """Cancel the call: pending, it never runs; running, its scope is
        cancelled and the future ends cancelled whatever the call returns.
        False once it has finished."""
        with self._condition:
            if self._state == RUNNING:
                self._sc_cancelled = True
                self._sc_token.cancel()
                return True
        return super().cancel()

    def _end_cancelled(self) -> bool:
        with self._condition:
            if not self._sc_cancelled:
                return False
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()
        return True

    def set_result(self, result: Any) -> None:
        if not self._end_cancelled():
            super().set_result(result)

    def set_exception(self, exception: BaseException) -> None:
        if not self._end_cancelled():
            super().set_exception(exception)


class ThreadPoolExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ThreadPoolExecutor whose running work can be cancelled.

    Each call runs in a scope of its own token: Future.cancel() of a running
    call cancels that scope, and shutdown(cancel_futures=True) cancels the
    running calls as well as the pending ones.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sc_lock = threading.Lock()
        self._sc_futures: "Set[_Future]" = set()

    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> "concurrent.futures.Future[T]":
        token = Token()
        f = super().submit(_in_scope, token, fn, *args, **kwargs)
        f._sc_token = token
        f.__class__ = _Future
        with self._sc_lock:
            self._sc_futures.add(f)
        f.add_done_callback(self._forget)
        return f

    def _forget(self, f: "concurrent.futures.Future[Any]") -> None:
        with self._sc_lock:
            self._sc_futures.discard(f)

    def shutdown(self, wait: bool = True, *,
                 cancel_futures: bool = False) -> None:
        if cancel_futures:
            super().shutdown(wait=False, cancel_futures=True)
            with self._sc_lock:
                running = list(self._sc_futures)
            for f in running:
                f.cancel()
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
