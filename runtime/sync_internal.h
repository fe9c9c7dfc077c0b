/* Private helpers of the composition part (sync.c, queue.c, group.c,
 * gather.c, timeout.c): FIFO wait queues of suspended tasks and shielded
 * waits. Never installed. */
#ifndef CORIO_SYNC_INTERNAL_H
#define CORIO_SYNC_INTERNAL_H

#include "internal.h"

#include <errno.h>

/* A waiter in a corio_waitq_t: w.data points to the queue while linked, so
 * detach (on cancel or deadline) knows whether a waker already took it. */
static inline void corio__waitq_push(corio_waitq_t *q, corio_waiter_t *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->data = q;
    q->n++;
}

static inline void corio__waitq_remove(corio_waitq_t *q, corio_waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    w->data = NULL;
    q->n--;
}

static inline corio_waiter_t *corio__waitq_pop(corio_waitq_t *q)
{
    corio_waiter_t *w = q->head;
    if (w) {
        q->head = w->next;
        if (w->next)
            w->next->prev = NULL;
        else
            q->tail = NULL;
        w->next = NULL;
        w->data = NULL;
        q->n--;
    }
    return w;
}

/* The detach hook of queued waiters: a waker unlinks and wakes in one step,
 * so a waiter still linked has not been granted anything. */
static inline bool corio__waitq_detach(corio_waiter_t *w)
{
    if (w->data)
        corio__waitq_remove((corio_waitq_t *)w->data, w);
    return true;
}

/* Queues the current task on q and suspends it. Returns the wake result
 * (>= 0 or an error the waker chose), -ECANCELED or -ETIMEDOUT (the waiter
 * is then off the queue), or -EDEADLK outside a task. A wake result that
 * arrived in the same turn as a cancellation is still returned: the caller
 * checks corio__granted_interrupt(w), gives back what it was granted and
 * reports the interrupt, since the current await must report it. */
int corio__suspend(corio_waiter_t *w, int64_t deadline);

/* -ECANCELED or -ETIMEDOUT when an await of the running task t would end
 * at once; cheaper than corio__interrupt_pending when t is at hand. */
static inline int corio__task_interrupt(corio_task_t *t)
{
    if (t->cancel_requests)
        return -ECANCELED;
    if (corio_unlikely(t->scope_deadline != CORIO_NEVER))
        return corio__interrupt_pending(CORIO_NEVER);
    return 0;
}

/* After a wait on w that was granted something: -ECANCELED or -ETIMEDOUT
 * when the task was cancelled, or its scope expired, in the same turn. The
 * interrupt wins, as it would in asyncio (where a timeout is a cancel). */
static inline int corio__granted_interrupt(corio_waiter_t *w)
{
    return corio__task_interrupt(w->task);
}

static inline int corio__waitq_wait(corio_waitq_t *q, corio_waiter_t *w)
{
    corio_task_t *t = corio_current_task();
    if (!t)
        return -EDEADLK;
    int rc = corio__task_interrupt(t);
    if (rc)
        return rc;
    w->task = t;
    w->detach = corio__waitq_detach;
    w->woken = false;
    corio__waitq_push(q, w);
    q->inside++;
    rc = corio__suspend(w, CORIO_NEVER);
    q->inside--; /* what the caller does next is synchronous */
    return rc;
}

/* Wakes the first waiter of q with result; false when q is empty. */
static inline bool corio__waitq_wake_one(corio_waitq_t *q, int result)
{
    corio_waiter_t *w = corio__waitq_pop(q);
    if (!w)
        return false;
    corio__wake(w, result);
    return true;
}

static inline void corio__waitq_wake_all(corio_waitq_t *q, int result)
{
    corio_waiter_t *w;
    while ((w = corio__waitq_pop(q)))
        corio__wake(w, result);
}

/* A shielded section: the task's cancellation requests and scope deadline
 * are parked, so waits inside it end only by their own wake-ups. Requests
 * that arrive meanwhile are kept and restored at the end. */
typedef struct corio__shield {
    corio_task_t *task;
    int cancels;
    bool outer_shielded; /* sections nest like the frames that hold them */
    bool scope_expired;  /* what the wait before the section said */
    int64_t scope_deadline;
} corio__shield_t;

void corio__shield_enter(corio__shield_t *s, corio_task_t *t);
/* Moves cancellation requests that arrived during the shield aside;
 * returns how many there were. */
int corio__shield_absorb(corio__shield_t *s);
void corio__shield_exit(corio__shield_t *s);

/* Waits on w until done(arg) holds, ignoring cancellation and the scope
 * deadline. The first time the task is cancelled (or was on entry) it calls
 * on_interrupt(arg, -ECANCELED); the first time its scope deadline passes,
 * on_interrupt(arg, -ETIMEDOUT). Wakers call corio__wake(w, 0) after
 * changing what done() reads. Returns a mask: 1 when cancelled, 2 when the
 * scope expired. The task's cancellation requests are intact afterwards. */
enum { CORIO__SAW_CANCEL = 1, CORIO__SAW_TIMEOUT = 2 };
int corio__wait_shielded(corio_waiter_t *w, bool (*done)(void *), void (*on_interrupt)(void *, int),
                         void *arg);

/* Awaits f until it is done, ignoring cancellation and the scope deadline. */
void corio__await_shielded(corio_future_t *f);

/* The scope deadline the task's timeout scopes give (timeout.c), or
 * fallback when it has none. */
int64_t corio__scope_deadline(corio_task_t *t, int64_t fallback);

#endif
