/* void corio__switch(corio_ctx_t *from, corio_ctx_t *to)
 * Saves what AAPCS64 says a callee must preserve: x19-x29, the link
 * register, sp, d8-d15 and FPCR. */
    .text
/* x19-x30, d8-d15 and FPCR, stored below the current stack pointer. */
    .macro SAVE_FRAME
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
    .endm

    .globl corio__switch
    .hidden corio__switch
    .type corio__switch, %function
corio__switch:
    SAVE_FRAME
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
.Lrestore_all:
    /* A new coroutine made to inherit (all ones) keeps the FPCR in force. */
    ldr x9, [sp, #160]
    cmn x9, #1
    b.eq 1f
    msr fpcr, x9
1:
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
    .size corio__switch, .-corio__switch

/* void corio__switch_final(corio_ctx_t *to)
 * Leaves a coroutine that will never run again: nothing of it is saved. */
    .globl corio__switch_final
    .hidden corio__switch_final
    .type corio__switch_final, %function
corio__switch_final:
    ldr x9, [x0]
    mov sp, x9
    b .Lrestore_all
    .size corio__switch_final, .-corio__switch_final

/* First frame of a new coroutine: x19 holds entry, x20 its argument. */
    .globl corio__trampoline
    .hidden corio__trampoline
    .type corio__trampoline, %function
corio__trampoline:
    mov x29, #0
    mov x0, x20
    blr x19
    brk #0
    .size corio__trampoline, .-corio__trampoline

    .section .note.GNU-stack,"",%progbits
