/* Thread-safe future records, carved from 2 MiB chunks and recycled.
 *
 * An executor that is handed 100,000 jobs at once makes 100,000 futures,
 * and from malloc that is ten megabytes of fresh small pages, a fault each:
 * on a VM, where a fault costs over 10 us, that was a third of the submit
 * path. Here chunks after the first ask for transparent huge pages, as the
 * task arena's do, and only CORIO_FIRST_CHUNK_USE of the first is used.
 * Futures are made and dropped on any thread, so the arena is one per
 * process, behind a futex lock that is held for a few stores. When the last record comes back, every chunk but the first (on
 * small pages, kept warm) and one spare is unmapped: a burst's memory goes
 * back to the system once its futures are gone. Under AddressSanitizer
 * records are plain malloc blocks, so that use after free is still caught. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>

#define RECORD_SIZE ((sizeof(corio_ts_future_t) + 7) & ~(size_t)7)

#ifndef CORIO_ASAN

typedef struct chunk {
    struct chunk *next;
} chunk_t;

typedef struct free_record {
    struct free_record *next;
} free_record_t;

static struct {
    corio_flock_t lock;
    free_record_t *free;
    char *bump, *bump_end;
    chunk_t *first; /* on small pages, never unmapped */
    chunk_t *extra; /* the burst's chunks after the first, newest first */
    chunk_t *spare; /* one kept from the last burst, for the next */
    long live;
} arena;

/* A child forked while another thread held the lock would wait forever.
 * Registered at load, not on first use: a pthread_once that a fork
 * interrupts could register the handlers twice in the child. */
static void fork_prepare(void) { corio__flock_lock(&arena.lock); }
static void fork_release(void) { corio__flock_unlock(&arena.lock); }
__attribute__((constructor)) static void register_atfork(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

static void carve_from(chunk_t *c)
{
    arena.bump = (char *)c + RECORD_SIZE; /* the header takes one record's room */
    size_t used = c == arena.first ? CORIO_FIRST_CHUNK_USE : CORIO_TASK_CHUNK_SIZE;
    arena.bump_end = (char *)c + used;
}

static bool grow(void)
{
    chunk_t *c = arena.spare;
    arena.spare = NULL;
    if (!c && !(c = corio__map_chunk(arena.first != NULL)))
        return false;
    if (!arena.first) {
        arena.first = c;
    } else {
        c->next = arena.extra;
        arena.extra = c;
    }
    carve_from(c);
    return true;
}

/* Every record is back: the first chunk is carved anew, one other is kept
 * for the next burst, and the rest are returned for unmapping. */
static chunk_t *end_burst(void)
{
    chunk_t *rest = arena.extra->next;
    arena.spare = arena.extra;
    arena.extra = NULL;
    arena.free = NULL;
    carve_from(arena.first);
    return rest;
}

corio_ts_future_t *corio__ts_future_alloc(void)
{
    corio__flock_lock(&arena.lock);
    void *r = arena.free;
    if (r) {
        arena.free = arena.free->next;
    } else if (arena.bump_end - arena.bump >= (ptrdiff_t)RECORD_SIZE || grow()) {
        r = arena.bump;
        arena.bump += RECORD_SIZE;
    }
    arena.live += r != NULL;
    corio__flock_unlock(&arena.lock);
    return r;
}

void corio__ts_future_dealloc(corio_ts_future_t *tf)
{
    free_record_t *r = (free_record_t *)tf;
    chunk_t *unmap = NULL;
    corio__flock_lock(&arena.lock);
    r->next = arena.free;
    arena.free = r;
    if (--arena.live == 0 && arena.extra)
        unmap = end_burst();
    corio__flock_unlock(&arena.lock);
    while (unmap) { /* outside the lock: other threads go on meanwhile */
        chunk_t *next = unmap->next;
        munmap(unmap, CORIO_TASK_CHUNK_SIZE);
        unmap = next;
    }
}

#else

corio_ts_future_t *corio__ts_future_alloc(void) { return malloc(sizeof(corio_ts_future_t)); }
void corio__ts_future_dealloc(corio_ts_future_t *tf) { free(tf); }

#endif
