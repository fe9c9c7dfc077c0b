/* Timeout scopes: expiry, nesting, rescheduling (from the task and from
 * another one), per-call deadlines beside scopes, and a scope's expiry told
 * apart from an outer scope's and from a cancellation, including both in one
 * loop turn. */
#include "sync_util.h"

#define MS CORIO_NS_PER_MS
#define SEC CORIO_NS_PER_SEC

static intptr_t expire_main(void *arg)
{
    (void)arg;
    corio_timeout_t s;
    CHECK_EQ(corio_timeout(&s, 5 * MS), 0);
    int64_t t0 = corio_now();
    int rc = corio_sleep(10 * SEC);
    CHECK_EQ(rc, -ETIMEDOUT);
    /* Level-triggered: every await in the expired block fails at once. */
    CHECK_EQ(corio_sleep(0), -ETIMEDOUT);
    CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
    CHECK(corio_timeout_expired(&s));
    CHECK(corio_now() - t0 < 5 * SEC);
    CHECK_EQ(corio_sleep(0), 0);
    /* Not expired: the block's result passes through. */
    CHECK_EQ(corio_timeout(&s, 10 * SEC), 0);
    CHECK_EQ(corio_sleep(MS), 0);
    CHECK_EQ(corio_timeout_exit(&s, 5), 5);
    CHECK(!corio_timeout_expired(&s));
    /* A deadline in the past: the first await fails. */
    CHECK_EQ(corio_timeout_at(&s, corio_now() - 1), 0);
    rc = corio_sleep(0);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
    /* No deadline. */
    CHECK_EQ(corio_timeout(&s, -1), 0);
    CHECK_EQ(corio_timeout_when(&s), CORIO_NEVER);
    CHECK_EQ(corio_sleep(MS), 0);
    CHECK_EQ(corio_timeout_exit(&s, 0), 0);
    CHECK_EQ(corio_timeout_exit(&s, 0), -EINVAL); /* not active */
    return 0;
}

static void timeout_expire(void) { CHECK_EQ(run_main(expire_main, NULL), 0); }

static intptr_t nested_main(void *arg)
{
    (void)arg;
    corio_timeout_t outer, inner;
    /* The outer scope expires first: the inner one lets it through. */
    corio_timeout(&outer, 5 * MS);
    corio_timeout(&inner, 10 * SEC);
    CHECK_EQ(corio_timeout_exit(&outer, 0), -EINVAL); /* innermost first */
    int rc = corio_sleep(10 * SEC);
    CHECK_EQ(rc, -ETIMEDOUT);
    rc = corio_timeout_exit(&inner, rc);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK(!corio_timeout_expired(&inner));
    rc = corio_timeout_exit(&outer, rc);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK(corio_timeout_expired(&outer));
    /* The inner scope expires first: it claims it, the outer block goes on. */
    corio_timeout(&outer, 10 * SEC);
    corio_timeout(&inner, 5 * MS);
    rc = corio_sleep(10 * SEC);
    rc = corio_timeout_exit(&inner, rc);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK(corio_timeout_expired(&inner));
    CHECK_EQ(corio_sleep(MS), 0);
    CHECK_EQ(corio_timeout_exit(&outer, 0), 0);
    CHECK(!corio_timeout_expired(&outer));
    /* A per-call deadline inside a scope: the call's own timeout is not the
     * scope's expiry. */
    corio_future_t *f;
    corio_future_new(NULL, &f);
    corio_timeout(&outer, 10 * SEC);
    rc = corio_await_timeout(f, MS, NULL);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(corio_timeout_exit(&outer, rc), -ETIMEDOUT);
    CHECK(!corio_timeout_expired(&outer));
    /* And the scope's deadline cuts a longer per-call one. */
    corio_timeout(&outer, 2 * MS);
    rc = corio_await_timeout(f, 10 * SEC, NULL);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(corio_timeout_exit(&outer, rc), -ETIMEDOUT);
    CHECK(corio_timeout_expired(&outer));
    corio_future_unref(f);
    return 0;
}

static void timeout_nested(void) { CHECK_EQ(run_main(nested_main, NULL), 0); }

typedef struct sleeper {
    corio_timeout_t s;
    int rc;
    bool expired, entered;
} sleeper_t;

static intptr_t scoped_sleeper(void *arg)
{
    sleeper_t *sl = arg;
    corio_timeout_at(&sl->s, CORIO_NEVER);
    sl->entered = true;
    int rc = corio_sleep(30 * SEC);
    sl->rc = corio_timeout_exit(&sl->s, rc);
    sl->expired = corio_timeout_expired(&sl->s);
    return 0;
}

static intptr_t reschedule_main(void *arg)
{
    (void)arg;
    corio_timeout_t s;
    /* From the task itself: sooner, then later. */
    corio_timeout(&s, -1);
    CHECK_EQ(corio_timeout_reschedule(&s, corio_now() + 5 * MS), 0);
    int rc = corio_sleep(10 * SEC);
    CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
    corio_timeout(&s, 2 * MS);
    CHECK_EQ(corio_timeout_reschedule(&s, corio_now() + 10 * SEC), 0);
    CHECK_EQ(corio_sleep(10 * MS), 0);
    CHECK_EQ(corio_timeout_exit(&s, 0), 0);
    CHECK_EQ(corio_timeout_reschedule(&s, 0), -EINVAL);
    /* From another task while the owner waits: the wait sees it. */
    sleeper_t sl = {0};
    corio_task_t *t = spawn(scoped_sleeper, &sl);
    turns(2);
    CHECK(sl.entered);
    int64_t t0 = corio_now();
    CHECK_EQ(corio_timeout_reschedule(&sl.s, corio_now() + 5 * MS), 0);
    CHECK_EQ(join(t), 0);
    CHECK_EQ(sl.rc, -ETIMEDOUT);
    CHECK(sl.expired);
    CHECK(corio_now() - t0 < 10 * SEC);
    /* Moved later from another task: the owner sleeps on. */
    sleeper_t s2 = {0};
    t = spawn(scoped_sleeper, &s2);
    turns(2);
    corio_timeout_reschedule(&s2.s, corio_now() + 5 * MS);
    corio_timeout_reschedule(&s2.s, CORIO_NEVER);
    CHECK_EQ(corio_sleep(20 * MS), 0);
    CHECK(!corio_task_done(t));
    corio_timeout_reschedule(&s2.s, corio_now());
    CHECK_EQ(join(t), 0);
    CHECK_EQ(s2.rc, -ETIMEDOUT);
    return 0;
}

static void timeout_reschedule(void) { CHECK_EQ(run_main(reschedule_main, NULL), 0); }

/* A cancellation from outside is never turned into the scope's timeout:
 * 0: cancelled before the deadline;
 * 1: the scope expires, then the cancel, in one turn;
 * 2: the cancel, then the scope expires, in one turn. */
typedef struct cancel_arg {
    int64_t deadline;
    int rc;
    bool expired;
    int cancelling;
} cancel_arg_t;

static intptr_t scoped_waiter(void *arg)
{
    cancel_arg_t *a = arg;
    corio_timeout_t s;
    corio_timeout_at(&s, a->deadline);
    int rc = corio_sleep(30 * SEC);
    a->rc = corio_timeout_exit(&s, rc);
    a->expired = corio_timeout_expired(&s);
    a->cancelling = corio_task_cancelling(corio_current_task());
    return a->rc;
}

static intptr_t cancel_main(void *arg)
{
    int order = (int)(intptr_t)arg;
    cancel_arg_t a = {.deadline = corio_now() + (order ? 20 * MS : 10 * SEC)};
    corio_task_t *t = spawn(scoped_waiter, &a);
    turns(2);
    int64_t T = deadline_of(t);
    if (order == 0) {
        corio_task_cancel(t);
    } else {
        at(T, cancel_cb, t);
        if (order == 2)
            deadline_last(t);
    }
    CHECK_EQ(join(t), -ECANCELED);
    CHECK_EQ(a.rc, -ECANCELED);
    /* Order 1: the block did end by the expiry, yet the cancellation wins. */
    CHECK_EQ(a.expired, order == 1);
    CHECK_EQ(a.cancelling, 1);
    return 0;
}

static void timeout_vs_cancel(void)
{
    for (int i = 0; i < 3; i++)
        CHECK_EQ(run_main(cancel_main, (void *)(intptr_t)i), 0);
}

static void spin_until(int64_t when)
{
    while (corio_now() < when)
        ;
}

/* The scope claims a -ETIMEDOUT only when its own deadline ended a wait,
 * not when a per-call timeout did and the deadline passed later without a
 * wait (asyncio's Timeout counts only its own firing). A shielded wait that
 * the scope's expiry interrupted (wait_for, gather) still counts. */
static intptr_t sleep_long(void *arg)
{
    (void)arg;
    return corio_sleep(10 * SEC);
}

static intptr_t attribution_main(void *arg)
{
    (void)arg;
    corio_future_t *f;
    CHECK_EQ(corio_future_new(NULL, &f), 0);
    corio_timeout_t s;
    corio_timeout(&s, 20 * MS);
    int rc = corio_await_timeout(f, MS, NULL);
    CHECK_EQ(rc, -ETIMEDOUT);
    spin_until(corio_timeout_when(&s) + MS);
    CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
    CHECK(!corio_timeout_expired(&s));
    /* An inner scope's expiry, once claimed, does not linger for the outer
     * one: the iterator's own timeout after it is the block's. */
    corio_timeout_t outer, inner;
    corio_timeout(&outer, 20 * MS);
    corio_timeout(&inner, MS);
    CHECK_EQ(corio_timeout_exit(&inner, corio_sleep(SEC)), -ETIMEDOUT);
    CHECK(corio_timeout_expired(&inner));
    corio_as_completed_t *it;
    CHECK_EQ(corio_as_completed_new(&f, 1, 0, &it), 0);
    corio_future_t *got;
    rc = corio_as_completed_next(it, &got);
    CHECK_EQ(rc, -ETIMEDOUT);
    corio_as_completed_free(it);
    spin_until(corio_timeout_when(&outer) + MS);
    CHECK_EQ(corio_timeout_exit(&outer, rc), -ETIMEDOUT);
    CHECK(!corio_timeout_expired(&outer));
    /* wait_for cut by the scope: its inner shielded wait does not hide it. */
    corio_timeout(&s, 2 * MS);
    rc = corio_wait_for(f, 10 * SEC, NULL);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
    CHECK(corio_timeout_expired(&s));
    corio_future_unref(f);
    /* gather cut by the scope, with a child to cancel and wait out. */
    corio_task_t *child;
    CHECK_EQ(corio_spawn(NULL, &child, sleep_long, NULL, NULL), 0);
    corio_future_t *fs[] = {corio_task_future(child)};
    corio_timeout(&s, 2 * MS);
    rc = corio_gather(fs, 1, 0, NULL);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(corio_timeout_exit(&s, rc), -ETIMEDOUT);
    CHECK(corio_timeout_expired(&s));
    corio_task_release(child);
    return 0;
}

static void timeout_attribution(void) { CHECK_EQ(run_main(attribution_main, NULL), 0); }

static void timeout_no_task(void)
{
    corio_timeout_t s;
    CHECK_EQ(corio_timeout(&s, MS), -EDEADLK);
    CHECK_EQ(corio_timeout(NULL, MS), -EINVAL);
    CHECK(!corio_timeout_expired(NULL));
}

TEST_MAIN(CASE(timeout_expire), CASE(timeout_nested), CASE(timeout_reschedule),
          CASE(timeout_vs_cancel), CASE(timeout_attribution), CASE(timeout_no_task))
