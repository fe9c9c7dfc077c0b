/* corio tasks: a function run as a stackful coroutine on a loop, whose
 * outcome is a future.
 *
 * A task function returns a pointer-sized value; a value in -4095..-1 (see
 * corio_is_error) is an error code instead: returning -ECANCELED ends the
 * task cancelled, any other error ends it failed, anything else is its
 * result (len 0 in corio_value_t).
 *
 * Cancellation is level-triggered: after corio_task_cancel, the task's
 * current await and every later one return -ECANCELED at once, until the
 * task calls corio_task_uncancel as many times as it was cancelled. */
#ifndef CORIO_TASK_H
#define CORIO_TASK_H

#include "future.h"

CORIO_BEGIN_DECLS

typedef struct corio_task corio_task_t;
typedef intptr_t (*corio_task_fn)(void *arg);

typedef struct corio_task_options {
    const char *name;  /* copied; NULL gives "task-N" */
    size_t stack_size; /* bytes; 0 gives CORIO_DEFAULT_STACK_SIZE; 4 GiB or more is -EINVAL */
} corio_task_options_t;

#define CORIO_DEFAULT_STACK_SIZE ((size_t)64 * 1024)

/* Spawns fn(arg) as a task on loop (the current one if NULL); it starts on
 * a later iteration. With out, the caller holds a reference released by
 * corio_task_release; without, the task is detached. Returns 0, -ENOMEM when
 * no stack can be mapped (vm.max_map_count, memory), -EINVAL. Loop thread.
 * A default-sized task takes its stack from the loop's pool on its first
 * step; if none can be mapped then, the task ends failed with -ENOMEM
 * without running, and later spawns map at once and return -ENOMEM. */
CORIO_API int corio_spawn(corio_loop_t *loop, corio_task_t **out, corio_task_fn fn, void *arg,
                          const corio_task_options_t *opts);
/* Drops a reference: on the loop's thread while the loop is open, as for
 * every loop future; once the loop is closed, on any thread (the record
 * outlives the loop until its last reference goes). */
CORIO_API void corio_task_release(corio_task_t *t);

/* The task's future (borrowed, valid while the task is referenced). */
CORIO_API corio_future_t *corio_task_future(corio_task_t *t);
/* The task owning a task future, or NULL for any other future. */
CORIO_API corio_task_t *corio_future_task(corio_future_t *f);

/* Requests cancellation. Returns 0, or -EALREADY when the task is done
 * (nothing happens). Loop thread. */
CORIO_API int corio_task_cancel(corio_task_t *t);
/* Withdraws one cancellation request; returns how many remain. */
CORIO_API int corio_task_uncancel(corio_task_t *t);
/* Pending cancellation requests. */
CORIO_API int corio_task_cancelling(const corio_task_t *t);

CORIO_API const char *corio_task_name(const corio_task_t *t);
CORIO_API bool corio_task_done(const corio_task_t *t);

/* The running task, or NULL outside a coroutine. */
CORIO_API corio_task_t *corio_current_task(void);
/* Fills out with at most max live tasks of loop; returns how many exist. */
CORIO_API size_t corio_all_tasks(corio_loop_t *loop, corio_task_t **out, size_t max);

/* Suspends the current task for ns nanoseconds; 0 is a plain yield.
 * Returns 0, -ECANCELED, -ETIMEDOUT (scope expired), -EDEADLK outside a
 * coroutine. */
CORIO_API int corio_sleep(int64_t ns);

/* Awaits a task: corio_await on its future. */
static inline int corio_task_await(corio_task_t *t, corio_value_t *out)
{
    return corio_await(corio_task_future(t), out);
}

/* asyncio.run: creates a loop on this thread, runs main(arg) as a task to
 * completion, cancels and awaits the tasks left, shuts down the loop's
 * default executor, closes the loop. Returns main's return value (an error
 * code when it failed or was cancelled, or a loop set-up error). */
CORIO_API intptr_t corio_run(corio_task_fn main, void *arg);

/* run_until_complete: runs loop until f is done; returns corio_future_result's
 * code. -EBUSY if the loop runs already, -EINVAL on a closed loop. f may be
 * thread-safe (an executor's): its completion in another thread wakes the
 * loop, as asyncio does for a concurrent.futures Future. */
CORIO_API int corio_loop_run_until_complete(corio_loop_t *loop, corio_future_t *f);

CORIO_END_DECLS

#endif
