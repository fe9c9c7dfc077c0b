/* map_compare: sequential map vs thread-pool map vs process-pool map.
 *
 * Maps two functions over 10,000,000 numbers: square (one multiply) and
 * spin (a few hundred cycles of integer mixing). The sequential map calls
 * the same task function through the same pointer, so it really computes.
 * Every pooled result is checked against the sequential one. A second table
 * shows what chunksize does to the per-item cost.
 *
 *   map_compare [--n N] [--workers W]
 *
 * Python original: python-baselines/map_compare.py (square, Pool(2).map). */
#include <corio.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUM_MOD (UINT64_C(1) << 61) /* as the Python original prints it */
#define SPIN_ROUNDS 200

typedef enum kind { SEQUENTIAL, THREADS, PROCESSES } kind_t;
static const char *const kind_name[] = {"sequential", "threads", "processes"};

static int square(const corio_value_t *arg, corio_value_t *result)
{
    intptr_t x = corio_value_as_int(*arg);
    *result = corio_value_int(x * x);
    return 0;
}

/* Expensive: a dependent chain of multiplies and shifts the compiler cannot
 * shorten. The result is kept non-negative so it never looks like an error. */
static int spin(const corio_value_t *arg, corio_value_t *result)
{
    uint64_t x = (uint64_t)corio_value_as_int(*arg);
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        x ^= x >> 31;
        x *= UINT64_C(0x9e3779b97f4a7c15);
    }
    *result = corio_value_int((intptr_t)(x >> 2));
    return 0;
}

static void sequential(corio_executor_fn fn, const corio_value_t *in, size_t n, intptr_t *out)
{
    for (size_t i = 0; i < n; i++) {
        corio_value_t v;
        fn(&in[i], &v);
        out[i] = corio_value_as_int(v);
    }
}

static int new_pool(kind_t k, int workers, corio_executor_t **ex)
{
    if (k == THREADS) {
        corio_thread_pool_options_t o = {.max_workers = workers};
        return corio_thread_pool_new(ex, &o);
    }
    corio_process_pool_options_t o = {.max_workers = workers};
    return corio_process_pool_new(ex, &o);
}

/* Maps fn over in[0..n) on a started pool and checks every result against
 * ref. Returns seconds, or a negative error code. */
static double pool_map(corio_executor_t *ex, corio_executor_fn fn, const corio_value_t *in,
                       size_t n, size_t chunksize, const intptr_t *ref)
{
    int64_t t0 = corio_now();
    corio_map_iter_t *it;
    int rc = corio_executor_map(ex, fn, in, n, chunksize, -1, &it);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        corio_value_t v;
        rc = corio_map_next(it, &v);
        if (rc != 1 || corio_value_as_int(v) != ref[i]) {
            corio_map_free(it);
            return rc < 0 ? rc : -EDOM;
        }
    }
    corio_map_free(it);
    return (double)(corio_now() - t0) / 1e9;
}

static double timed_sequential(corio_executor_fn fn, const corio_value_t *in, size_t n,
                               intptr_t *out)
{
    int64_t t0 = corio_now();
    sequential(fn, in, n, out);
    return (double)(corio_now() - t0) / 1e9;
}

static void row(const char *fn, kind_t k, size_t chunk, double s, double seq, size_t n)
{
    char c[24] = "-";
    if (k != SEQUENTIAL)
        snprintf(c, sizeof c, "%zu", chunk);
    printf("%-7s %-11s %10s %9.3f %9.1f %8.2fx\n", fn, kind_name[k], c, s, s * 1e9 / (double)n,
           seq / s);
}

static void fail(const char *what, double rc)
{
    fprintf(stderr, "map_compare: %s: %s\n", what,
            rc == -EDOM ? "a result differs from the sequential map" : corio_strerror((int)rc));
    exit(1);
}

/* Why the pools won or lost, from the measurements. handoff_ns is what
 * handing one item to the thread pool and back cost for square, whose own
 * work is next to nothing. */
static void verdict(double seq_ns, double best, double seq, double handoff_ns)
{
    double load[1] = {0};
    if (best < seq)
        printf("  -> parallel wins: %.0f ns of work per item outweighs handing it over.\n",
               seq_ns);
    else if (handoff_ns > 0 && seq_ns > 2 * handoff_ns && getloadavg(load, 1) == 1)
        printf("  -> parallel loses, yet the work (%.0f ns/item) outweighs the hand-off\n"
               "     (%.0f ns/item): the CPUs are busy with other programs (load %.1f).\n",
               seq_ns, handoff_ns, load[0]);
    else
        printf("  -> parallel loses: computing an item takes %.1f ns, less than copying it\n"
               "     to a worker and its result back, so the copying is the work now.\n",
               seq_ns);
}

/* The main comparison for one function; returns the thread pool's cost per
 * item in ns. */
static double compare(const char *name, corio_executor_fn fn, corio_executor_t **pools,
                      const corio_value_t *in, size_t n, size_t chunk, intptr_t *ref,
                      double handoff_ns)
{
    double seq = timed_sequential(fn, in, n, ref), per_item[3] = {0, 0, 0};
    row(name, SEQUENTIAL, 0, seq, seq, n);
    double best = seq;
    for (kind_t k = THREADS; k <= PROCESSES; k++) {
        double s = pool_map(pools[k], fn, in, n, chunk, ref);
        if (s < 0)
            fail(kind_name[k], s);
        row(name, k, chunk, s, seq, n);
        best = s < best ? s : best;
        per_item[k] = s * 1e9 / (double)n;
    }
    verdict(seq * 1e9 / (double)n, best, seq, handoff_ns);
    return per_item[THREADS];
}

/* The effect of chunksize: every chunk is one submission, one trip to a
 * worker and one future, a fixed cost shared by the items of the chunk. */
static void chunk_table(corio_executor_t **pools, const corio_value_t *in, size_t n,
                        const intptr_t *ref)
{
    static const size_t sizes[] = {1, 100, 10000};
    printf("\nchunksize: square over the first %zu numbers\n", n);
    printf("%-11s %10s %9s %9s\n", "mode", "chunksize", "seconds", "ns/item");
    for (kind_t k = THREADS; k <= PROCESSES; k++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            double s = pool_map(pools[k], square, in, n, sizes[i], ref);
            if (s < 0)
                fail("chunksize", s);
            printf("%-11s %10zu %9.3f %9.1f\n", kind_name[k], sizes[i], s, s * 1e9 / (double)n);
        }
    printf("  -> a chunk of 1 pays a whole submission per item; large chunks share it.\n");
}

int main(int argc, char **argv)
{
    size_t n = 10000000;
    int workers = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--n") == 0)
            n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--workers") == 0)
            workers = atoi(argv[i + 1]);
    }
    if (n == 0 || workers <= 0) {
        fprintf(stderr, "usage: map_compare [--n N>0] [--workers W>0]\n");
        return 2;
    }
    corio_value_t *in = malloc(n * sizeof *in);
    intptr_t *ref = malloc(n * sizeof *ref);
    if (!in || !ref)
        return 1;
    for (size_t i = 0; i < n; i++)
        in[i] = corio_value_int((intptr_t)i);

    corio_executor_t *pools[3] = {NULL, NULL, NULL};
    for (kind_t k = THREADS; k <= PROCESSES; k++) {
        int rc = new_pool(k, workers, &pools[k]);
        if (rc < 0)
            fail(kind_name[k], rc);
    }
    /* Python's Pool.map default: four chunks per worker. */
    size_t chunk = (n + 4 * (size_t)workers - 1) / (4 * (size_t)workers);
    printf("map_compare: %zu numbers, %ld CPU(s), pools of %d workers (started beforehand)\n\n",
           n, sysconf(_SC_NPROCESSORS_ONLN), workers);
    double load[1];
    if (getloadavg(load, 1) == 1 && load[0] > (double)sysconf(_SC_NPROCESSORS_ONLN) - 0.5)
        printf("note: load average %.1f: other programs share these CPUs, so the pools'\n"
               "timings come out worse than on an idle machine.\n\n", load[0]);
    printf("%-7s %-11s %10s %9s %9s %9s\n", "fn", "mode", "chunksize", "seconds", "ns/item",
           "speedup");
    /* square first: its pooled cost per item is the hand-off alone. */
    double handoff = compare("square", square, pools, in, n, chunk, ref, 0);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = (sum + (uint64_t)ref[i] % SUM_MOD) % SUM_MOD;
    compare("spin", spin, pools, in, n, chunk, ref, handoff);
    printf("results: identical in every mode\nsum of the squares %% 2**61: %llu\n",
           (unsigned long long)sum);

    size_t small = n < 20000 ? n : 20000;
    sequential(square, in, small, ref); /* ref holds spin's results now */
    chunk_table(pools, in, small, ref);
    corio_executor_free(pools[THREADS]);
    corio_executor_free(pools[PROCESSES]);
    free(in);
    free(ref);
    return 0;
}
