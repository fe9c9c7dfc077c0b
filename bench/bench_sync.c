/* Composition and sync benchmarks: one line per figure, `name value unit`.
 *
 *   bench_sync [lock|queue|nowait|group|all] [round_trips]
 *
 * lock:  an uncontended corio_lock acquire + release, in a task;
 * queue: put/get ping-pong between two tasks through two queues of maxsize
 *        1 (a round trip is two handoffs, four task switches), the figure
 *        bench_chan.go measures with unbuffered Go channels and run_sync.sh
 *        with asyncio.Queue; also put_nowait + get_nowait on one task;
 * group: a task group spawning and joining trivial children. */
#include <corio.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_N 20000000L
static long PING_N = 1000000L;
#define NOWAIT_N 10000000L
#define GROUP_N 100000L

static intptr_t lock_bench(void *arg)
{
    (void)arg;
    corio_lock_t l;
    corio_lock_init(&l);
    int64_t t0 = corio_now();
    for (long i = 0; i < LOCK_N; i++) {
        if (corio_lock_acquire(&l) < 0 || corio_lock_release(&l) < 0)
            return -EIO;
    }
    int64_t t1 = corio_now();
    printf("lock_uncontended_ns %.2f ns\n", (double)(t1 - t0) / LOCK_N);
    corio_lock_destroy(&l);
    return 0;
}

typedef struct ping {
    corio_queue_t *in, *out;
} ping_t;

static intptr_t ponger(void *arg)
{
    ping_t *p = arg;
    corio_value_t v;
    for (long i = 0; i < PING_N; i++) {
        if (corio_queue_get(p->in, &v) < 0 || corio_queue_put(p->out, v) < 0)
            return -EIO;
    }
    return 0;
}

static intptr_t queue_bench(void *arg)
{
    (void)arg;
    corio_queue_t *a, *b;
    if (corio_queue_new(&a, CORIO_QUEUE_FIFO, 1) < 0 || corio_queue_new(&b, CORIO_QUEUE_FIFO, 1) < 0)
        return -ENOMEM;
    ping_t p = {a, b};
    corio_task_t *t;
    if (corio_spawn(NULL, &t, ponger, &p, NULL) < 0)
        return -ENOMEM;
    corio_sleep(0);
    int64_t t0 = corio_now();
    corio_value_t v;
    for (long i = 0; i < PING_N; i++) {
        if (corio_queue_put(a, corio_value_int(i)) < 0 || corio_queue_get(b, &v) < 0 ||
            corio_value_as_int(v) != i)
            return -EIO;
    }
    int64_t t1 = corio_now();
    printf("queue_pingpong_roundtrip_ns %.1f ns\n", (double)(t1 - t0) / PING_N);
    corio_task_await(t, NULL);
    corio_task_release(t);
    corio_queue_free(a);
    corio_queue_free(b);
    return 0;
}

static intptr_t nowait_bench(void *arg)
{
    (void)arg;
    corio_queue_t *a;
    if (corio_queue_new(&a, CORIO_QUEUE_FIFO, 1) < 0)
        return -ENOMEM;
    corio_value_t v;
    int64_t t0 = corio_now();
    for (long i = 0; i < NOWAIT_N; i++) {
        if (corio_queue_put_nowait(a, corio_value_int(i)) < 0 || corio_queue_get_nowait(a, &v) < 0)
            return -EIO;
    }
    int64_t t1 = corio_now();
    printf("queue_put_get_nowait_ns %.2f ns\n", (double)(t1 - t0) / NOWAIT_N);
    corio_queue_free(a);
    return 0;
}

static intptr_t trivial(void *arg) { return (intptr_t)arg; }

static intptr_t group_bench(void *arg)
{
    (void)arg;
    int64_t t0 = corio_now();
    for (long done = 0; done < GROUP_N; done += 1000) {
        corio_task_group_t g;
        corio_task_group_init(&g);
        for (int i = 0; i < 1000; i++)
            if (corio_task_group_spawn(&g, NULL, trivial, NULL, NULL) < 0)
                return -ENOMEM;
        if (corio_task_group_exit(&g, 0) < 0)
            return -EIO;
        corio_task_group_destroy(&g);
    }
    int64_t t1 = corio_now();
    printf("task_group_child_ns %.1f ns\n", (double)(t1 - t0) / GROUP_N);
    return 0;
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    if (argc > 2 && atol(argv[2]) > 0)
        PING_N = atol(argv[2]); /* round trips, for profiling */
    bool all = strcmp(what, "all") == 0;
    intptr_t rc = 0;
    if (all || strcmp(what, "lock") == 0)
        rc |= corio_run(lock_bench, NULL);
    if (all || strcmp(what, "queue") == 0)
        rc |= corio_run(queue_bench, NULL);
    if (all || strcmp(what, "nowait") == 0)
        rc |= corio_run(nowait_bench, NULL);
    if (all || strcmp(what, "group") == 0)
        rc |= corio_run(group_bench, NULL);
    if (rc) {
        fprintf(stderr, "bench_sync: failed\n");
        return 1;
    }
    return 0;
}
