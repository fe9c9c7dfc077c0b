/* Executor.map: chunks submitted as results are consumed, so at most a
 * window of chunks is in flight whatever the input length.
 *
 * Every chunk in flight costs the pool wake-ups (the submit, a worker, the
 * reader), so the window is refilled by halves, and small chunks get a wider
 * window: one wake-up then serves many chunks. The window is at least four
 * chunks per worker, and wider only while the chunks in flight hold at most
 * WINDOW_ITEMS items and WINDOW_BYTES bytes of arguments. */
#include "executor_internal.h"
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#define WINDOW_ITEMS 65536
#define WINDOW_BYTES (4u << 20)
#define WINDOW_MAX_CHUNKS 256

struct corio_map_iter {
    corio_executor_t *ex;
    corio_executor_fn fn;
    const corio_value_t *inputs;
    size_t n, chunksize, nchunks;
    size_t submitted, read; /* chunk indexes */
    size_t window, min_window; /* chunks in flight: at most, and always allowed */
    size_t bytes;              /* argument bytes of the chunks in flight */
    corio_future_t **ring; /* window slots; NULL with ring_rc when submit failed */
    int *ring_rc;
    size_t *ring_bytes;
    corio_batch_result_t *cur; /* the chunk being read */
    size_t pos;
    int fail_rc; /* a failed chunk: reported once per item */
    size_t fail_left;
    int64_t deadline;
    bool dead;
};

static bool window_open(const corio_map_iter_t *it)
{
    size_t inflight = it->submitted - it->read;
    return it->submitted < it->nchunks && inflight < it->window &&
           (inflight < it->min_window || it->bytes < WINDOW_BYTES);
}

static void submit_chunks(corio_map_iter_t *it)
{
    while (window_open(it)) {
        size_t c = it->submitted++, first = c * it->chunksize;
        size_t k = it->n - first < it->chunksize ? it->n - first : it->chunksize;
        corio_job_t *job;
        size_t slot = c % it->window;
        it->ring[slot] = NULL;
        it->ring_bytes[slot] = 0;
        it->ring_rc[slot] = corio__job_new(it->fn, it->inputs + first, k, true, &job);
        if (it->ring_rc[slot] < 0)
            continue;
        it->ring_bytes[slot] = job->nbytes;
        it->bytes += job->nbytes;
        corio_future_t *f = corio_future_ref(job->fut);
        it->ring_rc[slot] = it->ex->ops->submit(it->ex, job);
        if (it->ring_rc[slot] < 0) {
            corio_future_cancel(f);
            corio_future_unref(f);
            corio__job_free(job);
            continue;
        }
        it->ring[slot] = f;
    }
}

int corio_executor_map(corio_executor_t *ex, corio_executor_fn fn, const corio_value_t *inputs,
                       size_t n, size_t chunksize, int64_t timeout_ns, corio_map_iter_t **out)
{
    if (!ex || !fn || !out || (n && !inputs))
        return -EINVAL;
    corio_map_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return -ENOMEM;
    it->ex = ex;
    it->fn = fn;
    it->inputs = inputs;
    it->n = n;
    it->chunksize = chunksize ? chunksize : 1;
    it->nchunks = (n + it->chunksize - 1) / it->chunksize;
    it->min_window = 4 * (size_t)(ex->max_workers > 0 ? ex->max_workers : 1);
    size_t wide = WINDOW_ITEMS / it->chunksize;
    wide = wide < WINDOW_MAX_CHUNKS ? wide : WINDOW_MAX_CHUNKS;
    it->window = wide > it->min_window ? wide : it->min_window;
    it->deadline = corio__timeout_deadline(timeout_ns);
    it->ring = calloc(it->window, sizeof *it->ring);
    it->ring_rc = calloc(it->window, sizeof *it->ring_rc);
    it->ring_bytes = calloc(it->window, sizeof *it->ring_bytes);
    if (!it->ring || !it->ring_rc || !it->ring_bytes) {
        corio_map_free(it);
        return -ENOMEM;
    }
    submit_chunks(it);
    *out = it;
    return 0;
}

/* Frees a chunk's results once it completes, whoever completes it. */
static void drop_chunk(corio_future_t *f, void *arg)
{
    (void)arg;
    corio_value_t v;
    if (corio_future_state(f) == CORIO_FUTURE_CANCELLED)
        return;
    if (corio_future_take_result(f, &v) == 0)
        corio__batch_free(v.ptr, 0);
}

static void cancel_rest(corio_map_iter_t *it)
{
    for (size_t c = it->read; c < it->submitted; c++) {
        corio_future_t *f = it->ring[c % it->window];
        if (!f)
            continue;
        corio_future_cancel(f);
        if (corio_future_add_done_callback(f, drop_chunk, NULL) < 0)
            corio_future_exception(f, NULL);
        corio_future_unref(f);
        it->ring[c % it->window] = NULL;
    }
    it->read = it->submitted = it->nchunks;
    it->dead = true;
}

static int item_from_chunk(corio_map_iter_t *it, corio_value_t *out)
{
    corio_batch_item_t item = corio__batch_item(it->cur, it->pos++);
    if (item.rc < 0)
        return item.rc;
    *out = item.v; /* the caller's now: map_free frees only items from pos on */
    return 1;
}

/* The timeout left before the map's deadline: -1 for none, 0 once past. */
static int64_t time_left(const corio_map_iter_t *it)
{
    return corio__timeout_for(it->deadline);
}

/* Awaits the next chunk; 0 when it is current, else an error for the map. */
static int next_chunk(corio_map_iter_t *it)
{
    size_t c = it->read, slot = c % it->window;
    size_t k = it->n - c * it->chunksize < it->chunksize ? it->n - c * it->chunksize
                                                        : it->chunksize;
    corio_future_t *f = it->ring[slot];
    int rc = it->ring_rc[slot];
    if (f) {
        corio_value_t v;
        rc = corio_await_timeout(f, time_left(it), &v);
        /* The map's deadline only if the chunk is not done: a chunk may
         * itself fail with -ETIMEDOUT (a process pool's task deadline), or
         * be done although the deadline has passed. */
        bool done = corio_future_done(f);
        if ((rc == -ETIMEDOUT && !done) ||
            (rc == -ECANCELED && corio_current_task() && !corio_future_cancelled(f)))
            return rc; /* the map's deadline, or the awaiting task's cancellation */
        if (done)
            rc = corio_future_take_result(f, &v);
        corio_future_unref(f);
        it->ring[slot] = NULL;
        if (rc == 0) {
            it->cur = v.ptr;
            it->pos = 0;
        }
    }
    it->read++;
    it->bytes -= it->ring_bytes[slot];
    if (rc < 0) {
        it->fail_rc = rc;
        it->fail_left = k;
    }
    if (it->submitted - it->read <= it->window / 2)
        submit_chunks(it);
    return 0;
}

/* Everything but the next item of the current chunk. */
static __attribute__((noinline)) int map_next_slow(corio_map_iter_t *it, corio_value_t *out)
{
    for (;;) {
        if (it->fail_left) {
            it->fail_left--;
            return it->fail_rc;
        }
        if (it->cur && it->pos < it->cur->n)
            return item_from_chunk(it, out);
        free(it->cur);
        it->cur = NULL;
        if (it->dead || it->read == it->nchunks)
            return 0;
        int rc = next_chunk(it);
        if (rc < 0) {
            cancel_rest(it);
            return rc;
        }
    }
}

int corio_map_next(corio_map_iter_t *it, corio_value_t *out)
{
    if (!it || !out)
        return -EINVAL;
    /* The common case costs a call without a stack frame: maps of tiny
     * tasks spend most of their time here. */
    if (!it->fail_left && it->cur && it->pos < it->cur->n)
        return item_from_chunk(it, out);
    return map_next_slow(it, out);
}

void corio_map_free(corio_map_iter_t *it)
{
    if (!it)
        return;
    if (it->ring)
        cancel_rest(it);
    corio__batch_free(it->cur, it->pos);
    free(it->ring);
    free(it->ring_rc);
    free(it->ring_bytes);
    free(it);
}
