/* corio futures: a result that arrives later.
 *
 * Two kinds share one type and one await call:
 * - a loop future belongs to a loop and its thread; its done-callbacks run
 *   on that loop, on a later iteration, in the order added;
 * - a thread-safe future (the executors') belongs to no loop; any thread may
 *   complete or wait on it; a done-callback added after completion runs at
 *   once in the adding thread, otherwise in the completing thread.
 *
 * States: pending, then exactly one of finished (result or error) and
 * cancelled. Setting an outcome twice returns CORIO_EINVALSTATE.
 *
 * Futures are reference counted; the creator holds one reference. A loop
 * future's references are taken and dropped on its loop's thread while the
 * loop is open (they are counted without atomics there), on any thread once
 * it closed. A future that failed and whose error nobody retrieved is
 * reported when freed. */
#ifndef CORIO_FUTURE_H
#define CORIO_FUTURE_H

#include "common.h"
#include "loop.h"

CORIO_BEGIN_DECLS

typedef struct corio_future corio_future_t;
/* A done-callback that cannot fail. */
typedef void (*corio_done_fn)(corio_future_t *f, void *arg);
/* A done-callback that can fail: it returns 0, or a negative errno value,
 * the C form of a callback that raises. A failure is reported (see
 * corio_future_add_fallible_callback) and never stops the other callbacks. */
typedef int (*corio_fallible_done_fn)(corio_future_t *f, void *arg);

typedef enum corio_future_state {
    CORIO_FUTURE_PENDING = 0,
    CORIO_FUTURE_RUNNING = 1, /* thread-safe futures: an executor runs it */
    CORIO_FUTURE_FINISHED = 2,
    CORIO_FUTURE_CANCELLED = 3,
} corio_future_state_t;

/* A loop future on loop (the current one if NULL). Loop thread. */
CORIO_API int corio_future_new(corio_loop_t *loop, corio_future_t **out);
/* A thread-safe future, for executors. Any thread. */
CORIO_API int corio_future_new_threadsafe(corio_future_t **out);

CORIO_API corio_future_t *corio_future_ref(corio_future_t *f);
/* Drops a reference; the last one frees the future and any owned bytes. */
CORIO_API void corio_future_unref(corio_future_t *f);

/* Completes the future. set_result copies nothing: with v.len > 0 the future
 * takes ownership of v.ptr (malloc'd). set_exception stores a code (< 0) and
 * an optional message (copied). Both return CORIO_EINVALSTATE if done, or
 * if f is a task's future (a task's outcome is what its function returns);
 * on that error, ownership of v.ptr stays with the caller. */
CORIO_API int corio_future_set_result(corio_future_t *f, corio_value_t v);
CORIO_API int corio_future_set_exception(corio_future_t *f, int code, const char *message);

/* Cancels a pending future (or one not yet running, for thread-safe ones).
 * For a task's future this requests the task's cancellation. Returns 0, or
 * -EALREADY when done (or running, for thread-safe futures). */
CORIO_API int corio_future_cancel(corio_future_t *f);

/* Executor implementers: marks a pending future running. Returns 0 when it
 * may run, -ECANCELED when it was cancelled (callbacks already ran). */
CORIO_API int corio_future_set_running_or_notify_cancel(corio_future_t *f);

CORIO_API corio_future_state_t corio_future_state(const corio_future_t *f);
CORIO_API bool corio_future_done(const corio_future_t *f);
CORIO_API bool corio_future_cancelled(const corio_future_t *f);
CORIO_API bool corio_future_running(const corio_future_t *f);

/* For a done future: 0 and *out (bytes stay owned by the future) when it has
 * a result; its error code (with *message if asked, owned by the future)
 * when it failed; -ECANCELED when cancelled; CORIO_EINVALSTATE while pending.
 * Either call marks the error retrieved. */
CORIO_API int corio_future_result(corio_future_t *f, corio_value_t *out);
/* Returns the error code (0 if it finished with a result). */
CORIO_API int corio_future_exception(corio_future_t *f, const char **message);
/* Like corio_future_result, but moves owned bytes to the caller (free()). */
CORIO_API int corio_future_take_result(corio_future_t *f, corio_value_t *out);

/* Adds a done-callback; they run in the order added (see the kinds above).
 * Returns 0, -ENOMEM, or -EINVAL for a loop future whose loop is closed
 * (the callback could never run). */
CORIO_API int corio_future_add_done_callback(corio_future_t *f, corio_done_fn fn, void *arg);
/* Removes every registration of (fn, arg); returns how many. */
CORIO_API int corio_future_remove_done_callback(corio_future_t *f, corio_done_fn fn, void *arg);

/* Adds a callback that can fail; it runs in order with the others, as
 * add_done_callback says. When it returns a negative value, a loop future
 * reports it to its loop's error handler (corio_loop_set_error_handler) and
 * a thread-safe future to the handler set below; the remaining callbacks
 * still run and the executor keeps working. Returns 0 or -ENOMEM. */
CORIO_API int corio_future_add_fallible_callback(corio_future_t *f, corio_fallible_done_fn fn,
                                                 void *arg);
/* Removes every registration of (fn, arg) made by the call above. */
CORIO_API int corio_future_remove_fallible_callback(corio_future_t *f,
                                                    corio_fallible_done_fn fn, void *arg);
/* Where thread-safe futures report failing callbacks, process-wide; the
 * handler is called with loop NULL in the thread that ran the callback.
 * NULL restores the default, a line on stderr. Any thread. */
CORIO_API void corio_future_set_callback_error_handler(corio_error_handler_fn fn, void *arg);

/* One await for every future.
 * In a coroutine: suspends the task until f is done (the loop runs others),
 * then returns what corio_future_result returns. Returns -ECANCELED when the
 * task is cancelled and -ETIMEDOUT when its timeout scope expires.
 * Outside a coroutine: blocks the calling thread on a thread-safe future
 * for at most timeout_ns (negative: no limit), -ETIMEDOUT after; for a loop
 * future it returns -EDEADLK, since blocking would stop its own loop.
 * In a coroutine timeout_ns is a per-call timeout too (negative: none). */
CORIO_API int corio_await_timeout(corio_future_t *f, int64_t timeout_ns, corio_value_t *out);
static inline int corio_await(corio_future_t *f, corio_value_t *out)
{
    return corio_await_timeout(f, -1, out);
}

/* The loop a loop future belongs to; NULL for thread-safe futures. */
CORIO_API corio_loop_t *corio_future_loop(const corio_future_t *f);

CORIO_END_DECLS

#endif
