/*
 * Memory the application hands over, read or written without faulting: a
 * bad pointer gives EFAULT, as the kernel's own copy would.  Where the
 * kernel will not copy for us at all (seccomp, a kernel without
 * CONFIG_CROSS_MEMORY_ATTACH), a plain copy does, as the C library would.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int copy(void *dst, const void *src, size_t len, int out)
{
	struct iovec mine = { out ? (void *)src : dst, len };
	struct iovec theirs = { out ? dst : (void *)src, len };
	int saved = errno, err = 0;
	ssize_t n = out ? process_vm_writev(getpid(), &mine, 1, &theirs, 1, 0)
			: process_vm_readv(getpid(), &mine, 1, &theirs, 1, 0);

	if (n < 0 && errno != EFAULT)
		memcpy(dst, src, len);
	else if (n != (ssize_t)len)
		err = EFAULT;
	errno = saved;
	return err;
}

int sc_copy_in(void *dst, const void *src, size_t len)
{
	return copy(dst, src, len, 0);
}

int sc_copy_out(void *dst, const void *src, size_t len)
{
	return copy(dst, src, len, 1);
}
