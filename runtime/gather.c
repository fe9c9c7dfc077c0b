/* gather, wait_for and shield.
 *
 * gather registers one done-callback per future on a record on the caller's
 * stack; the callbacks count completions and wake the caller. It returns
 * only after every callback has run, so no callback outlives the record. */
#include "sync_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- gather ------------------------------------------------------------------ */

void corio__call_soon_threadsafe_handle(corio_loop_t *loop, corio_handle_t *h);

/* A thread-safe future (an executor's) runs its callbacks in the thread
 * that completes it: a hop carries the completion to the loop, through a
 * handle allocated before waiting, so completing needs no memory. */
typedef struct gather_hop {
    corio_handle_t h;
    struct gather *g;
    corio_future_t *f;
    corio_loop_t *loop;
} gather_hop_t;

typedef struct gather {
    corio_waiter_t w;
    corio_future_t *const *fs;
    size_t n, ndone;
    int first_error;
    bool collect;
    bool cancelled; /* the rest was cancelled once: a task that caught it
                       and cleans up must not get a second request */
} gather_t;

static void gather_cb(corio_future_t *f, void *arg)
{
    gather_t *g = arg;
    g->ndone++;
    if (!g->collect && !g->first_error) {
        int code = corio_future_exception(f, NULL);
        if (code < 0)
            g->first_error = code;
    }
    corio__wake(&g->w, 0);
}

static void gather_hop_run(void *arg)
{
    gather_hop_t *hop = arg;
    gather_cb(hop->f, hop->g);
}

static void gather_hop_cb(corio_future_t *f, void *arg)
{
    (void)f;
    gather_hop_t *hop = arg;
    hop->h.fn = gather_hop_run;
    hop->h.arg = hop;
    corio__call_soon_threadsafe_handle(hop->loop, &hop->h);
}

static bool gather_done(void *arg)
{
    gather_t *g = arg;
    return g->ndone == g->n;
}

typedef struct slot {
    corio_future_t *f;
    size_t i;
} slot_t;

static int slot_cmp(const void *a, const void *b)
{
    const slot_t *x = a, *y = b;
    if (x->f != y->f)
        return (uintptr_t)x->f < (uintptr_t)y->f ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* repeat[i]: fs[i] also appears earlier. NULL without memory. */
static bool *mark_repeats(corio_future_t *const *fs, size_t n)
{
    slot_t *s = malloc(n * sizeof *s);
    bool *repeat = calloc(n, sizeof *repeat);
    if (!s || !repeat) {
        free(s);
        free(repeat);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        s[i] = (slot_t){fs[i], i};
    qsort(s, n, sizeof *s, slot_cmp);
    for (size_t k = 1; k < n; k++)
        repeat[s[k].i] = s[k].f == s[k - 1].f;
    free(s);
    return repeat;
}

static bool listed_before(corio_future_t *const *fs, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (fs[j] == fs[i])
            return true;
    return false;
}

/* Cancels each future once, in list order, however often it is listed: a
 * task that caught the cancellation must not find a second one pending. */
static void gather_cancel_rest(void *arg, int reason)
{
    (void)reason;
    gather_t *g = arg;
    if (g->cancelled)
        return;
    g->cancelled = true;
    bool *repeat = g->n > 1 ? mark_repeats(g->fs, g->n) : NULL;
    for (size_t i = 0; i < g->n; i++) {
        bool again = repeat ? repeat[i] : listed_before(g->fs, i);
        if (!again && !corio_future_done(g->fs[i]))
            corio_future_cancel(g->fs[i]);
    }
    free(repeat);
}

int corio_gather(corio_future_t *const *futures, size_t n, unsigned flags, corio_outcome_t *results)
{
    if ((n && !futures) || (flags & ~CORIO_GATHER_COLLECT))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!futures[i])
            return -EINVAL;
    corio_task_t *t = corio_current_task();
    if (!t)
        return -EDEADLK;
    for (size_t i = 0; i < n; i++) {
        corio_loop_t *fl = corio_future_loop(futures[i]);
        if (fl && fl != t->fut.loop)
            return -EINVAL; /* another loop's future: its callbacks never run here */
    }
    gather_t g = {.w = {.task = t}, .fs = futures, .n = n,
                  .collect = (flags & CORIO_GATHER_COLLECT) != 0};
    size_t nts = 0;
    for (size_t i = 0; i < n; i++)
        nts += corio_future_loop(futures[i]) == NULL;
    gather_hop_t *hops = NULL;
    if (nts && !(hops = calloc(nts, sizeof *hops)))
        return -ENOMEM;
    for (size_t i = 0, k = 0; i < n; i++) {
        int rc;
        if (corio_future_loop(futures[i])) {
            rc = corio_future_add_done_callback(futures[i], gather_cb, &g);
        } else {
            hops[k] = (gather_hop_t){.g = &g, .f = futures[i], .loop = t->fut.loop};
            rc = corio_future_add_done_callback(futures[i], gather_hop_cb, &hops[k++]);
        }
        if (rc < 0) {
            /* Unregister. A thread-safe future that completed meanwhile may
             * have its hop on the way already: it must arrive before the
             * hops' memory goes. Loop futures' callbacks run on this thread,
             * so none of theirs is in flight. */
            size_t inflight = 0;
            for (size_t j = 0, kk = 0; j < i; j++) {
                if (corio_future_loop(futures[j]))
                    corio_future_remove_done_callback(futures[j], gather_cb, &g);
                else if (corio_future_remove_done_callback(futures[j], gather_hop_cb,
                                                           &hops[kk++]) == 0)
                    inflight++;
            }
            g.n = inflight;
            g.ndone = 0;
            g.cancelled = true; /* nothing to cancel */
            corio__wait_shielded(&g.w, gather_done, gather_cancel_rest, &g);
            free(hops);
            return rc;
        }
    }
    int interrupted = 0;
    while (g.ndone < n && !g.first_error) {
        int rc = corio__wait(&g.w, CORIO_NEVER);
        if (rc == -ECANCELED || rc == -ETIMEDOUT) {
            interrupted = rc;
            break;
        }
    }
    if (g.ndone < n) {
        /* The first error, or the caller's cancellation or expiry: cancel
         * what is left and wait until it is done, whatever happens. */
        gather_cancel_rest(&g, 0);
        corio__wait_shielded(&g.w, gather_done, gather_cancel_rest, &g);
    }
    if (results)
        for (size_t i = 0; i < n; i++) {
            results[i].value = (corio_value_t){NULL, 0};
            results[i].code = corio_future_result(futures[i], &results[i].value);
        }
    free(hops);
    if (t->cancel_requests)
        return -ECANCELED;
    if (interrupted)
        return interrupted;
    return g.collect ? 0 : g.first_error;
}

/* ---- wait_for -------------------------------------------------------------------- */

int corio_wait_for(corio_future_t *f, int64_t timeout_ns, corio_value_t *out)
{
    if (!f)
        return -EINVAL;
    corio_task_t *t = corio_current_task();
    if (!t)
        return -EDEADLK;
    int rc = corio_await_timeout(f, timeout_ns, out);
    bool interrupted = !corio_future_done(f);
    if (interrupted && rc != -ETIMEDOUT && rc != -ECANCELED)
        return rc; /* f cannot be awaited here (another loop's future) */
    if (interrupted) {
        /* Our timeout, our cancellation or our scope's expiry: cancel f and
         * wait until it has really finished, as asyncio.wait_for does. */
        corio_future_cancel(f);
        corio__await_shielded(f);
    }
    if (t->cancel_requests)
        return -ECANCELED; /* never swallowed, even when f completed */
    if (interrupted && corio_future_cancelled(f))
        return -ETIMEDOUT; /* our own timeout or our scope's expiry */
    return corio_future_result(f, out);
}

/* ---- shield ---------------------------------------------------------------------- */

typedef struct shield_hop {
    corio_future_t *inner, *outer;
} shield_hop_t;

static void shield_copy(corio_future_t *inner, corio_future_t *outer)
{
    if (corio_future_done(outer))
        return; /* the outer one was cancelled: nothing to mirror */
    if (corio_future_cancelled(inner)) {
        corio_future_cancel(outer);
        return;
    }
    const char *msg = NULL;
    int code = corio_future_exception(inner, &msg);
    if (code < 0) {
        corio_future_set_exception(outer, code, msg);
        return;
    }
    corio_value_t v = {NULL, 0};
    corio_future_result(inner, &v);
    if (v.len) {
        void *copy = malloc(v.len);
        if (!copy) {
            corio_future_set_exception(outer, -ENOMEM, "shield: copying the result");
            return;
        }
        memcpy(copy, v.ptr, v.len);
        v.ptr = copy;
    }
    corio_future_set_result(outer, v);
}

static void shield_hop_run(void *arg)
{
    shield_hop_t *h = arg;
    shield_copy(h->inner, h->outer);
    corio_future_unref(h->inner);
    corio_future_unref(h->outer);
    free(h);
}

static void shield_cb(corio_future_t *inner, void *arg)
{
    corio_future_t *outer = arg;
    if (!corio_future_loop(inner)) {
        /* A thread-safe future completes in another thread: the outer one
         * belongs to its loop, so finish the copy there. */
        shield_hop_t *h = malloc(sizeof *h);
        if (h) {
            h->inner = corio_future_ref(inner);
            h->outer = outer;
            if (corio_loop_call_soon_threadsafe(corio_future_loop(outer), shield_hop_run, h) == 0)
                return;
            corio_future_unref(inner);
            free(h);
        }
        corio_future_unref(outer); /* loop closed or out of memory: drop */
        return;
    }
    shield_copy(inner, outer);
    corio_future_unref(outer);
}

int corio_shield(corio_future_t *f, corio_future_t **out)
{
    if (!f || !out)
        return -EINVAL;
    *out = NULL;
    if (corio_future_done(f)) {
        *out = corio_future_ref(f);
        return 0;
    }
    corio_loop_t *loop = corio_future_loop(f);
    corio_future_t *outer;
    int rc = corio_future_new(loop ? loop : corio_loop_current(), &outer);
    if (rc < 0)
        return rc;
    /* A thread-safe future's callback may have to drop its reference on
     * outer in the completing thread (no memory for the hop, loop closed). */
    if (corio__future_threadsafe(f))
        outer->kind = CORIO_FK_SHARED;
    corio_future_ref(outer); /* the callback's */
    rc = corio_future_add_done_callback(f, shield_cb, outer);
    if (rc < 0) {
        corio_future_unref(outer);
        corio_future_unref(outer);
        return rc;
    }
    *out = outer;
    return 0;
}
