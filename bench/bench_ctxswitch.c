/* Context switch cost: corio's switch against ucontext's swapcontext.
 *
 * Two contexts bounce control back and forth; one switch is one direction,
 * so a round trip is two. Prints `name value unit` lines.
 *
 *   bench_ctxswitch [corio|ucontext|all] [round trips] */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#define STACK_SIZE (64 * 1024)

static double now_ns(void) { return (double)corio_now(); }

static void *stack_new(void)
{
    void *p = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

/* ---- corio: the bare switch, and the annotated one tasks use ----------- */

static corio_ctx_t ctx_main, ctx_other;
static volatile long counter;

static void bare_entry(void *arg)
{
    (void)arg;
    for (;;) {
        counter++;
        corio__switch(&ctx_other, &ctx_main);
    }
}

static double bench_corio_bare(long n)
{
    void *st = stack_new();
    corio__ctx_init(&ctx_other, (char *)st + STACK_SIZE, bare_entry, NULL);
    corio__switch(&ctx_main, &ctx_other); /* warm up */
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        corio__switch(&ctx_main, &ctx_other);
    double t1 = now_ns();
    munmap(st, STACK_SIZE);
    return (t1 - t0) / (2.0 * (double)n);
}

static corio_coro_t coro_main, coro_other;

static void coro_entry(void *arg)
{
    (void)arg;
    corio__coro_started(&coro_other);
    for (;;) {
        counter++;
        corio__coro_switch(&coro_other, &coro_main, false);
    }
}

static double bench_corio_coro(long n)
{
    corio__coro_init_main(&coro_main);
    memset(&coro_other, 0, sizeof coro_other);
    coro_other.stack.map = stack_new();
    coro_other.stack.map_size = STACK_SIZE;
    coro_other.stack.size = STACK_SIZE - 4096;
    corio__coro_create(&coro_other, coro_entry, NULL);
    corio__coro_switch(&coro_main, &coro_other, false);
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        corio__coro_switch(&coro_main, &coro_other, false);
    double t1 = now_ns();
    corio__coro_destroy(&coro_other);
    munmap(coro_other.stack.map, STACK_SIZE);
    return (t1 - t0) / (2.0 * (double)n);
}

/* ---- ucontext ------------------------------------------------------------ */

static ucontext_t uc_main, uc_other;

static void uc_entry(void)
{
    for (;;) {
        counter++;
        swapcontext(&uc_other, &uc_main);
    }
}

static double bench_ucontext(long n)
{
    void *st = stack_new();
    getcontext(&uc_other);
    uc_other.uc_stack.ss_sp = st;
    uc_other.uc_stack.ss_size = STACK_SIZE;
    uc_other.uc_link = NULL;
    makecontext(&uc_other, uc_entry, 0);
    swapcontext(&uc_main, &uc_other);
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        swapcontext(&uc_main, &uc_other);
    double t1 = now_ns();
    munmap(st, STACK_SIZE);
    return (t1 - t0) / (2.0 * (double)n);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "all";
    long n = argc > 2 ? atol(argv[2]) : 0;
    bool all = strcmp(which, "all") == 0;
    if (all || strcmp(which, "corio") == 0) {
        long m = n ? n : 20000000;
        printf("ctxswitch_corio_ns %.2f ns\n", bench_corio_bare(m));
        printf("ctxswitch_corio_coro_ns %.2f ns\n", bench_corio_coro(m));
    }
    if (all || strcmp(which, "ucontext") == 0)
        printf("ctxswitch_ucontext_ns %.2f ns\n", bench_ucontext(n ? n : 2000000));
    return 0;
}
