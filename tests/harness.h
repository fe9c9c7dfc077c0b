/* A small test runner: a table of cases, each run in its own process with a
 * timeout, reported as TAP. `test_x CASE` runs one case in-process. */
#ifndef CORIO_TEST_HARNESS_H
#define CORIO_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

typedef struct test_case {
    const char *name;
    void (*fn)(void);
    int timeout_s; /* 0: 30 seconds */
} test_case_t;

int test_run_cases(int argc, char **argv, const test_case_t *cases, size_t n);

#define TEST_MAIN(...)                                                         \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        static const test_case_t cases_[] = {__VA_ARGS__};                     \
        return test_run_cases(argc, argv, cases_, sizeof cases_ / sizeof cases_[0]); \
    }
#define CASE(fn) {#fn, fn, 0}
#define CASE_T(fn, secs) {#fn, fn, secs}

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_) {                                                        \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, %s == %lld\n", \
                    __FILE__, __LINE__, #a, a_, #b, b_);                       \
            abort();                                                           \
        }                                                                      \
    } while (0)

#endif
