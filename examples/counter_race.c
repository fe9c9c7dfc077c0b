/* counter_race: the race on a shared counter, without and with a lock, for
 * threads and for processes.
 *
 * Each worker adds 1 to a shared counter many times. Unlocked, an increment
 * is a relaxed atomic load followed by a relaxed atomic store: each access
 * is whole, so there is no undefined behaviour, but two workers that load
 * the same value both store value + 1, and one increment is lost. Locked,
 * the load and store happen as one step and the total is exact.
 *
 * Python original (examples/python/counter_race.py): threading.Thread and
 * multiprocessing.Process over a shared Value, with and without its lock.
 * Plain POSIX here: threads, and fork() with the counter, a process-shared
 * mutex and a start barrier in MAP_SHARED memory.
 *
 *   counter_race [--workers W] [--iters N] */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_WORKERS 16

/* Shared by the workers; in processes it lives in a MAP_SHARED mapping. */
typedef struct shared {
    atomic_long counter;
    pthread_mutex_t mu;
    pthread_barrier_t start; /* all workers start together, so they overlap */
    bool locked;
    long iters;
} shared_t;

static void bump(shared_t *s)
{
    pthread_barrier_wait(&s->start);
    for (long i = 0; i < s->iters; i++) {
        if (s->locked)
            pthread_mutex_lock(&s->mu);
        long v = atomic_load_explicit(&s->counter, memory_order_relaxed);
        atomic_store_explicit(&s->counter, v + 1, memory_order_relaxed);
        if (s->locked)
            pthread_mutex_unlock(&s->mu);
    }
}

static void *thread_main(void *arg)
{
    bump(arg);
    return NULL;
}

static shared_t *shared_new(int workers, long iters, bool locked, bool across_processes)
{
    shared_t *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
    if (s == MAP_FAILED)
        return NULL;
    int pshared = across_processes ? PTHREAD_PROCESS_SHARED : PTHREAD_PROCESS_PRIVATE;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, pshared);
    pthread_mutex_init(&s->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_barrierattr_t ba;
    pthread_barrierattr_init(&ba);
    pthread_barrierattr_setpshared(&ba, pshared);
    pthread_barrier_init(&s->start, &ba, (unsigned)workers);
    pthread_barrierattr_destroy(&ba);
    atomic_init(&s->counter, 0);
    s->locked = locked;
    s->iters = iters;
    return s;
}

static void shared_free(shared_t *s)
{
    pthread_barrier_destroy(&s->start);
    pthread_mutex_destroy(&s->mu);
    munmap(s, sizeof *s);
}

static int run(shared_t *s, int workers, bool processes)
{
    pthread_t t[MAX_WORKERS];
    pid_t p[MAX_WORKERS];
    for (int i = 0; i < workers; i++) {
        if (!processes) {
            if (pthread_create(&t[i], NULL, thread_main, s) != 0)
                return -1;
        } else if ((p[i] = fork()) == 0) {
            bump(s);
            _exit(0);
        } else if (p[i] < 0) {
            return -1;
        }
    }
    for (int i = 0; i < workers; i++) {
        if (!processes)
            pthread_join(t[i], NULL);
        else
            waitpid(p[i], NULL, 0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int workers = 2;
    long iters = 5000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--workers") == 0)
            workers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--iters") == 0)
            iters = atol(argv[i + 1]);
    }
    if (workers < 1 || workers > MAX_WORKERS || iters < 1) {
        fprintf(stderr, "usage: counter_race [--workers 1..%d] [--iters N>0]\n", MAX_WORKERS);
        return 2;
    }
    long expected = (long)workers * iters;
    printf("counter_race: %d workers x %ld increments (expected %ld)\n\n", workers, iters,
           expected);
    printf("%-10s %-7s %12s %12s\n", "workers", "lock", "total", "lost");
    int bad = 0;
    long lost[2] = {0, 0};
    for (int proc = 0; proc < 2; proc++)
        for (int locked = 0; locked < 2; locked++) {
            shared_t *s = shared_new(workers, iters, locked, proc);
            if (!s || run(s, workers, proc) < 0) {
                perror("counter_race");
                return 1;
            }
            long total = atomic_load(&s->counter);
            printf("%-10s %-7s %12ld %12ld\n", proc ? "processes" : "threads",
                   locked ? "locked" : "none", total, expected - total);
            bad |= locked && total != expected;
            if (!locked)
                lost[proc] = expected - total;
            shared_free(s);
        }
    printf("lost updates without a lock: threads %ld, processes %ld; with one: 0\n", lost[0],
           lost[1]);
    if (lost[0] == 0 || lost[1] == 0)
        printf("(none lost means those workers did not overlap this time: on a busy\n"
               "machine the scheduler may run them one after the other. Run it again.)\n");
    printf("\nUnlocked, an increment is a load then a store: two workers that load the\n"
           "same value both store value + 1 and one update is lost. The lock makes the\n"
           "pair one step, so the locked totals are exact (and slower: every increment\n"
           "now waits its turn).\n");
    return bad;
}
