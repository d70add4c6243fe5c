"""Tests of the Python binding (python/syscancel.py); run by tests/python.sh.

The cancel tests also check that foreign calls release the GIL: were it
held, the main thread could not run while the reader blocks, and the
watchdog below would end the run with a traceback.
"""

import ctypes
import errno
import faulthandler
import http.server
import os
import platform
import socket
import sys
import threading
import time
import unittest
import urllib.request

import syscancel

BOUND = 10.0        # seconds: generous bound for anything that should be quick


class Call(threading.Thread):
    """Runs fn(*args) in a thread; keeps its result or exception."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args = fn, args
        self.result = self.error = None

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except BaseException as e:
            self.error = e


def wait_blocked(thread, fd=None):
    """Wait until thread sleeps in the kernel (in a call on fd, if given).

    State 'S' alone could also be a wait for the GIL, so when
    /proc/.../syscall is readable its first argument must be fd.
    """
    task = "/proc/self/task/%d/" % thread.native_id
    end = time.monotonic() + BOUND
    while time.monotonic() < end:
        with open(task + "stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state == "S":
            if fd is None:
                return
            try:
                with open(task + "syscall") as f:
                    args = f.read().split()
            except OSError:
                return
            if len(args) > 1 and args[1] == hex(fd):
                return
        os.sched_yield()
    raise AssertionError("thread %d never blocked" % thread.native_id)


SYS_RECVFROM = 45   # x86_64: socket.recv() and http.client's reads block here


def wait_in_syscall(thread, nr):
    """Wait until thread sleeps in syscall number nr.

    Without /proc/.../syscall, state 'S' is all there is to go on.
    """
    task = "/proc/self/task/%d/" % thread.native_id
    end = time.monotonic() + BOUND
    while time.monotonic() < end:
        with open(task + "stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state == "S":
            try:
                with open(task + "syscall") as f:
                    fields = f.read().split()
            except OSError:
                return
            if fields and fields[0] == str(nr):
                return
        os.sched_yield()
    raise AssertionError("thread %d never blocked in syscall %d"
                         % (thread.native_id, nr))


class TestPython(unittest.TestCase):
    def setUp(self):
        self.r, self.w = os.pipe()

    def tearDown(self):
        os.close(self.r)
        os.close(self.w)

    def start_blocked(self, fn, *args, fd=None):
        call = Call(fn, *args)
        call.start()
        wait_blocked(call, fd)
        return call

    def finish(self, call):
        call.join(BOUND)
        self.assertFalse(call.is_alive(), "call did not return")
        return call.error

    def test_cancel_blocked_read(self):
        with syscancel.Token() as tok:
            call = self.start_blocked(syscancel.read, self.r, 16, tok,
                                      fd=self.r)
            t0 = time.monotonic()
            tok.cancel()
            err = self.finish(call)
            self.assertLess(time.monotonic() - t0, 1.0)
            self.assertIsInstance(err, syscancel.Cancelled)
            self.assertEqual(err.errno, errno.ECANCELED)
            self.assertTrue(tok.is_cancelled())
            # Nothing was consumed; the cancel is sticky and has no effect.
            os.write(self.w, b"x")
            with self.assertRaises(syscancel.Cancelled):
                syscancel.read(self.r, 16, tok)
        self.assertEqual(syscancel.read(self.r, 16), b"x")

    def test_snapshot_lists_a_blocked_read_with_its_fd_and_token(self):
        with syscancel.Token(timeout=3600) as tok:
            call = self.start_blocked(syscancel.read, self.r, 16, tok,
                                      fd=self.r)
            mine = [c for c in syscancel.snapshot()
                    if c["syscall"] == "read" and c["arg"] == self.r]
            self.assertEqual(len(mine), 1)
            self.assertEqual(mine[0]["token"],
                             ctypes.addressof(tok._tok))
            self.assertIsNotNone(mine[0]["deadline_ns"])
            self.assertFalse(mine[0]["in_scope"])
            tok.cancel()
            self.assertIsInstance(self.finish(call), syscancel.Cancelled)
        self.assertEqual([c for c in syscancel.snapshot()
                          if c["arg"] == self.r], [])

    def test_cancel_blocked_recv(self):
        a, b = socket.socketpair()
        with a, b, syscancel.Token() as tok:
            call = self.start_blocked(syscancel.recv, a, 16, 0, tok,
                                      fd=a.fileno())
            tok.cancel()
            self.assertIsInstance(self.finish(call), syscancel.Cancelled)
            self.assertEqual(syscancel.send(b, b"ping"), 4)
            self.assertEqual(syscancel.recv(a, 16), b"ping")

    def test_timeout(self):
        with syscancel.Token(timeout=0.1) as tok:
            t0 = time.monotonic()
            with self.assertRaises(syscancel.TimedOut) as cm:
                syscancel.read(self.r, 16, tok)
            elapsed = time.monotonic() - t0
        self.assertIsInstance(cm.exception, TimeoutError)
        self.assertEqual(cm.exception.errno, errno.ETIMEDOUT)
        self.assertGreaterEqual(elapsed, 0.09)
        self.assertLess(elapsed, BOUND)

    def test_normal_read(self):
        with syscancel.Token(timeout=BOUND) as tok:
            self.assertEqual(syscancel.write(self.w, b"hello", tok), 5)
            self.assertEqual(syscancel.read(self.r, 16, tok), b"hello")
            syscancel.sleep(0.001, tok)

    def test_cause(self):
        with syscancel.Token() as tok:
            call = self.start_blocked(syscancel.read, self.r, 1, tok,
                                      fd=self.r)
            tok.cancel(errno.ESHUTDOWN)
            err = self.finish(call)
            self.assertIsInstance(err, syscancel.Cancelled)
            self.assertEqual(err.cause, errno.ESHUTDOWN)
            tok.cancel(errno.EPIPE)         # the first cause wins
            self.assertEqual(tok.cause(), errno.ESHUTDOWN)
            with syscancel.Token(tok) as child:
                self.assertTrue(child.is_cancelled())
                self.assertEqual(child.cause(), errno.ESHUTDOWN)

    def test_bad_fd(self):
        with self.assertRaises(OSError) as cm:
            syscancel.read(-1, 1, syscancel.Token())
        self.assertEqual(cm.exception.errno, errno.EBADF)
        self.assertNotIsInstance(cm.exception, syscancel.Cancelled)

    def test_destroy_in_use(self):
        tok = syscancel.Token()
        call = self.start_blocked(syscancel.read, self.r, 1, tok, fd=self.r)
        with self.assertRaises(OSError) as cm:
            tok.close()
        self.assertEqual(cm.exception.errno, errno.EBUSY)
        tok.cancel()
        self.assertIsInstance(self.finish(call), syscancel.Cancelled)
        child = syscancel.Token(tok)
        with self.assertRaises(OSError) as cm:
            tok.close()
        self.assertEqual(cm.exception.errno, errno.EBUSY)
        child.close()
        tok.close()
        tok.close()                         # idempotent

    def test_token_api(self):
        with syscancel.Token() as tok:
            self.assertIsNone(tok.deadline())
            dl = syscancel.now_ns() + 10**9
            tok.set_deadline_ns(dl)
            self.assertEqual(tok.deadline(), dl)
            with syscancel.Token(tok, timeout=100) as child:
                self.assertEqual(child.deadline(), dl)
            tok.set_timeout(None)
            self.assertIsNone(tok.deadline())
            with self.assertRaises(OSError) as cm:
                tok.set_timeout(-1)
            self.assertEqual(cm.exception.errno, errno.EINVAL)
            with self.assertRaises(TypeError):
                syscancel.read(self.r, 1, token=object())


def errno_of(e):
    """e's errno, or that of the reason urllib wrapped (URLError)."""
    return e.errno if e.errno is not None else getattr(e.reason, "errno", None)


class OkHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def read_request(conn):
    """Read an HTTP request's head: the client has sent all it will."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise AssertionError("request cut short: %r" % data)
        data += chunk
    return data


# No proxy from the environment: every request stays on 127.0.0.1.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@unittest.skipUnless(platform.machine() == "x86_64", "scopes need x86_64")
class TestScope(unittest.TestCase):
    """Scopes cancel code that knows nothing of syscancel: socket, urllib."""

    def test_scope_api_errors(self):
        with self.assertRaises(OSError) as cm:
            syscancel.scope_exit()
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        tok = syscancel.Token()
        with syscancel.scope(tok):
            with self.assertRaises(OSError) as cm:
                tok.close()
            self.assertEqual(cm.exception.errno, errno.EBUSY)
        tok.close()

    def test_recv_in_a_scope_fails_with_ECANCELED_and_takes_nothing(self):
        a, b = socket.socketpair()
        ended = threading.Event()
        out = {}

        def worker():
            with syscancel.scope(tok):
                try:
                    out["data"] = a.recv(16)
                except OSError as e:
                    out["error"] = e
                out["t"] = time.monotonic()
                ended.set()
            return a.recv(16)

        with a, b, syscancel.Token() as tok:
            call = Call(worker)
            call.start()
            wait_blocked(call, a.fileno())
            t0 = time.monotonic()
            tok.cancel()
            self.assertTrue(ended.wait(BOUND), "recv did not return")
            print("\nsock.recv: %r %.3f ms after the cancel"
                  % (out.get("error"), (out["t"] - t0) * 1e3))
            self.assertNotIn("data", out)
            self.assertIsInstance(out["error"], OSError)
            self.assertEqual(out["error"].errno, errno.ECANCELED)
            b.sendall(b"x")                 # outside the scope: read whole
            self.assertIsNone(self.finish(call))
            self.assertEqual(call.result, b"x")

    def test_recv_in_a_scope_fails_with_ETIMEDOUT_at_the_deadline(self):
        a, b = socket.socketpair()

        def worker():
            with syscancel.scope(tok):
                try:
                    a.recv(16)
                finally:
                    ended.append(time.monotonic())

        ended = []
        with a, b, syscancel.Token() as tok:
            t0 = time.monotonic()
            tok.set_timeout(0.1)
            call = Call(worker)
            call.start()
            err = self.finish(call)
            elapsed = ended[0] - t0
            print("\nsock.recv: %r after %.3f ms, deadline 100 ms"
                  % (err, elapsed * 1e3))
            self.assertIsInstance(err, OSError)
            self.assertEqual(err.errno, errno.ETIMEDOUT)
            self.assertGreaterEqual(elapsed, 0.1)
            b.sendall(b"y")
            self.assertEqual(a.recv(16), b"y")

    def test_urlopen_in_a_scope_is_cancelled_and_works_after_it(self):
        mute = socket.create_server(("127.0.0.1", 0))
        httpd = http.server.HTTPServer(("127.0.0.1", 0), OkHandler)
        server = threading.Thread(target=httpd.serve_forever, daemon=True)
        server.start()
        ended = threading.Event()
        out = {}

        def worker():
            with syscancel.scope(tok):
                try:
                    _opener.open("http://127.0.0.1:%d/"
                                 % mute.getsockname()[1], timeout=None)
                except OSError as e:
                    out["error"] = e
                out["t"] = time.monotonic()
                ended.set()
            with _opener.open("http://127.0.0.1:%d/"
                              % httpd.server_address[1], timeout=BOUND) as r:
                return r.status, r.read()

        try:
            with mute, syscancel.Token() as tok:
                call = Call(worker)
                call.start()
                mute.settimeout(BOUND)
                conn, _ = mute.accept()
                with conn:
                    conn.settimeout(BOUND)
                    read_request(conn)
                    wait_in_syscall(call, SYS_RECVFROM)
                    t0 = time.monotonic()
                    tok.cancel()
                    self.assertTrue(ended.wait(BOUND),
                                    "urlopen did not return")
                print("\nurlopen: %r %.3f ms after the cancel"
                      % (out.get("error"), (out["t"] - t0) * 1e3))
                self.assertIsInstance(out.get("error"), OSError)
                self.assertEqual(errno_of(out["error"]), errno.ECANCELED)
                self.assertIsNone(self.finish(call))
                self.assertEqual(call.result, (200, b"ok"))
        finally:
            httpd.shutdown()
            httpd.server_close()

    def finish(self, call):
        call.join(BOUND)
        self.assertFalse(call.is_alive(), "call did not return")
        return call.error


def main():
    faulthandler.dump_traceback_later(120, exit=True)
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite([loader.loadTestsFromTestCase(TestPython),
                                loader.loadTestsFromTestCase(TestScope)])
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = (len(result.failures) + len(result.errors)
              + len(result.unexpectedSuccesses))
    passed = result.testsRun - failed - len(result.skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
