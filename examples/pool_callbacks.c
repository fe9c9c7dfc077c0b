/* pool_callbacks: Pool.map, Pool.map_async and Pool.apply_async with
 * callbacks, on corio's process pool.
 *
 * Python original (examples/python/pool_callbacks.py):
 *     pool.map(square, range(n))
 *     pool.map_async(square, range(n), callback=got_list)
 *     pool.apply_async(cube, (x,), callback=got_one)
 * In corio, map is corio_executor_map; the async forms are submits whose
 * futures carry done-callbacks, which run in the pool's thread as each
 * result arrives, while the main thread is free. The callbacks never drop
 * the future's reference: one added to a future that is done already runs
 * inside corio_future_add_done_callback, which still uses the future after.
 *
 *   pool_callbacks [--n N] [--workers W] */
#include <corio.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPLY_COUNT 8

static int square(const corio_value_t *arg, corio_value_t *result)
{
    intptr_t x = corio_value_as_int(*arg);
    *result = corio_value_int(x * x);
    return 0;
}

static int cube(const corio_value_t *arg, corio_value_t *result)
{
    intptr_t x = corio_value_as_int(*arg);
    *result = corio_value_int(x * x * x);
    return 0;
}

/* A one-shot latch: AsyncResult.wait(). */
typedef struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left;
} latch_t;

static void latch_count_down(latch_t *l)
{
    pthread_mutex_lock(&l->mu);
    if (--l->left == 0)
        pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void latch_wait(latch_t *l)
{
    pthread_mutex_lock(&l->mu);
    while (l->left > 0)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

static int64_t do_map(corio_executor_t *ex, const corio_value_t *in, size_t n)
{
    corio_map_iter_t *it;
    int64_t sum = 0;
    if (corio_executor_map(ex, square, in, n, 64, -1, &it) < 0)
        return -1;
    corio_value_t v;
    while (corio_map_next(it, &v) == 1)
        sum += corio_value_as_int(v);
    corio_map_free(it);
    return sum;
}

/* ---- map_async: one callback with the whole list, once it is complete ---- */

typedef struct map_async {
    int64_t *results;
    size_t n;
    atomic_size_t left;
    latch_t done;
    int64_t sum; /* written by the callback on the whole list */
} map_async_t;

typedef struct slot {
    map_async_t *m;
    size_t index;
    corio_future_t *f; /* released after the wait, never in a callback */
} slot_t;

/* The user's callback: it sees the list only when every item is in. */
static void got_list(map_async_t *m, const int64_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        m->sum += list[i];
    printf("map_async: callback got the whole list of %zu results\n", n);
}

static void on_square(corio_future_t *f, void *arg)
{
    slot_t *s = arg;
    corio_value_t v = {0};
    corio_future_result(f, &v);
    s->m->results[s->index] = corio_value_as_int(v);
    /* The last item in delivers the list; acq_rel orders every slot's
     * write before the reader. */
    if (atomic_fetch_sub_explicit(&s->m->left, 1, memory_order_acq_rel) == 1) {
        got_list(s->m, s->m->results, s->m->n);
        latch_count_down(&s->m->done);
    }
}

static int64_t do_map_async(corio_executor_t *ex, size_t n)
{
    map_async_t m = {.results = calloc(n, sizeof(int64_t)), .n = n,
                     .done = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1}};
    slot_t *slots = calloc(n, sizeof *slots);
    if (!m.results || !slots)
        return -1;
    atomic_init(&m.left, n);
    for (size_t i = 0; i < n; i++) {
        slots[i] = (slot_t){&m, i, NULL};
        if (corio_executor_submit(ex, square, corio_value_int((intptr_t)i), &slots[i].f) < 0 ||
            corio_future_add_done_callback(slots[i].f, on_square, &slots[i]) < 0)
            return -1;
    }
    printf("map_async: %zu submitted, main thread free meanwhile\n", n);
    latch_wait(&m.done);
    for (size_t i = 0; i < n; i++)
        corio_future_unref(slots[i].f);
    free(slots);
    free(m.results);
    return m.sum;
}

/* ---- apply_async: one callback per result, in completion order ------------- */

typedef struct apply_async {
    pthread_mutex_t mu;
    int64_t order[APPLY_COUNT];
    int got;
    latch_t done;
} apply_async_t;

static void got_one(corio_future_t *f, void *arg)
{
    apply_async_t *a = arg;
    corio_value_t v = {0};
    corio_future_result(f, &v);
    pthread_mutex_lock(&a->mu);
    a->order[a->got++] = corio_value_as_int(v);
    pthread_mutex_unlock(&a->mu);
    latch_count_down(&a->done);
}

static int64_t do_apply_async(corio_executor_t *ex)
{
    apply_async_t a = {.mu = PTHREAD_MUTEX_INITIALIZER,
                       .done = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, APPLY_COUNT}};
    corio_future_t *fs[APPLY_COUNT];
    for (int x = 0; x < APPLY_COUNT; x++) {
        if (corio_executor_submit(ex, cube, corio_value_int(x), &fs[x]) < 0 ||
            corio_future_add_done_callback(fs[x], got_one, &a) < 0)
            return -1;
    }
    latch_wait(&a.done);
    for (int x = 0; x < APPLY_COUNT; x++)
        corio_future_unref(fs[x]);
    int64_t sum = 0;
    printf("apply_async: results in the order their callbacks ran:");
    for (int i = 0; i < APPLY_COUNT; i++) {
        printf(" %lld", (long long)a.order[i]);
        sum += a.order[i];
    }
    printf("\n");
    return sum;
}

int main(int argc, char **argv)
{
    size_t n = 10000;
    int workers = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--n") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--workers") == 0)
            workers = atoi(argv[i + 1]);
    }
    if (n == 0 || workers <= 0) {
        fprintf(stderr, "usage: pool_callbacks [--n N>0] [--workers W>0]\n");
        return 2;
    }
    corio_value_t *in = malloc(n * sizeof *in);
    if (!in)
        return 1;
    for (size_t i = 0; i < n; i++)
        in[i] = corio_value_int((intptr_t)i);
    corio_executor_t *ex;
    corio_process_pool_options_t o = {.max_workers = workers};
    int rc = corio_process_pool_new(&ex, &o);
    if (rc < 0) {
        fprintf(stderr, "pool_callbacks: %s\n", corio_strerror(rc));
        return 1;
    }
    printf("a process pool of %d workers, squares of 0..%zu\n", workers, n - 1);
    int64_t s1 = do_map(ex, in, n);
    printf("map: sum %lld (results in input order, the caller blocks)\n", (long long)s1);
    int64_t s2 = do_map_async(ex, n);
    printf("map_async: sum %lld\n", (long long)s2);
    int64_t s3 = do_apply_async(ex);
    printf("apply_async: sum of cubes of 0..%d: %lld\n", APPLY_COUNT - 1, (long long)s3);
    corio_executor_free(ex);
    free(in);
    printf("The async forms return at once; a callback runs when its result\n"
           "arrives, in the pool's thread, so it must be short and thread-safe.\n");
    return s1 == s2 && s1 >= 0 && s3 >= 0 ? 0 : 1;
}
