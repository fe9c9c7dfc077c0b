/* void regcheck_switch(const uint64_t in[20], uint64_t out[20],
 *                      corio_ctx_t *from, corio_ctx_t *to)
 * Test helper for test_coro.c: loads every callee-saved register and FPCR
 * from in[] (x19-x29, d8-d15, FPCR), calls corio__switch(from, to), and once
 * resumed stores what those registers then hold into out[]. The caller's own
 * values are restored before returning. */
    .text
    .globl regcheck_switch
    .type regcheck_switch, %function
regcheck_switch:
    /* 0: x19..x28, 80: x29, x30, 96: d8..d15, 160: FPCR, 168: out. */
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    str x1, [sp, #168]
    ldr x9, [x0, #152]
    msr fpcr, x9
    ldp x19, x20, [x0, #0]
    ldp x21, x22, [x0, #16]
    ldp x23, x24, [x0, #32]
    ldp x25, x26, [x0, #48]
    ldp x27, x28, [x0, #64]
    ldr x29, [x0, #80]
    ldp d8, d9, [x0, #88]
    ldp d10, d11, [x0, #104]
    ldp d12, d13, [x0, #120]
    ldp d14, d15, [x0, #136]
    mov x0, x2
    mov x1, x3
    bl corio__switch
    ldr x9, [sp, #168]
    stp x19, x20, [x9, #0]
    stp x21, x22, [x9, #16]
    stp x23, x24, [x9, #32]
    stp x25, x26, [x9, #48]
    stp x27, x28, [x9, #64]
    str x29, [x9, #80]
    stp d8, d9, [x9, #88]
    stp d10, d11, [x9, #104]
    stp d12, d13, [x9, #120]
    stp d14, d15, [x9, #136]
    mrs x10, fpcr
    str x10, [x9, #152]
    ldr x9, [sp, #160]
    msr fpcr, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .size regcheck_switch, .-regcheck_switch

    .section .note.GNU-stack,"",%progbits
