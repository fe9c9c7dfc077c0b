/* ThreadPoolExecutor: a worker thread is started when a job arrives and no
 * worker is idle, up to max_workers.
 *
 * submit takes no lock: it pushes the job on a lock-free stack (the inbox)
 * that workers take whole, under the pool's mutex, into the FIFO they run
 * from. The mutex is taken by submit only to wake or start a worker, so
 * submitters never wait behind workers, nor behind one preempted while
 * holding the lock. A worker goes idle only after announcing it (nidle) and
 * looking at the inbox again; submit pushes, then reads nidle: one of the
 * two sees the other, so no job waits with every worker asleep.
 *
 * Wake-ups cost more than tiny tasks: while tasks are short (a moving
 * average under 20 us), a job is left to an awake worker between batches
 * (never to one running a batch: it may block) unless the queue grows
 * long, and a worker that takes a batch and sees more
 * queued wakes one idle peer, so sleeping workers join per batch, not per
 * task. Long tasks wake a worker for every job, as Python does. */
#include "executor_internal.h"
#include "futex.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct thread_pool thread_pool_t;

typedef struct tp_worker {
    thread_pool_t *p;
    pthread_t thread;
    bool joined; /* under the pool's join_mu */
    atomic_llong busy_since; /* when its current batch started; 0 idle */
} tp_worker_t;

struct thread_pool {
    corio_executor_t base;
    _Atomic(corio_job_t *) inbox; /* submitted, newest first */
    atomic_size_t pending;         /* submitted, not yet taken by a worker */
    atomic_int nidle;              /* workers waiting on cv (changed under mu) */
    atomic_int nthreads;           /* started (changed under mu) */
    atomic_bool shutdown, broken;  /* set under mu */
    atomic_bool cancelling; /* shutdown(cancel_futures): batches held by workers too */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* jobs or shutdown */
    pthread_mutex_t join_mu; /* one shutdown joins at a time; never under mu */
    corio_job_queue_t q; /* taken from the inbox, in submit order */
    tp_worker_t *threads;
    int nlive;
    atomic_llong task_ns; /* moving average of a task's run time */
    bool multi_cpu; /* spinning for jobs can pay off */
    corio_initializer_fn initializer;
    corio_value_t initarg;
    char prefix[16];
};

static void inbox_push(thread_pool_t *p, corio_job_t *j)
{
    /* Counted before it is visible: a worker taking it must not wrap
     * pending below zero. */
    atomic_fetch_add_explicit(&p->pending, 1, memory_order_relaxed);
    corio_job_t *head = atomic_load_explicit(&p->inbox, memory_order_relaxed);
    do
        j->next = head;
    while (!atomic_compare_exchange_weak(&p->inbox, &head, j));
}

/* Moves the inbox to the end of the FIFO, oldest first; lock held. */
static void inbox_take(thread_pool_t *p)
{
    corio_job_t *j = atomic_exchange(&p->inbox, NULL), *fifo = NULL;
    while (j) {
        corio_job_t *next = j->next;
        j->next = fifo;
        fifo = j;
        j = next;
    }
    for (; fifo; fifo = j) {
        j = fifo->next;
        corio__jq_push(&p->q, fifo);
    }
}

/* Moves every queued job to out; called with the lock held. They are
 * failed after unlocking (fail_all): their done-callbacks may call into
 * the pool. */
static void take_queued(thread_pool_t *p, corio_job_queue_t *out)
{
    inbox_take(p);
    corio_job_t *j;
    while ((j = corio__jq_pop(&p->q))) {
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_relaxed);
        corio__jq_push(out, j);
    }
}

static void fail_all(corio_job_queue_t *q, int code, const char *msg)
{
    corio_job_t *j;
    while ((j = corio__jq_pop(q)))
        corio__job_fail(j, code, msg);
}

static bool run_initializer(thread_pool_t *p)
{
    if (!p->initializer || p->initializer(&p->initarg) == 0)
        return true;
    corio_job_queue_t failed = {0};
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->broken, true);
    take_queued(p, &failed);
    pthread_mutex_unlock(&p->mu);
    fail_all(&failed, CORIO_EBROKEN, "a thread pool initializer failed");
    return false;
}

static bool tasks_short(thread_pool_t *p)
{
    long long ns = atomic_load_explicit(&p->task_ns, memory_order_relaxed);
    return ns > 0 && ns <= 20000;
}

/* True when some awake worker is between batches, so it looks at the
 * inbox before it sleeps. A worker running a batch, however short its
 * tasks were so far, may be blocked in one waiting for this very job. */
static bool worker_soon_free(thread_pool_t *p)
{
    int n = atomic_load_explicit(&p->nthreads, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (atomic_load_explicit(&p->threads[i].busy_since, memory_order_relaxed) == 0)
            return true;
    return false;
}

/* True when a job just pushed needs another worker awake. Reads counters
 * other threads change: a hint, checked again under the lock. */
static bool needs_worker(thread_pool_t *p, int nlive)
{
    int awake = nlive - atomic_load(&p->nidle);
    size_t queued = atomic_load_explicit(&p->pending, memory_order_relaxed);
    return awake <= 0 || !tasks_short(p) || queued > (size_t)awake * 64 || !worker_soon_free(p);
}

/* How many queued jobs a worker takes at once; called with the lock held.
 * Taking several saves lock round trips for tiny tasks; a long task would
 * hold the others back from idle workers, so only when tasks are short. */
static size_t batch_size(thread_pool_t *p)
{
    size_t n = (size_t)atomic_load_explicit(&p->nthreads, memory_order_relaxed);
    if (!tasks_short(p) || p->q.len < 4 * n)
        return 1;
    size_t share = p->q.len / (2 * n);
    return share < 128 ? share : 128;
}

/* Runs a batch; the average task time is measured per batch, since the
 * clock costs as much as a tiny task. t0: when the batch was taken. */
/* The jobs of this worker's batch not started yet: a job that blocks on
 * another future hands them back first (give_back_batch), since the one
 * it waits for may be among them and idle peers could run it. */
static void wake_worker(thread_pool_t *p, bool may_start);

/* The pool this thread works for: shutdown must not wait for itself. */
static __thread thread_pool_t *tls_pool;
static __thread corio_job_t *tls_rest;

static void give_back_batch(void)
{
    thread_pool_t *p = tls_pool;
    corio_job_t *j = tls_rest;
    if (!j)
        return;
    tls_rest = NULL;
    corio_job_queue_t rest = {0};
    while (j) {
        corio_job_t *next = j->next;
        corio__jq_push(&rest, j);
        j = next;
    }
    if (atomic_load(&p->cancelling)) {
        fail_all(&rest, -ECANCELED, NULL);
        return;
    }
    pthread_mutex_lock(&p->mu);
    rest.tail->next = p->q.head; /* ahead of the queue: they were first */
    if (!p->q.head)
        p->q.tail = rest.tail;
    p->q.head = rest.head;
    p->q.len += rest.len;
    atomic_fetch_add_explicit(&p->pending, rest.len, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    wake_worker(p, true);
}

static void run_jobs(thread_pool_t *p, corio_job_t *j, int64_t t0)
{
    long long n = 0;
    while (j) {
        tls_rest = j->next;
        if (atomic_load_explicit(&p->cancelling, memory_order_relaxed)) {
            corio__job_fail(j, -ECANCELED, NULL); /* queued as far as the caller knows */
            j = tls_rest;
            continue;
        }
        if (corio_future_set_running_or_notify_cancel(j->fut) == 0) {
            corio__job_run(j);
            n++;
        }
        corio__job_free(j);
        j = tls_rest; /* NULL when the job handed the rest back */
    }
    tls_rest = NULL;
    if (n == 0)
        return;
    long long took = (corio_now() - t0) / n + 1;
    long long avg = atomic_load_explicit(&p->task_ns, memory_order_relaxed);
    atomic_store_explicit(&p->task_ns, avg ? (7 * avg + took) / 8 : took, memory_order_relaxed);
}

/* How long a worker out of short jobs watches the inbox before it sleeps:
 * the next tiny job usually comes within it, and a futex sleep plus its
 * wake-up costs several microseconds on each side (more in a VM). It
 * yields now and then, for a submitter that may share its CPU. */
#define SPIN_NS 20000

/* Lock held on entry and exit; released while spinning. True when the
 * inbox got a job. The worker still counts as awake meanwhile (not in
 * nidle), so submitters neither wake it nor start another for short jobs. */
static bool spin_for_jobs(thread_pool_t *p)
{
    if (!tasks_short(p) || p->multi_cpu == false)
        return false;
    pthread_mutex_unlock(&p->mu);
    bool got = false;
    int64_t end = corio_now() + SPIN_NS;
    for (int i = 1; !got; i++) {
        got = atomic_load_explicit(&p->inbox, memory_order_relaxed) != NULL ||
              atomic_load_explicit(&p->shutdown, memory_order_relaxed);
        corio__cpu_relax();
        if (i % 64 == 0) {
            if (corio_now() > end)
                break;
            sched_yield(); /* a submitter sharing this CPU goes first */
        }
    }
    pthread_mutex_lock(&p->mu);
    return got;
}

/* Waits for jobs; lock held. The inbox is looked at again after nidle
 * says this worker sleeps (see the top of the file). */
static void wait_for_jobs(thread_pool_t *p, tp_worker_t *self)
{
    atomic_fetch_add(&p->nidle, 1);
    if (!atomic_load(&p->inbox)) {
        atomic_store_explicit(&self->busy_since, -1, memory_order_relaxed);
        pthread_cond_wait(&p->cv, &p->mu);
        atomic_store_explicit(&self->busy_since, 0, memory_order_relaxed);
    }
    atomic_fetch_sub(&p->nidle, 1);
}

/* Takes a batch off the FIFO; lock held. */
static corio_job_t *take_batch(thread_pool_t *p)
{
    corio_job_t *first = corio__jq_pop(&p->q), *last = first;
    size_t n = 1;
    for (size_t k = batch_size(p); k > 1 && p->q.head; k--, n++)
        last = last->next = corio__jq_pop(&p->q);
    atomic_fetch_sub_explicit(&p->pending, n, memory_order_relaxed);
    if (p->q.head && atomic_load(&p->nidle) > 0)
        pthread_cond_signal(&p->cv); /* more for an idle peer */
    return first;
}


static void *worker_main(void *arg)
{
    tp_worker_t *self = arg;
    thread_pool_t *p = self->p;
    tls_pool = p;
    corio__before_block = give_back_batch;
    bool ready = run_initializer(p);
    bool spun = false; /* spun for jobs in vain: sleep next */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        inbox_take(p);
        if (!ready || (!p->q.head && (atomic_load(&p->shutdown) || atomic_load(&p->broken))))
            break;
        if (!p->q.head) {
            /* The spin dropped the lock: look at shutdown and the inbox
             * again (the loop's top) before sleeping. */
            if (spun)
                wait_for_jobs(p, self);
            spun = !spun && spin_for_jobs(p) == false;
            continue;
        }
        spun = false;
        corio_job_t *batch = take_batch(p);
        int64_t t0 = corio_now();
        atomic_store_explicit(&self->busy_since, t0, memory_order_relaxed);
        pthread_mutex_unlock(&p->mu);
        run_jobs(p, batch, t0);
        pthread_mutex_lock(&p->mu);
        atomic_store_explicit(&self->busy_since, 0, memory_order_relaxed);
    }
    /* In the same critical section as the last look at the inbox: a
     * submit that sees nlive == 0 knows nobody will take its job. */
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
    int i = atomic_load_explicit(&p->nthreads, memory_order_relaxed);
    tp_worker_t *w = &p->threads[i];
    w->p = p;
    atomic_init(&w->busy_since, 0);
    pthread_t t;
    int rc = pthread_create(&t, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    char name[16];
    snprintf(name, sizeof name, "%.10s_%d", p->prefix, i);
    pthread_setname_np(t, name);
    w->thread = t;
    atomic_store_explicit(&p->nthreads, i + 1, memory_order_release);
    p->nlive++;
    return 0;
}

static int refusal(thread_pool_t *p)
{
    return atomic_load(&p->broken) ? CORIO_EBROKEN : atomic_load(&p->shutdown) ? CORIO_ESHUTDOWN : 0;
}

/* Wakes an idle worker, or starts one if may_start, for a job just
 * pushed. A failed start is not the job's error while other workers run. */
static void wake_worker(thread_pool_t *p, bool may_start)
{
    pthread_mutex_lock(&p->mu);
    int idle = atomic_load(&p->nidle);
    size_t queued = atomic_load_explicit(&p->pending, memory_order_relaxed);
    if (!may_start || needs_worker(p, p->nlive)) {
        if (idle > 0)
            pthread_cond_signal(&p->cv);
        /* More jobs than idle workers to take them: one more thread. */
        if (may_start && (size_t)idle < queued && refusal(p) == 0 &&
            atomic_load_explicit(&p->nthreads, memory_order_relaxed) < p->base.max_workers)
            start_worker(p);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The first submit starts the first worker before queueing, so that a
 * pool that cannot start any fails the submit instead of hanging it. That
 * worker takes the job: *started says no other wake-up is needed. */
static int first_worker(thread_pool_t *p, bool *started)
{
    pthread_mutex_lock(&p->mu);
    int rc = refusal(p);
    if (rc == 0 && atomic_load_explicit(&p->nthreads, memory_order_relaxed) == 0) {
        rc = start_worker(p);
        *started = rc == 0;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Shutdown or breakage raced with a push: if every worker has already
 * left, nobody will take the job, so it fails here. */
static void strand_check(thread_pool_t *p)
{
    corio_job_queue_t failed = {0};
    pthread_mutex_lock(&p->mu);
    int code = refusal(p);
    if (p->nlive == 0)
        take_queued(p, &failed);
    pthread_mutex_unlock(&p->mu);
    fail_all(&failed, code, "the thread pool shut down during this submit");
}

static int tp_submit(corio_executor_t *ex, corio_job_t *job)
{
    thread_pool_t *p = (thread_pool_t *)ex;
    bool started = false;
    int rc = refusal(p);
    if (rc == 0 && atomic_load_explicit(&p->nthreads, memory_order_acquire) == 0)
        rc = first_worker(p, &started);
    if (rc < 0)
        return rc;
    inbox_push(p, job);
    /* nthreads stands in for nlive, which needs the lock: workers leave
     * only at shutdown or breakage, which the check below handles. The
     * worker just started may already sleep: it is woken, no other started. */
    if (started ? atomic_load(&p->nidle) > 0 : needs_worker(p, atomic_load(&p->nthreads)))
        wake_worker(p, !started);
    if (refusal(p))
        strand_check(p);
    return 0;
}

static int tp_shutdown(corio_executor_t *ex, bool wait, bool cancel_futures)
{
    thread_pool_t *p = (thread_pool_t *)ex;
    corio_job_queue_t cancelled = {0};
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->shutdown, true);
    if (cancel_futures) {
        atomic_store(&p->cancelling, true);
        take_queued(p, &cancelled);
    }
    pthread_cond_broadcast(&p->cv);
    int n = atomic_load_explicit(&p->nthreads, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    fail_all(&cancelled, -ECANCELED, NULL);
    if (!wait)
        return 0;
    if (tls_pool == p)
        return -EDEADLK; /* a worker cannot join itself; free joins it */
    /* Threads are only started before shutdown, so n covers them all. */
    pthread_mutex_lock(&p->join_mu);
    for (int i = 0; i < n; i++)
        if (!p->threads[i].joined && pthread_join(p->threads[i].thread, NULL) == 0)
            p->threads[i].joined = true;
    pthread_mutex_unlock(&p->join_mu);
    return 0;
}

static void tp_destroy(corio_executor_t *ex)
{
    thread_pool_t *p = (thread_pool_t *)ex;
    corio_job_queue_t left = {0};
    pthread_mutex_lock(&p->mu);
    take_queued(p, &left);
    pthread_mutex_unlock(&p->mu);
    fail_all(&left, -ECANCELED, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->join_mu);
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
    pthread_mutex_init(&p->join_mu, NULL);
    p->initializer = o.initializer;
    p->initarg = o.initarg;
    p->multi_cpu = sysconf(_SC_NPROCESSORS_ONLN) > 1;
    snprintf(p->prefix, sizeof p->prefix, "%s",
             o.thread_name_prefix ? o.thread_name_prefix : "corio-pool");
    *out = &p->base;
    return 0;
}
