/*
 * switch_aarch64.S - coroutine context switch, AAPCS64.
 *
 * A suspended context is nothing but its stack pointer: everything the ABI
 * says must survive a call (x19-x28, the frame pointer x29, the link register
 * x30, the low halves d8-d15 of v8-v15, and FPCR) is stored in a 176-byte
 * frame on the context's own stack. The layout, from the saved sp up:
 *
 *     sp+0    x19, x20        sp+96   d8,  d9
 *     sp+16   x21, x22        sp+112  d10, d11
 *     sp+32   x23, x24        sp+128  d12, d13
 *     sp+48   x25, x26        sp+144  d14, d15
 *     sp+64   x27, x28        sp+160  FPCR, unused
 *     sp+80   x29, x30
 *
 * x18 is the platform register (reserved on Apple and Windows) and is left
 * alone. sp stays 16-byte aligned throughout, as the architecture requires.
 */

#if defined(__APPLE__)
#define SYM(name) _##name
#define FUNC(name) .globl SYM(name) %% .private_extern SYM(name)
#define LOCAL_FUNC(name)
#define END(name)
#else
#define SYM(name) name
#define FUNC(name) .globl name; .hidden name; .type name, %function
#define LOCAL_FUNC(name) .type name, %function
#define END(name) .size name, . - name
#endif

#define FRAME 176

	.text

/* void vow__ctx_switch(void **from_sp (x0), void *to_sp (x1)) */
	.p2align 4
	FUNC(vow__ctx_switch)
SYM(vow__ctx_switch):
	.cfi_startproc
	sub	sp, sp, #FRAME
	.cfi_def_cfa_offset FRAME
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	.cfi_offset x29, -(FRAME - 80)
	.cfi_offset x30, -(FRAME - 88)
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]

	mov	x9, sp
	str	x9, [x0]		/* this context is now suspended */
	mov	sp, x1			/* and that one runs */

	ldr	x9, [sp, #160]		/* FPCR: writing it can stall, so only */
	mrs	x10, fpcr		/* when the two contexts differ */
	cmp	x9, x10
	b.eq	1f
	msr	fpcr, x9
1:
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #FRAME
	.cfi_def_cfa_offset 0
	.cfi_restore x29
	.cfi_restore x30
	ret
	.cfi_endproc
	END(vow__ctx_switch)

/*
 * void *vow__ctx_make(void *stack_top (x0), void (*entry)(void *) (x1),
 *                     void *arg (x2))
 *
 * Builds the frame vow__ctx_switch pops, so that its `ret` lands in the
 * trampoline with x20 = entry and x19 = arg. The FP control state is the
 * caller's, as of now; x29 = 0 ends frame-pointer chains.
 */
	.p2align 4
	FUNC(vow__ctx_make)
SYM(vow__ctx_make):
	.cfi_startproc
	and	x0, x0, #~15
	sub	x0, x0, #FRAME
	stp	x2, x1, [x0, #0]	/* x19: arg, x20: entry */
	stp	xzr, xzr, [x0, #16]
	stp	xzr, xzr, [x0, #32]
	stp	xzr, xzr, [x0, #48]
	stp	xzr, xzr, [x0, #64]
	adr	x9, vow__ctx_trampoline
	stp	xzr, x9, [x0, #80]	/* x29: 0, x30: the trampoline */
	stp	xzr, xzr, [x0, #96]
	stp	xzr, xzr, [x0, #112]
	stp	xzr, xzr, [x0, #128]
	stp	xzr, xzr, [x0, #144]
	mrs	x9, fpcr
	stp	x9, xzr, [x0, #160]
	ret
	.cfi_endproc
	END(vow__ctx_make)

/*
 * First code a coroutine runs: entry(arg). The link register is marked
 * undefined so that debuggers and unwinders stop here. entry never returns;
 * if it did, trap.
 */
	.p2align 4
	LOCAL_FUNC(vow__ctx_trampoline)
vow__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov	x0, x19
	blr	x20
	brk	#0x1
	.cfi_endproc
	END(vow__ctx_trampoline)

#if defined(__ELF__)
	.section .note.GNU-stack,"",%progbits
#endif
