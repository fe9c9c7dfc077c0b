/* Timers: a binary min-heap of handles ordered by (when, seq). The sequence
 * number makes equal deadlines fire first-in first-out. Insert and remove are
 * O(log n); a loop turn only looks at the top. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

static inline bool before(const corio_handle_t *a, const corio_handle_t *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(corio_handle_t **heap, uint32_t i, corio_handle_t *h)
{
    heap[i] = h;
    h->heap_index = i;
}

static void sift_up(corio_handle_t **heap, uint32_t i)
{
    corio_handle_t *h = heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(h, heap[parent]))
            break;
        place(heap, i, heap[parent]);
        i = parent;
    }
    place(heap, i, h);
}

static void sift_down(corio_handle_t **heap, uint32_t n, uint32_t i)
{
    corio_handle_t *h = heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && before(heap[child + 1], heap[child]))
            child++;
        if (!before(heap[child], h))
            break;
        place(heap, i, heap[child]);
        i = child;
    }
    place(heap, i, h);
}

int corio__timer_insert(corio_loop_t *loop, corio_handle_t *h)
{
    if (loop->nheap == loop->heapcap) {
        uint32_t cap = loop->heapcap ? loop->heapcap * 2 : 64;
        corio_handle_t **n = corio__fault_hit(CORIO_FAULT_TIMER)
                                 ? NULL
                                 : realloc(loop->heap, (size_t)cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        loop->heap = n;
        loop->heapcap = cap;
    }
    h->seq = loop->timer_seq++;
    h->state = CORIO_H_TIMER;
    place(loop->heap, loop->nheap++, h);
    sift_up(loop->heap, h->heap_index);
    return 0;
}

void corio__timer_remove(corio_loop_t *loop, corio_handle_t *h)
{
    uint32_t i = h->heap_index;
    corio_handle_t *last = loop->heap[--loop->nheap];
    h->state = CORIO_H_IDLE;
    if (i == loop->nheap)
        return;
    place(loop->heap, i, last);
    if (i > 0 && before(last, loop->heap[(i - 1) / 2]))
        sift_up(loop->heap, i);
    else
        sift_down(loop->heap, loop->nheap, i);
}

corio_handle_t *corio__timer_peek(corio_loop_t *loop)
{
    return loop->nheap ? loop->heap[0] : NULL;
}

void corio__timer_free(corio_loop_t *loop)
{
    free(loop->heap);
    loop->heap = NULL;
    loop->nheap = loop->heapcap = 0;
}
