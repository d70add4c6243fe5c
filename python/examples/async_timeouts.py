"""asyncio timeouts that free their threads.

    python3 async_timeouts.py [N]

N tasks each run a blocking socket read in a worker thread under
asyncio.wait_for with a 0.2 s timeout, against a local server that accepts
and never answers.  With asyncio.to_thread the timeouts fire but every
worker stays blocked in recv; with syscancel.to_thread the timeout cancels
the worker's scope, so all threads are free when the tasks end.
"""

import asyncio
import concurrent.futures
import socket
import sys
import threading

import syscancel


def blocked_recv(port, busy):
    with socket.create_connection(("127.0.0.1", port)) as s:
        busy.add(threading.get_ident())
        try:
            return s.recv(1)
        finally:
            busy.discard(threading.get_ident())


async def run(to_thread, n):
    """(how many timed out, how many workers were still blocked after)."""
    busy = set()
    loop = asyncio.get_running_loop()
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(n))
    with socket.create_server(("127.0.0.1", 0), backlog=2 * n) as mute:
        port = mute.getsockname()[1]

        async def task():
            try:
                await asyncio.wait_for(to_thread(blocked_recv, port, busy), 0.2)
            except asyncio.TimeoutError:
                return "timed out"

        results = await asyncio.gather(*[task() for _ in range(n)])
        still = len(busy)
    # Closing the server resets its connections: stuck workers end too.
    return results.count("timed out"), still


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    status = 0
    for name, fn in (("asyncio.to_thread", asyncio.to_thread),
                     ("syscancel.to_thread", syscancel.to_thread)):
        timed_out, still = asyncio.run(run(fn, n))
        print("%-20s %d of %d timed out; threads still blocked: %d"
              % (name, timed_out, n, still), flush=True)
        if fn is syscancel.to_thread and (still or timed_out != n):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
