/* gather, wait_for, shield, and corio_wait / corio_as_completed on tasks;
 * wait_for racing a cancellation, a completion and its timeout in every
 * order within one loop turn. */
#include "sync_util.h"

#include <pthread.h>
#include <unistd.h>

#define MS CORIO_NS_PER_MS
#define SEC CORIO_NS_PER_SEC

/* A task that sleeps, then returns result; cancelled, it cleans up for a
 * while (5 ms) before it ends cancelled. */
typedef struct slow {
    int64_t ns;
    intptr_t result;
    bool cancelled, cleanup_done;
} slow_t;
#pragma GCC diagnostic ignored "-Wmissing-field-initializers" 

static intptr_t slow_task(void *arg)
{
    slow_t *s = arg;
    int rc = corio_sleep(s->ns);
    if (rc == -ECANCELED) {
        s->cancelled = true;
        corio_task_uncancel(corio_current_task());
        CHECK_EQ(corio_sleep(5 * MS), 0);
        s->cleanup_done = true;
        return -ECANCELED;
    }
    CHECK_EQ(rc, 0);
    return s->result;
}

static corio_task_t *spawn_slow(slow_t *s) { return spawn(slow_task, s); }

/* ---- gather ------------------------------------------------------------------ */

static intptr_t gather_main(void *arg)
{
    (void)arg;
    slow_t s[4] = {{4 * MS, 10}, {1 * MS, 11}, {3 * MS, 12}, {0, 13}};
    corio_future_t *f[5];
    corio_task_t *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = spawn_slow(&s[i]);
        f[i] = corio_task_future(t[i]);
    }
    f[4] = f[1]; /* the same future twice */
    corio_outcome_t r[5];
    CHECK_EQ(corio_gather(f, 5, 0, r), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(r[i].code, 0);
        CHECK_EQ(corio_value_as_int(r[i].value), 10 + (i == 4 ? 1 : i));
    }
    for (int i = 0; i < 4; i++)
        corio_task_release(t[i]);
    /* Plain futures, some done already; nothing to wait for. */
    corio_future_t *p[2];
    corio_future_new(NULL, &p[0]);
    corio_future_new(NULL, &p[1]);
    corio_future_set_result(p[0], corio_value_int(1));
    corio_future_set_exception(p[1], -EPIPE, "broken");
    CHECK_EQ(corio_gather(p, 2, CORIO_GATHER_COLLECT, r), 0);
    CHECK_EQ(r[0].code, 0);
    CHECK_EQ(r[1].code, -EPIPE);
    CHECK_EQ(corio_gather(p, 2, 0, NULL), -EPIPE);
    CHECK_EQ(corio_gather(NULL, 0, 0, NULL), 0);
    CHECK_EQ(corio_gather(NULL, 1, 0, NULL), -EINVAL);
    CHECK_EQ(corio_gather(p, 2, 99, NULL), -EINVAL);
    corio_future_unref(p[0]);
    corio_future_unref(p[1]);
    return 0;
}

static void gather_in_order(void) { CHECK_EQ(run_main(gather_main, NULL), 0); }

static int pool_job(const corio_value_t *arg, corio_value_t *result)
{
    usleep(2000);
    if (corio_value_as_int(*arg) < 0)
        return (int)corio_value_as_int(*arg);
    *result = corio_value_int(corio_value_as_int(*arg) * 2);
    return 0;
}

/* Executor futures complete in a pool thread: gather carries each
 * completion over to its loop. */
static intptr_t gather_executor_main(void *arg)
{
    (void)arg;
    corio_executor_t *ex;
    CHECK_EQ(corio_thread_pool_new(&ex, &(corio_thread_pool_options_t){.max_workers = 3}), 0);
    corio_future_t *f[5];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(corio_executor_submit(ex, pool_job, corio_value_int(i + 1), &f[i]), 0);
    slow_t s = {MS, 50};
    corio_task_t *t = spawn_slow(&s);
    f[4] = corio_task_future(t);
    corio_outcome_t r[5];
    CHECK_EQ(corio_gather(f, 5, 0, r), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(corio_value_as_int(r[i].value), 2 * (i + 1));
    CHECK_EQ(corio_value_as_int(r[4].value), 50);
    for (int i = 0; i < 4; i++)
        corio_future_unref(f[i]);
    /* A failing job: its error, in collect mode among the others. */
    CHECK_EQ(corio_executor_submit(ex, pool_job, corio_value_int(-EPIPE), &f[0]), 0);
    CHECK_EQ(corio_executor_submit(ex, pool_job, corio_value_int(5), &f[1]), 0);
    CHECK_EQ(corio_gather(f, 2, CORIO_GATHER_COLLECT, r), 0);
    CHECK_EQ(r[0].code, -EPIPE);
    CHECK_EQ(corio_value_as_int(r[1].value), 10);
    corio_future_unref(f[0]);
    corio_future_unref(f[1]);
    corio_task_release(t);
    corio_executor_free(ex);
    return 0;
}

static void gather_executor_futures(void) { CHECK_EQ(run_main(gather_executor_main, NULL), 0); }

static intptr_t failing(void *arg)
{
    corio_sleep((int64_t)(intptr_t)arg);
    return -EIO;
}

static intptr_t gather_error_main(void *arg)
{
    bool collect = arg != NULL;
    slow_t a = {collect ? 20 * MS : 10 * SEC, 1}, c = {0, 3};
    corio_task_t *t[3] = {spawn_slow(&a), spawn(failing, (void *)(intptr_t)MS), spawn_slow(&c)};
    corio_future_t *f[3];
    for (int i = 0; i < 3; i++)
        f[i] = corio_task_future(t[i]);
    corio_outcome_t r[3];
    int64_t t0 = corio_now();
    int rc = corio_gather(f, 3, collect ? CORIO_GATHER_COLLECT : 0, r);
    if (collect) {
        /* Everything ran to its end: a was not cancelled. */
        CHECK_EQ(rc, 0);
        CHECK(!a.cancelled);
        CHECK_EQ(r[0].code, 0);
        CHECK_EQ(corio_value_as_int(r[0].value), 1);
    } else {
        /* The first error cancelled a, and gather waited for its cleanup. */
        CHECK_EQ(rc, -EIO);
        CHECK(a.cancelled);
        CHECK(a.cleanup_done);
        CHECK_EQ(r[0].code, -ECANCELED);
        CHECK(corio_now() - t0 < 5 * SEC);
    }
    CHECK_EQ(r[1].code, -EIO);
    CHECK_EQ(r[2].code, 0);
    CHECK_EQ(corio_value_as_int(r[2].value), 3);
    for (int i = 0; i < 3; i++)
        CHECK(corio_task_done(t[i]));
    for (int i = 0; i < 3; i++)
        corio_task_release(t[i]);
    return 0;
}

static void gather_first_error(void) { CHECK_EQ(run_main(gather_error_main, NULL), 0); }

static void gather_collect(void)
{
    CHECK_EQ(run_main(gather_error_main, (void *)1), 0);
}

typedef struct gather_arg {
    slow_t s[2];
    int rc;
    corio_outcome_t r[2];
} gather_arg_t;

static intptr_t gatherer(void *arg)
{
    gather_arg_t *g = arg;
    corio_task_t *t[2] = {spawn_slow(&g->s[0]), spawn_slow(&g->s[1])};
    corio_future_t *f[2] = {corio_task_future(t[0]), corio_task_future(t[1])};
    g->rc = corio_gather(f, 2, 0, g->r);
    CHECK(corio_task_done(t[0]) && corio_task_done(t[1]));
    corio_task_release(t[0]);
    corio_task_release(t[1]);
    return g->rc;
}

/* Cancelling the gathering task cancels the children and waits for them. */
static intptr_t gather_cancel_main(void *arg)
{
    (void)arg;
    gather_arg_t g = {.s = {{10 * SEC, 1}, {0, 2}}};
    corio_task_t *t = spawn(gatherer, &g);
    turns(3);
    corio_task_cancel(t);
    CHECK_EQ(join(t), -ECANCELED);
    CHECK_EQ(g.rc, -ECANCELED);
    CHECK(g.s[0].cancelled && g.s[0].cleanup_done);
    CHECK_EQ(g.r[0].code, -ECANCELED);
    CHECK_EQ(g.r[1].code, 0);
    /* Inside a timeout scope: the expiry does the same. */
    gather_arg_t g2 = {.s = {{10 * SEC, 1}, {10 * SEC, 2}}};
    corio_timeout_t s;
    corio_timeout(&s, 5 * MS);
    int rc = (int)gatherer(&g2);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
    CHECK(g2.s[0].cleanup_done && g2.s[1].cleanup_done);
    return 0;
}

static void gather_cancelled(void) { CHECK_EQ(run_main(gather_cancel_main, NULL), 0); }

/* ---- wait_for ------------------------------------------------------------------ */

static intptr_t wait_for_main(void *arg)
{
    (void)arg;
    slow_t s = {MS, 5};
    corio_task_t *t = spawn_slow(&s);
    corio_value_t v;
    CHECK_EQ(corio_wait_for(corio_task_future(t), 10 * SEC, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 5);
    corio_task_release(t);
    /* Timeout: the task is cancelled and wait_for returns after its cleanup. */
    slow_t s2 = {10 * SEC, 5};
    t = spawn_slow(&s2);
    CHECK_EQ(corio_wait_for(corio_task_future(t), 2 * MS, &v), -ETIMEDOUT);
    CHECK(s2.cancelled && s2.cleanup_done);
    CHECK(corio_task_done(t));
    corio_task_release(t);
    /* A future done already, even with a zero timeout. */
    corio_future_t *f;
    corio_future_new(NULL, &f);
    corio_future_set_result(f, corio_value_int(9));
    CHECK_EQ(corio_wait_for(f, 0, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 9);
    corio_future_unref(f);
    /* A pending plain future times out and ends cancelled. */
    corio_future_new(NULL, &f);
    CHECK_EQ(corio_wait_for(f, 0, &v), -ETIMEDOUT);
    CHECK(corio_future_cancelled(f));
    corio_future_unref(f);
    CHECK_EQ(corio_wait_for(NULL, 0, &v), -EINVAL);
    return 0;
}

static void wait_for_basic(void) { CHECK_EQ(run_main(wait_for_main, NULL), 0); }

typedef struct wf_arg {
    corio_future_t *f;
    int64_t timeout;
    int rc;
    corio_value_t v;
    int cancelling;
} wf_arg_t;

static intptr_t wf_waiter(void *arg)
{
    wf_arg_t *a = arg;
    a->rc = corio_wait_for(a->f, a->timeout, &a->v);
    a->cancelling = corio_task_cancelling(corio_current_task());
    return a->rc == -ECANCELED ? 0 : a->rc; /* report, do not end cancelled */
}

static void complete_cb(void *f) { corio_future_set_result(f, corio_value_int(77)); }

/* wait_for racing a cancellation of the waiter, the completion of the
 * awaited future and wait_for's own timeout, every order in one turn:
 * 0 complete, cancel   1 cancel, complete
 * 2 timeout, cancel    3 cancel, timeout
 * 4 timeout, complete  5 complete, timeout */
static intptr_t wait_for_race_main(void *arg)
{
    int order = (int)(intptr_t)arg;
    corio_future_t *f;
    corio_future_new(NULL, &f);
    wf_arg_t a = {.f = f, .timeout = order >= 2 ? 20 * MS : 10 * SEC};
    corio_task_t *t = spawn(wf_waiter, &a);
    turns(2);
    int64_t T = deadline_of(t);
    switch (order) {
    case 0:
        complete_cb(f);
        corio_task_cancel(t);
        break;
    case 1:
        corio_task_cancel(t);
        complete_cb(f);
        break;
    case 2:
        at(T, cancel_cb, t);
        break;
    case 3:
        at(T, cancel_cb, t);
        deadline_last(t);
        break;
    case 4:
        at(T, complete_cb, f);
        break;
    case 5:
        at(T, complete_cb, f);
        deadline_last(t);
        break;
    }
    CHECK_EQ(join(t), 0);
    if (order < 4) {
        /* The waiter's cancellation is never swallowed. */
        CHECK_EQ(a.rc, -ECANCELED);
        CHECK_EQ(a.cancelling, 1);
        if (order < 2) {
            CHECK(!corio_future_cancelled(f)); /* the result stays in f */
            corio_value_t v;
            CHECK_EQ(corio_future_result(f, &v), 0);
            CHECK_EQ(corio_value_as_int(v), 77);
        } else {
            CHECK(corio_future_cancelled(f));
        }
    } else {
        /* Completed in the timeout's turn: the result is not lost. */
        CHECK_EQ(a.rc, 0);
        CHECK_EQ(corio_value_as_int(a.v), 77);
        CHECK_EQ(a.cancelling, 0);
    }
    corio_future_unref(f);
    return 0;
}

static void wait_for_race_orders(void)
{
    for (int i = 0; i < 6; i++)
        CHECK_EQ(run_main(wait_for_race_main, (void *)(intptr_t)i), 0);
}

/* The waiter cancelled while the awaited task takes time to cancel: wait_for
 * waits for the task's cleanup, then reports the cancellation. */
static intptr_t wait_for_cancel_main(void *arg)
{
    (void)arg;
    slow_t s = {10 * SEC, 1};
    corio_task_t *inner = spawn_slow(&s);
    wf_arg_t a = {.f = corio_task_future(inner), .timeout = 10 * SEC};
    corio_task_t *t = spawn(wf_waiter, &a);
    turns(3);
    corio_task_cancel(t);
    turns(1);
    corio_task_cancel(t); /* twice, during the wait for the cleanup */
    CHECK_EQ(join(t), 0);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(a.cancelling, 2);
    CHECK(s.cleanup_done);
    CHECK(corio_task_done(inner));
    corio_task_release(inner);
    return 0;
}

static void wait_for_cancelled(void) { CHECK_EQ(run_main(wait_for_cancel_main, NULL), 0); }

/* ---- shield ---------------------------------------------------------------------- */

static intptr_t shield_main(void *arg)
{
    (void)arg;
    slow_t s = {20 * MS, 8};
    corio_task_t *inner = spawn_slow(&s);
    corio_future_t *outer;
    CHECK_EQ(corio_shield(corio_task_future(inner), &outer), 0);
    CHECK(outer != corio_task_future(inner));
    /* wait_for cancels the shield, not the task behind it. */
    CHECK_EQ(corio_wait_for(outer, MS, NULL), -ETIMEDOUT);
    CHECK(corio_future_cancelled(outer));
    CHECK(!corio_task_done(inner));
    corio_value_t v;
    CHECK_EQ(corio_task_await(inner, &v), 0);
    CHECK_EQ(corio_value_as_int(v), 8);
    CHECK(!s.cancelled);
    corio_future_unref(outer);
    /* Shielding a done future gives the future itself. */
    CHECK_EQ(corio_shield(corio_task_future(inner), &outer), 0);
    CHECK(outer == corio_task_future(inner));
    corio_future_unref(outer);
    corio_task_release(inner);
    /* Outcomes are mirrored: bytes (copied), errors. */
    corio_future_t *f;
    corio_future_new(NULL, &f);
    CHECK_EQ(corio_shield(f, &outer), 0);
    corio_future_set_result(f, (corio_value_t){strdup("hello"), 6});
    CHECK_EQ(corio_await(outer, &v), 0);
    CHECK_EQ(v.len, 6);
    CHECK(strcmp(v.ptr, "hello") == 0);
    corio_future_unref(outer);
    corio_future_unref(f);
    corio_future_new(NULL, &f);
    CHECK_EQ(corio_shield(f, &outer), 0);
    corio_future_set_exception(f, -EPIPE, "gone");
    CHECK_EQ(corio_await(outer, &v), -EPIPE);
    corio_future_exception(f, NULL);
    corio_future_unref(outer);
    corio_future_unref(f);
    CHECK_EQ(corio_shield(NULL, &outer), -EINVAL);
    return 0;
}

static void shield_basic(void) { CHECK_EQ(run_main(shield_main, NULL), 0); }

/* ---- corio_wait and corio_as_completed on tasks ---------------------------------- */

static intptr_t wait_main(void *arg)
{
    (void)arg;
    /* The failure comes well after the first completion: the waiting task
     * resumes a loop turn or more after its trigger fires, which on a
     * loaded machine took over 2 ms (and the first wait saw both done). */
    slow_t s[3] = {{1 * MS, 1}, {10 * SEC, 2}, {0, 0}};
    corio_task_t *t[3] = {spawn_slow(&s[0]), spawn_slow(&s[1]),
                          spawn(failing, (void *)(intptr_t)(50 * MS))};
    corio_future_t *f[3], *done[3], *pending[3];
    for (int i = 0; i < 3; i++)
        f[i] = corio_task_future(t[i]);
    size_t nd, np;
    CHECK_EQ(corio_wait(f, 3, -1, CORIO_FIRST_COMPLETED, done, &nd, pending, &np), 0);
    CHECK_EQ(nd, 1);
    CHECK(done[0] == f[0]);
    CHECK_EQ(corio_wait(f, 3, -1, CORIO_FIRST_EXCEPTION, done, &nd, pending, &np), 0);
    CHECK_EQ(nd, 2);
    CHECK_EQ(np, 1);
    CHECK(pending[0] == f[1]);
    /* A timeout returns what is done, and never cancels. */
    CHECK_EQ(corio_wait(f, 3, 2 * MS, CORIO_ALL_COMPLETED, done, &nd, pending, &np), 0);
    CHECK_EQ(np, 1);
    CHECK(!s[1].cancelled);
    /* as_completed: the done ones, then the rest in completion order. */
    corio_task_cancel(t[1]);
    corio_as_completed_t *it;
    CHECK_EQ(corio_as_completed_new(f, 3, -1, &it), 0);
    corio_future_t *x;
    int n = 0;
    while (corio_as_completed_next(it, &x) == 1)
        n++;
    corio_as_completed_free(it);
    CHECK_EQ(n, 3);
    CHECK(s[1].cleanup_done);
    corio_future_exception(f[2], NULL);
    for (int i = 0; i < 3; i++)
        corio_task_release(t[i]);
    return 0;
}

static void wait_on_tasks(void) { CHECK_EQ(run_main(wait_main, NULL), 0); }

static int g_cleanup_rc;

/* Catches the first cancellation and awaits its cleanup. */
static intptr_t cleanup_child(void *arg)
{
    (void)arg;
    if (corio_sleep(60000 * MS) != -ECANCELED)
        return 5;
    corio_task_uncancel(corio_current_task());
    g_cleanup_rc = corio_sleep(MS);
    return -ECANCELED;
}

static intptr_t gather_twice(void *arg)
{
    corio_future_t *fs[3] = {arg, arg, arg};
    return corio_gather(fs, 3, 0, NULL);
}

/* A future of a loop on another thread, which frees both once told. */
typedef struct foreign {
    pthread_barrier_t ready, finished;
    corio_future_t *f;
} foreign_t;

static void *foreign_loop_thread(void *arg)
{
    foreign_t *fo = arg;
    corio_loop_t *l;
    CHECK_EQ(corio_loop_new(&l, NULL), 0);
    CHECK_EQ(corio_future_new(l, &fo->f), 0);
    pthread_barrier_wait(&fo->ready);
    pthread_barrier_wait(&fo->finished);
    corio_future_unref(fo->f);
    CHECK_EQ(corio_loop_free(l), 0);
    return NULL;
}

/* The same task listed three times is cancelled once (its cleanup await
 * used to find a second request); another loop's future is refused, not
 * awaited for ever. */
static intptr_t gather_repeats_main(void *arg)
{
    (void)arg;
    g_cleanup_rc = 1;
    corio_task_t *c = spawn(cleanup_child, NULL);
    corio_task_t *g = spawn(gather_twice, corio_task_future(c));
    CHECK_EQ(corio_sleep(10 * MS), 0);
    corio_task_cancel(g);
    CHECK_EQ(join(g), -ECANCELED);
    CHECK_EQ(join(c), -ECANCELED);
    CHECK_EQ(g_cleanup_rc, 0);

    foreign_t fo;
    pthread_barrier_init(&fo.ready, NULL, 2);
    pthread_barrier_init(&fo.finished, NULL, 2);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_loop_thread, &fo), 0);
    pthread_barrier_wait(&fo.ready);
    corio_future_t *fs[2] = {fo.f, fo.f};
    CHECK_EQ(corio_gather(fs, 2, 0, NULL), -EINVAL);
    CHECK(!corio_future_cancelled(fo.f));
    pthread_barrier_wait(&fo.finished);
    CHECK_EQ(pthread_join(th, NULL), 0);
    pthread_barrier_destroy(&fo.ready);
    pthread_barrier_destroy(&fo.finished);
    return 0;
}

static void gather_repeats_and_foreign(void) { CHECK_EQ(run_main(gather_repeats_main, NULL), 0); }

TEST_MAIN(CASE(gather_in_order), CASE(gather_executor_futures), CASE(gather_first_error), CASE(gather_collect),
          CASE(gather_cancelled), CASE(wait_for_basic), CASE(wait_for_race_orders),
          CASE(wait_for_cancelled), CASE(shield_basic), CASE(wait_on_tasks),
          CASE(gather_repeats_and_foreign))
