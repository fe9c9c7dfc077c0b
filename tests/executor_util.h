/* Shared by the executor tests: a sleep, the small tasks both pools run,
 * and checks of a result and of a map.
 * Static, so each test program has its own copy: process workers name a
 * task by its offset in the program, which needs it defined there. */
#ifndef CORIO_TEST_EXECUTOR_UTIL_H
#define CORIO_TEST_EXECUTOR_UTIL_H

#include "corio.h"
#include "harness.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static inline int square(const corio_value_t *arg, corio_value_t *result)
{
    intptr_t x = corio_value_as_int(*arg);
    *result = corio_value_int(x * x);
    return 0;
}

static inline int fail_with_eio(const corio_value_t *arg, corio_value_t *result)
{
    (void)arg;
    (void)result;
    return -EIO;
}

/* Returns a copy of its bytes with each byte incremented. */
static inline int bytes_plus_one(const corio_value_t *arg, corio_value_t *result)
{
    unsigned char *out = malloc(arg->len ? arg->len : 1);
    if (!out)
        return -ENOMEM;
    const unsigned char *in = arg->ptr;
    for (size_t i = 0; i < arg->len; i++)
        out[i] = (unsigned char)(in[i] + 1);
    *result = (corio_value_t){out, arg->len};
    return 0;
}

/* The future's result as an integer; a failure says why, then fails. */
static inline intptr_t result_int(corio_future_t *f)
{
    corio_value_t v;
    int rc = corio_await_timeout(f, 20 * CORIO_NS_PER_SEC, &v);
    if (rc != 0) {
        const char *msg = NULL;
        corio_future_exception(f, &msg);
        fprintf(stderr, "# future failed: %s (%s)\n", corio_strerror(rc), msg ? msg : "");
    }
    CHECK_EQ(rc, 0);
    return corio_value_as_int(v);
}

/* map(square) over 0..n-1 gives the squares, in order, and ends cleanly. */
static inline void check_map(corio_executor_t *ex, size_t n, size_t chunksize)
{
    corio_value_t *in = malloc(n * sizeof *in);
    for (size_t i = 0; i < n; i++)
        in[i] = corio_value_int((intptr_t)i);
    corio_map_iter_t *it;
    CHECK_EQ(corio_executor_map(ex, square, in, n, chunksize, -1, &it), 0);
    corio_value_t v;
    size_t i = 0;
    int rc;
    while ((rc = corio_map_next(it, &v)) == 1) {
        CHECK_EQ(corio_value_as_int(v), (intptr_t)(i * i));
        i++;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(i, n);
    corio_map_free(it);
    free(in);
}

#endif
