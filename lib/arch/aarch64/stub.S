/*
 * long sc_stub_enter(struct sc_slot *s, long nr, long a1, ..., long a6)
 *
 * The aarch64 entry, with the x86_64 stub's contract: the signal handler
 * compares the interrupted pc with [sc_stub_begin, sc_stub_end).  A cancel
 * landing from the abort check up to and including the svc is diverted to
 * sc_stub_cancel, so the call never runs.  The svc is in that range on
 * purpose: a restarted call is rewound onto it (pc back by 4, x0 reloaded
 * with the first argument), and a call that is to be restarted has done
 * nothing yet.  Once past the svc the result is the kernel's and is kept.
 *
 * In: x0 slot, x1 number, x2-x7 arguments.  The kernel wants the number in
 * x8 and the arguments in x0-x5, returns in x0 and keeps every other
 * register, so the slot stays in x9 across the svc and any signal handler.
 * Slot offsets: call 0, abort 8, inside 16 (struct sc_slot in internal.h).
 *
 * The test build (--enable-wide-window) spins between the check and the
 * svc, so a black-box test can land cancels there.
 */
#include "config.h"
/* yield is about a cycle on hardware and nothing under qemu: far more spins than pause. */
#define WIDE_WINDOW_SPINS 65536

	.text
	.globl sc_stub_enter, sc_stub_begin, sc_stub_syscall, sc_stub_end, sc_stub_cancel, sc_stub_leave
	.hidden sc_stub_enter, sc_stub_begin, sc_stub_syscall, sc_stub_end, sc_stub_cancel, sc_stub_leave
	.type sc_stub_enter, %function
	.p2align 4
sc_stub_enter:
	.cfi_startproc
	mov x9, x0
	mov w10, #1
	str w10, [x9, #16]
sc_stub_begin:
	add x11, x9, #8
	ldar x11, [x11]
	ldr x10, [x9]
	cmp x10, x11
	b.eq sc_stub_cancel
	mov x8, x1
	mov x0, x2
	mov x1, x3
	mov x2, x4
	mov x3, x5
	mov x4, x6
	mov x5, x7
#ifdef SC_WIDE_WINDOW
	mov w10, #WIDE_WINDOW_SPINS & 0xffff
	movk w10, #WIDE_WINDOW_SPINS >> 16, lsl #16
1:	yield
	subs w10, w10, #1
	b.ne 1b
#endif
sc_stub_syscall:
	svc #0
sc_stub_end:
	str wzr, [x9, #16]
	ret
sc_stub_cancel:
	mov x0, #0x8000000000000000
	b sc_stub_end
sc_stub_leave:
	.cfi_endproc
	.size sc_stub_enter, .-sc_stub_enter

	.section .note.GNU-stack, "", %progbits
