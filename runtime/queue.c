/* Queues: FIFO (a ring), LIFO (a stack) and priority (a binary min-heap on
 * (priority, sequence), so equal priorities come out first-in first-out).
 *
 * Invariants, which the cancellation rules rely on:
 * - getters wait only while the queue is empty, and a put hands its item
 *   straight to the first getter: so a getter is either linked and empty-
 *   handed, or unlinked with its item in its waiter record;
 * - a get that frees room reserves it for the first waiting putter and
 *   wakes it; the putter inserts its own item when it runs, so a cancelled
 *   put never inserts it, and the reservation keeps later puts from taking
 *   the room first (FIFO among putters). */
#include "sync_internal.h"

#include <stdlib.h>

typedef struct qitem {
    int64_t prio;
    uint64_t seq;
    corio_value_t v;
} qitem_t;

struct corio_queue {
    corio_queue_kind_t kind;
    size_t maxsize;
    qitem_t *buf;
    size_t cap, head, size; /* head: the ring's first slot (FIFO only) */
    size_t reserved;        /* room promised to woken putters */
    size_t unfinished;      /* items put and not yet marked done */
    uint64_t seq;
    corio_waitq_t getters, putters, joiners;
    bool shutdown, dropping; /* dropping: shut down immediately */
};

typedef struct qwaiter {
    corio_waiter_t w;
    qitem_t item;
} qwaiter_t;

/* ---- storage ------------------------------------------------------------------ */

/* The capacity is a power of two, so the ring wraps with a mask. */
static int grow(corio_queue_t *q)
{
    size_t cap = q->cap ? q->cap * 2 : 16;
    qitem_t *b = malloc(cap * sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < q->size; i++)
        b[i] = q->buf[q->kind == CORIO_QUEUE_FIFO ? (q->head + i) & (q->cap - 1) : i];
    free(q->buf);
    q->buf = b;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static bool before(const qitem_t *a, const qitem_t *b)
{
    return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static void heap_up(qitem_t *h, size_t i)
{
    qitem_t x = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&x, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static void heap_down(qitem_t *h, size_t n, size_t i)
{
    qitem_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&h[c + 1], &h[c]))
            c++;
        if (!before(&h[c], &x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/* A given-back FIFO item goes to the head, behind the older ones given
 * back before it (two getters cancelled in one turn): order is by seq. */
static void fifo_push_front(corio_queue_t *q, qitem_t it)
{
    size_t mask = q->cap - 1, i = 0;
    q->head = (q->head - 1) & mask;
    for (; i < q->size; i++) {
        qitem_t *next = &q->buf[(q->head + i + 1) & mask];
        if (next->seq > it.seq)
            break;
        q->buf[(q->head + i) & mask] = *next;
    }
    q->buf[(q->head + i) & mask] = it;
}

/* Inserts at the back, or at the front (front: an item a cancelled getter
 * gives back, so it comes out next again). */
static int push(corio_queue_t *q, qitem_t it, bool front)
{
    if (q->size == q->cap) {
        int rc = grow(q);
        if (rc < 0)
            return rc;
    }
    switch (q->kind) {
    case CORIO_QUEUE_FIFO:
        if (front)
            fifo_push_front(q, it);
        else
            q->buf[(q->head + q->size) & (q->cap - 1)] = it;
        break;
    case CORIO_QUEUE_LIFO:
        q->buf[q->size] = it;
        break;
    case CORIO_QUEUE_PRIORITY:
        q->buf[q->size] = it;
        heap_up(q->buf, q->size);
        break;
    }
    q->size++;
    return 0;
}

static qitem_t pop(corio_queue_t *q)
{
    qitem_t it;
    switch (q->kind) {
    case CORIO_QUEUE_FIFO:
        it = q->buf[q->head];
        q->head = (q->head + 1) & (q->cap - 1);
        break;
    case CORIO_QUEUE_LIFO:
        it = q->buf[q->size - 1];
        break;
    default:
        it = q->buf[0];
        q->buf[0] = q->buf[q->size - 1];
        if (q->size > 1)
            heap_down(q->buf, q->size - 1, 0);
        break;
    }
    q->size--;
    return it;
}

static bool is_full(const corio_queue_t *q)
{
    return q->maxsize && q->size + q->reserved >= q->maxsize;
}

/* ---- life cycle ---------------------------------------------------------------- */

int corio_queue_new(corio_queue_t **out, corio_queue_kind_t kind, size_t maxsize)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (kind != CORIO_QUEUE_FIFO && kind != CORIO_QUEUE_LIFO && kind != CORIO_QUEUE_PRIORITY)
        return -EINVAL;
    corio_queue_t *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->kind = kind;
    q->maxsize = maxsize;
    *out = q;
    return 0;
}

static void drop_items(corio_queue_t *q)
{
    while (q->size) {
        qitem_t it = pop(q);
        if (it.v.len)
            free(it.v.ptr);
    }
}

int corio_queue_free(corio_queue_t *q)
{
    if (!q)
        return -EINVAL;
    if (q->getters.inside || q->putters.inside || q->joiners.inside || q->reserved)
        return -EBUSY;
    drop_items(q);
    free(q->buf);
    free(q);
    return 0;
}

/* ---- put -------------------------------------------------------------------------- */

/* Puts without waiting: hands the item to a getter, or inserts it. */
static inline __attribute__((always_inline)) int put_now(corio_queue_t *q, qitem_t it)
{
    if (q->shutdown)
        return CORIO_EQUEUESHUTDOWN;
    corio_waiter_t *g = corio__waitq_pop(&q->getters);
    if (g) {
        corio_container_of(g, qwaiter_t, w)->item = it;
        q->unfinished++;
        corio__wake(g, 0);
        return 0;
    }
    if (is_full(q))
        return -EAGAIN;
    int rc = push(q, it, false);
    if (rc == 0)
        q->unfinished++;
    return rc;
}

/* Woken by shutdown in the turn the task was cancelled or its scope
 * expired: the interrupt is what the current await reports. */
static int shutdown_or_interrupt(corio_waiter_t *w)
{
    int rc = corio__granted_interrupt(w);
    return rc ? rc : CORIO_EQUEUESHUTDOWN;
}

/* The room a get freed goes to the first waiting putter. */
static void wake_putter(corio_queue_t *q)
{
    if (q->putters.n && !is_full(q)) {
        q->reserved++;
        corio__waitq_wake_one(&q->putters, 0);
    }
}

static int put_common(corio_queue_t *q, int64_t prio, corio_value_t v, bool wait)
{
    if (!q)
        return -EINVAL;
    qitem_t it = {prio, q->seq++, v};
    /* Earlier putters wait for room first. */
    if (!q->putters.n || q->shutdown) {
        int rc = put_now(q, it);
        if (rc != -EAGAIN || !wait)
            return rc;
    } else if (!wait) {
        return -EAGAIN;
    }
    qwaiter_t pw = {.item = it};
    int rc = corio__waitq_wait(&q->putters, &pw.w);
    if (rc == CORIO_EQUEUESHUTDOWN)
        return shutdown_or_interrupt(&pw.w);
    if (rc == -ECANCELED || rc == -ETIMEDOUT || rc == -EDEADLK)
        return rc;
    /* Woken with room reserved for us. */
    q->reserved--;
    rc = corio__granted_interrupt(&pw.w);
    if (rc) {
        wake_putter(q); /* pass the room on; our item stays ours */
        return rc;
    }
    rc = put_now(q, it);
    if (rc == -EAGAIN) /* cannot happen: the room was reserved */
        rc = -EIO;
    /* The item may have gone straight to a getter, leaving the room free
     * for the next putter. */
    wake_putter(q);
    return rc;
}

int corio_queue_put(corio_queue_t *q, corio_value_t item) { return put_common(q, 0, item, true); }

int corio_queue_put_nowait(corio_queue_t *q, corio_value_t item)
{
    return put_common(q, 0, item, false);
}

int corio_queue_put_priority(corio_queue_t *q, int64_t priority, corio_value_t item)
{
    return put_common(q, priority, item, true);
}

int corio_queue_put_priority_nowait(corio_queue_t *q, int64_t priority, corio_value_t item)
{
    return put_common(q, priority, item, false);
}

/* ---- get -------------------------------------------------------------------------- */

/* A cancelled getter gives back the item it was handed in the same turn: to
 * the next getter, or to the head of the queue. The head may take the queue
 * one past maxsize for a moment; losing the item would be worse. */
static void give_back(corio_queue_t *q, qitem_t it)
{
    if (q->dropping) { /* shut down immediately: dropped as the rest were */
        if (it.v.len)
            free(it.v.ptr);
        corio_queue_task_done(q);
        return;
    }
    corio_waiter_t *g = corio__waitq_pop(&q->getters);
    if (g) {
        corio_container_of(g, qwaiter_t, w)->item = it;
        corio__wake(g, 0);
        return;
    }
    if (push(q, it, true) < 0) {
        /* No memory to keep it: report rather than leak silently. */
        corio_error_context_t ctx = {.message = "queue: an item given back by a cancelled get "
                                                "was dropped (out of memory)",
                                     .code = -ENOMEM};
        corio_loop_report(corio_loop_current(), &ctx);
        if (it.v.len)
            free(it.v.ptr);
        if (q->unfinished)
            q->unfinished--;
    }
}

static int get_common(corio_queue_t *q, corio_value_t *out, bool wait)
{
    if (!q || !out)
        return -EINVAL;
    if (q->size) {
        *out = pop(q).v;
        wake_putter(q);
        return 0;
    }
    if (q->shutdown)
        return CORIO_EQUEUESHUTDOWN;
    if (!wait)
        return -EAGAIN;
    qwaiter_t gw;
    int rc = corio__waitq_wait(&q->getters, &gw.w);
    if (rc == CORIO_EQUEUESHUTDOWN)
        return shutdown_or_interrupt(&gw.w);
    if (rc < 0)
        return rc;
    rc = corio__granted_interrupt(&gw.w);
    if (rc) {
        give_back(q, gw.item);
        return rc;
    }
    *out = gw.item.v;
    return 0;
}

int corio_queue_get(corio_queue_t *q, corio_value_t *out) { return get_common(q, out, true); }

int corio_queue_get_nowait(corio_queue_t *q, corio_value_t *out)
{
    return get_common(q, out, false);
}

/* ---- task_done, join, shutdown -------------------------------------------------- */

int corio_queue_task_done(corio_queue_t *q)
{
    if (!q || q->unfinished == 0)
        return -EINVAL;
    if (--q->unfinished == 0)
        corio__waitq_wake_all(&q->joiners, 0);
    return 0;
}

int corio_queue_join(corio_queue_t *q)
{
    if (!q)
        return -EINVAL;
    if (q->unfinished == 0)
        return 0;
    corio_waiter_t w;
    int rc = corio__waitq_wait(&q->joiners, &w);
    if (rc < 0)
        return rc;
    return corio__granted_interrupt(&w);
}

int corio_queue_shutdown(corio_queue_t *q, bool immediate)
{
    if (!q)
        return -EINVAL;
    q->shutdown = true;
    if (immediate) {
        q->dropping = true;
        size_t n = q->size;
        drop_items(q);
        q->unfinished = q->unfinished > n ? q->unfinished - n : 0;
        if (q->unfinished == 0)
            corio__waitq_wake_all(&q->joiners, 0);
    }
    corio__waitq_wake_all(&q->getters, CORIO_EQUEUESHUTDOWN);
    corio__waitq_wake_all(&q->putters, CORIO_EQUEUESHUTDOWN);
    return 0;
}

size_t corio_queue_qsize(const corio_queue_t *q) { return q ? q->size : 0; }
size_t corio_queue_maxsize(const corio_queue_t *q) { return q ? q->maxsize : 0; }
bool corio_queue_empty(const corio_queue_t *q) { return !q || q->size == 0; }
bool corio_queue_full(const corio_queue_t *q) { return q && is_full(q); }
