/* corio composition: gather, wait_for, shield, timeout scopes and task
 * groups (asyncio's structured concurrency). corio_wait and
 * corio_as_completed (executor.h) wait on any futures, tasks included, and
 * never cancel them.
 *
 * Every call here that waits must run in a task (-EDEADLK outside one) and
 * belongs to the loop's thread. */
#ifndef CORIO_GROUP_H
#define CORIO_GROUP_H

#include "task.h"

CORIO_BEGIN_DECLS

/* ---- gather ------------------------------------------------------------------ */

/* One future's outcome: code is 0 with value (bytes still owned by the
 * future), or the future's error code (-ECANCELED when cancelled). */
typedef struct corio_outcome {
    int code;
    corio_value_t value;
} corio_outcome_t;

/* Return every outcome instead of stopping at the first error. */
#define CORIO_GATHER_COLLECT 1u

/* Waits for futures[0..n) and writes their outcomes, in order, to results
 * (room for n, or NULL). By default the first future to fail (in completion
 * order; a cancelled one counts) cancels the others; gather waits until
 * they are done and returns that error. With CORIO_GATHER_COLLECT it waits
 * for all and returns 0. When the calling task is cancelled or its scope
 * expires, every future still pending is cancelled and awaited, and gather
 * returns -ECANCELED or -ETIMEDOUT. A future listed twice is cancelled
 * once. -EINVAL for another loop's future. The caller keeps its
 * references. */
CORIO_API int corio_gather(corio_future_t *const *futures, size_t n, unsigned flags,
                           corio_outcome_t *results);

/* ---- wait_for and shield ---------------------------------------------------- */

/* Awaits f for at most timeout_ns (< 0: no limit). On timeout, or when the
 * caller is cancelled or its scope expires, f is cancelled and wait_for
 * returns only once f is done. Returns f's outcome (0 and *out, as
 * corio_await; f completing in the same turn as the timeout still counts),
 * -ETIMEDOUT when it timed out and f ended cancelled, and -ECANCELED
 * whenever the calling task has a cancellation pending: even when f
 * completed in the same loop turn, a cancellation is never swallowed (f
 * keeps its result; *out may have been written). The caller keeps its
 * reference to f. */
CORIO_API int corio_wait_for(corio_future_t *f, int64_t timeout_ns, corio_value_t *out);

/* asyncio.shield: *out is a future (a new reference the caller releases)
 * that completes as f does; cancelling it leaves f running. When f is done
 * already, *out is f itself (a new reference). Bytes results are copied. */
CORIO_API int corio_shield(corio_future_t *f, corio_future_t **out);

/* ---- timeout scopes ----------------------------------------------------------- */

/* A timeout scope around a block of awaits (asyncio.timeout). Scopes nest;
 * the nearest deadline applies. While the scope's deadline has passed,
 * every await in the block returns -ETIMEDOUT at once (level-triggered, as
 * cancellation is). The caller allocates it, usually on its stack:
 *
 *     corio_timeout_t s;
 *     corio_timeout(&s, 100 * CORIO_NS_PER_MS);
 *     int rc = do_work();
 *     rc = corio_timeout_exit(&s, rc); // -ETIMEDOUT: this scope expired
 */
typedef struct corio_timeout {
    corio_task_t *task;
    struct corio_timeout *outer;
    int64_t deadline; /* this scope's own, absolute monotonic ns */
    int64_t base;     /* the task's scope deadline before the outermost scope */
    bool active, expired;
} corio_timeout_t;

/* Enters a scope expiring delay_ns from now (< 0: never) or at the absolute
 * monotonic time deadline (CORIO_NEVER: never). Returns 0, -EDEADLK outside
 * a task, -EINVAL. */
CORIO_API int corio_timeout(corio_timeout_t *s, int64_t delay_ns);
CORIO_API int corio_timeout_at(corio_timeout_t *s, int64_t deadline);
/* Moves the deadline (CORIO_NEVER removes it), from the scope's task or
 * from another task of its loop; a wait in progress sees the new one.
 * Returns 0, or -EINVAL when the scope is not active. */
CORIO_API int corio_timeout_reschedule(corio_timeout_t *s, int64_t deadline);
/* The scope's deadline. */
CORIO_API int64_t corio_timeout_when(const corio_timeout_t *s);
/* Leaves the scope (innermost first). rc is the block's result: returns
 * -ETIMEDOUT when the block ended by this scope's expiry (then
 * corio_timeout_expired is true), and rc otherwise: a per-call timeout's
 * -ETIMEDOUT stays the block's own, even if the deadline passed after it
 * without a wait, as in asyncio; a -ETIMEDOUT of an
 * outer scope passes through for that scope to claim, and -ECANCELED (a
 * cancellation from outside) is never turned into a timeout; when the
 * scope expired and the task was cancelled in the same turn, it returns
 * -ECANCELED (expired is still true). -EINVAL when s is not the task's
 * innermost scope. */
CORIO_API int corio_timeout_exit(corio_timeout_t *s, int rc);
/* True when the block ended by this scope's expiry (after exit). */
CORIO_API bool corio_timeout_expired(const corio_timeout_t *s);

/* ---- task groups ------------------------------------------------------------------ */

/* asyncio.TaskGroup. The caller allocates it, initialises it in the parent
 * task, spawns children, and always calls corio_task_group_exit with the
 * block's result, then corio_task_group_destroy. Fields are private. */
typedef struct corio_task_group {
    corio_task_t *parent;
    corio_task_t **tasks;
    size_t ntasks, cap;
    size_t pending; /* children whose done-callback has not run */
    int *errors;
    size_t nerrors, errcap;
    int unrecorded; /* an error no memory was left to record: still reported */
    struct corio_waiter *exit_waiter;
    bool aborting, exiting, exited, parent_cancel_requested;
} corio_task_group_t;

/* Binds the group to the calling task. Returns 0, -EDEADLK outside a task,
 * -EINVAL. */
CORIO_API int corio_task_group_init(corio_task_group_t *g);
/* Spawns fn(arg) as a child (see corio_spawn); *out, when given, is a new
 * reference the caller releases. The first child to fail (an error other
 * than -ECANCELED) cancels its siblings and the parent's block. Returns 0,
 * -ESHUTDOWN once the group is aborting or exited, or corio_spawn's error. */
CORIO_API int corio_task_group_spawn(corio_task_group_t *g, corio_task_t **out, corio_task_fn fn,
                                     void *arg, const corio_task_options_t *opts);
/* Leaves the group: a failed block (rc < 0), a cancellation or a scope
 * expiry cancels the children; then waits for every child, whatever
 * happens meanwhile. Returns -ECANCELED while the parent has a cancellation
 * pending from outside the group (never swallowed), else the first child
 * error (block errors other than -ECANCELED/-ETIMEDOUT come first; see
 * corio_task_group_errors for all), else -ETIMEDOUT when the parent's scope
 * expired, else rc. Parent task only; once. */
CORIO_API int corio_task_group_exit(corio_task_group_t *g, int rc);
/* Copies up to max error codes (block error first, then children in the
 * order they failed); returns how many there are. An error that found no
 * memory to be recorded is missing here, but exit still returns one. */
CORIO_API size_t corio_task_group_errors(const corio_task_group_t *g, int *codes, size_t max);
/* Releases the children. -EBUSY before corio_task_group_exit. */
CORIO_API int corio_task_group_destroy(corio_task_group_t *g);

CORIO_END_DECLS

#endif
