/* void regcheck_switch(const uint64_t in[8], uint64_t out[8],
 *                      corio_ctx_t *from, corio_ctx_t *to)
 * Test helper for test_coro.c: loads every callee-saved register and the
 * floating-point control state from in[] (rbx, rbp, r12, r13, r14, r15,
 * MXCSR, x87 control word), calls corio__switch(from, to), and once resumed
 * stores what those registers then hold into out[]. The caller's own values
 * are restored before returning, so the helper itself obeys the ABI. */
    .text
    .globl regcheck_switch
    .type regcheck_switch, @function
regcheck_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    /* 6 pushes + return address = 56 bytes; 40 more keeps rsp 16-aligned
     * at the call. 0: caller MXCSR, 4: caller x87 CW, 8: out, 16: from,
     * 24: to, 32: scratch. */
    subq $40, %rsp
    stmxcsr 0(%rsp)
    fnstcw 4(%rsp)
    movq %rsi, 8(%rsp)
    movq %rdx, 16(%rsp)
    movq %rcx, 24(%rsp)
    ldmxcsr 48(%rdi)
    fldcw 56(%rdi)
    movq 0(%rdi), %rbx
    movq 8(%rdi), %rbp
    movq 16(%rdi), %r12
    movq 24(%rdi), %r13
    movq 32(%rdi), %r14
    movq 40(%rdi), %r15
    movq 16(%rsp), %rdi
    movq 24(%rsp), %rsi
    call corio__switch
    movq 8(%rsp), %rax
    movq %rbx, 0(%rax)
    movq %rbp, 8(%rax)
    movq %r12, 16(%rax)
    movq %r13, 24(%rax)
    movq %r14, 32(%rax)
    movq %r15, 40(%rax)
    stmxcsr 32(%rsp)
    movl 32(%rsp), %edx
    movq %rdx, 48(%rax)
    fnstcw 32(%rsp)
    movzwl 32(%rsp), %edx
    movq %rdx, 56(%rax)
    ldmxcsr 0(%rsp)
    fldcw 4(%rsp)
    addq $40, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size regcheck_switch, .-regcheck_switch

    .section .note.GNU-stack,"",@progbits
