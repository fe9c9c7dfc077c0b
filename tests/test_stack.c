/* Guarded coroutine stacks: overflow reports the task and aborts, faults that
 * are not overflows reach the application's own handler, 100,000 guarded
 * tasks fit under the default vm.max_map_count and well under 1 GiB, and
 * running out of mappings makes spawning fail with -ENOMEM, never a crash.
 *
 * Cases that crash on purpose do it in a forked child and read its stderr
 * through a pipe. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* ThreadSanitizer maps memory of its own for every fiber, and ASan's
 * allocator maps regions as it grows, so counts of mappings say little about
 * corio's stacks there. */
#if defined(UNDER_TSAN)
#define MAPS_SLACK 100000
#elif defined(UNDER_ASAN)
#define MAPS_SLACK 64
#else
#define MAPS_SLACK 0
#endif

/* ---- helpers ---------------------------------------------------------------- */

static long proc_maps_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f);
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long v = 65530; /* the kernel's default */
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

static long vm_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    CHECK(kib > 0);
    return kib;
}

/* Runs fn in a child with stderr captured; returns the wait status and the
 * child's stderr in buf. */
static int run_child(void (*fn)(void), char *buf, size_t cap)
{
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        fn();
        _exit(0);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t r;
    while ((r = read(p[0], buf + len, cap - 1 - len)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (len += (size_t)r) == cap - 1)
            break;
    }
    buf[len] = '\0';
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        CHECK(errno == EINTR);
    /* Echo it, so a failure shows what the child said. */
    fprintf(stderr, "# child stderr: %s", buf);
    return status;
}

/* ---- overflow -------------------------------------------------------------- */

static volatile sig_atomic_t app_handler_calls;

static void app_segv_handler(int sig, siginfo_t *si, void *uctx)
{
    (void)sig;
    (void)uctx;
    app_handler_calls++;
    static const char msg[] = "app handler: fault at wild pointer\n";
    if (si->si_addr == (void *)(uintptr_t)0x10)
        (void)!write(2, msg, sizeof msg - 1);
    _exit(42);
}

static void install_app_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = app_segv_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
}

static __attribute__((noinline)) int recurse(volatile int depth)
{
    volatile char frame[256];
    frame[0] = (char)depth;
    if (depth < 0) /* never: keeps the recursion from being a loop */
        return 0;
    return recurse(depth + 1) + frame[0];
}

static intptr_t overflow_task(void *arg)
{
    (void)arg;
    return recurse(0);
}

static intptr_t overflow_main(void *arg)
{
    (void)arg;
    corio_task_t *t;
    corio_task_options_t o = {.name = "deep-recursor", .stack_size = 0};
    CHECK_EQ(corio_spawn(NULL, &t, overflow_task, NULL, &o), 0);
    corio_task_await(t, NULL);
    fprintf(stderr, "survived the overflow\n");
    return 0;
}

static void overflow_child(void)
{
    /* An application handler installed first must not hide the overflow. */
    install_app_handler();
    corio_run(overflow_main, NULL);
    _exit(3);
}

static void overflow_reports_task_name_and_aborts(void)
{
    char buf[4096];
    int status = run_child(overflow_child, buf, sizeof buf);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGABRT);
    CHECK(strstr(buf, "stack overflow in task 'deep-recursor'") != NULL);
    CHECK(strstr(buf, "app handler") == NULL);
}

static intptr_t big_stack_task(void *arg)
{
    (void)arg;
    /* 256 KiB of frames: beyond the default 64 KiB, within the 1 MiB asked. */
    volatile char frame[256 * 1024];
    memset((char *)frame, 1, sizeof frame);
    return frame[12345];
}

static intptr_t big_stack_main(void *arg)
{
    (void)arg;
    corio_task_t *t;
    corio_task_options_t o = {.name = "big", .stack_size = 1024 * 1024};
    CHECK_EQ(corio_spawn(NULL, &t, big_stack_task, NULL, &o), 0);
    corio_value_t v;
    CHECK_EQ(corio_task_await(t, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 1);
    corio_task_release(t);
    return 0;
}

static void stack_size_is_per_task(void) { CHECK_EQ(corio_run(big_stack_main, NULL), 0); }

static intptr_t wild_task(void *arg)
{
    (void)arg;
    volatile uintptr_t wild = 0x10;
    return *(volatile int *)wild;
}

static intptr_t wild_main(void *arg)
{
    (void)arg;
    corio_task_t *t;
    corio_task_options_t o = {.name = "wild", .stack_size = 0};
    CHECK_EQ(corio_spawn(NULL, &t, wild_task, NULL, &o), 0);
    corio_task_await(t, NULL);
    return 0;
}

static void wild_child(void)
{
    install_app_handler();
    corio_run(wild_main, NULL);
    _exit(3);
}

/* A fault on the loop's own stack, outside every task. */
static void wild_outside_task_child(void)
{
    install_app_handler();
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    wild_task(NULL);
    _exit(3);
}

static void wild_child_default(void)
{
    corio_run(wild_main, NULL);
    _exit(3);
}

static void other_faults_chain_to_application_handler(void)
{
    char buf[4096];
    int status = run_child(wild_child, buf, sizeof buf);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 42);
    CHECK(strstr(buf, "app handler: fault at wild pointer") != NULL);
    CHECK(strstr(buf, "stack overflow") == NULL);
    status = run_child(wild_outside_task_child, buf, sizeof buf);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 42);
    CHECK(strstr(buf, "app handler: fault at wild pointer") != NULL);
    /* Without an application handler the default action applies. */
    status = run_child(wild_child_default, buf, sizeof buf);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGSEGV);
    CHECK(strstr(buf, "stack overflow") == NULL);
}

/* ---- 100,000 guarded tasks ------------------------------------------------- */

#define MANY_TASKS 100000
static long many_started;

static intptr_t sleeper(void *arg)
{
    (void)arg;
    many_started++;
    int rc = corio_sleep(3600 * CORIO_NS_PER_SEC);
    return rc == -ECANCELED ? 0 : 1;
}

static intptr_t many_main(void *arg)
{
    (void)arg;
    long limit = max_map_count();
    long maps0 = proc_maps_count();
    long rss0 = vm_rss_kib();
    for (long i = 0; i < MANY_TASKS; i++) {
        int rc = corio_spawn(NULL, NULL, sleeper, NULL, NULL);
        if (rc != 0) {
            corio_loop_t *loop = corio_loop_current();
            fprintf(stderr, "spawn %ld failed: %s (guards by %s, %ld maps)\n", i,
                    corio_strerror(rc), loop->stacks.guard_madvise ? "madvise" : "mprotect",
                    proc_maps_count());
            if (!loop->stacks.guard_madvise && i > 0)
                exit(77); /* no MADV_GUARD_INSTALL: mprotect guards cannot fit */
            CHECK_EQ(rc, 0);
        }
    }
    while (many_started < MANY_TASKS)
        CHECK_EQ(corio_sleep(0), 0);
    long maps = proc_maps_count();
    long rss = vm_rss_kib();
    corio_loop_stats_t st;
    CHECK_EQ(corio_loop_stats(corio_loop_current(), &st), 0);
    fprintf(stderr, "# %d sleeping tasks: %ld maps (was %ld, limit %ld), VmRSS %ld KiB "
            "(was %ld), %.1f KiB per task\n",
            MANY_TASKS, maps, maps0, limit, rss, rss0, (double)(rss - rss0) / MANY_TASKS);
    CHECK(st.tasks_live >= MANY_TASKS);
    CHECK(maps < limit);
    CHECK(maps < 65530); /* the default limit, whatever this machine says */
#ifndef UNDER_ASAN
    CHECK((rss - rss0) / (MANY_TASKS / 1000) <= 8 * 1000); /* at most 8 KiB a task */
    CHECK(rss < 1024 * 1024);
#else
    CHECK(rss < 1536 * 1024); /* ASan's redzones and shadow cost about as much again */
#endif
    return 0; /* corio_run cancels and awaits the sleepers */
}

static void hundred_thousand_guarded_tasks(void)
{
#ifdef UNDER_TSAN
    exit(77); /* ThreadSanitizer allows at most 8128 live fibers */
#endif
    CHECK_EQ(corio_run(many_main, NULL), 0);
}

/* ---- running out of mappings -------------------------------------------- */

static intptr_t trivial(void *arg) { return (intptr_t)arg; }

static intptr_t mmap_fault_main(void *arg)
{
    (void)arg;
    corio_loop_t *loop = corio_loop_current();
    corio_loop_stats_t st0, st;
    /* Custom stack sizes are never pooled, so every spawn maps. */
    corio_task_options_t o = {.name = "sized", .stack_size = 128 * 1024};
    corio_task_t *t[8];
    CHECK_EQ(corio_loop_stats(loop, &st0), 0);
    long maps0 = proc_maps_count();
    corio__fault_set(CORIO_FAULT_MMAP, 3);
    CHECK_EQ(corio_spawn(NULL, &t[0], trivial, (void *)1, &o), 0);
    CHECK_EQ(corio_spawn(NULL, &t[1], trivial, (void *)2, &o), 0);
    corio_task_t *failed = (corio_task_t *)(uintptr_t)1;
    CHECK_EQ(corio_spawn(NULL, &failed, trivial, (void *)3, &o), -ENOMEM);
    CHECK(failed == NULL);
    CHECK_EQ(corio_loop_stats(loop, &st), 0);
    CHECK_EQ(st.tasks_live, st0.tasks_live + 2); /* the failed one left nothing */
    CHECK_EQ(corio_spawn(NULL, &t[2], trivial, (void *)4, &o), 0);
    /* A default-sized task maps its stack on its first step (the pool is
     * empty here): it ends failed with -ENOMEM without running, and the next
     * spawn maps at once, so that it reports -ENOMEM itself. The sized
     * tasks finish first: unmapping their stacks would clear the flag. */
    CHECK_EQ(corio_sleep(0), 0);
    corio__fault_set(CORIO_FAULT_MMAP, 1);
    corio_task_t *lazy;
    CHECK_EQ(corio_spawn(NULL, &lazy, trivial, (void *)5, NULL), 0);
    CHECK_EQ(corio_task_await(lazy, NULL), -ENOMEM);
    corio_task_release(lazy);
    corio__fault_set(CORIO_FAULT_MMAP, 1);
    CHECK_EQ(corio_spawn(NULL, NULL, trivial, NULL, NULL), -ENOMEM);
    /* Mapping works again: so does spawning. */
    corio_task_t *again;
    CHECK_EQ(corio_spawn(NULL, &again, trivial, (void *)6, NULL), 0);
    corio_value_t v6;
    CHECK_EQ(corio_task_await(again, &v6), 0);
    CHECK_EQ(corio_value_as_int(v6), 6);
    corio_task_release(again);
    for (int i = 0; i < 3; i++) {
        corio_value_t v;
        CHECK_EQ(corio_task_await(t[i], &v), 0);
        CHECK_EQ(corio_value_as_int(v), i == 2 ? 4 : i + 1);
        corio_task_release(t[i]);
    }
    CHECK_EQ(corio_sleep(0), 0); /* let the finished tasks retire */
    CHECK_EQ(corio_loop_stats(loop, &st), 0);
    CHECK_EQ(st.tasks_live, st0.tasks_live);
    CHECK(proc_maps_count() <= maps0 + 2 + MAPS_SLACK); /* their stacks were unmapped */
    return 0;
}

static void mmap_failure_gives_enomem(void)
{
    CHECK_EQ(corio_run(mmap_fault_main, NULL), 0);
}

static void count_reports(corio_loop_t *loop, const corio_error_context_t *ctx, void *arg)
{
    (void)loop;
    (void)ctx;
    ++*(long *)arg;
}

/* Real exhaustion: an address-space limit makes mmap fail for real. */
static intptr_t exhaust_main(void *arg)
{
    (void)arg;
    corio_loop_t *loop = corio_loop_current();
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_AS, &rl) == 0);
    struct rlimit tight = rl;
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f);
    char line[256];
    long vm_kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &vm_kib) == 1)
            break;
    fclose(f);
    CHECK(vm_kib > 0);
    tight.rlim_cur = (rlim_t)(vm_kib + 64 * 1024) * 1024; /* 64 MiB more */
    CHECK(setrlimit(RLIMIT_AS, &tight) == 0);
    /* Tasks that could not get a stack on their first step are reported
     * through the error handler: count them instead of printing. */
    long reports = 0;
    corio_loop_set_error_handler(loop, count_reports, &reports);
    long spawned = 0;
    int rc;
    while ((rc = corio_spawn(NULL, NULL, sleeper, NULL, NULL)) == 0)
        if (++spawned % 64 == 0)
            CHECK_EQ(corio_sleep(0), 0); /* let them take their stacks */
    CHECK_EQ(rc, -ENOMEM);
    CHECK_EQ(corio_sleep(0), 0);
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    corio_loop_stats_t st;
    CHECK_EQ(corio_loop_stats(loop, &st), 0);
    CHECK(st.tasks_live > 100);
    CHECK_EQ((long)st.tasks_live, many_started + 1); /* the others left nothing */
    fprintf(stderr, "# %ld tasks sleeping, %ld failed to start, then spawn gave -ENOMEM "
            "under a 64 MiB address-space margin\n", many_started, reports);
    corio_loop_set_error_handler(loop, NULL, NULL);
    return 0; /* corio_run cancels the sleepers */
}

static void address_space_exhaustion_gives_enomem(void)
{
#if defined(UNDER_ASAN) || defined(UNDER_TSAN)
    exit(77); /* a sanitizer's shadow memory cannot live under RLIMIT_AS */
#endif
    CHECK_EQ(corio_run(exhaust_main, NULL), 0);
}

/* Stacks come back to the pool: spawning and joining in waves keeps the
 * mapping count flat. */
static intptr_t pool_main(void *arg)
{
    (void)arg;
    long maps_after_first = 0;
    for (int wave = 0; wave < 20; wave++) {
        corio_task_t *t[100];
        for (int i = 0; i < 100; i++)
            CHECK_EQ(corio_spawn(NULL, &t[i], trivial, (void *)(intptr_t)i, NULL), 0);
        for (int i = 0; i < 100; i++) {
            CHECK_EQ(corio_task_await(t[i], NULL), 0);
            corio_task_release(t[i]);
        }
        CHECK_EQ(corio_sleep(0), 0);
        if (wave == 0)
            maps_after_first = proc_maps_count();
    }
    CHECK(proc_maps_count() <= maps_after_first + 2 + MAPS_SLACK);
    return 0;
}

static void stacks_are_pooled(void) { CHECK_EQ(corio_run(pool_main, NULL), 0); }

/* ---- ASan: an unmapped stack leaves no poisoned shadow behind --------------------- */

#ifdef UNDER_ASAN
#include <sanitizer/asan_interface.h>

static corio_stack_t g_seen;

static intptr_t note_stack(void *arg)
{
    (void)arg;
    g_seen = corio_current_task()->coro.stack;
    return corio_sleep(0); /* leaves the task's frames on its stack once */
}
#endif

/* Frames a task leaves behind poison its stack's shadow; unmapped, the range
 * may next hold an io_uring ring, which ASan would then report as a stack
 * redzone (fuzz_http_parse hit this). */
static void unmapped_stack_shadow_is_clean(void)
{
#ifdef UNDER_ASAN
    CHECK_EQ(corio_run(note_stack, NULL), 0);
    CHECK(g_seen.map != NULL);
    CHECK(__asan_region_is_poisoned(g_seen.map, g_seen.map_size) == NULL);
#else
    exit(77); /* only meaningful under ASan */
#endif
}

TEST_MAIN(CASE_T(overflow_reports_task_name_and_aborts, 30),
          CASE_T(other_faults_chain_to_application_handler, 30),
          CASE(stack_size_is_per_task),
          CASE(stacks_are_pooled),
          CASE_T(hundred_thousand_guarded_tasks, 120),
          CASE(mmap_failure_gives_enomem),
          CASE_T(address_space_exhaustion_gives_enomem, 60),
          CASE(unmapped_stack_shadow_is_clean))
