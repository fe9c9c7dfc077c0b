/* corio synchronisation primitives for the coroutines of one loop: Lock,
 * Event, Condition, Semaphore, BoundedSemaphore, Barrier (asyncio's).
 *
 * The caller allocates each primitive (on its stack, in a struct, or with
 * malloc) and pairs *_init with *_destroy; the fields are private. Its
 * memory may go once *_destroy returned 0: -EBUSY also covers a task that
 * was woken or cancelled in a wait and has not returned from it yet. A
 * primitive belongs to the loop of the tasks that use it, and every call is
 * made on that loop's thread.
 *
 * Waiting. A call that has to wait suspends the calling task, in FIFO order
 * with the other waiters, and needs a task (-EDEADLK outside a coroutine).
 * A call that can complete at once never suspends and never checks for
 * cancellation, as in asyncio, so cleanup code of a cancelled task can still
 * take a free lock.
 *
 * Cancellation. A wait returns -ECANCELED when the task is cancelled and
 * -ETIMEDOUT when its timeout scope (group.h) expires. It then holds
 * nothing: a cancelled lock or semaphore waiter that was granted the lock or
 * a permit in the same loop turn passes it on, a notified condition waiter
 * passes the notification on, so the primitive stays consistent. */
#ifndef CORIO_SYNC_H
#define CORIO_SYNC_H

#include "common.h"

CORIO_BEGIN_DECLS

/* A FIFO of suspended tasks (private). inside also counts the waiters
 * that were woken or cancelled but have not resumed yet: they still touch
 * the primitive, so destroying it must wait for them too. */
typedef struct corio_waitq {
    struct corio_waiter *head, *tail;
    size_t n, inside;
} corio_waitq_t;

/* ---- Lock: fair (FIFO), handed directly to the next waiter ----------------- */

typedef struct corio_lock {
    corio_waitq_t waiters;
    bool locked;
} corio_lock_t;

/* Returns 0 or -EINVAL. */
CORIO_API int corio_lock_init(corio_lock_t *lock);
/* Returns 0, -EINVAL, or -EBUSY while the lock is held or awaited (the lock
 * is then left untouched). */
CORIO_API int corio_lock_destroy(corio_lock_t *lock);
/* Takes the lock, waiting behind the earlier waiters if it is held. Returns
 * 0 (the caller holds it), -ECANCELED, -ETIMEDOUT, -EDEADLK, -EINVAL. */
CORIO_API int corio_lock_acquire(corio_lock_t *lock);
/* Takes the lock if it is free and nobody waits; -EAGAIN otherwise. */
CORIO_API int corio_lock_try_acquire(corio_lock_t *lock);
/* Releases the lock, handing it to the first waiter. Any task may release
 * (as in asyncio). Returns 0, or -EPERM when it is not held. */
CORIO_API int corio_lock_release(corio_lock_t *lock);
CORIO_API bool corio_lock_locked(const corio_lock_t *lock);

/* ---- Event ------------------------------------------------------------------ */

typedef struct corio_event {
    corio_waitq_t waiters;
    bool set;
} corio_event_t;

CORIO_API int corio_event_init(corio_event_t *ev);
/* -EBUSY while tasks wait on it. */
CORIO_API int corio_event_destroy(corio_event_t *ev);
/* Sets the flag and wakes every waiter. Returns 0 or -EINVAL. */
CORIO_API int corio_event_set(corio_event_t *ev);
CORIO_API int corio_event_clear(corio_event_t *ev);
CORIO_API bool corio_event_is_set(const corio_event_t *ev);
/* Returns 0 at once when set, else waits for corio_event_set: 0,
 * -ECANCELED, -ETIMEDOUT, -EDEADLK. */
CORIO_API int corio_event_wait(corio_event_t *ev);

/* ---- Condition ------------------------------------------------------------- */

typedef struct corio_condition {
    corio_lock_t *lock;
    corio_lock_t own_lock;
    corio_waitq_t waiters;
} corio_condition_t;

/* Uses lock (borrowed, must outlive the condition), or a lock of its own
 * when lock is NULL. */
CORIO_API int corio_condition_init(corio_condition_t *c, corio_lock_t *lock);
/* -EBUSY while tasks wait on it or its own lock is held. */
CORIO_API int corio_condition_destroy(corio_condition_t *c);
CORIO_API int corio_condition_acquire(corio_condition_t *c);
CORIO_API int corio_condition_release(corio_condition_t *c);
CORIO_API bool corio_condition_locked(const corio_condition_t *c);
/* With the lock held: releases it, waits for a notify, and takes the lock
 * again before returning, whatever the outcome (the re-acquisition itself
 * ignores cancellation, as in asyncio). Returns 0, -ECANCELED, -ETIMEDOUT;
 * -EPERM when the lock is not held; -EDEADLK outside a coroutine. */
CORIO_API int corio_condition_wait(corio_condition_t *c);
/* With the lock held: waits until pred(arg) is true (checked first, then
 * after every wake-up, with the lock held). Returns 0 or the error of
 * corio_condition_wait. */
CORIO_API int corio_condition_wait_for(corio_condition_t *c, bool (*pred)(void *arg), void *arg);
/* With the lock held: wakes up to n waiters (FIFO). Returns how many were
 * woken, or -EPERM when the lock is not held. */
CORIO_API int corio_condition_notify(corio_condition_t *c, int n);
CORIO_API int corio_condition_notify_all(corio_condition_t *c);

/* ---- Semaphore and BoundedSemaphore --------------------------------------- */

typedef struct corio_semaphore {
    corio_waitq_t waiters;
    int64_t value;
    int64_t bound; /* -1: unbounded */
} corio_semaphore_t;

/* A semaphore with value permits (value >= 0, else -EINVAL). */
CORIO_API int corio_semaphore_init(corio_semaphore_t *s, int64_t value);
/* A bounded semaphore: releasing above the initial value is an error. */
CORIO_API int corio_bounded_semaphore_init(corio_semaphore_t *s, int64_t value);
/* -EBUSY while tasks wait on it. */
CORIO_API int corio_semaphore_destroy(corio_semaphore_t *s);
/* Takes a permit, waiting (FIFO) while none is free. Returns 0, -ECANCELED,
 * -ETIMEDOUT, -EDEADLK, -EINVAL. */
CORIO_API int corio_semaphore_acquire(corio_semaphore_t *s);
/* Takes a permit if one is free and nobody waits; -EAGAIN otherwise. */
CORIO_API int corio_semaphore_try_acquire(corio_semaphore_t *s);
/* Returns a permit, handing it to the first waiter. -EOVERFLOW when a
 * bounded semaphore would exceed its initial value. */
CORIO_API int corio_semaphore_release(corio_semaphore_t *s);
/* True when an acquire would wait. */
CORIO_API bool corio_semaphore_locked(const corio_semaphore_t *s);
CORIO_API int64_t corio_semaphore_value(const corio_semaphore_t *s);

/* ---- Barrier ---------------------------------------------------------------- */

typedef struct corio_barrier {
    corio_waitq_t waiters;
    unsigned parties, count;
    bool broken;
} corio_barrier_t;

/* A cyclic barrier for parties tasks (parties >= 1, else -EINVAL). */
CORIO_API int corio_barrier_init(corio_barrier_t *b, unsigned parties);
/* -EBUSY while tasks wait on it. */
CORIO_API int corio_barrier_destroy(corio_barrier_t *b);
/* Waits until parties tasks have called it, then releases them all and
 * starts the next cycle. Returns the caller's arrival index, 0 ..
 * parties - 1; CORIO_EBROKENBARRIER when the barrier is or becomes broken
 * (abort, reset, or another waiter cancelled or timed out); -ECANCELED or
 * -ETIMEDOUT when this waiter was, which breaks the barrier for the others
 * (unless the last party arrived in the same loop turn: the cycle is then
 * complete, and only this waiter reports the interrupt). */
CORIO_API int corio_barrier_wait(corio_barrier_t *b);
/* Wakes the waiters with CORIO_EBROKENBARRIER and returns the barrier to its
 * empty, unbroken state. */
CORIO_API int corio_barrier_reset(corio_barrier_t *b);
/* Breaks the barrier: current and later waits fail with
 * CORIO_EBROKENBARRIER until corio_barrier_reset. */
CORIO_API int corio_barrier_abort(corio_barrier_t *b);
CORIO_API unsigned corio_barrier_parties(const corio_barrier_t *b);
CORIO_API unsigned corio_barrier_n_waiting(const corio_barrier_t *b);
CORIO_API bool corio_barrier_broken(const corio_barrier_t *b);

CORIO_END_DECLS

#endif
