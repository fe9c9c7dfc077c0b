/* Executors: the thread pool, map, wait, as_completed, and awaiting
 * executor futures from coroutines. */
#include "corio.h"
#include "executor_util.h"
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int sleep_task(const corio_value_t *arg, corio_value_t *result)
{
    sleep_ms((int)corio_value_as_int(*arg));
    *result = corio_value_int(1);
    return 0;
}

/* Runs until the test opens the gate: "still running" without a clock. */
static atomic_int gate_open;
static int gated_task(const corio_value_t *arg, corio_value_t *result)
{
    (void)arg;
    while (!atomic_load(&gate_open))
        sleep_ms(1);
    *result = corio_value_int(1);
    return 0;
}

static corio_executor_t *thread_pool(int n)
{
    corio_thread_pool_options_t o = {.max_workers = n};
    corio_executor_t *ex;
    CHECK_EQ(corio_thread_pool_new(&ex, &o), 0);
    return ex;
}

static void test_submit_result_and_error(void)
{
    corio_executor_t *ex = thread_pool(0);
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ(corio_executor_max_workers(ex), cpus + 4 < 32 ? cpus + 4 : 32);
    corio_future_t *f, *g;
    CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(7), &f), 0);
    CHECK_EQ(result_int(f), 49);
    CHECK_EQ(corio_executor_submit(ex, fail_with_eio, corio_value_int(0), &g), 0);
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(g, -1, &v), -EIO);
    CHECK_EQ(corio_future_exception(g, NULL), -EIO);
    corio_future_unref(f);
    corio_future_unref(g);
    char buf[5] = "abcd";
    CHECK_EQ(corio_executor_submit(ex, bytes_plus_one, (corio_value_t){buf, 4}, &f), 0);
    buf[0] = 'z'; /* the argument was copied */
    CHECK_EQ(corio_await(f, &v), 0);
    CHECK_EQ(v.len, 4);
    CHECK(memcmp(v.ptr, "bcde", 4) == 0);
    corio_future_unref(f);
    corio_executor_free(ex);
}

static void test_workers_on_demand_and_reused(void)
{
    corio_executor_t *ex = thread_pool(8);
    CHECK_EQ(corio_executor_workers(ex), 0);
    for (int i = 0; i < 20; i++) {
        corio_future_t *f;
        CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(i), &f), 0);
        CHECK_EQ(result_int(f), i * i);
        corio_future_unref(f);
        sleep_ms(1); /* let the worker go idle again */
    }
    CHECK_EQ(corio_executor_workers(ex), 1);
    corio_executor_free(ex);
}

static int name_check(const corio_value_t *arg, corio_value_t *result)
{
    (void)arg;
    char name[16];
    pthread_getname_np(pthread_self(), name, sizeof name);
    *result = corio_value_int(strncmp(name, "crunch", 6) == 0);
    return 0;
}

static void test_thread_name_prefix(void)
{
    corio_thread_pool_options_t o = {.max_workers = 2, .thread_name_prefix = "crunch"};
    corio_executor_t *ex;
    CHECK_EQ(corio_thread_pool_new(&ex, &o), 0);
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, name_check, corio_value_int(0), &f), 0);
    CHECK_EQ(result_int(f), 1);
    corio_future_unref(f);
    corio_executor_free(ex);
}

static atomic_int init_calls;

static int init_fails(const corio_value_t *arg)
{
    (void)arg;
    atomic_fetch_add(&init_calls, 1);
    return -EINVAL;
}

static void test_initializer_failure_breaks_pool(void)
{
    corio_thread_pool_options_t o = {.max_workers = 2, .initializer = init_fails};
    corio_executor_t *ex;
    CHECK_EQ(corio_thread_pool_new(&ex, &o), 0);
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(3), &f), 0);
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(f, 5 * CORIO_NS_PER_SEC, &v), CORIO_EBROKEN);
    corio_future_unref(f);
    corio_future_t *g = NULL;
    for (int i = 0; i < 100 && corio_executor_submit(ex, square, corio_value_int(3), &g) == 0; i++) {
        corio_await_timeout(g, 5 * CORIO_NS_PER_SEC, &v);
        corio_future_unref(g);
        g = NULL;
    }
    CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(3), &g), CORIO_EBROKEN);
    CHECK(atomic_load(&init_calls) >= 1);
    corio_executor_free(ex);
}

static void test_shutdown_nowait_and_cancel_futures(void)
{
    corio_executor_t *ex = thread_pool(1);
    corio_future_t *running, *queued[10];
    atomic_store(&gate_open, 0);
    CHECK_EQ(corio_executor_submit(ex, gated_task, corio_value_int(0), &running), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(i), &queued[i]), 0);
    while (!corio_future_running(running))
        sleep_ms(1);
    CHECK_EQ(corio_future_cancel(running), -EALREADY); /* refused once running */
    CHECK_EQ(corio_executor_shutdown(ex, false, true), 0);
    CHECK(!corio_future_done(running)); /* wait=false returned at once */
    atomic_store(&gate_open, 1);
    for (int i = 0; i < 10; i++) {
        CHECK(corio_future_cancelled(queued[i]));
        corio_future_unref(queued[i]);
    }
    corio_future_t *late;
    CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(1), &late), CORIO_ESHUTDOWN);
    CHECK_EQ(result_int(running), 1); /* the running task still completes */
    corio_future_unref(running);
    corio_executor_free(ex);
}

/* A done-callback of a future that shutdown cancels asks the pool
 * something: it runs without the pool's lock held (it deadlocked). */
static corio_executor_t *cb_pool;
static atomic_int cb_workers = -1;

static void ask_pool(corio_future_t *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_store(&cb_workers, corio_executor_workers(cb_pool));
    CHECK_EQ(corio_executor_shutdown(cb_pool, false, false), 0);
}

static void test_cancel_callback_may_use_pool(void)
{
    cb_pool = thread_pool(1);
    corio_future_t *running, *queued;
    atomic_store(&gate_open, 0);
    CHECK_EQ(corio_executor_submit(cb_pool, gated_task, corio_value_int(0), &running), 0);
    while (!corio_future_running(running))
        sleep_ms(1);
    CHECK_EQ(corio_executor_submit(cb_pool, square, corio_value_int(2), &queued), 0);
    CHECK_EQ(corio_future_add_done_callback(queued, ask_pool, NULL), 0);
    CHECK_EQ(corio_executor_shutdown(cb_pool, false, true), 0);
    CHECK(corio_future_cancelled(queued));
    CHECK_EQ(atomic_load(&cb_workers), 1);
    atomic_store(&gate_open, 1);
    CHECK_EQ(result_int(running), 1);
    corio_future_unref(running);
    corio_future_unref(queued);
    corio_executor_free(cb_pool);
}

static void *shutdown_and_wait(void *arg)
{
    CHECK_EQ(corio_executor_shutdown(arg, true, false), 0);
    CHECK_EQ(corio_executor_workers(arg), 0);
    return NULL;
}

/* Two threads shutting down with wait at once: each returns when the
 * workers are gone, and each worker is joined once (both joined every
 * worker, which hung or crashed). */
static void test_concurrent_shutdown_wait(void)
{
    for (int round = 0; round < 20; round++) {
        corio_executor_t *ex = thread_pool(4);
        corio_future_t *fs[4];
        for (int i = 0; i < 4; i++)
            CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(20), &fs[i]), 0);
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            CHECK_EQ(pthread_create(&t[i], NULL, shutdown_and_wait, ex), 0);
        for (int i = 0; i < 2; i++)
            CHECK_EQ(pthread_join(t[i], NULL), 0);
        for (int i = 0; i < 4; i++) {
            CHECK(corio_future_done(fs[i]));
            corio_future_unref(fs[i]);
        }
        corio_executor_free(ex);
    }
}

/* shutdown(wait) from a done-callback on a worker cannot wait for that
 * worker: it returns -EDEADLK, and the owner's free later joins it (it
 * returned 0 and marked it joined, and free then freed the pool under the
 * running worker). */
static atomic_int cb_shutdown_rc = 1;

static void shutdown_from_callback(corio_future_t *f, void *arg)
{
    (void)f;
    atomic_store(&cb_shutdown_rc, corio_executor_shutdown(arg, true, false));
}

static void test_shutdown_wait_from_worker(void)
{
    corio_executor_t *ex = thread_pool(1);
    corio_future_t *f, *g;
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(50), &f), 0);
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(50), &g), 0);
    CHECK_EQ(corio_future_add_done_callback(f, shutdown_from_callback, ex), 0);
    CHECK_EQ(result_int(f), 1);
    for (int i = 0; i < 2000 && atomic_load(&cb_shutdown_rc) == 1; i++)
        sleep_ms(5);
    CHECK_EQ(atomic_load(&cb_shutdown_rc), -EDEADLK);
    CHECK_EQ(result_int(g), 1); /* wait or not, queued work still runs */
    corio_future_t *late;
    CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(1), &late), CORIO_ESHUTDOWN);
    corio_executor_free(ex);
    corio_future_unref(f);
    corio_future_unref(g);
}

static void test_shutdown_wait_runs_queued(void)
{
    corio_executor_t *ex = thread_pool(2);
    corio_future_t *fs[50];
    for (int i = 0; i < 50; i++)
        CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(2), &fs[i]), 0);
    CHECK_EQ(corio_executor_shutdown(ex, true, false), 0);
    for (int i = 0; i < 50; i++) {
        CHECK(corio_future_done(fs[i]));
        corio_future_unref(fs[i]);
    }
    CHECK_EQ(corio_executor_workers(ex), 0);
    corio_executor_free(ex);
}

/* Submits race with shutdown: each either is refused or gets a future that
 * completes (run, or failed because the pool left), never one that hangs. */
typedef struct racer {
    corio_executor_t *ex;
    corio_future_t *fs[2000];
    int n;
} racer_t;

static void *submit_until_refused(void *arg)
{
    racer_t *r = arg;
    while (r->n < 2000 &&
           corio_executor_submit(r->ex, square, corio_value_int(3), &r->fs[r->n]) == 0)
        r->n++;
    return NULL;
}

static void test_submit_races_shutdown(void)
{
    for (int round = 0; round < 20; round++) {
        corio_executor_t *ex = thread_pool(2);
        racer_t r[2] = {{.ex = ex}, {.ex = ex}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            CHECK_EQ(pthread_create(&t[i], NULL, submit_until_refused, &r[i]), 0);
        sleep_ms(round % 3);
        CHECK_EQ(corio_executor_shutdown(ex, true, false), 0);
        for (int i = 0; i < 2; i++) {
            CHECK_EQ(pthread_join(t[i], NULL), 0);
            for (int k = 0; k < r[i].n; k++) {
                corio_value_t v;
                int rc = corio_await_timeout(r[i].fs[k], 10 * CORIO_NS_PER_SEC, &v);
                CHECK(rc == 0 || rc == CORIO_ESHUTDOWN);
                CHECK(rc != 0 || corio_value_as_int(v) == 9);
                corio_future_unref(r[i].fs[k]);
            }
        }
        corio_executor_free(ex);
    }
}

/* A task that submits a task and waits for it, after tiny tasks taught
 * the pool to spare wake-ups: an idle worker takes the inner task (it
 * was left for the busy outer one, "soon free", which waited on it). */
static corio_executor_t *nest_pool;

static int outer_task(const corio_value_t *arg, corio_value_t *result)
{
    (void)arg;
    corio_future_t *f;
    int rc = corio_executor_submit(nest_pool, square, corio_value_int(5), &f);
    if (rc < 0)
        return rc;
    corio_value_t v;
    rc = corio_await_timeout(f, 10 * CORIO_NS_PER_SEC, &v);
    corio_future_unref(f);
    *result = corio_value_int(rc == 0 ? corio_value_as_int(v) : rc);
    return 0;
}

static void test_task_waiting_on_nested_task(void)
{
    nest_pool = thread_pool(4);
    for (int round = 0; round < 10; round++) {
        corio_future_t *fs[64];
        for (int i = 0; i < 64; i++)
            CHECK_EQ(corio_executor_submit(nest_pool, square, corio_value_int(i), &fs[i]), 0);
        for (int i = 0; i < 64; i++) {
            CHECK_EQ(result_int(fs[i]), i * i);
            corio_future_unref(fs[i]);
        }
        sleep_ms(50); /* the workers go to sleep */
        corio_future_t *f;
        CHECK_EQ(corio_executor_submit(nest_pool, outer_task, corio_value_int(0), &f), 0);
        CHECK_EQ(result_int(f), 25);
        corio_future_unref(f);
    }
    corio_executor_free(nest_pool);
}

/* A job that blocks on a job queued right behind it: while tasks are tiny
 * and the queue long, one worker takes both in one batch, and the wait
 * used to last for ever with the other worker idle. The waiting job now
 * hands the rest of its batch back first. */
static _Atomic(corio_future_t *) g_behind;

static int wait_for_behind(const corio_value_t *arg, corio_value_t *result)
{
    (void)arg;
    corio_future_t *f;
    while (!(f = atomic_load(&g_behind)))
        sched_yield();
    corio_value_t v;
    int rc = corio_await_timeout(f, 5 * CORIO_NS_PER_SEC, &v);
    *result = v;
    return rc;
}

static void test_wait_on_job_in_same_batch(void)
{
    corio_executor_t *ex = thread_pool(2);
    enum { TINY = 2000 };
    static corio_future_t *fs[2 * TINY];
    for (int round = 0; round < 30; round++) {
        /* A and B in the middle of a long queue of tiny jobs. */
        corio_future_t *a, *b;
        atomic_store(&g_behind, NULL);
        for (int i = 0; i < 2 * TINY; i++) {
            if (i == TINY) {
                CHECK_EQ(corio_executor_submit(ex, wait_for_behind, corio_value_int(0), &a), 0);
                CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(6), &b), 0);
                atomic_store(&g_behind, b);
            }
            CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(i), &fs[i]), 0);
        }
        for (int i = 0; i < 2 * TINY; i++) {
            CHECK_EQ(result_int(fs[i]), i * i);
            corio_future_unref(fs[i]);
        }
        CHECK_EQ(result_int(a), 36);
        corio_future_unref(a);
        corio_future_unref(b);
    }
    corio_executor_free(ex);
}

/* shutdown(cancel_futures) cancels the jobs a worker holds in its batch
 * too, not only the pool's queue: in Python they would still be queued. */
static atomic_int g_gate_started, g_gate_go, g_shut, g_ran_after;

static int gate_job(const corio_value_t *arg, corio_value_t *result)
{
    *result = *arg;
    atomic_store(&g_gate_started, 1);
    while (!atomic_load(&g_gate_go))
        sched_yield();
    return 0;
}

static int note_if_after_shutdown(const corio_value_t *arg, corio_value_t *result)
{
    *result = *arg;
    if (atomic_load(&g_shut))
        atomic_fetch_add(&g_ran_after, 1);
    return 0;
}

static void test_cancel_futures_reaches_batches(void)
{
    enum { EACH = 2000 };
    static corio_future_t *fs[2 * EACH + 1];
    corio_executor_t *ex = thread_pool(1);
    for (int i = 0; i <= 2 * EACH; i++) {
        bool gate = i == EACH;
        CHECK_EQ(corio_executor_submit(ex, gate ? gate_job : note_if_after_shutdown,
                                       corio_value_int(i), &fs[i]), 0);
    }
    while (!atomic_load(&g_gate_started))
        sched_yield();
    CHECK_EQ(corio_executor_shutdown(ex, false, true), 0);
    atomic_store(&g_shut, 1);
    atomic_store(&g_gate_go, 1);
    CHECK_EQ(corio_executor_shutdown(ex, true, false), 0);
    int cancelled = 0;
    for (int i = 0; i <= 2 * EACH; i++) {
        CHECK(corio_future_done(fs[i]));
        cancelled += corio_future_cancelled(fs[i]);
        corio_future_unref(fs[i]);
    }
    CHECK_EQ(atomic_load(&g_ran_after), 0);
    CHECK(cancelled > 0);
    corio_executor_free(ex);
}

/* A pending future of a closed loop can never complete: wait and
 * as_completed refuse it rather than wait it out or leave it out. */
static void test_wait_closed_loop_future(void)
{
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    corio_future_t *f;
    CHECK_EQ(corio_future_new(loop, &f), 0);
    CHECK_EQ(corio_loop_close(loop), 0);
    corio_future_t *done[1], *not_done[1];
    size_t nd = 9, nn = 9;
    CHECK_EQ(corio_wait(&f, 1, 60 * CORIO_NS_PER_SEC, CORIO_ALL_COMPLETED, done, &nd, not_done, &nn),
             -EINVAL);
    corio_as_completed_t *it = NULL;
    CHECK_EQ(corio_as_completed_new(&f, 1, 60 * CORIO_NS_PER_SEC, &it), -EINVAL);
    CHECK(it == NULL);
    corio_future_unref(f);
    CHECK_EQ(corio_loop_free(loop), 0);
}

/* A short job never waits behind a long one while a worker sleeps, even
 * after many tiny tasks taught the pool to spare wake-ups. */
static void test_short_job_not_stuck_behind_long(void)
{
    corio_executor_t *ex = thread_pool(2);
    for (int round = 0; round < 3; round++) {
        corio_future_t *fs[2000];
        for (int i = 0; i < 2000; i++)
            CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(i), &fs[i]), 0);
        for (int i = 0; i < 2000; i++) {
            result_int(fs[i]);
            corio_future_unref(fs[i]);
        }
        corio_future_t *slow, *quick;
        atomic_store(&gate_open, 0);
        CHECK_EQ(corio_executor_submit(ex, gated_task, corio_value_int(0), &slow), 0);
        sleep_ms(50);
        CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(3), &quick), 0);
        CHECK_EQ(result_int(quick), 9); /* with slow still running */
        CHECK(!corio_future_done(slow));
        atomic_store(&gate_open, 1);
        corio_future_unref(quick);
        result_int(slow);
        corio_future_unref(slow);
    }
    corio_executor_free(ex);
}

/* ---- callbacks --------------------------------------------------------------- */

static pthread_t cb_thread;
static int cb_order[8], cb_n;

static void record_cb(corio_future_t *f, void *arg)
{
    (void)f;
    cb_thread = pthread_self();
    cb_order[cb_n++] = (int)(intptr_t)arg;
}

static void test_done_callbacks(void)
{
    corio_executor_t *ex = thread_pool(1);
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(50), &f), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_future_add_done_callback(f, record_cb, (void *)(intptr_t)i), 0);
    CHECK_EQ(result_int(f), 1);
    corio_executor_shutdown(ex, true, false); /* the callbacks ran before the worker left */
    CHECK_EQ(cb_n, 3);
    CHECK(cb_order[0] == 0 && cb_order[1] == 1 && cb_order[2] == 2);
    CHECK(!pthread_equal(cb_thread, pthread_self())); /* in the completing thread */
    CHECK_EQ(corio_future_add_done_callback(f, record_cb, (void *)(intptr_t)9), 0);
    CHECK_EQ(cb_n, 4); /* already done: at once, here */
    CHECK(pthread_equal(cb_thread, pthread_self()));
    corio_future_unref(f);
    corio_executor_free(ex);
}

/* A failing callback is reported in the worker that ran it; the callbacks
 * after it still run, and the pool goes on taking work. */
static atomic_int cb_failures, cb_last_code, cb_after;
static atomic_bool cb_report_off_loop;

static void count_failure(corio_loop_t *loop, const corio_error_context_t *ctx, void *arg)
{
    (void)arg;
    atomic_store(&cb_report_off_loop, loop == NULL);
    atomic_store(&cb_last_code, ctx->code);
    atomic_fetch_add(&cb_failures, 1);
}

static int failing_cb(corio_future_t *f, void *arg)
{
    (void)f;
    return (int)(intptr_t)arg;
}

static void after_cb(corio_future_t *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&cb_after, 1);
}

static void test_failing_callback_reported_pool_goes_on(void)
{
    corio_future_set_callback_error_handler(count_failure, NULL);
    corio_executor_t *ex = thread_pool(2);
    enum { N = 50 };
    corio_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(i % 3), &fs[i]), 0);
        CHECK_EQ(corio_future_add_fallible_callback(fs[i], failing_cb, (void *)(intptr_t)-EIO), 0);
        CHECK_EQ(corio_future_add_done_callback(fs[i], after_cb, NULL), 0);
    }
    for (int i = 0; i < N; i++)
        CHECK_EQ(result_int(fs[i]), 1);
    /* Results can be seen before their callbacks end; the pool's own
     * shutdown waits for them below, so submit more first. */
    corio_future_t *later;
    CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(12), &later), 0);
    CHECK_EQ(result_int(later), 144);
    corio_executor_shutdown(ex, true, false);
    CHECK_EQ(atomic_load(&cb_failures), N);
    CHECK_EQ(atomic_load(&cb_last_code), -EIO);
    CHECK(atomic_load(&cb_report_off_loop));
    CHECK_EQ(atomic_load(&cb_after), N);
    CHECK_EQ(corio_executor_workers(ex), 0);
    for (int i = 0; i < N; i++)
        corio_future_unref(fs[i]);
    corio_future_unref(later);
    corio_executor_free(ex);
    corio_future_set_callback_error_handler(NULL, NULL);
}

/* The pipeline: stage one's callback submits stage two into another pool. */
typedef struct pipeline {
    corio_executor_t *second;
    corio_future_t *out[100];
    atomic_int n;
} pipeline_t;

static pipeline_t pipe_state;

static void to_second_stage(corio_future_t *f, void *arg)
{
    corio_value_t v;
    CHECK_EQ(corio_future_result(f, &v), 0);
    int i = (int)(intptr_t)arg;
    CHECK_EQ(corio_executor_submit(pipe_state.second, square, v, &pipe_state.out[i]), 0);
    atomic_fetch_add(&pipe_state.n, 1);
}

static void test_pipeline_callback_submits(void)
{
    corio_executor_t *first = thread_pool(2);
    pipe_state.second = thread_pool(2);
    corio_future_t *fs[100];
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(corio_executor_submit(first, square, corio_value_int(i), &fs[i]), 0);
        CHECK_EQ(corio_future_add_done_callback(fs[i], to_second_stage, (void *)(intptr_t)i), 0);
    }
    corio_executor_shutdown(first, true, false);
    CHECK_EQ(atomic_load(&pipe_state.n), 100);
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(result_int(pipe_state.out[i]), (intptr_t)i * i * i * i);
        corio_future_unref(pipe_state.out[i]);
        corio_future_unref(fs[i]);
    }
    corio_executor_free(first);
    corio_executor_free(pipe_state.second);
}

/* ---- wait and as_completed --------------------------------------------------- */

#define MANY 10000

static void test_wait_10000(void)
{
    corio_executor_t *ex = thread_pool(4);
    corio_future_t **fs = malloc(MANY * sizeof *fs), **done = malloc(MANY * sizeof *done);
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(i), &fs[i]), 0);
    size_t nd = 0, nn = 0;
    CHECK_EQ(corio_wait(fs, MANY, -1, CORIO_FIRST_COMPLETED, done, &nd, NULL, &nn), 0);
    CHECK(nd >= 1);
    CHECK_EQ(nd + nn, MANY);
    CHECK_EQ(corio_wait(fs, MANY, 30 * CORIO_NS_PER_SEC, CORIO_ALL_COMPLETED, done, &nd, NULL,
                        &nn), 0);
    CHECK_EQ(nd, MANY);
    CHECK_EQ(nn, 0);
    for (int i = 0; i < MANY; i++)
        corio_future_unref(fs[i]);
    free(fs);
    free(done);
    corio_executor_free(ex);
}

static void test_wait_first_exception_and_timeout(void)
{
    corio_executor_t *ex = thread_pool(3);
    corio_future_t *fs[3], *done[3], *not_done[3];
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(1000), &fs[0]), 0);
    CHECK_EQ(corio_executor_submit(ex, fail_with_eio, corio_value_int(0), &fs[1]), 0);
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(1000), &fs[2]), 0);
    size_t nd, nn;
    CHECK_EQ(corio_wait(fs, 3, 10 * CORIO_NS_PER_SEC, CORIO_FIRST_EXCEPTION, done, &nd,
                        not_done, &nn), 0);
    CHECK_EQ(nd, 1);
    CHECK(done[0] == fs[1]);
    CHECK_EQ(corio_future_exception(fs[1], NULL), -EIO);
    CHECK_EQ(corio_wait(fs, 3, 50 * CORIO_NS_PER_MS, CORIO_ALL_COMPLETED, done, &nd, not_done,
                        &nn), 0);
    CHECK_EQ(nn, 2); /* the timeout left two pending */
    for (int i = 0; i < 3; i++)
        corio_future_unref(fs[i]);
    corio_executor_free(ex);
}

static void test_as_completed_10000_with_duplicates(void)
{
    corio_executor_t *ex = thread_pool(4);
    corio_future_t **fs = malloc(2 * MANY * sizeof *fs);
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(corio_executor_submit(ex, square, corio_value_int(i), &fs[i]), 0);
    for (int i = 0; i < MANY; i++)
        fs[MANY + i] = fs[MANY - 1 - i]; /* every future twice */
    corio_as_completed_t *it;
    CHECK_EQ(corio_as_completed_new(fs, 2 * MANY, 30 * CORIO_NS_PER_SEC, &it), 0);
    char *seen = calloc(MANY, 1);
    corio_future_t *f;
    int n = 0, rc;
    while ((rc = corio_as_completed_next(it, &f)) == 1) {
        CHECK(corio_future_done(f));
        corio_value_t v;
        CHECK_EQ(corio_future_result(f, &v), 0);
        intptr_t x = corio_value_as_int(v);
        int i = 0;
        while ((intptr_t)i * i != x)
            i++;
        CHECK(!seen[i]);
        seen[i] = 1;
        n++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(n, MANY);
    corio_as_completed_free(it);
    for (int i = 0; i < MANY; i++)
        corio_future_unref(fs[i]);
    free(seen);
    free(fs);
    corio_executor_free(ex);
}

static void test_as_completed_timeout(void)
{
    corio_executor_t *ex = thread_pool(2);
    corio_future_t *fs[2];
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(10), &fs[0]), 0);
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(1000), &fs[1]), 0);
    corio_as_completed_t *it;
    CHECK_EQ(corio_as_completed_new(fs, 2, 300 * CORIO_NS_PER_MS, &it), 0);
    corio_future_t *f;
    CHECK_EQ(corio_as_completed_next(it, &f), 1);
    CHECK(f == fs[0]);
    CHECK_EQ(corio_as_completed_next(it, &f), -ETIMEDOUT);
    corio_as_completed_free(it);
    corio_future_cancel(fs[1]);
    corio_future_unref(fs[0]);
    corio_future_unref(fs[1]);
    corio_executor_shutdown(ex, false, true);
    corio_executor_free(ex);
}

/* ---- map ---------------------------------------------------------------------- */

/* A timeout too long for the clock means no timeout, not an overflow into
 * the past. */
static void test_huge_timeouts_mean_none(void)
{
    corio_executor_t *ex = thread_pool(2);
    corio_future_t *fs[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(30), &fs[i]), 0);
    size_t nd = 0, nn = 0;
    CHECK_EQ(corio_wait(fs, 3, INT64_MAX, CORIO_ALL_COMPLETED, NULL, &nd, NULL, &nn), 0);
    CHECK_EQ(nd, 3);
    CHECK_EQ(nn, 0);
    for (int i = 0; i < 3; i++) {
        corio_future_unref(fs[i]);
        CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(30), &fs[i]), 0);
    }
    corio_as_completed_t *ac;
    CHECK_EQ(corio_as_completed_new(fs, 3, INT64_MAX, &ac), 0);
    corio_future_t *f;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_as_completed_next(ac, &f), 1);
    CHECK_EQ(corio_as_completed_next(ac, &f), 0);
    corio_as_completed_free(ac);
    for (int i = 0; i < 3; i++)
        corio_future_unref(fs[i]);
    corio_value_t in[4];
    for (int i = 0; i < 4; i++)
        in[i] = corio_value_int(20);
    corio_map_iter_t *it;
    CHECK_EQ(corio_executor_map(ex, sleep_task, in, 4, 1, INT64_MAX, &it), 0);
    corio_value_t v;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(corio_map_next(it, &v), 1);
        CHECK_EQ(corio_value_as_int(v), 1);
    }
    CHECK_EQ(corio_map_next(it, &v), 0);
    corio_map_free(it);
    corio_executor_free(ex);
}

static void test_map_order_chunksizes(void)
{
    corio_executor_t *ex = thread_pool(4);
    size_t sizes[] = {0, 1, 3, 7, 100, 1000, 5000};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
        check_map(ex, 2345, sizes[k]);
    check_map(ex, 0, 10);
    corio_executor_free(ex);
}

static int fail_odd(const corio_value_t *arg, corio_value_t *result)
{
    *result = *arg;
    return corio_value_as_int(*arg) % 2 ? -EDOM : 0;
}

static void test_map_errors_timeout_and_early_free(void)
{
    corio_executor_t *ex = thread_pool(2);
    corio_value_t in[10];
    for (int i = 0; i < 10; i++)
        in[i] = corio_value_int(i);
    corio_map_iter_t *it;
    CHECK_EQ(corio_executor_map(ex, fail_odd, in, 10, 3, -1, &it), 0);
    corio_value_t v;
    for (int i = 0; i < 10; i++)
        CHECK_EQ(corio_map_next(it, &v), i % 2 ? -EDOM : 1);
    CHECK_EQ(corio_map_next(it, &v), 0);
    corio_map_free(it);
    for (int i = 0; i < 10; i++)
        in[i] = corio_value_int(i < 2 ? 1 : 2000);
    CHECK_EQ(corio_executor_map(ex, sleep_task, in, 10, 1, 200 * CORIO_NS_PER_MS, &it), 0);
    CHECK_EQ(corio_map_next(it, &v), 1);
    CHECK_EQ(corio_map_next(it, &v), 1);
    CHECK_EQ(corio_map_next(it, &v), -ETIMEDOUT);
    CHECK_EQ(corio_map_next(it, &v), 0);
    corio_map_free(it);
    /* Freed before reading: what runs finishes, the rest is cancelled. */
    char big[1000] = {0};
    corio_value_t bin[40];
    for (int i = 0; i < 40; i++)
        bin[i] = (corio_value_t){big, sizeof big};
    CHECK_EQ(corio_executor_map(ex, bytes_plus_one, bin, 40, 2, -1, &it), 0);
    corio_map_free(it);
    corio_executor_shutdown(ex, true, true);
    corio_executor_free(ex);
}

/* Results complete before the map's deadline are returned after it; only
 * one not there by then is -ETIMEDOUT (it was for any read past it). */
static void test_map_deadline_keeps_done_results(void)
{
    corio_executor_t *ex = thread_pool(2);
    corio_value_t in[4];
    for (int i = 0; i < 4; i++)
        in[i] = corio_value_int(i);
    corio_map_iter_t *it;
    CHECK_EQ(corio_executor_map(ex, square, in, 4, 1, 200 * CORIO_NS_PER_MS, &it), 0);
    sleep_ms(1500); /* far past the deadline; the tasks are instant */
    corio_value_t v;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(corio_map_next(it, &v), 1);
        CHECK_EQ(corio_value_as_int(v), i * i);
    }
    CHECK_EQ(corio_map_next(it, &v), 0);
    corio_map_free(it);
    corio_executor_free(ex);
}

static void test_huge_bytes_thread_pool(void)
{
    corio_executor_t *ex = thread_pool(2);
    size_t len = 100u << 20;
    char *big = malloc(len);
    memset(big, 7, len);
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, bytes_plus_one, (corio_value_t){big, len}, &f), 0);
    free(big);
    corio_value_t v;
    CHECK_EQ(corio_await(f, &v), 0);
    CHECK_EQ(corio_future_take_result(f, &v), 0);
    CHECK_EQ(v.len, len);
    CHECK(((char *)v.ptr)[0] == 8 && ((char *)v.ptr)[len - 1] == 8);
    free(v.ptr);
    corio_future_unref(f);
    corio_executor_free(ex);
}

/* ---- coroutines ---------------------------------------------------------------- */

static atomic_bool ticking;
static int ticks;

static intptr_t ticker(void *arg)
{
    (void)arg;
    while (atomic_load(&ticking)) {
        corio_sleep(10 * CORIO_NS_PER_MS);
        ticks++;
    }
    return 0;
}

static intptr_t await_in_coroutine(void *arg)
{
    corio_executor_t *ex = arg;
    atomic_store(&ticking, true);
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, ticker, NULL, NULL), 0);
    corio_sleep(0);
    corio_loop_stats_t s0, s1;
    corio_loop_stats(corio_loop_current(), &s0);
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(500), &f), 0);
    corio_value_t v;
    CHECK_EQ(corio_await(f, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 1);
    corio_loop_stats(corio_loop_current(), &s1);
    atomic_store(&ticking, false);
    CHECK_EQ(corio_task_await(t, &v), 0);
    corio_task_release(t);
    corio_future_unref(f);
    /* The ticker ran meanwhile; each of its 10 ms sleeps costs a turn or two,
     * the executor future one wake-up: nowhere near a busy loop. */
    uint64_t turns = s1.turns - s0.turns;
    fprintf(stderr, "# 500 ms executor await: %d ticks, %llu loop turns\n", ticks,
            (unsigned long long)turns);
    CHECK(ticks >= 20);
    CHECK(turns < 3 * (uint64_t)ticks + 20);
    return 0;
}

static void test_await_from_coroutine_loop_keeps_running(void)
{
    corio_executor_t *ex = thread_pool(1);
    CHECK_EQ(corio_run(await_in_coroutine, ex), 0);
    corio_executor_free(ex);
}

static intptr_t await_alone(void *arg)
{
    corio_executor_t *ex = arg;
    corio_loop_stats_t s0, s1;
    corio_loop_stats(corio_loop_current(), &s0);
    corio_future_t *f;
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(500), &f), 0);
    CHECK_EQ(result_int(f), 1);
    corio_loop_stats(corio_loop_current(), &s1);
    corio_future_unref(f);
    fprintf(stderr, "# 500 ms executor await alone: %llu loop turns\n",
            (unsigned long long)(s1.turns - s0.turns));
    CHECK(s1.turns - s0.turns <= 5); /* one wake-up, no polling */
    return 0;
}

static void test_await_costs_a_handful_of_turns(void)
{
    corio_executor_t *ex = thread_pool(1);
    CHECK_EQ(corio_run(await_alone, ex), 0);
    corio_executor_free(ex);
}

static intptr_t use_default_executor(void *arg)
{
    (void)arg;
    corio_future_t *f;
    CHECK_EQ(corio_run_in_executor(NULL, square, corio_value_int(12), &f), 0);
    CHECK_EQ(result_int(f), 144);
    corio_future_unref(f);
    corio_value_t v;
    CHECK_EQ(corio_to_thread(square, corio_value_int(5), &v), 0);
    CHECK_EQ(corio_value_as_int(v), 25);
    CHECK_EQ(corio_to_thread(fail_with_eio, corio_value_int(5), &v), -EIO);
    char s[3] = "ab";
    CHECK_EQ(corio_to_thread(bytes_plus_one, (corio_value_t){s, 2}, &v), 0);
    CHECK(v.len == 2 && memcmp(v.ptr, "bc", 2) == 0);
    free(v.ptr);
    /* Left running: corio_run's shutdown of the default pool waits for it. */
    CHECK_EQ(corio_run_in_executor(NULL, sleep_task, corio_value_int(50), &f), 0);
    corio_future_unref(f);
    return 0;
}

static void test_run_in_executor_and_to_thread(void)
{
    CHECK_EQ(corio_run(use_default_executor, NULL), 0);
    corio_value_t v;
    CHECK_EQ(corio_to_thread(square, corio_value_int(5), &v), -EDEADLK);
}

static intptr_t wait_in_coroutine(void *arg)
{
    corio_executor_t *ex = arg;
    corio_future_t *fs[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(20 * (i + 1)), &fs[i]), 0);
    size_t nd, nn;
    CHECK_EQ(corio_wait(fs, 4, -1, CORIO_ALL_COMPLETED, NULL, &nd, NULL, &nn), 0);
    CHECK_EQ(nd, 4);
    corio_as_completed_t *it;
    CHECK_EQ(corio_as_completed_new(fs, 4, -1, &it), 0);
    corio_future_t *f;
    int n = 0;
    while (corio_as_completed_next(it, &f) == 1)
        n++;
    CHECK_EQ(n, 4);
    corio_as_completed_free(it);
    for (int i = 0; i < 4; i++)
        corio_future_unref(fs[i]);
    return 0;
}

static intptr_t nap(void *arg)
{
    corio_sleep((int64_t)(intptr_t)arg * CORIO_NS_PER_MS);
    return (intptr_t)arg;
}

/* wait and as_completed over tasks and executor futures mixed. */
static intptr_t wait_on_tasks(void *arg)
{
    corio_executor_t *ex = arg;
    corio_task_t *t[3];
    corio_future_t *fs[4];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(corio_spawn(NULL, &t[i], nap, (void *)(intptr_t)(30 + 60 * i), NULL), 0);
        fs[i] = corio_task_future(t[i]);
    }
    CHECK_EQ(corio_executor_submit(ex, sleep_task, corio_value_int(60), &fs[3]), 0);
    corio_future_t *done[4];
    size_t nd, nn;
    CHECK_EQ(corio_wait(fs, 4, -1, CORIO_FIRST_COMPLETED, done, &nd, NULL, &nn), 0);
    CHECK_EQ(nd, 1);
    CHECK(done[0] == fs[0]); /* the 30 ms task */
    corio_as_completed_t *it;
    CHECK_EQ(corio_as_completed_new(fs, 4, -1, &it), 0);
    corio_future_t *f, *order[4];
    int n = 0;
    while (corio_as_completed_next(it, &f) == 1)
        order[n++] = f;
    CHECK_EQ(n, 4);
    CHECK(order[0] == fs[0] && order[3] == fs[2]); /* 30 ms first, 150 ms last */
    corio_as_completed_free(it);
    for (int i = 0; i < 3; i++)
        corio_task_release(t[i]);
    corio_future_unref(fs[3]);
    return 0;
}

/* Outside a coroutine, waiting on a loop future would stop the loop that
 * completes it: -EDEADLK, as corio_await_timeout says (both blocked for
 * ever). A wait whose condition already holds still returns at once. */
static void test_wait_loop_future_outside_coroutine(void)
{
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    corio_future_t *lf, *ef;
    CHECK_EQ(corio_future_new(loop, &lf), 0);
    CHECK_EQ(corio_future_new_threadsafe(&ef), 0);
    corio_future_t *both[2] = {lf, ef};
    size_t nd = 9, nnd = 9;
    CHECK_EQ(corio_wait(&lf, 1, -1, CORIO_ALL_COMPLETED, NULL, &nd, NULL, &nnd), -EDEADLK);
    CHECK_EQ(corio_wait(both, 2, 10 * CORIO_NS_PER_SEC, CORIO_FIRST_COMPLETED, NULL, &nd, NULL,
                        &nnd), -EDEADLK);
    CHECK_EQ(corio_wait(&lf, 1, 0, CORIO_ALL_COMPLETED, NULL, &nd, NULL, &nnd), 0);
    CHECK_EQ(nnd, 1);
    CHECK_EQ(corio_future_set_result(ef, corio_value_int(1)), 0);
    CHECK_EQ(corio_wait(both, 2, -1, CORIO_FIRST_COMPLETED, NULL, &nd, NULL, &nnd), 0);
    CHECK_EQ(nd, 1);
    corio_as_completed_t *it;
    CHECK_EQ(corio_as_completed_new(both, 2, -1, &it), 0);
    corio_future_t *got;
    CHECK_EQ(corio_as_completed_next(it, &got), 1);
    CHECK(got == ef);
    CHECK_EQ(corio_as_completed_next(it, &got), -EDEADLK);
    corio_as_completed_free(it);
    corio_future_unref(ef);
    corio_future_unref(lf);
    CHECK_EQ(corio_loop_free(loop), 0);
}

static void test_wait_on_tasks_and_executor_futures(void)
{
    corio_executor_t *ex = thread_pool(2);
    CHECK_EQ(corio_run(wait_on_tasks, ex), 0);
    corio_executor_free(ex);
}

static void test_wait_in_coroutine(void)
{
    corio_executor_t *ex = thread_pool(4);
    CHECK_EQ(corio_run(wait_in_coroutine, ex), 0);
    corio_executor_free(ex);
}

TEST_MAIN(CASE(test_submit_result_and_error), CASE(test_workers_on_demand_and_reused),
          CASE(test_thread_name_prefix), CASE(test_initializer_failure_breaks_pool),
          CASE(test_shutdown_nowait_and_cancel_futures), CASE(test_shutdown_wait_runs_queued),
          CASE(test_submit_races_shutdown), CASE(test_cancel_callback_may_use_pool),
          CASE(test_concurrent_shutdown_wait), CASE(test_shutdown_wait_from_worker),
          CASE(test_short_job_not_stuck_behind_long), CASE_T(test_task_waiting_on_nested_task, 150),
          CASE_T(test_wait_on_job_in_same_batch, 150), CASE(test_cancel_futures_reaches_batches),
          CASE(test_wait_closed_loop_future), CASE(test_done_callbacks),
          CASE(test_failing_callback_reported_pool_goes_on), CASE(test_pipeline_callback_submits),
          CASE_T(test_wait_10000, 60), CASE(test_wait_first_exception_and_timeout),
          CASE_T(test_as_completed_10000_with_duplicates, 60), CASE(test_as_completed_timeout),
          CASE(test_huge_timeouts_mean_none),
          CASE(test_map_order_chunksizes), CASE(test_map_errors_timeout_and_early_free),
          CASE(test_map_deadline_keeps_done_results),
          CASE_T(test_huge_bytes_thread_pool, 60),
          CASE(test_await_from_coroutine_loop_keeps_running),
          CASE(test_await_costs_a_handful_of_turns), CASE(test_run_in_executor_and_to_thread),
          CASE(test_wait_in_coroutine), CASE(test_wait_loop_future_outside_coroutine), CASE(test_wait_on_tasks_and_executor_futures))
