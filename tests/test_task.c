/* Tasks: spawn and await, names, sleep, level-triggered cancellation,
 * kernel operations under cancellation and deadlines, corio_run. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <fenv.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static intptr_t double_it(void *arg)
{
    corio_sleep(CORIO_NS_PER_MS);
    return (intptr_t)arg * 2;
}

static intptr_t spawn_and_await_main(void *arg)
{
    (void)arg;
    corio_task_t *t[10];
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "w%d", i);
        CHECK_EQ(corio_spawn(NULL, &t[i], double_it, (void *)(intptr_t)i,
                             &(corio_task_options_t){.name = name}), 0);
    }
    CHECK(strcmp(corio_task_name(t[3]), "w3") == 0);
    CHECK(strcmp(corio_task_name(corio_current_task()), "main") == 0);
    CHECK_EQ(corio_all_tasks(NULL, NULL, 0), 11);
    intptr_t sum = 0;
    for (int i = 0; i < 10; i++) {
        corio_value_t v;
        CHECK_EQ(corio_task_await(t[i], &v), 0);
        CHECK(corio_task_done(t[i]));
        CHECK(corio_future_task(corio_task_future(t[i])) == t[i]);
        sum += corio_value_as_int(v);
        corio_task_release(t[i]);
    }
    return sum;
}

static void spawn_and_await(void) { CHECK_EQ(corio_run(spawn_and_await_main, NULL), 90); }

static int trace[32], ntrace;
static int64_t sleep_base;

/* Sleeps until sleep_base + ms: the order of wake-ups must not depend on how
 * long each spawn took (under ThreadSanitizer a spawn can take 7 ms here). */
static intptr_t sleeper(void *arg)
{
    intptr_t ms = (intptr_t)arg;
    int64_t left = sleep_base + ms * CORIO_NS_PER_MS - corio_now();
    CHECK(left > 0);
    CHECK_EQ(corio_sleep(left), 0);
    trace[ntrace++] = (int)ms;
    return 0;
}

static intptr_t yielder(void *arg)
{
    for (int i = 0; i < 3; i++) {
        trace[ntrace++] = (int)(intptr_t)arg;
        CHECK_EQ(corio_sleep(0), 0);
    }
    return 0;
}

static intptr_t sleep_order_main(void *arg)
{
    (void)arg;
    ntrace = 0;
    int ms[] = {300, 100, 200};
    corio_task_t *t[3];
    sleep_base = corio_now();
    for (int i = 0; i < 3; i++)
        corio_spawn(NULL, &t[i], sleeper, (void *)(intptr_t)ms[i], NULL);
    for (int i = 0; i < 3; i++) {
        corio_task_await(t[i], NULL);
        corio_task_release(t[i]);
    }
    CHECK_EQ(trace[0], 100);
    CHECK_EQ(trace[1], 200);
    CHECK_EQ(trace[2], 300);
    /* sleep(0) is a plain yield: two tasks interleave. */
    ntrace = 0;
    corio_task_t *a, *b;
    corio_spawn(NULL, &a, yielder, (void *)1, NULL);
    corio_spawn(NULL, &b, yielder, (void *)2, NULL);
    corio_task_await(a, NULL);
    corio_task_await(b, NULL);
    corio_task_release(a);
    corio_task_release(b);
    int want[] = {1, 2, 1, 2, 1, 2};
    for (int i = 0; i < 6; i++)
        CHECK_EQ(trace[i], want[i]);
    return 0;
}

static void sleep_order_and_yield(void) { CHECK_EQ(corio_run(sleep_order_main, NULL), 0); }

static intptr_t long_sleeper(void *arg)
{
    (void)arg;
    return corio_sleep(10 * CORIO_NS_PER_SEC); /* -ECANCELED ends it cancelled */
}

static intptr_t awaits_other(void *arg)
{
    return corio_task_await(arg, NULL);
}

static intptr_t cancel_main(void *arg)
{
    (void)arg;
    corio_task_t *s;
    corio_spawn(NULL, &s, long_sleeper, NULL, NULL);
    corio_sleep(CORIO_NS_PER_MS);
    int64_t start = corio_now();
    CHECK_EQ(corio_task_cancel(s), 0);
    CHECK_EQ(corio_task_await(s, NULL), -ECANCELED);
    CHECK(corio_now() - start < CORIO_NS_PER_SEC);
    CHECK(corio_future_cancelled(corio_task_future(s)));
    CHECK_EQ(corio_task_cancel(s), -EALREADY); /* finished: nothing happens */
    corio_task_release(s);

    /* Cancelling a task that awaits another: the inner keeps running. */
    corio_task_t *inner, *outer;
    corio_spawn(NULL, &inner, long_sleeper, NULL, NULL);
    corio_spawn(NULL, &outer, awaits_other, inner, NULL);
    corio_sleep(CORIO_NS_PER_MS);
    corio_task_cancel(outer);
    CHECK_EQ(corio_task_await(outer, NULL), -ECANCELED);
    CHECK(!corio_task_done(inner));
    corio_task_cancel(inner);
    CHECK_EQ(corio_task_await(inner, NULL), -ECANCELED);
    corio_task_release(inner);
    corio_task_release(outer);
    return 0;
}

static void cancel_sleeping_and_awaiting(void) { CHECK_EQ(corio_run(cancel_main, NULL), 0); }

static int retries;
static intptr_t stubborn(void *arg)
{
    (void)arg;
    /* A retry loop: level-triggered cancellation keeps failing every await
     * until the task uncancels, so the loop cannot swallow it. */
    retries = 0;
    while (corio_sleep(10 * CORIO_NS_PER_SEC) == -ECANCELED && retries < 5)
        retries++;
    CHECK_EQ(retries, 5);
    CHECK_EQ(corio_task_cancelling(corio_current_task()), 1);
    CHECK_EQ(corio_task_uncancel(corio_current_task()), 0);
    CHECK_EQ(corio_sleep(CORIO_NS_PER_MS), 0); /* works again */
    return 7; /* a cancelled task returning a value ends done */
}

static intptr_t level_main(void *arg)
{
    (void)arg;
    corio_task_t *t;
    corio_spawn(NULL, &t, stubborn, NULL, NULL);
    corio_sleep(CORIO_NS_PER_MS);
    corio_task_cancel(t);
    corio_value_t v;
    CHECK_EQ(corio_task_await(t, &v), 0);
    CHECK(!corio_future_cancelled(corio_task_future(t)));
    CHECK_EQ(corio_value_as_int(v), 7);
    corio_task_release(t);
    return 0;
}

static void cancellation_is_level_triggered(void) { CHECK_EQ(corio_run(level_main, NULL), 0); }

static int body_ran;
static intptr_t never_runs(void *arg)
{
    (void)arg;
    body_ran = 1;
    return 0;
}

static intptr_t cancel_before_start_main(void *arg)
{
    (void)arg;
    corio_task_t *t;
    corio_spawn(NULL, &t, never_runs, NULL, NULL);
    corio_task_cancel(t);
    CHECK_EQ(corio_task_await(t, NULL), -ECANCELED);
    CHECK(!body_ran);
    corio_task_release(t);
    return 0;
}

static void cancel_before_start(void) { CHECK_EQ(corio_run(cancel_before_start_main, NULL), 0); }

/* Such tasks never get a stack: with none pooled and mapping failing, they
 * still end cancelled, not with -ENOMEM. */
static intptr_t cancelled_unstarted_main(void *arg)
{
    (void)arg;
    corio_stack_pool_t *pool = &corio__tls_loop->stacks;
    CHECK_EQ(pool->nfree, 0); /* a new loop: only this task's stack exists */
    corio_task_t *many[64];
    corio__fault_set(CORIO_FAULT_MMAP, 1);
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(corio_spawn(NULL, &many[i], never_runs, NULL, NULL), 0);
        CHECK_EQ(corio_task_cancel(many[i]), 0);
    }
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(corio_task_await(many[i], NULL), -ECANCELED);
        corio_task_release(many[i]);
    }
    corio__fault_set(CORIO_FAULT_MMAP, 0);
    CHECK(!body_ran);
    CHECK_EQ(pool->nfree, 0);
    return 0;
}

static void cancelled_unstarted_task_gets_no_stack(void)
{
    CHECK_EQ(corio_run(cancelled_unstarted_main, NULL), 0);
}

static intptr_t failing(void *arg)
{
    (void)arg;
    return -ENOENT;
}

static intptr_t error_main(void *arg)
{
    (void)arg;
    corio_task_t *t;
    corio_spawn(NULL, &t, failing, NULL, NULL);
    CHECK_EQ(corio_task_await(t, NULL), -ENOENT);
    CHECK(!corio_future_cancelled(corio_task_future(t)));
    corio_task_release(t);
    return -EIO;
}

static void task_errors(void) { CHECK_EQ(corio_run(error_main, NULL), -EIO); }

/* ---- kernel operations ---- */

static intptr_t read_pipe(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16];
    corio_loop_t *loop = corio_loop_current();
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
    io_uring_prep_read(sqe, fd, buf, sizeof buf, 0);
    return corio__io_await(loop, sqe, CORIO_NEVER, NULL);
}

static intptr_t read_deadline(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16];
    corio_loop_t *loop = corio_loop_current();
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
    io_uring_prep_read(sqe, fd, buf, sizeof buf, 0);
    return corio__io_await(loop, sqe, corio_now() + 10 * CORIO_NS_PER_MS, NULL);
}

static intptr_t io_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK_EQ(pipe(p), 0);
    corio_loop_t *loop = corio_loop_current();
    corio_loop_stats_t base, st;
    corio_loop_stats(loop, &base);
    corio_task_t *t;
    corio_spawn(NULL, &t, read_pipe, (void *)(intptr_t)p[0], NULL);
    corio_sleep(CORIO_NS_PER_MS);
    corio_loop_stats(loop, &st);
    CHECK_EQ(st.ops_in_flight, base.ops_in_flight + 1);
    corio_task_cancel(t);
    CHECK_EQ(corio_task_await(t, NULL), -ECANCELED);
    corio_loop_stats(loop, &st);
    CHECK_EQ(st.ops_in_flight, base.ops_in_flight); /* its completion arrived */
    corio_task_release(t);

    corio_spawn(NULL, &t, read_deadline, (void *)(intptr_t)p[0], NULL);
    CHECK_EQ(corio_task_await(t, NULL), -ETIMEDOUT);
    corio_task_release(t);

    CHECK_EQ(write(p[1], "hi", 2), 2);
    corio_spawn(NULL, &t, read_pipe, (void *)(intptr_t)p[0], NULL);
    corio_value_t v;
    CHECK_EQ(corio_task_await(t, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 2);
    corio_task_release(t);
    close(p[0]);
    close(p[1]);
    return 0;
}

static void kernel_ops_cancel_and_deadline(void) { CHECK_EQ(corio_run(io_main, NULL), 0); }

/* ---- misuse and shutdown ---- */

static intptr_t forever(void *arg)
{
    int *cleaned = arg;
    int rc = corio_sleep(60 * CORIO_NS_PER_SEC);
    *cleaned = rc == -ECANCELED;
    return rc;
}

static int cleaned_up;
static intptr_t leaves_tasks_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        corio_spawn(NULL, NULL, forever, &cleaned_up, NULL);
    corio_sleep(CORIO_NS_PER_MS);
    return 5;
}

static void run_cancels_leftovers(void)
{
    CHECK_EQ(corio_run(leaves_tasks_main, NULL), 5);
    CHECK_EQ(cleaned_up, 1);
    CHECK(corio_loop_current() == NULL);
}

static void misuse_outside_coroutine(void)
{
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    corio_task_t *t;
    int cleaned = 0;
    CHECK_EQ(corio_spawn(loop, &t, forever, &cleaned, NULL), 0);
    CHECK_EQ(corio_task_await(t, NULL), -EDEADLK); /* would block the loop's thread */
    CHECK_EQ(corio_sleep(1), -EDEADLK);
    CHECK(corio_current_task() == NULL);
    corio_loop_run_once(loop, 0);
    CHECK_EQ(corio_loop_close(loop), -EBUSY); /* a live task */
    corio_task_cancel(t);
    CHECK_EQ(corio_loop_run_until_complete(loop, corio_task_future(t)), -ECANCELED);
    CHECK_EQ(cleaned, 1);
    corio_task_release(t);
    CHECK_EQ(corio_spawn(loop, &t, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(corio_loop_free(loop), 0);
    CHECK_EQ(corio_run(NULL, NULL), -EINVAL);
}

static int reports;
static void count_reports(corio_loop_t *l, const corio_error_context_t *c, void *a)
{
    (void)l;
    (void)a;
    CHECK(strstr(c->message, "task exception was never retrieved"));
    CHECK(c->task_name && strcmp(c->task_name, "doomed") == 0);
    reports++;
}

static void unretrieved_task_error(void)
{
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    corio_loop_set_error_handler(loop, count_reports, NULL);
    corio_spawn(loop, NULL, failing, NULL, &(corio_task_options_t){.name = "doomed"});
    while (corio_all_tasks(loop, NULL, 0))
        corio_loop_run_once(loop, 0);
    CHECK_EQ(reports, 1);
    CHECK_EQ(corio_loop_free(loop), 0);
}

/* A duration too large to add to the clock means "never", not "at once". */
static intptr_t sleeps_for_ever(void *arg)
{
    (void)arg;
    return corio_sleep(INT64_MAX);
}

static intptr_t awaits_for_ever(void *arg)
{
    return corio_await_timeout(arg, INT64_MAX, NULL);
}

static intptr_t huge_durations_main(void *arg)
{
    (void)arg;
    corio_future_t *f;
    CHECK_EQ(corio_future_new(NULL, &f), 0);
    corio_task_t *s, *a;
    CHECK_EQ(corio_spawn(NULL, &s, sleeps_for_ever, NULL, NULL), 0);
    CHECK_EQ(corio_spawn(NULL, &a, awaits_for_ever, f, NULL), 0);
    corio_sleep(5 * CORIO_NS_PER_MS);
    CHECK(!corio_task_done(s));
    CHECK(!corio_task_done(a));
    corio_task_cancel(s);
    CHECK_EQ(corio_task_await(s, NULL), -ECANCELED);
    corio_future_set_result(f, corio_value_int(4));
    CHECK_EQ(corio_task_await(a, NULL), 0);
    corio_task_release(s);
    corio_task_release(a);
    corio_future_unref(f);
    return 0;
}

static void huge_durations_mean_never(void) { CHECK_EQ(corio_run(huge_durations_main, NULL), 0); }

/* ---- task records: recycled, outliving the loop, dropped elsewhere ---- */

static intptr_t echo_arg(void *arg) { return (intptr_t)arg; }

static intptr_t sleeps_briefly(void *arg)
{
    (void)arg;
    return corio_sleep(CORIO_NS_PER_MS);
}

/* Records across more than one chunk outlive their loop. One task in RUN_EVERY
 * runs; the others are cancelled before they start, so they never get a stack
 * (under ThreadSanitizer each coroutine costs a fiber of 790 KiB). */
static void task_outlives_its_loop(void)
{
    enum { N = CORIO_TASK_CHUNK_SIZE / CORIO_TASK_RECORD_SIZE + 1000, RUN_EVERY = 16 };
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    static corio_task_t *t[N];
    for (int i = 0; i < N; i++) {
        CHECK_EQ(corio_spawn(loop, &t[i], echo_arg, (void *)(intptr_t)i, NULL), 0);
        if (i % RUN_EVERY)
            CHECK_EQ(corio_task_cancel(t[i]), 0);
    }
    while (corio_all_tasks(loop, NULL, 0))
        corio_loop_run_once(loop, 0);
    for (int i = 0; i < N; i += 3) { /* freed records between live ones */
        CHECK(corio_future_loop(corio_task_future(t[i])) == loop);
        corio_task_release(t[i]);
        t[i] = NULL;
    }
    corio_future_t *plain;
    CHECK_EQ(corio_future_new(loop, &plain), 0);
    CHECK_EQ(corio_loop_free(loop), 0);
    CHECK(corio_future_loop(plain) == NULL); /* closing forgot the loop */
    corio_future_unref(plain);
    for (int i = 0; i < N; i++) { /* records stay valid after the loop */
        if (!t[i])
            continue;
        CHECK(corio_future_loop(corio_task_future(t[i])) == NULL);
        corio_value_t v;
        int rc = corio_future_result(corio_task_future(t[i]), &v);
        if (i % RUN_EVERY) {
            CHECK_EQ(rc, -ECANCELED);
        } else {
            CHECK_EQ(rc, 0);
            CHECK_EQ(corio_value_as_int(v), i);
        }
        CHECK(strncmp(corio_task_name(t[i]), "task-", 5) == 0);
        corio_task_release(t[i]);
    }
}

enum { REMOTE_N = 500 };
static corio_task_t *remote_t[REMOTE_N];

static void *release_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < REMOTE_N; i++)
        corio_task_release(remote_t[i]);
    return NULL;
}

static intptr_t spawn_remote_batch(void *arg)
{
    (void)arg;
    for (int i = 0; i < REMOTE_N; i++)
        CHECK_EQ(corio_spawn(NULL, &remote_t[i], echo_arg, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < REMOTE_N; i++) {
        corio_value_t v;
        CHECK_EQ(corio_task_await(remote_t[i], &v), 0);
        CHECK_EQ(corio_value_as_int(v), i);
    }
    return 0;
}

/* After its loop closed, a task's last reference may go on any thread:
 * the records' memory goes with the last one. */
static void task_released_on_another_thread(void)
{
    for (int round = 0; round < 3; round++) {
        CHECK_EQ(corio_run(spawn_remote_batch, NULL), 0);
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, release_all, NULL), 0);
        CHECK_EQ(pthread_join(th, NULL), 0);
    }
}

/* A lazy stack that cannot be mapped fails its task with -ENOMEM; the
 * recycled record it had must not put a stack that does not exist into the
 * pool (a later task would run on it). */
static intptr_t stack_bind_fails_main(void *arg)
{
    (void)arg;
    corio_task_t *t[4];
    /* Three records to recycle and two stacks pooled: a finishing task
     * starts the next one on a second stack, its own being still in use. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_spawn(NULL, &t[i], echo_arg, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(corio_task_await(t[i], NULL), 0);
        corio_task_release(t[i]);
    }
    CHECK_EQ(corio_spawn(NULL, &t[0], sleeps_briefly, NULL, NULL), 0);
    CHECK_EQ(corio_spawn(NULL, &t[1], sleeps_briefly, NULL, NULL), 0);
    CHECK_EQ(corio_spawn(NULL, &t[2], echo_arg, (void *)7, NULL), 0);
    corio__fault_set(CORIO_FAULT_MMAP, 1); /* t[2]'s stack: the sleepers took the pooled ones */
    CHECK_EQ(corio_task_await(t[2], NULL), -ENOMEM);
    CHECK_EQ(corio_task_await(t[0], NULL), 0);
    CHECK_EQ(corio_task_await(t[1], NULL), 0);
    for (int i = 0; i < 3; i++)
        corio_task_release(t[i]);
    for (int i = 0; i < 4; i++) /* run on real stacks */
        CHECK_EQ(corio_spawn(NULL, &t[i], sleeps_briefly, NULL, NULL), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(corio_task_await(t[i], NULL), 0);
        corio_task_release(t[i]);
    }
    return 0;
}

static void failed_stack_bind_pools_nothing(void)
{
    CHECK_EQ(corio_run(stack_bind_fails_main, NULL), 0);
}

/* A finishing task starts the next new task itself; that task must start
 * with the loop thread's floating-point control state, not with what its
 * predecessor left (a rounding mode it set and never restored). */
static int fenv_seen[4];

static intptr_t rounds_up_and_ends(void *arg)
{
    (void)arg;
    fesetround(FE_UPWARD);
    return 0;
}

static intptr_t reports_rounding(void *arg)
{
    fenv_seen[(intptr_t)arg] = fegetround();
    return 0;
}

static void new_task_gets_the_loops_fp_state(void)
{
    CHECK_EQ(fegetround(), FE_TONEAREST);
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    /* Ready in this order: each reporter follows a task that rounds up and
     * finishes, and is started by it. */
    corio_task_t *t[5];
    for (int i = 0; i < 5; i++) {
        fenv_seen[i % 4] = -1;
        corio_task_fn fn = i % 2 ? reports_rounding : rounds_up_and_ends;
        CHECK_EQ(corio_spawn(loop, &t[i], fn, (void *)(intptr_t)i, NULL), 0);
    }
    while (corio_all_tasks(loop, NULL, 0))
        corio_loop_run_once(loop, 0);
    CHECK_EQ(fegetround(), FE_TONEAREST); /* the loop's own state came back */
    CHECK_EQ(fenv_seen[1], FE_TONEAREST);
    CHECK_EQ(fenv_seen[3], FE_TONEAREST);
    for (int i = 0; i < 5; i++)
        corio_task_release(t[i]);
    CHECK_EQ(corio_loop_free(loop), 0);
}

/* A finishing task binds the next task's stack while its own is still in
 * use; when that mapping fails, the next task must not fail: it runs once
 * the finished task is retired, on its stack. */
static void direct_start_mapping_failure_fails_nothing(void)
{
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    corio_task_t *a, *b;
    CHECK_EQ(corio_spawn(loop, &a, echo_arg, (void *)1, NULL), 0);
    CHECK_EQ(corio_spawn(loop, &b, echo_arg, (void *)2, NULL), 0);
    corio__fault_set(CORIO_FAULT_MMAP, 2); /* a's stack maps, the one for b fails */
    CHECK_EQ(corio_loop_run_until_complete(loop, corio_task_future(b)), 0);
    corio__fault_set(CORIO_FAULT_MMAP, 0);
    corio_value_t v;
    CHECK_EQ(corio_future_result(corio_task_future(a), &v), 0);
    CHECK_EQ(corio_value_as_int(v), 1);
    CHECK_EQ(corio_future_result(corio_task_future(b), &v), 0);
    CHECK_EQ(corio_value_as_int(v), 2);
    corio_task_release(a);
    corio_task_release(b);
    CHECK_EQ(corio_loop_free(loop), 0);
}

/* A task's outcome is its function's: setting it from outside is refused. */
static intptr_t set_task_result_main(void *arg)
{
    (void)arg;
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, sleeps_briefly, NULL, NULL), 0);
    corio_future_t *f = corio_task_future(t);
    CHECK_EQ(corio_future_set_result(f, corio_value_int(1)), CORIO_EINVALSTATE);
    CHECK_EQ(corio_future_set_exception(f, -EIO, NULL), CORIO_EINVALSTATE);
    CHECK_EQ(corio_task_await(t, NULL), 0);
    corio_task_release(t);
    return 0;
}

static void task_outcome_not_settable(void) { CHECK_EQ(corio_run(set_task_result_main, NULL), 0); }

/* A wait whose deadline timer cannot be allocated fails with -ENOMEM
 * rather than wait without its deadline; a kernel operation is cancelled
 * and its completion still awaited. */
static intptr_t timer_alloc_fails_main(void *arg)
{
    (void)arg;
    corio__fault_set(CORIO_FAULT_TIMER, 1);
    CHECK_EQ(corio_sleep(CORIO_NS_PER_SEC), -ENOMEM);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    corio_loop_t *loop = corio_loop_current();
    corio_loop_stats_t base, st;
    corio_loop_stats(loop, &base);
    corio__fault_set(CORIO_FAULT_TIMER, 1);
    CHECK_EQ(read_deadline((void *)(intptr_t)p[0]), -ENOMEM);
    corio_loop_stats(loop, &st);
    CHECK_EQ(st.ops_in_flight, base.ops_in_flight); /* the read completed */
    CHECK_EQ(corio_sleep(CORIO_NS_PER_MS), 0); /* timers work again */
    close(p[0]);
    close(p[1]);
    return 0;
}

/* The SQE for a deadline's cancel cannot be had: the cancel is sent on a
 * later turn, so the read still ends instead of waiting for ever. */
static intptr_t cancel_sqe_fails_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK_EQ(pipe(p), 0);
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, read_deadline, (void *)(intptr_t)p[0], NULL), 0);
    CHECK_EQ(corio_sleep(CORIO_NS_PER_MS), 0); /* the read is in flight */
    corio__fault_set(CORIO_FAULT_SQE, 1);     /* the next SQE: the cancel's */
    CHECK_EQ(corio_task_await(t, NULL), -ETIMEDOUT);
    corio_task_release(t);
    close(p[0]);
    close(p[1]);
    return 0;
}

static void cancel_sent_when_sqe_frees_up(void) { CHECK_EQ(corio_run(cancel_sqe_fails_main, NULL), 0); }

static void deadline_timer_alloc_fails(void) { CHECK_EQ(corio_run(timer_alloc_fails_main, NULL), 0); }

static intptr_t huge_stack_main(void *arg)
{
    (void)arg;
    corio_task_t *t = (corio_task_t *)1;
    CHECK_EQ(corio_spawn(NULL, &t, echo_arg, NULL,
                         &(corio_task_options_t){.stack_size = (size_t)1 << 33}),
             -EINVAL);
    CHECK(t == NULL);
    return 0;
}

static void stack_of_4gib_refused(void) { CHECK_EQ(corio_run(huge_stack_main, NULL), 0); }

TEST_MAIN(CASE(spawn_and_await), CASE(sleep_order_and_yield), CASE(cancel_sleeping_and_awaiting),
          CASE(cancellation_is_level_triggered), CASE(cancel_before_start),
          CASE(cancelled_unstarted_task_gets_no_stack), CASE(task_errors),
          CASE(kernel_ops_cancel_and_deadline), CASE(run_cancels_leftovers),
          CASE(misuse_outside_coroutine), CASE(unretrieved_task_error),
          CASE(huge_durations_mean_never), CASE(task_outlives_its_loop),
          CASE(task_released_on_another_thread), CASE(deadline_timer_alloc_fails),
          CASE(cancel_sent_when_sqe_frees_up), CASE(failed_stack_bind_pools_nothing),
          CASE(direct_start_mapping_failure_fails_nothing),
          CASE(new_task_gets_the_loops_fp_state),
          CASE(task_outcome_not_settable),
          CASE(stack_of_4gib_refused))
