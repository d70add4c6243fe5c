/*
 * What a scope needs to know of an interrupted thread on x86_64: whether it
 * stands at a syscall instruction (about to run it, or rewound there by the
 * kernel to restart it), or has just come back from one with -EINTR; and
 * how to skip the instruction or change what it returned.
 */
#define _GNU_SOURCE
#include "../../internal.h"

#include <errno.h>
#include <ucontext.h>

const int sc_arch_scopes = 1;

static greg_t *regs(const void *ctx)
{
	return ((ucontext_t *)ctx)->uc_mcontext.gregs;
}

static void read_args(const greg_t *g, struct sc_syscall *c)
{
	c->args[0] = g[REG_RDI];
	c->args[1] = g[REG_RSI];
	c->args[2] = g[REG_RDX];
	c->args[3] = g[REG_R10];
	c->args[4] = g[REG_R8];
	c->args[5] = g[REG_R9];
}

/*
 * syscall is 0f 05.  The second byte is read only after the first: an
 * instruction that starts with 0f is two bytes long at least, so both are
 * mapped wherever the thread can execute it.  The instruction leaves its
 * return address in rcx, which tells a kernel rewind from a first run.
 */
int sc_arch_before_syscall(const void *ctx, struct sc_syscall *c)
{
	const greg_t *g = regs(ctx);
	const volatile unsigned char *pc = (const unsigned char *)g[REG_RIP];

	if (pc[0] != 0x0f || pc[1] != 0x05)
		return 0;
	c->nr = g[REG_RAX];
	read_args(g, c);
	c->entered = g[REG_RCX] == g[REG_RIP] + 2;
	return 1;
}

int sc_arch_after_eintr(const void *ctx, struct sc_syscall *c, uint64_t *sp, uint64_t *pc)
{
	const greg_t *g = regs(ctx);

	if (g[REG_RAX] != -EINTR || g[REG_RCX] != g[REG_RIP])
		return 0;
	c->nr = -1;
	read_args(g, c);
	c->entered = 1;
	*sp = (uint64_t)g[REG_RSP];
	*pc = (uint64_t)g[REG_RIP];
	return 1;
}

void sc_arch_skip_syscall(void *ctx, long ret)
{
	greg_t *g = regs(ctx);

	g[REG_RIP] += 2;
	g[REG_RCX] = g[REG_RIP];
	g[REG_RAX] = ret;
}

void sc_arch_set_return(void *ctx, long ret)
{
	regs(ctx)[REG_RAX] = ret;
}
