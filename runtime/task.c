/* Tasks: a coroutine whose outcome is a future, the wait primitive every
 * await goes through, level-triggered cancellation, sleep and corio_run. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int corio__loop_run_until(corio_loop_t *loop, bool (*done)(void *), void *arg);
int corio__loop_run_check(corio_loop_t *loop);

corio_task_t *corio_current_task(void)
{
    corio_loop_t *loop = corio__tls_loop;
    return loop ? loop->current : NULL;
}

/* ---- life cycle -------------------------------------------------------------- */

static void task_unlink(corio_task_t *t)
{
    corio_loop_t *loop = t->fut.loop;
    if (t->tprev)
        t->tprev->tnext = t->tnext;
    else
        loop->tasks = t->tnext;
    if (t->tnext)
        t->tnext->tprev = t->tprev;
    t->tprev = t->tnext = NULL;
    loop->stats.tasks_live--;
}

/* A task's future is completed by task_finish alone (set_result and
 * set_exception refuse it; a cancel is a request to the task). */
static inline bool task_finished(const corio_task_t *t)
{
    return atomic_load_explicit(&t->fut.state, memory_order_acquire) >= CORIO_FUTURE_FINISHED;
}

static void task_finish(corio_task_t *t, intptr_t r)
{
    corio_value_t none = {NULL, 0};
    if (r == -ECANCELED)
        corio__future_finish_local(&t->fut, CORIO_FUTURE_CANCELLED, -ECANCELED, none);
    else if (corio_is_error(r))
        corio__future_finish_local(&t->fut, CORIO_FUTURE_FINISHED, (int)r, none);
    else
        corio__future_finish_local(&t->fut, CORIO_FUTURE_FINISHED, 0, corio_value_int(r));
}

/* Runs off the task's stack once its coroutine is left for good: on the
 * loop's stack, or in the task that a finishing task switched to. */
static void task_retire(corio_task_t *t)
{
    corio_loop_t *loop = t->fut.loop;
    task_unlink(t);
    corio__coro_destroy(&t->coro);
    if (!corio__stack_put_pooled(&loop->stacks, &t->coro.stack))
        corio__stack_put(&loop->stacks, &t->coro.stack);
    if (corio__future_drop_ref(&t->fut)) /* the loop's reference */
        corio__task_free(t);
}

/* Every coroutine that resumes calls this: a finished task that switched
 * here left itself to be retired. */
static inline void retire_left_behind(corio_loop_t *loop)
{
    corio_task_t *r = loop->retiring;
    if (corio_unlikely(r != NULL)) {
        loop->retiring = NULL;
        task_retire(r);
    }
}

static corio_task_t *take_direct_next(corio_task_t *t, bool finishing);

static void task_entry(void *arg)
{
    corio_task_t *t = arg;
    corio__coro_started(&t->coro);
    corio_loop_t *loop = t->fut.loop;
    retire_left_behind(loop);
    t->started = true;
    /* Cancelled before its first step: like asyncio, the body never runs. */
    intptr_t r = t->cancel_requests ? -ECANCELED : t->fn(t->arg);
    task_finish(t, r);
    /* A failed task goes back through the loop's stack: retiring it may
     * report an error nobody retrieved, and the loop's error handler runs
     * there, with no current task, as it always did. */
    corio_task_t *n = t->fut.error ? NULL : take_direct_next(t, true);
    if (n) {
        loop->retiring = t;
        corio__coro_switch(&t->coro, &n->coro, true);
    } else {
        corio__coro_switch(&t->coro, &loop->main_coro, true);
    }
    __builtin_unreachable();
}

/* A default-sized task gets its stack on its first step, not at spawn: a
 * task that finishes without suspending hands the stack on through the pool,
 * so spawning many short tasks maps few stacks. When no stack can be had the
 * task ends failed with -ENOMEM without running. */
/* Binds a default-sized stack (pooled, else newly mapped) and creates the
 * coroutine on it. It starts with the control state of whoever first
 * switches to it: the loop's stack, which binds it just before, or a
 * finishing task, which hands it the loop's (take_direct_next). */
static int bind_lazy_stack(corio_task_t *t)
{
    corio_stack_pool_t *pool = &t->fut.loop->stacks;
    int rc = corio__stack_take_pooled(pool, &t->coro.stack)
                 ? 0
                 : corio__stack_get(pool, 0, &t->coro.stack);
    if (rc == 0)
        corio__coro_create_inherit(&t->coro, task_entry, t);
    return rc;
}

/* A lazy task's first step. Cancelled before it started, it ends without a
 * stack or a coroutine; without a stack to be had, it ends failed. False:
 * it is done. */
static bool task_prepare_first_step(corio_task_t *t)
{
    int rc = t->cancel_requests ? -ECANCELED : bind_lazy_stack(t);
    if (rc < 0) {
        task_finish(t, rc);
        task_retire(t);
        return false;
    }
    return true;
}

static void task_step(void *arg)
{
    corio_task_t *t = arg;
    corio_loop_t *loop = t->fut.loop;
    if (corio_unlikely(!t->coro.stack.map) && !task_prepare_first_step(t))
        return;
    loop->current = t;
    corio__coro_switch(&loop->main_coro, &t->coro, false);
    /* The task that came back may not be t: tasks switch to each other
     * directly (see suspend), and whoever switches to a task makes it
     * current. */
    t = loop->current;
    loop->current = NULL;
    if (t && task_finished(t))
        task_retire(t);
}

static char *task_name_storage(const corio_task_t *t)
{
    return t->label & 1 ? NULL : (char *)t->label;
}

void corio__task_free(corio_task_t *t)
{
    corio__future_release_storage(&t->fut);
    free(task_name_storage(t));
    corio__task_dealloc(t);
}

static void schedule_step(corio_task_t *t);

/* Field by field: a record comes back from the free list dirty, and a
 * memset of the whole record costs more than the stores. */
static void task_init(corio_task_t *t, corio_loop_t *loop, corio_task_fn fn, void *arg)
{
    t->coro.stack = (corio_stack_t){NULL, 0, 0}; /* a recycled record keeps the old sizes */
#ifdef CORIO_TSAN
    t->coro.tsan_fiber = NULL;
#endif
    t->fut.loop = loop;
    t->fn = fn;
    t->arg = arg;
    t->step.state = CORIO_H_IDLE;
    t->waiter = NULL;
    t->cancel_requests = 0;
    t->shielded = false;
    t->waits_for_scope = false;
    t->scope_expired = t->started = false;
    t->scope_deadline = CORIO_NEVER;
    t->scope_top = NULL;
    t->tprev = NULL;
    t->label = 0;
}

/* Other sizes, and every size once mapping has failed, get their stack at
 * spawn, so that spawning itself reports -ENOMEM. */
static __attribute__((noinline)) int task_bind_stack_now(corio_task_t *t, size_t stack_size)
{
    int rc = corio__stack_get(&t->fut.loop->stacks, stack_size, &t->coro.stack);
    if (rc < 0)
        return rc;
    corio__coro_create(&t->coro, task_entry, t);
    return 0;
}

static __attribute__((noinline)) int task_copy_name(corio_task_t *t, const char *name)
{
    char *copy = strdup(name);
    t->label = (uintptr_t)copy;
    return copy ? 0 : -ENOMEM;
}

static inline int task_set_name(corio_task_t *t, const char *name)
{
    if (name)
        return task_copy_name(t, name);
    /* "task-N" is formatted when asked for */
    t->label = (uintptr_t)++t->fut.loop->task_counter << 1 | 1;
    return 0;
}

static void task_link(corio_task_t *t)
{
    corio_loop_t *loop = t->fut.loop;
    t->tnext = loop->tasks;
    if (loop->tasks)
        loop->tasks->tprev = t;
    loop->tasks = t;
    loop->stats.tasks_live++;
}

int corio_spawn(corio_loop_t *loop, corio_task_t **out, corio_task_fn fn, void *arg,
                const corio_task_options_t *opts)
{
    if (out)
        *out = NULL;
    if (!loop)
        loop = corio__tls_loop;
    if (!loop || !fn || loop->closed || loop != corio__tls_loop)
        return -EINVAL;
    corio_task_t *t = corio__task_alloc(loop);
    if (!t)
        return -ENOMEM;
    task_init(t, loop, fn, arg);
    size_t stack_size = opts ? opts->stack_size : 0;
    bool lazy = (stack_size == 0 || stack_size == CORIO_DEFAULT_STACK_SIZE) &&
                !loop->stacks.exhausted;
    int rc = lazy ? 0 : task_bind_stack_now(t, stack_size);
    if (rc == 0) {
        rc = task_set_name(t, opts ? opts->name : NULL);
        if (rc < 0 && !lazy) {
            corio__coro_destroy(&t->coro);
            corio__stack_put(&loop->stacks, &t->coro.stack);
        }
    }
    if (rc < 0) {
        corio__task_dealloc(t);
        return rc;
    }
    corio__future_init(&t->fut, loop);
    t->fut.is_task = true;
    task_link(t);
    schedule_step(t);
    if (out) {
        /* The loop's reference and the caller's: the record is not shared
         * yet, so no atomic add is needed. */
        atomic_store_explicit(&t->fut.refs, 2, memory_order_relaxed);
        *out = t;
    }
    return 0;
}

void corio_task_release(corio_task_t *t)
{
    if (t && corio__future_drop_ref(&t->fut))
        corio__task_free(t);
}

corio_future_t *corio_task_future(corio_task_t *t) { return t ? &t->fut : NULL; }

corio_task_t *corio_future_task(corio_future_t *f)
{
    return f && f->is_task ? (corio_task_t *)f : NULL;
}

const char *corio__task_name_safe(const corio_task_t *t, char buf[32])
{
    const char *name = task_name_storage(t);
    if (name)
        return name;
    char digits[24];
    int n = 0;
    for (uint64_t id = t->label >> 1; id; id /= 10)
        digits[n++] = (char)('0' + id % 10);
    char *p = buf;
    memcpy(p, "task-", 5);
    p += 5;
    while (n)
        *p++ = digits[--n];
    *p = 0;
    return buf;
}

const char *corio_task_name(const corio_task_t *t)
{
    if (!t)
        return NULL;
    if (!task_name_storage(t)) {
        char buf[32];
        char *copy = strdup(corio__task_name_safe(t, buf));
        if (!copy)
            return "task"; /* out of memory: a name that needs no storage */
        ((corio_task_t *)t)->label = (uintptr_t)copy;
    }
    return task_name_storage(t);
}

bool corio_task_done(const corio_task_t *t) { return t && corio_future_done(&t->fut); }

size_t corio_all_tasks(corio_loop_t *loop, corio_task_t **out, size_t max)
{
    if (!loop)
        loop = corio__tls_loop;
    if (!loop)
        return 0;
    size_t n = 0;
    for (corio_task_t *t = loop->tasks; t; t = t->tnext, n++)
        if (out && n < max)
            out[n] = t;
    return n;
}

/* ---- waits ------------------------------------------------------------------ */

static void schedule_step(corio_task_t *t)
{
    /* The step handle is the task's own, on its own loop: the checks of
     * corio_loop_call_soon are not needed on this hot path. */
    corio_handle_t *h = &t->step;
    if (h->state != CORIO_H_IDLE)
        return;
    h->fn = task_step;
    h->arg = t;
    h->loop = t->fut.loop;
    h->owned = 0;
    corio__ready_push(t->fut.loop, h);
}

/* Direct switches. A task that suspends or finishes while the head of the
 * ready FIFO is another task's step switches straight to that task,
 * skipping the trip through the loop's stack. The order of the ready
 * handles is the same (the head would run next anyway), and the switch
 * takes one of the handles the turn still owes (run_ready), or one of a
 * budget of 64 a turn for handles readied meanwhile, which bounds how much
 * later than otherwise the loop polls for I/O and timers.
 *
 * A suspending task goes only to a started task; a finishing one also
 * starts a new task, binding its stack and giving it the loop's control
 * words (a new task starts with the loop thread's, not its predecessor's).
 * The finished task is retired by the one it switched to. Returns the task
 * to switch to, made current, or NULL for the loop's stack. */
#define CORIO_DIRECT_SWITCH_BUDGET 64

/* A handle the turn owes, or one of its budget for handles readied during
 * the turn (tasks handing work to each other, a queue's ping-pong). */
static inline bool take_switch(corio_loop_t *loop)
{
    if (loop->ready_left) {
        loop->ready_left--;
        return true;
    }
    if (loop->direct_turn != loop->stats.turns) {
        loop->direct_turn = loop->stats.turns;
        loop->direct_left = CORIO_DIRECT_SWITCH_BUDGET;
    }
    if (loop->direct_left <= 0)
        return false;
    loop->direct_left--;
    return true;
}

static corio_task_t *take_direct_next(corio_task_t *t, bool finishing)
{
    corio_loop_t *loop = t->fut.loop;
    corio_handle_t *h = loop->ready.next;
    if (h == &loop->ready || h->fn != task_step)
        return NULL;
    corio_task_t *n = h->arg;
    if (n == t || (!n->started && !finishing))
        return NULL;
    /* A new task needs a stack, this one's being still in use. If none can
     * be had, nothing fails: n goes through the loop's step once t is
     * retired, and takes t's. */
    if (!n->started && !n->coro.stack.map && (n->cancel_requests || bind_lazy_stack(n) < 0))
        return NULL;
    if (!take_switch(loop))
        return NULL;
    corio__ready_remove(loop, h); /* n's step runs here */
    if (!n->started)
        corio__ctx_inherit_from(&n->coro.ctx, &loop->main_coro.ctx);
    loop->current = n;
    return n;
}

static void suspend(corio_task_t *t)
{
    corio_loop_t *loop = t->fut.loop;
    corio_task_t *n = take_direct_next(t, false);
    corio__coro_switch(&t->coro, n ? &n->coro : &loop->main_coro, false);
    /* Whoever switched back to t made it current. */
    retire_left_behind(loop);
}

static void interrupt(corio_task_t *t, int reason)
{
    corio_waiter_t *w = t->waiter;
    if (!w || w->woken || w->interrupt)
        return;
    w->interrupt = reason;
    schedule_step(t);
}

static void on_deadline(void *arg) { interrupt(arg, -ETIMEDOUT); }

void corio__wake(corio_waiter_t *w, int result)
{
    if (w->woken)
        return;
    w->result = result;
    w->woken = true;
    corio_task_t *t = w->task;
    if (t->waiter == w)
        schedule_step(t);
}

static void wake_from_thread(void *arg)
{
    corio_waiter_t *w = arg;
    corio__wake(w, w->result);
}

void corio__call_soon_threadsafe_handle(corio_loop_t *loop, corio_handle_t *h);

void corio__wake_threadsafe(corio_loop_t *loop, corio_waiter_t *w, corio_handle_t *h, int result)
{
    w->result = result;
    h->fn = wake_from_thread;
    h->arg = w;
    h->owned = 0;
    corio__call_soon_threadsafe_handle(loop, h);
}

static int64_t effective_deadline(const corio_task_t *t, int64_t deadline)
{
    return t->scope_deadline < deadline ? t->scope_deadline : deadline;
}

int corio__interrupt_pending(int64_t deadline)
{
    corio_task_t *t = corio_current_task();
    if (!t)
        return 0;
    if (t->cancel_requests)
        return -ECANCELED;
    int64_t eff = effective_deadline(t, deadline);
    if (eff != CORIO_NEVER && eff <= corio_now()) {
        t->scope_expired = t->scope_deadline <= deadline;
        return -ETIMEDOUT;
    }
    return 0;
}

/* Suspends without the entry checks: for callers that already committed
 * something (a kernel operation) that must be waited for. */
int corio__suspend(corio_waiter_t *w, int64_t deadline)
{
    corio_task_t *t = w->task;
    int64_t eff = effective_deadline(t, deadline);
    w->woken = false;
    w->interrupt = 0;
    w->deadline = deadline;
    corio_handle_t timer = {0};
    w->timer = &timer;
    t->waiter = w;
    t->scope_expired = false;
    int rc = 0, reason = 0;
    if (eff != CORIO_NEVER) {
        rc = corio_loop_call_at(t->fut.loop, &timer, eff, on_deadline, t);
        if (rc < 0) {
            /* No deadline timer (out of memory): the wait fails rather
             * than risk waiting forever. */
            reason = rc;
            w->interrupt = rc;
            if (!w->detach || w->detach(w))
                goto done;
        }
    }
    for (;;) {
        suspend(t);
        if (w->woken)
            break;
        if (!w->interrupt)
            continue; /* a stray step: keep waiting */
        reason = w->interrupt;
        if (!w->detach || w->detach(w)) {
            rc = reason;
            break;
        }
        /* The source still owns w (a kernel operation being cancelled): wait
         * for its own completion before the stack frame may go. */
    }
done:
    if (corio_handle_pending(&timer))
        corio_handle_cancel(&timer);
    if (reason == -ETIMEDOUT)
        t->scope_expired = t->scope_deadline <= deadline;
    t->waiter = NULL;
    if (!w->woken)
        return rc;
    /* An operation cancelled because of the interrupt reports the reason. */
    return w->result == -ECANCELED && reason ? reason : w->result;
}

void corio__task_deadline_changed(corio_task_t *t)
{
    corio_waiter_t *w = t->waiter;
    if (!w || !w->timer || w->woken || w->interrupt)
        return;
    corio_handle_t *timer = w->timer;
    if (corio_handle_pending(timer))
        corio_handle_cancel(timer);
    int64_t eff = effective_deadline(t, w->deadline);
    if (eff != CORIO_NEVER && corio_loop_call_at(t->fut.loop, timer, eff, on_deadline, t) < 0)
        interrupt(t, -ENOMEM); /* no timer: end the wait rather than lose its deadline */
}

int corio__wait(corio_waiter_t *w, int64_t deadline)
{
    int rc = corio__interrupt_pending(deadline);
    if (rc)
        return rc;
    return corio__suspend(w, deadline);
}

/* ---- cancellation ------------------------------------------------------------ */

int corio_task_cancel(corio_task_t *t)
{
    if (!t)
        return -EINVAL;
    if (task_finished(t))
        return -EALREADY;
    t->cancel_requests++;
    interrupt(t, -ECANCELED);
    return 0;
}

int corio__task_cancel_future(corio_future_t *f) { return corio_task_cancel((corio_task_t *)f); }

int corio_task_uncancel(corio_task_t *t)
{
    if (!t)
        return -EINVAL;
    if (t->cancel_requests > 0)
        t->cancel_requests--;
    return t->cancel_requests;
}

int corio_task_cancelling(const corio_task_t *t) { return t ? t->cancel_requests : 0; }

/* ---- sleep -------------------------------------------------------------------- */

static int yield_now(corio_task_t *t)
{
    int rc = corio__interrupt_pending(CORIO_NEVER);
    if (rc)
        return rc;
    corio_waiter_t w = {.task = t}; /* no timer: a deadline change passes it by */
    t->waiter = &w;
    schedule_step(t);
    suspend(t);
    rc = w.interrupt;
    t->waiter = NULL;
    return rc;
}

int corio_sleep(int64_t ns)
{
    corio_task_t *t = corio_current_task();
    if (!t)
        return -EDEADLK;
    if (ns <= 0)
        return yield_now(t);
    corio_waiter_t w = {.task = t};
    int rc = corio__wait(&w, corio__deadline_after(corio_now(), ns));
    if (rc == -ETIMEDOUT && !t->scope_expired)
        return 0;
    return rc;
}

/* ---- running ------------------------------------------------------------------- */

static bool future_is_done(void *f) { return corio_future_done(f); }

/* A thread-safe future completes in another thread, which must wake the
 * loop: its done-callback sends a handle, whose arrival the run awaits. */
typedef struct ts_wake {
    corio_handle_t h;
    corio_loop_t *loop;
    bool arrived;
} ts_wake_t;

static void ts_wake_arrived(void *arg) { ((ts_wake_t *)arg)->arrived = true; }

static void ts_wake_send(corio_future_t *f, void *arg)
{
    (void)f;
    ts_wake_t *w = arg;
    w->h.fn = ts_wake_arrived;
    w->h.arg = w;
    corio__call_soon_threadsafe_handle(w->loop, &w->h);
}

static bool ts_wake_done(void *arg) { return ((ts_wake_t *)arg)->arrived; }

static int run_until_threadsafe(corio_loop_t *loop, corio_future_t *f)
{
    /* Checked first: once the callback is added, the run must happen (or
     * be withdrawn), or a handle on this stack would stay queued. */
    int rc = corio__loop_run_check(loop);
    if (rc < 0 || corio_future_done(f))
        return rc;
    ts_wake_t w = {.loop = loop};
    rc = corio_future_add_done_callback(f, ts_wake_send, &w);
    if (rc < 0)
        return rc;
    rc = corio__loop_run_until(loop, ts_wake_done, &w);
    /* Stopped first: the callback is withdrawn, unless it fired already;
     * then its handle is on the way and must arrive before w goes. */
    if (!w.arrived && corio_future_remove_done_callback(f, ts_wake_send, &w) == 0)
        while (!w.arrived && rc == 0)
            rc = corio__loop_run_until(loop, ts_wake_done, &w);
    return rc;
}

int corio_loop_run_until_complete(corio_loop_t *loop, corio_future_t *f)
{
    if (!f)
        return -EINVAL;
    if (f->loop && f->loop != loop)
        return -EINVAL;
    int rc = loop && !f->loop && corio__future_threadsafe(f) && loop == corio__tls_loop
                 ? run_until_threadsafe(loop, f)
                 : corio__loop_run_until(loop, future_is_done, f);
    if (rc < 0)
        return rc;
    if (!corio_future_done(f))
        return CORIO_EINVALSTATE; /* stopped before the future completed */
    return corio_future_result(f, NULL);
}

static bool no_tasks_left(void *loop) { return ((corio_loop_t *)loop)->tasks == NULL; }

static void cancel_leftovers(corio_loop_t *loop)
{
    while (loop->tasks) {
        for (corio_task_t *t = loop->tasks; t; t = t->tnext)
            if (!t->cancel_requests)
                corio_task_cancel(t);
        corio__loop_run_until(loop, no_tasks_left, loop);
    }
}

intptr_t corio_run(corio_task_fn main, void *arg)
{
    if (!main)
        return -EINVAL;
    corio_loop_t *loop;
    int rc = corio_loop_new(&loop, NULL);
    if (rc < 0)
        return rc;
    corio_task_t *t;
    rc = corio_spawn(loop, &t, main, arg, &(corio_task_options_t){.name = "main"});
    if (rc < 0) {
        corio_loop_free(loop);
        return rc;
    }
    corio_loop_run_until_complete(loop, &t->fut);
    cancel_leftovers(loop);
    corio_value_t v = {NULL, 0};
    intptr_t result = corio_future_result(&t->fut, &v);
    if (result == 0)
        result = (intptr_t)v.ptr;
    corio_task_release(t);
    rc = corio_loop_free(loop);
    if (rc < 0)
        fprintf(stderr, "corio_run: closing the loop failed: %s\n", corio_strerror(rc));
    return result;
}
