/*
 * No register facts for this architecture yet: inside a scope only the
 * syscancel calls end when it is cancelled; other syscalls run on.
 */
#define _GNU_SOURCE
#include "../../internal.h"

const int sc_arch_scopes = 0;

int sc_arch_before_syscall(const void *ctx, struct sc_syscall *c)
{
	(void)ctx, (void)c;
	return 0;
}

int sc_arch_after_eintr(const void *ctx, struct sc_syscall *c, uint64_t *sp, uint64_t *pc)
{
	(void)ctx, (void)c, (void)sp, (void)pc;
	return 0;
}

void sc_arch_skip_syscall(void *ctx, long ret)
{
	(void)ctx, (void)ret;
}

void sc_arch_set_return(void *ctx, long ret)
{
	(void)ctx, (void)ret;
}
