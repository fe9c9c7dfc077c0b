/* The event loop: callbacks, timers, thread-safe calls, embedding, the ring
 * under pressure, signals, fault injection and set-up errors. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static corio_loop_t *new_loop(void)
{
    corio_loop_t *loop = NULL;
    CHECK_EQ(corio_loop_new(&loop, NULL), 0);
    return loop;
}

static void close_clean(corio_loop_t *loop)
{
    corio_loop_stats_t st;
    CHECK_EQ(corio_loop_stats(loop, &st), 0);
    CHECK_EQ(st.tasks_live, 0);
    CHECK_EQ(corio_loop_free(loop), 0);
    CHECK(corio_loop_current() == NULL);
}

/* ---- callbacks ---- */

static int order[64], norder;
static void record(void *arg) { order[norder++] = (int)(intptr_t)arg; }
static void stop_cb(void *arg) { corio_loop_stop(arg); }

static void call_soon_is_fifo(void)
{
    corio_loop_t *loop = new_loop();
    norder = 0;
    for (int i = 0; i < 10; i++)
        CHECK_EQ(corio_loop_call_soon(loop, NULL, record, (void *)(intptr_t)i), 0);
    corio_loop_call_soon(loop, NULL, stop_cb, loop);
    CHECK_EQ(corio_loop_run_forever(loop), 0);
    CHECK_EQ(norder, 10);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(order[i], i);
    close_clean(loop);
}

static void handles_cancel(void)
{
    corio_loop_t *loop = new_loop();
    corio_handle_t a, b, c;
    norder = 0;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    CHECK_EQ(corio_loop_call_soon(loop, &a, record, (void *)1), 0);
    CHECK_EQ(corio_loop_call_later(loop, &b, 1000000, record, (void *)2), 0);
    CHECK_EQ(corio_loop_call_later(loop, &c, 2000000, record, (void *)3), 0);
    CHECK(corio_handle_pending(&a));
    CHECK_EQ(corio_handle_cancel(&a), 0);
    CHECK_EQ(corio_handle_cancel(&b), 0);
    CHECK_EQ(corio_handle_cancel(&b), -EALREADY);
    corio_loop_call_later(loop, NULL, 5000000, stop_cb, loop);
    corio_loop_run_forever(loop);
    CHECK_EQ(norder, 1);
    CHECK_EQ(order[0], 3);
    CHECK_EQ(corio_handle_cancel(&c), -EALREADY); /* it ran */
    close_clean(loop);
}

static void call_later_waits(void)
{
    corio_loop_t *loop = new_loop();
    int64_t start = corio_now();
    norder = 0;
    corio_loop_call_later(loop, NULL, 30 * CORIO_NS_PER_MS, record, (void *)7);
    corio_loop_call_later(loop, NULL, 30 * CORIO_NS_PER_MS, stop_cb, loop);
    corio_loop_run_forever(loop);
    CHECK(corio_now() - start >= 30 * CORIO_NS_PER_MS);
    CHECK_EQ(norder, 1);
    close_clean(loop);
}

/* ---- a million timers ---- */

typedef struct timer_rec {
    corio_handle_t h;
    int64_t when;
    uint32_t idx;
} timer_rec_t;

static int64_t last_when;
static uint32_t last_idx, fired, expected;
static corio_loop_t *timer_loop;

static void timer_fired(void *arg)
{
    timer_rec_t *r = arg;
    CHECK(r->when > last_when || (r->when == last_when && r->idx > last_idx));
    last_when = r->when;
    last_idx = r->idx;
    if (++fired == expected)
        corio_loop_stop(timer_loop);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void million_timers_in_order(void)
{
    enum { N = 1000000 };
    corio_loop_t *loop = new_loop();
    timer_loop = loop;
    timer_rec_t *recs = calloc(N, sizeof *recs);
    CHECK(recs);
    /* 1,000 distinct deadlines: many timers share one, which tests FIFO. */
    int64_t base = corio_now() + 20 * CORIO_NS_PER_MS;
    for (uint32_t i = 0; i < N; i++) {
        recs[i].when = base + (int64_t)(xorshift() % 1000) * 10000;
        recs[i].idx = i;
        CHECK_EQ(corio_loop_call_at(loop, &recs[i].h, recs[i].when, timer_fired, &recs[i]), 0);
    }
    corio_loop_stats_t st;
    corio_loop_stats(loop, &st);
    CHECK_EQ(st.timers_pending, N);
    expected = N;
    for (uint32_t i = 0; i < N; i++)
        if (xorshift() % 4 == 0) {
            CHECK_EQ(corio_handle_cancel(&recs[i].h), 0);
            expected--;
        }
    last_when = INT64_MIN;
    fired = 0;
    corio_loop_run_forever(loop);
    CHECK_EQ(fired, expected);
    corio_loop_stats(loop, &st);
    CHECK_EQ(st.timers_pending, 0);
    close_clean(loop);
    free(recs);
}

/* ---- threads and embedding ---- */

static void *poke(void *arg)
{
    usleep(20000);
    CHECK_EQ(corio_loop_call_soon_threadsafe(arg, stop_cb, arg), 0);
    return NULL;
}

static void threadsafe_call_wakes_loop(void)
{
    corio_loop_t *loop = new_loop();
    pthread_t th;
    pthread_create(&th, NULL, poke, loop);
    int64_t start = corio_now();
    corio_loop_run_forever(loop); /* nothing else scheduled: only the wake-up ends it */
    CHECK(corio_now() - start >= 15 * CORIO_NS_PER_MS);
    pthread_join(th, NULL);
    close_clean(loop);
}

static void *own_loop_thread(void *arg)
{
    (void)arg;
    corio_loop_t *loop = new_loop();
    corio_loop_call_later(loop, NULL, 1000000, stop_cb, loop);
    corio_loop_run_forever(loop);
    CHECK_EQ(corio_loop_free(loop), 0);
    return (void *)1;
}

static void loop_per_thread(void)
{
    corio_loop_t *mine = new_loop();
    corio_loop_t *second = NULL;
    CHECK_EQ(corio_loop_new(&second, NULL), -EBUSY);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, own_loop_thread, NULL);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        CHECK(r == (void *)1);
    }
    close_clean(mine);
}

static int ts_count;
static void count_cb(void *arg) { (void)arg; ts_count++; }
static void *poke_count(void *arg)
{
    usleep(10000);
    corio_loop_call_soon_threadsafe(arg, count_cb, NULL);
    return NULL;
}

static void embedding_with_poll(void)
{
    corio_loop_t *loop = new_loop();
    CHECK_EQ(corio_loop_backend_fd(loop), -ENOTSUP); /* not created for embedding */
    CHECK_EQ(corio_loop_free(loop), 0);
    corio_loop_options_t o = {.flags = CORIO_LOOP_EMBEDDED};
    CHECK_EQ(corio_loop_new(&loop, &o), 0);
    int fd = corio_loop_backend_fd(loop);
    CHECK(fd >= 0);
    CHECK_EQ(corio_loop_backend_timeout(loop), -1); /* nothing scheduled */
    corio_loop_call_later(loop, NULL, 10 * CORIO_NS_PER_MS, record, (void *)1);
    int64_t t = corio_loop_backend_timeout(loop);
    CHECK(t > 0 && t <= 10 * CORIO_NS_PER_MS);
    CHECK_EQ(corio_loop_run_once(loop, 0), 0); /* never blocks */
    /* A host loop: poll the fd with the loop's timeout, then run once. */
    norder = 0;
    ts_count = 0;
    pthread_t th;
    pthread_create(&th, NULL, poke_count, loop);
    while (norder < 1 || ts_count < 1) {
        int64_t to = corio_loop_backend_timeout(loop);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        /* Nothing scheduled: sleep until the fd says so. A missed wake-up
         * hangs here and the case times out. */
        poll(&p, 1, to < 0 ? -1 : (int)((to + 999999) / 1000000));
        corio_loop_run_once(loop, 0);
    }
    pthread_join(th, NULL);
    CHECK_EQ(order[0], 1);
    close_clean(loop);
}

/* ---- the ring under pressure ---- */

typedef struct nop_op {
    corio_op_t op;
    int completions;
} nop_op_t;

static int nops_done;
static void nop_complete(corio_op_t *op, int res, uint32_t flags)
{
    (void)flags;
    nop_op_t *n = corio_container_of(op, nop_op_t, op);
    CHECK_EQ(res, 0);
    n->completions++;
    nops_done++;
}

static intptr_t nop_task(void *arg)
{
    corio_loop_t *loop = arg;
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
    CHECK(sqe);
    io_uring_prep_nop(sqe);
    return corio__io_await(loop, sqe, CORIO_NEVER, NULL) == 0 ? 1 : -EIO;
}

static void tiny_ring_loses_nothing(void)
{
    enum { N = 10000 };
    corio_loop_t *loop = NULL;
    corio_loop_options_t o = {.sq_entries = 4};
    CHECK_EQ(corio_loop_new(&loop, &o), 0);
    nop_op_t *ops = calloc(N, sizeof *ops);
    /* Queue everything before reaping once: the 4-entry SQ is flushed over
     * and over and the 8-entry CQ overflows into the kernel's backlog. */
    nops_done = 0;
    for (int i = 0; i < N; i++) {
        int err = 0;
        struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
        CHECK(sqe);
        io_uring_prep_nop(sqe);
        ops[i].op.complete = nop_complete;
        io_uring_sqe_set_data(sqe, &ops[i].op);
        corio__op_started(loop);
    }
    while (nops_done < N)
        corio_loop_run_once(loop, -1);
    for (int i = 0; i < N; i++)
        CHECK_EQ(ops[i].completions, 1); /* each matched by its own user_data */
    corio_loop_stats_t st;
    corio_loop_stats(loop, &st);
    CHECK(st.cq_overflows > 0);
    CHECK_EQ(st.ops_in_flight, 1); /* only the loop's own wake-up read */
    free(ops);
    close_clean(loop);
}

/* ---- signals ---- */

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) { (void)sig; alarms++; }

static void eintr_is_retried(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm; /* no SA_RESTART: waits see EINTR */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 2000}, {0, 2000}};
    setitimer(ITIMER_REAL, &it, NULL);
    corio_loop_t *loop = new_loop();
    norder = 0;
    int64_t start = corio_now();
    corio_loop_call_later(loop, NULL, 50 * CORIO_NS_PER_MS, record, (void *)9);
    corio_loop_call_later(loop, NULL, 50 * CORIO_NS_PER_MS, stop_cb, loop);
    corio_loop_run_forever(loop);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    CHECK(alarms > 3);
    CHECK_EQ(norder, 1);
    CHECK(corio_now() - start >= 50 * CORIO_NS_PER_MS);
    close_clean(loop);
}

/* ---- fault injection ---- */

static intptr_t sqe_fault_task(void *arg)
{
    corio_loop_t *loop = arg;
    corio__fault_set(CORIO_FAULT_SQE, 1);
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
    CHECK(sqe == NULL);
    CHECK_EQ(err, -EBUSY);
    /* The next call works again. */
    sqe = corio__get_sqe(loop, &err);
    CHECK(sqe);
    io_uring_prep_nop(sqe);
    CHECK_EQ(corio__io_await(loop, sqe, CORIO_NEVER, NULL), 0);
    return 0;
}

static intptr_t submit_fault_task(void *arg)
{
    corio_loop_t *loop = arg;
    corio__fault_set(CORIO_FAULT_SUBMIT, 1);
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
    io_uring_prep_nop(sqe);
    /* The failed submit is retried on a later turn: the nop still completes. */
    CHECK_EQ(corio__io_await(loop, sqe, CORIO_NEVER, NULL), 0);
    return 0;
}

static void run_task(corio_loop_t *loop, corio_task_fn fn, void *arg)
{
    corio_task_t *t;
    CHECK_EQ(corio_spawn(loop, &t, fn, arg, NULL), 0);
    CHECK_EQ(corio_loop_run_until_complete(loop, corio_task_future(t)), 0);
    corio_task_release(t);
}

static void faults_reach_the_caller(void)
{
    corio_loop_t *loop = new_loop();
    run_task(loop, sqe_fault_task, loop);
    run_task(loop, submit_fault_task, loop);
    /* mmap failing: spawning fails with -ENOMEM, nothing is left behind. */
    corio_loop_stats_t before, after;
    corio_loop_stats(loop, &before);
    corio__fault_set(CORIO_FAULT_MMAP, 1);
    corio_task_t *t = (corio_task_t *)1;
    corio_task_options_t big = {.stack_size = 1 << 20}; /* not from the pool */
    CHECK_EQ(corio_spawn(loop, &t, sqe_fault_task, loop, &big), -ENOMEM);
    CHECK(t == NULL);
    corio_loop_stats(loop, &after);
    CHECK_EQ(after.tasks_live, before.tasks_live);
    close_clean(loop);
}

/* ---- errors ---- */

static int reported;
static void my_handler(corio_loop_t *loop, const corio_error_context_t *c, void *arg)
{
    (void)loop;
    CHECK(arg == &reported);
    CHECK(strstr(c->message, "never retrieved"));
    CHECK_EQ(c->code, -EIO);
    CHECK(c->detail && strcmp(c->detail, "disk on fire") == 0);
    reported++;
}

static void unretrieved_error_is_reported(void)
{
    corio_loop_t *loop = new_loop();
    corio_loop_set_error_handler(loop, my_handler, &reported);
    corio_future_t *f;
    CHECK_EQ(corio_future_new(loop, &f), 0);
    CHECK_EQ(corio_future_set_exception(f, -EIO, "disk on fire"), 0);
    corio_future_unref(f);
    CHECK_EQ(reported, 1);
    /* Retrieved: no report. */
    CHECK_EQ(corio_future_new(loop, &f), 0);
    corio_future_set_exception(f, -EIO, "disk on fire");
    CHECK_EQ(corio_future_exception(f, NULL), -EIO);
    corio_future_unref(f);
    CHECK_EQ(reported, 1);
    close_clean(loop);
}

static void closed_loop_refuses(void)
{
    corio_loop_t *loop = new_loop();
    CHECK_EQ(corio_loop_close(loop), 0);
    CHECK_EQ(corio_loop_close(loop), 0);
    CHECK_EQ(corio_loop_run_forever(loop), -EINVAL);
    CHECK_EQ(corio_loop_run_once(loop, 0), -EINVAL);
    CHECK_EQ(corio_loop_call_soon(loop, NULL, record, NULL), -EINVAL);
    corio_task_t *t;
    CHECK_EQ(corio_spawn(loop, &t, nop_task, NULL, NULL), -EINVAL);
    CHECK_EQ(corio_loop_free(loop), 0);
    CHECK_EQ(corio_loop_run_forever(NULL), -EINVAL);
    CHECK_EQ(corio_loop_new(NULL, NULL), -EINVAL);
}

static void ring_setup_error_says_why(void)
{
    /* In a child: a seccomp filter makes io_uring_setup fail with EPERM. */
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        struct sock_filter filter[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {.len = 4, .filter = filter};
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
            _exit(77);
        corio_loop_t *loop;
        _exit(corio_loop_new(&loop, NULL) == -EPERM ? 0 : 1);
    }
    close(pipefd[1]);
    char buf[512] = "";
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        exit(77);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(n > 0);
    CHECK(strstr(buf, "cannot set up io_uring"));
    CHECK(strstr(buf, "seccomp") || strstr(buf, "disabled"));
}

/* ---- re-entrance and close ---- */

/* A loop driven by run_once (embedded) is running while its tasks run: a
 * task cannot start a nested run_forever on its own stack. */
static intptr_t runs_loop_inside(void *arg)
{
    corio_loop_t *loop = arg;
    corio_handle_t h = {0};
    /* Should the nested run start, this ends it (and the test fails). */
    corio_loop_call_later(loop, &h, 50 * CORIO_NS_PER_MS, stop_cb, loop);
    int rc = corio_loop_run_forever(loop);
    if (corio_handle_pending(&h))
        corio_handle_cancel(&h);
    return rc;
}

static void nested_run_from_a_task_is_refused(void)
{
    corio_loop_t *loop = new_loop();
    corio_task_t *t;
    CHECK_EQ(corio_spawn(loop, &t, runs_loop_inside, loop, NULL), 0);
    for (int i = 0; i < 1000 && !corio_task_done(t); i++)
        corio_loop_run_once(loop, CORIO_NS_PER_MS);
    CHECK(corio_task_done(t));
    CHECK_EQ(corio_future_result(corio_task_future(t), NULL), -EBUSY);
    corio_task_release(t);
    close_clean(loop);
}

/* Callbacks that the loop's last turn schedules (one future's callback
 * completing another) hold a reference on their future: closing the loop
 * must not leak it (LeakSanitizer checks under ASan). */
static int chained_ran;
static void chain_second(corio_future_t *f, void *arg)
{
    (void)f;
    (void)arg;
    chained_ran++;
}

static void chain_first(corio_future_t *f, void *arg)
{
    (void)f;
    corio_future_set_result(arg, corio_value_int(2));
    corio_future_unref(arg); /* the reference given with the callback */
}

static void close_releases_scheduled_callbacks(void)
{
    corio_loop_t *loop = new_loop();
    corio_future_t *f1, *f2;
    CHECK_EQ(corio_future_new(loop, &f1), 0);
    CHECK_EQ(corio_future_new(loop, &f2), 0);
    CHECK_EQ(corio_future_add_done_callback(f1, chain_first, corio_future_ref(f2)), 0);
    CHECK_EQ(corio_future_add_done_callback(f2, chain_second, NULL), 0);
    corio_future_set_result(f1, corio_value_int(1));
    corio_future_unref(f1);
    corio_future_unref(f2);
    close_clean(loop);
}

/* ---- review fixes: turns, stamps, owners ---- */

static int g_ran;
static void tick_cb(void *arg) { (void)arg; g_ran++; }

/* A timer due at INT64_MIN is simply overdue (its wait used to overflow
 * into a huge timeout). */
static void timer_far_in_the_past(void)
{
    corio_loop_t *loop = new_loop();
    g_ran = 0;
    CHECK_EQ(corio_loop_call_at(loop, NULL, INT64_MIN, tick_cb, NULL), 0);
    CHECK_EQ(corio_loop_backend_timeout(loop), 0);
    CHECK_EQ(corio_loop_run_once(loop, -1), 1);
    CHECK_EQ(g_ran, 1);
    close_clean(loop);
}

static int g_inner[4];
static void nested_calls_cb(void *arg)
{
    corio_loop_t *loop = arg;
    g_inner[0] = corio_loop_close(loop);
    g_inner[1] = corio_loop_run_once(loop, 0);
    g_inner[2] = corio_loop_run_forever(loop);
    g_inner[3] = corio_loop_free(loop);
}

/* From one of its own callbacks a loop can be neither run again nor
 * closed (close used to free the ring under the running turn). */
static void callback_cannot_close_or_rerun(void)
{
    corio_loop_t *loop = new_loop();
    CHECK_EQ(corio_loop_call_soon(loop, NULL, nested_calls_cb, loop), 0);
    CHECK_EQ(corio_loop_run_once(loop, 0), 1);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(g_inner[i], -EBUSY);
    close_clean(loop);
}

static void *free_foreign(void *arg) { return (void *)(intptr_t)corio_loop_free(arg); }

/* Only the loop's own thread may close it: another thread's close left the
 * owner's current-loop pointer dangling. */
static void close_from_another_thread_refused(void)
{
    corio_loop_t *loop = new_loop();
    pthread_t th;
    void *rc;
    CHECK_EQ(pthread_create(&th, NULL, free_foreign, loop), 0);
    CHECK_EQ(pthread_join(th, &rc), 0);
    CHECK_EQ((intptr_t)rc, -EPERM);
    CHECK(corio_loop_current() == loop);
    close_clean(loop);
}

static corio_handle_t g_b;
static void cancel_b_then_soon(void *arg)
{
    CHECK_EQ(corio_handle_cancel(&g_b), 0);
    CHECK_EQ(corio_loop_call_soon(arg, NULL, tick_cb, NULL), 0);
}

/* A callback that cancels one the turn owes and schedules a new one: the
 * new one runs in the next turn, as call_soon promises. */
static void cancelled_slot_not_reused(void)
{
    corio_loop_t *loop = new_loop();
    g_ran = 0;
    CHECK_EQ(corio_loop_call_soon(loop, NULL, cancel_b_then_soon, loop), 0);
    corio_handle_t *b = &g_b;
    CHECK_EQ(corio_loop_call_soon(loop, b, record, NULL), 0);
    CHECK_EQ(corio_loop_run_once(loop, 0), 1);
    CHECK_EQ(g_ran, 0);
    CHECK_EQ(corio_loop_run_once(loop, 0), 1);
    CHECK_EQ(g_ran, 1);
    close_clean(loop);
}

static void count_done(corio_future_t *f, void *arg)
{
    (void)f;
    (void)arg;
    g_ran++;
}

static void add_from_callback(corio_future_t *f, void *arg)
{
    (void)arg;
    CHECK_EQ(corio_future_add_done_callback(f, count_done, NULL), 0);
}

/* A done-callback added by a done-callback runs in a later iteration; one
 * added after the loop closed is refused (it could never run). */
static void done_callbacks_added_late(void)
{
    corio_loop_t *loop = new_loop();
    corio_future_t *f;
    CHECK_EQ(corio_future_new(loop, &f), 0);
    CHECK_EQ(corio_future_add_done_callback(f, add_from_callback, NULL), 0);
    CHECK_EQ(corio_future_set_result(f, corio_value_int(1)), 0);
    g_ran = 0;
    CHECK_EQ(corio_loop_run_once(loop, 0), 1);
    CHECK_EQ(g_ran, 0);
    CHECK_EQ(corio_loop_run_once(loop, 0), 1);
    CHECK_EQ(g_ran, 1);
    CHECK_EQ(corio_loop_close(loop), 0);
    CHECK_EQ(corio_future_add_done_callback(f, count_done, NULL), -EINVAL);
    corio_future_unref(f);
    CHECK_EQ(corio_loop_free(loop), 0);
}

/* stop before run_forever: one turn still runs what is scheduled
 * (asyncio's rule), then the run returns. */
static void stop_before_run_runs_one_turn(void)
{
    corio_loop_t *loop = new_loop();
    g_ran = 0;
    CHECK_EQ(corio_loop_call_soon(loop, NULL, tick_cb, NULL), 0);
    CHECK_EQ(corio_loop_stop(loop), 0);
    CHECK_EQ(corio_loop_run_forever(loop), 0);
    CHECK_EQ(g_ran, 1);
    close_clean(loop);
}

static void *complete_later(void *arg)
{
    usleep(50 * 1000);
    CHECK_EQ(corio_future_set_result(arg, corio_value_int(42)), 0);
    return NULL;
}

static corio_future_t *g_ts_done;
static int g_refused;
static void run_until_from_callback(void *arg) { g_refused = corio_loop_run_until_complete(arg, g_ts_done); }

/* run_until_complete on a thread-safe future that another thread completes
 * while the loop sleeps: the completion wakes the loop (it slept for ever). */
static void run_until_threadsafe_future(void)
{
    corio_loop_t *loop = new_loop();
    for (int already = 0; already < 2; already++) {
        corio_future_t *f;
        CHECK_EQ(corio_future_new_threadsafe(&f), 0);
        pthread_t th;
        if (already)
            CHECK_EQ(corio_future_set_result(f, corio_value_int(42)), 0);
        else
            CHECK_EQ(pthread_create(&th, NULL, complete_later, f), 0);
        CHECK_EQ(corio_loop_run_until_complete(loop, f), 0);
        CHECK(corio_future_done(f));
        if (!already)
            CHECK_EQ(pthread_join(th, NULL), 0);
        corio_future_unref(f);
    }
    /* Refused (from one of the loop's callbacks): nothing is left queued
     * that points into the refused call's frame. */
    CHECK_EQ(corio_future_new_threadsafe(&g_ts_done), 0);
    CHECK_EQ(corio_future_set_result(g_ts_done, corio_value_int(1)), 0);
    CHECK_EQ(corio_loop_call_soon(loop, NULL, run_until_from_callback, loop), 0);
    CHECK_EQ(corio_loop_run_once(loop, 0), 1);
    CHECK_EQ(g_refused, -EBUSY);
    CHECK(loop->ts_head == NULL);
    corio_future_unref(g_ts_done);
    /* Stopped first: the wake-up is withdrawn, so a later completion
     * touches nothing of the finished run. */
    corio_future_t *f;
    CHECK_EQ(corio_future_new_threadsafe(&f), 0);
    CHECK_EQ(corio_loop_call_later(loop, NULL, 10 * CORIO_NS_PER_MS, stop_cb, loop), 0);
    CHECK_EQ(corio_loop_run_until_complete(loop, f), CORIO_EINVALSTATE);
    CHECK_EQ(corio_future_set_result(f, corio_value_int(1)), 0);
    corio_future_unref(f);
    close_clean(loop);
}

static void nothing(void *arg) { (void)arg; }

static void *call_until_refused(void *arg)
{
    corio_loop_t *loop = arg;
    int rc;
    while ((rc = corio_loop_call_soon_threadsafe(loop, nothing, NULL)) == 0)
        sched_yield();
    return (void *)(intptr_t)rc;
}

/* Thread-safe calls racing the loop's close: each is either run or freed
 * by the close, or refused with -EINVAL after it; none touches the closed
 * eventfd or a destroyed lock (checked under TSan and ASan). */
static void threadsafe_calls_racing_close(void)
{
    corio_loop_t *loop = new_loop();
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, call_until_refused, loop), 0);
    for (int i = 0; i < 20; i++)
        CHECK(corio_loop_run_once(loop, CORIO_NS_PER_MS) >= 0);
    CHECK_EQ(corio_loop_close(loop), 0);
    void *rc;
    CHECK_EQ(pthread_join(th, &rc), 0);
    CHECK_EQ((intptr_t)rc, -EINVAL);
    CHECK_EQ(corio_loop_free(loop), 0);
}

/* A completion that has to reap (it submits and finds the ring busy) sees
 * only the entries after its own: none is completed twice. */
static corio_loop_t *g_reap_loop;
static int g_completions[2];

static void nested_reap_complete(corio_op_t *op, int res, uint32_t flags);
static corio_op_t g_ops[2] = {{nested_reap_complete}, {nested_reap_complete}};

static void nested_reap_complete(corio_op_t *op, int res, uint32_t flags)
{
    (void)res;
    (void)flags;
    int i = (int)(op - g_ops);
    if (g_completions[i]++ == 0 && i == 0) {
        int err = 0;
        struct io_uring_sqe *sqe = corio__get_sqe(g_reap_loop, &err);
        CHECK(sqe);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, NULL);
        corio__fault_set(CORIO_FAULT_SUBMIT_BUSY, 1); /* reaps, then retries */
        corio__submit_queued(g_reap_loop);
    }
}

static void completion_may_reap(void)
{
    corio_loop_t *loop = g_reap_loop = new_loop();
    for (int i = 0; i < 2; i++) {
        int err = 0;
        struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
        CHECK(sqe);
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, &g_ops[i]);
        corio__op_started(loop);
    }
    CHECK_EQ(io_uring_submit_and_wait(&loop->ring, 2), 2);
    for (int turn = 0; turn < 3; turn++)
        corio_loop_run_once(loop, 0);
    CHECK_EQ(g_completions[0], 1);
    CHECK_EQ(g_completions[1], 1);
    close_clean(loop);
}

TEST_MAIN(CASE(call_soon_is_fifo), CASE(handles_cancel), CASE(call_later_waits),
          CASE_T(million_timers_in_order, 90), CASE(threadsafe_call_wakes_loop),
          CASE(loop_per_thread), CASE(embedding_with_poll), CASE_T(tiny_ring_loses_nothing, 60),
          CASE(eintr_is_retried), CASE(faults_reach_the_caller),
          CASE(unretrieved_error_is_reported), CASE(closed_loop_refuses),
          CASE(ring_setup_error_says_why), CASE(nested_run_from_a_task_is_refused),
          CASE(close_releases_scheduled_callbacks), CASE(timer_far_in_the_past),
          CASE(callback_cannot_close_or_rerun), CASE(close_from_another_thread_refused),
          CASE(cancelled_slot_not_reused), CASE(done_callbacks_added_late),
          CASE(stop_before_run_runs_one_turn), CASE(run_until_threadsafe_future),
          CASE(threadsafe_calls_racing_close),
          CASE(completion_may_reap))
