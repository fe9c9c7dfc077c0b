/* Fuzz target: the stream reader (read, readexactly, readline, readuntil
 * with a limit, at_eof, read_buffered) against a model of the contract in
 * corio/stream.h, under any chunking of the incoming bytes.
 *
 * The input is decoded as
 *   byte 0      the stream's limit (an index into `limits`)
 *   byte 1      the number of read operations, up to MAX_OPS
 *   operations  a kind byte, then a size byte (read, readexactly) or the
 *               separator's bytes (readuntil: 1 to 4, from the kind byte)
 *   the rest    the payload in chunks: a byte below 0x80 is a literal chunk
 *               of that many following bytes; one at 0x80 or above repeats
 *               the next byte ((b & 0x7f) + 1) * 256 times, as one chunk.
 * A writer task sends each chunk over a Unix socketpair and waits until the
 * reader has taken it from the socket before sending the next one, so every
 * chunk reaches the reader as a receive of its own (big chunks in pieces);
 * then it closes its end. The reader runs the operations, checks each result
 * against the model, then reads what is left and checks that too. Any
 * difference aborts. */
#include <corio.h>

#include <errno.h>
#include <linux/sockios.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_OPS 32
#define MAX_CHUNKS 4096
#define MAX_PAYLOAD (512 * 1024)
#define OP_TIMEOUT (20 * CORIO_NS_PER_SEC)

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_stream: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* 0 asks for the default (65536). */
static const size_t limits[] = {1,    2,     3,     4,     5, 7, 8, 15, 16, 31, 64, 100, 255, 1000,
                                4096, 16384, 65536, 0, SIZE_MAX, SIZE_MAX / 2};

enum { OP_READ, OP_EXACTLY, OP_LINE, OP_UNTIL, OP_KINDS };
static const char *const op_names[] = {"read", "readexactly", "readline", "readuntil"};

typedef struct {
    int kind;
    size_t n;
    unsigned char sep[4];
    size_t seplen;
} op_t;

typedef struct {
    size_t limit, L; /* as passed, as in effect */
    op_t ops[MAX_OPS];
    size_t nops;
    unsigned char *payload;
    size_t total;
    size_t chunks[MAX_CHUNKS];
    size_t nchunks;
    int fds[2]; /* reader's end (the stream's), writer's end */
    bool reader_done;
} fz_t;

/* The model: the payload, then the end of stream. */
typedef struct {
    size_t pos;    /* bytes consumed */
    bool eof_seen; /* a result so far showed the end of stream */
} model_t;

static size_t op_size(unsigned char a)
{
    if (a < 160)
        return (size_t)a + 1; /* 1..160 */
    if (a < 224)
        return (size_t)(a - 159) * 256; /* 256..16384 */
    return (size_t)(a - 223) * 4096 + (a & 1); /* up to 131072, some odd */
}

static void decode(fz_t *f, const uint8_t *d, size_t n)
{
    size_t i = 0;
    f->limit = limits[(i < n ? d[i++] : 0) % (sizeof limits / sizeof limits[0])];
    f->L = f->limit ? f->limit : 65536;
    size_t want = (i < n ? d[i++] : 0) % (MAX_OPS + 1);
    while (f->nops < want && i < n) {
        op_t *op = &f->ops[f->nops++];
        unsigned char k = d[i++];
        op->kind = k % OP_KINDS;
        if (op->kind == OP_READ || op->kind == OP_EXACTLY) {
            op->n = i < n ? op_size(d[i++]) : 1;
        } else if (op->kind == OP_UNTIL) {
            op->seplen = 1 + (size_t)(k >> 2) % 4;
            for (size_t j = 0; j < op->seplen; j++)
                op->sep[j] = i < n ? d[i++] : '\n';
        }
    }
    f->payload = malloc(MAX_PAYLOAD);
    if (!f->payload)
        abort();
    while (i < n && f->nchunks < MAX_CHUNKS) {
        unsigned char c = d[i++];
        size_t len;
        if (c & 0x80) {
            len = ((size_t)(c & 0x7f) + 1) * 256;
            if (f->total + len > MAX_PAYLOAD)
                break;
            memset(f->payload + f->total, i < n ? d[i++] : 'x', len);
        } else {
            len = c < n - i ? c : n - i;
            if (f->total + len > MAX_PAYLOAD)
                break;
            memcpy(f->payload + f->total, d + i, len);
            i += len;
        }
        if (len == 0)
            continue;
        f->total += len;
        f->chunks[f->nchunks++] = len;
    }
}

/* Bytes unread in the reader's socket. */
static int queued(int fd)
{
    int q = 0;
    return ioctl(fd, SIOCINQ, &q) < 0 ? 0 : q;
}

static intptr_t writer(void *arg)
{
    fz_t *f = arg;
    size_t off = 0;
    for (size_t i = 0; i < f->nchunks && !f->reader_done; i++) {
        ssize_t r = corio_send(f->fds[1], f->payload + off, f->chunks[i],
                               corio_now() + OP_TIMEOUT, NULL);
        if (r < 0)
            break; /* the reader has gone */
        off += f->chunks[i];
        /* One chunk at a time: the next goes once the reader has this one. */
        while (!f->reader_done && queued(f->fds[0]) > 0)
            if (corio_sleep(0) < 0)
                break;
    }
    close(f->fds[1]);
    f->fds[1] = -1;
    return 0;
}

static void check_state(const fz_t *f, corio_stream_t *s, const model_t *m, size_t step)
{
    size_t rem = f->total - m->pos;
    bool at_eof = corio_stream_at_eof(s);
    if (at_eof && rem)
        FAIL("step %zu: at_eof with %zu bytes unread", step, rem);
    if (!at_eof && !rem && m->eof_seen)
        FAIL("step %zu: the end was seen and everything read, but not at_eof", step);
    if (corio_stream_read_buffered(s) > rem)
        FAIL("step %zu: %zu bytes buffered, only %zu left", step, corio_stream_read_buffered(s),
             rem);
}

static void check_bytes(const fz_t *f, const model_t *m, size_t step, const void *got, size_t n)
{
    if (n > f->total - m->pos)
        FAIL("step %zu: %zu bytes, only %zu left", step, n, f->total - m->pos);
    if (n && memcmp(got, f->payload + m->pos, n) != 0)
        FAIL("step %zu: %zu bytes differ from the payload at offset %zu", step, n, m->pos);
}

static void do_read(const fz_t *f, corio_stream_t *s, model_t *m, size_t step, size_t n)
{
    char *buf = malloc(n);
    if (!buf)
        abort();
    ssize_t r = corio_stream_read(s, buf, n, corio_now() + OP_TIMEOUT);
    size_t rem = f->total - m->pos;
    if (r < 0)
        FAIL("step %zu: read(%zu) = %zd (%s)", step, n, r, corio_strerror((int)r));
    if (rem == 0 && r != 0)
        FAIL("step %zu: read(%zu) = %zd at the end", step, n, r);
    if (rem > 0 && (r == 0 || (size_t)r > n))
        FAIL("step %zu: read(%zu) = %zd with %zu left", step, n, r, rem);
    check_bytes(f, m, step, buf, (size_t)r);
    m->pos += (size_t)r;
    if (r == 0)
        m->eof_seen = true;
    free(buf);
}

static void do_exactly(const fz_t *f, corio_stream_t *s, model_t *m, size_t step, size_t n)
{
    char *buf = malloc(n);
    if (!buf)
        abort();
    size_t partial = (size_t)-1;
    ssize_t r = corio_stream_readexactly(s, buf, n, &partial, corio_now() + OP_TIMEOUT);
    size_t rem = f->total - m->pos;
    if (rem >= n) {
        if (r != (ssize_t)n || partial != n)
            FAIL("step %zu: readexactly(%zu) = %zd, partial %zu, with %zu left", step, n, r,
                 partial, rem);
        check_bytes(f, m, step, buf, n);
        m->pos += n;
    } else {
        if (r != CORIO_EINCOMPLETE || partial != rem)
            FAIL("step %zu: readexactly(%zu) = %zd, partial %zu, with %zu left (want "
                 "EINCOMPLETE)",
                 step, n, r, partial, rem);
        check_bytes(f, m, step, buf, rem);
        m->pos = f->total;
        m->eof_seen = true;
    }
    free(buf);
}

static void do_until(const fz_t *f, corio_stream_t *s, model_t *m, size_t step, const op_t *op)
{
    const char *sep = op->kind == OP_LINE ? "\n" : (const char *)op->sep;
    size_t k = op->kind == OP_LINE ? 1 : op->seplen;
    const char *data = NULL;
    size_t len = (size_t)-1;
    int rc = op->kind == OP_LINE
                 ? corio_stream_readline(s, &data, &len, corio_now() + OP_TIMEOUT)
                 : corio_stream_readuntil(s, sep, k, &data, &len, corio_now() + OP_TIMEOUT);
    const char *name = op_names[op->kind];
    size_t rem = f->total - m->pos;
    const unsigned char *at = f->payload + m->pos;
    const unsigned char *hit = rem >= k ? memmem(at, rem, sep, k) : NULL;
    size_t isep = hit ? (size_t)(hit - at) : 0;
    if (!data)
        FAIL("step %zu: %s = %d with no data", step, name, rc);
    if (hit && isep <= f->L) {
        /* The separator starts within the limit: the bytes up to its end. */
        if (rc != 0 || len != isep + k)
            FAIL("step %zu: %s = %d, len %zu; want 0, len %zu (limit %zu)", step, name, rc, len,
                 isep + k, f->L);
        check_bytes(f, m, step, data, len);
        m->pos += len;
    } else if (hit || (rem >= k && rem - k >= f->L)) {
        /* No separator within the limit, and at least limit + seplen bytes
         * to show it: nothing consumed, the buffered bytes shown. */
        if (rc != CORIO_ELIMITOVERRUN)
            FAIL("step %zu: %s = %d, len %zu; want ELIMITOVERRUN (limit %zu, %zu left, sep at "
                 "%zd)",
                 step, name, rc, len, f->L, rem, hit ? (ssize_t)isep : (ssize_t)-1);
        if (len < f->L + k || len > rem)
            FAIL("step %zu: %s overrun shows %zu bytes (limit %zu, %zu left)", step, name, len,
                 f->L, rem);
        check_bytes(f, m, step, data, len);
        if (corio_stream_read_buffered(s) != len)
            FAIL("step %zu: %s overrun shows %zu bytes, %zu buffered", step, name, len,
                 corio_stream_read_buffered(s));
    } else {
        /* The stream ends first: all that is left, consumed. */
        int want = op->kind == OP_LINE ? 0 : CORIO_EINCOMPLETE;
        if (rc != want || len != rem)
            FAIL("step %zu: %s = %d, len %zu; want %d, len %zu (limit %zu)", step, name, rc, len,
                 want, rem, f->L);
        check_bytes(f, m, step, data, len);
        m->pos = f->total;
        m->eof_seen = true;
    }
}

static intptr_t fz_main(void *arg)
{
    fz_t *f = arg;
    corio_stream_options_t opts = {.limit = f->limit};
    corio_stream_t *s;
    if (corio_stream_new(f->fds[0], &opts, &s) < 0)
        abort();
    corio_task_t *w;
    if (corio_spawn(NULL, &w, writer, f, NULL) < 0)
        abort();
    model_t m = {0};
    check_state(f, s, &m, 0);
    for (size_t i = 0; i < f->nops; i++) {
        const op_t *op = &f->ops[i];
        switch (op->kind) {
        case OP_READ: do_read(f, s, &m, i + 1, op->n); break;
        case OP_EXACTLY: do_exactly(f, s, &m, i + 1, op->n); break;
        default: do_until(f, s, &m, i + 1, op); break;
        }
        check_state(f, s, &m, i + 1);
    }
    /* What is left, to the end. */
    while (m.pos < f->total || !m.eof_seen) {
        do_read(f, s, &m, f->nops + 1, 65536);
        check_state(f, s, &m, f->nops + 1);
    }
    if (!corio_stream_at_eof(s))
        FAIL("not at_eof after reading everything");
    f->reader_done = true;
    corio_stream_free(s); /* closes fds[0] */
    f->fds[0] = -1;
    corio_value_t v;
    if (corio_task_await(w, &v) < 0)
        FAIL("the writer failed");
    corio_task_release(w);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_t *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    decode(f, data, size);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->fds) < 0)
        abort();
    intptr_t rc = corio_run(fz_main, f);
    if (rc != 0)
        FAIL("main returned %ld (%s)", (long)rc, corio_strerror((int)rc));
    free(f->payload);
    free(f);
    return 0;
}
