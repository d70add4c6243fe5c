"""A reader thread blocked in syscancel.read, cancelled from the main thread.

Needs the syscancel package installed (make install, or
pip install --no-build-isolation ./python).
"""

import errno
import os
import threading
import time

import syscancel


def reader(fd, token, out):
    try:
        out.append(syscancel.read(fd, 64, token))
    except syscancel.Cancelled as e:
        out.append(e)


def blocked_in_read(thread, fd):
    """The thread sleeps in the kernel in a call on fd."""
    task = "/proc/self/task/%d/" % thread.native_id
    with open(task + "stat") as f:
        if f.read().rsplit(")", 1)[1].split()[0] != "S":
            return False
    with open(task + "syscall") as f:
        return f.read().split()[1:2] == [hex(fd)]


def main():
    r, w = os.pipe()                # nobody writes: a read blocks forever
    token = syscancel.Token()
    out = []
    t = threading.Thread(target=reader, args=(r, token, out))
    t.start()
    while not blocked_in_read(t, r):
        time.sleep(0.001)
    print("reader is blocked in read(); cancelling it")
    start = time.monotonic()
    token.cancel(errno.ESHUTDOWN)
    t.join()
    print("reader returned after %.1f ms with %r (cause %s)"
          % ((time.monotonic() - start) * 1e3, out[0],
             errno.errorcode[out[0].cause]))
    os.write(w, b"still here")      # the cancelled read consumed nothing
    print("the pipe still works: %r" % syscancel.read(r, 64))
    token.close()


if __name__ == "__main__":
    main()
