/* Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier: behaviour,
 * fairness, and every order of cancellation, grant and timeout within one
 * loop turn. */
#include "sync_util.h"

#define MS CORIO_NS_PER_MS

/* ---- Lock ------------------------------------------------------------------- */

typedef struct lock_user {
    corio_lock_t *lock;
    int id;
    int *order, *n;
    bool held;
    int64_t deadline; /* a timeout scope around the acquire, or CORIO_NEVER */
} lock_user_t;

static intptr_t lock_user(void *arg)
{
    lock_user_t *u = arg;
    corio_timeout_t s;
    CHECK_EQ(corio_timeout_at(&s, u->deadline), 0);
    int rc = corio_lock_acquire(u->lock);
    rc = corio_timeout_exit(&s, rc);
    if (rc < 0)
        return rc;
    u->held = true;
    if (u->order)
        u->order[(*u->n)++] = u->id;
    corio_sleep(0);
    CHECK_EQ(corio_lock_release(u->lock), 0);
    return 0;
}

static intptr_t lock_fifo_main(void *arg)
{
    (void)arg;
    corio_lock_t l;
    CHECK_EQ(corio_lock_init(&l), 0);
    CHECK_EQ(corio_lock_acquire(&l), 0);
    CHECK(corio_lock_locked(&l));
    CHECK_EQ(corio_lock_try_acquire(&l), -EAGAIN);
    int order[5], n = 0;
    lock_user_t u[5];
    corio_task_t *t[5];
    for (int i = 0; i < 5; i++) {
        u[i] = (lock_user_t){&l, i, order, &n, false, CORIO_NEVER};
        t[i] = spawn(lock_user, &u[i]);
    }
    turns(2);
    CHECK_EQ(corio_lock_destroy(&l), -EBUSY);
    CHECK_EQ(corio_lock_release(&l), 0);
    /* Handed to the first waiter: a newcomer cannot barge in. */
    CHECK(corio_lock_locked(&l));
    CHECK_EQ(corio_lock_try_acquire(&l), -EAGAIN);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(join(t[i]), 0);
    CHECK_EQ(n, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(order[i], i);
    CHECK(!corio_lock_locked(&l));
    CHECK_EQ(corio_lock_release(&l), -EPERM);
    CHECK_EQ(corio_lock_destroy(&l), 0);
    CHECK_EQ(corio_lock_init(NULL), -EINVAL);
    CHECK_EQ(corio_lock_acquire(NULL), -EINVAL);
    return 0;
}

static void lock_fifo(void) { CHECK_EQ(run_main(lock_fifo_main, NULL), 0); }

/* A cancelled waiter inside the lock's queue, every order within one turn:
 * 0: cancel, then release (the waiter is granted the lock while its
 *    cancellation is pending: it must pass the lock on);
 * 1: release, then cancel (granted first, cancelled before it runs);
 * 2: cancel only (it leaves the queue);
 * 3: the waiter behind it is cancelled instead. */
static intptr_t lock_cancel_main(void *arg)
{
    int order = (int)(intptr_t)arg;
    corio_lock_t l;
    corio_lock_init(&l);
    CHECK_EQ(corio_lock_acquire(&l), 0);
    lock_user_t a = {&l, 1, NULL, NULL, false, CORIO_NEVER};
    lock_user_t b = {&l, 2, NULL, NULL, false, CORIO_NEVER};
    corio_task_t *ta = spawn(lock_user, &a), *tb = spawn(lock_user, &b);
    turns(2);
    CHECK_EQ(l.waiters.n, 2);
    switch (order) {
    case 0:
        corio_task_cancel(ta);
        corio_lock_release(&l);
        break;
    case 1:
        corio_lock_release(&l);
        corio_task_cancel(ta);
        break;
    case 2:
        corio_task_cancel(ta);
        turns(1);
        CHECK_EQ(l.waiters.n, 1);
        corio_lock_release(&l);
        break;
    case 3:
        corio_task_cancel(tb);
        corio_lock_release(&l);
        break;
    }
    intptr_t ra = join(ta), rb = join(tb);
    if (order == 3) {
        CHECK_EQ(ra, 0);
        CHECK(a.held);
        CHECK_EQ(rb, -ECANCELED);
        CHECK(!b.held);
    } else {
        CHECK_EQ(ra, -ECANCELED);
        CHECK(!a.held); /* a cancelled waiter never ends up holding the lock */
        CHECK_EQ(rb, 0);
        CHECK(b.held);
    }
    CHECK(!corio_lock_locked(&l));
    CHECK_EQ(l.waiters.n, 0);
    CHECK_EQ(corio_lock_destroy(&l), 0);
    return 0;
}

static void lock_cancel_orders(void)
{
    for (int order = 0; order < 4; order++)
        CHECK_EQ(run_main(lock_cancel_main, (void *)(intptr_t)order), 0);
}

static void release_cb(void *l) { CHECK_EQ(corio_lock_release(l), 0); }

/* The waiter's timeout scope expires in the same turn as the release, in
 * both orders: either way the acquire reports -ETIMEDOUT and the lock goes
 * to the next waiter. */
static intptr_t lock_timeout_main(void *arg)
{
    int order = (int)(intptr_t)arg;
    corio_lock_t l;
    corio_lock_init(&l);
    CHECK_EQ(corio_lock_acquire(&l), 0);
    int64_t T = corio_now() + AHEAD;
    lock_user_t a = {&l, 1, NULL, NULL, false, T};
    lock_user_t b = {&l, 2, NULL, NULL, false, CORIO_NEVER};
    if (order == 0)
        at(T, release_cb, &l); /* release, then the timeout */
    corio_task_t *ta = spawn(lock_user, &a), *tb = spawn(lock_user, &b);
    turns(2);
    CHECK_EQ(deadline_of(ta), T);
    if (order == 1)
        at(T, release_cb, &l); /* the timeout, then the release */
    CHECK_EQ(join(ta), -ETIMEDOUT);
    CHECK(!a.held);
    CHECK_EQ(join(tb), 0);
    CHECK(b.held);
    CHECK(!corio_lock_locked(&l));
    return 0;
}

static void lock_timeout_orders(void)
{
    for (int order = 0; order < 2; order++)
        CHECK_EQ(run_main(lock_timeout_main, (void *)(intptr_t)order), 0);
}

/* The uncontended path takes no cancellation point: a cancelled task can
 * still take a free lock in its cleanup. */
static intptr_t lock_cancelled_cleanup_main(void *arg)
{
    (void)arg;
    corio_lock_t l;
    corio_lock_init(&l);
    corio_task_cancel(corio_current_task());
    CHECK_EQ(corio_sleep(0), -ECANCELED);
    CHECK_EQ(corio_lock_acquire(&l), 0);
    CHECK_EQ(corio_lock_release(&l), 0);
    corio_task_uncancel(corio_current_task());
    return 0;
}

static void lock_cancelled_cleanup(void) { CHECK_EQ(run_main(lock_cancelled_cleanup_main, NULL), 0); }

static intptr_t lock_outside_task(void *arg)
{
    (void)arg;
    return 0;
}

static void lock_no_task(void)
{
    corio_lock_t l;
    corio_lock_init(&l);
    CHECK_EQ(corio_lock_acquire(&l), 0); /* free: no wait, no task needed */
    CHECK_EQ(corio_lock_acquire(&l), -EDEADLK);
    CHECK_EQ(corio_lock_release(&l), 0);
    CHECK_EQ(run_main(lock_outside_task, NULL), 0);
}

/* Chaos: tasks taking a lock (and a semaphore of 2) while another task
 * cancels them at random (seeded). Mutual exclusion holds throughout, a
 * cancelled acquire never holds, and both end free with nobody waiting. */
typedef struct lock_chaos {
    corio_lock_t lock;
    corio_semaphore_t sem;
    corio_task_t *tasks[5];
    corio_task_t *holder;
    int in_sem;
    long entries, cancelled;
    unsigned seed;
    bool done;
} lock_chaos_t;

static void uncancel_all(void)
{
    while (corio_task_uncancel(corio_current_task()) > 0)
        ;
}

static intptr_t lock_chaos_worker(void *arg)
{
    lock_chaos_t *c = arg;
    corio_task_t *self = corio_current_task();
    for (int i = 0; i < 200; i++) {
        int rc;
        while ((rc = corio_lock_acquire(&c->lock)) == -ECANCELED) {
            c->cancelled++;
            CHECK(c->holder != self);
            uncancel_all();
        }
        CHECK_EQ(rc, 0);
        CHECK(c->holder == NULL);
        c->holder = self;
        c->entries++;
        if (corio_sleep(0) == -ECANCELED) /* cancelled while holding: still ours */
            uncancel_all();
        CHECK(c->holder == self);
        c->holder = NULL;
        CHECK_EQ(corio_lock_release(&c->lock), 0);
        while ((rc = corio_semaphore_acquire(&c->sem)) == -ECANCELED) {
            c->cancelled++;
            uncancel_all();
        }
        CHECK_EQ(rc, 0);
        CHECK(++c->in_sem <= 2);
        if (corio_sleep(0) == -ECANCELED)
            uncancel_all();
        c->in_sem--;
        CHECK_EQ(corio_semaphore_release(&c->sem), 0);
    }
    uncancel_all();
    return 0;
}

static intptr_t lock_chaos_monkey(void *arg)
{
    lock_chaos_t *c = arg;
    while (!c->done) {
        c->seed = c->seed * 1103515245u + 12345u;
        corio_task_t *t = c->tasks[(c->seed >> 16) % 5];
        if (!corio_task_done(t))
            corio_task_cancel(t);
        for (unsigned k = (c->seed >> 8) % 3; k > 0; k--)
            corio_sleep(0);
    }
    return 0;
}

static intptr_t lock_chaos_main(void *arg)
{
    lock_chaos_t c = {.seed = 777u + (unsigned)(intptr_t)arg};
    corio_lock_init(&c.lock);
    corio_bounded_semaphore_init(&c.sem, 2);
    for (int i = 0; i < 5; i++)
        c.tasks[i] = spawn(lock_chaos_worker, &c);
    corio_task_t *m = spawn(lock_chaos_monkey, &c);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(corio_task_await(c.tasks[i], NULL), 0);
    c.done = true;
    CHECK_EQ(join(m), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(join(c.tasks[i]), 0);
    CHECK_EQ(c.entries, 1000);
    CHECK(c.cancelled > 0);
    CHECK(!corio_lock_locked(&c.lock));
    CHECK_EQ(corio_lock_destroy(&c.lock), 0);
    CHECK_EQ(corio_semaphore_value(&c.sem), 2);
    CHECK_EQ(corio_semaphore_destroy(&c.sem), 0);
    return 0;
}

static void lock_chaos(void)
{
    for (int i = 0; i < 8; i++)
        CHECK_EQ(run_main(lock_chaos_main, (void *)(intptr_t)i), 0);
}

/* ---- Event ------------------------------------------------------------------ */

static intptr_t event_waiter(void *arg) { return corio_event_wait(arg); }

static intptr_t event_main(void *arg)
{
    (void)arg;
    corio_event_t ev;
    CHECK_EQ(corio_event_init(&ev), 0);
    corio_task_t *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = spawn(event_waiter, &ev);
    turns(2);
    CHECK_EQ(corio_event_destroy(&ev), -EBUSY);
    CHECK(!corio_event_is_set(&ev));
    /* Set and cancel in one turn, both orders: the cancelled ones report it. */
    corio_task_cancel(t[0]);
    CHECK_EQ(corio_event_set(&ev), 0);
    corio_task_cancel(t[1]);
    CHECK_EQ(join(t[0]), -ECANCELED);
    CHECK_EQ(join(t[1]), -ECANCELED);
    CHECK_EQ(join(t[2]), 0);
    CHECK_EQ(join(t[3]), 0);
    CHECK(corio_event_is_set(&ev));
    CHECK_EQ(corio_event_wait(&ev), 0);
    CHECK_EQ(corio_event_clear(&ev), 0);
    corio_task_t *w = spawn(event_waiter, &ev);
    turns(2);
    CHECK(!corio_task_done(w));
    corio_event_set(&ev);
    CHECK_EQ(join(w), 0);
    /* A timeout scope around the wait. */
    corio_event_clear(&ev);
    corio_timeout_t s;
    corio_timeout(&s, 5 * MS);
    int rc = corio_event_wait(&ev);
    CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
    CHECK(corio_timeout_expired(&s));
    CHECK_EQ(corio_event_destroy(&ev), 0);
    return 0;
}

static void event_basic(void) { CHECK_EQ(run_main(event_main, NULL), 0); }

/* ---- Condition ------------------------------------------------------------- */

typedef struct cond_state {
    corio_condition_t c;
    int items;
    int consumed;
    int rc[4];
} cond_state_t;

static bool have_item(void *arg) { return ((cond_state_t *)arg)->items > 0; }

static intptr_t consumer(void *arg)
{
    cond_state_t *s = arg;
    CHECK_EQ(corio_condition_acquire(&s->c), 0);
    int rc = corio_condition_wait_for(&s->c, have_item, s);
    CHECK(corio_condition_locked(&s->c)); /* held again, whatever the outcome */
    if (rc == 0) {
        s->items--;
        s->consumed++;
    }
    CHECK_EQ(corio_condition_release(&s->c), 0);
    return rc;
}

static intptr_t condition_main(void *arg)
{
    (void)arg;
    cond_state_t s = {0};
    CHECK_EQ(corio_condition_init(&s.c, NULL), 0);
    CHECK_EQ(corio_condition_notify(&s.c, 1), -EPERM);
    CHECK_EQ(corio_condition_wait(&s.c), -EPERM);
    corio_task_t *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = spawn(consumer, &s);
    turns(3);
    CHECK_EQ(s.c.waiters.n, 3);
    /* One item, notify one: exactly one consumer takes it. */
    CHECK_EQ(corio_condition_acquire(&s.c), 0);
    s.items = 1;
    CHECK_EQ(corio_condition_notify(&s.c, 1), 1);
    CHECK_EQ(corio_condition_release(&s.c), 0);
    CHECK_EQ(join(t[0]), 0);
    CHECK_EQ(s.consumed, 1);
    turns(2);
    CHECK_EQ(s.c.waiters.n, 2);
    /* Notified and cancelled in one turn: the notification goes on to the
     * next waiter, which takes the item. */
    CHECK_EQ(corio_condition_acquire(&s.c), 0);
    s.items = 1;
    CHECK_EQ(corio_condition_notify(&s.c, 1), 1);
    corio_task_cancel(t[1]);
    CHECK_EQ(corio_condition_release(&s.c), 0);
    CHECK_EQ(join(t[1]), -ECANCELED);
    CHECK_EQ(join(t[2]), 0);
    CHECK_EQ(s.consumed, 2);
    /* notify_all with a shared lock. */
    corio_lock_t l;
    corio_lock_init(&l);
    cond_state_t s2 = {0};
    corio_condition_init(&s2.c, &l);
    for (int i = 0; i < 3; i++)
        t[i] = spawn(consumer, &s2);
    turns(3);
    CHECK_EQ(corio_lock_acquire(&l), 0);
    CHECK(corio_condition_locked(&s2.c));
    s2.items = 3;
    CHECK_EQ(corio_condition_notify_all(&s2.c), 3);
    CHECK_EQ(corio_lock_release(&l), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(join(t[i]), 0);
    CHECK_EQ(s2.consumed, 3);
    CHECK_EQ(corio_condition_destroy(&s2.c), 0);
    CHECK_EQ(corio_condition_destroy(&s.c), 0);
    return 0;
}

static void condition_basic(void) { CHECK_EQ(run_main(condition_main, NULL), 0); }

/* The lock is taken back even when the wait is cancelled while another task
 * holds the lock. */
static intptr_t cond_holder(void *arg)
{
    cond_state_t *s = arg;
    CHECK_EQ(corio_condition_acquire(&s->c), 0);
    corio_sleep(10 * MS);
    CHECK_EQ(corio_condition_release(&s->c), 0);
    return 0;
}

static intptr_t condition_cancel_main(void *arg)
{
    (void)arg;
    cond_state_t s = {0};
    corio_condition_init(&s.c, NULL);
    corio_task_t *c = spawn(consumer, &s);
    turns(2);
    corio_task_t *h = spawn(cond_holder, &s);
    turns(2); /* the holder has the lock now */
    corio_task_cancel(c);
    CHECK_EQ(join(h), 0);
    CHECK_EQ(join(c), -ECANCELED);
    CHECK(!corio_condition_locked(&s.c));
    return 0;
}

static void condition_cancel(void) { CHECK_EQ(run_main(condition_cancel_main, NULL), 0); }

/* Chaos: notify(1) per item while consumers are cancelled at random: a
 * notification a cancelled waiter received goes on to another, so no item
 * is left behind with every consumer asleep (the case's timeout would
 * fire). */
typedef struct cond_chaos {
    corio_condition_t c;
    int items, taken;
    corio_task_t *tasks[4];
    unsigned seed;
    bool done;
} cond_chaos_t;

static bool chaos_have_item(void *arg) { return ((cond_chaos_t *)arg)->items > 0; }

static intptr_t cond_chaos_consumer(void *arg)
{
    cond_chaos_t *c = arg;
    for (;;) {
        if (corio_condition_acquire(&c->c) < 0) {
            uncancel_all();
            if (c->done)
                return 0;
            continue;
        }
        int rc = corio_condition_wait_for(&c->c, chaos_have_item, c);
        CHECK(corio_condition_locked(&c->c)); /* held again, whatever rc */
        if (rc == -ECANCELED) {
            corio_condition_release(&c->c);
            uncancel_all();
            if (c->done)
                return 0;
            continue;
        }
        CHECK_EQ(rc, 0);
        c->items--;
        c->taken++;
        corio_condition_release(&c->c);
    }
}

static intptr_t cond_chaos_monkey(void *arg)
{
    cond_chaos_t *c = arg;
    while (!c->done) {
        c->seed = c->seed * 1103515245u + 12345u;
        corio_task_t *t = c->tasks[(c->seed >> 16) % 4];
        if (!corio_task_done(t))
            corio_task_cancel(t);
        for (unsigned k = (c->seed >> 8) % 4; k > 0; k--)
            corio_sleep(0);
    }
    return 0;
}

static intptr_t cond_chaos_main(void *arg)
{
    cond_chaos_t c = {.seed = 99u + (unsigned)(intptr_t)arg};
    corio_condition_init(&c.c, NULL);
    for (int i = 0; i < 4; i++)
        c.tasks[i] = spawn(cond_chaos_consumer, &c);
    corio_task_t *m = spawn(cond_chaos_monkey, &c);
    for (int i = 0; i < 400; i++) {
        CHECK_EQ(corio_condition_acquire(&c.c), 0);
        c.items++;
        corio_condition_notify(&c.c, 1);
        corio_condition_release(&c.c);
        if (i % 3 == 0)
            corio_sleep(0);
    }
    /* Every item is taken although each got a single notification. */
    while (c.taken < 400)
        CHECK_EQ(corio_sleep(0), 0);
    c.done = true;
    CHECK_EQ(join(m), 0);
    /* The consumers wait for items that never come: cancel them to stop. */
    for (int i = 0; i < 4; i++)
        corio_task_cancel(c.tasks[i]);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(join(c.tasks[i]), 0);
    CHECK_EQ(c.items, 0);
    CHECK(!corio_condition_locked(&c.c));
    return 0;
}

static void condition_chaos(void)
{
    for (int i = 0; i < 6; i++)
        CHECK_EQ(run_main(cond_chaos_main, (void *)(intptr_t)i), 0);
}

/* ---- Semaphore -------------------------------------------------------------- */

static intptr_t sem_user(void *arg)
{
    corio_semaphore_t *s = arg;
    int rc = corio_semaphore_acquire(s);
    if (rc < 0)
        return rc;
    corio_sleep(MS);
    CHECK_EQ(corio_semaphore_release(s), 0);
    return 1;
}

static intptr_t semaphore_main(void *arg)
{
    (void)arg;
    corio_semaphore_t s;
    CHECK_EQ(corio_semaphore_init(&s, -1), -EINVAL);
    CHECK_EQ(corio_semaphore_init(&s, 2), 0);
    CHECK_EQ(corio_semaphore_acquire(&s), 0);
    CHECK_EQ(corio_semaphore_try_acquire(&s), 0);
    CHECK(corio_semaphore_locked(&s));
    CHECK_EQ(corio_semaphore_try_acquire(&s), -EAGAIN);
    corio_task_t *a = spawn(sem_user, &s), *b = spawn(sem_user, &s), *c = spawn(sem_user, &s);
    turns(2);
    CHECK_EQ(s.waiters.n, 3);
    /* Grant to a and cancel it in one turn: the permit goes on to b. */
    CHECK_EQ(corio_semaphore_release(&s), 0);
    corio_task_cancel(a);
    /* Cancel c first, then grant: it leaves the queue, the permit is kept. */
    corio_task_cancel(c);
    CHECK_EQ(join(a), -ECANCELED);
    CHECK_EQ(join(c), -ECANCELED);
    CHECK_EQ(join(b), 1);
    CHECK_EQ(corio_semaphore_value(&s), 1);
    CHECK_EQ(corio_semaphore_release(&s), 0);
    CHECK_EQ(corio_semaphore_value(&s), 2);
    CHECK_EQ(corio_semaphore_release(&s), 0); /* unbounded: may exceed */
    CHECK_EQ(corio_semaphore_value(&s), 3);
    CHECK_EQ(corio_semaphore_destroy(&s), 0);

    corio_semaphore_t bs;
    CHECK_EQ(corio_bounded_semaphore_init(&bs, 1), 0);
    CHECK_EQ(corio_semaphore_release(&bs), -EOVERFLOW);
    CHECK_EQ(corio_semaphore_acquire(&bs), 0);
    CHECK_EQ(corio_semaphore_release(&bs), 0);
    CHECK_EQ(corio_semaphore_release(&bs), -EOVERFLOW);
    CHECK_EQ(corio_semaphore_value(&bs), 1);
    /* Many users through a bounded semaphore of 2. */
    corio_semaphore_t s2;
    corio_bounded_semaphore_init(&s2, 2);
    corio_task_t *t[6];
    for (int i = 0; i < 6; i++)
        t[i] = spawn(sem_user, &s2);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(join(t[i]), 1);
    CHECK_EQ(corio_semaphore_value(&s2), 2);
    return 0;
}

static void semaphore_basic(void) { CHECK_EQ(run_main(semaphore_main, NULL), 0); }

/* ---- Barrier ------------------------------------------------------------------ */

static intptr_t barrier_user(void *arg) { return corio_barrier_wait(arg); }

static intptr_t barrier_main(void *arg)
{
    (void)arg;
    corio_barrier_t b;
    CHECK_EQ(corio_barrier_init(&b, 0), -EINVAL);
    CHECK_EQ(corio_barrier_init(&b, 3), 0);
    CHECK_EQ(corio_barrier_parties(&b), 3);
    for (int round = 0; round < 2; round++) {
        corio_task_t *t[2] = {spawn(barrier_user, &b), spawn(barrier_user, &b)};
        turns(2);
        CHECK_EQ(corio_barrier_n_waiting(&b), 2);
        int mine = corio_barrier_wait(&b);
        CHECK_EQ(mine, 2);
        int seen = 1 << mine;
        for (int i = 0; i < 2; i++)
            seen |= 1 << join(t[i]);
        CHECK_EQ(seen, 7);
        CHECK_EQ(corio_barrier_n_waiting(&b), 0);
    }
    /* A cancelled waiter breaks the barrier for the others. */
    corio_task_t *x = spawn(barrier_user, &b), *y = spawn(barrier_user, &b);
    turns(2);
    corio_task_cancel(x);
    CHECK_EQ(join(x), -ECANCELED);
    CHECK_EQ(join(y), CORIO_EBROKENBARRIER);
    CHECK(corio_barrier_broken(&b));
    CHECK_EQ(corio_barrier_wait(&b), CORIO_EBROKENBARRIER);
    CHECK_EQ(corio_barrier_reset(&b), 0);
    CHECK(!corio_barrier_broken(&b));
    /* Abort wakes the waiters; reset wakes them too and leaves it usable. */
    x = spawn(barrier_user, &b);
    turns(2);
    CHECK_EQ(corio_barrier_abort(&b), 0);
    CHECK_EQ(join(x), CORIO_EBROKENBARRIER);
    corio_barrier_reset(&b);
    x = spawn(barrier_user, &b);
    turns(2);
    corio_barrier_reset(&b);
    CHECK_EQ(join(x), CORIO_EBROKENBARRIER);
    CHECK(!corio_barrier_broken(&b));
    /* Last arrival and cancellation in one turn: the cycle completed, the
     * cancelled one reports the cancellation, the barrier is not broken. */
    x = spawn(barrier_user, &b);
    y = spawn(barrier_user, &b);
    turns(2);
    corio_task_cancel(x);
    CHECK_EQ(corio_barrier_wait(&b), 2);
    CHECK_EQ(join(x), -ECANCELED);
    CHECK_EQ(join(y), 1);
    CHECK(!corio_barrier_broken(&b));
    CHECK_EQ(corio_barrier_destroy(&b), 0);
    return 0;
}

static void barrier_basic(void) { CHECK_EQ(run_main(barrier_main, NULL), 0); }

/* ---- destroy waits for every task still inside a wait ----------------------- */

static intptr_t cond_waiter(void *arg)
{
    corio_condition_t *c = arg;
    CHECK_EQ(corio_condition_acquire(c), 0);
    int rc = corio_condition_wait(c);
    CHECK_EQ(corio_condition_release(c), 0);
    return rc;
}

/* A waiter that was woken (notified, granted a permit, or cancelled) still
 * touches the primitive when it resumes, so destroy says -EBUSY until it has
 * returned; freeing the memory on a 0 was a use after free. */
static intptr_t destroy_busy_main(void *arg)
{
    (void)arg;
    corio_condition_t c;
    CHECK_EQ(corio_condition_init(&c, NULL), 0);
    corio_task_t *w = spawn(cond_waiter, &c);
    turns(2);
    CHECK_EQ(corio_condition_acquire(&c), 0);
    CHECK_EQ(corio_condition_notify(&c, 1), 1);
    CHECK_EQ(corio_condition_release(&c), 0);
    CHECK_EQ(corio_condition_destroy(&c), -EBUSY); /* w has yet to take the lock back */
    CHECK_EQ(join(w), 0);
    CHECK_EQ(corio_condition_destroy(&c), 0);

    corio_semaphore_t s;
    CHECK_EQ(corio_semaphore_init(&s, 0), 0);
    w = spawn(sem_user, &s);
    turns(2);
    CHECK_EQ(corio_semaphore_release(&s), 0); /* the permit is handed to w... */
    corio_task_cancel(w);                     /* ...which gives it back on resuming */
    CHECK_EQ(corio_semaphore_destroy(&s), -EBUSY);
    CHECK_EQ(join(w), -ECANCELED);
    CHECK_EQ(corio_semaphore_value(&s), 1);
    CHECK_EQ(corio_semaphore_destroy(&s), 0);

    corio_barrier_t b;
    CHECK_EQ(corio_barrier_init(&b, 2), 0);
    w = spawn(barrier_user, &b);
    turns(2);
    corio_task_cancel(w); /* unlinked now; it breaks the barrier on resuming */
    CHECK_EQ(corio_barrier_destroy(&b), -EBUSY);
    CHECK_EQ(join(w), -ECANCELED);
    CHECK(corio_barrier_broken(&b));
    CHECK_EQ(corio_barrier_destroy(&b), 0);
    return 0;
}

static void destroy_waits_for_woken(void) { CHECK_EQ(run_main(destroy_busy_main, NULL), 0); }

/* BoundedSemaphore(0): no release is ever legal, also with a waiter (it got
 * a permit that never existed). */
static intptr_t bounded_zero_main(void *arg)
{
    (void)arg;
    corio_semaphore_t s;
    CHECK_EQ(corio_bounded_semaphore_init(&s, 0), 0);
    CHECK_EQ(corio_semaphore_release(&s), -EOVERFLOW);
    corio_task_t *w = spawn(sem_user, &s);
    turns(2);
    CHECK_EQ(corio_semaphore_release(&s), -EOVERFLOW);
    turns(2);
    CHECK(!corio_task_done(w));
    corio_task_cancel(w);
    CHECK_EQ(join(w), -ECANCELED);
    CHECK_EQ(corio_semaphore_destroy(&s), 0);
    return 0;
}

static void bounded_semaphore_zero(void) { CHECK_EQ(run_main(bounded_zero_main, NULL), 0); }

/* A barrier reset in the turn a waiter is cancelled: the waiter reports
 * the cancellation, and the reset barrier stays whole. */
static intptr_t barrier_reset_cancel_main(void *arg)
{
    (void)arg;
    corio_barrier_t b;
    CHECK_EQ(corio_barrier_init(&b, 2), 0);
    corio_task_t *w = spawn(barrier_user, &b);
    turns(2);
    CHECK_EQ(corio_barrier_reset(&b), 0);
    corio_task_cancel(w);
    CHECK_EQ(join(w), -ECANCELED);
    CHECK(!corio_barrier_broken(&b));
    CHECK_EQ(corio_barrier_destroy(&b), 0);
    return 0;
}

static void barrier_reset_vs_cancel(void) { CHECK_EQ(run_main(barrier_reset_cancel_main, NULL), 0); }

TEST_MAIN(CASE(lock_fifo), CASE(lock_cancel_orders), CASE(lock_timeout_orders),
          CASE(lock_cancelled_cleanup), CASE(lock_no_task), CASE(lock_chaos), CASE(event_basic),
          CASE(condition_basic), CASE(condition_cancel), CASE(condition_chaos), CASE(semaphore_basic),
          CASE(barrier_basic), CASE(destroy_waits_for_woken), CASE(bounded_semaphore_zero),
          CASE(barrier_reset_vs_cancel))
