/* corio event loop: one per thread, owning one io_uring.
 *
 * A loop and everything on it (tasks, loop futures, handles) belong to the
 * thread that created it. Only the *_threadsafe calls may come from other
 * threads. */
#ifndef CORIO_LOOP_H
#define CORIO_LOOP_H

#include "common.h"

CORIO_BEGIN_DECLS

typedef struct corio_loop corio_loop_t;
typedef void (*corio_callback_fn)(void *arg);

/* A scheduled callback (call_soon, call_later, call_at). The caller owns the
 * storage, as in libuv: it must stay valid until the callback has run or the
 * handle was cancelled. The fields are private. */
typedef struct corio_handle {
    corio_callback_fn fn;
    void *arg;
    struct corio_handle *prev, *next;
    struct corio_loop *loop;
    int64_t when;
    uint64_t seq;
    uint32_t heap_index;
    uint8_t state;
    uint8_t owned; /* allocated by the loop (no handle given) */
} corio_handle_t;

/* The loop will be driven from another main loop through
 * corio_loop_backend_fd. It sets the ring up without deferred task work
 * (IORING_SETUP_DEFER_TASKRUN), whose completions would not wake a poll()
 * on the ring's fd; a little slower, so it is not the default. */
#define CORIO_LOOP_EMBEDDED 1u

typedef struct corio_loop_options {
    unsigned sq_entries; /* io_uring SQ size; 0 means 256 */
    unsigned flags;      /* CORIO_LOOP_EMBEDDED or 0 */
} corio_loop_options_t;

typedef struct corio_loop_stats {
    uint64_t ops_in_flight;   /* kernel operations submitted, not completed */
    uint64_t timers_pending;  /* call_later/call_at handles and task deadlines */
    uint64_t ready_callbacks; /* callbacks queued to run */
    uint64_t cq_overflows;    /* times the kernel held back completions */
    uint64_t tasks_live;      /* tasks spawned and not yet finished */
    uint64_t turns;           /* loop iterations run */
} corio_loop_stats_t;

/* Context passed to the loop's error handler. */
typedef struct corio_error_context {
    const char *message; /* what happened */
    int code;            /* the error code involved, or 0 */
    const char *detail;  /* an optional message attached to the error, or NULL */
    const char *task_name; /* the task involved, or NULL */
} corio_error_context_t;

typedef void (*corio_error_handler_fn)(corio_loop_t *loop, const corio_error_context_t *ctx,
                                       void *arg);

/* Creates a loop for the calling thread; one loop per thread at a time.
 * Returns 0 and *out, or a negative errno: -EBUSY if this thread already has
 * one, -ENOSYS/-EPERM/-ENOMEM when io_uring cannot be set up, with the reason
 * written to stderr (disabled by sysctl, seccomp, memlock limit). */
CORIO_API int corio_loop_new(corio_loop_t **out, const corio_loop_options_t *opts);

/* Closes a stopped loop: releases its ring, stacks and handles; it can no
 * longer run (-EINVAL) and the thread may create a new loop. -EBUSY while
 * tasks are still alive or it is running (a close that finds live tasks only
 * after shutting down the default executor has still shut it down), also
 * from one of its own callbacks; -EPERM from another thread. Closing twice
 * returns 0. Loop thread. */
CORIO_API int corio_loop_close(corio_loop_t *loop);
/* Closes the loop if needed (same errors) and frees its memory. */
CORIO_API int corio_loop_free(corio_loop_t *loop);

/* The loop of the calling thread, or NULL. */
CORIO_API corio_loop_t *corio_loop_current(void);

/* Runs until corio_loop_stop; a stop made before the run still lets one
 * iteration run (asyncio's rule). Returns 0, -EINVAL on a closed/NULL loop,
 * or -EBUSY when already running (also from one of its callbacks). */
CORIO_API int corio_loop_run_forever(corio_loop_t *loop);

/* Runs one iteration: runs the ready callbacks, waits at most timeout_ns for
 * kernel completions or timers (0 never blocks, negative waits as long as
 * needed), runs what became ready. Returns the number of callbacks run, or
 * -EBUSY from one of the loop's own callbacks or tasks. */
CORIO_API int corio_loop_run_once(corio_loop_t *loop, int64_t timeout_ns);

/* Asks a running loop to return after the current iteration. */
CORIO_API int corio_loop_stop(corio_loop_t *loop);

/* The loop's clock: monotonic nanoseconds (the same clock as corio_now). */
CORIO_API int64_t corio_loop_time(corio_loop_t *loop);

/* Schedules fn(arg) on a later iteration, FIFO. h may be NULL (not
 * cancellable); otherwise the handle is initialised here. Loop thread. */
CORIO_API int corio_loop_call_soon(corio_loop_t *loop, corio_handle_t *h, corio_callback_fn fn,
                                   void *arg);
/* Schedules fn(arg) after delay_ns (call_later) or at the loop time when_ns
 * (call_at). Equal deadlines run first-in first-out. Loop thread. */
CORIO_API int corio_loop_call_later(corio_loop_t *loop, corio_handle_t *h, int64_t delay_ns,
                                    corio_callback_fn fn, void *arg);
CORIO_API int corio_loop_call_at(corio_loop_t *loop, corio_handle_t *h, int64_t when_ns,
                                 corio_callback_fn fn, void *arg);
/* Cancels a handle that has not run. Returns 0, or -EALREADY when it ran or
 * was cancelled already. Loop thread. */
CORIO_API int corio_handle_cancel(corio_handle_t *h);
/* True while the handle is scheduled. */
CORIO_API bool corio_handle_pending(const corio_handle_t *h);

/* Schedules fn(arg) on the loop from any thread and wakes it. The loop
 * allocates the handle; -ENOMEM if it cannot, -EINVAL once close began
 * (safe to race with close; the loop must not be freed while other threads
 * may still call). */
CORIO_API int corio_loop_call_soon_threadsafe(corio_loop_t *loop, corio_callback_fn fn, void *arg);

/* Embedding in another main loop (create the loop with CORIO_LOOP_EMBEDDED,
 * else backend_fd returns -ENOTSUP): the fd becomes readable when the loop has
 * kernel completions or thread-safe calls; the timeout says how long the host
 * may sleep before calling corio_loop_run_once(loop, 0): 0 when callbacks
 * are ready, -1 when nothing is scheduled, else nanoseconds to the next timer. */
CORIO_API int corio_loop_backend_fd(corio_loop_t *loop);
CORIO_API int64_t corio_loop_backend_timeout(corio_loop_t *loop);

CORIO_API int corio_loop_stats(corio_loop_t *loop, corio_loop_stats_t *out);

/* Replaces the error handler (NULL restores the default, which writes to
 * stderr). Loop thread. */
CORIO_API void corio_loop_set_error_handler(corio_loop_t *loop, corio_error_handler_fn fn,
                                            void *arg);
/* Reports an error through the loop's handler. */
CORIO_API void corio_loop_report(corio_loop_t *loop, const corio_error_context_t *ctx);

CORIO_END_DECLS

#endif
