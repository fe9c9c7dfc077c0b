/* ThreadPoolExecutor: one locked FIFO of jobs; a worker thread is started
 * when a job arrives and no worker is idle, up to max_workers.
 *
 * Wake-ups cost more than tiny tasks: while tasks are short (a moving
 * average under 20 us), a job is left to the workers already awake unless
 * the queue grows long, and a worker that takes a batch and sees more
 * queued wakes one idle peer, so sleeping workers join per batch, not per
 * task. Long tasks wake a worker for every job, as Python does. */
#include "executor_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct thread_pool thread_pool_t;

typedef struct tp_worker {
    thread_pool_t *p;
    pthread_t thread;
    atomic_llong busy_since; /* when its current batch started; 0 idle */
} tp_worker_t;

struct thread_pool {
    corio_executor_t base;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* jobs or shutdown */
    corio_job_queue_t q;
    tp_worker_t *threads;
    int nthreads, nidle, nlive;
    bool shutdown, broken;
    atomic_llong task_ns; /* moving average of a task's run time */
    corio_initializer_fn initializer;
    corio_value_t initarg;
    char prefix[16];
};

/* Fails every queued job; called with the lock held. */
static void fail_queued(thread_pool_t *p, int code, const char *msg)
{
    corio_job_t *j;
    while ((j = corio__jq_pop(&p->q)))
        corio__job_fail(j, code, msg);
}

static bool run_initializer(thread_pool_t *p)
{
    if (!p->initializer || p->initializer(&p->initarg) == 0)
        return true;
    pthread_mutex_lock(&p->mu);
    p->broken = true;
    fail_queued(p, CORIO_EBROKEN, "a thread pool initializer failed");
    pthread_mutex_unlock(&p->mu);
    return false;
}

static bool tasks_short(thread_pool_t *p)
{
    long long ns = atomic_load_explicit(&p->task_ns, memory_order_relaxed);
    return ns > 0 && ns <= 20000;
}

/* True when some awake worker will take a new job soon: it is between
 * batches, or its batch has run less than a millisecond. */
static bool worker_soon_free(thread_pool_t *p)
{
    int64_t now = corio_now();
    for (int i = 0; i < p->nthreads; i++) {
        long long t = atomic_load_explicit(&p->threads[i].busy_since, memory_order_relaxed);
        if (t == 0 || (t > 0 && now - t < CORIO_NS_PER_MS))
            return true;
    }
    return false;
}

/* True when a job just queued needs another worker; lock held. */
static bool needs_worker(thread_pool_t *p)
{
    int awake = p->nlive - p->nidle;
    return awake <= 0 || !tasks_short(p) || p->q.len > (size_t)awake * 64 ||
           !worker_soon_free(p);
}

/* How many queued jobs a worker takes at once; called with the lock held.
 * Taking several saves lock round trips for tiny tasks; a long task would
 * hold the others back from idle workers, so only when tasks are short. */
static size_t batch_size(thread_pool_t *p)
{
    if (!tasks_short(p) || p->q.len < 4 * (size_t)p->nthreads)
        return 1;
    size_t share = p->q.len / (2 * (size_t)p->nthreads);
    return share < 128 ? share : 128;
}

/* Runs a batch; the average task time is measured per batch, since the
 * clock costs as much as a tiny task. t0: when the batch was taken. */
static void run_jobs(thread_pool_t *p, corio_job_t *j, int64_t t0)
{
    long long n = 0;
    while (j) {
        corio_job_t *next = j->next;
        if (corio_future_set_running_or_notify_cancel(j->fut) == 0) {
            corio__job_run(j);
            n++;
        }
        corio__job_free(j);
        j = next;
    }
    if (n == 0)
        return;
    long long took = (corio_now() - t0) / n + 1;
    long long avg = atomic_load_explicit(&p->task_ns, memory_order_relaxed);
    atomic_store_explicit(&p->task_ns, avg ? (7 * avg + took) / 8 : took, memory_order_relaxed);
}

static void *worker_main(void *arg)
{
    tp_worker_t *self = arg;
    thread_pool_t *p = self->p;
    if (run_initializer(p)) {
        pthread_mutex_lock(&p->mu);
        for (;;) {
            if (!p->q.head && (p->shutdown || p->broken))
                break;
            if (!p->q.head) {
                p->nidle++;
                atomic_store_explicit(&self->busy_since, -1, memory_order_relaxed);
                pthread_cond_wait(&p->cv, &p->mu);
                atomic_store_explicit(&self->busy_since, 0, memory_order_relaxed);
                p->nidle--;
                continue;
            }
            corio_job_t *first = corio__jq_pop(&p->q), *last = first;
            for (size_t k = batch_size(p); k > 1 && p->q.head; k--)
                last = last->next = corio__jq_pop(&p->q);
            if (p->q.head && p->nidle > 0)
                pthread_cond_signal(&p->cv); /* more for an idle peer */
            int64_t t0 = corio_now();
            atomic_store_explicit(&self->busy_since, t0, memory_order_relaxed);
            pthread_mutex_unlock(&p->mu);
            run_jobs(p, first, t0);
            pthread_mutex_lock(&p->mu);
            atomic_store_explicit(&self->busy_since, 0, memory_order_relaxed);
        }
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    p->nlive--;
    atomic_store_explicit(&self->busy_since, -1, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Starts one worker; called with the lock held. */
static int start_worker(thread_pool_t *p)
{
    sigset_t old;
    corio__block_signals(&old);
    tp_worker_t *w = &p->threads[p->nthreads];
    w->p = p;
    atomic_init(&w->busy_since, 0);
    pthread_t t;
    int rc = pthread_create(&t, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    char name[16];
    snprintf(name, sizeof name, "%.10s_%d", p->prefix, p->nthreads);
    pthread_setname_np(t, name);
    w->thread = t;
    p->nthreads++;
    p->nlive++;
    return 0;
}

static int tp_submit(corio_executor_t *ex, corio_job_t *job)
{
    thread_pool_t *p = (thread_pool_t *)ex;
    pthread_mutex_lock(&p->mu);
    int rc = p->broken ? CORIO_EBROKEN : p->shutdown ? CORIO_ESHUTDOWN : 0;
    bool wake = rc == 0 && needs_worker(p);
    if (wake && p->nidle <= (int)p->q.len && p->nthreads < ex->max_workers) {
        rc = start_worker(p);
        if (rc < 0 && p->nthreads > 0)
            rc = 0; /* the running workers will take the job */
    }
    if (rc == 0) {
        corio__jq_push(&p->q, job);
        if (wake && p->nidle > 0)
            pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int tp_shutdown(corio_executor_t *ex, bool wait, bool cancel_futures)
{
    thread_pool_t *p = (thread_pool_t *)ex;
    pthread_mutex_lock(&p->mu);
    p->shutdown = true;
    if (cancel_futures)
        fail_queued(p, -ECANCELED, NULL);
    pthread_cond_broadcast(&p->cv);
    int n = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    if (!wait)
        return 0;
    /* Only shutdown joins, and threads are only added before shutdown. */
    for (int i = 0; i < n; i++)
        if (p->threads[i].p) {
            pthread_join(p->threads[i].thread, NULL);
            p->threads[i].p = NULL;
        }
    return 0;
}

static void tp_destroy(corio_executor_t *ex)
{
    thread_pool_t *p = (thread_pool_t *)ex;
    pthread_mutex_lock(&p->mu);
    fail_queued(p, -ECANCELED, NULL);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

static int tp_workers(corio_executor_t *ex)
{
    thread_pool_t *p = (thread_pool_t *)ex;
    pthread_mutex_lock(&p->mu);
    int n = p->nlive;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static const corio_executor_ops_t thread_pool_ops = {
    .submit = tp_submit,
    .shutdown = tp_shutdown,
    .destroy = tp_destroy,
    .workers = tp_workers,
};

int corio_thread_pool_new(corio_executor_t **out, const corio_thread_pool_options_t *opts)
{
    corio_thread_pool_options_t o = {0};
    if (opts)
        o = *opts;
    if (!out || o.max_workers < 0)
        return -EINVAL;
    if (o.max_workers == 0)
        o.max_workers = corio__cpu_count() + 4 < 32 ? corio__cpu_count() + 4 : 32;
    thread_pool_t *p = calloc(1, sizeof *p);
    if (!p || !(p->threads = calloc((size_t)o.max_workers, sizeof *p->threads))) {
        free(p);
        return -ENOMEM;
    }
    p->base.ops = &thread_pool_ops;
    p->base.max_workers = o.max_workers;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->initializer = o.initializer;
    p->initarg = o.initarg;
    snprintf(p->prefix, sizeof p->prefix, "%s",
             o.thread_name_prefix ? o.thread_name_prefix : "corio-pool");
    *out = &p->base;
    return 0;
}
