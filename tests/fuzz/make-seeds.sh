#!/bin/sh
# Writes the seed corpus of tests/fuzz/fuzz-api: each seed is a small program
# in the harness's format, one configuration byte (01: start from the token
# tree) then six-byte records, an operation and its five arguments.
#
# Operations: 00 init, 01 destroy, 02 cancel, 03 deadline, 04 query, 05 post,
# 06 collect, 07 settle, 08 write, 09 read, 0a fill, 0b shut, 0c poll,
# 0d wake, 0e sleep, 0f futex, 10 bad_call, 11 bad_api, 12 poke, 13 connect,
# 14 accept, 15 lock, 16 unlock, 17 backend.
# Calls handed to a worker (post: worker, kind, token, d, e): 00 read,
# 01 readv, 02 recv, 03 write, 04 send, 05 poll, 06 epoll_wait, 07 sleep,
# 08 futex_wait, 09 accept, 0a connect, 0b flock, 0c thread_backend.
# Tokens: 00-05 slots (tree: 1 < 0, 2 < 1, 4 < 3, 5 < 0), 06 never
# initialised, 07 NULL.  Channels: 00 small pipe, 01 pipe, 02 socket pair.
set -e

dir=${1:-$(dirname "$0")/corpus}
mkdir -p "$dir"

# seed NAME HEX...: the bytes, in hex, whitespace ignored.
seed() {
	name=$1
	shift
	out=
	for b in $*; do
		out="$out\\$(printf '%03o' "0x$b")"
	done
	printf "$out" > "$dir/$name"
}

# A blocked read, cancelled through an ancestor of its token.
seed cancel-blocked-read 01 \
	05 00 00 02 00 10 \
	07 00 00 00 00 00 \
	02 00 08 00 00 00 \
	06 00 00 00 00 00 \
	04 02 00 00 00 00

# Data written by this thread wakes a worker's read; the rest is read here.
seed data-wakes-read 01 \
	05 00 00 01 01 08 \
	07 00 00 00 00 00 \
	08 01 07 0a 00 00 \
	06 00 00 00 00 00 \
	09 01 07 10 00 00 \
	09 01 02 10 01 00

# A receive under a child whose parent gets a 50 us timeout, waited out.
seed deadline-recv 01 \
	03 03 02 01 00 00 \
	05 01 02 04 02 20 \
	07 01 00 00 00 00 \
	0e 07 03 00 00 00 \
	06 01 00 00 00 00 \
	04 04 00 00 00 00

# A full socket: a worker's send waits, is cancelled with a cause, and
# everything written is read back once.
seed blocked-send 01 \
	0a 02 00 00 00 00 \
	05 00 04 05 02 32 \
	07 00 00 00 00 00 \
	02 05 04 00 00 00 \
	06 00 00 00 00 00 \
	09 02 07 ff 02 00 \
	09 02 07 ff 03 00

# A worker on io_uring: its read is cancelled, then it sleeps until a
# deadline set while it sleeps.
seed uring-worker 01 \
	05 00 0c 07 02 00 \
	06 00 00 00 00 00 \
	05 00 00 02 00 10 \
	07 00 00 00 00 00 \
	02 01 04 00 00 00 \
	06 00 00 00 00 00 \
	05 00 07 03 00 05 \
	07 00 00 00 00 00 \
	03 03 08 00 00 00 \
	0e 07 03 00 00 00 \
	06 00 00 00 00 00

# A futex wait woken, then one that finds the word changed.
seed futex 01 \
	05 01 08 03 00 00 \
	07 01 00 00 00 00 \
	0d 00 00 00 00 00 \
	06 01 00 00 00 00 \
	05 01 08 03 01 00 \
	06 01 00 00 00 00 \
	0f 03 00 00 00 00

# An accept woken by a connect; a connect waiting on a full backlog, cancelled.
seed accept-connect 01 \
	05 00 09 00 00 00 \
	07 00 00 00 00 00 \
	13 07 00 00 00 00 \
	06 00 00 00 00 00 \
	13 07 00 00 00 00 \
	13 07 00 00 00 00 \
	13 07 00 00 00 00 \
	05 01 0a 03 00 00 \
	07 01 00 00 00 00 \
	02 03 05 00 00 00 \
	06 01 00 00 00 00 \
	14 07 00 00 00 00

# A flock held here blocks a worker's until it is released.
seed flock 01 \
	15 07 00 00 00 00 \
	05 00 0b 01 00 00 \
	07 00 00 00 00 00 \
	16 00 00 00 00 00 \
	06 00 00 00 00 00 \
	15 07 00 00 00 00 \
	16 01 00 00 00 00 \
	15 02 00 00 00 00

# Token edges: deadlines and timeouts at the limits, causes, destroy in use,
# destroy and free, re-initialisation, queries, bad tokens.
seed token-edges 01 \
	03 00 00 00 00 00 \
	03 01 04 00 00 00 \
	03 02 09 00 00 00 \
	03 03 08 01 00 00 \
	03 04 09 01 00 00 \
	03 05 0b 01 00 00 \
	04 02 00 00 00 00 \
	02 04 00 00 00 00 \
	02 04 04 00 00 00 \
	02 03 07 00 00 00 \
	04 04 00 00 00 00 \
	01 00 00 00 00 00 \
	01 02 01 00 00 00 \
	01 01 01 00 00 00 \
	00 01 05 00 00 00 \
	00 02 06 00 00 00 \
	01 06 00 00 00 00 \
	04 06 00 00 00 00 \
	04 07 00 00 00 00 \
	11 00 00 00 00 00 \
	11 01 00 00 00 00 \
	11 02 00 00 00 00 \
	11 03 00 00 00 00 \
	11 04 00 00 00 00 \
	11 05 00 00 00 00 \
	11 06 00 00 00 00 \
	11 07 00 00 00 00

# Bad arguments, on the signal path then on io_uring, under live, dead and no tokens.
seed bad-calls 01 \
	10 00 07 00 00 00 \
	10 02 02 00 00 00 \
	10 03 07 00 00 00 \
	10 05 06 00 00 00 \
	10 07 07 00 00 00 \
	10 08 03 00 00 00 \
	10 0a 07 00 00 00 \
	10 0c 02 00 00 00 \
	10 0e 07 00 00 00 \
	10 10 07 00 00 00 \
	10 13 07 00 00 00 \
	10 15 07 00 00 00 \
	10 16 07 00 00 00 \
	10 19 07 00 00 00 \
	10 1e 07 00 00 00 \
	17 02 00 00 00 00 \
	10 00 07 00 00 00 \
	10 03 02 00 00 00 \
	10 05 07 00 00 00 \
	10 1a 07 00 00 00 \
	10 1b 07 00 00 00 \
	0c 00 07 00 00 00 \
	0e 07 02 00 00 00 \
	17 00 00 00 00 00

# Signals of the application interrupt a blocked read; the cancel comes from a handler.
seed signals 01 \
	05 00 00 02 00 10 \
	07 00 00 00 00 00 \
	12 00 01 00 00 00 \
	12 00 00 00 00 00 \
	08 00 07 02 00 00 \
	06 00 00 00 00 00 \
	05 00 01 02 00 10 \
	07 00 00 00 00 00 \
	12 00 00 00 00 00 \
	02 02 05 01 00 00 \
	06 00 00 00 00 00

# End of file wakes a read; polls and epoll waits with and without timeouts.
seed eof-and-polls 01 \
	05 01 00 04 02 10 \
	07 01 00 00 00 00 \
	0b 02 00 00 00 00 \
	06 01 00 00 00 00 \
	05 00 05 00 00 02 \
	05 01 06 03 03 00 \
	07 01 00 00 00 00 \
	08 00 07 04 00 00 \
	06 00 00 00 00 00 \
	06 01 00 00 00 00 \
	0c 02 07 00 00 00 \
	0c 00 07 01 00 00

# Destroying the token of a call in flight, then of its parent; nothing to start from.
seed destroy-in-flight 00 \
	00 00 07 00 00 00 \
	00 01 00 00 00 00 \
	05 00 07 01 00 05 \
	07 00 00 00 00 00 \
	01 01 00 00 00 00 \
	01 00 00 00 00 00 \
	02 01 08 00 00 00 \
	06 00 00 00 00 00 \
	01 01 01 00 00 00 \
	01 00 01 00 00 00 \
	00 00 07 00 00 00 \
	0e 00 02 00 00 00

# Arguments the library refuses before it looks at the token: a poll count
# over UINT_MAX, a negative sleep, a lock command that is no lock, under a
# token whose deadline has passed and under a cancelled one.
seed argument-errors-first 01 \
	03 00 00 00 00 00 \
	02 03 00 00 00 00 \
	10 07 00 00 00 00 \
	10 0a 00 00 00 00 \
	10 0c 00 00 00 00 \
	10 07 03 00 00 00 \
	10 0a 03 00 00 00 \
	10 0c 03 00 00 00
