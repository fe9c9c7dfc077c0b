/* corio queues for the coroutines of one loop: asyncio.Queue, LifoQueue and
 * PriorityQueue.
 *
 * Items are corio_value_t (common.h). A pointer-sized item (len == 0) is
 * passed as is. An item with len > 0 is malloc'd bytes whose ownership moves
 * into the queue on put and out to the caller on get; bytes the queue drops
 * (corio_queue_shutdown with immediate, corio_queue_free) are freed.
 *
 * An item put while a getter waits goes straight to the first getter
 * (FIFO). Waiting calls need a task (-EDEADLK outside one), return
 * -ECANCELED when the task is cancelled and -ETIMEDOUT when its timeout
 * scope expires; a cancelled get never loses an item (one handed to it in
 * the same loop turn goes back to the head of the queue, or on to the next
 * getter) and a cancelled put never inserts its item. Calls that complete
 * at once never suspend. Loop thread only. */
#ifndef CORIO_QUEUE_H
#define CORIO_QUEUE_H

#include "common.h"

CORIO_BEGIN_DECLS

typedef struct corio_queue corio_queue_t;

typedef enum corio_queue_kind {
    CORIO_QUEUE_FIFO = 0,
    CORIO_QUEUE_LIFO = 1,
    CORIO_QUEUE_PRIORITY = 2, /* lowest priority value first, FIFO among equals */
} corio_queue_kind_t;

/* A queue holding at most maxsize items (0: unbounded). Returns 0, -EINVAL
 * or -ENOMEM. */
CORIO_API int corio_queue_new(corio_queue_t **out, corio_queue_kind_t kind, size_t maxsize);
/* Frees the queue and the bytes of the items left in it. -EBUSY while tasks
 * wait on it (the queue is then left untouched). */
CORIO_API int corio_queue_free(corio_queue_t *q);

/* Puts an item, waiting while the queue is full. Returns 0, -ECANCELED,
 * -ETIMEDOUT, CORIO_EQUEUESHUTDOWN (the item stays the caller's), -EDEADLK,
 * -EINVAL, -ENOMEM. */
CORIO_API int corio_queue_put(corio_queue_t *q, corio_value_t item);
/* As put, without waiting: -EAGAIN when full (asyncio.QueueFull). */
CORIO_API int corio_queue_put_nowait(corio_queue_t *q, corio_value_t item);
/* Priority queues: put with a priority (lower comes out first). put and
 * put_nowait use priority 0. */
CORIO_API int corio_queue_put_priority(corio_queue_t *q, int64_t priority, corio_value_t item);
CORIO_API int corio_queue_put_priority_nowait(corio_queue_t *q, int64_t priority,
                                              corio_value_t item);

/* Takes the next item, waiting while the queue is empty. Returns 0 and
 * *out (owned by the caller now), -ECANCELED, -ETIMEDOUT,
 * CORIO_EQUEUESHUTDOWN once the queue is shut down and empty, -EDEADLK,
 * -EINVAL. */
CORIO_API int corio_queue_get(corio_queue_t *q, corio_value_t *out);
/* As get, without waiting: -EAGAIN when empty (asyncio.QueueEmpty). */
CORIO_API int corio_queue_get_nowait(corio_queue_t *q, corio_value_t *out);

/* One call per item taken with get, once its work is done. Returns 0, or
 * -EINVAL when called more often than items were put. */
CORIO_API int corio_queue_task_done(corio_queue_t *q);
/* Waits until every item put has been marked done. Returns 0, -ECANCELED,
 * -ETIMEDOUT, -EDEADLK. */
CORIO_API int corio_queue_join(corio_queue_t *q);

/* Shuts the queue down: later puts fail with CORIO_EQUEUESHUTDOWN, gets
 * fail once the queue is empty, and every waiting put and get is woken with
 * that code. With immediate, the items left are dropped (their bytes freed)
 * and counted as done, which may release join. Returns 0 or -EINVAL. */
CORIO_API int corio_queue_shutdown(corio_queue_t *q, bool immediate);

CORIO_API size_t corio_queue_qsize(const corio_queue_t *q);
CORIO_API size_t corio_queue_maxsize(const corio_queue_t *q);
CORIO_API bool corio_queue_empty(const corio_queue_t *q);
/* Always false for an unbounded queue. */
CORIO_API bool corio_queue_full(const corio_queue_t *q);

CORIO_END_DECLS

#endif
