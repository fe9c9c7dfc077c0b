/* Futures: three states, an outcome set once, done-callbacks in order.
 * Loop futures run callbacks on their loop, never inline; thread-safe
 * futures (executors) lock, and run callbacks in the completing thread. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int corio__task_cancel_future(corio_future_t *f);
void corio__call_soon_threadsafe_handle(corio_loop_t *loop, corio_handle_t *h);
int corio__suspend(corio_waiter_t *w, int64_t deadline);

static inline void lock(corio_future_t *f)
{
    if (corio__future_threadsafe(f))
        corio__flock_lock(&corio__future_sync(f)->lock);
}

static inline void unlock(corio_future_t *f)
{
    if (corio__future_threadsafe(f))
        corio__flock_unlock(&corio__future_sync(f)->lock);
}

static inline uint8_t load_state(const corio_future_t *f)
{
    return atomic_load_explicit(&((corio_future_t *)f)->state, memory_order_acquire);
}

static void loop_link(corio_loop_future_t *lf)
{
    corio_loop_t *loop = lf->f.loop;
    lf->lprev = NULL;
    lf->lnext = loop->futures;
    if (loop->futures)
        loop->futures->lprev = lf;
    loop->futures = lf;
}

/* A plain loop future leaves its loop's list; tasks and thread-safe
 * futures are on none, nor is anything once the loop closed. */
static void loop_unlink(corio_future_t *f)
{
    if (!f->loop || f->is_task || corio__future_threadsafe(f))
        return;
    corio_loop_future_t *lf = (corio_loop_future_t *)f;
    if (lf->lprev)
        lf->lprev->lnext = lf->lnext;
    else
        f->loop->futures = lf->lnext;
    if (lf->lnext)
        lf->lnext->lprev = lf->lprev;
    lf->lprev = lf->lnext = NULL;
}

int corio_future_new(corio_loop_t *loop, corio_future_t **out)
{
    if (!out)
        return -EINVAL;
    if (!loop)
        loop = corio__tls_loop;
    if (!loop || loop->closed)
        return -EINVAL;
    corio_loop_future_t *lf = malloc(sizeof *lf);
    if (!lf)
        return -ENOMEM;
    corio__future_init(&lf->f, loop);
    lf->cb_handle.state = CORIO_H_IDLE;
    loop_link(lf);
    *out = &lf->f;
    return 0;
}

int corio_future_new_threadsafe(corio_future_t **out)
{
    if (!out)
        return -EINVAL;
    corio_ts_future_t *tf = corio__ts_future_alloc();
    if (!tf)
        return -ENOMEM;
    corio_future_t *f = &tf->f;
    corio__future_init(f, NULL);
    f->kind = CORIO_FK_THREADSAFE;
    atomic_init(&tf->sync.lock.word, 0);
    atomic_init(&tf->sync.done, CORIO_FLAG_UNSET);
    *out = f;
    return 0;
}

corio_future_t *corio_future_ref(corio_future_t *f)
{
    if (!f)
        return f;
    if (corio__future_refs_local(f))
        atomic_store_explicit(&f->refs, atomic_load_explicit(&f->refs, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

/* A failed future keeps its message where a result would be. */
static const char *error_message(const corio_future_t *f)
{
    return f->error ? f->value.ptr : NULL;
}

static void report_unretrieved(corio_future_t *f)
{
    if (load_state(f) != CORIO_FUTURE_FINISHED || !f->error || f->retrieved)
        return;
    corio_error_context_t ctx = {
        .message = f->is_task ? "task exception was never retrieved"
                              : "future exception was never retrieved",
        .code = f->error,
        .detail = error_message(f),
        .task_name = f->is_task ? corio_task_name((corio_task_t *)f) : NULL,
    };
    corio_loop_report(f->loop, &ctx);
}

static void free_unrun_callbacks(corio_future_t *f);

void corio__future_release_storage(corio_future_t *f)
{
    /* A finished task with a plain result owns nothing: the common case. */
    if (f->is_task && !(f->error | f->ncb | f->value.len | (uintptr_t)f->cbs))
        return;
    if (corio_unlikely(f->error))
        report_unretrieved(f);
    loop_unlink(f);
    if (f->ncb)
        free_unrun_callbacks(f);
    if (f->value.len || f->error)
        free(f->value.ptr); /* bytes, or the error's message */
    if (f->cbs)
        free(f->cbs);
}

void corio_future_unref(corio_future_t *f)
{
    if (!f || !corio__future_drop_ref(f))
        return;
    if (f->is_task) {
        corio__task_free((corio_task_t *)f);
        return;
    }
    corio__future_release_storage(f);
    if (corio__future_threadsafe(f))
        corio__ts_future_dealloc((corio_ts_future_t *)f);
    else
        free(f);
}

/* ---- callbacks ------------------------------------------------------------- */

static int cb_append(corio_future_t *f, corio_done_fn fn, void *arg)
{
    corio_done_cb_t cb = {fn, arg};
    if (f->ncb == 0) {
        f->cb0 = cb;
        f->ncb = 1;
        return 0;
    }
    uint32_t held = f->ncb - 1; /* in cbs */
    if (held == 0 || (held >= 4 && (held & (held - 1)) == 0)) { /* full: see the struct */
        if (held > UINT32_MAX / 2 / sizeof(corio_done_cb_t))
            return -ENOMEM;
        uint32_t cap = held ? held * 2 : 4;
        corio_done_cb_t *n = realloc(f->cbs, cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        f->cbs = n;
    }
    f->cbs[f->ncb - 1] = cb;
    f->ncb++;
    return 0;
}

static corio_done_cb_t *cb_at(corio_future_t *f, uint32_t i)
{
    return i == 0 ? &f->cb0 : &f->cbs[i - 1];
}

static void cb_remove_at(corio_future_t *f, uint32_t i)
{
    for (; i + 1 < f->ncb; i++)
        *cb_at(f, i) = *cb_at(f, i + 1);
    f->ncb--;
}

static bool cb_pop(corio_future_t *f, corio_done_cb_t *out)
{
    if (!f->ncb)
        return false;
    *out = f->cb0;
    cb_remove_at(f, 0);
    return true;
}

static void run_loop_callbacks(void *arg)
{
    corio_future_t *f = arg;
    corio_done_cb_t cb;
    /* Only those added before this run: one added by a callback gets a
     * run of its own, in a later iteration. */
    for (uint32_t n = f->ncb; n && cb_pop(f, &cb); n--)
        cb.fn(f, cb.arg);
    corio_future_unref(f);
}

void corio__future_drop_scheduled(corio_handle_t *h)
{
    if (h->fn == run_loop_callbacks)
        corio_future_unref(h->arg);
}

static corio_handle_t *callback_handle(corio_future_t *f)
{
    if (f->is_task)
        return &((corio_task_t *)f)->step;
    return &((corio_loop_future_t *)f)->cb_handle;
}

static void schedule_loop_callbacks(corio_future_t *f)
{
    if (!f->ncb || !f->loop)
        return;
    corio_handle_t *h = callback_handle(f);
    if (corio_handle_pending(h))
        return;
    corio_future_ref(f);
    if (corio_loop_call_soon(f->loop, h, run_loop_callbacks, f) < 0)
        corio_future_unref(f);
}

/* Thread-safe futures: callbacks run here, outside the lock, in order. */
static void run_threadsafe_callbacks(corio_future_t *f)
{
    for (;;) {
        corio_done_cb_t cb;
        lock(f);
        bool have = cb_pop(f, &cb);
        unlock(f);
        if (!have)
            return;
        cb.fn(f, cb.arg);
    }
}

int corio_future_add_done_callback(corio_future_t *f, corio_done_fn fn, void *arg)
{
    if (!f || !fn || (!corio__future_threadsafe(f) && !f->loop))
        return -EINVAL; /* its loop is closed: the callback could never run */
    lock(f);
    int rc = cb_append(f, fn, arg);
    bool done = load_state(f) >= CORIO_FUTURE_FINISHED;
    unlock(f);
    if (rc < 0 || !done)
        return rc;
    if (corio__future_threadsafe(f)) {
        /* A callback may drop the caller's last reference. */
        corio_future_ref(f);
        run_threadsafe_callbacks(f);
        corio_future_unref(f);
    } else {
        schedule_loop_callbacks(f);
    }
    return 0;
}

/* ---- callbacks that can fail --------------------------------------------------
 * A fallible callback is stored as an ordinary one, run_fallible, whose arg
 * is a small record of the user's (fn, arg), so both kinds share one list
 * and one order. The record is freed when it runs, is removed, or when the
 * future is freed with it unrun. */

typedef struct fallible_cb {
    corio_fallible_done_fn fn;
    void *arg;
} fallible_cb_t;

static pthread_mutex_t cb_error_mu = PTHREAD_MUTEX_INITIALIZER;
static corio_error_handler_fn cb_error_fn;
static void *cb_error_arg;

void corio_future_set_callback_error_handler(corio_error_handler_fn fn, void *arg)
{
    pthread_mutex_lock(&cb_error_mu);
    cb_error_fn = fn;
    cb_error_arg = fn ? arg : NULL;
    pthread_mutex_unlock(&cb_error_mu);
}

static void report_callback_failure(corio_future_t *f, int code)
{
    corio_error_context_t ctx = {
        .message = corio__future_threadsafe(f) ? "an executor future's done-callback failed"
                           : "a future's done-callback failed",
        .code = code,
        .task_name = f->is_task ? corio_task_name((corio_task_t *)f) : NULL,
    };
    if (!corio__future_threadsafe(f)) {
        corio_loop_report(f->loop, &ctx);
        return;
    }
    /* Copied under the lock, called outside it: a handler may replace itself. */
    pthread_mutex_lock(&cb_error_mu);
    corio_error_handler_fn fn = cb_error_fn;
    void *arg = cb_error_arg;
    pthread_mutex_unlock(&cb_error_mu);
    if (fn)
        fn(NULL, &ctx, arg);
    else
        corio_loop_report(NULL, &ctx); /* the default handler: stderr */
}

static void run_fallible(corio_future_t *f, void *arg)
{
    fallible_cb_t cb = *(fallible_cb_t *)arg;
    free(arg);
    int rc = cb.fn(f, cb.arg);
    if (rc < 0)
        report_callback_failure(f, rc);
}

static void free_unrun_callbacks(corio_future_t *f)
{
    for (uint32_t i = 0; i < f->ncb; i++)
        if (cb_at(f, i)->fn == run_fallible)
            free(cb_at(f, i)->arg);
}

int corio_future_add_fallible_callback(corio_future_t *f, corio_fallible_done_fn fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    fallible_cb_t *cb = malloc(sizeof *cb);
    if (!cb)
        return -ENOMEM;
    *cb = (fallible_cb_t){fn, arg};
    int rc = corio_future_add_done_callback(f, run_fallible, cb);
    if (rc < 0)
        free(cb);
    return rc;
}

/* What a removal matches: (fn, arg), or with ffn set a fallible (ffn, arg). */
typedef struct cb_key {
    corio_done_fn fn;
    corio_fallible_done_fn ffn;
    void *arg;
} cb_key_t;

static bool cb_matches(const corio_done_cb_t *cb, const cb_key_t *k)
{
    if (!k->ffn)
        return cb->fn == k->fn && cb->arg == k->arg;
    const fallible_cb_t *rec = cb->arg;
    return cb->fn == run_fallible && rec->fn == k->ffn && rec->arg == k->arg;
}

static int cb_remove_matching(corio_future_t *f, const cb_key_t *k)
{
    int removed = 0;
    lock(f);
    for (uint32_t i = 0; i < f->ncb;) {
        corio_done_cb_t *cb = cb_at(f, i);
        if (!cb_matches(cb, k)) {
            i++;
            continue;
        }
        if (cb->fn == run_fallible)
            free(cb->arg);
        cb_remove_at(f, i);
        removed++;
    }
    unlock(f);
    return removed;
}

int corio_future_remove_done_callback(corio_future_t *f, corio_done_fn fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    return cb_remove_matching(f, &(cb_key_t){fn, NULL, arg});
}

int corio_future_remove_fallible_callback(corio_future_t *f, corio_fallible_done_fn fn,
                                          void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    return cb_remove_matching(f, &(cb_key_t){NULL, fn, arg});
}

/* ---- completion -------------------------------------------------------------- */

typedef struct future_waiter {
    corio_waiter_t w;
    corio_future_t *f;
    bool linked;
    corio_handle_t ts_handle; /* a thread-safe future's wake-up; set when used */
} future_waiter_t;

static int outcome_code(const corio_future_t *f)
{
    uint8_t s = load_state(f);
    if (s == CORIO_FUTURE_CANCELLED)
        return -ECANCELED;
    return f->error;
}

static void wake_waiters(corio_future_t *f, corio_waiter_t *w)
{
    int code = outcome_code(f);
    while (w) {
        corio_waiter_t *next = w->next; /* w may be gone once woken */
        if (corio__future_threadsafe(f))
            corio__wake_threadsafe(w->task->fut.loop, w,
                                   &corio_container_of(w, future_waiter_t, w)->ts_handle, code);
        else
            corio__wake(w, code);
        w = next;
    }
}

/* Stores the outcome and takes the waiters off f (under f's lock, for a
 * thread-safe one). */
static inline corio_waiter_t *set_outcome(corio_future_t *f, uint8_t state, int error,
                                          corio_value_t v)
{
    f->error = error;
    f->value = v;
    atomic_store_explicit(&f->state, state, memory_order_release);
    corio_waiter_t *waiters = f->whead;
    for (corio_waiter_t *w = waiters; w; w = w->next)
        corio_container_of(w, future_waiter_t, w)->linked = false;
    f->whead = f->wtail = NULL;
    return waiters;
}

void corio__future_finish_local(corio_future_t *f, uint8_t state, int error, corio_value_t v)
{
    corio_waiter_t *waiters = set_outcome(f, state, error, v);
    /* Nothing runs inline here (wake-ups and callbacks are scheduled), so
     * the caller's reference keeps f alive. */
    if (waiters)
        wake_waiters(f, waiters);
    if (f->ncb)
        schedule_loop_callbacks(f);
}

int corio__future_complete(corio_future_t *f, uint8_t state, int error, const char *msg,
                           corio_value_t v)
{
    char *copy = msg ? strdup(msg) : NULL;
    lock(f);
    uint8_t s = load_state(f);
    /* A running future (an executor took it) can no longer be cancelled:
     * checked here, under the lock, not before it by the caller. */
    if (s == CORIO_FUTURE_FINISHED || s == CORIO_FUTURE_CANCELLED ||
        (state == CORIO_FUTURE_CANCELLED && s == CORIO_FUTURE_RUNNING)) {
        unlock(f);
        free(copy);
        return CORIO_EINVALSTATE;
    }
    if (!corio__future_threadsafe(f)) {
        corio__future_finish_local(f, state, error, error ? (corio_value_t){copy, 0} : v);
        return 0;
    }
    corio_waiter_t *waiters = set_outcome(f, state, error, error ? (corio_value_t){copy, 0} : v);
    /* Keep f alive while callbacks, which may drop the last reference, run. */
    corio_future_ref(f);
    unlock(f);
    corio__flag_set(&corio__future_sync(f)->done); /* threads blocked in corio_await */
    wake_waiters(f, waiters);
    run_threadsafe_callbacks(f);
    corio_future_unref(f);
    return 0;
}

int corio_future_set_result(corio_future_t *f, corio_value_t v)
{
    if (!f)
        return -EINVAL;
    if (f->is_task)
        return CORIO_EINVALSTATE; /* a task's outcome is its function's, as in asyncio */
    return corio__future_complete(f, CORIO_FUTURE_FINISHED, 0, NULL, v);
}

int corio_future_set_exception(corio_future_t *f, int code, const char *message)
{
    if (!f || code >= 0)
        return -EINVAL;
    if (f->is_task)
        return CORIO_EINVALSTATE;
    corio_value_t none = {NULL, 0};
    return corio__future_complete(f, CORIO_FUTURE_FINISHED, code, message, none);
}

int corio_future_cancel(corio_future_t *f)
{
    if (!f)
        return -EINVAL;
    if (f->is_task)
        return corio__task_cancel_future(f);
    uint8_t s = load_state(f);
    if (s != CORIO_FUTURE_PENDING)
        return -EALREADY;
    corio_value_t none = {NULL, 0};
    lock(f);
    s = load_state(f);
    unlock(f);
    if (s != CORIO_FUTURE_PENDING)
        return -EALREADY; /* started running or finished meanwhile */
    int rc = corio__future_complete(f, CORIO_FUTURE_CANCELLED, -ECANCELED, NULL, none);
    return rc == CORIO_EINVALSTATE ? -EALREADY : rc;
}

int corio_future_set_running_or_notify_cancel(corio_future_t *f)
{
    if (!f)
        return -EINVAL;
    lock(f);
    uint8_t s = load_state(f);
    int rc = 0;
    if (s == CORIO_FUTURE_PENDING)
        atomic_store_explicit(&f->state, CORIO_FUTURE_RUNNING, memory_order_release);
    else
        rc = s == CORIO_FUTURE_CANCELLED ? -ECANCELED : CORIO_EINVALSTATE;
    unlock(f);
    return rc;
}

/* ---- queries -------------------------------------------------------------- */

corio_future_state_t corio_future_state(const corio_future_t *f)
{
    return f ? (corio_future_state_t)load_state(f) : CORIO_FUTURE_PENDING;
}

bool corio_future_done(const corio_future_t *f)
{
    return f && load_state(f) >= CORIO_FUTURE_FINISHED;
}

bool corio_future_cancelled(const corio_future_t *f)
{
    return f && load_state(f) == CORIO_FUTURE_CANCELLED;
}

bool corio_future_running(const corio_future_t *f)
{
    return f && load_state(f) == CORIO_FUTURE_RUNNING;
}

corio_loop_t *corio_future_loop(const corio_future_t *f) { return f ? f->loop : NULL; }

static int result_common(corio_future_t *f, corio_value_t *out, bool take)
{
    if (!f)
        return -EINVAL;
    uint8_t s = load_state(f);
    if (s < CORIO_FUTURE_FINISHED)
        return CORIO_EINVALSTATE;
    if (s == CORIO_FUTURE_CANCELLED)
        return -ECANCELED;
    lock(f);
    f->retrieved = true;
    int rc = f->error;
    if (!rc && out) {
        *out = f->value;
        if (take) {
            f->value.ptr = NULL;
            f->value.len = 0;
        }
    }
    unlock(f);
    return rc;
}

int corio_future_result(corio_future_t *f, corio_value_t *out)
{
    return result_common(f, out, false);
}

int corio_future_take_result(corio_future_t *f, corio_value_t *out)
{
    return result_common(f, out, true);
}

int corio_future_exception(corio_future_t *f, const char **message)
{
    if (!f)
        return -EINVAL;
    uint8_t s = load_state(f);
    if (s < CORIO_FUTURE_FINISHED)
        return CORIO_EINVALSTATE;
    if (s == CORIO_FUTURE_CANCELLED)
        return -ECANCELED;
    f->retrieved = true;
    if (message)
        *message = error_message(f);
    return f->error;
}

/* ---- await ------------------------------------------------------------------- */

static bool future_detach(corio_waiter_t *w)
{
    future_waiter_t *fw = corio_container_of(w, future_waiter_t, w);
    corio_future_t *f = fw->f;
    lock(f);
    bool linked = fw->linked;
    if (linked) {
        if (w->prev)
            w->prev->next = w->next;
        else
            f->whead = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            f->wtail = w->prev;
        fw->linked = false;
    }
    unlock(f);
    /* Not linked: completion took the waiter and its wake-up is on the way. */
    return linked;
}

static void waiter_link(corio_future_t *f, future_waiter_t *fw)
{
    corio_waiter_t *w = &fw->w;
    w->next = NULL;
    w->prev = f->wtail;
    if (f->wtail)
        f->wtail->next = w;
    else
        f->whead = w;
    f->wtail = w;
    fw->linked = true;
}

CORIO_TLS void (*corio__before_block)(void);

static __attribute__((noinline)) int block_thread(corio_future_t *f, int64_t timeout_ns, corio_value_t *out)
{
    if (!corio__future_threadsafe(f))
        return -EDEADLK; /* would stop the loop that must complete it */
    if (corio__before_block && load_state(f) < CORIO_FUTURE_FINISHED)
        corio__before_block();
    int64_t deadline =
        timeout_ns >= 0 ? corio__deadline_after(corio_now(), timeout_ns) : CORIO_NEVER;
    struct timespec ts = {deadline / CORIO_NS_PER_SEC, deadline % CORIO_NS_PER_SEC};
    int rc = corio__flag_wait(&corio__future_sync(f)->done, deadline == CORIO_NEVER ? NULL : &ts);
    /* The outcome is stored under the lock and the flag set after it. */
    if (rc == -ETIMEDOUT && load_state(f) >= CORIO_FUTURE_FINISHED)
        rc = 0;
    return rc == 0 ? corio_future_result(f, out) : rc;
}

/* corio_future_result of a done loop future (no lock to take). */
static inline int done_local_result(corio_future_t *f, corio_value_t *out)
{
    if (load_state(f) == CORIO_FUTURE_CANCELLED)
        return -ECANCELED;
    f->retrieved = true;
    if (!f->error && out)
        *out = f->value;
    return f->error;
}

static int await_suspending(corio_task_t *task, corio_future_t *f, int64_t timeout_ns,
                            corio_value_t *out);

int corio_await_timeout(corio_future_t *f, int64_t timeout_ns, corio_value_t *out)
{
    if (!f)
        return -EINVAL;
    corio_task_t *task = corio__current();
    if (!task)
        return block_thread(f, timeout_ns, out);
    if ((corio_task_t *)f == task)
        return -EDEADLK; /* a task awaiting itself */
    if (f->loop && f->loop != task->fut.loop)
        return -EINVAL; /* another thread's loop future */
    /* Already done: the outcome, whatever the per-call timeout, unless the
     * task is cancelled or its timeout scope expired (level-triggered). */
    if (!corio__future_threadsafe(f) && load_state(f) >= CORIO_FUTURE_FINISHED) {
        if (task->cancel_requests)
            return -ECANCELED;
        int rc = task->scope_deadline == CORIO_NEVER ? 0 : corio__interrupt_pending(CORIO_NEVER);
        return rc ? rc : done_local_result(f, out);
    }
    return await_suspending(task, f, timeout_ns, out);
}

/* The await of a future not done yet (or thread-safe): apart, so that the
 * done case above stays a small function. */
static __attribute__((noinline)) int await_suspending(corio_task_t *task, corio_future_t *f,
                                                     int64_t timeout_ns, corio_value_t *out)
{
    int64_t deadline =
        timeout_ns >= 0 ? corio__deadline_after(corio_now(), timeout_ns) : CORIO_NEVER;
    int rc = corio__interrupt_pending(deadline);
    if (rc)
        return rc;
    /* Field by field: an initializer would also zero ts_handle, which is
     * written when used, and this is every await's path. */
    future_waiter_t fw;
    fw.w = (corio_waiter_t){.task = task, .detach = future_detach};
    fw.f = f;
    fw.linked = false;
    lock(f);
    if (load_state(f) >= CORIO_FUTURE_FINISHED) {
        unlock(f);
        return corio_future_result(f, out);
    }
    waiter_link(f, &fw);
    unlock(f);
    corio_future_ref(f);
    /* Not corio__wait: its entry checks ran above, and a deadline passing in
     * between would return before suspending, leaving fw linked to f. */
    rc = corio__suspend(&fw.w, deadline);
    if (fw.w.woken)
        rc = corio_future_result(f, out);
    corio_future_unref(f);
    return rc;
}
