/* Streams: a read buffer filled by awaited receives, and a write buffer sent
 * in the background.
 *
 * Writes use two buffers: `out` is lent to the kernel by the one send in
 * flight and never moves until its completion; `pend` collects what is
 * written meanwhile and becomes `out` when the send completes. A completion
 * runs inside the loop's reaping, where submitting is not allowed (a full SQ
 * would reap recursively), so it only records the result and schedules
 * `kick` to submit the next send on the ready queue. The stream's memory is
 * released only when no send is in flight.
 *
 * Coalescing: until the loop hands the SQ to the kernel (the kernel reads
 * an SQE only inside io_uring_enter; corio uses no SQ polling thread), the
 * send's SQE can still be changed. Writes made meanwhile, in the same turn,
 * are appended to `out` itself and the SQE's address and length updated,
 * so a response header and its body leave in one send. */
#include "internal.h"
#include "corio/stream.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK 16384
#define SHRINK_ABOVE (256 * 1024)

typedef struct wbuf {
    char *p;
    size_t start, end, cap;
} wbuf_t;

struct corio_stream {
    corio_loop_t *loop;
    int fd;
    size_t limit, high, low;
    /* reading */
    char *rbuf;
    size_t rstart, rend, rcap;
    bool eof, reading;
    int rerr;
    /* writing */
    wbuf_t out, pend;
    corio_op_t send_op;
    struct io_uring_sqe *sqe; /* the send's SQE, while it may be unsubmitted */
    unsigned sqe_idx;         /* its position in the SQ ring */
    corio_handle_t kick;
    bool sending, eof_wanted, eof_sent;
    int werr;
    corio_waiter_t *drain_w; /* tasks waiting in drain/wait_closed, a list */
    /* closing */
    bool closing, closed, freed, aborted;
    bool werr_by_abort; /* werr is abort's own -EPIPE, not news from the peer */
};

int corio_stream_new(int fd, const corio_stream_options_t *opts, corio_stream_t **out)
{
    if (!out || fd < 0)
        return -EINVAL;
    *out = NULL;
    corio_loop_t *loop = corio__tls_loop;
    if (!loop)
        return -EINVAL;
    corio_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    s->fd = fd;
    s->limit = opts && opts->limit ? opts->limit : 65536;
    s->high = opts && opts->high_water ? opts->high_water : 65536;
    s->low = opts && opts->low_water ? opts->low_water : s->high / 4;
    if (s->low > s->high)
        s->low = s->high;
    corio_set_nodelay(fd, true); /* as asyncio does; a no-op off TCP */
    *out = s;
    return 0;
}

int corio_open_connection(const char *host, int port, const corio_stream_options_t *opts,
                          int64_t deadline, corio_stream_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int fd = corio_tcp_connect(host, port, deadline);
    if (fd < 0)
        return fd;
    int rc = corio_stream_new(fd, opts, out);
    if (rc < 0)
        close(fd);
    return rc;
}

int corio_open_unix_connection(const char *path, const corio_stream_options_t *opts,
                               int64_t deadline, corio_stream_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int fd = corio_unix_connect(path, deadline);
    if (fd < 0)
        return fd;
    int rc = corio_stream_new(fd, opts, out);
    if (rc < 0)
        close(fd);
    return rc;
}

int corio_stream_fd(const corio_stream_t *s) { return s ? s->fd : -EINVAL; }

/* ---- waiting for the writer ------------------------------------------------- */

static void waiter_push(corio_stream_t *s, corio_waiter_t *w)
{
    w->prev = NULL;
    w->next = s->drain_w;
    if (s->drain_w)
        s->drain_w->prev = w;
    s->drain_w = w;
}

static void waiter_unlink(corio_stream_t *s, corio_waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else if (s->drain_w == w)
        s->drain_w = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static bool writer_detach(corio_waiter_t *w)
{
    waiter_unlink(w->data, w);
    return true;
}

static size_t wbuffered(const corio_stream_t *s)
{
    return (s->out.end - s->out.start) + (s->pend.end - s->pend.start);
}

/* Wakes the waiters whose condition holds: drain waiters when the buffer is
 * at the low-water mark or a send failed, close waiters once closed. */
static void wake_writers(corio_stream_t *s)
{
    corio_waiter_t *w = s->drain_w;
    while (w) {
        corio_waiter_t *next = w->next;
        bool for_close = w->result == 1;
        bool ok = for_close ? s->closed : (s->closed || s->werr || wbuffered(s) <= s->low);
        if (ok) {
            waiter_unlink(s, w);
            corio__wake(w, s->werr);
        }
        w = next;
    }
}

static int wait_writer(corio_stream_t *s, bool for_close, int64_t deadline)
{
    corio_task_t *t = corio_current_task();
    if (!t)
        return -EDEADLK;
    corio_waiter_t w = {.task = t, .detach = writer_detach, .data = s, .result = for_close};
    int rc = corio__interrupt_pending(deadline);
    if (rc)
        return rc;
    waiter_push(s, &w);
    rc = corio__wait(&w, deadline);
    /* corio__wait may return before suspending (a deadline that passed in
     * between): the waiter must not stay linked once this frame is gone. */
    if (!w.woken)
        waiter_unlink(s, &w);
    return rc;
}

/* ---- sending ------------------------------------------------------------------ */

static void stream_release(corio_stream_t *s)
{
    free(s->rbuf);
    free(s->out.p);
    free(s->pend.p);
    free(s);
}

static void finish_close(corio_stream_t *s)
{
    if (s->closed)
        return;
    s->closed = true;
    if (s->fd >= 0) {
        if (s->reading && !s->loop->closed)
            corio__submit_queued(s->loop); /* its receive may still be queued */
        close(s->fd);
        s->fd = -1;
    }
    wake_writers(s);
}

static void send_complete(corio_op_t *op, int res, uint32_t flags);

static void drop_unsent(corio_stream_t *s)
{
    s->out.start = s->out.end = 0;
    s->pend.start = s->pend.end = 0;
}

static void start_send(corio_stream_t *s)
{
    if (s->sending || s->closed)
        return;
    if (s->loop->closed) { /* its ring is gone: nothing can be sent now */
        if (wbuffered(s) && !s->werr)
            s->werr = -EPIPE;
        drop_unsent(s);
        if (s->closing)
            finish_close(s);
        return;
    }
    if (s->out.start == s->out.end) {
        /* The in-flight buffer is done: the pending one takes its place. */
        wbuf_t tmp = s->out;
        tmp.start = tmp.end = 0;
        if (tmp.cap > SHRINK_ABOVE) {
            free(tmp.p);
            tmp.p = NULL;
            tmp.cap = 0;
        }
        s->out = s->pend;
        s->pend = tmp;
    }
    size_t n = s->out.end - s->out.start;
    if (n == 0) {
        if (s->eof_wanted && !s->eof_sent && !s->werr) {
            s->eof_sent = true;
            shutdown(s->fd, SHUT_WR);
        }
        if (s->closing)
            finish_close(s);
        return;
    }
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(s->loop, &err);
    if (!sqe) {
        s->werr = err;
        wake_writers(s);
        return;
    }
    io_uring_prep_send(sqe, s->fd, s->out.p + s->out.start, corio__io_len(n), MSG_NOSIGNAL);
    s->sqe = sqe;
    s->sqe_idx = s->loop->ring.sq.sqe_tail - 1;
    s->send_op.complete = send_complete;
    io_uring_sqe_set_data(sqe, &s->send_op);
    corio__op_started(s->loop);
    s->sending = true;
}

static void kick(void *arg)
{
    corio_stream_t *s = arg;
    start_send(s);
    /* Freed and nothing more to send (done, or failed: even for want of
     * an SQE): nobody else will release it. */
    if (s->freed && !s->sending && (s->closed || s->werr)) {
        finish_close(s);
        stream_release(s);
    }
}

/* The loop is closing (its sends were cancelled) and runs no more turns:
 * what is unsent is dropped now, and a freed stream released. */
static void end_with_loop(corio_stream_t *s, int res)
{
    drop_unsent(s);
    if (!s->werr)
        s->werr = res < 0 && res != -ECANCELED ? res : -EPIPE;
    finish_close(s);
    if (s->freed && !corio_handle_pending(&s->kick))
        stream_release(s);
}

static void send_complete(corio_op_t *op, int res, uint32_t flags)
{
    (void)flags;
    corio_stream_t *s = corio_container_of(op, corio_stream_t, send_op);
    s->sending = false;
    s->sqe = NULL;
    if (s->loop->closing) {
        end_with_loop(s, res);
        return;
    }
    if (s->aborted) {
        s->out.start = s->out.end = 0;
        finish_close(s);
    } else if (res < 0) {
        if (res != -EINTR && res != -EAGAIN) {
            if (!s->werr) /* the first error is the one to report, every time */
                s->werr = res == -ECANCELED ? -EPIPE : res;
            drop_unsent(s);
            if (s->closing)
                finish_close(s);
        }
    } else {
        s->out.start += (size_t)res;
    }
    wake_writers(s);
    /* Nothing left to send and nothing to finish: no need to come back. */
    bool idle = s->out.start == s->out.end && s->pend.start == s->pend.end && !s->closing &&
                !s->freed && (!s->eof_wanted || s->eof_sent);
    if (!idle && !corio_handle_pending(&s->kick))
        corio_loop_call_soon(s->loop, &s->kick, kick, s);
}

static int wbuf_append(wbuf_t *b, const void *p, size_t n)
{
    if (b->start == b->end)
        b->start = b->end = 0;
    if (b->cap - b->end < n) {
        if (b->start > 0 && b->end - b->start + n <= b->cap) {
            memmove(b->p, b->p + b->start, b->end - b->start);
            b->end -= b->start;
            b->start = 0;
        } else {
            size_t held = b->end - b->start;
            if (n > SSIZE_MAX - held)
                return -ENOMEM; /* no such buffer can exist; doubling would wrap */
            size_t need = held + n;
            size_t cap = b->cap ? b->cap : 4096;
            while (cap < need)
                cap = cap > SSIZE_MAX / 2 ? need : cap * 2;
            char *q = malloc(cap);
            if (!q)
                return -ENOMEM;
            if (b->end > b->start)
                memcpy(q, b->p + b->start, b->end - b->start);
            free(b->p);
            b->p = q;
            b->end -= b->start;
            b->start = 0;
            b->cap = cap;
        }
    }
    if (p)
        memcpy(b->p + b->end, p, n);
    b->end += n;
    return 0;
}

/* The send's SQE when the kernel has not read it yet, else NULL. */
static struct io_uring_sqe *unsubmitted_sqe(corio_stream_t *s)
{
    if (!s->sending || !s->sqe || (s->loop->ring.flags & IORING_SETUP_SQPOLL))
        return NULL; /* an SQ polling thread may read an SQE at any time */
    const struct io_uring_sq *sq = &s->loop->ring.sq;
    if (s->sqe_idx - sq->sqe_head < sq->sqe_tail - sq->sqe_head)
        return s->sqe;
    s->sqe = NULL;
    return NULL;
}

/* Where new bytes go: the unsubmitted send's own buffer, or pend. Bytes
 * already waiting in pend come first: out only while pend is empty. */
static wbuf_t *write_target(corio_stream_t *s)
{
    return s->pend.start == s->pend.end && unsubmitted_sqe(s) ? &s->out : &s->pend;
}

/* After appending to out: the unsubmitted SQE covers the new bytes. */
static void update_sqe(corio_stream_t *s, wbuf_t *b)
{
    if (b != &s->out)
        return;
    s->sqe->addr = (uint64_t)(uintptr_t)(s->out.p + s->out.start);
    s->sqe->len = corio__io_len(s->out.end - s->out.start);
}

/* 0 when more may be written: no send failed, no close or write_eof. */
static int writable(const corio_stream_t *s)
{
    if (s->werr)
        return s->werr;
    return s->closing || s->eof_wanted ? -EPIPE : 0;
}

int corio_stream_write(corio_stream_t *s, const void *buf, size_t n)
{
    if (!s || (!buf && n) || s->loop->closed)
        return -EINVAL;
    int rc = writable(s);
    if (rc < 0)
        return rc;
    if (n == 0)
        return 0;
    wbuf_t *b = write_target(s); /* past CORIO_IO_MAX, the send takes what fits */
    rc = wbuf_append(b, buf, n);
    if (rc < 0)
        return rc;
    update_sqe(s, b);
    start_send(s);
    return s->werr;
}

int corio_stream_drain(corio_stream_t *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    if (s->werr || s->closed)
        return s->werr; /* a closed stream wakes no more drains */
    if (wbuffered(s) <= s->high)
        return corio__interrupt_pending(deadline); /* a drain is an await point */
    return wait_writer(s, false, deadline);
}

size_t corio_stream_write_buffered(const corio_stream_t *s) { return s ? wbuffered(s) : 0; }

int corio_stream_write_eof(corio_stream_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->closing)
        return -EPIPE;
    if (s->werr)
        return s->werr; /* nothing more can be sent, the end included */
    s->eof_wanted = true;
    start_send(s);
    return 0;
}

/* ---- files ------------------------------------------------------------------------ */

int corio_open_beneath(int dirfd, const char *path, int flags, int64_t deadline)
{
    if (!path)
        return -EINVAL;
    /* A lookup answered from the dentry cache never waits for a disk, and
     * O_NONBLOCK keeps a FIFO's or a device's open from waiting for its
     * other end; it is cleared after, as io_uring's own inline open does.
     * O_PATH opens nothing, so it neither waits nor takes the flag. */
    int nonblock = (flags & O_PATH) ? 0 : O_NONBLOCK;
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC | nonblock),
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_CACHED};
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) {
        if (nonblock && !(flags & O_NONBLOCK) &&
            fcntl((int)fd, F_SETFL, flags & (O_APPEND | O_DIRECT | O_NOATIME)) < 0) {
            int err = -errno;
            close((int)fd);
            return err;
        }
        return (int)fd;
    }
    if (errno != EAGAIN)
        return -errno; /* -ENXIO for a FIFO without reader: the ring's open says so too */
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    corio_loop_t *loop = corio__tls_loop;
    if (!loop || !loop->current)
        return -EDEADLK;
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(loop, &err);
    if (!sqe)
        return err;
    how.resolve &= ~(uint64_t)RESOLVE_CACHED;
    io_uring_prep_openat2(sqe, dirfd, path, &how);
    int rc = corio__io_await(loop, sqe, deadline, NULL);
    if (rc >= 0 && corio__interrupt_pending(CORIO_NEVER)) {
        /* Opened, but the task was interrupted meanwhile: undo. */
        int why = corio__interrupt_pending(CORIO_NEVER);
        close(rc);
        return why;
    }
    return rc;
}

static ssize_t read_ring(corio_stream_t *s, int fd, void *buf, size_t n, off_t off,
                         int64_t deadline)
{
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(s->loop, &err);
    if (!sqe)
        return err;
    io_uring_prep_read(sqe, fd, buf, (unsigned)n, (uint64_t)off);
    return corio__io_await(s->loop, sqe, deadline, NULL);
}

ssize_t corio_stream_sendfile(corio_stream_t *s, int fd, off_t offset, size_t count,
                              int64_t deadline)
{
    if (!s || fd < 0 || offset < 0)
        return -EINVAL;
    if (!corio_current_task())
        return -EDEADLK;
    ssize_t rc = writable(s); /* as for write, a zero count included */
    if (rc < 0)
        return rc;
    size_t done = 0;
    char *tmp = NULL;
    while (done < count) {
        /* Checked each round: another task may close the stream while this
         * one drains, and nothing would send what is appended after. */
        rc = writable(s);
        if (rc < 0)
            break;
        size_t n = count - done < 65536 ? count - done : 65536;
        /* Page-cached data is read straight into the pending buffer. */
        wbuf_t *b = write_target(s);
        int r = wbuf_append(b, NULL, n);
        if (r < 0) {
            rc = r;
            break;
        }
        b->end -= n;
        update_sqe(s, b); /* the append may have moved a queued send's bytes */
        struct iovec iov = {b->p + b->end, n};
        ssize_t got = preadv2(fd, &iov, 1, offset + (off_t)done, RWF_NOWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EOPNOTSUPP)) {
            /* Not cached: the ring reads into a buffer of our own, since
             * the pending buffer may move while this task waits. */
            if (!tmp && !(tmp = malloc(65536))) {
                rc = -ENOMEM;
                break;
            }
            got = read_ring(s, fd, tmp, n, offset + (off_t)done, deadline);
            if (got > 0 && (rc = writable(s)) < 0)
                break; /* failed or closed meanwhile */
            if (got > 0) {
                b = write_target(s); /* the loop may have submitted meanwhile */
                r = wbuf_append(b, tmp, (size_t)got);
                if (r < 0) {
                    rc = r;
                    break;
                }
                update_sqe(s, b);
            }
        } else if (got < 0) {
            got = -errno;
        } else {
            b->end += (size_t)got;
            update_sqe(s, b);
        }
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0) {
            rc = CORIO_EINCOMPLETE;
            break;
        }
        done += (size_t)got;
        start_send(s);
        if (s->werr) {
            rc = s->werr;
            break;
        }
        if (done < count) {
            rc = corio_stream_drain(s, deadline);
            if (rc < 0)
                break;
        }
    }
    free(tmp);
    if (rc < 0)
        return rc;
    rc = corio_stream_drain(s, deadline);
    return rc < 0 ? rc : (ssize_t)count;
}

/* ---- reading ------------------------------------------------------------------ */

static ssize_t recv_into(corio_stream_t *s, void *buf, size_t n, int flags, int64_t deadline)
{
    if (s->closing) {
        s->eof = true;
        return 0;
    }
    ssize_t rc = corio_recv(s->fd, buf, n, flags, deadline);
    if (rc == 0)
        s->eof = true;
    else if (rc < 0 && rc != -ECANCELED && rc != -ETIMEDOUT && rc != -EINTR)
        s->rerr = (int)rc;
    return rc;
}

/* Receives more into the read buffer (growing it up to want bytes). */
static ssize_t fill(corio_stream_t *s, size_t want, int64_t deadline)
{
    if (s->rstart == s->rend)
        s->rstart = s->rend = 0;
    if (s->rcap - s->rend < READ_CHUNK / 4) {
        if (s->rstart > 0) {
            memmove(s->rbuf, s->rbuf + s->rstart, s->rend - s->rstart);
            s->rend -= s->rstart;
            s->rstart = 0;
        }
        if (s->rcap - s->rend < READ_CHUNK / 4 || s->rcap < want) {
            size_t cap = s->rcap ? s->rcap * 2 : READ_CHUNK;
            while (cap < want)
                cap *= 2;
            char *q = realloc(s->rbuf, cap);
            if (!q)
                return -ENOMEM;
            s->rbuf = q;
            s->rcap = cap;
        }
    }
    return recv_into(s, s->rbuf + s->rend, s->rcap - s->rend, 0, deadline);
}

static int begin_read(corio_stream_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->reading)
        return -EBUSY;
    s->reading = true;
    return 0;
}

ssize_t corio_stream_read(corio_stream_t *s, void *buf, size_t n, int64_t deadline)
{
    if (n > SSIZE_MAX || (!buf && n))
        return -EINVAL;
    int rc = begin_read(s);
    if (rc < 0)
        return rc;
    ssize_t r;
    if (s->rend > s->rstart) {
        size_t k = s->rend - s->rstart < n ? s->rend - s->rstart : n;
        memcpy(buf, s->rbuf + s->rstart, k);
        s->rstart += k;
        r = (ssize_t)k;
    } else if (s->eof || n == 0) {
        r = 0;
    } else if (s->rerr) {
        r = s->rerr;
    } else {
        /* Nothing buffered: receive straight into the caller's buffer. */
        r = recv_into(s, buf, n, 0, deadline);
    }
    s->reading = false;
    return r;
}

ssize_t corio_stream_readexactly(corio_stream_t *s, void *buf, size_t n, size_t *partial,
                                 int64_t deadline)
{
    if (partial)
        *partial = 0;
    if (n > SSIZE_MAX || (!buf && n))
        return -EINVAL; /* the count is returned as an ssize_t */
    int rc = begin_read(s);
    if (rc < 0)
        return rc;
    size_t got = 0;
    ssize_t r = 0;
    if (s->rend > s->rstart) {
        got = s->rend - s->rstart < n ? s->rend - s->rstart : n;
        memcpy(buf, s->rbuf + s->rstart, got);
        s->rstart += got;
    }
    while (got < n) {
        if (s->eof) {
            r = CORIO_EINCOMPLETE;
            break;
        }
        if (s->rerr) {
            r = s->rerr;
            break;
        }
        r = recv_into(s, (char *)buf + got, n - got, MSG_WAITALL, deadline);
        if (r < 0)
            break;
        if (r == 0) {
            r = CORIO_EINCOMPLETE;
            break;
        }
        got += (size_t)r;
        r = 0;
    }
    if (partial)
        *partial = got;
    s->reading = false;
    return r < 0 ? r : (ssize_t)n;
}

static const char *find(const char *hay, size_t n, const char *sep, size_t seplen)
{
    if (seplen == 1)
        return memchr(hay, sep[0], n);
    return memmem(hay, n, sep, seplen);
}

static int readuntil(corio_stream_t *s, const char *sep, size_t seplen, const char **data,
                     size_t *len, int64_t deadline, bool line)
{
    *data = NULL;
    *len = 0;
    if (!sep || !seplen)
        return -EINVAL;
    int rc = begin_read(s);
    if (rc < 0)
        return rc;
    size_t scanned = 0; /* bytes already searched, from rstart */
    for (;;) {
        size_t avail = s->rend - s->rstart;
        size_t from = scanned >= seplen ? scanned - seplen + 1 : 0;
        const char *hit = avail > from && avail >= seplen
                              ? find(s->rbuf + s->rstart + from, avail - from, sep, seplen)
                              : NULL;
        if (hit) {
            size_t n = (size_t)(hit - (s->rbuf + s->rstart)) + seplen;
            if (n - seplen > s->limit) { /* the separator starts past the limit */
                rc = CORIO_ELIMITOVERRUN;
            } else {
                *data = s->rbuf + s->rstart;
                *len = n;
                s->rstart += n;
                rc = 0;
            }
            break;
        }
        scanned = avail;
        /* No separator found, and none can start within the limit any more
         * (limit + seplen bytes searched): the same answer however the
         * bytes arrive. */
        if (avail >= seplen && avail - seplen >= s->limit) {
            rc = CORIO_ELIMITOVERRUN;
            break;
        }
        if (s->eof || s->rerr) {
            *data = s->rbuf ? s->rbuf + s->rstart : "";
            *len = avail;
            s->rstart = s->rend;
            rc = s->rerr ? s->rerr : line ? 0 : CORIO_EINCOMPLETE;
            s->reading = false;
            return rc;
        }
        /* Room up to the limit, but a chunk past what is buffered at most:
         * a big limit is a bound, not an allocation. */
        size_t want = s->limit < avail + READ_CHUNK ? s->limit + seplen + 1 : avail + READ_CHUNK;
        ssize_t r = fill(s, want, deadline);
        if (r < 0 && !s->rerr) {
            rc = (int)r;
            s->reading = false;
            return rc;
        }
        if (r > 0)
            s->rend += (size_t)r;
    }
    if (rc == CORIO_ELIMITOVERRUN) {
        *data = s->rbuf + s->rstart;
        *len = s->rend - s->rstart;
    }
    s->reading = false;
    return rc;
}

int corio_stream_readuntil(corio_stream_t *s, const void *sep, size_t seplen, const char **data,
                           size_t *len, int64_t deadline)
{
    if (!s || !data || !len)
        return -EINVAL;
    return readuntil(s, sep, seplen, data, len, deadline, false);
}

int corio_stream_readline(corio_stream_t *s, const char **data, size_t *len, int64_t deadline)
{
    if (!s || !data || !len)
        return -EINVAL;
    return readuntil(s, "\n", 1, data, len, deadline, true);
}

bool corio_stream_at_eof(const corio_stream_t *s)
{
    return s && s->eof && s->rstart == s->rend;
}

size_t corio_stream_read_buffered(const corio_stream_t *s)
{
    return s ? s->rend - s->rstart : 0;
}

/* ---- closing -------------------------------------------------------------------- */

void corio_stream_close(corio_stream_t *s)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    /* A read in another task ends: shutdown wakes its receive with 0. */
    if (s->reading && s->fd >= 0)
        shutdown(s->fd, SHUT_RD);
    start_send(s);
}

int corio_stream_wait_closed(corio_stream_t *s, int64_t deadline)
{
    if (!s)
        return -EINVAL;
    if (!s->closed) {
        int rc = wait_writer(s, true, deadline);
        if (rc < 0 && rc != s->werr)
            return rc;
    }
    /* What abort threw away was asked for; any other error is news. */
    return s->werr_by_abort ? 0 : s->werr;
}

static void cancel_send(corio_stream_t *s)
{
    int err = 0;
    struct io_uring_sqe *sqe = corio__get_sqe(s->loop, &err);
    if (sqe) {
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&s->send_op, 0);
        io_uring_sqe_set_data(sqe, NULL);
    }
}

void corio_stream_abort(corio_stream_t *s)
{
    if (!s)
        return;
    s->closing = true;
    s->aborted = true;
    s->pend.start = s->pend.end = 0;
    if (!s->werr) {
        s->werr = -EPIPE;
        s->werr_by_abort = true;
    }
    /* Ends a receive in flight in another task too (close would not). */
    if (s->fd >= 0)
        shutdown(s->fd, SHUT_RDWR);
    if (s->sending) {
        cancel_send(s);
    } else {
        s->out.start = s->out.end = 0;
        finish_close(s);
    }
}

void corio_stream_free(corio_stream_t *s)
{
    if (!s)
        return;
    corio_stream_close(s);
    s->freed = true;
    if (corio_handle_pending(&s->kick) || s->sending)
        return; /* the send in flight completes, then kick releases it */
    finish_close(s);
    stream_release(s);
}
