/* corio executors: concurrent.futures for C.
 *
 * One interface, corio_executor_t, over a thread pool and a process pool.
 * Both run the same task signature, corio_executor_fn: it reads *arg and
 * writes *result in the one result form (common.h), returning 0 or a
 * negative error code. A task's error fails its future with that code;
 * a process worker that dies fails its future with CORIO_EWORKERDIED and a
 * message naming the signal or exit status, so the two are told apart.
 *
 * Arguments: bytes (len > 0) are copied at submit, so the caller may free
 * them at once; a pointer-sized value (len == 0) is passed as is (in a
 * process worker only its integer value is meaningful). Results with
 * len > 0 must be malloc'd by the task; the future then owns them.
 *
 * Executor futures are thread-safe futures (future.h): wait on them with
 * corio_await_timeout from any thread, or from a coroutine, which suspends
 * only that task. Their done-callbacks run in the thread that completes
 * them: a thread pool's worker, or a process pool's manager thread. */
#ifndef CORIO_EXECUTOR_H
#define CORIO_EXECUTOR_H

#include "common.h"
#include "future.h"

CORIO_BEGIN_DECLS

typedef struct corio_executor corio_executor_t;

/* A task: 0 and *result, or a negative error code. */
typedef int (*corio_executor_fn)(const corio_value_t *arg, corio_value_t *result);
/* A worker initializer: runs once per worker before its first task; a
 * non-zero return breaks the pool (futures fail with CORIO_EBROKEN). */
typedef int (*corio_initializer_fn)(const corio_value_t *arg);

typedef struct corio_thread_pool_options {
    int max_workers;                /* 0: min(32, CPUs + 4) */
    corio_initializer_fn initializer; /* NULL: none */
    corio_value_t initarg;          /* passed to initializer (not copied) */
    const char *thread_name_prefix; /* NULL: "corio-pool"; copied */
} corio_thread_pool_options_t;

typedef enum corio_start_method {
    CORIO_START_SPAWN = 0, /* default: re-executes this program (posix_spawn) */
    CORIO_START_FORK = 1,  /* fork(): unsafe when other threads hold locks;
                              stdio is flushed first, so nothing buffered
                              before the fork is written twice */
} corio_start_method_t;

typedef struct corio_process_pool_options {
    int max_workers;                  /* 0: CPUs */
    corio_initializer_fn initializer; /* NULL: none; named like tasks */
    corio_value_t initarg;            /* bytes copied to every worker */
    int max_tasks_per_child;          /* 0: unlimited */
    corio_start_method_t start_method;
    int64_t task_timeout_ns;          /* <= 0: none; else a hung worker is
                                         killed, its future fails -ETIMEDOUT */
} corio_process_pool_options_t;

/* Creates a thread pool (ThreadPoolExecutor); workers start on demand and
 * are reused. opts may be NULL. Returns 0, -EINVAL or -ENOMEM. Any thread.
 * A task may submit another and wait for it while a worker is free. While
 * tasks are tiny and the queue is long a worker takes a batch of up to 128
 * queued jobs; a task that blocks on a future hands the rest of its batch
 * back to the queue first, so a job it waits for is never stuck behind it. */
CORIO_API int corio_thread_pool_new(corio_executor_t **out, const corio_thread_pool_options_t *opts);

/* Creates a process pool (ProcessPoolExecutor) and starts its workers.
 * With spawn, tasks and the initializer must live in a module loaded at
 * program start (the executable or its libraries). A worker that dies fails
 * only the task it was running (CORIO_EWORKERDIED, its message naming the
 * signal or exit status) and is replaced; one past task_timeout_ns is
 * killed (-ETIMEDOUT). A worker that dies while starting breaks the pool,
 * unless SIGKILL did it. Workers exit when this process dies. Returns 0,
 * -EINVAL, -ENOMEM, CORIO_ENONAME (initializer) or a spawn/fork error.
 * Any thread. */
CORIO_API int corio_process_pool_new(corio_executor_t **out, const corio_process_pool_options_t *opts);

/* Schedules fn(arg). On success *out is a new reference the caller releases
 * with corio_future_unref. Never blocks on the workers. Returns 0,
 * CORIO_ESHUTDOWN after shutdown, CORIO_EBROKEN on a broken pool,
 * CORIO_ENONAME when a process pool cannot name fn, -EINVAL, -ENOMEM. */
CORIO_API int corio_executor_submit(corio_executor_t *ex, corio_executor_fn fn,
                                    corio_value_t arg, corio_future_t **out);

/* Stops accepting work. cancel_futures cancels what has not started; wait
 * blocks until every started task has finished and the workers are gone.
 * Calling it again, from several threads at once too, is harmless. Returns
 * 0, -EINVAL, or -EDEADLK for wait on one of the pool's own threads (a
 * done-callback in a worker or a process pool's manager): it shuts down
 * without waiting there, and a later free from another thread waits. */
CORIO_API int corio_executor_shutdown(corio_executor_t *ex, bool wait, bool cancel_futures);

/* Shuts down (wait, no cancel) and frees the executor. Call it from a
 * thread of its own: on one of the pool's threads it only shuts the pool
 * down and frees nothing (the pool is still running that thread). */
CORIO_API void corio_executor_free(corio_executor_t *ex);

CORIO_API int corio_executor_max_workers(const corio_executor_t *ex);
/* Live workers (threads or processes) right now. */
CORIO_API int corio_executor_workers(corio_executor_t *ex);
/* Process pools: fills pids with at most max worker pids; returns how many
 * workers there are (pids may be NULL when max is 0). 0 for thread pools;
 * -EINVAL for a NULL ex, a negative max, or NULL pids with max > 0. */
CORIO_API int corio_executor_worker_pids(corio_executor_t *ex, int *pids, int max);

/* ---- map: results in input order, consumed lazily ----------------------- */

typedef struct corio_map_iter corio_map_iter_t;

/* Runs fn over inputs[0..n) in chunks of chunksize (0 means 1). At most a
 * bounded number of chunks is in flight (four per worker, or more small
 * ones: up to 65,536 items holding at most 4 MiB of argument bytes); more
 * are submitted as results are consumed. timeout_ns (< 0: none) is a deadline
 * for the whole map, counted from this call. The inputs array and its
 * bytes must stay valid until corio_map_free; each chunk's bytes are copied
 * when it is submitted. */
CORIO_API int corio_executor_map(corio_executor_t *ex, corio_executor_fn fn,
                                 const corio_value_t *inputs, size_t n, size_t chunksize,
                                 int64_t timeout_ns, corio_map_iter_t **out);
/* The next result in input order: returns 1 and *out (bytes now owned by
 * the caller: free()), 0 when exhausted, the task's error code for a failed
 * item (iteration goes on, also for an item's own -ETIMEDOUT from
 * task_timeout_ns), or -ETIMEDOUT when the map's deadline passes before
 * the next result is there (a result done by then is still returned),
 * after which it is exhausted and the remaining work is cancelled. Blocks
 * the thread, or in a coroutine suspends the task. One thread at a time. */
CORIO_API int corio_map_next(corio_map_iter_t *it, corio_value_t *out);
/* Cancels what has not started and frees the iterator and unread results. */
CORIO_API void corio_map_free(corio_map_iter_t *it);

/* ---- waiting on many futures -------------------------------------------- */

/* corio_wait_mode_t (CORIO_FIRST_COMPLETED ...) is defined in common.h and
 * shared with asyncio-style waits on tasks. */

/* concurrent.futures.wait: waits until mode is met or timeout_ns passes
 * (< 0: no limit). done and not_done (each may be NULL, else room for n)
 * receive borrowed pointers, duplicates removed; *ndone and *nnot_done
 * their counts. Returns 0 (also on timeout, as in Python), -EINVAL (also
 * for a pending future of a closed loop, which can never complete),
 * -ENOMEM, or -ECANCELED when the calling task is cancelled. Blocks the
 * thread, or in a coroutine suspends the task; outside a coroutine, a wait
 * that would block on a pending loop future returns -EDEADLK at once (the
 * lists are still filled), as corio_await_timeout does. */
CORIO_API int corio_wait(corio_future_t *const *futures, size_t n, int64_t timeout_ns,
                         corio_wait_mode_t mode, corio_future_t **done, size_t *ndone,
                         corio_future_t **not_done, size_t *nnot_done);

typedef struct corio_as_completed corio_as_completed_t;

/* concurrent.futures.as_completed: yields each distinct future once, in
 * completion order (those already done first). timeout_ns (< 0: none) is
 * a deadline for the whole iteration, counted from this call. -EINVAL for
 * a pending future of a closed loop. */
CORIO_API int corio_as_completed_new(corio_future_t *const *futures, size_t n,
                                     int64_t timeout_ns, corio_as_completed_t **out);
/* Returns 1 and *f (borrowed), 0 when every future was yielded, or
 * -ETIMEDOUT / -ECANCELED; -EDEADLK outside a coroutine when it would
 * block while a loop future is pending. */
CORIO_API int corio_as_completed_next(corio_as_completed_t *it, corio_future_t **f);
CORIO_API void corio_as_completed_free(corio_as_completed_t *it);

/* ---- the loop's default executor ------------------------------------------ */

/* loop.run_in_executor: submits fn(arg) to ex, or to the current loop's
 * default thread pool when ex is NULL (created on first use, shut down by
 * corio_run). *out is a new reference. Loop thread when ex is NULL. */
CORIO_API int corio_run_in_executor(corio_executor_t *ex, corio_executor_fn fn,
                                    corio_value_t arg, corio_future_t **out);
/* asyncio.to_thread: runs fn(arg) in the default pool and awaits it; returns
 * fn's code and *out (bytes owned by the caller). Coroutine only. */
CORIO_API int corio_to_thread(corio_executor_fn fn, corio_value_t arg, corio_value_t *out);

CORIO_END_DECLS

#endif
