/* Coroutines: a guarded stack plus the context switch, with the annotations
 * AddressSanitizer and ThreadSanitizer need to follow stack switches. */
#include "internal.h"

#include <string.h>

#ifdef CORIO_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
#endif
#ifdef CORIO_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

void corio__trampoline(void);

/* The frame's control-word slot: the state in force now, or the marker
 * that makes the first switch keep whatever is in force then (see
 * coro_*.S; no valid MXCSR or FPCR has every bit set). */
static uint64_t control_words(bool inherit)
{
    if (inherit)
        return UINT64_MAX;
#if defined(__x86_64__)
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    return mxcsr | (uint64_t)fpucw << 32;
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
#endif
}

static void ctx_init(corio_ctx_t *ctx, void *top, void (*entry)(void *), void *arg,
                     bool inherit)
{
    uintptr_t sp = ((uintptr_t)top & ~(uintptr_t)15);
#if defined(__x86_64__)
    /* Mirrors corio__switch's frame: control words, r15..r12, rbx, rbp, ret. */
    sp -= 80;
    uint64_t *f = (uint64_t *)sp;
    f[0] = control_words(inherit); /* MXCSR in the low half, the x87 word above */
    f[1] = 0;                       /* r15 */
    f[2] = 0;                       /* r14 */
    f[3] = (uint64_t)(uintptr_t)arg;   /* r13 */
    f[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    f[5] = 0;                       /* rbx */
    f[6] = 0;                       /* rbp */
    f[7] = (uint64_t)(uintptr_t)corio__trampoline;
#elif defined(__aarch64__)
    sp -= 176;
    uint64_t *f = (uint64_t *)sp;
    memset(f, 0, 176);
    f[0] = (uint64_t)(uintptr_t)entry; /* x19 */
    f[1] = (uint64_t)(uintptr_t)arg;   /* x20 */
    f[11] = (uint64_t)(uintptr_t)corio__trampoline; /* x30 */
    f[20] = control_words(inherit);
#else
#error "corio: no context switch for this target"
#endif
    ctx->sp = (void *)sp;
}

/* Where a frame made by corio__switch or ctx_init keeps its control words. */
static uint64_t *control_slot(const corio_ctx_t *ctx)
{
#if defined(__x86_64__)
    return (uint64_t *)ctx->sp;
#elif defined(__aarch64__)
    return (uint64_t *)ctx->sp + 20;
#endif
}

void corio__ctx_inherit_from(corio_ctx_t *fresh, const corio_ctx_t *suspended)
{
    uint64_t *slot = control_slot(fresh);
    if (*slot == control_words(true))
        *slot = *control_slot(suspended);
}

void corio__ctx_init(corio_ctx_t *ctx, void *top, void (*entry)(void *), void *arg)
{
    ctx_init(ctx, top, entry, arg, false);
}

void corio__ctx_init_inherit(corio_ctx_t *ctx, void *top, void (*entry)(void *), void *arg)
{
    ctx_init(ctx, top, entry, arg, true);
}

void corio__coro_init_main(corio_coro_t *m)
{
    memset(m, 0, sizeof *m);
#ifdef CORIO_TSAN
    m->tsan_fiber = __tsan_get_current_fiber();
#endif
}

static void coro_create(corio_coro_t *c, void (*entry)(void *), void *arg, bool inherit)
{
    char *top = (char *)c->stack.map + c->stack.map_size;
    ctx_init(&c->ctx, top, entry, arg, inherit);
#ifdef CORIO_ASAN
    c->asan_bottom = (char *)c->stack.map + (c->stack.map_size - c->stack.size);
    c->asan_size = c->stack.size;
    c->asan_fake_stack = NULL;
#endif
#ifdef CORIO_TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
#endif
}

void corio__coro_create(corio_coro_t *c, void (*entry)(void *), void *arg)
{
    coro_create(c, entry, arg, false);
}

void corio__coro_create_inherit(corio_coro_t *c, void (*entry)(void *), void *arg)
{
    coro_create(c, entry, arg, true);
}

void corio__coro_destroy(corio_coro_t *c)
{
#ifdef CORIO_TSAN
    if (c->tsan_fiber)
        __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
#else
    (void)c;
#endif
}

static CORIO_UNUSED corio_coro_t **asan_prev_slot(void)
{
    static __thread corio_coro_t *prev;
    return &prev;
}

#if defined(CORIO_ASAN) || defined(CORIO_TSAN)
void corio__coro_switch(corio_coro_t *from, corio_coro_t *to, bool finishing)
{
#ifdef CORIO_ASAN
    *asan_prev_slot() = from;
    __sanitizer_start_switch_fiber(finishing ? NULL : &from->asan_fake_stack, to->asan_bottom,
                                   to->asan_size);
#endif
#ifdef CORIO_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    if (finishing)
        corio__switch_final(&to->ctx);
    else
        corio__switch(&from->ctx, &to->ctx);
#ifdef CORIO_ASAN
    /* Back in `from`: learn the bounds of whoever switched here, so the main
     * coroutine's stack is known without asking the thread library. */
    const void *bottom = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(from->asan_fake_stack, &bottom, &size);
    corio_coro_t *prev = *asan_prev_slot();
    if (prev && !prev->asan_bottom) {
        prev->asan_bottom = bottom;
        prev->asan_size = size;
    }
#endif
}

void corio__coro_started(corio_coro_t *self)
{
#ifdef CORIO_ASAN
    const void *bottom = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
    corio_coro_t *prev = *asan_prev_slot();
    if (prev && !prev->asan_bottom) {
        prev->asan_bottom = bottom;
        prev->asan_size = size;
    }
#endif
    (void)self;
}
#endif
