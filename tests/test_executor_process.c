/* Executors: the process pool (spawn and fork), worker deaths, deadlines,
 * huge arguments, and awaiting its futures from coroutines. */
#include "corio.h"
#include "executor_util.h"
#include "harness.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- tasks (static on purpose: named by offset in the worker) ------------- */

static int print_marker(const corio_value_t *arg, corio_value_t *result)
{
    (void)arg;
    *result = corio_value_int(0);
    printf("printed-by-task\n"); /* buffered: the worker flushes it on exit */
    return 0;
}

static int get_pid(const corio_value_t *arg, corio_value_t *result)
{
    sleep_ms((int)corio_value_as_int(*arg));
    *result = corio_value_int(getpid());
    return 0;
}

/* arg: a path as bytes. Waits until the file exists (at most 60 s), the
 * gate a test opens when it is ready; result: the pid. */
static int wait_for_gate(const corio_value_t *arg, corio_value_t *result)
{
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)arg->len, (const char *)arg->ptr);
    for (int i = 0; i < 60000 && access(path, F_OK) != 0; i++)
        sleep_ms(1);
    *result = corio_value_int(getpid());
    return 0;
}

/* A gate path of this test process's own, not yet open. */
static void closed_gate(char *path, size_t size)
{
    snprintf(path, size, "/tmp/corio-gate-%d", (int)getpid());
    unlink(path);
}

static void open_gate(const char *path)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    close(fd);
}

/* arg: bytes "<how> <ms>": sleeps, then dies as told. */
static int die_after(const corio_value_t *arg, corio_value_t *result)
{
    char how[16] = {0};
    int ms = 0;
    sscanf(arg->ptr, "%15s %d", how, &ms);
    sleep_ms(ms);
    if (strcmp(how, "segv") == 0)
        raise(SIGSEGV);
    if (strcmp(how, "exit") == 0)
        _exit(3);
    if (strcmp(how, "kill") == 0)
        raise(SIGKILL);
    *result = corio_value_int(0);
    return 0;
}

/* arg: a path as bytes. Appends one byte to it (a count of runs that
 * survives the worker), then dies. */
static int crash_once(const corio_value_t *arg, corio_value_t *result)
{
    (void)result;
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)arg->len, (const char *)arg->ptr);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd >= 0 && write(fd, "x", 1) == 1)
        close(fd);
    _exit(3);
}

/* arg: a gate path. Waits for the gate, then dies. */
static int gate_then_exit(const corio_value_t *arg, corio_value_t *result)
{
    wait_for_gate(arg, result);
    _exit(1);
}

/* initarg: a path; fails (breaking the pool) once that file exists. */
static int init_fails_once_flagged(const corio_value_t *arg)
{
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)arg->len, (const char *)arg->ptr);
    return access(path, F_OK) == 0 ? -EPERM : 0;
}

/* Hangs on 1 (for a task deadline to kill); x * 10 otherwise. */
static int hang_on_one(const corio_value_t *arg, corio_value_t *result)
{
    intptr_t x = corio_value_as_int(*arg);
    if (x == 1)
        sleep_ms(60000);
    *result = corio_value_int(x * 10);
    return 0;
}

static int init_count;

static int count_init(const corio_value_t *arg)
{
    if (arg->len != 5 || memcmp(arg->ptr, "hello", 5) != 0)
        return -EINVAL;
    init_count++;
    return 0;
}

/* Result: init_count * 1000000 + pid. */
static int report_init(const corio_value_t *arg, corio_value_t *result)
{
    sleep_ms((int)corio_value_as_int(*arg));
    *result = corio_value_int((intptr_t)init_count * 1000000 + getpid());
    return 0;
}

static int init_fails(const corio_value_t *arg)
{
    (void)arg;
    return -EPERM;
}

/* ---- helpers ---------------------------------------------------------------- */

static corio_executor_t *process_pool(int n, corio_start_method_t method)
{
    corio_process_pool_options_t o = {.max_workers = n, .start_method = method};
    corio_executor_t *ex;
    CHECK_EQ(corio_process_pool_new(&ex, &o), 0);
    return ex;
}

static corio_future_t *submit_int(corio_executor_t *ex, corio_executor_fn fn, intptr_t x)
{
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, fn, corio_value_int(x), &f), 0);
    return f;
}

/* Zombie children of this process. */
static int count_zombies(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        if (fgets(buf, sizeof buf, fp)) {
            char *p = strrchr(buf, ')');
            char state;
            int ppid;
            if (p && sscanf(p + 2, "%c %d", &state, &ppid) == 2 && state == 'Z' &&
                ppid == getpid())
                n++;
        }
        fclose(fp);
    }
    closedir(d);
    return n;
}

static void wait_workers(corio_executor_t *ex, int n)
{
    for (int i = 0; i < 1000 && corio_executor_workers(ex) != n; i++)
        sleep_ms(5);
    CHECK_EQ(corio_executor_workers(ex), n);
}

/* ---- cases -------------------------------------------------------------------- */

static void basic(corio_start_method_t method)
{
    corio_executor_t *ex = process_pool(0, method);
    CHECK_EQ(corio_executor_max_workers(ex), sysconf(_SC_NPROCESSORS_ONLN));
    corio_future_t *f = submit_int(ex, square, 9);
    CHECK_EQ(result_int(f), 81);
    corio_future_unref(f);
    f = submit_int(ex, get_pid, 0);
    intptr_t pid = result_int(f);
    CHECK(pid != getpid() && pid > 0);
    corio_future_unref(f);
    f = submit_int(ex, fail_with_eio, 0);
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(f, 10 * CORIO_NS_PER_SEC, &v), -EIO); /* the task's own code */
    corio_future_unref(f);
    char s[4] = "xyz";
    CHECK_EQ(corio_executor_submit(ex, bytes_plus_one, (corio_value_t){s, 3}, &f), 0);
    CHECK_EQ(corio_await(f, &v), 0);
    CHECK(v.len == 3 && memcmp(v.ptr, "yz{", 3) == 0);
    corio_future_unref(f);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

static void test_spawn_basic(void)
{
    basic(CORIO_START_SPAWN);
}

static void test_fork_basic(void)
{
    basic(CORIO_START_FORK);
}

static int count_in(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Forked workers must not write out again what the parent had buffered,
 * while what their tasks print still reaches stdout. */
static void test_fork_does_not_repeat_buffered_output(void)
{
    char path[] = "/tmp/corio-fork-out-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    fflush(stdout);
    int saved = dup(1);
    CHECK(dup2(fd, 1) == 1);
    setvbuf(stdout, NULL, _IOFBF, BUFSIZ); /* line-buffered on a terminal */
    printf("buffered-by-parent\n");
    CHECK(__fpending(stdout) > 0); /* still in the buffer at the fork */
    corio_executor_t *ex = process_pool(2, CORIO_START_FORK);
    corio_future_t *f = submit_int(ex, print_marker, 0);
    CHECK_EQ(result_int(f), 0);
    corio_future_unref(f);
    corio_executor_free(ex);
    fflush(stdout);
    CHECK(dup2(saved, 1) == 1);
    close(saved);
    char buf[4096] = {0};
    CHECK(pread(fd, buf, sizeof buf - 1, 0) > 0);
    close(fd);
    CHECK_EQ(count_in(buf, "buffered-by-parent"), 1);
    CHECK_EQ(count_in(buf, "printed-by-task"), 1);
}

static void test_dlopen_function_refused(void)
{
    const char *libs[] = {"libz.so.1", "libcrypt.so.1", "libbz2.so.1.0", "liblzma.so.5"};
    const char *syms[] = {"zlibVersion", "crypt", "BZ2_bzlibVersion", "lzma_version_string"};
    for (size_t i = 0; i < 4; i++) {
        if (dlopen(libs[i], RTLD_NOLOAD | RTLD_NOW))
            continue; /* loaded at start: nameable */
        void *h = dlopen(libs[i], RTLD_NOW);
        void *fn = h ? dlsym(h, syms[i]) : NULL;
        if (!fn)
            continue;
        corio_executor_t *ex = process_pool(1, CORIO_START_SPAWN);
        corio_future_t *f;
        corio_executor_fn task;
        memcpy(&task, &fn, sizeof task);
        CHECK_EQ(corio_executor_submit(ex, task, corio_value_int(0), &f), CORIO_ENONAME);
        f = submit_int(ex, square, 4); /* the pool is fine */
        CHECK_EQ(result_int(f), 16);
        corio_future_unref(f);
        corio_executor_free(ex);
        return;
    }
    exit(77);
}

static void test_map_order_chunksizes(void)
{
    corio_executor_t *ex = process_pool(2, CORIO_START_SPAWN);
    size_t sizes[] = {1, 7, 100, 1000, 5000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        check_map(ex, 3001, sizes[k]);
    /* Bytes through map too. */
    char a[3] = "abc", b[2] = "xy";
    corio_value_t in[3] = {{a, 3}, corio_value_int(0), {b, 2}};
    in[1] = (corio_value_t){a, 1};
    corio_map_iter_t *it;
    CHECK_EQ(corio_executor_map(ex, bytes_plus_one, in, 3, 2, -1, &it), 0);
    corio_value_t v;
    CHECK_EQ(corio_map_next(it, &v), 1);
    CHECK(v.len == 3 && memcmp(v.ptr, "bcd", 3) == 0);
    free(v.ptr);
    CHECK_EQ(corio_map_next(it, &v), 1);
    CHECK(v.len == 1 && memcmp(v.ptr, "b", 1) == 0);
    free(v.ptr);
    CHECK_EQ(corio_map_next(it, &v), 1);
    CHECK(v.len == 2 && memcmp(v.ptr, "yz", 2) == 0);
    free(v.ptr);
    CHECK_EQ(corio_map_next(it, &v), 0);
    corio_map_free(it);
    corio_executor_free(ex);
}

/* A 100 MB argument to a pool whose workers are all busy: submit copies it
 * and returns, never waiting for a worker; the gate opens only after. */
static void test_huge_argument_and_result(void)
{
    char gate[64];
    closed_gate(gate, sizeof gate);
    corio_executor_t *ex = process_pool(2, CORIO_START_SPAWN);
    corio_value_t g = {gate, strlen(gate)};
    corio_future_t *busy[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(corio_executor_submit(ex, wait_for_gate, g, &busy[i]), 0);
    size_t len = 100u << 20;
    char *big = malloc(len);
    memset(big, 41, len);
    corio_future_t *f;
    int64_t t0 = corio_now();
    CHECK_EQ(corio_executor_submit(ex, bytes_plus_one, (corio_value_t){big, len}, &f), 0);
    fprintf(stderr, "# 100 MB submit to busy workers took %.1f ms\n",
            (double)(corio_now() - t0) / 1e6);
    free(big);
    CHECK(!corio_future_done(busy[0]) && !corio_future_done(busy[1]));
    CHECK(!corio_future_done(f));
    open_gate(gate);
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(f, 60 * CORIO_NS_PER_SEC, &v), 0);
    CHECK_EQ(corio_future_take_result(f, &v), 0);
    CHECK_EQ(v.len, len);
    CHECK(((char *)v.ptr)[0] == 42 && ((char *)v.ptr)[len - 1] == 42);
    free(v.ptr);
    corio_future_unref(f);
    for (int i = 0; i < 2; i++) {
        result_int(busy[i]);
        corio_future_unref(busy[i]);
    }
    unlink(gate);
    corio_executor_free(ex);
}

/* SIGKILL one worker while three tasks are queued: only its task fails. */
static void test_killed_worker_replaced(void)
{
    corio_executor_t *ex = process_pool(2, CORIO_START_SPAWN);
    corio_future_t *run[2] = {submit_int(ex, get_pid, 1000), submit_int(ex, get_pid, 1000)};
    while (!corio_future_running(run[0]) || !corio_future_running(run[1]))
        sleep_ms(1); /* one on each worker */
    corio_future_t *queued[3];
    for (int i = 0; i < 3; i++)
        queued[i] = submit_int(ex, square, i + 2);
    int pids[2];
    CHECK_EQ(corio_executor_worker_pids(ex, pids, 2), 2);
    sleep_ms(100);
    CHECK_EQ(kill(pids[0], SIGKILL), 0);
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        corio_value_t v;
        int rc = corio_await_timeout(run[i], 20 * CORIO_NS_PER_SEC, &v);
        if (rc == 0)
            continue;
        const char *msg = NULL;
        CHECK_EQ(rc, CORIO_EWORKERDIED);
        CHECK_EQ(corio_future_exception(run[i], &msg), CORIO_EWORKERDIED);
        CHECK(msg && strstr(msg, "signal 9"));
        fprintf(stderr, "# %s\n", msg);
        failed++;
    }
    CHECK_EQ(failed, 1);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(result_int(queued[i]), (i + 2) * (i + 2));
        corio_future_unref(queued[i]);
    }
    wait_workers(ex, 2);
    CHECK_EQ(count_zombies(), 0);
    corio_future_t *f = submit_int(ex, square, 11);
    CHECK_EQ(result_int(f), 121);
    corio_future_unref(f);
    corio_future_unref(run[0]);
    corio_future_unref(run[1]);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

static int death_code(corio_executor_t *ex, const char *how, const char **msg)
{
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, die_after, (corio_value_t){(void *)how, strlen(how) + 1}, &f), 0);
    corio_value_t v;
    int rc = corio_await_timeout(f, 20 * CORIO_NS_PER_SEC, &v);
    static char copy[200];
    const char *m = NULL;
    corio_future_exception(f, &m);
    snprintf(copy, sizeof copy, "%s", m ? m : "");
    *msg = copy;
    corio_future_unref(f);
    return rc;
}

static void test_crash_exit_and_error_told_apart(void)
{
    corio_executor_t *ex = process_pool(1, CORIO_START_SPAWN);
    const char *msg;
    CHECK_EQ(death_code(ex, "segv 0", &msg), CORIO_EWORKERDIED);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    CHECK(strstr(msg, "process worker")); /* the sanitizer turns SIGSEGV into an exit */
#else
    CHECK(strstr(msg, "signal 11"));
#endif
    CHECK_EQ(death_code(ex, "exit 0", &msg), CORIO_EWORKERDIED);
    CHECK(strstr(msg, "status 3"));
    CHECK_EQ(death_code(ex, "fine 0", &msg), 0);
    corio_future_t *f = submit_int(ex, fail_with_eio, 0);
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(f, 10 * CORIO_NS_PER_SEC, &v), -EIO);
    corio_future_unref(f);
    wait_workers(ex, 1);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

static void test_task_deadline_kills_hung_worker(void)
{
    corio_process_pool_options_t o = {.max_workers = 1, .task_timeout_ns = 300 * CORIO_NS_PER_MS};
    corio_executor_t *ex;
    CHECK_EQ(corio_process_pool_new(&ex, &o), 0);
    corio_future_t *hung = submit_int(ex, get_pid, 60000);
    corio_future_t *next = submit_int(ex, square, 5);
    corio_value_t v;
    int64_t t0 = corio_now();
    CHECK_EQ(corio_await_timeout(hung, 10 * CORIO_NS_PER_SEC, &v), -ETIMEDOUT);
    CHECK(corio_now() - t0 < 5 * CORIO_NS_PER_SEC);
    CHECK_EQ(result_int(next), 25);
    wait_workers(ex, 1);
    corio_future_unref(hung);
    corio_future_unref(next);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

static void test_initializer_once_and_max_tasks_per_child(void)
{
    corio_process_pool_options_t o = {.max_workers = 2, .initializer = count_init,
                                      .initarg = {"hello", 5}, .max_tasks_per_child = 2};
    corio_executor_t *ex;
    CHECK_EQ(corio_process_pool_new(&ex, &o), 0);
    corio_future_t *fs[12];
    for (int i = 0; i < 12; i++)
        fs[i] = submit_int(ex, report_init, 20);
    int pids[12];
    for (int i = 0; i < 12; i++) {
        intptr_t r = result_int(fs[i]);
        CHECK_EQ(r / 1000000, 1); /* the initializer ran once in this worker */
        pids[i] = (int)(r % 1000000);
        corio_future_unref(fs[i]);
    }
    for (int i = 0; i < 12; i++) {
        int same = 0;
        for (int j = 0; j < 12; j++)
            same += pids[j] == pids[i];
        CHECK(same <= 2); /* at most max_tasks_per_child tasks per worker */
    }
    wait_workers(ex, 2);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

static void test_initializer_failure_breaks_pool(void)
{
    corio_process_pool_options_t o = {.max_workers = 2, .initializer = init_fails};
    corio_executor_t *ex;
    CHECK_EQ(corio_process_pool_new(&ex, &o), 0);
    corio_future_t *f;
    int rc = corio_executor_submit(ex, square, corio_value_int(1), &f);
    if (rc == 0) {
        corio_value_t v;
        CHECK_EQ(corio_await_timeout(f, 10 * CORIO_NS_PER_SEC, &v), CORIO_EBROKEN);
        corio_future_unref(f);
    } else {
        CHECK_EQ(rc, CORIO_EBROKEN);
    }
    for (int i = 0; i < 200 && corio_executor_submit(ex, square, corio_value_int(1), &f) == 0; i++) {
        corio_value_t v;
        corio_await_timeout(f, 10 * CORIO_NS_PER_SEC, &v);
        corio_future_unref(f);
        sleep_ms(5);
    }
    CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(1), &f), CORIO_EBROKEN);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

/* Workers killed at random under a stream of short tasks: every future
 * completes, only with a result or CORIO_EWORKERDIED, never more failures
 * than kills, and the pool ends full. */
static void test_random_kills_under_load(void)
{
    corio_executor_t *ex = process_pool(2, CORIO_START_SPAWN);
    enum { N = 3000 };
    corio_future_t **fs = malloc(N * sizeof *fs);
    int kills = 0;
    for (int i = 0; i < N; i++) {
        fs[i] = submit_int(ex, i % 100 == 0 ? get_pid : square, i % 100 == 0 ? 2 : i);
        if (i % 300 == 150) {
            /* Kill a worker that has run a task: killing workers still
             * starting (slow under TSan) would, ten in a row, rightly
             * break the pool. */
            corio_value_t v;
            corio_future_t *pf = submit_int(ex, get_pid, 0);
            CHECK_EQ(corio_await_timeout(pf, 30 * CORIO_NS_PER_SEC, &v), 0);
            corio_future_unref(pf);
            if (kill((pid_t)corio_value_as_int(v), SIGKILL) == 0)
                kills++;
        }
    }
    int failed = 0;
    for (int i = 0; i < N; i++) {
        corio_value_t v;
        int rc = corio_await_timeout(fs[i], 30 * CORIO_NS_PER_SEC, &v);
        if (rc == 0 && i % 100 != 0)
            CHECK_EQ(corio_value_as_int(v), (intptr_t)i * i);
        else if (rc != 0) {
            CHECK_EQ(rc, CORIO_EWORKERDIED);
            corio_future_exception(fs[i], NULL);
            failed++;
        }
        corio_future_unref(fs[i]);
    }
    fprintf(stderr, "# %d kills, %d futures failed of %d\n", kills, failed, N);
    CHECK(failed <= kills);
    wait_workers(ex, 2);
    free(fs);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

/* Short tasks awaited one by one: the pool learns they are short and
 * starts sending tasks ahead to busy workers. */
static void warm_up(corio_executor_t *ex)
{
    for (int i = 0; i < 200; i++) {
        corio_future_t *f = submit_int(ex, square, i);
        CHECK_EQ(result_int(f), i * i);
        corio_future_unref(f);
    }
}

static void file_size_is(const char *path, off_t size)
{
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, size);
}

/* Tasks sent ahead to one worker behind a gate, one of them crashing: the
 * tasks before it keep their results (a worker used to hold finished
 * results back while it ran the next task, losing them when it died), the
 * crashing task fails and is not run again, and those after it run on the
 * replacement. */
static void test_worker_death_fails_only_its_task(void)
{
    char gate[64], count[80];
    closed_gate(gate, sizeof gate);
    snprintf(count, sizeof count, "%s.runs", gate);
    unlink(count);
    corio_executor_t *ex = process_pool(1, CORIO_START_SPAWN);
    warm_up(ex);
    corio_future_t *first, *before, *crash, *after[10];
    CHECK_EQ(corio_executor_submit(ex, wait_for_gate, (corio_value_t){gate, strlen(gate)}, &first),
             0);
    before = submit_int(ex, square, 6);
    CHECK_EQ(corio_executor_submit(ex, crash_once, (corio_value_t){count, strlen(count)}, &crash),
             0);
    for (int i = 0; i < 10; i++)
        after[i] = submit_int(ex, square, i);
    sleep_ms(300); /* the manager sends them ahead */
    open_gate(gate);
    CHECK(result_int(first) > 0);
    CHECK_EQ(result_int(before), 36);
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(crash, 20 * CORIO_NS_PER_SEC, &v), CORIO_EWORKERDIED);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(result_int(after[i]), i * i);
        corio_future_unref(after[i]);
    }
    file_size_is(count, 1);
    corio_future_unref(first);
    corio_future_unref(before);
    corio_future_unref(crash);
    corio_executor_free(ex);
    unlink(gate);
    unlink(count);
    CHECK_EQ(count_zombies(), 0);
}

/* Until both workers have run a task side by side, so both are ready. */
static void two_workers_ready(corio_executor_t *ex)
{
    for (int i = 0; i < 100; i++) {
        corio_future_t *a = submit_int(ex, get_pid, 200), *b = submit_int(ex, get_pid, 200);
        intptr_t pa = result_int(a), pb = result_int(b);
        corio_future_unref(a);
        corio_future_unref(b);
        if (pa != pb)
            return;
    }
    CHECK(!"a worker never became ready");
}

/* Until the pool says it is broken (submits fail); every future submitted
 * meanwhile fails with CORIO_EBROKEN. */
static void wait_broken(corio_executor_t *ex)
{
    for (int i = 0; i < 2000; i++) {
        corio_future_t *f;
        int rc = corio_executor_submit(ex, square, corio_value_int(1), &f);
        if (rc == CORIO_EBROKEN)
            return;
        CHECK_EQ(rc, 0);
        corio_value_t v;
        CHECK_EQ(corio_await_timeout(f, 30 * CORIO_NS_PER_SEC, &v), CORIO_EBROKEN);
        corio_future_unref(f);
    }
    CHECK(!"the pool never broke");
}

/* A worker holds tasks sent ahead behind a gated one when another worker's
 * replacement breaks the pool; then the gated one's worker dies. The tasks
 * behind it fail with CORIO_EBROKEN (they went back on the queue of the
 * broken pool, where nothing took them, and shutdown hung). */
static void test_broken_pool_fails_tasks_sent_ahead(void)
{
    char gate[64], flag[80];
    closed_gate(gate, sizeof gate);
    snprintf(flag, sizeof flag, "%s.flag", gate);
    unlink(flag);
    corio_process_pool_options_t o = {.max_workers = 2, .initializer = init_fails_once_flagged,
                                      .initarg = {flag, strlen(flag)}};
    corio_executor_t *ex;
    CHECK_EQ(corio_process_pool_new(&ex, &o), 0);
    two_workers_ready(ex); /* a worker still starting would see the flag */
    warm_up(ex);
    open_gate(flag); /* replacements fail to start from now on */
    corio_future_t *x, *behind[3], *die;
    CHECK_EQ(corio_executor_submit(ex, gate_then_exit, (corio_value_t){gate, strlen(gate)}, &x), 0);
    for (int i = 0; i < 3; i++)
        behind[i] = submit_int(ex, square, i + 2);
    sleep_ms(300);
    CHECK_EQ(corio_executor_submit(ex, die_after, (corio_value_t){"exit 0", 7}, &die), 0);
    wait_broken(ex);
    int stuck = 0;
    for (int i = 0; i < 3; i++)
        stuck += !corio_future_done(behind[i]);
    fprintf(stderr, "# %d tasks sent ahead behind the gate\n", stuck);
    open_gate(gate);
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(x, 20 * CORIO_NS_PER_SEC, &v), CORIO_EWORKERDIED);
    for (int i = 0; i < 3; i++) {
        int rc = corio_await_timeout(behind[i], 20 * CORIO_NS_PER_SEC, &v);
        CHECK(rc == CORIO_EBROKEN || (rc == 0 && corio_value_as_int(v) == (i + 2) * (i + 2)));
        corio_future_unref(behind[i]);
    }
    CHECK(corio_future_done(die));
    corio_future_exception(die, NULL);
    CHECK_EQ(corio_executor_shutdown(ex, true, false), 0);
    corio_future_unref(x);
    corio_future_unref(die);
    corio_executor_free(ex);
    unlink(gate);
    unlink(flag);
    CHECK_EQ(count_zombies(), 0);
}

/* pipeline.py's shape: stage one's done-callback (in pool one's manager
 * thread) submits stage two into another process pool. */
static corio_executor_t *second_stage;
static corio_future_t *stage_two[50];

static void chain(corio_future_t *f, void *arg)
{
    corio_value_t v;
    CHECK_EQ(corio_future_result(f, &v), 0);
    CHECK_EQ(corio_executor_submit(second_stage, square, v, &stage_two[(intptr_t)arg]), 0);
}

static void test_pipeline_between_process_pools(void)
{
    corio_executor_t *first = process_pool(1, CORIO_START_SPAWN);
    second_stage = process_pool(1, CORIO_START_SPAWN);
    corio_future_t *fs[50];
    for (intptr_t i = 0; i < 50; i++) {
        fs[i] = submit_int(first, square, i);
        CHECK_EQ(corio_future_add_done_callback(fs[i], chain, (void *)i), 0);
    }
    corio_executor_shutdown(first, true, false); /* every callback has run */
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(result_int(stage_two[i]), (intptr_t)i * i * i * i);
        corio_future_unref(stage_two[i]);
        corio_future_unref(fs[i]);
    }
    corio_executor_free(first);
    corio_executor_free(second_stage);
}

/* ---- spawn while other threads hold locks ---------------------------------- */

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stop_threads;

static void *hold_lock(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held);
    while (!atomic_load(&stop_threads))
        sleep_ms(5);
    pthread_mutex_unlock(&held);
    return NULL;
}

static void *malloc_storm(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_threads)) {
        void *p[64];
        for (int i = 0; i < 64; i++)
            p[i] = malloc((size_t)(i + 1) * 97);
        for (int i = 0; i < 64; i++)
            free(p[i]);
    }
    return NULL;
}

static void test_spawn_safe_with_threads_holding_locks(void)
{
    pthread_t a, b;
    pthread_create(&a, NULL, hold_lock, NULL);
    pthread_create(&b, NULL, malloc_storm, NULL);
    sleep_ms(20);
    corio_thread_pool_options_t to = {.max_workers = 2};
    corio_executor_t *threads;
    CHECK_EQ(corio_thread_pool_new(&threads, &to), 0);
    corio_future_t *tf = submit_int(threads, get_pid, 200); /* a pool thread is busy too */
    corio_executor_t *ex = process_pool(2, CORIO_START_SPAWN);
    for (int round = 0; round < 3; round++) {
        corio_future_t *f = submit_int(ex, square, round + 3);
        CHECK_EQ(result_int(f), (round + 3) * (round + 3));
        corio_future_unref(f);
        int pids[2];
        CHECK_EQ(corio_executor_worker_pids(ex, pids, 2), 2);
        kill(pids[0], SIGKILL); /* replacements are started amid the threads too */
        sleep_ms(50);
    }
    wait_workers(ex, 2);
    corio_future_t *f = submit_int(ex, square, 12);
    CHECK_EQ(result_int(f), 144);
    corio_future_unref(f);
    corio_executor_free(ex);
    result_int(tf);
    corio_future_unref(tf);
    corio_executor_free(threads);
    atomic_store(&stop_threads, true);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
}

/* ---- the parent dies --------------------------------------------------------- */

static corio_executor_t *orphan_pool;

static void *make_pool_and_exit(void *arg)
{
    int fd = (int)(intptr_t)arg;
    orphan_pool = process_pool(2, CORIO_START_SPAWN);
    corio_future_t *f = submit_int(orphan_pool, get_pid, 60000);
    (void)f;
    int pids[2];
    CHECK_EQ(corio_executor_worker_pids(orphan_pool, pids, 2), 2);
    CHECK(write(fd, pids, sizeof pids) == sizeof pids);
    return NULL; /* the thread that started the workers ends here */
}

static bool alive(int pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    bool live = fgets(buf, sizeof buf, fp) && !strstr(buf, ") Z");
    fclose(fp);
    return live;
}

static void test_workers_exit_when_parent_dies(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* orphans come to us, to be reaped */
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    pid_t child = fork();
    if (child == 0) {
        pthread_t t;
        pthread_create(&t, NULL, make_pool_and_exit, (void *)(intptr_t)fds[1]);
        pthread_join(t, NULL);
        sleep_ms(300);
        /* Workers outlived the thread: the pool still works. */
        corio_future_t *f = submit_int(orphan_pool, square, 3);
        if (result_int(f) != 9)
            _exit(1);
        raise(SIGKILL);
    }
    int pids[2];
    CHECK(read(fds[0], pids, sizeof pids) == sizeof pids);
    int status;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    for (int i = 0; i < 500 && (alive(pids[0]) || alive(pids[1])); i++)
        sleep_ms(10);
    CHECK(!alive(pids[0]) && !alive(pids[1]));
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

/* A worker dies while the parent still writes a large argument to it. */
static void test_worker_dies_during_large_write(void)
{
    corio_executor_t *ex = process_pool(1, CORIO_START_SPAWN);
    corio_future_t *dying;
    const char *how = "kill 300";
    CHECK_EQ(corio_executor_submit(ex, die_after, (corio_value_t){(void *)how, 9}, &dying), 0);
    size_t len = 64u << 20;
    char *big = calloc(1, len);
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, bytes_plus_one, (corio_value_t){big, len}, &f), 0);
    free(big);
    corio_value_t v;
    int64_t t0 = corio_now();
    CHECK_EQ(corio_await_timeout(dying, 10 * CORIO_NS_PER_SEC, &v), CORIO_EWORKERDIED);
    CHECK(corio_now() - t0 < 5 * CORIO_NS_PER_SEC);
    /* The large task was never started: it runs on the replacement. */
    CHECK_EQ(corio_await_timeout(f, 30 * CORIO_NS_PER_SEC, &v), 0);
    CHECK(v.len == len && ((char *)v.ptr)[0] == 1);
    corio_future_unref(f);
    corio_future_exception(dying, NULL);
    corio_future_unref(dying);
    /* And one killed from outside while it reads a large argument. */
    corio_future_t *g;
    big = calloc(1, len);
    CHECK_EQ(corio_executor_submit(ex, bytes_plus_one, (corio_value_t){big, len}, &g), 0);
    free(big);
    int pid;
    CHECK_EQ(corio_executor_worker_pids(ex, &pid, 1), 1);
    kill(pid, SIGKILL);
    int rc = corio_await_timeout(g, 30 * CORIO_NS_PER_SEC, &v);
    CHECK(rc == 0 || rc == CORIO_EWORKERDIED);
    corio_future_exception(g, NULL);
    corio_future_unref(g);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

static void test_shutdown_cancel_and_submit_after(void)
{
    char gate[64];
    closed_gate(gate, sizeof gate);
    corio_executor_t *ex = process_pool(1, CORIO_START_SPAWN);
    corio_future_t *run, *q[5];
    CHECK_EQ(corio_executor_submit(ex, wait_for_gate, (corio_value_t){gate, strlen(gate)}, &run),
             0);
    for (int i = 0; i < 5; i++)
        q[i] = submit_int(ex, get_pid, 300);
    sleep_ms(100);
    CHECK_EQ(corio_executor_shutdown(ex, false, true), 0);
    CHECK(!corio_future_done(run)); /* wait=false returned at once */
    open_gate(gate);
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(1), &f), CORIO_ESHUTDOWN);
    CHECK(result_int(run) > 0);
    int cancelled = 0;
    for (int i = 0; i < 5; i++) {
        corio_value_t v;
        int rc = corio_await_timeout(q[i], 10 * CORIO_NS_PER_SEC, &v);
        cancelled += rc == -ECANCELED;
        corio_future_unref(q[i]);
    }
    CHECK(cancelled >= 4); /* one may have been sent ahead to the worker */
    corio_future_unref(run);
    unlink(gate);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

/* Options refused before any descriptor exists close none: fd 0 was closed
 * (three times) on this path. */
static void test_bad_options_close_no_fd(void)
{
    if (fcntl(0, F_GETFD) < 0)
        CHECK_EQ(open("/dev/null", O_RDONLY), 0);
    struct stat before, after;
    CHECK_EQ(fstat(0, &before), 0);
    corio_process_pool_options_t bad[3] = {{.max_workers = -1}, {.max_tasks_per_child = -5},
                                           {.start_method = (corio_start_method_t)7}};
    for (int i = 0; i < 3; i++) {
        corio_executor_t *ex = NULL;
        CHECK_EQ(corio_process_pool_new(&ex, &bad[i]), -EINVAL);
        CHECK(fcntl(0, F_GETFD) >= 0);
        CHECK_EQ(fstat(0, &after), 0);
        CHECK(before.st_ino == after.st_ino && before.st_dev == after.st_dev);
    }
}

static void test_worker_pids_null_buffer(void)
{
    corio_executor_t *ex = process_pool(2, CORIO_START_SPAWN);
    CHECK_EQ(corio_executor_worker_pids(ex, NULL, 4), -EINVAL);
    CHECK_EQ(corio_executor_worker_pids(ex, NULL, 0), 2);
    int pids[1];
    CHECK_EQ(corio_executor_worker_pids(ex, pids, 1), 2);
    CHECK(pids[0] > 0);
    corio_executor_free(ex);
}

/* shutdown(wait) from a done-callback, which runs on the pool's manager
 * thread, returns -EDEADLK without waiting; the owner's free then joins
 * the manager (it was marked joined, and free freed the pool under it). */
static atomic_int manager_shutdown_rc = 1;

static void shutdown_on_manager(corio_future_t *f, void *arg)
{
    (void)f;
    atomic_store(&manager_shutdown_rc, corio_executor_shutdown(arg, true, false));
}

static void test_shutdown_wait_from_callback(void)
{
    corio_executor_t *ex = process_pool(1, CORIO_START_SPAWN);
    corio_future_t *f = submit_int(ex, get_pid, 50), *g = submit_int(ex, get_pid, 50);
    CHECK_EQ(corio_future_add_done_callback(f, shutdown_on_manager, ex), 0);
    CHECK(result_int(f) > 0);
    for (int i = 0; i < 2000 && atomic_load(&manager_shutdown_rc) == 1; i++)
        sleep_ms(5);
    CHECK_EQ(atomic_load(&manager_shutdown_rc), -EDEADLK);
    CHECK(result_int(g) > 0);
    corio_executor_free(ex);
    corio_future_unref(f);
    corio_future_unref(g);
    CHECK_EQ(count_zombies(), 0);
}

/* A map item killed by task_timeout_ns fails with -ETIMEDOUT like any
 * failed item, and the map goes on (it was taken for the map's own
 * deadline, which ended the map and lost the rest). */
static void test_map_item_task_timeout(void)
{
    corio_process_pool_options_t o = {.max_workers = 2, .task_timeout_ns = 300 * CORIO_NS_PER_MS};
    corio_executor_t *ex;
    CHECK_EQ(corio_process_pool_new(&ex, &o), 0);
    corio_value_t in[6], v;
    for (int i = 0; i < 6; i++)
        in[i] = corio_value_int(i);
    corio_map_iter_t *it;
    CHECK_EQ(corio_executor_map(ex, hang_on_one, in, 6, 1, -1, &it), 0);
    for (int i = 0; i < 6; i++) {
        int rc = corio_map_next(it, &v);
        CHECK_EQ(rc, i == 1 ? -ETIMEDOUT : 1);
        CHECK(i == 1 || corio_value_as_int(v) == i * 10);
    }
    CHECK_EQ(corio_map_next(it, &v), 0);
    corio_map_free(it);
    corio_executor_free(ex);
    CHECK_EQ(count_zombies(), 0);
}

static intptr_t await_process_future(void *arg)
{
    corio_executor_t *ex = arg;
    corio_loop_stats_t s0, s1;
    corio_loop_stats(corio_loop_current(), &s0);
    corio_future_t *f = submit_int(ex, get_pid, 500);
    CHECK(result_int(f) > 0);
    corio_loop_stats(corio_loop_current(), &s1);
    CHECK(s1.turns - s0.turns <= 5);
    corio_future_unref(f);
    return 0;
}

static void test_await_from_coroutine(void)
{
    corio_executor_t *ex = process_pool(1, CORIO_START_SPAWN);
    CHECK_EQ(corio_run(await_process_future, ex), 0);
    corio_executor_free(ex);
}

/* A pool created from a coroutine while the loop's default thread pool
 * runs a task: spawn never inherits that thread's state. */
static intptr_t pool_beside_default_pool(void *arg)
{
    (void)arg;
    corio_future_t *busy;
    CHECK_EQ(corio_run_in_executor(NULL, get_pid, corio_value_int(300), &busy), 0);
    corio_executor_t *ex = process_pool(2, CORIO_START_SPAWN);
    corio_future_t *f = submit_int(ex, square, 6);
    corio_value_t v;
    CHECK_EQ(corio_await(f, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 36);
    corio_future_unref(f);
    CHECK_EQ(corio_await(busy, &v), 0);
    CHECK_EQ(corio_value_as_int(v), getpid()); /* a thread of this process */
    corio_future_unref(busy);
    corio_executor_free(ex);
    return 0;
}

static void test_pool_created_beside_default_pool(void)
{
    CHECK_EQ(corio_run(pool_beside_default_pool, NULL), 0);
    CHECK_EQ(count_zombies(), 0);
}

TEST_MAIN(CASE_T(test_spawn_basic, 60), CASE_T(test_fork_basic, 60),
          CASE_T(test_fork_does_not_repeat_buffered_output, 60),
          CASE(test_dlopen_function_refused), CASE_T(test_map_order_chunksizes, 60),
          CASE_T(test_huge_argument_and_result, 120), CASE_T(test_killed_worker_replaced, 60),
          CASE_T(test_crash_exit_and_error_told_apart, 60),
          CASE_T(test_task_deadline_kills_hung_worker, 60),
          CASE_T(test_initializer_once_and_max_tasks_per_child, 60),
          CASE_T(test_initializer_failure_breaks_pool, 60),
          CASE_T(test_spawn_safe_with_threads_holding_locks, 60),
          CASE_T(test_workers_exit_when_parent_dies, 60),
          CASE_T(test_worker_dies_during_large_write, 120),
          CASE_T(test_shutdown_cancel_and_submit_after, 60), CASE_T(test_await_from_coroutine, 60),
          CASE_T(test_pool_created_beside_default_pool, 60),
          CASE_T(test_random_kills_under_load, 120),
          CASE_T(test_pipeline_between_process_pools, 60), CASE(test_bad_options_close_no_fd),
          CASE_T(test_worker_pids_null_buffer, 60),
          CASE_T(test_worker_death_fails_only_its_task, 60),
          CASE_T(test_broken_pool_fails_tasks_sent_ahead, 60),
          CASE_T(test_shutdown_wait_from_callback, 60), CASE_T(test_map_item_task_timeout, 60))
