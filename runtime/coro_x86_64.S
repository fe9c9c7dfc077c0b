/* void corio__switch(corio_ctx_t *from, corio_ctx_t *to)
 * Saves what the System V ABI says a callee must preserve: rbx, rbp,
 * r12-r15, the stack pointer, MXCSR and the x87 control word. */
    .text
    .globl corio__switch
    .hidden corio__switch
    .type corio__switch, @function
corio__switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
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
