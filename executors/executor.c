/* The one executor interface: jobs, submit, map, shutdown, and the loop's
 * default executor. */
#include "executor_internal.h"
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int corio__cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int64_t corio__timeout_deadline(int64_t timeout_ns)
{
    return timeout_ns < 0 ? CORIO_NEVER : corio__deadline_after(corio_now(), timeout_ns);
}

void corio__block_signals(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

/* ---- job queue -------------------------------------------------------------- */

void corio__jq_push(corio_job_queue_t *q, corio_job_t *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    q->len++;
}

void corio__jq_push_front(corio_job_queue_t *q, corio_job_t *j)
{
    j->next = q->head;
    q->head = j;
    if (!q->tail)
        q->tail = j;
    q->len++;
}

corio_job_t *corio__jq_pop(corio_job_queue_t *q)
{
    corio_job_t *j = q->head;
    if (!j)
        return NULL;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    j->next = NULL;
    return j;
}

/* ---- jobs ------------------------------------------------------------------- */

static int copy_value(const corio_value_t *in, corio_value_t *out)
{
    *out = *in;
    if (in->len == 0)
        return 0;
    out->ptr = malloc(in->len);
    if (!out->ptr)
        return -ENOMEM;
    memcpy(out->ptr, in->ptr, in->len);
    return 0;
}

void corio__job_free(corio_job_t *job)
{
    if (!job)
        return;
    if (job->args) {
        for (size_t i = 0; job->nbytes && i < job->n; i++)
            if (job->args[i].len)
                free(job->args[i].ptr);
        if (job->args != &job->arg1)
            free(job->args);
    }
    if (job->fut)
        corio_future_unref(job->fut);
    free(job);
}

int corio__job_new(corio_executor_fn fn, const corio_value_t *args, size_t n, bool batch,
                   corio_job_t **out)
{
    corio_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return -ENOMEM;
    job->fn = fn;
    job->batch = batch;
    job->args = n == 1 ? &job->arg1 : malloc(n * sizeof *job->args);
    int rc = job->args ? corio_future_new_threadsafe(&job->fut) : -ENOMEM;
    if (rc == 0) /* values in one copy; then each item's bytes */
        memcpy(job->args, args, n * sizeof *args);
    for (size_t i = 0; rc == 0 && i < n; i++, job->n = i) {
        job->nbytes += args[i].len;
        if (args[i].len)
            rc = copy_value(&args[i], &job->args[i]);
    }
    if (rc < 0) {
        corio__job_free(job);
        return rc;
    }
    *out = job;
    return 0;
}

static void free_items(corio_batch_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (items[i].v.len)
            free(items[i].v.ptr);
}

void corio__job_finish(corio_job_t *job, corio_batch_item_t *items)
{
    if (!job->batch) {
        int rc = items[0].rc < 0 ? corio_future_set_exception(job->fut, items[0].rc, NULL)
                                 : corio_future_set_result(job->fut, items[0].v);
        if (rc < 0 || items[0].rc < 0)
            free_items(items, 1);
        return;
    }
    size_t size = sizeof(corio_batch_result_t) + job->n * sizeof(corio_batch_item_t);
    corio_batch_result_t *br = malloc(size);
    if (!br) {
        free_items(items, job->n);
        corio_future_set_exception(job->fut, -ENOMEM, "no memory for a map chunk's results");
        return;
    }
    br->n = job->n;
    br->compact = false;
    memcpy(br->items, items, job->n * sizeof *items);
    corio_value_t v = {br, size};
    if (corio_future_set_result(job->fut, v) < 0) {
        free_items(br->items, br->n);
        free(br);
    }
}

void corio__batch_free(corio_batch_result_t *br, size_t from)
{
    if (!br)
        return;
    if (!br->compact && from < br->n)
        free_items(br->items + from, br->n - from);
    free(br);
}

void corio__job_finish_owned(corio_job_t *job, corio_batch_result_t *br)
{
    if (!job->batch) {
        corio_batch_item_t one = corio__batch_item(br, 0);
        corio__job_finish(job, &one);
        free(br);
        return;
    }
    size_t each = br->compact ? sizeof(uint64_t) : sizeof *br->items;
    corio_value_t v = {br, sizeof *br + br->n * each};
    if (corio_future_set_result(job->fut, v) < 0)
        corio__batch_free(br, 0);
}

void corio__job_run(corio_job_t *job)
{
    corio_batch_item_t one, *items = job->n == 1 ? &one : calloc(job->n, sizeof *items);
    if (!items) {
        corio_future_set_exception(job->fut, -ENOMEM, "no memory for a map chunk's results");
        return;
    }
    for (size_t i = 0; i < job->n; i++) {
        items[i].v = (corio_value_t){NULL, 0};
        items[i].rc = job->fn(&job->args[i], &items[i].v);
        if (items[i].rc > 0)
            items[i].rc = 0;
        if (items[i].rc < 0 && items[i].v.len) {
            free(items[i].v.ptr);
            items[i].v = (corio_value_t){NULL, 0};
        }
    }
    corio__job_finish(job, items);
    if (items != &one)
        free(items);
}

void corio__job_fail(corio_job_t *job, int code, const char *msg)
{
    /* A job already running (sent to a worker that died) cannot be
     * cancelled; it fails with the code instead. */
    if (code != -ECANCELED || corio_future_cancel(job->fut) < 0)
        corio_future_set_exception(job->fut, code, msg);
    corio__job_free(job);
}

/* ---- the interface ------------------------------------------------------------ */

int corio_executor_submit(corio_executor_t *ex, corio_executor_fn fn, corio_value_t arg,
                          corio_future_t **out)
{
    if (!ex || !fn || !out || (arg.len && !arg.ptr))
        return -EINVAL;
    corio_job_t *job;
    int rc = corio__job_new(fn, &arg, 1, false, &job);
    if (rc < 0)
        return rc;
    corio_future_t *f = corio_future_ref(job->fut);
    rc = ex->ops->submit(ex, job);
    if (rc < 0) {
        corio_future_cancel(f);
        corio_future_unref(f);
        corio__job_free(job);
        return rc;
    }
    *out = f;
    return 0;
}

int corio_executor_shutdown(corio_executor_t *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return -EINVAL;
    return ex->ops->shutdown(ex, wait, cancel_futures);
}

void corio_executor_free(corio_executor_t *ex)
{
    if (!ex)
        return;
    /* On the pool's own thread the pool cannot be freed under it. */
    if (ex->ops->shutdown(ex, true, false) == -EDEADLK)
        return;
    ex->ops->destroy(ex);
}

int corio_executor_max_workers(const corio_executor_t *ex)
{
    return ex ? ex->max_workers : -EINVAL;
}

int corio_executor_workers(corio_executor_t *ex)
{
    return ex ? ex->ops->workers(ex) : -EINVAL;
}

int corio_executor_worker_pids(corio_executor_t *ex, int *pids, int max)
{
    if (!ex || max < 0 || (!pids && max > 0))
        return -EINVAL;
    return ex->ops->worker_pids ? ex->ops->worker_pids(ex, pids, max) : 0;
}

/* ---- the loop's default executor ----------------------------------------------- */

static void default_executor_shutdown(void *ex)
{
    corio_executor_free(ex);
}

int corio_run_in_executor(corio_executor_t *ex, corio_executor_fn fn, corio_value_t arg,
                          corio_future_t **out)
{
    if (!ex) {
        corio_loop_t *loop = corio_loop_current();
        if (!loop)
            return -EINVAL;
        ex = corio__loop_default_executor(loop);
        if (!ex) {
            int rc = corio_thread_pool_new(&ex, NULL);
            if (rc < 0)
                return rc;
            corio__loop_set_default_executor(loop, ex, default_executor_shutdown);
        }
    }
    return corio_executor_submit(ex, fn, arg, out);
}

int corio_to_thread(corio_executor_fn fn, corio_value_t arg, corio_value_t *out)
{
    if (!corio_current_task())
        return -EDEADLK;
    corio_future_t *f;
    int rc = corio_run_in_executor(NULL, fn, arg, &f);
    if (rc < 0)
        return rc;
    corio_value_t v;
    rc = corio_await(f, &v);
    if (rc == 0)
        rc = corio_future_take_result(f, &v);
    else if (rc != -ECANCELED && rc != -ETIMEDOUT)
        corio_future_exception(f, NULL);
    if (rc == -ECANCELED)
        corio_future_cancel(f);
    if (rc == 0 && out)
        *out = v;
    else if (rc == 0 && v.len)
        free(v.ptr);
    corio_future_unref(f);
    return rc;
}
