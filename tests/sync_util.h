/* Helpers shared by the composition and sync tests (issue 6). */
#ifndef CORIO_TEST_SYNC_UTIL_H
#define CORIO_TEST_SYNC_UTIL_H

#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <string.h>

/* Runs fn(arg) as the main task of a fresh loop and checks that the loop
 * then closes cleanly: every task finished, nothing left running. Returns
 * the task's result (or its error code). */
static inline intptr_t run_main(corio_task_fn fn, void *arg)
{
    corio_loop_t *loop;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    corio_task_t *t;
    CHECK_EQ(corio_spawn(loop, &t, fn, arg, &(corio_task_options_t){.name = "main"}), 0);
    CHECK_EQ(corio_loop_run_until_complete(loop, corio_task_future(t)) == CORIO_EINVALSTATE, 0);
    corio_value_t v = {NULL, 0};
    intptr_t rc = corio_future_result(corio_task_future(t), &v);
    if (rc == 0)
        rc = (intptr_t)v.ptr;
    corio_task_release(t);
    CHECK_EQ(corio_loop_free(loop), 0);
    return rc;
}

/* How far ahead a test sets a deadline that must still be armed after it
 * spawned and started a few tasks: under ThreadSanitizer a new coroutine
 * costs milliseconds on a machine with slow page faults. */
#define AHEAD (200 * MS)

static inline corio_task_t *spawn(corio_task_fn fn, void *arg)
{
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, fn, arg, NULL), 0);
    return t;
}

/* Lets every ready task run n turns. */
static inline void turns(int n)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(corio_sleep(0), 0);
}

/* Awaits t, releases it, returns its result or error code. */
static inline intptr_t join(corio_task_t *t)
{
    corio_value_t v = {NULL, 0};
    int rc = corio_await(corio_task_future(t), &v);
    CHECK(corio_task_done(t));
    rc = corio_future_result(corio_task_future(t), &v);
    corio_task_release(t);
    return rc ? rc : (intptr_t)v.ptr;
}

/* The absolute time of t's armed deadline (t suspended with one). */
static inline int64_t deadline_of(corio_task_t *t)
{
    CHECK(t->waiter && t->waiter->timer && corio_handle_pending(t->waiter->timer));
    return t->waiter->timer->when;
}

/* Re-inserts t's armed deadline at the same time, so it fires after every
 * handle already scheduled for that time: "the other event, then the
 * timeout", within one loop turn. */
static inline void deadline_last(corio_task_t *t)
{
    CHECK(t->waiter && t->waiter->timer);
    corio_handle_t *h = t->waiter->timer;
    int64_t when = h->when;
    corio_callback_fn fn = h->fn;
    void *arg = h->arg;
    CHECK_EQ(corio_handle_cancel(h), 0);
    CHECK_EQ(corio_loop_call_at(t->fut.loop, h, when, fn, arg), 0);
}

static inline void at(int64_t when, corio_callback_fn fn, void *arg)
{
    CHECK_EQ(corio_loop_call_at(corio_loop_current(), NULL, when, fn, arg), 0);
}

CORIO_UNUSED static void cancel_cb(void *t) { corio_task_cancel(t); }

#endif
