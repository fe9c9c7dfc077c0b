/* The event loop: one io_uring per thread, a FIFO of ready callbacks, a
 * timer heap, and a locked queue plus an eventfd for calls from other
 * threads. One turn: wait for completions (bounded by the next timer),
 * dispatch them by user_data, move expired timers to the ready queue, then
 * run the callbacks that were ready when the turn began. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

CORIO_TLS corio_loop_t *corio__tls_loop;

corio_loop_t *corio_loop_current(void) { return corio__tls_loop; }

/* ---- ready queue ------------------------------------------------------------ */


/* ---- set-up ----------------------------------------------------------------- */

static void explain_ring_error(int rc)
{
    const char *why = NULL;
    char buf[64] = "";
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = 0;
        fclose(f);
    }
    if ((rc == -EPERM || rc == -ENOSYS) && buf[0] && buf[0] != '0')
        why = "io_uring is disabled by the kernel.io_uring_disabled sysctl";
    else if (rc == -ENOSYS)
        why = "the kernel has no io_uring (too old, or compiled out)";
    else if (rc == -EPERM)
        why = "io_uring is not permitted here (seccomp filter or container policy)";
    else if (rc == -ENOMEM) {
        struct rlimit rl;
        getrlimit(RLIMIT_MEMLOCK, &rl);
        fprintf(stderr, "corio: cannot set up io_uring: out of locked memory "
                        "(RLIMIT_MEMLOCK is %llu bytes; raise `ulimit -l`)\n",
                (unsigned long long)rl.rlim_cur);
        return;
    } else if (rc == -EMFILE || rc == -ENFILE)
        why = "out of file descriptors";
    if (!why)
        why = strerror(-rc);
    fprintf(stderr, "corio: cannot set up io_uring: %s\n", why);
}

static int ring_init(corio_loop_t *loop, unsigned entries, bool pollable)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    if (pollable)
        goto plain; /* deferred completions would not wake a poll() on the ring fd */
    /* A loop's ring is used by its own thread only, so completions can wait
     * for the thread's next io_uring_enter instead of interrupting it with
     * task work (COOP_TASKRUN, DEFER_TASKRUN: kernel 6.1). */
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
              IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(entries, &loop->ring, &p);
    if (rc == -EINVAL) { /* kernels before 6.1 */
plain:
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_SUBMIT_ALL;
        rc = io_uring_queue_init_params(entries, &loop->ring, &p);
    }
    if (rc == -EINVAL) { /* kernels before 5.18 */
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(entries, &loop->ring, &p);
    }
    return rc;
}

int corio_loop_new(corio_loop_t **out, const corio_loop_options_t *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (corio__tls_loop)
        return -EBUSY;
    corio_loop_t *loop = calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    unsigned entries = opts && opts->sq_entries ? opts->sq_entries : 256;
    loop->pollable = opts && (opts->flags & CORIO_LOOP_EMBEDDED);
    int rc = ring_init(loop, entries, loop->pollable);
    if (rc < 0) {
        explain_ring_error(rc);
        free(loop);
        return rc;
    }
    loop->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        rc = -errno;
        io_uring_queue_exit(&loop->ring);
        free(loop);
        return rc;
    }
    rc = corio__task_arena_new(loop);
    if (rc < 0) {
        close(loop->wake_fd);
        io_uring_queue_exit(&loop->ring);
        free(loop);
        return rc;
    }
    pthread_mutex_init(&loop->ts_mu, NULL);
    loop->ready.prev = loop->ready.next = &loop->ready;
    corio__stack_pool_init(&loop->stacks);
    corio__coro_init_main(&loop->main_coro);
    corio__overflow_handler_install();
    loop->now = corio_now();
    corio__tls_loop = loop;
    *out = loop;
    return 0;
}

/* ---- submission ------------------------------------------------------------- */

static int ring_submit(corio_loop_t *loop)
{
    if (corio__fault_hit(CORIO_FAULT_SUBMIT))
        return -ENOMEM;
    if (corio__fault_hit(CORIO_FAULT_SUBMIT_BUSY))
        return -EBUSY;
    int rc;
    do
        rc = io_uring_submit(&loop->ring);
    while (rc == -EINTR);
    return rc;
}

static void reap(corio_loop_t *loop);

struct io_uring_sqe *corio__get_sqe(corio_loop_t *loop, int *err)
{
    if (corio__fault_hit(CORIO_FAULT_SQE)) {
        *err = -EBUSY;
        return NULL;
    }
    for (;;) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
        if (corio_likely(sqe != NULL))
            return sqe;
        /* The SQ is full: hand it to the kernel and try again. EBUSY and
         * EAGAIN mean completions must be reaped first. */
        int rc = ring_submit(loop);
        if (rc == -EBUSY || rc == -EAGAIN)
            reap(loop);
        else if (rc < 0) {
            *err = rc;
            return NULL;
        }
    }
}

void corio__op_started(corio_loop_t *loop) { loop->stats.ops_in_flight++; }

/* Callers are about to close a descriptor a queued SQE may name, so a full
 * completion queue is reaped and the submit retried rather than given up. */
void corio__submit_queued(corio_loop_t *loop)
{
    for (int tries = 0; tries < 8 && io_uring_sq_ready(&loop->ring); tries++) {
        int rc = ring_submit(loop);
        if (rc == -EBUSY || rc == -EAGAIN)
            reap(loop);
        else if (rc < 0)
            return;
    }
}

void corio__call_soon_threadsafe_handle(corio_loop_t *loop, corio_handle_t *h);

/* ---- completions ------------------------------------------------------------ */

/* Each entry is consumed before its completion runs, so a completion that
 * must reap (a full ring while it submits) sees only the entries after it
 * rather than completing the same ones twice. */
static unsigned reap_cq(corio_loop_t *loop)
{
    struct io_uring *ring = &loop->ring;
    unsigned n = 0;
    while (io_uring_cq_ready(ring)) {
        unsigned head = *ring->cq.khead;
        struct io_uring_cqe *cqe = &ring->cq.cqes[head & ring->cq.ring_mask];
        corio_op_t *op = (corio_op_t *)(uintptr_t)cqe->user_data;
        int res = cqe->res;
        uint32_t flags = cqe->flags;
        io_uring_cq_advance(ring, 1);
        n++;
        if (!op)
            continue; /* cancel requests and other fire-and-forget entries */
        if (!(flags & IORING_CQE_F_MORE))
            loop->stats.ops_in_flight--;
        op->complete(op, res, flags);
    }
    return n;
}

/* Reaps everything, including what the kernel held back when the CQ was full
 * (IORING_FEAT_NODROP keeps it in an overflow list until flushed). */
static void reap(corio_loop_t *loop)
{
    for (;;) {
        reap_cq(loop);
        if (!io_uring_cq_has_overflow(&loop->ring))
            break;
        loop->stats.cq_overflows++;
        int rc;
        do
            rc = io_uring_get_events(&loop->ring);
        while (rc == -EINTR);
    }
}

static void wake_complete(corio_op_t *op, int res, uint32_t flags);

static void arm_wake(corio_loop_t *loop)
{
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
    if (!sqe)
        return; /* retried next turn */
    io_uring_prep_read(sqe, loop->wake_fd, &loop->wake_buf, sizeof loop->wake_buf, 0);
    loop->wake_op.complete = wake_complete;
    io_uring_sqe_set_data(sqe, &loop->wake_op);
    corio__op_started(loop);
    loop->wake_armed = true;
}

static void drain_threadsafe(corio_loop_t *loop)
{
    atomic_store(&loop->ts_wake_pending, false);
    pthread_mutex_lock(&loop->ts_mu);
    corio_handle_t *h = loop->ts_head;
    loop->ts_head = loop->ts_tail = NULL;
    pthread_mutex_unlock(&loop->ts_mu);
    while (h) {
        corio_handle_t *next = h->next;
        corio__ready_push(loop, h);
        h = next;
    }
}

static void wake_complete(corio_op_t *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    corio_loop_t *loop = corio_container_of(op, corio_loop_t, wake_op);
    loop->wake_armed = false;
    drain_threadsafe(loop);
}

/* False once the loop is closing: nothing would run h, and its eventfd
 * may be closed already. */
static bool ts_push(corio_loop_t *loop, corio_handle_t *h)
{
    h->next = NULL;
    h->loop = loop;
    pthread_mutex_lock(&loop->ts_mu);
    if (loop->ts_closed) {
        pthread_mutex_unlock(&loop->ts_mu);
        return false;
    }
    if (loop->ts_tail)
        loop->ts_tail->next = h;
    else
        loop->ts_head = h;
    loop->ts_tail = h;
    /* One write per batch: the flag is cleared by the loop before it drains.
     * Written under the lock: once the loop can see h, its task may finish
     * and the loop close wake_fd, so this thread must not touch it after. */
    if (!atomic_exchange(&loop->ts_wake_pending, true)) {
        uint64_t one = 1;
        (void)!write(loop->wake_fd, &one, sizeof one);
    }
    pthread_mutex_unlock(&loop->ts_mu);
    return true;
}

void corio__call_soon_threadsafe_handle(corio_loop_t *loop, corio_handle_t *h)
{
    (void)ts_push(loop, h); /* the runtime's own hops all arrive before close */
}

/* Refused under ts_mu once close began: another thread may be closing the
 * loop, and close sets ts_closed under it before the eventfd goes. The
 * loop's memory itself must outlive every caller (free after they stop). */
int corio_loop_call_soon_threadsafe(corio_loop_t *loop, corio_callback_fn fn, void *arg)
{
    if (!loop || !fn)
        return -EINVAL;
    corio_handle_t *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->fn = fn;
    h->arg = arg;
    h->owned = 1;
    if (!ts_push(loop, h)) {
        free(h);
        return -EINVAL;
    }
    return 0;
}

/* ---- the turn --------------------------------------------------------------- */

static int64_t turn_timeout(corio_loop_t *loop, int64_t limit)
{
    if (loop->nready || loop->stopping)
        return 0;
    corio_handle_t *top = corio__timer_peek(loop);
    if (top) {
        int64_t until = corio__time_until(top->when);
        if (limit < 0 || until < limit)
            limit = until;
    }
    return limit;
}

static void wait_completions(corio_loop_t *loop, int64_t timeout)
{
    if (timeout == 0) {
        if (io_uring_sq_ready(&loop->ring))
            ring_submit(loop);
        /* Deferred task work (completions not yet posted) runs only inside
         * io_uring_enter: without this, a loop that never sleeps would
         * never see them. */
        else if (IO_URING_READ_ONCE(*loop->ring.sq.kflags) & IORING_SQ_TASKRUN)
            io_uring_get_events(&loop->ring);
        reap(loop);
        return;
    }
    int64_t deadline = timeout > 0 ? corio__deadline_after(corio_now(), timeout) : 0;
    for (;;) {
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout > 0) {
            int64_t left = deadline - corio_now();
            if (left < 0)
                left = 0;
            ts.tv_sec = left / CORIO_NS_PER_SEC;
            ts.tv_nsec = left % CORIO_NS_PER_SEC;
            tsp = &ts;
        }
        struct io_uring_cqe *cqe = NULL;
        int rc;
        if (corio__fault_hit(CORIO_FAULT_SUBMIT))
            rc = -ENOMEM;
        else
            rc = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, tsp, NULL);
        if (rc == -EINTR && (timeout < 0 || corio_now() < deadline))
            continue; /* a signal interrupted the wait: wait again */
        if (rc == -EBUSY || rc == -EAGAIN || rc == -ENOMEM)
            ring_submit(loop); /* transient: what was queued goes next turn */
        break;
    }
    reap(loop);
}

static void fire_timers(corio_loop_t *loop)
{
    corio_handle_t *top;
    while ((top = corio__timer_peek(loop)) && top->when <= loop->now) {
        corio__timer_remove(loop, top);
        corio__ready_push(loop, top);
    }
}

static int run_ready(corio_loop_t *loop)
{
    /* Only what was ready when the turn began: callbacks that schedule
     * callbacks cannot starve the I/O. Tasks switching straight to the
     * next ready task take from the same count (task.c). */
    uint64_t todo = loop->nready;
    loop->ready_left = todo;
    loop->turn_ready_end = loop->ready_seq;
    loop->turn_cancelled = 0;
    while (loop->ready_left && loop->ready.next != &loop->ready) {
        loop->ready_left--;
        corio_handle_t *h = loop->ready.next;
        corio__ready_remove(loop, h);
        corio_callback_fn fn = h->fn;
        void *arg = h->arg;
        if (h->owned)
            free(h);
        fn(arg);
    }
    int ran = (int)(todo - loop->ready_left - loop->turn_cancelled);
    loop->ready_left = 0;
    return ran;
}

static int loop_turn(corio_loop_t *loop, int64_t timeout)
{
    loop->in_turn = true;
    if (!loop->wake_armed)
        arm_wake(loop);
    wait_completions(loop, turn_timeout(loop, timeout));
    if (loop->nheap) { /* the clock is read only when a timer may be due */
        loop->now = corio_now();
        fire_timers(loop);
    }
    int ran = run_ready(loop);
    if (io_uring_sq_ready(&loop->ring))
        ring_submit(loop); /* an embedding host may sleep on the fd next */
    loop->stats.turns++;
    loop->in_turn = false;
    return ran;
}

static int loop_check(corio_loop_t *loop)
{
    if (!loop || loop->closed)
        return -EINVAL;
    if (loop != corio__tls_loop)
        return -EPERM; /* a loop belongs to the thread that created it */
    return 0;
}

int corio_loop_run_once(corio_loop_t *loop, int64_t timeout_ns)
{
    int rc = loop_check(loop);
    if (rc < 0)
        return rc;
    if (loop->current || loop->in_turn)
        return -EBUSY; /* called from one of the loop's own tasks or callbacks */
    int ran = loop_turn(loop, timeout_ns);
    if (!loop->running)
        loop->stopping = false; /* one turn is all a stop asks of run_once */
    return ran;
}

/* 0 when the loop may start a run, else -EINVAL, -EPERM, or -EBUSY while
 * it runs or from one of its own tasks or callbacks. */
int corio__loop_run_check(corio_loop_t *loop)
{
    int rc = loop_check(loop);
    if (rc < 0)
        return rc;
    return loop->running || loop->current || loop->in_turn ? -EBUSY : 0;
}

int corio_loop_run_forever(corio_loop_t *loop)
{
    int rc = corio__loop_run_check(loop);
    if (rc < 0)
        return rc;
    loop->running = true;
    /* A stop made before the run still gets one turn, as in asyncio. */
    do
        loop_turn(loop, loop->stopping ? 0 : -1);
    while (!loop->stopping);
    loop->stopping = false;
    loop->running = false;
    return 0;
}


/* Used by corio_loop_run_until_complete (task.c). */
int corio__loop_run_until(corio_loop_t *loop, bool (*done)(void *), void *arg)
{
    int rc = corio__loop_run_check(loop);
    if (rc < 0)
        return rc;
    loop->running = true;
    while (!done(arg) && !loop->stopping)
        loop_turn(loop, -1);
    loop->stopping = false;
    loop->running = false;
    return 0;
}

int corio_loop_stop(corio_loop_t *loop)
{
    if (!loop || loop->closed)
        return -EINVAL;
    loop->stopping = true;
    return 0;
}

int64_t corio_loop_time(corio_loop_t *loop)
{
    (void)loop; /* as asyncio's loop.time(): the clock now, not a cached turn start */
    return corio_now();
}

/* ---- scheduling ------------------------------------------------------------- */

static int handle_prepare(corio_loop_t *loop, corio_handle_t **hp, corio_callback_fn fn,
                          void *arg)
{
    if (!loop || !fn || loop->closed)
        return -EINVAL;
    corio_handle_t *h = *hp;
    if (h) {
        if (h->state != CORIO_H_IDLE && h->loop == loop)
            return -EBUSY;
        h->owned = 0;
    } else {
        h = malloc(sizeof *h);
        if (!h)
            return -ENOMEM;
        h->owned = 1;
    }
    h->fn = fn;
    h->arg = arg;
    h->loop = loop;
    h->state = CORIO_H_IDLE;
    *hp = h;
    return 0;
}

int corio_loop_call_soon(corio_loop_t *loop, corio_handle_t *h, corio_callback_fn fn, void *arg)
{
    int rc = handle_prepare(loop, &h, fn, arg);
    if (rc < 0)
        return rc;
    corio__ready_push(loop, h);
    return 0;
}

int corio_loop_call_at(corio_loop_t *loop, corio_handle_t *h, int64_t when_ns,
                       corio_callback_fn fn, void *arg)
{
    int rc = handle_prepare(loop, &h, fn, arg);
    if (rc < 0)
        return rc;
    h->when = when_ns;
    rc = corio__timer_insert(loop, h);
    if (rc < 0 && h->owned)
        free(h);
    return rc;
}

int corio_loop_call_later(corio_loop_t *loop, corio_handle_t *h, int64_t delay_ns,
                          corio_callback_fn fn, void *arg)
{
    if (!loop)
        return -EINVAL;
    if (delay_ns < 0)
        delay_ns = 0;
    return corio_loop_call_at(loop, h, corio__deadline_after(corio_now(), delay_ns), fn, arg);
}

int corio_handle_cancel(corio_handle_t *h)
{
    if (!h || !h->loop)
        return -EINVAL;
    if (h->state == CORIO_H_READY) {
        corio_loop_t *loop = h->loop;
        /* One the running turn owed: its slot must not go to a newer one. */
        if (loop->ready_left && h->seq < loop->turn_ready_end) {
            loop->ready_left--;
            loop->turn_cancelled++;
        }
        corio__ready_remove(loop, h);
    }
    else if (h->state == CORIO_H_TIMER)
        corio__timer_remove(h->loop, h);
    else
        return -EALREADY;
    if (h->owned)
        free(h);
    return 0;
}

bool corio_handle_pending(const corio_handle_t *h)
{
    return h && h->state != CORIO_H_IDLE;
}

/* ---- embedding, statistics, errors ------------------------------------------ */

int corio_loop_backend_fd(corio_loop_t *loop)
{
    if (!loop || loop->closed)
        return -EINVAL;
    if (!loop->pollable)
        return -ENOTSUP; /* created without CORIO_LOOP_EMBEDDED */
    if (!loop->wake_armed) {
        arm_wake(loop);
        ring_submit(loop);
    }
    return loop->ring.ring_fd;
}

int64_t corio_loop_backend_timeout(corio_loop_t *loop)
{
    if (!loop || loop->closed)
        return -1;
    if (loop->nready || io_uring_cq_ready(&loop->ring))
        return 0;
    corio_handle_t *top = corio__timer_peek(loop);
    return top ? corio__time_until(top->when) : -1;
}

int corio_loop_stats(corio_loop_t *loop, corio_loop_stats_t *out)
{
    if (!loop || !out)
        return -EINVAL;
    *out = loop->stats;
    out->timers_pending = loop->nheap;
    out->ready_callbacks = loop->nready;
    return 0;
}

static void default_error_handler(corio_loop_t *loop, const corio_error_context_t *c, void *arg)
{
    (void)loop;
    (void)arg;
    fprintf(stderr, "corio: %s", c->message ? c->message : "error");
    if (c->task_name)
        fprintf(stderr, " (task '%s')", c->task_name);
    if (c->code)
        fprintf(stderr, ": %s [%d]", corio_strerror(c->code), c->code);
    if (c->detail)
        fprintf(stderr, ": %s", c->detail);
    fputc('\n', stderr);
}

void corio_loop_set_error_handler(corio_loop_t *loop, corio_error_handler_fn fn, void *arg)
{
    if (!loop)
        return;
    loop->error_fn = fn;
    loop->error_arg = arg;
}

void corio_loop_report(corio_loop_t *loop, const corio_error_context_t *ctx)
{
    if (loop && loop->error_fn)
        loop->error_fn(loop, ctx, loop->error_arg);
    else
        default_error_handler(loop, ctx, NULL);
}

void *corio__loop_default_executor(corio_loop_t *loop) { return loop->default_executor; }

void corio__loop_set_default_executor(corio_loop_t *loop, void *executor,
                                      void (*shutdown)(void *executor))
{
    loop->default_executor = executor;
    loop->default_executor_shutdown = shutdown;
}

/* ---- close ------------------------------------------------------------------ */

static void queue_cancel(corio_loop_t *loop, uint64_t key, unsigned flags)
{
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
    if (sqe) {
        io_uring_prep_cancel64(sqe, key, flags);
        io_uring_sqe_set_data(sqe, NULL);
    }
}

/* Cancels what is still in flight and reaps it before the ring goes: the
 * loop's wakeup read (its buffer is in *loop) and the operations no task
 * waits for (a freed stream's last send), whose completions release memory
 * and descriptors. They see loop->closing and finish at once, since no turn
 * (no callback, timer or task) runs any more. The wakeup read is cancelled
 * by its address, which every kernel has; the rest by CANCEL_ANY (5.19).
 * Bounded: an operation that ignores cancellation costs a wait, not a hang. */
static void finish_ops_in_flight(corio_loop_t *loop)
{
    loop->closing = true;
    for (int round = 0; loop->stats.ops_in_flight > 0 && round < 50; round++) {
        if (loop->wake_armed)
            queue_cancel(loop, (uint64_t)(uintptr_t)&loop->wake_op, 0);
        queue_cancel(loop, 0, IORING_ASYNC_CANCEL_ANY);
        struct __kernel_timespec ts = {.tv_nsec = 100 * CORIO_NS_PER_MS};
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
            break;
        reap(loop);
    }
}

static void free_owned_handles(corio_loop_t *loop)
{
    while (loop->ready.next != &loop->ready) {
        corio_handle_t *h = loop->ready.next;
        corio__ready_remove(loop, h);
        if (h->owned)
            free(h);
        else
            corio__future_drop_scheduled(h); /* may free the future, h with it */
    }
    while (loop->nheap) {
        corio_handle_t *h = loop->heap[0];
        corio__timer_remove(loop, h);
        if (h->owned)
            free(h);
    }
    drain_threadsafe(loop);
    while (loop->ready.next != &loop->ready) {
        corio_handle_t *h = loop->ready.next;
        corio__ready_remove(loop, h);
        if (h->owned) /* a handle of the runtime's own belongs to its sender */
            free(h);
    }
}

int corio_loop_close(corio_loop_t *loop)
{
    if (!loop)
        return -EINVAL;
    if (loop->closed)
        return 0; /* closing twice is harmless, as in asyncio */
    if (loop != corio__tls_loop)
        return -EPERM; /* its ring is single-issuer, its thread's pointer would dangle */
    if (loop->running || loop->current || loop->in_turn)
        return -EBUSY;
    if (loop->tasks)
        return -EBUSY;
    if (loop->default_executor && loop->default_executor_shutdown) {
        loop->default_executor_shutdown(loop->default_executor);
        loop->default_executor = NULL;
    }
    /* Run what finished tasks left (callbacks releasing futures), once. */
    loop_turn(loop, 0);
    if (loop->tasks)
        return -EBUSY;
    finish_ops_in_flight(loop);
    pthread_mutex_lock(&loop->ts_mu);
    loop->ts_closed = true;
    pthread_mutex_unlock(&loop->ts_mu);
    loop->closed = true;
    /* Futures outlive the loop; a late report goes to stderr. */
    for (corio_loop_future_t *lf = loop->futures; lf; lf = lf->lnext)
        lf->f.loop = NULL;
    loop->futures = NULL;
    corio__task_arena_forget_loop(loop);
    free_owned_handles(loop);
    corio__timer_free(loop);
    io_uring_queue_exit(&loop->ring);
    close(loop->wake_fd); /* ts_mu stays for late callers: free destroys it */
    corio__stack_pool_destroy(&loop->stacks);
    corio__task_arena_close(loop);
    corio__overflow_handler_release();
    if (corio__tls_loop == loop)
        corio__tls_loop = NULL;
    return 0;
}

int corio_loop_free(corio_loop_t *loop)
{
    if (!loop)
        return 0;
    int rc = corio_loop_close(loop);
    if (rc < 0)
        return rc;
    pthread_mutex_destroy(&loop->ts_mu);
    free(loop);
    return 0;
}
