/* Fuzz target: the stream writer (write, drain, write_eof, sendfile, close,
 * abort, wait_closed, free) against a model of the contract in
 * corio/stream.h, with a peer that reads the other end in any chunking,
 * pauses so that flow control engages, or closes its end early.
 *
 * The input is decoded as
 *   byte 0      options: bits 0-3 index `waters` (the stream's high_water and
 *               low_water), bits 4-5 index `sockbufs` (SO_SNDBUF of the
 *               stream's socket and SO_RCVBUF of the peer's), bit 6 asks for
 *               sendfile's file in TMPDIR instead of a memfd, bit 7 for a TCP
 *               connection on 127.0.0.1 instead of a Unix socketpair
 *   byte 1      the number of writer operations, up to MAX_OPS
 *   operations  a kind byte (bits 0-2 the kind; bits 3-5 the deadline of
 *               drain or the duration of sleep), then a size byte for write,
 *               an offset byte and a size byte for sendfile
 *   the rest    the peer's steps, a byte each: 0xff closes its end at once;
 *               any other receives at most chunks[b & 31] bytes, then pauses
 *               pauses[b >> 5]. After the last step the peer receives
 *               PEER_BUF bytes at a time until the end of the stream.
 * A write sends pattern bytes that depend on their offset in the stream; a
 * sendfile sends a slice of a file holding another pattern. The main task
 * runs the operations in order, then frees the stream and waits for the peer.
 *
 * Checked, with the stream's state (closed, aborted, write_eof) and whether
 * the peer has closed its end early:
 * - the peer receives a prefix of the bytes given to the stream, in order,
 *   nothing duplicated or changed, and the end of the stream only after
 *   close, abort or write_eof; unless the stream was aborted or the peer
 *   closed early, it receives all of them (after write_eof, exactly the
 *   bytes written before it), then the end;
 * - write returns 0, and -EPIPE (or the send error) after close, abort or
 *   write_eof; write_eof returns 0, -EPIPE after close; sendfile returns its
 *   count, or CORIO_EINCOMPLETE (the file's bytes from the offset sent) when
 *   the file is shorter, and -EPIPE after close or write_eof;
 * - drain at or below the high-water mark returns 0 at once; above it, 0
 *   with the buffer at or below the mark, or -ETIMEDOUT at its deadline;
 * - wait_closed before close times out; after close it returns 0, or the
 *   send error; after abort 0 unless the peer had closed first;
 * - a send error (-EPIPE, -ECONNRESET) only once the peer has closed its end
 *   (before the abort, for an aborted stream), and the same one every time;
 *   no other error at all;
 * - the stream never buffers more than was written and not yet received;
 * - nothing hangs: every wait has a deadline, and a wait the model says
 *   must finish (the peer keeps reading, or has gone) that reaches its
 *   OP_TIMEOUT deadline is a failure.
 * Any difference aborts. */
#include <corio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_OPS 32
#define MAX_STEPS 512
#define MAX_WRITE (32 * 4096 + 1)
#define MAX_TOTAL (2 * 1024 * 1024)
#define FILE_SIZE 100000
#define PEER_BUF 65536
#define US INT64_C(1000)
#define OP_TIMEOUT (10 * CORIO_NS_PER_SEC)
#define WAIT_SHORT CORIO_NS_PER_MS

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_stream_write: " __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* high_water, low_water as passed (0 asks for the default). */
static const size_t waters[16][2] = {{0, 0},       {1, 0},    {1, 1},        {2, 1},
                                     {16, 0},      {100, 50}, {1000, 5000},  {4096, 0},
                                     {4096, 4096}, {8192, 1}, {16384, 4096}, {65536, 65536},
                                     {262144, 0},  {0, 100},  {3, 2},        {50000, 10}};
/* 0 keeps the kernel's default; 1 gets its minimum. */
static const int sockbufs[4] = {0, 1, 4096, 32768};
static const size_t chunks[32] = {1,     2,     3,     4,     7,     8,     15,    16,
                                  31,    64,    100,   127,   256,   511,   1000,  1024,
                                  2047,  4096,  4097,  8191,  10000, 16384, 16385, 32768,
                                  40000, 65535, 65536, 5,     13,    200,   3000,  1};
/* The peer's pause after a receive: -1 none, 0 a yield, else a sleep (ns). */
static const int64_t pauses[8] = {-1, -1, 0, 0, 10 * US, 50 * US, 200 * US, 1000 * US};
static const int64_t drain_deadlines[8] = {200 * US, 500 * US, 1000 * US, 1000 * US,
                                           2000 * US, 2000 * US, 3000 * US, 5000 * US};
static const int64_t sleeps[8] = {0, 0, 1 * US, 10 * US, 50 * US, 100 * US, 500 * US, 1000 * US};
static const size_t offsets[16] = {0,     1,     7,     100,   4095,           4096,
                                   12345, 50000, 65535, 65536, 65537,          FILE_SIZE - 10,
                                   99999, FILE_SIZE, FILE_SIZE + 1, 2 * FILE_SIZE};

enum {
    OP_WRITE,
    OP_DRAIN,
    OP_EOF,
    OP_SENDFILE,
    OP_CLOSE,
    OP_ABORT,
    OP_WAIT_CLOSED,
    OP_SLEEP,
    OP_KINDS
};

typedef struct {
    int kind;
    unsigned choice; /* the kind byte's bits 3-5 */
    size_t n, off;
} op_t;

/* A run of the bytes given to the stream: pattern bytes of their stream
 * offset (write), or the file's from foff (sendfile). */
typedef struct {
    size_t start, len;
    bool file;
    size_t foff;
} seg_t;

typedef struct {
    /* the input */
    size_t high_water, low_water, high; /* as passed; the mark in effect */
    int sockbuf;
    bool tcp, tmpfile, wants_file;
    op_t ops[MAX_OPS];
    size_t nops;
    unsigned char steps[MAX_STEPS];
    size_t nsteps;
    /* the run */
    int fds[2]; /* the stream's end (until adopted), the peer's */
    int file;
    unsigned char *scratch;
    corio_stream_t *s;
    /* the model: what the stream was given and what it was told */
    seg_t segs[MAX_OPS];
    size_t nsegs, cur; /* cur: the segment the peer is in */
    size_t logged;     /* bytes given to the stream: all that may arrive */
    size_t committed;  /* of those, bytes of calls that succeeded */
    size_t eof_at;     /* logged at the first write_eof */
    bool closing, eof, aborted, gone_at_abort;
    int perr; /* the send error operations returned, once one did */
    /* the peer */
    size_t received;
    bool peer_gone, peer_eof;
} fz_t;

/* ---- decoding ---------------------------------------------------------------- */

static size_t op_size(unsigned char a)
{
    if (a < 160)
        return a; /* 0..159 */
    if (a < 224)
        return (size_t)(a - 159) * 256; /* 256..16384 */
    return (size_t)(a - 223) * 4096 + (a & 1); /* up to MAX_WRITE, some odd */
}

static size_t file_avail(size_t off) { return off < FILE_SIZE ? FILE_SIZE - off : 0; }

static void decode_op(fz_t *f, op_t *op, const uint8_t *d, size_t n, size_t *i, size_t *total)
{
    unsigned char k = d[(*i)++];
    op->kind = k % OP_KINDS;
    op->choice = (k >> 3) & 7;
    if (op->kind == OP_SENDFILE) {
        op->off = offsets[(*i < n ? d[(*i)++] : 0) % 16];
        f->wants_file = true;
    }
    if (op->kind != OP_WRITE && op->kind != OP_SENDFILE)
        return;
    op->n = op_size(*i < n ? d[(*i)++] : 1);
    /* Everything the stream may be given stays below MAX_TOTAL. */
    size_t adds = op->n;
    if (op->kind == OP_SENDFILE && adds > file_avail(op->off))
        adds = file_avail(op->off);
    if (adds > MAX_TOTAL - *total) {
        op->n = MAX_TOTAL - *total;
        adds = op->n;
    }
    *total += adds;
}

static void decode(fz_t *f, const uint8_t *d, size_t n)
{
    size_t i = 0, total = 0;
    unsigned char o = i < n ? d[i++] : 0;
    f->high_water = waters[o & 15][0];
    f->low_water = waters[o & 15][1];
    f->high = f->high_water ? f->high_water : 65536;
    f->sockbuf = sockbufs[(o >> 4) & 3];
    f->tmpfile = o & 0x40;
    f->tcp = o & 0x80;
    size_t want = (i < n ? d[i++] : 0) % (MAX_OPS + 1);
    while (f->nops < want && i < n)
        decode_op(f, &f->ops[f->nops++], d, n, &i, &total);
    while (i < n && f->nsteps < MAX_STEPS)
        f->steps[f->nsteps++] = d[i++];
}

/* ---- the bytes ------------------------------------------------------------------- */

static unsigned char mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return (unsigned char)x;
}

static unsigned char write_byte(size_t k) { return mix((uint32_t)k); }
static unsigned char file_byte(size_t j) { return mix((uint32_t)j ^ 0x5bd1e995U); }

static void add_seg(fz_t *f, size_t len, bool file, size_t foff)
{
    if (len == 0)
        return;
    f->segs[f->nsegs++] = (seg_t){.start = f->logged, .len = len, .file = file, .foff = foff};
    f->logged += len;
}

/* The byte the stream must carry at offset k (< logged; k never decreases). */
static unsigned char expected(fz_t *f, size_t k)
{
    while (k >= f->segs[f->cur].start + f->segs[f->cur].len)
        f->cur++;
    const seg_t *g = &f->segs[f->cur];
    return g->file ? file_byte(g->foff + (k - g->start)) : write_byte(k);
}

static void check_received(fz_t *f, const unsigned char *buf, size_t n)
{
    if (n > f->logged - f->received)
        FAIL("peer: %zu bytes at offset %zu, but only %zu were written", n, f->received,
             f->logged);
    for (size_t j = 0; j < n; j++) {
        unsigned char want = expected(f, f->received + j);
        if (buf[j] != want)
            FAIL("peer: byte %zu is 0x%02x, want 0x%02x (a receive of %zu at %zu)",
                 f->received + j, buf[j], want, n, f->received);
    }
    f->received += n;
}

/* ---- the peer ------------------------------------------------------------------- */

static void peer_pause(int64_t ns)
{
    if (ns >= 0 && corio_sleep(ns) < 0)
        FAIL("peer: sleep failed");
}

/* One receive of at most n bytes; false at the end of the stream. */
static bool peer_recv(fz_t *f, unsigned char *buf, size_t n)
{
    ssize_t r = corio_recv(f->fds[1], buf, n, 0, corio_now() + OP_TIMEOUT);
    if (r == 0) {
        if (!f->closing && !f->eof)
            FAIL("peer: end of stream at %zu before close, abort or write_eof", f->received);
        f->peer_eof = true;
        return false;
    }
    if (r == -ECONNRESET && f->aborted)
        return false; /* what abort may do to a TCP peer */
    if (r == -ETIMEDOUT)
        FAIL("peer: nothing received for %d s at offset %zu (a hang)",
             (int)(OP_TIMEOUT / CORIO_NS_PER_SEC), f->received);
    if (r < 0)
        FAIL("peer: recv = %zd (%s) at offset %zu", r, corio_strerror((int)r), f->received);
    check_received(f, buf, (size_t)r);
    return true;
}

static intptr_t peer(void *arg)
{
    fz_t *f = arg;
    unsigned char *buf = malloc(PEER_BUF);
    if (!buf)
        abort();
    for (size_t i = 0;; i++) {
        if (i < f->nsteps && f->steps[i] == 0xff) {
            f->peer_gone = true; /* before the close: nothing can fail earlier */
            break;
        }
        size_t n = i < f->nsteps ? chunks[f->steps[i] & 31] : PEER_BUF;
        if (!peer_recv(f, buf, n))
            break;
        if (i < f->nsteps)
            peer_pause(pauses[f->steps[i] >> 5]);
    }
    close(f->fds[1]);
    f->fds[1] = -1;
    free(buf);
    return 0;
}

/* ---- the writer's operations ------------------------------------------------------ */

/* rc, an error of a writer call: its own -EPIPE when own_epipe (the stream
 * is closed for writing), else the send error, which only a peer that has
 * closed its end causes (before an abort, which keeps what it finds) and
 * which never changes once it was returned. */
static void send_error(fz_t *f, size_t step, const char *name, int rc, bool own_epipe)
{
    if (own_epipe && rc == -EPIPE)
        return;
    if (rc != -EPIPE && rc != -ECONNRESET)
        FAIL("step %zu: %s = %d (%s)", step, name, rc, corio_strerror(rc));
    if (!(f->aborted ? f->gone_at_abort : f->peer_gone))
        FAIL("step %zu: %s = %d (%s) while the peer is reading%s", step, name, rc,
             corio_strerror(rc), f->aborted ? " (until the abort)" : "");
    if (f->perr && rc != f->perr)
        FAIL("step %zu: %s = %d (%s), but the send error was %d", step, name, rc,
             corio_strerror(rc), f->perr);
    f->perr = rc;
}

static void do_write(fz_t *f, size_t step, size_t n)
{
    bool refused = f->closing || f->eof;
    for (size_t j = 0; j < n; j++)
        f->scratch[j] = write_byte(f->logged + j);
    if (!refused)
        add_seg(f, n, false, 0);
    int rc = corio_stream_write(f->s, f->scratch, n);
    if (refused) {
        if (rc == 0)
            FAIL("step %zu: write(%zu) = 0 after %s", step, n,
                 f->closing ? "close" : "write_eof");
        send_error(f, step, "write", rc, true);
    } else if (rc == 0) {
        f->committed += n;
    } else {
        send_error(f, step, "write", rc, false);
    }
}

static void do_drain(fz_t *f, size_t step, int64_t ns)
{
    size_t before = corio_stream_write_buffered(f->s);
    bool over = before > f->high;
    /* At or below the mark it returns at once: the long deadline is only a bound. */
    int rc = corio_stream_drain(f->s, corio_now() + (over ? ns : OP_TIMEOUT));
    if (rc == 0) {
        size_t after = corio_stream_write_buffered(f->s);
        if (after > f->high && !f->aborted)
            FAIL("step %zu: drain = 0 with %zu bytes buffered (high-water mark %zu, %zu before)",
                 step, after, f->high, before);
    } else if (rc == -ETIMEDOUT) {
        if (!over)
            FAIL("step %zu: drain timed out with %zu bytes buffered (high-water mark %zu)", step,
                 before, f->high);
    } else {
        send_error(f, step, "drain", rc, f->aborted);
    }
}

static void do_eof(fz_t *f, size_t step)
{
    int rc = corio_stream_write_eof(f->s);
    if (f->closing) {
        if (rc == 0)
            FAIL("step %zu: write_eof = 0 after close", step);
        send_error(f, step, "write_eof", rc, true);
    } else if (rc != 0) {
        send_error(f, step, "write_eof", rc, false);
    } else if (!f->eof) {
        f->eof = true;
        f->eof_at = f->logged;
    }
}

static void do_sendfile(fz_t *f, size_t step, size_t off, size_t n)
{
    bool refused = f->closing || f->eof;
    size_t avail = file_avail(off);
    size_t sent = n < avail ? n : avail;
    ssize_t want = n == 0 ? 0 : n <= avail ? (ssize_t)n : CORIO_EINCOMPLETE;
    if (!refused)
        add_seg(f, sent, true, off);
    ssize_t r = corio_stream_sendfile(f->s, f->file, (off_t)off, n, corio_now() + OP_TIMEOUT);
    if (refused) {
        if (r >= 0)
            FAIL("step %zu: sendfile(%zu, %zu) = %zd after %s", step, off, n, r,
                 f->closing ? "close" : "write_eof");
        send_error(f, step, "sendfile", (int)r, true);
    } else if (r == want) {
        f->committed += sent;
    } else if (r == -ETIMEDOUT) {
        FAIL("step %zu: sendfile(%zu, %zu) timed out (a hang; %zu bytes buffered)", step, off, n,
             corio_stream_write_buffered(f->s));
    } else if (r >= 0 || r == CORIO_EINCOMPLETE) {
        FAIL("step %zu: sendfile(%zu, %zu) = %zd, want %zd (file of %d bytes)", step, off, n, r,
             want, FILE_SIZE);
    } else {
        send_error(f, step, "sendfile", (int)r, false);
    }
}

static void do_abort(fz_t *f)
{
    corio_stream_abort(f->s);
    if (!f->aborted)
        f->gone_at_abort = f->peer_gone;
    f->closing = f->aborted = true;
}

static void do_wait_closed(fz_t *f, size_t step)
{
    if (!f->closing) {
        int rc = corio_stream_wait_closed(f->s, corio_now() + WAIT_SHORT);
        if (rc != -ETIMEDOUT)
            FAIL("step %zu: wait_closed = %d (%s) before close; want -ETIMEDOUT", step, rc,
                 corio_strerror(rc));
        return;
    }
    int rc = corio_stream_wait_closed(f->s, corio_now() + OP_TIMEOUT);
    if (rc == -ETIMEDOUT)
        FAIL("step %zu: wait_closed timed out (a hang; %zu bytes buffered)", step,
             corio_stream_write_buffered(f->s));
    if (rc == 0 && f->perr)
        FAIL("step %zu: wait_closed = 0 after the send error %d", step, f->perr);
    if (rc != 0)
        send_error(f, step, "wait_closed", rc, false);
    if (corio_stream_write_buffered(f->s) != 0)
        FAIL("step %zu: closed with %zu bytes buffered", step, corio_stream_write_buffered(f->s));
}

static void run_op(fz_t *f, size_t step, const op_t *op)
{
    switch (op->kind) {
    case OP_WRITE: do_write(f, step, op->n); break;
    case OP_DRAIN: do_drain(f, step, drain_deadlines[op->choice]); break;
    case OP_EOF: do_eof(f, step); break;
    case OP_SENDFILE: do_sendfile(f, step, op->off, op->n); break;
    case OP_CLOSE:
        corio_stream_close(f->s);
        f->closing = true;
        break;
    case OP_ABORT: do_abort(f); break;
    case OP_WAIT_CLOSED: do_wait_closed(f, step); break;
    default:
        if (corio_sleep(sleeps[op->choice]) < 0)
            FAIL("step %zu: sleep failed", step);
        break;
    }
}

static void check_state(const fz_t *f, size_t step)
{
    size_t buffered = corio_stream_write_buffered(f->s);
    if (!f->aborted && buffered > f->logged - f->received)
        FAIL("step %zu: %zu bytes buffered, but only %zu written and not received", step,
             buffered, f->logged - f->received);
}

/* After the peer is done: what it received, against what was written. */
static void check_end(const fz_t *f)
{
    if (!f->peer_gone && !f->peer_eof && !f->aborted)
        FAIL("the peer stopped at %zu without the end of the stream", f->received);
    if (!f->peer_eof || f->aborted)
        return; /* a prefix, checked as it came */
    if (f->received != f->logged || f->committed != f->logged)
        FAIL("the peer received %zu bytes and the end; %zu were written, %zu accepted",
             f->received, f->logged, f->committed);
    if (f->eof && f->received != f->eof_at)
        FAIL("the peer received %zu bytes, %zu were written before write_eof", f->received,
             f->eof_at);
}

static intptr_t fz_main(void *arg)
{
    fz_t *f = arg;
    corio_stream_options_t opts = {.high_water = f->high_water, .low_water = f->low_water};
    if (corio_stream_new(f->fds[0], &opts, &f->s) < 0)
        FAIL("corio_stream_new failed");
    f->fds[0] = -1; /* the stream's now */
    corio_task_t *p;
    if (corio_spawn(NULL, &p, peer, f, NULL) < 0)
        FAIL("spawning the peer failed");
    for (size_t i = 0; i < f->nops; i++) {
        run_op(f, i + 1, &f->ops[i]);
        check_state(f, i + 1);
    }
    f->closing = true;
    corio_stream_free(f->s);
    f->s = NULL;
    corio_value_t v;
    if (corio_task_await(p, &v) < 0)
        FAIL("the peer failed");
    corio_task_release(p);
    check_end(f);
    return 0;
}

/* ---- set-up ------------------------------------------------------------------------ */

static void set_buf(int fd, int opt, int size)
{
    if (size && setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size) < 0)
        FAIL("setsockopt: %s", strerror(errno));
}

static void open_unix(fz_t *f)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->fds) < 0)
        FAIL("socketpair: %s", strerror(errno));
    set_buf(f->fds[0], SO_SNDBUF, f->sockbuf);
    set_buf(f->fds[1], SO_RCVBUF, f->sockbuf);
}

/* The stream's end connects, the peer's is accepted; both plain system calls. */
static void open_tcp(fz_t *f)
{
    corio_sockaddr_t a;
    int lfd = corio_tcp_listen("127.0.0.1", 0, 1, &a);
    if (lfd < 0)
        FAIL("tcp_listen: %s", corio_strerror(lfd));
    set_buf(lfd, SO_RCVBUF, f->sockbuf); /* inherited by the accepted socket */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0)
        FAIL("socket: %s", strerror(errno));
    set_buf(c, SO_SNDBUF, f->sockbuf);
    if (connect(c, &a.u.sa, a.len) < 0)
        FAIL("connect: %s", strerror(errno));
    int p = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (p < 0)
        FAIL("accept: %s", strerror(errno));
    close(lfd);
    f->fds[0] = c;
    f->fds[1] = p;
}

/* A memfd (shmem has no RWF_NOWAIT: sendfile reads it through the ring), or
 * an unnamed file in TMPDIR (page-cached: read at once), as the input asks. */
static void open_file(fz_t *f)
{
    const char *dir = getenv("TMPDIR");
    f->file = f->tmpfile ? open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)
                         : -1;
    if (f->file < 0)
        f->file = memfd_create("fuzz_stream_write", MFD_CLOEXEC);
    if (f->file < 0)
        FAIL("memfd_create: %s", strerror(errno));
    for (size_t j = 0; j < FILE_SIZE; j++)
        f->scratch[j] = file_byte(j);
    if (pwrite(f->file, f->scratch, FILE_SIZE, 0) != FILE_SIZE)
        FAIL("writing the file: %s", strerror(errno));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_t *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    decode(f, data, size);
    f->file = -1;
    f->scratch = malloc(MAX_WRITE);
    if (!f->scratch)
        abort();
    if (f->wants_file)
        open_file(f);
    if (f->tcp)
        open_tcp(f);
    else
        open_unix(f);
    intptr_t rc = corio_run(fz_main, f);
    if (rc != 0)
        FAIL("main returned %ld (%s)", (long)rc, corio_strerror((int)rc));
    if (f->file >= 0)
        close(f->file);
    free(f->scratch);
    free(f);
    return 0;
}
