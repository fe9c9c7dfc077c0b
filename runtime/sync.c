/* Lock, Event, Condition, Semaphore, Barrier for the tasks of one loop.
 *
 * Every primitive keeps its waiters in a FIFO (corio_waitq_t) and hands
 * what it grants (the lock, a permit, a notification) directly to the first
 * waiter, which is unlinked and woken in the same step. So a waiter that is
 * still linked when its task is interrupted holds nothing, and one that was
 * granted something in the same turn as its cancellation gives it back
 * before reporting -ECANCELED. */
#include "sync_internal.h"

/* ---- Lock ------------------------------------------------------------------- */

int corio_lock_init(corio_lock_t *lock)
{
    if (!lock)
        return -EINVAL;
    *lock = (corio_lock_t){0};
    return 0;
}

int corio_lock_destroy(corio_lock_t *lock)
{
    if (!lock)
        return -EINVAL;
    if (lock->locked || lock->waiters.inside)
        return -EBUSY;
    return 0;
}

int corio_lock_try_acquire(corio_lock_t *lock)
{
    if (!lock)
        return -EINVAL;
    if (lock->locked)
        return -EAGAIN;
    lock->locked = true;
    return 0;
}

int corio_lock_acquire(corio_lock_t *lock)
{
    if (!lock)
        return -EINVAL;
    /* While the lock is held nobody is linked without a holder, so a free
     * lock has no waiters and the fast path is fair. */
    if (corio_likely(!lock->locked)) {
        lock->locked = true;
        return 0;
    }
    corio_waiter_t w;
    int rc = corio__waitq_wait(&lock->waiters, &w);
    if (rc < 0)
        return rc;
    /* Granted: the releaser left locked set and handed it to us. */
    rc = corio__granted_interrupt(&w);
    if (rc)
        corio_lock_release(lock);
    return rc;
}

int corio_lock_release(corio_lock_t *lock)
{
    if (!lock)
        return -EINVAL;
    if (!lock->locked)
        return -EPERM;
    if (!corio__waitq_wake_one(&lock->waiters, 0))
        lock->locked = false;
    return 0;
}

bool corio_lock_locked(const corio_lock_t *lock) { return lock && lock->locked; }

/* ---- Event ------------------------------------------------------------------ */

int corio_event_init(corio_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    *ev = (corio_event_t){0};
    return 0;
}

int corio_event_destroy(corio_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    /* A woken waiter no longer touches the event: only linked ones count. */
    return ev->waiters.n ? -EBUSY : 0;
}

int corio_event_set(corio_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    ev->set = true;
    corio__waitq_wake_all(&ev->waiters, 0);
    return 0;
}

int corio_event_clear(corio_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    ev->set = false;
    return 0;
}

bool corio_event_is_set(const corio_event_t *ev) { return ev && ev->set; }

int corio_event_wait(corio_event_t *ev)
{
    if (!ev)
        return -EINVAL;
    if (ev->set)
        return 0;
    corio_waiter_t w;
    int rc = corio__waitq_wait(&ev->waiters, &w);
    if (rc < 0)
        return rc;
    return corio__granted_interrupt(&w);
}

/* ---- Condition ------------------------------------------------------------- */

int corio_condition_init(corio_condition_t *c, corio_lock_t *lock)
{
    if (!c)
        return -EINVAL;
    *c = (corio_condition_t){0};
    c->lock = lock ? lock : &c->own_lock;
    return 0;
}

int corio_condition_destroy(corio_condition_t *c)
{
    if (!c)
        return -EINVAL;
    if (c->waiters.inside ||
        (c->lock == &c->own_lock && (c->own_lock.locked || c->own_lock.waiters.inside)))
        return -EBUSY;
    return 0;
}

int corio_condition_acquire(corio_condition_t *c)
{
    return c ? corio_lock_acquire(c->lock) : -EINVAL;
}

int corio_condition_release(corio_condition_t *c)
{
    return c ? corio_lock_release(c->lock) : -EINVAL;
}

bool corio_condition_locked(const corio_condition_t *c) { return c && c->lock->locked; }

/* Takes the lock back whatever happens, as asyncio's Condition.wait does:
 * a wait that returned without the lock would break the caller's critical
 * section. Cancellations that arrive meanwhile are kept. */
static void reacquire(corio_lock_t *lock)
{
    corio__shield_t sh;
    corio__shield_enter(&sh, corio_current_task());
    while (corio_lock_acquire(lock) < 0)
        corio__shield_absorb(&sh);
    corio__shield_exit(&sh);
}

int corio_condition_wait(corio_condition_t *c)
{
    if (!c)
        return -EINVAL;
    if (!corio_current_task())
        return -EDEADLK;
    if (!c->lock->locked)
        return -EPERM;
    int rc = corio__interrupt_pending(CORIO_NEVER);
    if (rc)
        return rc;
    corio_lock_release(c->lock);
    corio_waiter_t w;
    rc = corio__waitq_wait(&c->waiters, &w);
    if (rc >= 0 && (rc = corio__granted_interrupt(&w)) != 0) {
        /* Notified and interrupted in the same turn: the notification goes
         * to another waiter rather than being lost (asyncio gh-112202). */
        corio__waitq_wake_one(&c->waiters, 0);
    }
    reacquire(c->lock);
    return rc;
}

int corio_condition_wait_for(corio_condition_t *c, bool (*pred)(void *arg), void *arg)
{
    if (!c || !pred)
        return -EINVAL;
    while (!pred(arg)) {
        int rc = corio_condition_wait(c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int corio_condition_notify(corio_condition_t *c, int n)
{
    if (!c || n < 0)
        return -EINVAL;
    if (!c->lock->locked)
        return -EPERM;
    int woken = 0;
    while (woken < n && corio__waitq_wake_one(&c->waiters, 0))
        woken++;
    return woken;
}

int corio_condition_notify_all(corio_condition_t *c)
{
    if (!c)
        return -EINVAL;
    if (!c->lock->locked)
        return -EPERM;
    int woken = (int)c->waiters.n;
    corio__waitq_wake_all(&c->waiters, 0);
    return woken;
}

/* ---- Semaphore -------------------------------------------------------------- */

int corio_semaphore_init(corio_semaphore_t *s, int64_t value)
{
    if (!s || value < 0)
        return -EINVAL;
    *s = (corio_semaphore_t){.value = value, .bound = -1};
    return 0;
}

int corio_bounded_semaphore_init(corio_semaphore_t *s, int64_t value)
{
    int rc = corio_semaphore_init(s, value);
    if (rc == 0)
        s->bound = value;
    return rc;
}

int corio_semaphore_destroy(corio_semaphore_t *s)
{
    if (!s)
        return -EINVAL;
    return s->waiters.inside ? -EBUSY : 0;
}

int corio_semaphore_try_acquire(corio_semaphore_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->value == 0 || s->waiters.n)
        return -EAGAIN;
    s->value--;
    return 0;
}

int corio_semaphore_acquire(corio_semaphore_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->value > 0 && !s->waiters.n) {
        s->value--;
        return 0;
    }
    corio_waiter_t w;
    int rc = corio__waitq_wait(&s->waiters, &w);
    if (rc < 0)
        return rc;
    /* Granted a permit by release (value was left as is). */
    rc = corio__granted_interrupt(&w);
    if (rc)
        corio_semaphore_release(s);
    return rc;
}

int corio_semaphore_release(corio_semaphore_t *s)
{
    if (!s)
        return -EINVAL;
    /* The bound first, as asyncio: with waiters value is 0, so only a
     * bound of 0 refuses a hand-over. */
    if (s->bound >= 0 && s->value >= s->bound)
        return -EOVERFLOW;
    if (corio__waitq_wake_one(&s->waiters, 0))
        return 0;
    s->value++;
    return 0;
}

bool corio_semaphore_locked(const corio_semaphore_t *s)
{
    return s && (s->value == 0 || s->waiters.n);
}

int64_t corio_semaphore_value(const corio_semaphore_t *s) { return s ? s->value : -EINVAL; }

/* ---- Barrier ---------------------------------------------------------------- */

/* A barrier waiter carries its arrival index in the wake result: the last
 * arrival wakes the others with their own index, a break with the error. */
typedef struct barrier_waiter {
    corio_waiter_t w;
    int index;
} barrier_waiter_t;

int corio_barrier_init(corio_barrier_t *b, unsigned parties)
{
    if (!b || parties == 0 || parties > INT32_MAX)
        return -EINVAL;
    *b = (corio_barrier_t){.parties = parties};
    return 0;
}

int corio_barrier_destroy(corio_barrier_t *b)
{
    if (!b)
        return -EINVAL;
    return b->waiters.inside ? -EBUSY : 0;
}

static void barrier_break(corio_barrier_t *b, bool broken)
{
    b->broken = broken;
    b->count = 0;
    corio__waitq_wake_all(&b->waiters, CORIO_EBROKENBARRIER);
}

int corio_barrier_wait(corio_barrier_t *b)
{
    if (!b)
        return -EINVAL;
    if (b->broken)
        return CORIO_EBROKENBARRIER;
    if (b->count + 1 == b->parties) {
        int index = (int)b->count;
        b->count = 0;
        corio_waiter_t *w;
        while ((w = corio__waitq_pop(&b->waiters)))
            corio__wake(w, corio_container_of(w, barrier_waiter_t, w)->index);
        return index;
    }
    barrier_waiter_t bw = {.index = (int)b->count};
    if (!corio_current_task())
        return -EDEADLK;
    int rc = corio__interrupt_pending(CORIO_NEVER);
    if (rc)
        return rc;
    b->count++;
    rc = corio__waitq_wait(&b->waiters, &bw.w);
    if (rc == -ECANCELED || rc == -ETIMEDOUT) {
        /* This waiter left while the others wait for it: they would wait for
         * a party that is not coming, so the barrier breaks (as
         * threading.Barrier does on a timeout). */
        barrier_break(b, true);
        return rc;
    }
    if (rc >= 0 || rc == CORIO_EBROKENBARRIER) {
        /* The cycle completed (the others are on their way), or a break or
         * reset woke us: an interrupt in the same turn is what to report. */
        int irc = corio__granted_interrupt(&bw.w);
        if (irc)
            return irc;
    }
    return rc;
}

int corio_barrier_reset(corio_barrier_t *b)
{
    if (!b)
        return -EINVAL;
    barrier_break(b, false);
    return 0;
}

int corio_barrier_abort(corio_barrier_t *b)
{
    if (!b)
        return -EINVAL;
    barrier_break(b, true);
    return 0;
}

unsigned corio_barrier_parties(const corio_barrier_t *b) { return b ? b->parties : 0; }
unsigned corio_barrier_n_waiting(const corio_barrier_t *b) { return b ? (unsigned)b->waiters.n : 0; }
bool corio_barrier_broken(const corio_barrier_t *b) { return b && b->broken; }
