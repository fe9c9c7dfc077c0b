/* concurrent.futures.wait and as_completed over any futures.
 *
 * A waiter registers one done-callback per pending future. The callbacks
 * queue the futures that complete and, when the waiter's condition holds,
 * complete its trigger: a thread-safe future the caller awaits, so the same
 * code blocks a thread or suspends a coroutine. Every registration holds a
 * reference on the waiter, since a callback may still be running in a
 * completing thread after the waiter's owner has given up on it. */
#include "executor_internal.h"
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct waiter {
    atomic_int refs;
    pthread_mutex_t mu;
    corio_wait_mode_t mode;
    size_t pending;          /* registered futures not yet completed */
    corio_future_t *trigger; /* completed when the condition holds */
    corio_future_t **q;      /* completed futures, in order */
    size_t qhead, qtail;
} waiter_t;

static bool future_failed(corio_future_t *f)
{
    return corio_future_state(f) == CORIO_FUTURE_FINISHED && f->error != 0;
}

static waiter_t *waiter_new(corio_wait_mode_t mode, size_t cap)
{
    waiter_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->q = malloc((cap ? cap : 1) * sizeof *w->q);
    if (!w->q) {
        free(w);
        return NULL;
    }
    atomic_init(&w->refs, 1);
    pthread_mutex_init(&w->mu, NULL);
    w->mode = mode;
    return w;
}

static void waiter_unref(waiter_t *w)
{
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (w->trigger)
        corio_future_unref(w->trigger);
    pthread_mutex_destroy(&w->mu);
    free(w->q);
    free(w);
}

static void waiter_cb(corio_future_t *f, void *arg)
{
    waiter_t *w = arg;
    corio_future_t *t = NULL;
    pthread_mutex_lock(&w->mu);
    w->q[w->qtail++] = f;
    w->pending--;
    if (w->mode == CORIO_FIRST_COMPLETED || w->pending == 0 ||
        (w->mode == CORIO_FIRST_EXCEPTION && future_failed(f))) {
        t = w->trigger;
        w->trigger = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    if (t) {
        corio_future_set_result(t, corio_value_int(0));
        corio_future_unref(t);
    }
    waiter_unref(w);
}

static int waiter_register(waiter_t *w, corio_future_t *f)
{
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    int rc = corio_future_add_done_callback(f, waiter_cb, w);
    if (rc < 0) {
        pthread_mutex_lock(&w->mu);
        w->pending--;
        pthread_mutex_unlock(&w->mu);
        waiter_unref(w);
    }
    return rc;
}

static void waiter_unregister(waiter_t *w, corio_future_t *f)
{
    if (corio_future_remove_done_callback(f, waiter_cb, w) > 0)
        waiter_unref(w);
}

/* Awaits the waiter's trigger; 0, -ETIMEDOUT or -ECANCELED. */
static int waiter_await(corio_future_t *t, int64_t deadline)
{
    /* Past the deadline already: interrupt_pending also records whether a
     * scope's deadline or this call's own ended it, for the scopes' exits. */
    int why = corio__interrupt_pending(deadline);
    if (why)
        return why;
    int64_t left = corio__timeout_for(deadline);
    corio_value_t v;
    int rc = corio_await_timeout(t, left, &v);
    return rc == -ETIMEDOUT || rc == -ECANCELED ? rc : 0;
}

static corio_future_t *unmark(corio_future_t *f)
{
    return (corio_future_t *)((uintptr_t)f & ~(uintptr_t)1);
}

/* True outside a coroutine when one of the m futures is a pending loop
 * future: only its loop completes it, and blocking stops that loop. */
static bool would_deadlock(corio_future_t *const *d, size_t m)
{
    if (corio_current_task())
        return false;
    for (size_t i = 0; i < m; i++) {
        corio_future_t *f = unmark(d[i]);
        if (corio_future_loop(f) && !corio_future_done(f))
            return true;
    }
    return false;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* A sorted copy of futures without duplicates; *m its length. */
static corio_future_t **distinct(corio_future_t *const *futures, size_t n, size_t *m)
{
    corio_future_t **d = malloc((n ? n : 1) * sizeof *d);
    if (!d)
        return NULL;
    memcpy(d, futures, n * sizeof *d);
    qsort(d, n, sizeof *d, cmp_ptr);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || d[k - 1] != d[i])
            d[k++] = d[i];
    *m = k;
    return d;
}

/* True when mode already holds among the m distinct futures. */
static bool condition_met(corio_future_t **d, size_t m, corio_wait_mode_t mode)
{
    size_t done = 0;
    for (size_t i = 0; i < m; i++) {
        if (!corio_future_done(d[i]))
            continue;
        done++;
        if (mode == CORIO_FIRST_COMPLETED || (mode == CORIO_FIRST_EXCEPTION && future_failed(d[i])))
            return true;
    }
    return done == m;
}

static int wait_slow(corio_future_t **d, size_t m, int64_t timeout_ns, corio_wait_mode_t mode)
{
    waiter_t *w = waiter_new(mode, m);
    if (!w)
        return -ENOMEM;
    int rc = corio_future_new_threadsafe(&w->trigger);
    if (rc < 0) {
        waiter_unref(w);
        return rc;
    }
    corio_future_t *t = corio_future_ref(w->trigger);
    w->pending = m; /* before any callback can run */
    /* A registration fails for a future that can never complete here (its
     * loop is closed) or for want of memory: the wait fails with it. */
    int reg = 0;
    for (size_t i = 0; i < m && reg == 0; i++)
        reg = waiter_register(w, d[i]);
    rc = reg ? reg : waiter_await(t, corio__timeout_deadline(timeout_ns));
    for (size_t i = 0; i < m; i++)
        waiter_unregister(w, d[i]);
    corio_future_unref(t);
    waiter_unref(w);
    return reg || rc == -ECANCELED ? rc : 0;
}

int corio_wait(corio_future_t *const *futures, size_t n, int64_t timeout_ns,
               corio_wait_mode_t mode, corio_future_t **done, size_t *ndone,
               corio_future_t **not_done, size_t *nnot_done)
{
    if ((n && !futures) || mode < CORIO_FIRST_COMPLETED || mode > CORIO_ALL_COMPLETED)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!futures[i])
            return -EINVAL;
    size_t m;
    corio_future_t **d = distinct(futures, n, &m);
    if (!d)
        return -ENOMEM;
    int rc = 0;
    if (!condition_met(d, m, mode) && timeout_ns != 0)
        rc = would_deadlock(d, m) ? -EDEADLK : wait_slow(d, m, timeout_ns, mode);
    size_t a = 0, b = 0;
    for (size_t i = 0; i < m; i++) {
        if (corio_future_done(d[i])) {
            if (done)
                done[a] = d[i];
            a++;
        } else {
            if (not_done)
                not_done[b] = d[i];
            b++;
        }
    }
    if (ndone)
        *ndone = a;
    if (nnot_done)
        *nnot_done = b;
    free(d);
    return rc;
}

/* ---- as_completed ------------------------------------------------------------ */

struct corio_as_completed {
    waiter_t *w;
    corio_future_t **d; /* distinct futures, each referenced */
    size_t m, yielded;
    int64_t deadline;
};

int corio_as_completed_new(corio_future_t *const *futures, size_t n, int64_t timeout_ns,
                           corio_as_completed_t **out)
{
    if ((n && !futures) || !out)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!futures[i])
            return -EINVAL;
    corio_as_completed_t *it = calloc(1, sizeof *it);
    if (!it || !(it->d = distinct(futures, n, &it->m)) ||
        !(it->w = waiter_new(CORIO_FIRST_COMPLETED, it->m))) {
        if (it)
            free(it->d);
        free(it);
        return -ENOMEM;
    }
    it->deadline = corio__timeout_deadline(timeout_ns);
    waiter_t *w = it->w;
    w->pending = it->m;
    /* Futures already done are queued first, as Python yields them first. */
    for (size_t i = 0; i < it->m; i++) {
        corio_future_ref(it->d[i]);
        if (corio_future_done(it->d[i])) {
            pthread_mutex_lock(&w->mu);
            w->q[w->qtail++] = it->d[i];
            w->pending--;
            pthread_mutex_unlock(&w->mu);
            it->d[i] = (corio_future_t *)((uintptr_t)it->d[i] | 1); /* not registered */
        }
    }
    for (size_t i = 0; i < it->m; i++) {
        if ((uintptr_t)it->d[i] & 1)
            continue;
        int rc = waiter_register(w, it->d[i]);
        if (rc < 0) { /* never completes here (a closed loop's), or no memory */
            it->d[i] = (corio_future_t *)((uintptr_t)it->d[i] | 1);
            corio_as_completed_free(it);
            return rc;
        }
    }
    *out = it;
    return 0;
}

int corio_as_completed_next(corio_as_completed_t *it, corio_future_t **f)
{
    if (!it || !f)
        return -EINVAL;
    waiter_t *w = it->w;
    for (;;) {
        if (it->yielded == it->m)
            return 0;
        pthread_mutex_lock(&w->mu);
        if (w->qhead < w->qtail) {
            *f = w->q[w->qhead++];
            pthread_mutex_unlock(&w->mu);
            it->yielded++;
            return 1;
        }
        corio_future_t *t = NULL;
        int rc = would_deadlock(it->d, it->m) ? -EDEADLK : corio_future_new_threadsafe(&t);
        if (rc == 0)
            w->trigger = corio_future_ref(t);
        pthread_mutex_unlock(&w->mu);
        if (rc < 0)
            return rc;
        rc = waiter_await(t, it->deadline);
        pthread_mutex_lock(&w->mu);
        if (w->trigger == t) {
            w->trigger = NULL;
            corio_future_unref(t);
        }
        pthread_mutex_unlock(&w->mu);
        corio_future_unref(t);
        if (rc < 0)
            return rc;
    }
}

void corio_as_completed_free(corio_as_completed_t *it)
{
    if (!it)
        return;
    for (size_t i = 0; i < it->m; i++) {
        corio_future_t *f = unmark(it->d[i]);
        if (f == it->d[i])
            waiter_unregister(it->w, f);
        corio_future_unref(f);
    }
    waiter_unref(it->w);
    free(it->d);
    free(it);
}
