/* Task groups (asyncio.TaskGroup).
 *
 * Each child carries a done-callback on the group; the group lives on the
 * parent's side (usually its stack) and exit returns only once every
 * callback has run, so none outlives it. Cancellation requests are counted
 * (level-triggered), which is what keeps nested groups honest: a group
 * withdraws only the one request it made itself, so a cancellation from
 * outside still shows when it leaves. */
#include "sync_internal.h"

#include <stdlib.h>

int corio_task_group_init(corio_task_group_t *g)
{
    if (!g)
        return -EINVAL;
    corio_task_t *t = corio_current_task();
    if (!t)
        return -EDEADLK;
    *g = (corio_task_group_t){.parent = t};
    return 0;
}

static void add_error(corio_task_group_t *g, int code, bool first)
{
    if (g->nerrors == g->errcap) {
        size_t cap = g->errcap ? g->errcap * 2 : 4;
        int *e = corio__fault_hit(CORIO_FAULT_GROUP_ERRORS) ? NULL
                                                            : realloc(g->errors, cap * sizeof *e);
        if (!e) {
            /* The error still aborts the group and exit still fails. */
            if (first || !g->unrecorded)
                g->unrecorded = code;
            return;
        }
        g->errors = e;
        g->errcap = cap;
    }
    if (first) {
        for (size_t i = g->nerrors; i > 0; i--)
            g->errors[i] = g->errors[i - 1];
        g->errors[0] = code;
    } else {
        g->errors[g->nerrors] = code;
    }
    g->nerrors++;
}

static void group_abort(corio_task_group_t *g)
{
    g->aborting = true;
    for (size_t i = 0; i < g->ntasks; i++)
        if (!corio_task_done(g->tasks[i]))
            corio_task_cancel(g->tasks[i]);
}

static void child_done(corio_future_t *f, void *arg)
{
    corio_task_group_t *g = arg;
    g->pending--;
    if (!corio_future_cancelled(f)) {
        int code = corio_future_exception(f, NULL);
        if (code < 0) {
            add_error(g, code, false);
            if (!g->aborting)
                group_abort(g);
            /* Interrupt the parent's block; exit withdraws this request. In
             * exit the parent is already waiting for us, not running the
             * block. */
            if (!g->exiting && !g->parent_cancel_requested && !corio_task_done(g->parent)) {
                g->parent_cancel_requested = true;
                corio_task_cancel(g->parent);
            }
        }
    }
    if (g->exit_waiter)
        corio__wake(g->exit_waiter, 0);
}

int corio_task_group_spawn(corio_task_group_t *g, corio_task_t **out, corio_task_fn fn, void *arg,
                           const corio_task_options_t *opts)
{
    if (out)
        *out = NULL;
    if (!g || !g->parent || !fn)
        return -EINVAL;
    if (g->aborting || g->exited)
        return -ESHUTDOWN;
    if (g->ntasks == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        corio_task_t **n = realloc(g->tasks, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        g->tasks = n;
        g->cap = cap;
    }
    corio_task_t *t;
    int rc = corio_spawn(g->parent->fut.loop, &t, fn, arg, opts);
    if (rc < 0)
        return rc;
    rc = corio_future_add_done_callback(corio_task_future(t), child_done, g);
    if (rc < 0) {
        corio_task_cancel(t); /* it has not started: it ends without running */
        corio_task_release(t);
        return rc;
    }
    g->tasks[g->ntasks++] = t;
    g->pending++;
    if (out)
        *out = (corio_task_t *)corio_future_ref(corio_task_future(t));
    return 0;
}

static bool all_children_done(void *arg) { return ((corio_task_group_t *)arg)->pending == 0; }

static void on_parent_interrupt(void *arg, int reason)
{
    (void)reason;
    corio_task_group_t *g = arg;
    if (!g->aborting)
        group_abort(g);
}

int corio_task_group_exit(corio_task_group_t *g, int rc)
{
    if (!g || !g->parent || g->exited)
        return -EINVAL;
    corio_task_t *t = g->parent;
    if (corio_current_task() != t)
        return -EINVAL;
    g->exiting = true;
    if (rc < 0 && rc != -ECANCELED && rc != -ETIMEDOUT)
        add_error(g, rc, true);
    if (rc < 0 && !g->aborting)
        group_abort(g);
    corio_waiter_t w = {.task = t};
    g->exit_waiter = &w;
    int seen = corio__wait_shielded(&w, all_children_done, on_parent_interrupt, g);
    g->exit_waiter = NULL;
    g->exited = true;
    if (g->parent_cancel_requested) {
        g->parent_cancel_requested = false;
        corio_task_uncancel(t);
    }
    if (t->cancel_requests)
        return -ECANCELED;
    if (g->nerrors)
        return g->errors[0];
    if (g->unrecorded)
        return g->unrecorded;
    if (seen & CORIO__SAW_TIMEOUT)
        return -ETIMEDOUT;
    return rc;
}

size_t corio_task_group_errors(const corio_task_group_t *g, int *codes, size_t max)
{
    if (!g)
        return 0;
    for (size_t i = 0; codes && i < g->nerrors && i < max; i++)
        codes[i] = g->errors[i];
    return g->nerrors;
}

int corio_task_group_destroy(corio_task_group_t *g)
{
    if (!g)
        return -EINVAL;
    if (g->parent && !g->exited)
        return -EBUSY;
    for (size_t i = 0; i < g->ntasks; i++)
        corio_task_release(g->tasks[i]);
    free(g->tasks);
    free(g->errors);
    *g = (corio_task_group_t){0};
    return 0;
}
