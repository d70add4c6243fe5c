"""Per-call cost of syscancel.read against os.read, measured in one run.

    python3 bench/python_read.py [CALLS]   (with the package importable)

A 1-byte read of a pipe that always has data, with no token and with a
token, each against os.read in the same process: the best of 31
interleaved rounds.
"""

import os
import sys
import timeit

import syscancel


def one_round(timer, calls, refill):
    os.write(refill, b"x" * calls)
    return timer.timeit(calls) / calls


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    r, w = os.pipe()
    os.set_blocking(w, True)
    import fcntl
    fcntl.fcntl(w, 1031, 1 << 20)       # F_SETPIPE_SZ: room for a round
    tok = syscancel.Token()
    rows = [("os.read", os.read),
            ("syscancel.read", syscancel.read),
            ("syscancel.read(token)", lambda fd, n: syscancel.read(fd, n, tok))]
    # A timer per row: each loop is its own code, specialised for its call.
    timers = [timeit.Timer("fn(fd, 1)", globals={"fn": fn, "fd": r})
              for _, fn in rows]
    best = [float("inf")] * len(rows)
    for _ in range(31):                 # rounds interleaved: drift hits all
        for i, timer in enumerate(timers):
            best[i] = min(best[i], one_round(timer, calls, w))
    for (name, _), t in zip(rows, best):
        print("%-24s %7.0f ns/call  %.2fx os.read" % (name, t * 1e9,
                                                       t / best[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
