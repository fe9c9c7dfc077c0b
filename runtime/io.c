/* Awaiting one kernel operation. The operation's address is its SQE's
 * user_data; cancellation or a deadline submits an async cancel and the
 * task resumes only when the operation's own completion has arrived, so a
 * buffer lent to the kernel is never released early. */
#include "internal.h"

#include <errno.h>

int corio__suspend(corio_waiter_t *w, int64_t deadline);

typedef struct io_waiter {
    corio_op_t op;
    corio_waiter_t w;
    corio_loop_t *loop;
    uint32_t flags;
    corio_handle_t retry; /* sends the cancel again when no SQE was free */
} io_waiter_t;

static void io_complete(corio_op_t *op, int res, uint32_t flags)
{
    io_waiter_t *iw = corio_container_of(op, io_waiter_t, op);
    iw->flags = flags;
    corio__wake(&iw->w, res);
}

static void send_cancel(void *arg)
{
    io_waiter_t *iw = arg;
    if (iw->w.woken)
        return; /* completed meanwhile */
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(iw->loop, &err);
    if (!sqe) {
        /* Never leave the task waiting on an operation nobody cancels: try
         * again next turn (the ring may be full of completions to reap). */
        corio_loop_call_soon(iw->loop, &iw->retry, send_cancel, iw);
        return;
    }
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&iw->op, 0);
    io_uring_sqe_set_data(sqe, NULL);
}

static bool io_detach(corio_waiter_t *w)
{
    io_waiter_t *iw = corio_container_of(w, io_waiter_t, w);
    if (!corio_handle_pending(&iw->retry))
        send_cancel(iw);
    return false; /* the operation's own completion ends the wait */
}

static void make_nop(struct io_uring_sqe *sqe)
{
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, NULL);
}

int corio__io_await(corio_loop_t *loop, struct io_uring_sqe *sqe, int64_t deadline,
                    uint32_t *cqe_flags)
{
    corio_task_t *t = corio_current_task();
    if (!t || t->fut.loop != loop) {
        make_nop(sqe);
        return -EDEADLK;
    }
    int rc = corio__interrupt_pending(deadline);
    if (rc) {
        make_nop(sqe);
        return rc;
    }
    /* Field by field: an initializer would zero the whole retry handle too
     * (a rep stos on every socket call); only its state is read unset. */
    io_waiter_t iw;
    iw.op.complete = io_complete;
    iw.w = (corio_waiter_t){.task = t, .detach = io_detach};
    iw.loop = loop;
    iw.flags = 0;
    iw.retry.state = CORIO_H_IDLE;
    io_uring_sqe_set_data(sqe, &iw.op);
    corio__op_started(loop);
    rc = corio__suspend(&iw.w, deadline);
    if (corio_handle_pending(&iw.retry))
        corio_handle_cancel(&iw.retry);
    if (cqe_flags)
        *cqe_flags = iw.flags;
    return rc;
}
