/* The coroutine layer alone: the context switch keeps every callee-saved
 * register and the floating-point control state, stacks are aligned for the
 * ABI, and many coroutines switch among themselves without losing state.
 *
 * Only runtime/coro.c and runtime/coro_<cpu>.S are needed (no loop, no
 * liburing at link time), so run_aarch64.sh cross-builds this same file with
 * regcheck_aarch64.S and runs it under qemu-user. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- stacks for bare coroutines ------------------------------------------ */

static void stack_alloc(corio_stack_t *s, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size = (size + page - 1) & ~(page - 1);
    void *map = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    CHECK(map != MAP_FAILED);
    CHECK(mprotect(map, page, PROT_NONE) == 0);
    s->map = map;
    s->map_size = size + page;
    s->size = size;
}

static void stack_free(corio_stack_t *s)
{
    CHECK(munmap(s->map, s->map_size) == 0);
    s->map = NULL;
}

static void *stack_top(const corio_stack_t *s) { return (char *)s->map + s->map_size; }

/* ---- callee-saved registers and floating-point control ---------------- */

/* Defined in regcheck_<cpu>.S: loads in[] into the callee-saved registers
 * and the FP control state, switches from -> to, and once resumed stores
 * the registers' contents into out[]. */
void regcheck_switch(const uint64_t *in, uint64_t *out, corio_ctx_t *from, corio_ctx_t *to);

#if defined(__x86_64__)
/* rbx, rbp, r12, r13, r14, r15, MXCSR, x87 control word */
#define NREGS 8
#define NGPR 6
static const char *const reg_names[NREGS] = {"rbx", "rbp", "r12", "r13",
                                             "r14", "r15", "mxcsr", "x87cw"};
/* All exceptions masked, flags clear; rounding, FTZ and DAZ differ. */
static const uint64_t main_fp[2][2] = {{0x3FC0, 0x0C7F}, {0x7F80, 0x047F}};
static const uint64_t coro_fp[2][2] = {{0xDF80, 0x087F}, {0x9FC0, 0x027F}};
#define NFP 2
#elif defined(__aarch64__)
/* x19-x28, x29, d8-d15, FPCR */
#define NREGS 20
#define NGPR 19
static const char *const reg_names[NREGS] = {
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
    "x29", "d8",  "d9",  "d10", "d11", "d12", "d13", "d14", "d15", "fpcr"};
/* Rounding mode, flush-to-zero, default NaN and alternative half precision. */
static const uint64_t main_fp[2][1] = {{0x00400000}, {0x03000000}};
static const uint64_t coro_fp[2][1] = {{0x00800000}, {0x04C00000}};
#define NFP 1
#else
#error "test_coro: no register check for this target"
#endif

static corio_ctx_t reg_main_ctx, reg_coro_ctx;
static uint64_t coro_in[NREGS], coro_out[NREGS];
static int coro_rounds_checked, coro_mismatches;

static void fill(uint64_t *v, uint64_t tag, int round, const uint64_t (*fp)[NFP])
{
    for (int i = 0; i < NGPR; i++)
        v[i] = tag << 48 | (uint64_t)(i + 1) << 32 | (uint64_t)round << 8 | (uint64_t)i;
    for (int i = 0; i < NFP; i++)
        v[NGPR + i] = fp[round & 1][i];
}

static int report_mismatch(const char *who, int round, const uint64_t *want, const uint64_t *got)
{
    int bad = 0;
    for (int i = 0; i < NREGS; i++)
        if (want[i] != got[i]) {
            fprintf(stderr, "%s round %d: %s is %#llx, want %#llx\n", who, round, reg_names[i],
                    (unsigned long long)got[i], (unsigned long long)want[i]);
            bad++;
        }
    return bad;
}

static void reg_coro_entry(void *arg)
{
    (void)arg;
    for (int round = 0;; round++) {
        /* The other side's values are all different: a register the switch
         * forgot would come back with them. */
        fill(coro_in, 0xC0DE, round, coro_fp);
        regcheck_switch(coro_in, coro_out, &reg_coro_ctx, &reg_main_ctx);
        coro_mismatches += report_mismatch("coroutine", round, coro_in, coro_out);
        coro_rounds_checked++;
    }
}

static void callee_saved_registers_survive_switch(void)
{
    corio_stack_t st;
    stack_alloc(&st, 64 * 1024);
    corio__ctx_init(&reg_coro_ctx, stack_top(&st), reg_coro_entry, NULL);
    uint64_t in[NREGS], out[NREGS];
    const int rounds = 64;
    for (int round = 0; round < rounds; round++) {
        fill(in, 0xA11A, round, main_fp);
        memset(out, 0, sizeof out);
        regcheck_switch(in, out, &reg_main_ctx, &reg_coro_ctx);
        CHECK_EQ(report_mismatch("main", round, in, out), 0);
        CHECK_EQ(coro_rounds_checked, round); /* the coroutine checked the previous round */
        CHECK_EQ(coro_mismatches, 0);
    }
    /* The helper put this thread's own control state back. */
#if defined(__x86_64__)
    uint32_t mxcsr;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    CHECK_EQ(mxcsr & ~0x3Fu, 0x1F80); /* Linux's default; ignore sticky flags */
#endif
    stack_free(&st);
}

/* A new coroutine starts with the control state of the one that created it,
 * and changing it in one coroutine leaves the other's alone. */
static corio_ctx_t fpenv_main_ctx, fpenv_coro_ctx;
static uint64_t fpenv_seen[2];

/* x86_64: MXCSR without its sticky flags, and the x87 control word above. */
static uint64_t fp_control_get(void)
{
#if defined(__x86_64__)
    uint32_t mxcsr;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return (mxcsr & ~0x3Fu) | (uint64_t)cw << 32;
#else
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    return fpcr;
#endif
}

static void fp_control_set(uint64_t v)
{
#if defined(__x86_64__)
    uint32_t mxcsr = (uint32_t)v;
    uint16_t cw = (uint16_t)(v >> 32);
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    __asm__ volatile("fldcw %0" : : "m"(cw));
#else
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
#endif
}

#if defined(__x86_64__)
#define FP_A (0x3F80 | (uint64_t)0x077F << 32) /* round down, in both units */
#define FP_B (0x5F80 | (uint64_t)0x0B7F << 32) /* round up */
#else
#define FP_A 0x00800000
#define FP_B 0x00400000
#endif

static void fpenv_entry(void *arg)
{
    (void)arg;
    fpenv_seen[0] = fp_control_get();
    fp_control_set(FP_B);
    corio__switch(&fpenv_coro_ctx, &fpenv_main_ctx);
    fpenv_seen[1] = fp_control_get();
    corio__switch(&fpenv_coro_ctx, &fpenv_main_ctx);
    abort();
}

static void fp_control_is_per_coroutine(void)
{
    corio_stack_t st;
    stack_alloc(&st, 64 * 1024);
    uint64_t orig = fp_control_get();
    fp_control_set(FP_A);
    corio__ctx_init(&fpenv_coro_ctx, stack_top(&st), fpenv_entry, NULL);
    fp_control_set(orig);
    corio__switch(&fpenv_main_ctx, &fpenv_coro_ctx);
    CHECK_EQ(fpenv_seen[0], FP_A);    /* inherited at creation */
    CHECK_EQ(fp_control_get(), orig); /* the coroutine's change stayed there */
    corio__switch(&fpenv_main_ctx, &fpenv_coro_ctx);
    CHECK_EQ(fpenv_seen[1], FP_B);
    CHECK_EQ(fp_control_get(), orig);
    stack_free(&st);
}

/* A finishing coroutine leaves its own control state behind: the final
 * switch saves nothing of it and restores the resumed coroutine's. */
static corio_coro_t fpfinal_main, fpfinal_coro;

static void fpfinal_entry(void *arg)
{
    (void)arg;
    corio__coro_started(&fpfinal_coro);
    fpenv_seen[0] = fp_control_get();
    fp_control_set(FP_A);
    corio__coro_switch(&fpfinal_coro, &fpfinal_main, false);
    fpenv_seen[1] = fp_control_get();
    fp_control_set(FP_B);
    corio__coro_switch(&fpfinal_coro, &fpfinal_main, true);
    abort();
}

static void fp_control_survives_a_final_switch(void)
{
    uint64_t orig = fp_control_get();
    corio__coro_init_main(&fpfinal_main);
    memset(&fpfinal_coro, 0, sizeof fpfinal_coro);
    stack_alloc(&fpfinal_coro.stack, 64 * 1024);
    fp_control_set(FP_B);
    corio__coro_create(&fpfinal_coro, fpfinal_entry, NULL);
    fp_control_set(orig);
    corio__coro_switch(&fpfinal_main, &fpfinal_coro, false);
    CHECK_EQ(fpenv_seen[0], FP_B);    /* the creator's, at creation */
    CHECK_EQ(fp_control_get(), orig); /* its change to FP_A stayed in it */
    corio__coro_switch(&fpfinal_main, &fpfinal_coro, false);
    CHECK_EQ(fpenv_seen[1], FP_A);    /* its own state came back on resume */
    CHECK_EQ(fp_control_get(), orig); /* and the final switch restored ours */
    corio__coro_destroy(&fpfinal_coro);
    stack_free(&fpfinal_coro.stack);
}

/* A coroutine made to inherit starts with the state in force at the first
 * switch to it, not at its creation; once it saved its own, that comes
 * back on resume, and the switcher's state is restored on leaving. */
static corio_coro_t fpinh_main, fpinh_coro;

static void fpinh_entry(void *arg)
{
    (void)arg;
    corio__coro_started(&fpinh_coro);
    fpenv_seen[0] = fp_control_get();
    fp_control_set(FP_B);
    corio__coro_switch(&fpinh_coro, &fpinh_main, false);
    fpenv_seen[1] = fp_control_get();
    corio__coro_switch(&fpinh_coro, &fpinh_main, true);
    abort();
}

static void fp_control_inherited_at_first_switch(void)
{
    uint64_t orig = fp_control_get();
    corio__coro_init_main(&fpinh_main);
    memset(&fpinh_coro, 0, sizeof fpinh_coro);
    stack_alloc(&fpinh_coro.stack, 64 * 1024);
    fp_control_set(FP_B);
    corio__coro_create_inherit(&fpinh_coro, fpinh_entry, NULL);
    fp_control_set(FP_A);
    corio__coro_switch(&fpinh_main, &fpinh_coro, false);
    CHECK_EQ(fpenv_seen[0], FP_A);    /* the first switcher's, not the creator's */
    CHECK_EQ(fp_control_get(), FP_A); /* its change to FP_B stayed in it */
    fp_control_set(orig);
    corio__coro_switch(&fpinh_main, &fpinh_coro, false);
    CHECK_EQ(fpenv_seen[1], FP_B); /* its own state came back on resume */
    CHECK_EQ(fp_control_get(), orig);
    corio__coro_destroy(&fpinh_coro);
    stack_free(&fpinh_coro.stack);
}

/* ---- stack alignment --------------------------------------------------- */

static corio_coro_t align_main, align_coro;
static char align_buf[64];
static uintptr_t align_addr;

static __attribute__((noinline)) void align_probe(void)
{
    _Alignas(16) volatile char local[16];
    local[0] = 1;
    align_addr = (uintptr_t)local;
}

static void align_entry(void *arg)
{
    (void)arg;
    corio__coro_started(&align_coro);
    align_probe();
    /* Variadic calls with doubles use aligned SSE stores on x86_64. */
    snprintf(align_buf, sizeof align_buf, "%.3f %.1Lf", 2.5, (long double)0.5);
    corio__coro_switch(&align_coro, &align_main, true);
    abort();
}

static void new_coroutine_stack_is_aligned(void)
{
    memset(&align_coro, 0, sizeof align_coro);
    corio__coro_init_main(&align_main);
    stack_alloc(&align_coro.stack, 64 * 1024);
    corio__coro_create(&align_coro, align_entry, NULL);
    corio__coro_switch(&align_main, &align_coro, false);
    CHECK_EQ(align_addr & 15, 0);
    CHECK(strcmp(align_buf, "2.500 0.5") == 0);
    corio__coro_destroy(&align_coro);
    stack_free(&align_coro.stack);
}

/* ---- ping-pong ----------------------------------------------------------- */

#define PINGPONG_ROUNDS 1000000
static corio_coro_t pp_main, pp_a, pp_b;
static long pp_count;
static int pp_errors;

static void ping_entry(void *arg)
{
    (void)arg;
    corio__coro_started(&pp_a);
    for (long i = 0; i < PINGPONG_ROUNDS; i++) {
        if (pp_count != 2 * i)
            pp_errors++;
        pp_count++;
        corio__coro_switch(&pp_a, &pp_b, false);
    }
    corio__coro_switch(&pp_a, &pp_main, true);
    abort();
}

static void pong_entry(void *arg)
{
    (void)arg;
    corio__coro_started(&pp_b);
    for (long i = 0;; i++) {
        if (pp_count != 2 * i + 1)
            pp_errors++;
        pp_count++;
        corio__coro_switch(&pp_b, &pp_a, false);
    }
}

static void ping_pong(void)
{
    corio__coro_init_main(&pp_main);
    memset(&pp_a, 0, sizeof pp_a);
    memset(&pp_b, 0, sizeof pp_b);
    stack_alloc(&pp_a.stack, 32 * 1024);
    stack_alloc(&pp_b.stack, 32 * 1024);
    corio__coro_create(&pp_a, ping_entry, NULL);
    corio__coro_create(&pp_b, pong_entry, NULL);
    corio__coro_switch(&pp_main, &pp_a, false);
    CHECK_EQ(pp_errors, 0);
    CHECK_EQ(pp_count, 2L * PINGPONG_ROUNDS);
    corio__coro_destroy(&pp_a);
    corio__coro_destroy(&pp_b); /* suspended for good: its stack just goes */
    stack_free(&pp_a.stack);
    stack_free(&pp_b.stack);
}

/* ---- many coroutines, round-robin --------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define MANY 2000 /* ThreadSanitizer allows at most 8128 live fibers */
#else
#define MANY 10000
#endif
#define MANY_ROUNDS 8
typedef struct many_coro {
    corio_coro_t coro;
    int id;
    bool done;
} many_coro_t;

static corio_coro_t many_main;
static many_coro_t *many;
static long many_expected_next;
static long many_errors;

static void many_entry(void *arg)
{
    many_coro_t *m = arg;
    corio__coro_started(&m->coro);
    /* State on this coroutine's own stack must survive every switch. */
    uint32_t local[32];
    for (int i = 0; i < 32; i++)
        local[i] = (uint32_t)m->id * 31u + (uint32_t)i;
    for (int round = 0; round < MANY_ROUNDS; round++) {
        if (many_expected_next != (long)round * MANY + m->id)
            many_errors++;
        many_expected_next++;
        for (int i = 0; i < 32; i++)
            if (local[i] != (uint32_t)m->id * 31u + (uint32_t)i)
                many_errors++;
        corio__coro_switch(&m->coro, &many_main, false);
    }
    m->done = true;
    corio__coro_switch(&m->coro, &many_main, true);
    abort();
}

static void many_coroutines_round_robin(void)
{
    corio__coro_init_main(&many_main);
    many = calloc(MANY, sizeof *many);
    CHECK(many);
    for (int i = 0; i < MANY; i++) {
        many[i].id = i;
        stack_alloc(&many[i].coro.stack, 16 * 1024);
        corio__coro_create(&many[i].coro, many_entry, &many[i]);
    }
    for (int round = 0; round <= MANY_ROUNDS; round++)
        for (int i = 0; i < MANY; i++) {
            CHECK(!many[i].done);
            corio__coro_switch(&many_main, &many[i].coro, false);
        }
    CHECK_EQ(many_errors, 0);
    CHECK_EQ(many_expected_next, (long)MANY * MANY_ROUNDS);
    for (int i = 0; i < MANY; i++) {
        CHECK(many[i].done);
        corio__coro_destroy(&many[i].coro);
        stack_free(&many[i].coro.stack);
    }
    free(many);
}

TEST_MAIN(CASE(callee_saved_registers_survive_switch),
          CASE(fp_control_is_per_coroutine),
          CASE(fp_control_survives_a_final_switch),
          CASE(fp_control_inherited_at_first_switch),
          CASE(new_coroutine_stack_is_aligned),
          CASE_T(ping_pong, 60),
          CASE_T(many_coroutines_round_robin, 60))
