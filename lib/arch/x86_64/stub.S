/*
 * long sc_stub_enter(struct sc_stub *st)
 *
 * The only place where a syscancel call enters the kernel.  The signal
 * handler compares the interrupted program counter with [sc_stub_begin,
 * sc_stub_end): a cancel landing anywhere from the abort load up to and
 * including the syscall instruction (where the kernel rewinds a restarted
 * call) is diverted to sc_stub_cancel, so the call never runs.  Once past
 * the syscall instruction the result is the kernel's and is kept.
 */
	.text
	.globl sc_stub_enter, sc_stub_begin, sc_stub_end, sc_stub_cancel, sc_stub_leave
	.hidden sc_stub_enter, sc_stub_begin, sc_stub_end, sc_stub_cancel, sc_stub_leave
	.type sc_stub_enter, @function
sc_stub_enter:
	.cfi_startproc
	push %rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset %rbx, 0
	mov %rdi, %rbx
	movl $1, 4(%rbx)
sc_stub_begin:
	cmpl $0, (%rbx)
	jne sc_stub_cancel
	mov 8(%rbx), %rax
	mov 16(%rbx), %rdi
	mov 24(%rbx), %rsi
	mov 32(%rbx), %rdx
	mov 40(%rbx), %r10
	mov 48(%rbx), %r8
	mov 56(%rbx), %r9
	syscall
sc_stub_end:
	movl $0, 4(%rbx)
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
