/*
 * Portable entry: no program-counter check is possible here, so a cancel
 * landing between the abort load and the kernel entry is caught by the
 * canceller re-signalling until the call has left (see handler.c).
 */
#define _GNU_SOURCE
#include "../../internal.h"

#include <errno.h>
#include <unistd.h>

long sc_stub_enter(struct sc_slot *s, long nr, long a1, long a2, long a3,
		   long a4, long a5, long a6)
{
	if (call_aborted(s))
		return SC_STUB_CANCELLED;
	long r = syscall(nr, a1, a2, a3, a4, a5, a6);
	return r == -1 ? -errno : r;
}
