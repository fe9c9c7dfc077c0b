/* factorize: the classic "serial vs threads vs processes" experiment.
 *
 * Factorises the 300 odd numbers from 9999999999999 by naive trial
 * division, serially, then with 2, 4 and 8 threads and 2, 4 and 8
 * processes (each pool gets the numbers in as many equal chunks as it has
 * workers, as the Python original does). Prints a table, the line
 * "checksum S" (the sum of every factor found) and writes an SVG bar chart.
 *
 *   factorize [--count N] [--svg PATH|none]
 *
 * Python original: python-baselines/factorize.py. */
#include <corio.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST UINT64_C(9999999999999)
#define MAX_FACTORS 64 /* a 64-bit number has at most 64 prime factors */

/* A chunk of work: count odd numbers from first. Sent as bytes, so the same
 * argument works for threads and for processes. */
typedef struct span {
    uint64_t first;
    uint64_t count;
} span_t;

typedef struct mode {
    const char *name;
    int workers;
    double seconds;
} run_mode_t;

/* The Python original's algorithm, step for step: 2, then odd divisors,
 * stopping when p * p >= n. */
static size_t factorize_naive(uint64_t n, uint64_t *out)
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

/* Factorises a span into one flat record per number: n, k, then k factors. */
static int factor_span(const corio_value_t *arg, corio_value_t *result)
{
    const span_t *s = arg->ptr;
    uint64_t *buf = malloc((s->count * (MAX_FACTORS + 2) + 1) * sizeof *buf);
    if (!buf)
        return -ENOMEM;
    size_t at = 0;
    for (uint64_t i = 0; i < s->count; i++) {
        uint64_t n = s->first + 2 * i;
        buf[at] = n;
        buf[at + 1] = factorize_naive(n, buf + at + 2);
        at += 2 + buf[at + 1];
    }
    result->ptr = buf;
    result->len = at * sizeof *buf; /* never 0: count >= 1 */
    return 0;
}

static double now_s(void)
{
    return (double)corio_now() / 1e9;
}

/* Runs the work in `workers` equal chunks on ex and joins the results in
 * input order. The caller owns *out (malloc'd). */
static int run_pool(corio_executor_t *ex, uint64_t count, int workers, corio_value_t *out)
{
    corio_future_t *fs[8];
    uint64_t chunk = (count + (uint64_t)workers - 1) / (uint64_t)workers;
    int n = 0, rc = 0;
    for (uint64_t first = 0; first < count && rc == 0; first += chunk, n++) {
        span_t s = {FIRST + 2 * first, count - first < chunk ? count - first : chunk};
        rc = corio_executor_submit(ex, factor_span, (corio_value_t){&s, sizeof s}, &fs[n]);
        if (rc < 0)
            break;
    }
    out->ptr = NULL;
    out->len = 0;
    for (int i = 0; i < n; i++) {
        corio_value_t v;
        int r = corio_await(fs[i], &v);
        if (r == 0 && rc == 0) {
            char *joined = realloc(out->ptr, out->len + v.len);
            if (!joined) {
                rc = -ENOMEM;
            } else {
                memcpy(joined + out->len, v.ptr, v.len);
                out->ptr = joined;
                out->len += v.len;
            }
        } else if (rc == 0) {
            rc = r;
        }
        corio_future_unref(fs[i]);
    }
    return rc;
}

/* Times one pooled mode, pool start and shutdown included (Python's
 * timing includes starting its threads and processes too). */
static int time_mode(run_mode_t *m, uint64_t count, const corio_value_t *ref)
{
    double t0 = now_s();
    corio_executor_t *ex;
    int rc;
    if (m->name[0] == 't') {
        corio_thread_pool_options_t o = {.max_workers = m->workers};
        rc = corio_thread_pool_new(&ex, &o);
    } else {
        corio_process_pool_options_t o = {.max_workers = m->workers};
        rc = corio_process_pool_new(&ex, &o);
    }
    if (rc < 0)
        return rc;
    corio_value_t got;
    rc = run_pool(ex, count, m->workers, &got);
    corio_executor_free(ex);
    m->seconds = now_s() - t0;
    if (rc == 0 && (got.len != ref->len || memcmp(got.ptr, ref->ptr, got.len) != 0))
        rc = -1;
    free(got.ptr);
    return rc;
}

static uint64_t checksum(const corio_value_t *v)
{
    const uint64_t *r = v->ptr;
    size_t words = v->len / sizeof *r;
    uint64_t sum = 0;
    for (size_t at = 0; at < words; at += 2 + r[at + 1])
        for (uint64_t j = 0; j < r[at + 1]; j++)
            sum += r[at + 2 + j];
    return sum;
}

/* A bar chart like the classic matplotlib one: one bar per mode. */
static void write_svg(const char *path, const run_mode_t *m, int n, uint64_t count)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    double max = 0;
    for (int i = 0; i < n; i++)
        max = m[i].seconds > max ? m[i].seconds : max;
    int w = 80 + 70 * n, h = 320;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", w, h);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">"
               "Factorising %llu numbers: seconds per mode</text>\n", w / 2,
            (unsigned long long)count);
    fprintf(f, "<line x1=\"60\" y1=\"270\" x2=\"%d\" y2=\"270\" stroke=\"black\"/>\n", w - 10);
    for (int i = 0; i < n; i++) {
        double bh = max > 0 ? 220.0 * m[i].seconds / max : 0;
        int x = 70 + 70 * i;
        const char *color = m[i].name[0] == 's' ? "#888888"
                          : m[i].name[0] == 't' ? "#1f77b4" : "#ff7f0e";
        fprintf(f, "<rect class=\"bar\" x=\"%d\" y=\"%.1f\" width=\"50\" height=\"%.1f\" "
                   "fill=\"%s\"/>\n",
                x, 270 - bh, bh, color);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>\n", x + 25,
                265 - bh, m[i].seconds);
        fprintf(f, "<text x=\"%d\" y=\"288\" text-anchor=\"middle\">%s</text>\n", x + 25,
                m[i].name);
        fprintf(f, "<text x=\"%d\" y=\"303\" text-anchor=\"middle\">%d</text>\n", x + 25,
                m[i].workers);
    }
    static const char *const legend[][2] = {
        {"#888888", "serial"}, {"#1f77b4", "threads"}, {"#ff7f0e", "processes"}};
    for (int i = 0; i < 3; i++)
        fprintf(f, "<rect x=\"%d\" y=\"32\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                   "<text x=\"%d\" y=\"41\">%s</text>\n",
                w - 250 + 85 * i, legend[i][0], w - 236 + 85 * i, legend[i][1]);
    fprintf(f, "<text x=\"20\" y=\"303\">workers</text>\n");
    fprintf(f, "<text x=\"20\" y=\"150\" transform=\"rotate(-90 20 150)\" "
               "text-anchor=\"middle\">seconds</text>\n</svg>\n");
    fclose(f);
}

static void explain(const run_mode_t *m, int n, long cpus)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        best = m[i].seconds < m[best].seconds ? i : best;
    printf("\nfastest: %s with %d worker(s), %.2fx the serial speed on %ld CPU(s).\n",
           m[best].name, m[best].workers, m[0].seconds / m[best].seconds, cpus);
    printf("Unlike CPython, C threads run this CPU-bound loop truly in parallel (no GIL),\n"
           "so threads and processes both scale up to the number of CPUs; past that,\n"
           "extra workers only share the same CPUs, and processes also pay to start.\n"
           "Equal chunks are not equal work: a chunk holding more primes runs longest.\n");
}

int main(int argc, char **argv)
{
    uint64_t count = 300;
    const char *svg = "factorize.svg";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--count") == 0)
            count = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--svg") == 0)
            svg = argv[i + 1];
    }
    if (count == 0) {
        fprintf(stderr, "usage: factorize [--count N>0] [--svg PATH|none]\n");
        return 2;
    }
    run_mode_t modes[] = {{"serial", 1, 0},  {"threads", 2, 0},   {"threads", 4, 0},
                       {"threads", 8, 0}, {"processes", 2, 0}, {"processes", 4, 0},
                       {"processes", 8, 0}};
    int nmodes = (int)(sizeof modes / sizeof modes[0]);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("factorize: %llu odd numbers from %llu by trial division, %ld CPU(s)\n\n",
           (unsigned long long)count, (unsigned long long)FIRST, cpus);
    double load[1];
    if (getloadavg(load, 1) == 1 && load[0] > (double)cpus - 0.5)
        printf("note: load average %.1f: other programs share these CPUs, so the parallel\n"
               "timings come out worse than on an idle machine.\n\n", load[0]);
    printf("%-10s %7s %9s %8s\n", "mode", "workers", "seconds", "speedup");

    span_t all = {FIRST, count};
    corio_value_t ref;
    double t0 = now_s();
    factor_span(&(corio_value_t){&all, sizeof all}, &ref);
    modes[0].seconds = now_s() - t0;
    printf("%-10s %7d %9.3f %7.2fx\n", "serial", 1, modes[0].seconds, 1.0);
    for (int i = 1; i < nmodes; i++) {
        int rc = time_mode(&modes[i], count, &ref);
        if (rc < 0) {
            fprintf(stderr, "%s %d: %s\n", modes[i].name, modes[i].workers,
                    rc == -1 ? "results differ from serial" : corio_strerror(rc));
            return 1;
        }
        printf("%-10s %7d %9.3f %7.2fx\n", modes[i].name, modes[i].workers, modes[i].seconds,
               modes[0].seconds / modes[i].seconds);
    }
    printf("results: identical in every mode\n");
    printf("checksum %llu\n", (unsigned long long)checksum(&ref));
    if (strcmp(svg, "none") != 0) {
        write_svg(svg, modes, nmodes, count);
        printf("chart: %s\n", svg);
    }
    explain(modes, nmodes, cpus);
    free(ref.ptr);
    return 0;
}
