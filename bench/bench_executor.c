/* Executor benchmarks, the C side of ../shared/python-baselines/overhead.py
 * and factorize.py: trivial tasks per second through submit and through
 * map(chunksize=1000) for both pools, and the factorisation workload
 * serial vs 2 threads vs 2 processes. One figure per line: name value unit.
 * Usage: bench_executor [n_trivial] [n_numbers] */
#include "corio.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int noop(const corio_value_t *arg, corio_value_t *result)
{
    *result = *arg;
    return 0;
}

static double seconds_since(int64_t t0)
{
    return (double)(corio_now() - t0) / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_executor: %s: %s\n", what, corio_strerror(rc));
    exit(1);
}

/* Submits n trivial tasks, then collects them, as overhead.py does. */
static double submit_rate(corio_executor_t *ex, size_t n)
{
    corio_future_t **fs = malloc(n * sizeof *fs);
    int64_t t0 = corio_now();
    for (size_t i = 0; i < n; i++) {
        int rc = corio_executor_submit(ex, noop, corio_value_int((intptr_t)i), &fs[i]);
        if (rc < 0)
            die("submit", rc);
    }
    for (size_t i = 0; i < n; i++) {
        corio_value_t v;
        int rc = corio_await(fs[i], &v);
        if (rc < 0 || corio_value_as_int(v) != (intptr_t)i)
            die("result", rc < 0 ? rc : -EPROTO);
        corio_future_unref(fs[i]);
    }
    double rate = (double)n / seconds_since(t0);
    free(fs);
    return rate;
}

static double map_rate(corio_executor_t *ex, size_t n, size_t chunksize)
{
    corio_value_t *in = malloc(n * sizeof *in);
    for (size_t i = 0; i < n; i++)
        in[i] = corio_value_int((intptr_t)i);
    int64_t t0 = corio_now();
    corio_map_iter_t *it;
    int rc = corio_executor_map(ex, noop, in, n, chunksize, -1, &it);
    if (rc < 0)
        die("map", rc);
    corio_value_t v;
    size_t i = 0;
    while ((rc = corio_map_next(it, &v)) == 1)
        if (corio_value_as_int(v) != (intptr_t)i++)
            die("map order", -EPROTO);
    if (rc < 0 || i != n)
        die("map result", rc);
    corio_map_free(it);
    double rate = (double)n / seconds_since(t0);
    free(in);
    return rate;
}

/* factorize_naive of factorize.py, with the same steps. */
static size_t factorize(uint64_t n, uint64_t *out)
{
    size_t k = 0;
    uint64_t p = 2;
    if (n < 2)
        return 0;
    for (;;) {
        if (n == 1)
            return k;
        if (n % p == 0) {
            out[k++] = p;
            n /= p;
        } else if (p * p >= n) {
            out[k++] = n;
            return k;
        } else {
            p += p > 2 ? 2 : 1;
        }
    }
}

/* A task: the factors of one number, as bytes. */
static int factorize_task(const corio_value_t *arg, corio_value_t *result)
{
    uint64_t f[64];
    size_t k = factorize((uint64_t)corio_value_as_int(*arg), f);
    uint64_t *out = malloc(k * sizeof *out);
    if (!out)
        return -ENOMEM;
    memcpy(out, f, k * sizeof *out);
    *result = (corio_value_t){out, k * sizeof *out};
    return 0;
}

static uint64_t checksum_bytes(corio_value_t v)
{
    uint64_t s = 0;
    for (size_t i = 0; i < v.len / sizeof(uint64_t); i++)
        s += ((uint64_t *)v.ptr)[i];
    return s;
}

/* Small chunks, handed out as workers free up: the two workers share the
 * list evenly even when a few primes cost far more than the rest, or other
 * programs take CPU time from one of them. A thread takes one number at a
 * time (a hand-over costs microseconds), a process ten (a pipe round trip
 * each). */
static double factorize_pool(corio_executor_t *ex, const corio_value_t *nums, size_t n,
                             size_t chunksize, uint64_t *checksum)
{
    int64_t t0 = corio_now();
    corio_map_iter_t *it;
    int rc = corio_executor_map(ex, factorize_task, nums, n, chunksize, -1, &it);
    if (rc < 0)
        die("map", rc);
    corio_value_t v;
    *checksum = 0;
    while ((rc = corio_map_next(it, &v)) == 1) {
        *checksum += checksum_bytes(v);
        free(v.ptr);
    }
    if (rc < 0)
        die("factorize", rc);
    corio_map_free(it);
    return seconds_since(t0);
}

static volatile uint64_t sink;

static void *spin(void *arg)
{
    uint64_t x = 1;
    for (long i = 0; i < (long)(intptr_t)arg; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    sink = x;
    return NULL;
}

/* What two threads can get on this machine right now: the same busy loop
 * alone and split over two threads. Other programs' load shows here. */
static void bench_parallel_capacity(void)
{
    long n = 200000000;
    int64_t t0 = corio_now();
    spin((void *)(intptr_t)n);
    double serial = seconds_since(t0);
    pthread_t t;
    t0 = corio_now();
    pthread_create(&t, NULL, spin, (void *)(intptr_t)(n / 2));
    spin((void *)(intptr_t)(n / 2));
    pthread_join(t, NULL);
    printf("cpu_parallel_speedup_2 %.2f x\n", serial / seconds_since(t0));
}

static void bench_factorize(size_t count)
{
    bench_parallel_capacity();
    corio_value_t *nums = malloc(count * sizeof *nums);
    for (size_t i = 0; i < count; i++)
        nums[i] = corio_value_int((intptr_t)(9999999999999LL + 2 * (long long)i));
    uint64_t sum = 0, f[64];
    int64_t t0 = corio_now();
    for (size_t i = 0; i < count; i++) {
        size_t k = factorize((uint64_t)corio_value_as_int(nums[i]), f);
        for (size_t j = 0; j < k; j++)
            sum += f[j];
    }
    double serial = seconds_since(t0);
    printf("factorize_serial_s %.3f s\n", serial);
    corio_executor_t *ex;
    corio_thread_pool_options_t to = {.max_workers = 2};
    corio_process_pool_options_t po = {.max_workers = 2};
    uint64_t s2;
    if (corio_thread_pool_new(&ex, &to) < 0)
        die("thread pool", -ENOMEM);
    printf("factorize_thread2_s %.3f s\n", factorize_pool(ex, nums, count, 1, &s2));
    corio_executor_free(ex);
    if (s2 != sum)
        die("thread checksum", -EPROTO);
    int rc = corio_process_pool_new(&ex, &po);
    if (rc < 0)
        die("process pool", rc);
    printf("factorize_process2_s %.3f s\n", factorize_pool(ex, nums, count, 10, &s2));
    corio_executor_free(ex);
    if (s2 != sum)
        die("process checksum", -EPROTO);
    printf("factorize_checksum %llu sum\n", (unsigned long long)sum);
    free(nums);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t count = argc > 2 ? strtoul(argv[2], NULL, 10) : 300;
    corio_executor_t *ex;
    corio_thread_pool_options_t to = {.max_workers = 2};
    if (corio_thread_pool_new(&ex, &to) < 0)
        die("thread pool", -ENOMEM);
    printf("thread_submit_per_s %.0f tasks/s\n", submit_rate(ex, n));
    printf("thread_map_chunk1000_per_s %.0f tasks/s\n", map_rate(ex, n, 1000));
    corio_executor_free(ex);
    corio_process_pool_options_t po = {.max_workers = 2};
    int rc = corio_process_pool_new(&ex, &po);
    if (rc < 0)
        die("process pool", rc);
    map_rate(ex, 100, 1); /* warm-up, as overhead.py does */
    printf("process_submit_per_s %.0f tasks/s\n", submit_rate(ex, n));
    printf("process_map_chunk1000_per_s %.0f tasks/s\n", map_rate(ex, 10 * n, 1000));
    corio_executor_free(ex);
    bench_factorize(count);
    return 0;
}
