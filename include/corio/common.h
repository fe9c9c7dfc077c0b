/* corio: common definitions shared by every public header.
 *
 * Errors: every call returns 0 (or a count) on success and a negative errno
 * value on failure. Conditions of the runtime's own use the CORIO_E* codes
 * below; they lie inside the kernel's error range (-4095..-1) but outside
 * every errno Linux defines, so corio_is_error() recognises both. */
#ifndef CORIO_COMMON_H
#define CORIO_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define CORIO_VERSION_MAJOR 0
#define CORIO_VERSION_MINOR 1
#define CORIO_VERSION_PATCH 0
#define CORIO_VERSION_STRING "0.1.0"
#define CORIO_VERSION_HEX                                                      \
    ((CORIO_VERSION_MAJOR << 16) | (CORIO_VERSION_MINOR << 8) | CORIO_VERSION_PATCH)

#if defined(__GNUC__)
#define CORIO_API __attribute__((visibility("default")))
#else
#define CORIO_API
#endif

#ifdef __cplusplus
#define CORIO_BEGIN_DECLS extern "C" {
#define CORIO_END_DECLS }
#else
#define CORIO_BEGIN_DECLS
#define CORIO_END_DECLS
#endif

CORIO_BEGIN_DECLS

/* The runtime's own error codes (negative, like -errno). */
enum {
    CORIO_EINVALSTATE = -3001,   /* future in the wrong state for the call */
    CORIO_EBROKEN = -3002,       /* executor pool is broken (initializer failed) */
    CORIO_EINCOMPLETE = -3003,   /* EOF before the requested bytes arrived */
    CORIO_EWORKERDIED = -3004,   /* a process worker died while running the task */
    CORIO_ELIMITOVERRUN = -3005, /* a stream separator was not found within the limit */
    CORIO_EQUEUESHUTDOWN = -3006,/* the queue was shut down */
    CORIO_EBROKENBARRIER = -3007,/* the barrier was aborted or a waiter cancelled */
    CORIO_ENONAME = -3008,       /* a function cannot be named in a spawned worker */
    CORIO_ESHUTDOWN = -3009,     /* submit after the executor was shut down */
};

/* Describes any code returned by corio (errno values included). The string
 * is static: never free it. Any thread. */
CORIO_API const char *corio_strerror(int code);

/* True when a pointer-sized result is an error code (-4095..-1), the Linux
 * kernel's IS_ERR convention: no user-space pointer lies in that range. */
static inline bool corio_is_error(intptr_t v) { return v < 0 && v >= -4095; }

/* A result, the one form every future uses (tasks, loop futures, executor
 * futures, process workers, network calls):
 * - len == 0: ptr is a pointer-sized value (an integer or a pointer the
 *   program owns); the future never frees it.
 * - len > 0: ptr points to len bytes allocated with malloc and owned by the
 *   future, freed when the future is freed, unless taken with
 *   corio_future_take_result(). */
typedef struct corio_value {
    void *ptr;
    size_t len;
} corio_value_t;

static inline corio_value_t corio_value_int(intptr_t v)
{
    corio_value_t r = {(void *)v, 0};
    return r;
}

static inline intptr_t corio_value_as_int(corio_value_t v) { return (intptr_t)v.ptr; }

/* Monotonic time in nanoseconds (CLOCK_MONOTONIC). Any thread. */
CORIO_API int64_t corio_now(void);

#define CORIO_NS_PER_MS INT64_C(1000000)
#define CORIO_NS_PER_SEC INT64_C(1000000000)
/* A deadline that never expires. */
#define CORIO_NEVER INT64_MAX

/* When corio_wait returns (asyncio.wait and concurrent.futures.wait share
 * it): the first future done, the first failed one (or all done), or all. */
typedef enum corio_wait_mode {
    CORIO_FIRST_COMPLETED = 1,
    CORIO_FIRST_EXCEPTION = 2,
    CORIO_ALL_COMPLETED = 3,
} corio_wait_mode_t;

CORIO_END_DECLS

#endif
