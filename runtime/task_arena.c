/* Task records, carved from 2 MiB chunks owned by the loop and recycled
 * through a free list.
 *
 * Spawning 100,000 tasks at once touches tens of megabytes of fresh memory,
 * and on this class of machine a 4 KiB page fault costs microseconds. Chunks
 * after the first ask for transparent huge pages, so one fault maps 2 MiB;
 * the first chunk stays on small pages, and only its first
 * CORIO_FIRST_CHUNK_USE bytes are used, so a program with a few tasks does
 * not pay 2 MiB of resident memory and a bulk spawner soon gets huge pages. A finished record goes back on the free
 * list and the next spawn takes it, warm in the cache.
 *
 * A task reference may outlive its loop, and once the loop is closed it may
 * be dropped on any thread: such records go on a lock-free list instead,
 * and the chunks are unmapped when the last record comes back. (While the
 * loop is open, references are dropped on its thread, as for every loop
 * future; the list would take a stray one all the same.) Under
 * AddressSanitizer records are plain malloc blocks, so that use after free
 * is still caught.
 *
 * When the loop closes, every record still referenced forgets it: the
 * chunks are walked, and a freed record is told from a live one by its
 * future's is_task flag, which a free clears. (Under AddressSanitizer the
 * live blocks are on a list instead.) */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define CHUNK_SIZE CORIO_TASK_CHUNK_SIZE
#define RECORD_SIZE CORIO_TASK_RECORD_SIZE
/* Far above any count of live records: before the loop closes, frees on
 * other threads can never bring the count to zero. */
#define LIVE_BIAS ((long)1 << 60)

typedef struct chunk_header {
    struct corio_task_arena *arena;
    struct chunk_header *next;
    size_t used; /* bytes carved from: CORIO_FIRST_CHUNK_USE for the first */
} chunk_header_t;

#define HEADER_SIZE ((sizeof(chunk_header_t) + 63) & ~(size_t)63)

/* The link sits past the future's flags, which keep telling a freed
 * record (is_task false) from a live one. */
typedef struct free_record {
    char flags[16];
    struct free_record *next;
} free_record_t;
_Static_assert(offsetof(corio_task_t, fut.is_task) < offsetof(free_record_t, next),
               "a free record's link must not cover is_task");

struct corio_task_arena {
    corio_loop_t *loop;
    free_record_t *local;            /* loop thread only */
    _Atomic(free_record_t *) remote; /* dropped elsewhere or after close */
    char *bump, *bump_end;
    chunk_header_t *chunks;
    long handed_out; /* loop thread: records given minus local frees */
    atomic_long live; /* LIVE_BIAS until close, then the records outstanding */
    atomic_bool closed;
#ifdef CORIO_ASAN
    corio_task_t *asan_live;
#endif
};

int corio__task_arena_new(corio_loop_t *loop)
{
    corio_task_arena_t *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->loop = loop;
    atomic_init(&a->live, LIVE_BIAS);
    loop->task_arena = a;
    return 0;
}

static void arena_destroy(corio_task_arena_t *a)
{
    chunk_header_t *c = a->chunks;
    while (c) {
        chunk_header_t *next = c->next;
        munmap(c, CHUNK_SIZE);
        c = next;
    }
    free(a);
}

void *corio__map_chunk(bool huge)
{
    size_t span = 2 * CHUNK_SIZE;
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *start = (char *)(((uintptr_t)p + CHUNK_SIZE - 1) & ~(CHUNK_SIZE - 1));
    if (start > p)
        munmap(p, (size_t)(start - p));
    char *end = start + CHUNK_SIZE;
    if (p + span > end)
        munmap(end, (size_t)(p + span - end));
    if (huge)
        madvise(start, CHUNK_SIZE, MADV_HUGEPAGE);
    return start;
}

#ifndef CORIO_ASAN

static int arena_grow(corio_task_arena_t *a)
{
    /* Huge pages after the first chunk: a loop that outgrew one spawns in bulk. */
    bool first = a->chunks == NULL;
    chunk_header_t *c = corio__map_chunk(!first);
    if (!c)
        return -ENOMEM;
    c->arena = a;
    c->next = a->chunks;
    c->used = first ? CORIO_FIRST_CHUNK_USE : CHUNK_SIZE;
    a->chunks = c;
    a->bump = (char *)c + HEADER_SIZE;
    a->bump_end = (char *)c + c->used;
    return 0;
}

static free_record_t *take_remote(corio_task_arena_t *a)
{
    if (!atomic_load_explicit(&a->remote, memory_order_relaxed))
        return NULL;
    return atomic_exchange_explicit(&a->remote, NULL, memory_order_acquire);
}

corio_task_t *corio__task_alloc(corio_loop_t *loop)
{
    corio_task_arena_t *a = loop->task_arena;
    free_record_t *r = a->local;
    if (corio_unlikely(!r))
        r = a->local = take_remote(a);
    if (r) {
        a->local = r->next;
        a->handed_out++;
        return (corio_task_t *)r;
    }
    if (a->bump_end - a->bump < (ptrdiff_t)RECORD_SIZE && arena_grow(a) < 0)
        return NULL;
    corio_task_t *t = (corio_task_t *)a->bump;
    a->bump += RECORD_SIZE;
    a->handed_out++;
    return t;
}

static corio_task_arena_t *arena_of(corio_task_t *t)
{
    return ((chunk_header_t *)((uintptr_t)t & ~(CHUNK_SIZE - 1)))->arena;
}

static void push_remote(corio_task_arena_t *a, free_record_t *r)
{
    r->next = atomic_load_explicit(&a->remote, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&a->remote, &r->next, r, memory_order_release,
                                                  memory_order_relaxed))
        ;
}

/* The records carved from c so far. */
static char *chunk_end(corio_task_arena_t *a, chunk_header_t *c)
{
    if (c == a->chunks)
        return a->bump;
    char *end = (char *)c + c->used;
    return end - (size_t)(end - ((char *)c + HEADER_SIZE)) % RECORD_SIZE;
}

void corio__task_arena_forget_loop(corio_loop_t *loop)
{
    corio_task_arena_t *a = loop->task_arena;
    if (!a)
        return;
    for (chunk_header_t *c = a->chunks; c; c = c->next) {
        char *end = chunk_end(a, c);
        for (char *p = (char *)c + HEADER_SIZE; p < end; p += RECORD_SIZE) {
            corio_task_t *t = (corio_task_t *)p;
            if (t->fut.is_task)
                t->fut.loop = NULL;
        }
    }
}

void corio__task_dealloc(corio_task_t *t)
{
    corio_task_arena_t *a = arena_of(t);
    t->fut.is_task = false; /* freed, for corio__task_arena_forget_loop */
    free_record_t *r = (free_record_t *)t;
    if (corio__tls_loop == a->loop && !atomic_load_explicit(&a->closed, memory_order_relaxed)) {
        r->next = a->local;
        a->local = r;
        a->handed_out--;
        return;
    }
    push_remote(a, r);
    if (atomic_fetch_sub_explicit(&a->live, 1, memory_order_acq_rel) == 1)
        arena_destroy(a);
}

#else /* ASan: plain blocks, so that use after free is caught */

corio_task_t *corio__task_alloc(corio_loop_t *loop)
{
    corio_task_arena_t *a = loop->task_arena;
    corio_task_t *t = malloc(sizeof(corio_task_t));
    if (!t)
        return NULL;
    t->arena = a;
    t->arena_prev = NULL;
    t->arena_next = a->asan_live;
    if (a->asan_live)
        a->asan_live->arena_prev = t;
    a->asan_live = t;
    return t;
}

/* Off the live list while the loop is open (loop thread); after close the
 * record forgot its arena, which is gone. */
void corio__task_dealloc(corio_task_t *t)
{
    corio_task_arena_t *a = t->arena;
    if (a) {
        if (t->arena_prev)
            t->arena_prev->arena_next = t->arena_next;
        else
            a->asan_live = t->arena_next;
        if (t->arena_next)
            t->arena_next->arena_prev = t->arena_prev;
    }
    free(t);
}

void corio__task_arena_forget_loop(corio_loop_t *loop)
{
    corio_task_arena_t *a = loop->task_arena;
    if (!a)
        return;
    for (corio_task_t *t = a->asan_live, *next; t; t = next) {
        next = t->arena_next;
        t->fut.loop = NULL;
        t->arena = NULL;
        t->arena_prev = t->arena_next = NULL;
    }
    a->asan_live = NULL;
}

#endif

/* Loop close: the chunks go now, or with the last record still referenced. */
void corio__task_arena_close(corio_loop_t *loop)
{
    corio_task_arena_t *a = loop->task_arena;
    if (!a)
        return;
    loop->task_arena = NULL;
    atomic_store_explicit(&a->closed, true, memory_order_release);
    long settle = a->handed_out - LIVE_BIAS;
    if (atomic_fetch_add_explicit(&a->live, settle, memory_order_acq_rel) + settle == 0)
        arena_destroy(a);
}
