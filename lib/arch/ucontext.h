/*
 * The two registers of an interrupted thread the signal path reads: its
 * program counter and the register a syscall returns in.
 */
#ifndef SC_ARCH_UCONTEXT_H
#define SC_ARCH_UCONTEXT_H

#include <stdint.h>
#include <ucontext.h>

#if defined(__x86_64__)
static inline uintptr_t uc_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
}

static inline void uc_set_pc(ucontext_t *uc, const void *pc)
{
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)pc;
}

static inline long uc_result(const ucontext_t *uc)
{
	return uc->uc_mcontext.gregs[REG_RAX];
}
#elif defined(__aarch64__)
static inline uintptr_t uc_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.pc;
}

static inline void uc_set_pc(ucontext_t *uc, const void *pc)
{
	uc->uc_mcontext.pc = (uintptr_t)pc;
}

static inline long uc_result(const ucontext_t *uc)
{
	return (long)uc->uc_mcontext.regs[0];
}
#else
#error "no entry stub for this architecture: configure with --disable-stub"
#endif

#endif
