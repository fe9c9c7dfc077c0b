/* Queues: FIFO, LIFO and priority order, maxsize, nowait forms, task_done
 * and join, shutdown, and a cancelled get or put racing an item or room in
 * every order within one loop turn. */
#include "sync_util.h"

#include <stdlib.h>

#define MS CORIO_NS_PER_MS
#define V(i) corio_value_int(i)

static intptr_t getv(corio_queue_t *q)
{
    corio_value_t v;
    int rc = corio_queue_get_nowait(q, &v);
    return rc < 0 ? rc : corio_value_as_int(v);
}

static intptr_t order_main(void *arg)
{
    (void)arg;
    corio_queue_t *q;
    CHECK_EQ(corio_queue_new(&q, 7, 0), -EINVAL);
    CHECK_EQ(corio_queue_new(NULL, CORIO_QUEUE_FIFO, 0), -EINVAL);
    /* FIFO, across ring wrap-around and growth. */
    CHECK_EQ(corio_queue_new(&q, CORIO_QUEUE_FIFO, 0), 0);
    int next = 0;
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(corio_queue_put_nowait(q, V(i)), 0);
        if (i % 3 == 0)
            CHECK_EQ(getv(q), next++);
    }
    while (next < 100)
        CHECK_EQ(getv(q), next++);
    CHECK_EQ(getv(q), -EAGAIN);
    CHECK(corio_queue_empty(q));
    CHECK(!corio_queue_full(q));
    CHECK_EQ(corio_queue_free(q), 0);
    /* LIFO. */
    CHECK_EQ(corio_queue_new(&q, CORIO_QUEUE_LIFO, 0), 0);
    for (int i = 0; i < 40; i++)
        corio_queue_put_nowait(q, V(i));
    CHECK_EQ(corio_queue_qsize(q), 40);
    for (int i = 39; i >= 0; i--)
        CHECK_EQ(getv(q), i);
    corio_queue_free(q);
    /* Priority: lowest first, FIFO among equals. */
    CHECK_EQ(corio_queue_new(&q, CORIO_QUEUE_PRIORITY, 0), 0);
    int64_t prios[] = {5, 1, 3, 1, 5, 0, 3, 9, 1};
    for (int i = 0; i < 9; i++)
        CHECK_EQ(corio_queue_put_priority_nowait(q, prios[i], V(i)), 0);
    int expect[] = {5, 1, 3, 8, 2, 6, 0, 4, 7};
    for (int i = 0; i < 9; i++)
        CHECK_EQ(getv(q), expect[i]);
    corio_queue_free(q);
    return 0;
}

static void queue_order(void) { CHECK_EQ(run_main(order_main, NULL), 0); }

typedef struct qarg {
    corio_queue_t *q;
    intptr_t v;
    int64_t deadline;
    corio_value_t got;
} qarg_t;

static intptr_t putter(void *arg)
{
    qarg_t *a = arg;
    return corio_queue_put(a->q, V(a->v));
}

static intptr_t getter(void *arg)
{
    qarg_t *a = arg;
    corio_timeout_t s;
    corio_timeout_at(&s, a->deadline ? a->deadline : CORIO_NEVER);
    int rc = corio_queue_get(a->q, &a->got);
    rc = corio_timeout_exit(&s, rc);
    return rc < 0 ? rc : corio_value_as_int(a->got);
}

static intptr_t maxsize_main(void *arg)
{
    (void)arg;
    corio_queue_t *q;
    CHECK_EQ(corio_queue_new(&q, CORIO_QUEUE_FIFO, 2), 0);
    CHECK_EQ(corio_queue_maxsize(q), 2);
    CHECK_EQ(corio_queue_put(q, V(1)), 0);
    CHECK_EQ(corio_queue_put(q, V(2)), 0);
    CHECK(corio_queue_full(q));
    CHECK_EQ(corio_queue_put_nowait(q, V(9)), -EAGAIN);
    qarg_t a[3] = {{q, 3, 0, {0}}, {q, 4, 0, {0}}, {q, 5, 0, {0}}};
    corio_task_t *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = spawn(putter, &a[i]);
    turns(2);
    CHECK_EQ(corio_queue_free(q), -EBUSY);
    /* Room goes to the putters in order; a newcomer waits behind them. */
    CHECK_EQ(getv(q), 1);
    CHECK_EQ(corio_queue_put_nowait(q, V(9)), -EAGAIN);
    for (int i = 1; i <= 4; i++) {
        corio_value_t v;
        CHECK_EQ(corio_queue_get(q, &v), 0);
        CHECK_EQ(corio_value_as_int(v), i + 1);
    }
    for (int i = 0; i < 3; i++)
        CHECK_EQ(join(t[i]), 0);
    CHECK(corio_queue_empty(q));
    /* A getter waiting on an empty queue gets the next item directly. */
    qarg_t g = {q, 0, 0, {0}};
    corio_task_t *gt = spawn(getter, &g);
    turns(2);
    CHECK_EQ(corio_queue_put_nowait(q, V(42)), 0);
    CHECK_EQ(corio_queue_qsize(q), 0);
    CHECK_EQ(join(gt), 42);
    CHECK_EQ(corio_queue_free(q), 0);
    return 0;
}

static void queue_maxsize(void) { CHECK_EQ(run_main(maxsize_main, NULL), 0); }

static intptr_t worker(void *arg)
{
    corio_queue_t *q = arg;
    corio_value_t v;
    int n = 0;
    while (corio_queue_get(q, &v) == 0) {
        corio_sleep(corio_value_as_int(v) * 100000);
        CHECK_EQ(corio_queue_task_done(q), 0);
        n++;
    }
    return n;
}

static intptr_t join_main(void *arg)
{
    (void)arg;
    corio_queue_t *q;
    corio_queue_new(&q, CORIO_QUEUE_FIFO, 0);
    CHECK_EQ(corio_queue_task_done(q), -EINVAL);
    CHECK_EQ(corio_queue_join(q), 0);
    for (int i = 0; i < 10; i++)
        corio_queue_put(q, V(i % 4));
    corio_task_t *w[3] = {spawn(worker, q), spawn(worker, q), spawn(worker, q)};
    CHECK_EQ(corio_queue_join(q), 0);
    CHECK(corio_queue_empty(q));
    /* Shut down: the idle workers wake with CORIO_EQUEUESHUTDOWN. */
    CHECK_EQ(corio_queue_shutdown(q, false), 0);
    intptr_t total = 0;
    for (int i = 0; i < 3; i++)
        total += join(w[i]);
    CHECK_EQ(total, 10);
    CHECK_EQ(corio_queue_put(q, V(1)), CORIO_EQUEUESHUTDOWN);
    CHECK_EQ(corio_queue_task_done(q), -EINVAL);
    corio_queue_free(q);
    return 0;
}

static void queue_join(void) { CHECK_EQ(run_main(join_main, NULL), 0); }

static intptr_t joiner(void *arg) { return corio_queue_join(arg); }

static intptr_t shutdown_main(void *arg)
{
    (void)arg;
    corio_queue_t *q;
    /* Not immediate: the items left can still be taken. */
    corio_queue_new(&q, CORIO_QUEUE_FIFO, 2);
    corio_queue_put(q, V(1));
    corio_queue_put(q, V(2));
    qarg_t p = {q, 3, 0, {0}};
    corio_task_t *pt = spawn(putter, &p);
    turns(2);
    corio_queue_shutdown(q, false);
    CHECK_EQ(join(pt), CORIO_EQUEUESHUTDOWN);
    CHECK_EQ(getv(q), 1);
    CHECK_EQ(getv(q), 2);
    CHECK_EQ(getv(q), CORIO_EQUEUESHUTDOWN);
    corio_value_t v;
    CHECK_EQ(corio_queue_get(q, &v), CORIO_EQUEUESHUTDOWN);
    corio_queue_free(q);
    /* Immediate: items (bytes) dropped and freed, join released, waiting
     * putters and getters woken. */
    corio_queue_new(&q, CORIO_QUEUE_FIFO, 2);
    for (int i = 0; i < 2; i++) {
        char *b = strdup("payload");
        CHECK_EQ(corio_queue_put(q, (corio_value_t){b, 8}), 0);
    }
    corio_task_t *j = spawn(joiner, q);
    p.q = q;
    pt = spawn(putter, &p);
    turns(2);
    CHECK(!corio_task_done(j));
    CHECK_EQ(corio_queue_shutdown(q, true), 0);
    CHECK_EQ(join(j), 0);
    CHECK_EQ(join(pt), CORIO_EQUEUESHUTDOWN);
    CHECK_EQ(corio_queue_qsize(q), 0);
    corio_queue_free(q);
    corio_queue_new(&q, CORIO_QUEUE_LIFO, 0);
    qarg_t g = {q, 0, 0, {0}};
    corio_task_t *gt = spawn(getter, &g);
    turns(2);
    corio_queue_shutdown(q, true);
    CHECK_EQ(join(gt), CORIO_EQUEUESHUTDOWN);
    /* Bytes left in a queue are freed with it. */
    corio_queue_free(q);
    corio_queue_new(&q, CORIO_QUEUE_PRIORITY, 0);
    corio_queue_put_priority(q, 3, (corio_value_t){strdup("abc"), 4});
    CHECK_EQ(corio_queue_free(q), 0);
    return 0;
}

static void queue_shutdown(void) { CHECK_EQ(run_main(shutdown_main, NULL), 0); }

/* A cancelled get while an item arrives, every order within one turn:
 * 0: cancel, then put (the item is handed to the cancelled getter);
 * 1: put, then cancel;
 * 2: cancel, the getter leaves, then put;
 * for each, with and without a second getter behind it. The item is never
 * lost: the second getter has it, or it is at the head of the queue. */
static intptr_t cancel_get_main(void *arg)
{
    int order = (int)(intptr_t)arg % 3;
    bool second = (intptr_t)arg >= 3;
    corio_queue_t *q;
    corio_queue_new(&q, CORIO_QUEUE_FIFO, 1);
    qarg_t a = {q, 0, 0, {0}}, b = {q, 0, 0, {0}};
    corio_task_t *ta = spawn(getter, &a), *tb = second ? spawn(getter, &b) : NULL;
    turns(2);
    switch (order) {
    case 0:
        corio_task_cancel(ta);
        CHECK_EQ(corio_queue_put_nowait(q, V(7)), 0);
        break;
    case 1:
        CHECK_EQ(corio_queue_put_nowait(q, V(7)), 0);
        corio_task_cancel(ta);
        break;
    case 2:
        corio_task_cancel(ta);
        turns(1);
        CHECK_EQ(corio_queue_put_nowait(q, V(7)), 0);
        break;
    }
    CHECK_EQ(join(ta), -ECANCELED);
    if (second) {
        CHECK_EQ(join(tb), 7);
        CHECK(corio_queue_empty(q));
    } else {
        CHECK_EQ(corio_queue_qsize(q), 1);
        CHECK_EQ(getv(q), 7);
    }
    /* Another item put behind the given-back one comes after it. */
    corio_queue_put_nowait(q, V(1));
    corio_queue_put_nowait(q, V(2)); /* full */
    CHECK_EQ(getv(q), 1);
    CHECK_EQ(corio_queue_free(q), 0);
    return 0;
}

static void queue_cancel_get_orders(void)
{
    for (int i = 0; i < 6; i++)
        CHECK_EQ(run_main(cancel_get_main, (void *)(intptr_t)i), 0);
}

static void put_cb(void *q) { CHECK_EQ(corio_queue_put_nowait(q, V(7)), 0); }

/* The getter's timeout scope expires in the same turn as the item arrives,
 * in both orders: -ETIMEDOUT, and the item stays in the queue. */
static intptr_t timeout_get_main(void *arg)
{
    int order = (int)(intptr_t)arg;
    corio_queue_t *q;
    corio_queue_new(&q, CORIO_QUEUE_FIFO, 0);
    int64_t T = corio_now() + AHEAD;
    qarg_t a = {q, 0, T, {0}};
    if (order == 0)
        at(T, put_cb, q);
    corio_task_t *ta = spawn(getter, &a);
    turns(2);
    CHECK_EQ(deadline_of(ta), T);
    if (order == 1)
        at(T, put_cb, q);
    CHECK_EQ(join(ta), -ETIMEDOUT);
    CHECK_EQ(getv(q), 7);
    corio_queue_free(q);
    return 0;
}

static void queue_timeout_get_orders(void)
{
    for (int i = 0; i < 2; i++)
        CHECK_EQ(run_main(timeout_get_main, (void *)(intptr_t)i), 0);
}

/* A cancelled put while room appears, both orders: its item is never
 * inserted, and the room goes to the next putter. */
static intptr_t cancel_put_main(void *arg)
{
    int order = (int)(intptr_t)arg;
    corio_queue_t *q;
    corio_queue_new(&q, CORIO_QUEUE_FIFO, 1);
    corio_queue_put_nowait(q, V(1));
    qarg_t a = {q, 2, 0, {0}}, b = {q, 3, 0, {0}};
    corio_task_t *ta = spawn(putter, &a), *tb = spawn(putter, &b);
    turns(2);
    if (order == 0) {
        corio_task_cancel(ta);
        CHECK_EQ(getv(q), 1);
    } else {
        CHECK_EQ(getv(q), 1);
        corio_task_cancel(ta);
    }
    CHECK_EQ(join(ta), -ECANCELED);
    CHECK_EQ(join(tb), 0);
    CHECK_EQ(corio_queue_qsize(q), 1);
    CHECK_EQ(getv(q), 3);
    CHECK_EQ(getv(q), -EAGAIN);
    corio_queue_free(q);
    return 0;
}

static void queue_cancel_put_orders(void)
{
    for (int i = 0; i < 2; i++)
        CHECK_EQ(run_main(cancel_put_main, (void *)(intptr_t)i), 0);
}

/* Producers and consumers through a small queue: every item arrives once. */
typedef struct pc {
    corio_queue_t *q;
    int base;
    long sum;
} pc_t;

static intptr_t producer(void *arg)
{
    pc_t *p = arg;
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(corio_queue_put(p->q, V(p->base + i)), 0);
    return 0;
}

static intptr_t consumer(void *arg)
{
    pc_t *p = arg;
    corio_value_t v;
    int rc;
    while ((rc = corio_queue_get(p->q, &v)) == 0)
        p->sum += corio_value_as_int(v);
    CHECK_EQ(rc, CORIO_EQUEUESHUTDOWN);
    return 0;
}

static intptr_t pc_main(void *arg)
{
    corio_queue_t *q;
    corio_queue_new(&q, (corio_queue_kind_t)(intptr_t)arg, 3);
    pc_t p[3] = {{q, 0, 0}, {q, 1000, 0}, {q, 2000, 0}};
    pc_t c[2] = {{q, 0, 0}, {q, 0, 0}};
    corio_task_t *pt[3], *ct[2];
    for (int i = 0; i < 3; i++)
        pt[i] = spawn(producer, &p[i]);
    for (int i = 0; i < 2; i++)
        ct[i] = spawn(consumer, &c[i]);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(join(pt[i]), 0);
    corio_queue_shutdown(q, false);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(join(ct[i]), 0);
    CHECK_EQ(c[0].sum + c[1].sum, 2999L * 3000 / 2);
    corio_queue_free(q);
    return 0;
}

static void queue_producers_consumers(void)
{
    for (int k = 0; k < 3; k++)
        CHECK_EQ(run_main(pc_main, (void *)(intptr_t)k), 0);
}

/* Two tasks handing items back and forth forever (each handoff a direct
 * task-to-task switch) starve neither timers nor other tasks. */
typedef struct forever {
    corio_queue_t *in, *out;
    long n;
} forever_t;

static intptr_t bouncer(void *arg)
{
    forever_t *f = arg;
    corio_value_t v;
    int rc;
    while ((rc = corio_queue_get(f->in, &v)) == 0) {
        f->n++;
        if (corio_queue_put(f->out, v) < 0)
            break;
    }
    return rc == CORIO_EQUEUESHUTDOWN || rc == 0 ? 0 : rc;
}

static intptr_t pingpong_main(void *arg)
{
    (void)arg;
    corio_queue_t *a, *b;
    corio_queue_new(&a, CORIO_QUEUE_FIFO, 1);
    corio_queue_new(&b, CORIO_QUEUE_FIFO, 1);
    forever_t x = {a, b, 0}, y = {b, a, 0};
    corio_task_t *tx = spawn(bouncer, &x), *ty = spawn(bouncer, &y);
    CHECK_EQ(corio_queue_put(a, V(1)), 0);
    CHECK_EQ(corio_sleep(5 * MS), 0); /* the timer fires despite the bouncing */
    CHECK(x.n > 0 && y.n > 0);
    corio_queue_shutdown(a, true);
    corio_queue_shutdown(b, true);
    CHECK_EQ(join(tx), 0);
    CHECK_EQ(join(ty), 0);
    corio_queue_free(a);
    corio_queue_free(b);
    return 0;
}

static void queue_pingpong_starves_nothing(void) { CHECK_EQ(run_main(pingpong_main, NULL), 0); }

/* Chaos: producers and consumers through a small queue while another task
 * cancels them at random (seeded, so reproducible). A cancelled put is
 * retried with the same item, a cancelled get simply again: every item put
 * arrives exactly once. */
typedef struct chaos {
    corio_queue_t *q;
    corio_task_t *tasks[6];
    int id;
    long put_sum, got_sum, got_n;
    long put_cancelled, get_cancelled;
    unsigned seed;
    bool done;
} chaos_t;

typedef struct chaos_role {
    chaos_t *c;
    int id;
} chaos_role_t;

static void uncancel_all(void)
{
    while (corio_task_uncancel(corio_current_task()) > 0)
        ;
}

static intptr_t chaos_producer(void *arg)
{
    chaos_role_t *r = arg;
    for (int i = 0; i < 300; i++) {
        intptr_t v = r->id * 1000 + i;
        int rc;
        while ((rc = corio_queue_put(r->c->q, V(v))) == -ECANCELED) {
            r->c->put_cancelled++;
            uncancel_all();
        }
        CHECK_EQ(rc, 0);
        r->c->put_sum += v;
        if (i % 7 == 0 && corio_sleep(0) == -ECANCELED)
            uncancel_all();
    }
    uncancel_all();
    return 0;
}

static intptr_t chaos_consumer(void *arg)
{
    chaos_role_t *r = arg;
    corio_value_t v;
    for (;;) {
        int rc = corio_queue_get(r->c->q, &v);
        if (rc == -ECANCELED) {
            r->c->get_cancelled++;
            uncancel_all();
            continue;
        }
        if (rc == CORIO_EQUEUESHUTDOWN)
            break;
        CHECK_EQ(rc, 0);
        r->c->got_sum += corio_value_as_int(v);
        r->c->got_n++;
    }
    uncancel_all();
    return 0;
}

static intptr_t chaos_monkey(void *arg)
{
    chaos_t *c = arg;
    while (!c->done) {
        c->seed = c->seed * 1103515245u + 12345u;
        corio_task_t *t = c->tasks[(c->seed >> 16) % 6];
        if (!corio_task_done(t))
            corio_task_cancel(t);
        for (unsigned k = (c->seed >> 8) % 3; k > 0; k--)
            corio_sleep(0);
    }
    return 0;
}

static intptr_t chaos_main(void *arg)
{
    chaos_t c = {.seed = 12345u + (unsigned)(intptr_t)arg};
    corio_queue_new(&c.q, (corio_queue_kind_t)((intptr_t)arg % 3), 2);
    chaos_role_t roles[6];
    for (int i = 0; i < 6; i++) {
        roles[i] = (chaos_role_t){&c, i};
        c.tasks[i] = spawn(i < 3 ? chaos_producer : chaos_consumer, &roles[i]);
    }
    corio_task_t *m = spawn(chaos_monkey, &c);
    /* The monkey reads the task handles: release them after it ends. */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(corio_task_await(c.tasks[i], NULL), 0);
    c.done = true;
    CHECK_EQ(join(m), 0);
    corio_queue_shutdown(c.q, false);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(join(c.tasks[i]), 0);
    CHECK_EQ(c.got_n, 900);
    CHECK(c.put_cancelled > 0 && c.get_cancelled > 0);
    CHECK_EQ(c.got_sum, c.put_sum);
    CHECK_EQ(corio_queue_free(c.q), 0);
    return 0;
}

static void queue_chaos(void)
{
    for (int i = 0; i < 9; i++)
        CHECK_EQ(run_main(chaos_main, (void *)(intptr_t)i), 0);
}

static void queue_no_task(void)
{
    corio_queue_t *q;
    CHECK_EQ(corio_queue_new(&q, CORIO_QUEUE_FIFO, 1), 0);
    corio_value_t v;
    CHECK_EQ(corio_queue_get(q, &v), -EDEADLK);
    CHECK_EQ(corio_queue_put(q, V(1)), 0);
    CHECK_EQ(corio_queue_put(q, V(2)), -EDEADLK);
    CHECK_EQ(corio_queue_get(q, &v), 0);
    CHECK_EQ(corio_queue_get(NULL, &v), -EINVAL);
    CHECK_EQ(corio_queue_free(q), 0);
}

static intptr_t plain_getter(void *q)
{
    corio_value_t v;
    int rc = corio_queue_get(q, &v);
    return rc < 0 ? rc : corio_value_as_int(v);
}

/* Two getters handed A and B, both cancelled in that turn, C queued behind:
 * the items come out A, B, C (each give-back went to the front: B, A, C). */
static intptr_t giveback_order_main(void *arg)
{
    (void)arg;
    corio_queue_t *q;
    CHECK_EQ(corio_queue_new(&q, CORIO_QUEUE_FIFO, 0), 0);
    corio_task_t *g1 = spawn(plain_getter, q), *g2 = spawn(plain_getter, q);
    turns(2);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(corio_queue_put_nowait(q, V(i)), 0);
    corio_task_cancel(g1);
    corio_task_cancel(g2);
    CHECK_EQ(join(g1), -ECANCELED);
    CHECK_EQ(join(g2), -ECANCELED);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(getv(q), i);
    CHECK_EQ(corio_queue_free(q), 0);
    return 0;
}

static void queue_giveback_keeps_order(void) { CHECK_EQ(run_main(giveback_order_main, NULL), 0); }

/* An item handed to a getter cancelled in the turn of an immediate shutdown
 * is dropped and counted done like the rest, not put back into the queue
 * (join then never returned); free waits until that getter has resumed. */
static intptr_t shutdown_giveback_main(void *arg)
{
    (void)arg;
    corio_queue_t *q;
    CHECK_EQ(corio_queue_new(&q, CORIO_QUEUE_FIFO, 0), 0);
    CHECK_EQ(corio_queue_put_nowait(q, V(1)), 0);
    CHECK_EQ(getv(q), 1); /* X: in work, not done yet */
    corio_task_t *g = spawn(plain_getter, q), *j = spawn(joiner, q);
    turns(2);
    CHECK_EQ(corio_queue_put_nowait(q, V(2)), 0); /* handed to g */
    corio_task_cancel(g);
    CHECK_EQ(corio_queue_shutdown(q, true), 0);
    CHECK_EQ(corio_queue_free(q), -EBUSY); /* g still holds the item */
    CHECK_EQ(join(g), -ECANCELED);
    CHECK_EQ(corio_queue_qsize(q), 0);
    CHECK_EQ(corio_queue_task_done(q), 0); /* X */
    CHECK_EQ(join(j), 0);
    CHECK_EQ(corio_queue_free(q), 0);
    return 0;
}

static void queue_shutdown_drops_giveback(void) { CHECK_EQ(run_main(shutdown_giveback_main, NULL), 0); }

static intptr_t plain_putter(void *q) { return corio_queue_put(q, V(9)); }

/* Woken by shutdown in the turn it was cancelled, in either order: the
 * get or put reports the cancellation, as the current await must. */
static intptr_t shutdown_vs_cancel_main(void *arg)
{
    (void)arg;
    for (int order = 0; order < 2; order++)
        for (int put = 0; put < 2; put++) {
            corio_queue_t *q;
            CHECK_EQ(corio_queue_new(&q, CORIO_QUEUE_FIFO, 1), 0);
            if (put)
                CHECK_EQ(corio_queue_put_nowait(q, V(1)), 0); /* full */
            corio_task_t *t = spawn(put ? plain_putter : plain_getter, q);
            turns(2);
            if (order)
                CHECK_EQ(corio_queue_shutdown(q, false), 0);
            corio_task_cancel(t);
            if (!order)
                CHECK_EQ(corio_queue_shutdown(q, false), 0);
            CHECK_EQ(join(t), -ECANCELED);
            CHECK_EQ(corio_queue_free(q), 0);
        }
    return 0;
}

static void queue_shutdown_vs_cancel(void) { CHECK_EQ(run_main(shutdown_vs_cancel_main, NULL), 0); }

TEST_MAIN(CASE(queue_order), CASE(queue_maxsize), CASE(queue_join), CASE(queue_shutdown),
          CASE(queue_cancel_get_orders), CASE(queue_timeout_get_orders),
          CASE(queue_cancel_put_orders), CASE(queue_producers_consumers),
          CASE(queue_pingpong_starves_nothing), CASE(queue_chaos), CASE(queue_no_task),
          CASE(queue_giveback_keeps_order), CASE(queue_shutdown_drops_giveback),
          CASE(queue_shutdown_vs_cancel))
