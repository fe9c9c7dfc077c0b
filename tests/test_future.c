/* Futures: states, outcomes, ownership, callbacks, and the one await. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static corio_loop_t *new_loop(void)
{
    corio_loop_t *loop = NULL;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    return loop;
}

static void states_and_outcomes(void)
{
    corio_loop_t *loop = new_loop();
    corio_future_t *f;
    CHECK_EQ(corio_future_new(loop, &f), 0);
    CHECK(!corio_future_done(f));
    corio_value_t v;
    CHECK_EQ(corio_future_result(f, &v), CORIO_EINVALSTATE);
    CHECK_EQ(corio_future_set_result(f, corio_value_int(42)), 0);
    CHECK(corio_future_done(f) && !corio_future_cancelled(f));
    CHECK_EQ(corio_future_set_result(f, corio_value_int(1)), CORIO_EINVALSTATE);
    CHECK_EQ(corio_future_set_exception(f, -EIO, NULL), CORIO_EINVALSTATE);
    CHECK_EQ(corio_future_cancel(f), -EALREADY);
    CHECK_EQ(corio_future_result(f, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 42);
    CHECK_EQ(corio_future_exception(f, NULL), 0);
    corio_future_unref(f);

    CHECK_EQ(corio_future_new(loop, &f), 0);
    CHECK_EQ(corio_future_cancel(f), 0);
    CHECK(corio_future_cancelled(f));
    CHECK_EQ(corio_future_result(f, &v), -ECANCELED);
    corio_future_unref(f);

    CHECK_EQ(corio_future_new(loop, &f), 0);
    CHECK_EQ(corio_future_set_exception(f, 5, NULL), -EINVAL); /* codes are negative */
    CHECK_EQ(corio_future_set_exception(f, -ENOENT, "no such thing"), 0);
    const char *msg = NULL;
    CHECK_EQ(corio_future_exception(f, &msg), -ENOENT);
    CHECK(strcmp(msg, "no such thing") == 0);
    CHECK_EQ(corio_future_result(f, &v), -ENOENT);
    corio_future_unref(f);
    CHECK_EQ(corio_loop_free(loop), 0);
}

static void bytes_are_owned_by_the_future(void)
{
    corio_loop_t *loop = new_loop();
    corio_future_t *f;
    CHECK_EQ(corio_future_new(loop, &f), 0);
    char *buf = malloc(6);
    memcpy(buf, "hello", 6);
    CHECK_EQ(corio_future_set_result(f, (corio_value_t){buf, 6}), 0);
    corio_value_t v;
    CHECK_EQ(corio_future_result(f, &v), 0);
    CHECK(v.ptr == buf && v.len == 6);
    corio_future_unref(f); /* frees buf: ASan checks */

    CHECK_EQ(corio_future_new(loop, &f), 0);
    buf = strdup("taken");
    corio_future_set_result(f, (corio_value_t){buf, 6});
    CHECK_EQ(corio_future_take_result(f, &v), 0);
    CHECK(v.ptr == buf);
    corio_future_unref(f);
    CHECK(strcmp(v.ptr, "taken") == 0);
    free(v.ptr); /* ours now */
    CHECK_EQ(corio_loop_free(loop), 0);
}

static int seen[16], nseen;
static void remember(corio_future_t *f, void *arg)
{
    (void)f;
    seen[nseen++] = (int)(intptr_t)arg;
}

static void callbacks_run_later_in_order(void)
{
    corio_loop_t *loop = new_loop();
    corio_future_t *f;
    CHECK_EQ(corio_future_new(loop, &f), 0);
    nseen = 0;
    for (int i = 1; i <= 6; i++)
        CHECK_EQ(corio_future_add_done_callback(f, remember, (void *)(intptr_t)i), 0);
    CHECK_EQ(corio_future_remove_done_callback(f, remember, (void *)3), 1);
    CHECK_EQ(corio_future_remove_done_callback(f, remember, (void *)3), 0);
    corio_future_set_result(f, corio_value_int(0));
    CHECK_EQ(nseen, 0); /* never inline */
    corio_loop_run_once(loop, 0);
    CHECK_EQ(nseen, 5);
    int want[] = {1, 2, 4, 5, 6};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(seen[i], want[i]);
    /* Added after completion: still scheduled, not inline. */
    corio_future_add_done_callback(f, remember, (void *)9);
    CHECK_EQ(nseen, 5);
    corio_loop_run_once(loop, 0);
    CHECK_EQ(nseen, 6);
    CHECK_EQ(seen[5], 9);
    corio_future_unref(f);
    CHECK_EQ(corio_loop_free(loop), 0);
}

static void drop_ref(corio_future_t *f, void *arg)
{
    (void)arg;
    corio_future_unref(f);
}

static void threadsafe_callbacks(void)
{
    corio_future_t *f;
    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    nseen = 0;
    corio_future_add_done_callback(f, remember, (void *)1);
    CHECK_EQ(corio_future_set_running_or_notify_cancel(f), 0);
    CHECK(corio_future_running(f));
    CHECK_EQ(corio_future_cancel(f), -EALREADY); /* refused once running */
    corio_future_set_result(f, corio_value_int(5));
    CHECK_EQ(nseen, 1); /* in the completing thread */
    corio_future_add_done_callback(f, remember, (void *)2);
    CHECK_EQ(nseen, 2); /* already done: at once */
    corio_future_unref(f);

    /* A callback added after completion may drop the last reference. */
    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    corio_future_set_result(f, corio_value_int(1));
    CHECK_EQ(corio_future_add_done_callback(f, drop_ref, NULL), 0);

    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    CHECK_EQ(corio_future_cancel(f), 0);
    CHECK_EQ(corio_future_set_running_or_notify_cancel(f), -ECANCELED);
    corio_future_unref(f);
}

/* ---- callbacks that fail ---------------------------------------------------- */

static int reported[4], nreported;
static corio_loop_t *reported_loop;

static void record_report(corio_loop_t *loop, const corio_error_context_t *ctx, void *arg)
{
    (void)arg;
    reported_loop = loop;
    reported[nreported++] = ctx->code;
    CHECK(ctx->message != NULL);
}

/* Fails with the code in arg, after noting that it ran. */
static int fail_with(corio_future_t *f, void *arg)
{
    (void)f;
    seen[nseen++] = (int)-(intptr_t)arg;
    return (int)(intptr_t)arg;
}

static void failing_loop_callback_goes_to_error_handler(void)
{
    corio_loop_t *loop = new_loop();
    corio_loop_set_error_handler(loop, record_report, NULL);
    corio_future_t *f;
    CHECK_EQ(corio_future_new(loop, &f), 0);
    nseen = nreported = 0;
    CHECK_EQ(corio_future_add_done_callback(f, remember, (void *)1), 0);
    CHECK_EQ(corio_future_add_fallible_callback(f, fail_with, (void *)-EIO), 0);
    CHECK_EQ(corio_future_add_fallible_callback(f, fail_with, (void *)0), 0);
    CHECK_EQ(corio_future_add_done_callback(f, remember, (void *)2), 0);
    corio_future_set_result(f, corio_value_int(0));
    CHECK_EQ(nseen, 0); /* never inline, failing or not */
    corio_loop_run_once(loop, 0);
    CHECK_EQ(nseen, 4); /* the failure stopped nothing after it */
    int want[] = {1, EIO, 0, 2};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(seen[i], want[i]);
    CHECK_EQ(nreported, 1);
    CHECK_EQ(reported[0], -EIO);
    CHECK(reported_loop == loop);
    /* The loop goes on: a later future's callbacks still run. */
    corio_future_t *g;
    CHECK_EQ(corio_future_new(loop, &g), 0);
    CHECK_EQ(corio_future_add_fallible_callback(g, fail_with, (void *)-ENOENT), 0);
    corio_future_set_result(g, corio_value_int(0));
    corio_loop_run_once(loop, 0);
    CHECK_EQ(nseen, 5);
    CHECK_EQ(nreported, 2);
    CHECK_EQ(reported[1], -ENOENT);
    corio_future_unref(g);
    corio_future_unref(f);
    CHECK_EQ(corio_loop_free(loop), 0);
}

static void failing_threadsafe_callback_is_reported(void)
{
    corio_future_set_callback_error_handler(record_report, NULL);
    corio_future_t *f;
    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    nseen = nreported = 0;
    reported_loop = (corio_loop_t *)f;
    CHECK_EQ(corio_future_add_fallible_callback(f, fail_with, (void *)-EPIPE), 0);
    CHECK_EQ(corio_future_add_done_callback(f, remember, (void *)7), 0);
    corio_future_set_result(f, corio_value_int(0));
    CHECK_EQ(nseen, 2);
    CHECK_EQ(seen[1], 7);
    CHECK_EQ(nreported, 1);
    CHECK_EQ(reported[0], -EPIPE);
    CHECK(reported_loop == NULL);
    /* Already done: runs and is reported at once, in this thread. */
    CHECK_EQ(corio_future_add_fallible_callback(f, fail_with, (void *)-EBADF), 0);
    CHECK_EQ(nreported, 2);
    CHECK_EQ(reported[1], -EBADF);
    corio_future_unref(f);
    corio_future_set_callback_error_handler(NULL, NULL);
}

static void fallible_callbacks_removed_or_never_run(void)
{
    corio_future_t *f;
    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    nseen = 0;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_future_add_fallible_callback(f, fail_with, (void *)-EIO), 0);
    CHECK_EQ(corio_future_add_fallible_callback(f, fail_with, (void *)0), 0);
    CHECK_EQ(corio_future_remove_done_callback(f, remember, (void *)-EIO), 0);
    CHECK_EQ(corio_future_remove_fallible_callback(f, fail_with, (void *)-EIO), 3);
    CHECK_EQ(corio_future_add_fallible_callback(NULL, fail_with, NULL), -EINVAL);
    CHECK_EQ(corio_future_add_fallible_callback(f, NULL, NULL), -EINVAL);
    /* Freed with a callback never run: its record is released (ASan checks). */
    corio_future_unref(f);
    CHECK_EQ(nseen, 0);
}

static void *complete_later(void *arg)
{
    usleep(30000);
    corio_future_set_result(arg, corio_value_int(77));
    return NULL;
}

static void blocking_wait_outside_coroutine(void)
{
    corio_future_t *f;
    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(f, 5 * CORIO_NS_PER_MS, &v), -ETIMEDOUT);
    pthread_t th;
    pthread_create(&th, NULL, complete_later, f);
    CHECK_EQ(corio_await(f, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 77);
    pthread_join(th, NULL);
    corio_future_unref(f);

    /* A loop future cannot be waited on by blocking its own thread. */
    corio_loop_t *loop = new_loop();
    CHECK_EQ(corio_future_new(loop, &f), 0);
    CHECK_EQ(corio_await(f, &v), -EDEADLK);
    corio_future_unref(f);
    CHECK_EQ(corio_await(NULL, &v), -EINVAL);
    CHECK_EQ(corio_loop_free(loop), 0);
}

static atomic_int ticks;

/* Completes the future only once the loop has ticked other tasks 6 times:
 * proof that the await suspended one task, not the loop. */
static void *complete_after_ticks(void *arg)
{
    while (atomic_load(&ticks) <= 5)
        usleep(1000);
    corio_future_set_result(arg, corio_value_int(77));
    return NULL;
}
static intptr_t ticker(void *arg)
{
    (void)arg;
    for (;;) {
        if (corio_sleep(CORIO_NS_PER_MS) < 0)
            return -ECANCELED;
        ticks++;
    }
}

static intptr_t await_threadsafe_main(void *arg)
{
    (void)arg;
    corio_task_t *tick;
    corio_spawn(NULL, &tick, ticker, NULL, NULL);
    corio_future_t *f;
    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    pthread_t th;
    pthread_create(&th, NULL, complete_after_ticks, f);
    corio_loop_stats_t before, after;
    corio_loop_stats(corio_loop_current(), &before);
    corio_value_t v;
    CHECK_EQ(corio_await(f, &v), 0);
    corio_loop_stats(corio_loop_current(), &after);
    CHECK_EQ(corio_value_as_int(v), 77);
    CHECK(ticks > 5); /* the loop kept running other tasks */
    pthread_join(th, NULL);
    corio_future_unref(f);
    corio_task_cancel(tick);
    CHECK_EQ(corio_task_await(tick, NULL), -ECANCELED);
    corio_task_release(tick);
    return 1;
}

static void await_threadsafe_from_coroutine(void)
{
    CHECK_EQ(corio_run(await_threadsafe_main, NULL), 1);
}

static intptr_t await_loop_future_main(void *arg)
{
    (void)arg;
    corio_future_t *f;
    CHECK_EQ(corio_future_new(NULL, &f), 0);
    corio_handle_t h = {0};
    (void)h;
    corio_value_t v;
    CHECK_EQ(corio_await_timeout(f, 5 * CORIO_NS_PER_MS, &v), -ETIMEDOUT);
    CHECK(!corio_future_done(f)); /* a timed-out await leaves the future alone */
    corio_future_set_result(f, corio_value_int(3));
    CHECK_EQ(corio_await(f, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 3);
    /* A done future gives its result even with no time left, as
     * asyncio.wait_for(done, 0) does; a cancelled task still sees -ECANCELED. */
    CHECK_EQ(corio_await_timeout(f, 0, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 3);
    corio_task_t *self = corio_current_task();
    corio_task_cancel(self);
    CHECK_EQ(corio_await(f, &v), -ECANCELED);
    CHECK_EQ(corio_task_uncancel(self), 0);
    CHECK_EQ(corio_await(f, &v), 0);
    corio_future_unref(f);
    return 0;
}

static void await_loop_future(void) { CHECK_EQ(corio_run(await_loop_future_main, NULL), 0); }


/* An await whose deadline passes between its entry check and the wait
 * itself must not leave its waiter (a dead stack frame) on the future. */
static intptr_t expiring_await_main(void *arg)
{
    (void)arg;
    corio_future_t *f;
    CHECK_EQ(corio_future_new(NULL, &f), 0);
    for (int i = 0; i < 20000; i++) {
        CHECK_EQ(corio_await_timeout(f, i % 4000, NULL), -ETIMEDOUT);
        CHECK(f->whead == NULL);
    }
    corio_future_set_result(f, corio_value_int(1));
    corio_future_unref(f);
    return 0;
}

static void expiring_await_leaves_no_waiter(void)
{
    CHECK_EQ(corio_run(expiring_await_main, NULL), 0);
}

/* cancel racing set_running_or_notify_cancel on a thread-safe future: exactly
 * one of them wins; a future that was let run is never cancelled under it. */
static corio_future_t *_Atomic race_f;
static atomic_int race_go, race_done;
static int race_cancel_rc;

static void *race_canceller(void *arg)
{
    (void)arg;
    for (int gen = 1;; gen++) {
        for (int spin = 0; atomic_load(&race_go) < gen; spin++)
            if (spin > 10000)
                sched_yield();
        corio_future_t *f = atomic_load(&race_f);
        if (!f)
            return NULL;
        race_cancel_rc = corio_future_cancel(f);
        atomic_store(&race_done, gen);
    }
}

/* Several threads blocked on one future, some with deadlines, while others
 * add callbacks under its lock: every sleeper wakes with the value (or its
 * own timeout), and every callback runs exactly once. */
enum { SLEEPERS = 4, ADDERS = 3, ADDS_EACH = 2000 };
static atomic_int cb_runs;

static void count_run(corio_future_t *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&cb_runs, 1);
}

typedef struct sleeper {
    corio_future_t *f;
    int64_t timeout_ns;
    int rc;
    intptr_t value;
} sleeper_t;

static void *sleep_on(void *arg)
{
    sleeper_t *s = arg;
    corio_value_t v = {0};
    s->rc = corio_await_timeout(s->f, s->timeout_ns, &v);
    s->value = s->rc == 0 ? corio_value_as_int(v) : 0;
    return NULL;
}

static void *add_callbacks(void *arg)
{
    for (int i = 0; i < ADDS_EACH; i++)
        CHECK_EQ(corio_future_add_done_callback(arg, count_run, NULL), 0);
    return NULL;
}

static void many_threads_on_one_future(void)
{
    corio_future_t *f;
    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    sleeper_t s[SLEEPERS];
    pthread_t st[SLEEPERS], at[ADDERS];
    for (int i = 0; i < SLEEPERS; i++) {
        /* One gives up long before the outcome; the rest wait it out. */
        int64_t timeout = i == 0 ? 2 * CORIO_NS_PER_MS : i == 1 ? -1 : 30 * CORIO_NS_PER_SEC;
        s[i] = (sleeper_t){.f = f, .timeout_ns = timeout};
        pthread_create(&st[i], NULL, sleep_on, &s[i]);
    }
    for (int i = 0; i < ADDERS; i++)
        pthread_create(&at[i], NULL, add_callbacks, f);
    pthread_join(st[0], NULL);
    CHECK_EQ(s[0].rc, -ETIMEDOUT);
    usleep(20000); /* the others asleep on the flag, most likely */
    CHECK_EQ(corio_future_set_result(f, corio_value_int(5)), 0);
    for (int i = 1; i < SLEEPERS; i++) {
        pthread_join(st[i], NULL);
        CHECK_EQ(s[i].rc, 0);
        CHECK_EQ(s[i].value, 5);
    }
    for (int i = 0; i < ADDERS; i++)
        pthread_join(at[i], NULL);
    CHECK_EQ(atomic_load(&cb_runs), ADDERS * ADDS_EACH);
    corio_future_unref(f);
}

static long resident_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    CHECK(f != NULL);
    CHECK_EQ(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Thread-safe futures come from a process-wide arena (future_arena.c):
 * a burst of them spans several chunks, and once every one is released
 * the memory goes back, while the records are carved anew and reused. */
static void threadsafe_burst_memory_returns(void)
{
    enum { BURST = 3 * (int)(CORIO_TASK_CHUNK_SIZE / sizeof(corio_ts_future_t)) };
    corio_future_t **fs = malloc(BURST * sizeof *fs);
    CHECK(fs != NULL);
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < BURST; i++) {
            CHECK_EQ(corio_future_new_threadsafe(&fs[i]), 0);
            CHECK_EQ(corio_future_set_result(fs[i], corio_value_int(i)), 0);
        }
        long full = resident_kib();
        for (int i = 0; i < BURST; i++) {
            corio_value_t v;
            CHECK_EQ(corio_future_result(fs[i], &v), 0);
            CHECK_EQ(corio_value_as_int(v), i);
            corio_future_unref(fs[i]);
        }
#ifndef CORIO_ASAN /* plain malloc there, which keeps what it likes */
        long after = resident_kib();
        CHECK(full - after >= 2 * (long)(CORIO_TASK_CHUNK_SIZE / 1024) - 512);
#else
        (void)full;
#endif
    }
    free(fs);
}

static void cancel_races_set_running(void)
{
    pthread_t th;
    pthread_create(&th, NULL, race_canceller, NULL);
    int both_tried = 0, cancelled = 0;
    /* Rounds until both outcomes were seen, bounded by time, not count:
     * under ThreadSanitizer or beside other tests the two threads may
     * rarely overlap, and 200,000 rounds outlast the case's timeout. */
    int64_t until = corio_now() + 20 * CORIO_NS_PER_SEC;
    for (int gen = 1; gen <= 20000 || ((!both_tried || !cancelled) && corio_now() < until); gen++) {
        corio_future_t *f;
        CHECK_EQ(corio_future_new_threadsafe(&f), 0);
        atomic_store(&race_f, f);
        atomic_store(&race_go, gen);
        for (int spin = gen % 1024; spin; spin--)
            __asm__ volatile("" ::: "memory");
        int run = corio_future_set_running_or_notify_cancel(f);
        for (int spin = 0; atomic_load(&race_done) < gen; spin++)
            if (spin > 10000)
                sched_yield();
        if (run == 0) {
            CHECK_EQ(race_cancel_rc, -EALREADY); /* running: not cancellable */
            CHECK(corio_future_running(f));
            CHECK_EQ(corio_future_set_result(f, corio_value_int(1)), 0);
            both_tried++;
        } else {
            CHECK_EQ(run, -ECANCELED);
            CHECK_EQ(race_cancel_rc, 0);
            cancelled++;
        }
        corio_future_unref(f);
    }
    atomic_store(&race_f, NULL);
    atomic_store(&race_go, INT_MAX); /* past any round: the canceller sees NULL */
    pthread_join(th, NULL);
    CHECK(both_tried > 0);
    CHECK(cancelled > 0);
}

TEST_MAIN(CASE(states_and_outcomes), CASE(bytes_are_owned_by_the_future),
          CASE(callbacks_run_later_in_order), CASE(threadsafe_callbacks),
          CASE(failing_loop_callback_goes_to_error_handler),
          CASE(failing_threadsafe_callback_is_reported),
          CASE(fallible_callbacks_removed_or_never_run),
          CASE(blocking_wait_outside_coroutine), CASE(await_threadsafe_from_coroutine),
          CASE(await_loop_future),
          CASE(expiring_await_leaves_no_waiter), CASE(many_threads_on_one_future),
          CASE(threadsafe_burst_memory_returns),
          CASE_T(cancel_races_set_running, 40))
