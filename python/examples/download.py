"""Download URLs in worker threads; Ctrl-C stops every download at once.

    python3 download.py [-o DIR] [-j N] [--timeout SECONDS] URL...

The workers run urllib inside scopes of one root token, which a C-level
SIGINT handler cancels (cancel_on_signal): a worker blocked in connect or
recv fails at once, even before Python's own handler runs in the main
thread, which then sees KeyboardInterrupt.  Exit status 130 after Ctrl-C.
"""

import argparse
import concurrent.futures
import os
import signal
import sys
import time
import urllib.parse
import urllib.request

import syscancel


def fetch(url, outdir, timeout, root):
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "index.html"
    path = os.path.join(outdir, name)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with syscancel.scope(root), syscancel.fail_after(timeout):
        with opener.open(url, timeout=None) as resp, open(path, "wb") as out:
            while True:
                chunk = resp.read(65536)
                if not chunk:
                    return path
                out.write(chunk)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("urls", nargs="+", metavar="URL")
    ap.add_argument("-o", "--output", default=".", help="directory for the files")
    ap.add_argument("-j", "--jobs", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds for each download (default: none)")
    args = ap.parse_args()

    root = syscancel.Token()
    syscancel.cancel_on_signal(root, signal.SIGINT)
    pool = concurrent.futures.ThreadPoolExecutor(args.jobs)
    failed = 0
    try:
        futures = {pool.submit(fetch, u, args.output, args.timeout, root): u
                   for u in args.urls}
        for f in concurrent.futures.as_completed(futures):
            try:
                print("%s -> %s" % (futures[f], f.result()), flush=True)
            except OSError as e:
                failed += 1
                print("%s: %s" % (futures[f], e), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        t0 = time.monotonic()
        pool.shutdown(wait=True)
        print("interrupted: every worker stopped in %.1f ms"
              % ((time.monotonic() - t0) * 1e3), file=sys.stderr, flush=True)
        return 130
    pool.shutdown()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
