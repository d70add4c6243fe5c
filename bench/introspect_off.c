/* The call's inline path without what only snapshots read: the syscall and its argument. */
#define _GNU_SOURCE
#define SC_NO_CALL_INFO 1
#include "internal.h"
#include "introspect.h"

#include <sys/syscall.h>

long read_unpublished(sc_token *tok, int fd, char *c)
{
	sc_result r = sc_run(tok, SYS_read, fd, (long)c, 1, 0, 0, 0);

	return r.status == SC_OK ? r.value : -1;
}
