/* The call's inline path as the library builds it, publishing what snapshots read. */
#define _GNU_SOURCE
#include "internal.h"
#include "introspect.h"

#include <sys/syscall.h>

long read_published(sc_token *tok, int fd, char *c)
{
	sc_result r = sc_run(tok, SYS_read, fd, (long)c, 1, 0, 0, 0);

	return r.status == SC_OK ? r.value : -1;
}
