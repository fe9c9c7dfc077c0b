/* void corio__switch(corio_ctx_t *from, corio_ctx_t *to)
 * Saves what the System V ABI says a callee must preserve: rbx, rbp,
 * r12-r15, the stack pointer, MXCSR and the x87 control word. */
    .text
/* The callee-saved registers and the floating-point control words, pushed
 * on the current stack. */
    .macro SAVE_FRAME
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    .endm

    .globl corio__switch
    .hidden corio__switch
    .type corio__switch, @function
corio__switch:
    .cfi_startproc
    SAVE_FRAME
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
.Lrestore_all:
    /* A new coroutine made to inherit (CORIO_CW_INHERIT) keeps the control
     * words in force: no read at creation, no load here. */
    cmpl $-1, (%rsp)
    je 1f
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
1:
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    /* Jump rather than return: the return address belongs to the other
     * stack, so a ret would always miss the return stack buffer. */
    popq %rcx
    jmp *%rcx
    .cfi_endproc
    .size corio__switch, .-corio__switch

/* void corio__switch_final(corio_ctx_t *to)
 * Leaves a coroutine that will never run again: nothing of it is saved. */
    .globl corio__switch_final
    .hidden corio__switch_final
    .type corio__switch_final, @function
corio__switch_final:
    .cfi_startproc
    movq (%rdi), %rsp
    jmp .Lrestore_all
    .cfi_endproc
    .size corio__switch_final, .-corio__switch_final

/* First frame of a new coroutine: r12 holds entry, r13 its argument. */
    .globl corio__trampoline
    .hidden corio__trampoline
    .type corio__trampoline, @function
corio__trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size corio__trampoline, .-corio__trampoline

    .section .note.GNU-stack,"",@progbits
