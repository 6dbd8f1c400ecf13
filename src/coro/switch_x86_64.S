/*
 * switch_x86_64.S - coroutine context switch, System V AMD64 ABI.
 *
 * A suspended context is nothing but its stack pointer: everything the ABI
 * says must survive a call (rbx, rbp, r12-r15, and the control bits of MXCSR
 * and of the x87 FPU) is pushed on the context's own stack, just below the
 * return address of its vow__ctx_switch call. The layout, from the saved sp up:
 *
 *     sp+0   MXCSR (4 bytes), x87 control word (2 bytes), 2 bytes unused
 *     sp+8   r15
 *     sp+16  r14
 *     sp+24  r13
 *     sp+32  r12
 *     sp+40  rbx
 *     sp+48  rbp
 *     sp+56  return address
 *
 * Because both stacks hold the same layout, one set of CFI describes the
 * function before and after the stack swap.
 */

#if defined(__APPLE__)
#define SYM(name) _##name
#define FUNC(name) .globl SYM(name); .private_extern SYM(name)
#define LOCAL_FUNC(name)
#define END(name)
#else
#define SYM(name) name
#define FUNC(name) .globl name; .hidden name; .type name, @function
#define LOCAL_FUNC(name) .type name, @function
#define END(name) .size name, . - name
#endif

	.text

/* void vow__ctx_switch(void **from_sp (rdi), void *to_sp (rsi)) */
	.p2align 4
	FUNC(vow__ctx_switch)
SYM(vow__ctx_switch):
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbp, 0
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset rbx, 0
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r12, 0
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r13, 0
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r14, 0
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	.cfi_rel_offset r15, 0
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)

	movq	%rsp, (%rdi)		/* this context is now suspended */
	movq	%rsi, %rsp		/* and that one runs */

	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	.cfi_restore r15
	popq	%r14
	.cfi_adjust_cfa_offset -8
	.cfi_restore r14
	popq	%r13
	.cfi_adjust_cfa_offset -8
	.cfi_restore r13
	popq	%r12
	.cfi_adjust_cfa_offset -8
	.cfi_restore r12
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbx
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	.cfi_restore rbp
	/* Not `ret`: the return-stack predictor expects the call site on the
	 * stack we left, so a `ret` here mispredicts at every switch. An
	 * indirect jump is predicted from history, which the back-and-forth of
	 * resume and yield makes regular (13 ns -> 7 ns per switch measured). */
	popq	%rcx
	.cfi_adjust_cfa_offset -8
	.cfi_register rip, rcx
	jmpq	*%rcx
	.cfi_endproc
	END(vow__ctx_switch)

/*
 * void *vow__ctx_make(void *stack_top (rdi), void (*entry)(void *) (rsi),
 *                     void *arg (rdx))
 *
 * Builds the frame vow__ctx_switch pops, so that its `ret` lands in the
 * trampoline with r12 = entry and rbx = arg. The FP control state is the
 * caller's, as of now. Two zero words above the frame keep the trampoline's
 * call 16-byte aligned and give the outermost frame a null return address.
 */
	.p2align 4
	FUNC(vow__ctx_make)
SYM(vow__ctx_make):
	.cfi_startproc
	andq	$-16, %rdi
	leaq	-80(%rdi), %rax
	stmxcsr	(%rax)
	fnstcw	4(%rax)
	movw	$0, 6(%rax)
	movq	$0, 8(%rax)		/* r15 */
	movq	$0, 16(%rax)		/* r14 */
	movq	$0, 24(%rax)		/* r13 */
	movq	%rsi, 32(%rax)		/* r12: entry */
	movq	%rdx, 40(%rax)		/* rbx: arg */
	movq	$0, 48(%rax)		/* rbp: ends frame-pointer chains */
	leaq	vow__ctx_trampoline(%rip), %rcx
	movq	%rcx, 56(%rax)
	movq	$0, 64(%rax)
	movq	$0, 72(%rax)
	ret
	.cfi_endproc
	END(vow__ctx_make)

/*
 * First code a coroutine runs: entry(arg) on a 16-byte aligned stack. rip is
 * marked undefined so that debuggers and unwinders stop here instead of
 * walking off the top of the stack. entry never returns; if it did, trap.
 */
	.p2align 4
	LOCAL_FUNC(vow__ctx_trampoline)
vow__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%rbx, %rdi
	callq	*%r12
	ud2
	.cfi_endproc
	END(vow__ctx_trampoline)

#if defined(__ELF__)
	.section .note.GNU-stack,"",@progbits
#endif
