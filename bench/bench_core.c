/* Core runtime figures, one `name value unit` line each.
 *
 *   bench_core spawn [n]      spawn, run and join n trivial tasks (default
 *                             100,000, as overhead.py's asyncio side), and
 *                             n sleep(0) yields of one task
 *   bench_core idle [n]       resident memory per sleeping task (100,000)
 *   bench_core timers [n]     n call_later timers set and fired (1,000,000)
 *   bench_core touch [n]      the fresh-memory floor of the cold spawn round:
 *                             one store per cache line of n task-sized
 *                             records, carved from new 2 MiB chunks as the
 *                             task arena carves them (100,000)
 *   bench_core uv_timers [n]  the same with libuv's uv_timer (when built
 *                             with libuv)
 *   bench_core prime [MiB]    touches and frees MiB of fresh memory (256),
 *                             so that a cold round started next finds the
 *                             guest's free pages backed by the VM's host
 *                             (see BENCHMARKS.md); prints how long it took
 *   bench_core                all of the above but prime */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

static double secs(int64_t ns) { return (double)ns / 1e9; }

/* ---- spawn, run, join ---------------------------------------------------- */

static long spawn_n;

static intptr_t trivial(void *arg) { return (intptr_t)arg; }

static intptr_t spawn_main(void *arg)
{
    (void)arg;
    corio_task_t **t = malloc((size_t)spawn_n * sizeof *t);
    if (!t)
        return -ENOMEM;
    int64_t t0 = 0, t1 = 0;
    /* The first round is measured cold, as overhead.py measures asyncio; the
     * second shows the cost once the heap's pages are there. */
    for (int round = 0; round < 2; round++) {
        t0 = corio_now();
        for (long i = 0; i < spawn_n; i++)
            if (corio_spawn(NULL, &t[i], trivial, (void *)(intptr_t)i, NULL) < 0)
                return -ENOMEM;
        for (long i = 0; i < spawn_n; i++) {
            corio_value_t v;
            if (corio_task_await(t[i], &v) < 0 || corio_value_as_int(v) != i)
                return -EIO;
            corio_task_release(t[i]);
        }
        t1 = corio_now();
        printf("spawn_join_%stasks_per_s %.0f tasks/s\n", round ? "warm_" : "",
               (double)spawn_n / secs(t1 - t0));
    }

    t0 = corio_now();
    for (long i = 0; i < spawn_n; i++)
        corio_sleep(0);
    t1 = corio_now();
    printf("sleep0_per_s %.0f yields/s\n", (double)spawn_n / secs(t1 - t0));
    free(t);
    return 0;
}

static int bench_spawn(long n)
{
    spawn_n = n;
    intptr_t rc = corio_run(spawn_main, NULL);
    if (rc != 0)
        fprintf(stderr, "spawn: %s\n", corio_strerror((int)rc));
    return rc != 0;
}

/* ---- fresh memory -------------------------------------------------------- */

/* What a cold spawn round pays for its records before any task work: the
 * kernel (and on a VM its host) backing and zeroing fresh pages. */
static int bench_touch(long n)
{
    const size_t chunk = CORIO_TASK_CHUNK_SIZE;
    const size_t rec = CORIO_TASK_RECORD_SIZE;
    char *bump = NULL, *end = NULL;
    int64_t t0 = corio_now();
    for (long i = 0; i < n; i++) {
        if (!bump || (size_t)(end - bump) < rec) {
            char *p = mmap(NULL, 2 * chunk, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return 1;
            bump = (char *)(((uintptr_t)p + chunk - 1) & ~(chunk - 1));
            madvise(bump, chunk, MADV_HUGEPAGE); /* the arena's later chunks */
            end = bump + chunk;
        }
        for (size_t off = 0; off < rec; off += 64)
            *(volatile long *)(bump + off) = i;
        bump += rec;
    }
    int64_t t1 = corio_now(); /* the mappings go with the process */
    printf("fresh_record_bytes %zu B\n", rec);
    printf("fresh_touch_per_s %.0f records/s\n", (double)n / secs(t1 - t0));
    return 0;
}

/* ---- priming --------------------------------------------------------------
 * This VM hands free 8 MiB blocks back to its host about two seconds after
 * they are freed (page_reporting_order=11), and the next touch of them
 * faults in the host: a cold round then measures the host, not the runtime.
 * Touching fresh memory first, in a process of its own, makes the host back
 * it again; run_core.sh does it before corio's cold round and before
 * asyncio's alike. */
static int bench_prime(long mib)
{
    size_t len = (size_t)mib << 20;
    int64_t t0 = corio_now();
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    madvise(p, len, MADV_HUGEPAGE); /* as the task arena's chunks */
    for (size_t off = 0; off < len; off += 4096)
        p[off] = 1;
    munmap(p, len);
    printf("prime_touch_ms %.1f ms\n", (double)(corio_now() - t0) / 1e6);
    return 0;
}

/* ---- idle tasks ---------------------------------------------------------- */

static long idle_n, idle_started;

static long vm_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static intptr_t sleeper(void *arg)
{
    (void)arg;
    idle_started++;
    corio_sleep(3600 * CORIO_NS_PER_SEC);
    return 0;
}

static intptr_t idle_main(void *arg)
{
    (void)arg;
    long rss0 = vm_rss_kib();
    for (long i = 0; i < idle_n; i++)
        if (corio_spawn(NULL, NULL, sleeper, NULL, NULL) < 0)
            return -ENOMEM;
    while (idle_started < idle_n)
        corio_sleep(0);
    long rss1 = vm_rss_kib();
    double per = (double)(rss1 - rss0) * 1024.0 / (double)idle_n;
    printf("idle_task_rss_bytes %.0f B\n", per);
    printf("idle_tasks_rss_total_mib %.1f MiB\n", (double)(rss1 - rss0) / 1024.0);
    return 0; /* corio_run cancels the sleepers */
}

static int bench_idle(long n)
{
    idle_n = n;
    return corio_run(idle_main, NULL) != 0;
}

/* ---- timers ----------------------------------------------------------------- */

/* Delays are pseudo-random whole milliseconds in [0, 10), the same sequence
 * for both libraries (libuv's timers have millisecond resolution). Setting a
 * million takes longer than 10 ms, so the run phase measures firing alone. */
static uint32_t lcg;
static int64_t next_delay_ms(void)
{
    lcg = lcg * 1664525u + 1013904223u;
    return (lcg >> 16) % 10;
}

static long timers_n, timers_fired;
static int64_t timers_end;
static corio_loop_t *timers_loop;

static void timer_cb(void *arg)
{
    (void)arg;
    if (++timers_fired == timers_n) {
        timers_end = corio_now();
        corio_loop_stop(timers_loop);
    }
}

static int bench_timers(long n)
{
    corio_handle_t *h = calloc((size_t)n, sizeof *h);
    if (!h || corio_loop_new(&timers_loop, NULL) < 0)
        return 1;
    timers_n = n;
    timers_fired = 0;
    lcg = 12345;
    int64_t t0 = corio_now();
    for (long i = 0; i < n; i++)
        corio_loop_call_later(timers_loop, &h[i], next_delay_ms() * CORIO_NS_PER_MS, timer_cb,
                              NULL);
    int64_t t1 = corio_now();
    corio_loop_run_forever(timers_loop);
    if (timers_fired != n)
        return 1;
    printf("timers_corio_set_ns %.1f ns/timer\n", (double)(t1 - t0) / (double)n);
    printf("timers_corio_total_ms %.1f ms\n", (double)(timers_end - t0) / 1e6);
    printf("timers_corio_per_s %.0f timers/s\n", (double)n / secs(timers_end - t0));
    corio_loop_close(timers_loop);
    free(h);
    return 0;
}

#ifdef HAVE_LIBUV
static void uv_cb(uv_timer_t *t)
{
    (void)t;
    if (++timers_fired == timers_n)
        timers_end = corio_now();
}

static int bench_uv_timers(long n)
{
    uv_loop_t loop;
    uv_timer_t *t = calloc((size_t)n, sizeof *t);
    if (!t || uv_loop_init(&loop) != 0)
        return 1;
    timers_n = n;
    timers_fired = 0;
    lcg = 12345;
    int64_t t0 = corio_now();
    uv_update_time(&loop);
    for (long i = 0; i < n; i++) {
        uv_timer_init(&loop, &t[i]);
        uv_timer_start(&t[i], uv_cb, (uint64_t)next_delay_ms(), 0);
    }
    int64_t t1 = corio_now();
    uv_run(&loop, UV_RUN_DEFAULT);
    if (timers_fired != n)
        return 1;
    printf("timers_uv_set_ns %.1f ns/timer\n", (double)(t1 - t0) / (double)n);
    printf("timers_uv_total_ms %.1f ms\n", (double)(timers_end - t0) / 1e6);
    printf("timers_uv_per_s %.0f timers/s\n", (double)n / secs(timers_end - t0));
    for (long i = 0; i < n; i++)
        uv_close((uv_handle_t *)&t[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(t);
    return 0;
}
#endif

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "all";
    long n = argc > 2 ? atol(argv[2]) : 0;
    bool all = strcmp(which, "all") == 0;
    int rc = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (all || strcmp(which, "spawn") == 0)
        rc |= bench_spawn(n ? n : 100000);
    if (all || strcmp(which, "touch") == 0)
        rc |= bench_touch(n ? n : 100000);
    if (all || strcmp(which, "idle") == 0)
        rc |= bench_idle(n ? n : 100000);
    if (all || strcmp(which, "timers") == 0)
        rc |= bench_timers(n ? n : 1000000);
#ifdef HAVE_LIBUV
    if (all || strcmp(which, "uv_timers") == 0)
        rc |= bench_uv_timers(n ? n : 1000000);
#endif
    if (strcmp(which, "prime") == 0)
        rc |= bench_prime(n ? n : 256);
    return rc;
}
