/* Timeout scopes and shielded waits.
 *
 * A scope is a deadline pushed on the task's stack of scopes
 * (t->scope_top, innermost first). The core reads only t->scope_deadline,
 * the nearest deadline of the stack, which every wait combines with its
 * own per-call deadline: so scopes, wait_for and per-call timeouts are one
 * mechanism. A shielded section parks scope_deadline at CORIO_NEVER and the
 * cancellation requests aside; leaving it recomputes the deadline from the
 * stack, in case a scope was rescheduled meanwhile. */
#include "sync_internal.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* The nearest deadline of s and its outer scopes. Scopes nest as deep as
 * the program's blocks, so the recursion is shallow. */
static int64_t effective(const corio_timeout_t *s)
{
    return min64(s->deadline, s->outer ? effective(s->outer) : s->base);
}

int64_t corio__scope_deadline(corio_task_t *t, int64_t fallback)
{
    return t->scope_top ? effective(t->scope_top) : fallback;
}

static void apply(corio_task_t *t)
{
    if (!t->shielded)
        t->scope_deadline = t->scope_top ? effective(t->scope_top) : t->scope_deadline;
}

int corio_timeout_at(corio_timeout_t *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    corio_task_t *t = corio_current_task();
    if (!t)
        return -EDEADLK;
    *s = (corio_timeout_t){
        .task = t,
        .outer = t->scope_top,
        .deadline = deadline,
        .base = t->scope_deadline,
        .active = true,
    };
    t->scope_top = s;
    apply(t);
    return 0;
}

int corio_timeout(corio_timeout_t *s, int64_t delay_ns)
{
    int64_t deadline = CORIO_NEVER;
    if (delay_ns >= 0)
        deadline = delay_ns > CORIO_NEVER - corio_now() ? CORIO_NEVER : corio_now() + delay_ns;
    return corio_timeout_at(s, deadline);
}

int corio_timeout_reschedule(corio_timeout_t *s, int64_t deadline)
{
    if (!s || !s->active)
        return -EINVAL;
    s->deadline = deadline;
    corio_task_t *t = s->task;
    apply(t);
    if (t == corio_current_task())
        return 0;
    /* A shielded wait that watches the scope (a group's exit) waits with
     * the scope's deadline as its own: it moves with the scope. */
    if (t->waits_for_scope && t->waiter)
        t->waiter->deadline = corio__scope_deadline(t, CORIO_NEVER);
    corio__task_deadline_changed(t);
    return 0;
}

int64_t corio_timeout_when(const corio_timeout_t *s) { return s ? s->deadline : CORIO_NEVER; }

bool corio_timeout_expired(const corio_timeout_t *s) { return s && s->expired; }

int corio_timeout_exit(corio_timeout_t *s, int rc)
{
    if (!s || !s->active)
        return -EINVAL;
    corio_task_t *t = s->task;
    if (t != corio_current_task() || t->scope_top != s)
        return -EINVAL;
    int64_t outer = s->outer ? effective(s->outer) : s->base;
    t->scope_top = s->outer;
    s->active = false;
    if (!t->shielded)
        t->scope_deadline = outer;
    /* The block's -ETIMEDOUT is this scope's when a scope deadline ended
     * the wait that failed (not a per-call timeout), and this scope's was
     * the binding one (an outer scope with an earlier deadline expired first
     * otherwise). A cancellation is never converted. */
    if (rc == -ETIMEDOUT && t->scope_expired && s->deadline != CORIO_NEVER &&
        s->deadline <= outer && s->deadline <= corio_now()) {
        s->expired = true;
        t->scope_expired = false; /* claimed: no outer scope claims it again */
        /* Expired and cancelled in the same turn: the cancellation goes on
         * (asyncio's Timeout does the same). */
        return t->cancel_requests ? -ECANCELED : -ETIMEDOUT;
    }
    return rc;
}

/* ---- shielded waits ------------------------------------------------------------- */

void corio__shield_enter(corio__shield_t *s, corio_task_t *t)
{
    s->task = t;
    s->cancels = t->cancel_requests;
    s->scope_deadline = t->scope_deadline;
    s->scope_expired = t->scope_expired;
    t->cancel_requests = 0;
    t->scope_deadline = CORIO_NEVER;
    s->outer_shielded = t->shielded;
    t->shielded = true;
}

int corio__shield_absorb(corio__shield_t *s)
{
    int n = s->task->cancel_requests;
    s->cancels += n;
    s->task->cancel_requests = 0;
    return n;
}

void corio__shield_exit(corio__shield_t *s)
{
    corio_task_t *t = s->task;
    corio__shield_absorb(s);
    t->cancel_requests = s->cancels;
    t->shielded = s->outer_shielded;
    t->scope_expired = s->scope_expired; /* the waits inside are not the caller's */
    if (!t->shielded)
        t->scope_deadline = corio__scope_deadline(t, s->scope_deadline);
    else
        t->scope_deadline = s->scope_deadline;
}

int corio__wait_shielded(corio_waiter_t *w, bool (*done)(void *), void (*on_interrupt)(void *, int),
                         void *arg)
{
    corio_task_t *t = corio_current_task();
    int seen = 0;
    if (t->cancel_requests) {
        seen |= CORIO__SAW_CANCEL;
        on_interrupt(arg, -ECANCELED);
    }
    corio__shield_t sh;
    corio__shield_enter(&sh, t);
    while (!done(arg)) {
        /* Read each time: another task may have rescheduled the scope. */
        int64_t scope = corio__scope_deadline(t, sh.scope_deadline);
        if (!(seen & CORIO__SAW_TIMEOUT) && scope != CORIO_NEVER && scope <= corio_now()) {
            seen |= CORIO__SAW_TIMEOUT;
            on_interrupt(arg, -ETIMEDOUT);
            continue;
        }
        w->task = t;
        bool watch = !(seen & CORIO__SAW_TIMEOUT);
        t->waits_for_scope = watch;
        int rc = corio__wait(w, watch ? scope : CORIO_NEVER);
        t->waits_for_scope = false;
        if (rc == -ECANCELED) {
            corio__shield_absorb(&sh);
            if (!(seen & CORIO__SAW_CANCEL)) {
                seen |= CORIO__SAW_CANCEL;
                on_interrupt(arg, -ECANCELED);
            }
        } else if (rc == -ETIMEDOUT) {
            seen |= CORIO__SAW_TIMEOUT;
            on_interrupt(arg, -ETIMEDOUT);
        }
    }
    corio__shield_exit(&sh);
    if (seen & CORIO__SAW_TIMEOUT)
        t->scope_expired = true; /* only the scope's deadline ends these waits */
    return seen;
}

void corio__await_shielded(corio_future_t *f)
{
    corio__shield_t sh;
    corio__shield_enter(&sh, corio_current_task());
    while (!corio_future_done(f)) {
        corio_await(f, NULL);
        corio__shield_absorb(&sh);
    }
    corio__shield_exit(&sh);
}
