/* Task groups: waiting for every child, the first failure cancelling the
 * siblings and the block, every error reported, parent cancellation
 * reaching the children, timeout scopes around a group, and nested groups
 * under cancellation in every order within one loop turn. */
#include "sync_util.h"

#define MS CORIO_NS_PER_MS
#define SEC CORIO_NS_PER_SEC

typedef struct slow {
    int64_t ns;
    intptr_t result;
    bool cancelled, cleanup_done;
} slow_t;

/* Sleeps, then returns result; cancelled, cleans up for 5 ms first. */
static intptr_t slow_task(void *arg)
{
    slow_t *s = arg;
    int rc = corio_sleep(s->ns);
    if (rc == -ECANCELED) {
        s->cancelled = true;
        corio_task_uncancel(corio_current_task());
        CHECK_EQ(corio_sleep(5 * MS), 0);
        s->cleanup_done = true;
        return -ECANCELED;
    }
    CHECK_EQ(rc, 0);
    return s->result;
}

/* Fails with -EIO at the absolute time *arg (ends cancelled if cancelled
 * first). */
static intptr_t fail_at(void *arg)
{
    corio_timeout_t s;
    corio_timeout_at(&s, *(int64_t *)arg);
    int rc = corio_sleep(30 * SEC);
    rc = corio_timeout_exit(&s, rc);
    return rc == -ETIMEDOUT ? -EIO : rc;
}

static intptr_t fail_soon(void *arg)
{
    corio_sleep((int64_t)(intptr_t)arg);
    return -EIO;
}

typedef struct spawner {
    corio_task_group_t *g;
    slow_t *child;
} spawner_t;

static intptr_t spawns_sibling(void *arg)
{
    spawner_t *s = arg;
    corio_sleep(MS);
    CHECK_EQ(corio_task_group_spawn(s->g, NULL, slow_task, s->child, NULL), 0);
    return 1;
}

static intptr_t basic_main(void *arg)
{
    (void)arg;
    corio_task_group_t g;
    CHECK_EQ(corio_task_group_init(&g), 0);
    slow_t s[5];
    corio_task_t *t[5];
    for (int i = 0; i < 5; i++) {
        s[i] = (slow_t){(5 - i) * MS, 100 + i, false, false};
        CHECK_EQ(corio_task_group_spawn(&g, &t[i], slow_task, &s[i], NULL), 0);
    }
    /* A child may add a sibling while the group runs. */
    slow_t late = {3 * MS, 7, false, false};
    spawner_t sp = {&g, &late};
    CHECK_EQ(corio_task_group_spawn(&g, NULL, spawns_sibling, &sp, NULL), 0);
    CHECK_EQ(corio_task_group_destroy(&g), -EBUSY);
    CHECK_EQ(corio_task_group_exit(&g, 0), 0);
    for (int i = 0; i < 5; i++) {
        CHECK(corio_task_done(t[i]));
        CHECK_EQ(join(t[i]), 100 + i);
    }
    CHECK(!late.cancelled);
    CHECK_EQ(corio_task_group_errors(&g, NULL, 0), 0);
    CHECK_EQ(corio_task_group_spawn(&g, NULL, slow_task, &s[0], NULL), -ESHUTDOWN);
    CHECK_EQ(corio_task_group_exit(&g, 0), -EINVAL); /* once */
    CHECK_EQ(corio_task_group_destroy(&g), 0);
    /* An empty group passes the block's result through. */
    corio_task_group_init(&g);
    CHECK_EQ(corio_task_group_exit(&g, 42), 42);
    corio_task_group_destroy(&g);
    return 0;
}

static void group_basic(void) { CHECK_EQ(run_main(basic_main, NULL), 0); }

static void group_no_task(void)
{
    corio_task_group_t g;
    CHECK_EQ(corio_task_group_init(&g), -EDEADLK);
    CHECK_EQ(corio_task_group_init(NULL), -EINVAL);
}

static intptr_t failure_main(void *arg)
{
    (void)arg;
    corio_task_group_t g;
    corio_task_group_init(&g);
    slow_t b = {10 * SEC, 1, false, false};
    corio_task_group_spawn(&g, NULL, slow_task, &b, NULL);
    corio_task_group_spawn(&g, NULL, fail_soon, (void *)(intptr_t)MS, NULL);
    /* The failure interrupts the block... */
    int rc = corio_sleep(10 * SEC);
    CHECK_EQ(rc, -ECANCELED);
    /* ...and exit reports it, having waited for the sibling's cleanup, and
     * withdraws the group's own cancellation of the parent. */
    CHECK_EQ(corio_task_group_exit(&g, rc), -EIO);
    CHECK(b.cancelled && b.cleanup_done);
    int errs[4];
    CHECK_EQ(corio_task_group_errors(&g, errs, 4), 1);
    CHECK_EQ(errs[0], -EIO);
    CHECK_EQ(corio_task_cancelling(corio_current_task()), 0);
    CHECK_EQ(corio_sleep(0), 0);
    corio_task_group_destroy(&g);
    /* Spawning into an aborting group is refused. */
    corio_task_group_init(&g);
    corio_task_group_spawn(&g, NULL, fail_soon, (void *)0, NULL);
    CHECK_EQ(corio_sleep(10 * SEC), -ECANCELED);
    CHECK_EQ(corio_task_group_spawn(&g, NULL, fail_soon, (void *)0, NULL), -ESHUTDOWN);
    CHECK_EQ(corio_task_group_exit(&g, -ECANCELED), -EIO);
    corio_task_group_destroy(&g);
    return 0;
}

static void group_child_failure(void) { CHECK_EQ(run_main(failure_main, NULL), 0); }

static intptr_t fail_code(void *arg)
{
    corio_sleep(MS);
    return (intptr_t)arg;
}

static intptr_t errors_main(void *arg)
{
    (void)arg;
    corio_task_group_t g;
    corio_task_group_init(&g);
    /* Three failures in one turn, plus a block error: all reported, the
     * block's first. */
    corio_task_group_spawn(&g, NULL, fail_code, (void *)(intptr_t)-EIO, NULL);
    corio_task_group_spawn(&g, NULL, fail_code, (void *)(intptr_t)-EPIPE, NULL);
    corio_task_group_spawn(&g, NULL, fail_code, (void *)(intptr_t)-ENOENT, NULL);
    turns(1);
    CHECK_EQ(corio_task_group_exit(&g, -EBADF), -EBADF);
    int errs[8];
    CHECK_EQ(corio_task_group_errors(&g, errs, 8), 4);
    CHECK_EQ(errs[0], -EBADF);
    int mask = 0;
    for (int i = 1; i < 4; i++)
        mask |= errs[i] == -EIO ? 1 : errs[i] == -EPIPE ? 2 : errs[i] == -ENOENT ? 4 : 8;
    CHECK_EQ(mask, 7);
    CHECK_EQ(corio_task_cancelling(corio_current_task()), 0);
    corio_task_group_destroy(&g);
    /* A block error alone cancels the children. */
    corio_task_group_init(&g);
    slow_t s = {10 * SEC, 1, false, false};
    corio_task_group_spawn(&g, NULL, slow_task, &s, NULL);
    turns(2);
    CHECK_EQ(corio_task_group_exit(&g, -EPIPE), -EPIPE);
    CHECK(s.cleanup_done);
    corio_task_group_destroy(&g);
    return 0;
}

static void group_errors(void) { CHECK_EQ(run_main(errors_main, NULL), 0); }

typedef struct parent_arg {
    slow_t s[2];
    int rc;
    int cancelling;
} parent_arg_t;

static intptr_t group_parent(void *arg)
{
    parent_arg_t *p = arg;
    corio_task_group_t g;
    corio_task_group_init(&g);
    corio_task_group_spawn(&g, NULL, slow_task, &p->s[0], NULL);
    corio_task_group_spawn(&g, NULL, slow_task, &p->s[1], NULL);
    int rc = corio_sleep(10 * SEC);
    p->rc = corio_task_group_exit(&g, rc);
    p->cancelling = corio_task_cancelling(corio_current_task());
    corio_task_group_destroy(&g);
    return p->rc;
}

/* Cancelling the parent reaches the children; the cancellation stays. */
static intptr_t parent_cancel_main(void *arg)
{
    (void)arg;
    parent_arg_t p = {.s = {{10 * SEC, 1, false, false}, {10 * SEC, 2, false, false}}};
    corio_task_t *t = spawn(group_parent, &p);
    turns(3);
    corio_task_cancel(t);
    CHECK_EQ(join(t), -ECANCELED);
    CHECK_EQ(p.rc, -ECANCELED);
    CHECK_EQ(p.cancelling, 1);
    CHECK(p.s[0].cleanup_done && p.s[1].cleanup_done);
    return 0;
}

static void group_parent_cancelled(void) { CHECK_EQ(run_main(parent_cancel_main, NULL), 0); }

/* A timeout scope around a group: expiry in the block or during exit's wait
 * cancels the children; the scope claims the -ETIMEDOUT. */
static intptr_t scope_main(void *arg)
{
    (void)arg;
    for (int where = 0; where < 2; where++) {
        corio_timeout_t s;
        corio_timeout(&s, 5 * MS);
        corio_task_group_t g;
        corio_task_group_init(&g);
        slow_t c = {10 * SEC, 1, false, false};
        corio_task_group_spawn(&g, NULL, slow_task, &c, NULL);
        int rc = where == 0 ? corio_sleep(10 * SEC) : 0;
        rc = corio_task_group_exit(&g, rc);
        CHECK_EQ(rc, -ETIMEDOUT);
        CHECK(c.cleanup_done);
        CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
        CHECK(corio_timeout_expired(&s));
        CHECK_EQ(corio_task_cancelling(corio_current_task()), 0);
        corio_task_group_destroy(&g);
    }
    return 0;
}

static void group_in_timeout_scope(void) { CHECK_EQ(run_main(scope_main, NULL), 0); }

/* ---- nested groups under cancellation ----------------------------------------- */

enum { NO_CANCEL, CANCEL_FIRST, CANCEL_SECOND, CANCEL_IN_EXIT };

typedef struct nest_spec {
    bool inner_fails, outer_fails;
    int cancel;
    int rc_inner, rc_outer, cancelling;
} nest_spec_t;

/* Failures happen at time T; the parent's cancellation at T too, scheduled
 * before the children's deadlines (first) or after them (second), or a
 * little later, while the inner group's exit waits for a cleanup. */
static const nest_spec_t nest_specs[] = {
    {true, false, NO_CANCEL, -EIO, -EIO, 0},
    {false, true, NO_CANCEL, -ECANCELED, -EIO, 0},
    {true, true, NO_CANCEL, -ECANCELED, -EIO, 0},
    {true, false, CANCEL_FIRST, -ECANCELED, -ECANCELED, 1},
    {true, false, CANCEL_SECOND, -ECANCELED, -ECANCELED, 1},
    {false, true, CANCEL_FIRST, -ECANCELED, -ECANCELED, 1},
    {false, true, CANCEL_SECOND, -ECANCELED, -ECANCELED, 1},
    {true, true, CANCEL_FIRST, -ECANCELED, -ECANCELED, 1},
    {true, true, CANCEL_SECOND, -ECANCELED, -ECANCELED, 1},
    {true, false, CANCEL_IN_EXIT, -ECANCELED, -ECANCELED, 1},
    {false, false, CANCEL_FIRST, -ECANCELED, -ECANCELED, 1},
};

typedef struct nest {
    int64_t T;
    const nest_spec_t *spec;
    slow_t inner_slow, outer_slow;
    int rc_inner, rc_outer, cancelling;
    size_t n_inner, n_outer;
    int cleanup_seen;
} nest_t;

static intptr_t nest_parent(void *arg)
{
    nest_t *n = arg;
    corio_task_group_t outer, inner;
    corio_task_group_init(&outer);
    corio_task_group_spawn(&outer, NULL, slow_task, &n->outer_slow, NULL);
    if (n->spec->outer_fails)
        corio_task_group_spawn(&outer, NULL, fail_at, &n->T, NULL);
    int rc;
    {
        corio_task_group_init(&inner);
        corio_task_group_spawn(&inner, NULL, slow_task, &n->inner_slow, NULL);
        if (n->spec->inner_fails)
            corio_task_group_spawn(&inner, NULL, fail_at, &n->T, NULL);
        rc = corio_sleep(30 * SEC);
        CHECK_EQ(rc, -ECANCELED);
        rc = corio_task_group_exit(&inner, rc);
        n->rc_inner = rc;
        n->n_inner = corio_task_group_errors(&inner, NULL, 0);
        CHECK(n->inner_slow.cleanup_done);
        corio_task_group_destroy(&inner);
    }
    rc = corio_task_group_exit(&outer, rc);
    n->rc_outer = rc;
    n->n_outer = corio_task_group_errors(&outer, NULL, 0);
    CHECK(n->outer_slow.cleanup_done);
    corio_task_group_destroy(&outer);
    n->cancelling = corio_task_cancelling(corio_current_task());
    return 0;
}

static intptr_t nested_main(void *arg)
{
    const nest_spec_t *spec = &nest_specs[(intptr_t)arg];
    nest_t n = {.T = corio_now() + AHEAD, .spec = spec,
                .inner_slow = {30 * SEC, 1, false, false},
                .outer_slow = {30 * SEC, 2, false, false}};
    corio_task_t *p = spawn(nest_parent, &n);
    if (spec->cancel == CANCEL_FIRST)
        at(n.T, cancel_cb, p);
    turns(4);
    if (spec->cancel == CANCEL_SECOND)
        at(n.T, cancel_cb, p);
    if (spec->cancel == CANCEL_IN_EXIT)
        at(n.T + 2 * MS, cancel_cb, p); /* the inner exit waits 5 ms of cleanup */
    CHECK_EQ(join(p), 0);
    CHECK_EQ(n.rc_inner, spec->rc_inner);
    CHECK_EQ(n.rc_outer, spec->rc_outer);
    CHECK_EQ(n.cancelling, spec->cancelling);
    if (spec->inner_fails && spec->cancel != CANCEL_FIRST)
        CHECK_EQ(n.n_inner, 1);
    if (!spec->inner_fails)
        CHECK_EQ(n.n_inner, 0);
    if (spec->cancel == NO_CANCEL)
        CHECK_EQ(n.n_outer, 1);
    return 0;
}

static void group_nested_cancel_orders(void)
{
    for (size_t i = 0; i < sizeof nest_specs / sizeof nest_specs[0]; i++) {
        if (run_main(nested_main, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "nested spec %zu failed\n", i);
            CHECK(0);
        }
    }
}

/* ---- a scope rescheduled by another task while the parent waits in exit ------- */

typedef struct resched {
    corio_timeout_t *scope;
    int64_t to;
} resched_t;

static intptr_t rescheduler(void *arg)
{
    resched_t *r = arg;
    turns(2); /* the parent is waiting in exit by now */
    return corio_timeout_reschedule(r->scope, r->to);
}

static intptr_t slow_child(void *arg)
{
    int rc = corio_sleep((int64_t)(intptr_t)arg * MS);
    return rc ? rc : 7;
}

/* exit under a scope that another task moves: to never (the old deadline
 * must not fire), or to soon (the children are cancelled then). */
static int exit_with_moved_scope(int64_t scope_ms, int64_t to, intptr_t child_ms, intptr_t *child)
{
    corio_timeout_t s;
    CHECK_EQ(corio_timeout(&s, scope_ms * MS), 0);
    resched_t r = {&s, to};
    corio_task_t *m = spawn(rescheduler, &r);
    corio_task_group_t g;
    CHECK_EQ(corio_task_group_init(&g), 0);
    corio_task_t *c;
    CHECK_EQ(corio_task_group_spawn(&g, &c, slow_child, (void *)child_ms, NULL), 0);
    int rc = corio_timeout_exit(&s, corio_task_group_exit(&g, 0));
    corio_value_t v = {NULL, 0};
    int crc = corio_future_result(corio_task_future(c), &v);
    *child = crc < 0 ? crc : (intptr_t)v.ptr;
    corio_task_release(c);
    CHECK_EQ(corio_task_group_destroy(&g), 0);
    CHECK_EQ(join(m), 0);
    return rc;
}

static intptr_t moved_scope_main(void *arg)
{
    (void)arg;
    intptr_t child;
    CHECK_EQ(exit_with_moved_scope(200, CORIO_NEVER, 500, &child), 0);
    CHECK_EQ(child, 7);
    CHECK_EQ(exit_with_moved_scope(60000, corio_now() + 20 * MS, 5000, &child), -ETIMEDOUT);
    CHECK_EQ(child, -ECANCELED);
    return 0;
}

static void group_exit_sees_rescheduled_scope(void)
{
    CHECK_EQ(run_main(moved_scope_main, NULL), 0);
}

static intptr_t fail_eio(void *arg)
{
    (void)arg;
    return -EIO;
}

/* No memory to record a child's error: exit still returns it (it used to
 * return 0 although a child failed). */
static intptr_t unrecorded_error_main(void *arg)
{
    (void)arg;
    corio_task_group_t g;
    CHECK_EQ(corio_task_group_init(&g), 0);
    corio__fault_set(CORIO_FAULT_GROUP_ERRORS, 1);
    CHECK_EQ(corio_task_group_spawn(&g, NULL, fail_eio, NULL, NULL), 0);
    CHECK_EQ(corio_task_group_exit(&g, 0), -EIO);
    corio__fault_set(CORIO_FAULT_GROUP_ERRORS, 0);
    CHECK_EQ(corio_task_group_errors(&g, NULL, 0), 0);
    CHECK_EQ(corio_task_group_destroy(&g), 0);
    return 0;
}

static void group_unrecorded_error(void) { CHECK_EQ(run_main(unrecorded_error_main, NULL), 0); }

TEST_MAIN(CASE(group_basic), CASE(group_no_task), CASE(group_child_failure), CASE(group_errors),
          CASE(group_parent_cancelled), CASE(group_in_timeout_scope),
          CASE_T(group_nested_cancel_orders, 60), CASE(group_exit_sees_rescheduled_scope),
          CASE(group_unrecorded_error))
