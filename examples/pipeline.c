/* pipeline: pipeline decomposition, in two forms.
 *
 * 1. The classic form (concurrent.futures): three process pools of one
 *    worker each, chained by done-callbacks. When stage 1 finishes an item,
 *    its callback submits the result to stage 2's pool, and so on; the last
 *    callback collects. Nothing waits in between: the callbacks run in the
 *    pools' own threads as results arrive.
 * 2. The coroutine form (asyncio): one task per stage, joined by bounded
 *    queues; each task offloads its CPU work to an executor and awaits it.
 *    It is timed against running one stage at a time (each item through
 *    stage 1, 2 and 3 before the next starts), so the overlap shows.
 *
 *   pipeline [--n ITEMS] [--form classic|coroutine|both]
 *
 * Python original: python-baselines/pipeline.py (the classic form). */
#include <corio.h>
#include <corio/queue.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_SIZE 16 /* bounded: a fast stage cannot run far ahead of a slow one */

/* The stages of the Python original. */
static int stage1(const corio_value_t *arg, corio_value_t *result)
{
    *result = corio_value_int(corio_value_as_int(*arg) * 2 + 1);
    return 0;
}

static int stage2(const corio_value_t *arg, corio_value_t *result)
{
    intptr_t x = corio_value_as_int(*arg) % 1000, s = 0;
    for (intptr_t i = 0; i < x; i++)
        s += i * i;
    *result = corio_value_int(s);
    return 0;
}

static int stage3(const corio_value_t *arg, corio_value_t *result)
{
    *result = corio_value_int(corio_value_as_int(*arg) % 1000003);
    return 0;
}

static const corio_executor_fn stages[3] = {stage1, stage2, stage3};

/* ---- 1. three process pools chained by done-callbacks ---------------------- */

static void on_stage_done(corio_future_t *f, void *arg);

/* Shared by the callbacks, which run in the pools' threads. */
static struct classic {
    corio_executor_t *pools[3];
    corio_future_t **futures[3]; /* per stage and item, released at the end */
    pthread_mutex_t mu;
    pthread_cond_t all_done;
    size_t collected, n;
    int64_t sum;
    int error;
} g;

/* Submits item's value to stage s and chains the next callback. */
static int chain(size_t item, int s, corio_value_t v)
{
    int rc = corio_executor_submit(g.pools[s], stages[s], v, &g.futures[s][item]);
    if (rc == 0)
        rc = corio_future_add_done_callback(g.futures[s][item], on_stage_done,
                                            (void *)(uintptr_t)(item * 4 + (size_t)s + 1));
    return rc;
}

static void finish_item(int64_t value, int error)
{
    pthread_mutex_lock(&g.mu);
    g.sum += value;
    if (error && !g.error)
        g.error = error;
    if (++g.collected == g.n)
        pthread_cond_signal(&g.all_done);
    pthread_mutex_unlock(&g.mu);
}

/* The one callback for every stage; arg holds the item and the next stage.
 * It keeps its reference to f: a callback added to a future that is done
 * already runs inside corio_future_add_done_callback, and dropping the last
 * reference there would free f under that call. */
static void on_stage_done(corio_future_t *f, void *arg)
{
    size_t item = (uintptr_t)arg / 4;
    int next = (int)((uintptr_t)arg % 4);
    corio_value_t v;
    int rc = corio_future_result(f, &v);
    if (rc < 0 || next == 3) {
        finish_item(rc < 0 ? 0 : corio_value_as_int(v), rc);
        return;
    }
    rc = chain(item, next, v);
    if (rc < 0)
        finish_item(0, rc);
}

static int run_classic(size_t n, double *seconds)
{
    g.n = n;
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.all_done, NULL);
    corio_process_pool_options_t o = {.max_workers = 1};
    for (int i = 0; i < 3; i++) {
        if (!(g.futures[i] = calloc(n, sizeof(corio_future_t *))))
            return -ENOMEM;
        if ((g.error = corio_process_pool_new(&g.pools[i], &o)) < 0)
            return g.error;
    }
    int64_t t0 = corio_now();
    for (size_t i = 0; i < n; i++) {
        int rc = chain(i, 0, corio_value_int((intptr_t)i));
        if (rc < 0)
            finish_item(0, rc);
    }
    pthread_mutex_lock(&g.mu);
    while (g.collected < n)
        pthread_cond_wait(&g.all_done, &g.mu);
    pthread_mutex_unlock(&g.mu);
    *seconds = (double)(corio_now() - t0) / 1e9;
    /* In stage order: a pool is shut down only once nothing more can reach it. */
    for (int i = 0; i < 3; i++)
        corio_executor_free(g.pools[i]);
    for (int i = 0; i < 3; i++) {
        for (size_t k = 0; k < n; k++)
            if (g.futures[i][k])
                corio_future_unref(g.futures[i][k]);
        free(g.futures[i]);
    }
    return g.error;
}

/* ---- 2. coroutines joined by bounded queues --------------------------------- */

typedef struct stage_task {
    int index;
    corio_executor_t *ex;
    corio_queue_t *in, *out;
} stage_task_t;

typedef struct coro_run {
    size_t n;
    bool pipelined;
    int64_t sum;
    size_t collected;
    double seconds;
} coro_run_t;

/* Runs one stage's CPU work on the executor; the loop runs other tasks
 * while this one waits. */
static int offload(corio_executor_t *ex, int stage, intptr_t x, intptr_t *out)
{
    corio_future_t *f;
    int rc = corio_run_in_executor(ex, stages[stage], corio_value_int(x), &f);
    if (rc < 0)
        return rc;
    corio_value_t v;
    rc = corio_await(f, &v);
    *out = corio_value_as_int(v);
    corio_future_unref(f);
    return rc;
}

/* A stage: take an item, compute, pass it on. When its input queue is shut
 * down and drained, it shuts down its output, so the end flows downstream
 * and no item is left behind. */
static intptr_t stage_main(void *arg)
{
    stage_task_t *s = arg;
    corio_value_t item;
    int rc;
    while ((rc = corio_queue_get(s->in, &item)) == 0) {
        intptr_t y;
        if ((rc = offload(s->ex, s->index, corio_value_as_int(item), &y)) < 0)
            break;
        if ((rc = corio_queue_put(s->out, corio_value_int(y))) < 0)
            break;
    }
    corio_queue_shutdown(s->out, false);
    return rc == CORIO_EQUEUESHUTDOWN ? 0 : rc;
}

typedef struct feeder {
    corio_queue_t *q;
    size_t n;
} feeder_t;

/* Its own task: the collector must drain the last queue while items are
 * still going in, or every bounded queue fills up and all stages wait. */
static intptr_t feed_main(void *arg)
{
    feeder_t *f = arg;
    for (size_t i = 0; i < f->n; i++) {
        int rc = corio_queue_put(f->q, corio_value_int((intptr_t)i));
        if (rc < 0)
            return rc;
    }
    return corio_queue_shutdown(f->q, false);
}

static intptr_t pipelined(coro_run_t *r, corio_executor_t *ex)
{
    corio_queue_t *q[4] = {NULL, NULL, NULL, NULL};
    stage_task_t st[3];
    feeder_t fd = {NULL, r->n};
    corio_task_t *t[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++)
        rc = corio_queue_new(&q[i], CORIO_QUEUE_FIFO, QUEUE_SIZE);
    for (int i = 0; i < 3 && rc == 0; i++) {
        st[i] = (stage_task_t){i, ex, q[i], q[i + 1]};
        rc = corio_spawn(NULL, &t[i], stage_main, &st[i], NULL);
    }
    fd.q = q[0];
    if (rc == 0)
        rc = corio_spawn(NULL, &t[3], feed_main, &fd, NULL);
    corio_value_t v;
    while (rc == 0 && corio_queue_get(q[3], &v) == 0) {
        r->sum += corio_value_as_int(v);
        r->collected++;
    }
    for (int i = 0; i < 4; i++) {
        corio_value_t tv = {0};
        if (t[i] && corio_task_await(t[i], &tv) < 0 && rc == 0)
            rc = -EPIPE;
        if (t[i])
            corio_task_release(t[i]);
    }
    for (int i = 0; i < 4; i++)
        if (q[i])
            corio_queue_free(q[i]);
    return rc;
}

/* One stage at a time: the same work and hand-offs, no overlap. */
static intptr_t one_at_a_time(coro_run_t *r, corio_executor_t *ex)
{
    for (size_t i = 0; i < r->n; i++) {
        intptr_t x = (intptr_t)i;
        for (int s = 0; s < 3; s++) {
            int rc = offload(ex, s, x, &x);
            if (rc < 0)
                return rc;
        }
        r->sum += x;
        r->collected++;
    }
    return 0;
}

static intptr_t coro_main(void *arg)
{
    coro_run_t *r = arg;
    corio_executor_t *ex;
    corio_thread_pool_options_t o = {.max_workers = 3};
    int rc = corio_thread_pool_new(&ex, &o);
    if (rc < 0)
        return rc;
    int64_t t0 = corio_now();
    intptr_t out = r->pipelined ? pipelined(r, ex) : one_at_a_time(r, ex);
    r->seconds = (double)(corio_now() - t0) / 1e9;
    corio_executor_free(ex);
    return out;
}

static int run_coroutine(size_t n, bool pipe, coro_run_t *r)
{
    *r = (coro_run_t){.n = n, .pipelined = pipe};
    intptr_t rc = corio_run(coro_main, r);
    if (rc == 0 && r->collected != n)
        rc = -EPIPE;
    return (int)rc;
}

/* ---- main --------------------------------------------------------------------- */

static int64_t serial_checksum(size_t n)
{
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        corio_value_t v = corio_value_int((intptr_t)i);
        for (int s = 0; s < 3; s++)
            stages[s](&v, &v);
        sum += corio_value_as_int(v);
    }
    return sum;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "pipeline: %s: %s\n", what, corio_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    size_t n = 10000;
    const char *form = "both";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--n") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--form") == 0)
            form = argv[i + 1];
    }
    bool classic = strcmp(form, "coroutine") != 0, coro = strcmp(form, "classic") != 0;
    if (n == 0) {
        fprintf(stderr, "usage: pipeline [--n ITEMS>0] [--form classic|coroutine|both]\n");
        return 2;
    }
    int64_t expect = serial_checksum(n);
    printf("pipeline: %zu items through 3 stages (x*2+1, a sum of squares, x mod 1000003)\n\n",
           n);
    if (classic) {
        double s;
        int rc = run_classic(n, &s);
        if (rc < 0)
            return fail("classic", rc);
        printf("classic: 3 process pools chained by done-callbacks\n");
        printf("  %zu items in %.3f s (%.0f items/s), %zu collected\n", n, s, (double)n / s,
               g.collected);
        printf("  each item crosses to a worker process and back three times: the stages\n"
               "  are tiny, so the time is the hand-offs, overlapped across the 3 pools.\n");
        printf("checksum %lld\n", (long long)g.sum);
        if (g.sum != expect)
            return fail("classic", -EDOM);
    }
    if (coro) {
        coro_run_t one, pipe;
        int rc = run_coroutine(n, false, &one);
        if (rc < 0)
            return fail("one stage at a time", rc);
        if ((rc = run_coroutine(n, true, &pipe)) < 0)
            return fail("pipelined", rc);
        printf("\ncoroutine: 3 stage tasks joined by queues of %d, CPU work on 3 threads\n",
               QUEUE_SIZE);
        printf("  one stage at a time: %.3f s (%.0f items/s)\n", one.seconds,
               (double)n / one.seconds);
        printf("  pipelined:           %.3f s (%.0f items/s), %.2fx the throughput\n",
               pipe.seconds, (double)n / pipe.seconds, one.seconds / pipe.seconds);
        printf("  while stage 2 works on item i, stage 1 already runs item i+1: the stages\n"
               "  overlap, and the bounded queues stop a fast stage from running ahead.\n");
        printf("checksum %lld\n", (long long)pipe.sum);
        if (pipe.sum != expect || one.sum != expect)
            return fail("coroutine", -EDOM);
    }
    return 0;
}
