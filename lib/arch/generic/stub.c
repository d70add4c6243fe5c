/*
 * Portable entry: no program-counter check is possible here, so a cancel
 * landing between the abort load and the kernel entry is caught by the
 * canceller re-signalling until the call has left (see handler.c).
 */
#define _GNU_SOURCE
#include "../../internal.h"

#include <errno.h>
#include <unistd.h>

long sc_stub_enter(struct sc_stub *st)
{
	if (load_acquire(&st->abort))
		return SC_STUB_CANCELLED;
	long r = syscall(st->nr, st->args[0], st->args[1], st->args[2],
			 st->args[3], st->args[4], st->args[5]);
	return r == -1 ? -errno : r;
}
