/*
 * long sc_stub_enter(struct sc_slot *s, long nr, long a1, ..., long a6)
 *
 * The only place where a syscancel call enters the kernel.  The signal
 * handler compares the interrupted program counter with [sc_stub_begin,
 * sc_stub_end): a cancel landing anywhere from the abort check up to and
 * including the syscall instruction (where the kernel rewinds a restarted
 * call) is diverted to sc_stub_cancel, so the call never runs.  Once past
 * the syscall instruction the result is the kernel's and is kept.
 *
 * Slot offsets: call 0, abort 8, inside 16 (struct sc_slot in internal.h).
 *
 * The test build (--enable-wide-window) spins between the check and the
 * syscall instruction, so a black-box test can land cancels there.
 */
#include "config.h"
#define WIDE_WINDOW_SPINS 4096

	.text
	.globl sc_stub_enter, sc_stub_begin, sc_stub_syscall, sc_stub_end, sc_stub_cancel, sc_stub_leave
	.hidden sc_stub_enter, sc_stub_begin, sc_stub_syscall, sc_stub_end, sc_stub_cancel, sc_stub_leave
	.type sc_stub_enter, @function
	.p2align 4
sc_stub_enter:
	.cfi_startproc
	push %rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	mov %rdi, %rbx
	movl $1, 16(%rbx)
sc_stub_begin:
	mov (%rbx), %rax
	cmp %rax, 8(%rbx)
	je sc_stub_cancel
	mov %rsi, %rax
	mov %rdx, %rdi
	mov %rcx, %rsi
	mov %r8, %rdx
	mov %r9, %r10
	mov 16(%rsp), %r8
	mov 24(%rsp), %r9
#ifdef SC_WIDE_WINDOW
	mov $WIDE_WINDOW_SPINS, %r11d	/* r11 and rcx die in the syscall anyway */
1:	pause
	dec %r11d
	jnz 1b
#endif
sc_stub_syscall:
	syscall
sc_stub_end:
	movl $0, 16(%rbx)
	pop %rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore %rbx
	ret
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
sc_stub_cancel:
	movabs $0x8000000000000000, %rax
	jmp sc_stub_end
sc_stub_leave:
	.cfi_endproc
	.size sc_stub_enter, .-sc_stub_enter

	.section .note.GNU-stack, "", @progbits
