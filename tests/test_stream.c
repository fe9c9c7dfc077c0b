/* Streams: read, readexactly and its partial count, readline/readuntil and
 * their limit, at_eof, drain's flow control, write_eof, close and
 * wait_closed, cancellation in the middle of a read, and servers' graceful
 * close. */
#include "harness.h"
#include "corio.h"
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#define MS CORIO_NS_PER_MS
#define SOON(ms) (corio_now() + (ms) * MS)

static void run(corio_task_fn fn)
{
    signal(SIGPIPE, SIG_IGN);
    intptr_t rc = corio_run(fn, NULL);
    if (rc != 0)
        fprintf(stderr, "main returned %ld (%s)\n", (long)rc, corio_strerror((int)rc));
    CHECK_EQ(rc, 0);
}

/* A stream over one end of a TCP pair; *peer is the raw other end. */
static corio_stream_t *stream_pair(int *peer, const corio_stream_options_t *opts)
{
    corio_sockaddr_t bound;
    int l = corio_tcp_listen("127.0.0.1", 0, 4, &bound);
    CHECK(l >= 0);
    int c = corio_socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(corio_connect(c, &bound, SOON(1000)), 0);
    int s = corio_accept(l, NULL, SOON(1000));
    CHECK(s >= 0);
    close(l);
    corio_stream_t *st;
    CHECK_EQ(corio_stream_new(c, opts, &st), 0);
    *peer = s;
    return st;
}

static void peer_send(int fd, const char *s)
{
    CHECK_EQ(corio_send(fd, s, strlen(s), SOON(1000), NULL), (ssize_t)strlen(s));
}

/* Writes and drains until the send error a gone peer causes shows. */
static int write_until_error(corio_stream_t *s)
{
    static char chunk[4096];
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) {
        rc = corio_stream_write(s, chunk, sizeof chunk);
        if (rc == 0)
            rc = corio_stream_drain(s, SOON(1000));
        if (rc == 0)
            corio_sleep(MS);
    }
    return rc;
}

/* ---- reading ------------------------------------------------------------------ */

static intptr_t reading_main(void *arg)
{
    (void)arg;
    int peer;
    corio_stream_options_t opts = {.limit = 16};
    corio_stream_t *s = stream_pair(&peer, &opts);
    const char *data;
    size_t len;

    peer_send(peer, "line one\nline two\nAB");
    CHECK_EQ(corio_stream_readline(s, &data, &len, SOON(1000)), 0);
    CHECK(len == 9 && memcmp(data, "line one\n", 9) == 0);
    CHECK_EQ(corio_stream_readuntil(s, "two\n", 4, &data, &len, SOON(1000)), 0);
    CHECK(len == 9 && memcmp(data, "line two\n", 9) == 0);
    char buf[64];
    CHECK_EQ(corio_stream_read(s, buf, 1, SOON(1000)), 1); /* from the buffer */
    CHECK(buf[0] == 'A');
    CHECK_EQ(corio_stream_read(s, buf, sizeof buf, SOON(1000)), 1);
    CHECK(buf[0] == 'B');

    /* No separator within the limit: an error, and the data stays. */
    peer_send(peer, "0123456789abcdefghijXYZ\r\n");
    CHECK_EQ(corio_stream_readuntil(s, "\r\n", 2, &data, &len, SOON(1000)),
             CORIO_ELIMITOVERRUN);
    CHECK(len >= 17 && memcmp(data, "0123456789abcdefg", 17) == 0);
    CHECK_EQ(corio_stream_readline(s, &data, &len, SOON(1000)), CORIO_ELIMITOVERRUN);
    size_t partial = 0;
    CHECK_EQ(corio_stream_readexactly(s, buf, 25, &partial, SOON(1000)), 25);
    CHECK(memcmp(buf, "0123456789abcdefghijXYZ\r\n", 25) == 0);

    /* A separator split across receives is found. */
    peer_send(peer, "ab\r");
    corio_sleep(10 * MS);
    peer_send(peer, "\ncd");
    CHECK_EQ(corio_stream_readuntil(s, "\r\n", 2, &data, &len, SOON(1000)), 0);
    CHECK(len == 4 && memcmp(data, "ab\r\n", 4) == 0);

    /* readexactly across the end: CORIO_EINCOMPLETE with the partial count. */
    peer_send(peer, "efg");
    CHECK_EQ(corio_shutdown(peer, SHUT_WR), 0);
    CHECK(!corio_stream_at_eof(s));
    CHECK_EQ(corio_stream_readexactly(s, buf, 10, &partial, SOON(1000)), CORIO_EINCOMPLETE);
    CHECK_EQ(partial, 5);
    CHECK(memcmp(buf, "cdefg", 5) == 0);
    CHECK(corio_stream_at_eof(s));
    CHECK_EQ(corio_stream_read(s, buf, sizeof buf, SOON(1000)), 0);
    CHECK_EQ(corio_stream_readline(s, &data, &len, SOON(1000)), 0);
    CHECK_EQ(len, 0);
    CHECK_EQ(corio_stream_readuntil(s, "x", 1, &data, &len, SOON(1000)), CORIO_EINCOMPLETE);
    corio_stream_free(s);
    close(peer);

    /* readline at the end gives the partial line; readuntil an error. */
    s = stream_pair(&peer, NULL);
    peer_send(peer, "tail");
    corio_shutdown(peer, SHUT_WR);
    CHECK_EQ(corio_stream_readline(s, &data, &len, SOON(1000)), 0);
    CHECK(len == 4 && memcmp(data, "tail", 4) == 0);
    corio_stream_free(s);
    close(peer);

    s = stream_pair(&peer, NULL);
    peer_send(peer, "part");
    corio_shutdown(peer, SHUT_WR);
    CHECK_EQ(corio_stream_readuntil(s, "\n", 1, &data, &len, SOON(1000)), CORIO_EINCOMPLETE);
    CHECK(len == 4 && memcmp(data, "part", 4) == 0);
    corio_stream_free(s);
    close(peer);
    return 0;
}

static void reading(void) { run(reading_main); }

/* ---- cancellation and deadlines in reads ------------------------------------------ */

static corio_stream_t *g_s;

static intptr_t exact_reader(void *arg)
{
    char *buf = arg;
    size_t partial = 0;
    ssize_t rc = corio_stream_readexactly(g_s, buf, 100, &partial, CORIO_NEVER);
    return rc < 0 ? rc : (intptr_t)partial;
}

static intptr_t cancel_main(void *arg)
{
    (void)arg;
    int peer;
    g_s = stream_pair(&peer, NULL);
    char buf[100];
    const char *data;
    size_t len;
    /* A deadline in the middle of readline: nothing consumed. */
    peer_send(peer, "no newline yet");
    CHECK_EQ(corio_stream_readline(g_s, &data, &len, SOON(50)), -ETIMEDOUT);
    CHECK_EQ(corio_stream_read_buffered(g_s), 14);
    /* Another task reading at the same time is refused. */
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, exact_reader, buf, NULL), 0);
    CHECK_EQ(corio_sleep(20 * MS), 0);
    CHECK_EQ(corio_stream_read(g_s, buf, 1, SOON(10)), -EBUSY);
    /* Cancelled in the middle of readexactly. */
    CHECK_EQ(corio_task_cancel(t), 0);
    CHECK_EQ(corio_task_await(t, NULL), -ECANCELED);
    corio_task_release(t);
    /* The stream is still usable after the cancelled read. */
    peer_send(peer, "\n");
    ssize_t n = corio_stream_readline(g_s, &data, &len, SOON(1000));
    (void)n;
    /* The cancelled readexactly consumed what it had copied (14 bytes from
     * the buffer); the newline is what is left. */
    CHECK_EQ(len, 1);
    corio_stream_free(g_s);
    close(peer);
    return 0;
}

static void cancel_mid_read(void) { run(cancel_main); }

/* ---- writing: flow control, write_eof, close ----------------------------------------- */

static intptr_t writing_main(void *arg)
{
    (void)arg;
    int peer;
    corio_stream_options_t opts = {.high_water = 256 * 1024, .low_water = 64 * 1024};
    corio_stream_t *s = stream_pair(&peer, &opts);
    static char chunk[65536];
    memset(chunk, 'z', sizeof chunk);
    /* The peer does not read: writes pile up above the high-water mark
     * and drain waits (here until its deadline). */
    size_t written = 0;
    int rc = 0;
    for (int i = 0; i < 400 && rc == 0; i++) {
        CHECK_EQ(corio_stream_write(s, chunk, sizeof chunk), 0);
        written += sizeof chunk;
        rc = corio_stream_drain(s, SOON(100));
    }
    CHECK_EQ(rc, -ETIMEDOUT);
    /* Drain waits until the buffer falls to the low-water mark, so one that
     * timed out left more than that (the kernel may have taken some since
     * it suspended above the high-water mark: a slow TSan run showed it). */
    CHECK(corio_stream_write_buffered(s) > opts.low_water);
    /* The peer reads: drain returns once the buffer is low. */
    size_t got = 0;
    static char buf[1 << 20];
    while (corio_stream_write_buffered(s) > opts.low_water) {
        ssize_t n = corio_recv(peer, buf, sizeof buf, 0, SOON(1000));
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK_EQ(corio_stream_drain(s, SOON(1000)), 0);
    /* write_eof after the buffered bytes, then the peer sees the end. */
    CHECK_EQ(corio_stream_write(s, "END", 3), 0);
    written += 3;
    CHECK_EQ(corio_stream_write_eof(s), 0);
    CHECK_EQ(corio_stream_write(s, "x", 1), -EPIPE);
    for (;;) {
        ssize_t n = corio_recv(peer, buf, sizeof buf, 0, SOON(2000));
        CHECK(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
        if (n >= 3 && memcmp(buf + n - 3, "END", 3) == 0)
            CHECK_EQ(got, written);
    }
    CHECK_EQ(got, written);
    /* The stream still reads after write_eof. */
    peer_send(peer, "reply");
    CHECK_EQ(corio_stream_read(s, buf, 5, SOON(1000)), 5);
    /* close flushes, then wait_closed returns. */
    corio_stream_close(s);
    CHECK_EQ(corio_stream_wait_closed(s, SOON(1000)), 0);
    CHECK_EQ(corio_stream_write(s, "x", 1), -EPIPE);
    corio_stream_free(s);
    close(peer);

    /* A write to a reset peer fails on a later write or drain. */
    s = stream_pair(&peer, NULL);
    struct linger lg = {1, 0};
    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(peer);
    rc = write_until_error(s);
    CHECK(rc == -ECONNRESET || rc == -EPIPE);
    corio_stream_free(s);

    /* close with data still buffered: it is sent before the socket closes. */
    s = stream_pair(&peer, NULL);
    for (int i = 0; i < 64; i++)
        CHECK_EQ(corio_stream_write(s, chunk, sizeof chunk), 0);
    corio_stream_free(s); /* the rest is sent in the background */
    got = 0;
    for (;;) {
        ssize_t n = corio_recv(peer, buf, sizeof buf, 0, SOON(2000));
        CHECK(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    CHECK_EQ(got, 64 * sizeof chunk);
    close(peer);
    return 0;
}

static void writing_flow_control(void) { run(writing_main); }

/* ---- servers: a task per connection, graceful close ------------------------------------ */

static int g_finished;

static intptr_t slow_handler(corio_stream_t *s, void *arg)
{
    (void)arg;
    const char *line;
    size_t len;
    if (corio_stream_readline(s, &line, &len, CORIO_NEVER) < 0 || len == 0)
        return 0;
    int64_t ms = atoi(line);
    int rc = corio_sleep(ms * MS);
    if (rc == 0) {
        corio_stream_write(s, "done\n", 5);
        g_finished++;
    }
    return rc;
}

static intptr_t client(void *arg)
{
    int port = (int)((intptr_t)arg >> 16), ms = (int)((intptr_t)arg & 0xffff);
    corio_stream_t *s;
    CHECK_EQ(corio_open_connection("127.0.0.1", port, NULL, SOON(1000), &s), 0);
    char req[16];
    int n = snprintf(req, sizeof req, "%d\n", ms);
    corio_stream_write(s, req, (size_t)n);
    const char *line;
    size_t len;
    int rc = corio_stream_readline(s, &line, &len, SOON(5000));
    corio_stream_free(s);
    return rc == 0 && len == 5 ? 1 : 0;
}

static intptr_t server_main(void *arg)
{
    (void)arg;
    corio_server_t *srv;
    CHECK_EQ(corio_start_server("127.0.0.1", 0, slow_handler, NULL, NULL, &srv), 0);
    int port = corio_server_port(srv);
    CHECK(port > 0);
    corio_task_t *c[4];
    int delays[4] = {10, 50, 100, 3000};
    for (int i = 0; i < 4; i++)
        CHECK_EQ(corio_spawn(NULL, &c[i], client, (void *)((intptr_t)port << 16 | delays[i]),
                             NULL), 0);
    corio_server_stats_t st;
    for (int i = 0; i < 100; i++) {
        corio_server_stats(srv, &st);
        if (st.connections == 4)
            break;
        corio_sleep(5 * MS);
    }
    CHECK_EQ(st.connections, 4);
    /* serve_forever returns once the server is closed. */
    CHECK_EQ(corio_server_serve_forever(srv, SOON(20)), -ETIMEDOUT);
    corio_server_close(srv);
    CHECK_EQ(corio_server_serve_forever(srv, SOON(1000)), 0);
    /* No new connections once closed. */
    CHECK(corio_tcp_connect("127.0.0.1", port, SOON(1000)) < 0);
    /* Handlers get until the deadline; the 3 s one is cancelled. */
    int64_t t0 = corio_now();
    CHECK_EQ(corio_server_wait_closed(srv, SOON(500)), -ETIMEDOUT);
    CHECK(corio_now() - t0 < 2000 * MS);
    CHECK_EQ(g_finished, 3);
    corio_server_stats(srv, &st);
    CHECK_EQ(st.connections, 0);
    CHECK_EQ(st.accepted, 4);
    CHECK_EQ(st.peak, 4);
    CHECK_EQ(corio_server_free(srv), 0);
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        corio_value_t v;
        CHECK_EQ(corio_task_await(c[i], &v), 0);
        ok += (int)corio_value_as_int(v);
        corio_task_release(c[i]);
    }
    CHECK_EQ(ok, 3);

    /* Adopting a listening socket the program made. */
    int l = corio_tcp_listen("127.0.0.1", 0, 0, NULL);
    CHECK_EQ(corio_server_adopt(l, slow_handler, NULL, NULL, &srv), 0);
    CHECK_EQ(corio_spawn(NULL, &c[0], client, (void *)((intptr_t)corio_server_port(srv) << 16 | 1),
                         NULL), 0);
    corio_value_t v;
    CHECK_EQ(corio_task_await(c[0], &v), 0);
    CHECK_EQ(corio_value_as_int(v), 1);
    corio_task_release(c[0]);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(1000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    return 0;
}

static void server_graceful_close(void) { run(server_main); }

/* ---- a peer that stops reading is cut off after the close timeout -------------- */

enum { BIG = 16 << 20 };

static intptr_t write_big_and_return(corio_stream_t *s, void *arg)
{
    char *big = calloc(1, BIG);
    CHECK(big != NULL);
    CHECK_EQ(corio_stream_write(s, big, BIG), 0); /* no drain: left buffered */
    free(big);
    *(int *)arg += 1;
    return 0;
}

/* Reads until the end of the stream or an error; returns that and the count. */
static ssize_t read_all(int fd, size_t *got)
{
    static char buf[1 << 16];
    *got = 0;
    for (;;) {
        ssize_t n = corio_recv(fd, buf, sizeof buf, 0, SOON(5000));
        if (n <= 0)
            return n;
        *got += (size_t)n;
    }
}

static int client_of(int port)
{
    int fd = corio_socket(AF_INET, SOCK_STREAM, 0);
    corio_sockaddr_t to;
    CHECK_EQ(corio_sockaddr_ip(&to, "127.0.0.1", port), 0);
    CHECK_EQ(corio_connect(fd, &to, SOON(2000)), 0);
    return fd;
}

/* A reader gets every byte the handler left, then the end; with no limit
 * (CORIO_NEVER overflowed into one in the past) also one that waits a
 * while first. One that stops reading holds the connection only for the
 * timeout: the server resets it, and the bytes stop short. */
static intptr_t close_timeout_main(void *arg)
{
    (void)arg;
    struct {
        int64_t timeout;
        int pause_ms;
        ssize_t end;
    } cases[] = {{300 * MS, 0, 0}, {CORIO_NEVER, 100, 0}, {300 * MS, 1500, -ECONNRESET}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int handled = 0;
        corio_server_options_t opts = {.close_timeout_ns = cases[i].timeout};
        corio_server_t *srv;
        CHECK_EQ(corio_start_server("127.0.0.1", 0, write_big_and_return, &handled, &opts, &srv),
                 0);
        int fd = client_of(corio_server_port(srv));
        while (handled < 1)
            CHECK_EQ(corio_sleep(MS), 0);
        CHECK_EQ(corio_sleep(cases[i].pause_ms * MS), 0);
        corio_server_stats_t st;
        CHECK_EQ(corio_server_stats(srv, &st), 0);
        if (cases[i].end < 0)
            CHECK_EQ(st.connections, 0); /* cut off, not waiting */
        size_t got;
        CHECK_EQ(read_all(fd, &got), cases[i].end);
        CHECK(cases[i].end < 0 ? got < (size_t)BIG : got == (size_t)BIG);
        close(fd);
        corio_server_close(srv);
        CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
        CHECK_EQ(corio_server_free(srv), 0);
    }
    return 0;
}

static void server_close_timeout(void) { run(close_timeout_main); }

/* ---- closing: errors kept, readers ended, descriptors safe ------------------------------ */

static void wait_closed_after_peer_error(bool aborting)
{
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    close(peer); /* a FIN: our next send draws a reset, the one after EPIPE */
    int rc = write_until_error(s);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    if (aborting)
        corio_stream_abort(s);
    else
        corio_stream_close(s);
    CHECK_EQ(corio_stream_wait_closed(s, SOON(1000)), rc);
    corio_stream_free(s);
}

/* wait_closed reports a write error the peer caused, whether the stream
 * is then closed or aborted; only abort's own discarding is not an error. */
static void wait_closed_reports_epipe(void)
{
    for (int aborting = 0; aborting < 2; aborting++)
        wait_closed_after_peer_error(aborting);
    int peer;
    static char chunk[4096];
    corio_stream_t *s = stream_pair(&peer, NULL);
    CHECK_EQ(corio_stream_write(s, chunk, sizeof chunk), 0);
    corio_stream_abort(s);
    CHECK_EQ(corio_stream_wait_closed(s, SOON(1000)), 0);
    corio_stream_free(s);
    close(peer);
}

static bool g_reader_started;

/* What the task returned, or its error. */
static intptr_t task_result(corio_task_t *t)
{
    corio_value_t v = {NULL, 0};
    int rc = corio_task_await(t, &v);
    return rc < 0 ? rc : (intptr_t)v.ptr;
}

static intptr_t one_byte_reader(void *arg)
{
    char c;
    g_reader_started = true;
    return corio_stream_read(arg, &c, 1, SOON(3000));
}

/* abort ends a read another task has in flight. */
static void abort_ends_reader(void)
{
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, one_byte_reader, s, NULL), 0);
    CHECK_EQ(corio_sleep(20 * MS), 0); /* its receive is in the kernel */
    corio_stream_abort(s);
    intptr_t r = task_result(t);
    CHECK(r == 0 || r == -EPIPE); /* ended, not left to its deadline */
    corio_task_release(t);
    corio_stream_free(s);
    close(peer);
}

/* close right after another task queued its receive, before the ring was
 * submitted: the reader sees the end of the stream, never -EBADF, and never
 * the bytes of a descriptor that reused the number. */
static void close_with_queued_read(bool aborting, bool cq_full)
{
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    corio_task_t *t;
    g_reader_started = false;
    CHECK_EQ(corio_spawn(NULL, &t, one_byte_reader, s, NULL), 0);
    while (!g_reader_started)
        CHECK_EQ(corio_sleep(0), 0); /* resumes in the turn the reader ran */
    if (cq_full) /* the submit before the close finds the CQ full once */
        corio__fault_set(CORIO_FAULT_SUBMIT_BUSY, 1);
    if (aborting)
        corio_stream_abort(s);
    else
        corio_stream_close(s);
    int sv[2]; /* takes the number just closed, with a byte to read */
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(write(sv[1], "!", 1), 1);
    intptr_t r = task_result(t);
    if (r != 0)
        fprintf(stderr, "reader got %ld (%s)\n", (long)r, r < 0 ? corio_strerror((int)r) : "data");
    CHECK(r == 0 || (aborting && r == -EPIPE));
    corio_task_release(t);
    char c;
    CHECK_EQ(read(sv[0], &c, 1), 1); /* still there */
    close(sv[0]);
    close(sv[1]);
    corio_stream_free(s);
    close(peer);
}

/* A reset after a partial line: the bytes come with the error, once. */
static void reset_mid_line(void)
{
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    peer_send(peer, "abc");
    CHECK_EQ(corio_sleep(10 * MS), 0);
    struct linger lg = {1, 0};
    CHECK_EQ(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(peer); /* a reset */
    const char *data;
    size_t len;
    CHECK_EQ(corio_stream_readline(s, &data, &len, SOON(1000)), -ECONNRESET);
    CHECK(len == 3 && memcmp(data, "abc", 3) == 0);
    CHECK_EQ(corio_stream_readline(s, &data, &len, SOON(1000)), -ECONNRESET);
    CHECK_EQ(len, 0);
    corio_stream_free(s);
}

static intptr_t closing_main(void *arg)
{
    (void)arg;
    wait_closed_reports_epipe();
    reset_mid_line();
    abort_ends_reader();
    for (int cq_full = 0; cq_full < 2; cq_full++) {
        close_with_queued_read(false, cq_full);
        close_with_queued_read(true, cq_full);
    }
    return 0;
}

static void closing(void) { run(closing_main); }

/* ---- sendfile: a file not in the page cache, after a write ------------------------------ */

#define SF_HEAD 200000 /* big enough for its own mapping: freed, it is unmapped */
#define SF_FILE 200000

static unsigned char g_sf_want[SF_HEAD + SF_FILE];

static intptr_t collect_all(void *arg)
{
    int peer = (int)(intptr_t)arg;
    static unsigned char got[SF_HEAD + SF_FILE + 1];
    size_t n = 0;
    for (;;) {
        ssize_t r = corio_recv(peer, got + n, sizeof got - n, 0, SOON(5000));
        CHECK(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    CHECK_EQ(n, sizeof g_sf_want);
    CHECK(memcmp(got, g_sf_want, n) == 0);
    return 0;
}

/* An unlinked file holding data, its pages dropped from the cache. (No
 * probe with RWF_NOWAIT: a miss starts readahead, caching it again.) */
static int uncached_file(const void *data, size_t n)
{
    char path[] = "/tmp/corio-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK_EQ(write(fd, data, n), (ssize_t)n);
    CHECK_EQ(fsync(fd), 0);
    CHECK_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    return fd;
}

/* The write leaves a send queued; sendfile grows that send's buffer (it
 * moves) and, the file being uncached, waits for the ring to read it: the
 * queued send must not go out from the old buffer. */
static intptr_t sendfile_main(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < sizeof g_sf_want; i++)
        g_sf_want[i] = (unsigned char)(i * 7 + i / 251);
    int fd = uncached_file(g_sf_want + SF_HEAD, SF_FILE);
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, collect_all, (void *)(intptr_t)peer, NULL), 0);
    CHECK_EQ(corio_stream_write(s, g_sf_want, SF_HEAD), 0);
    CHECK_EQ(corio_stream_sendfile(s, fd, 0, SF_FILE, SOON(5000)), SF_FILE);
    corio_stream_close(s);
    CHECK_EQ(corio_stream_wait_closed(s, SOON(5000)), 0);
    corio_stream_free(s);
    CHECK_EQ(corio_task_await(t, NULL), 0);
    corio_task_release(t);
    close(peer);
    close(fd);
    return 0;
}

/* An uncached file, the peer already gone with a reset: the first send
 * fails (-ECONNRESET) while sendfile waits for the file, and that error,
 * not a later send's -EPIPE, is what sendfile and wait_closed report. */
static intptr_t sendfile_reset_main(void *arg)
{
    (void)arg;
    int fd = uncached_file(g_sf_want, SF_FILE);
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    struct linger lg = {1, 0};
    CHECK_EQ(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(peer);
    CHECK_EQ(corio_sleep(10 * MS), 0); /* the reset has arrived */
    CHECK_EQ(corio_stream_write(s, "x", 1), 0); /* a send queued */
    ssize_t rc = corio_stream_sendfile(s, fd, 0, SF_FILE, SOON(5000));
    CHECK_EQ(rc, -ECONNRESET);
    CHECK_EQ(corio_stream_write(s, "y", 1), -ECONNRESET);
    corio_stream_close(s);
    CHECK_EQ(corio_stream_wait_closed(s, SOON(1000)), -ECONNRESET);
    corio_stream_free(s);
    close(fd);
    return 0;
}

/* Another task closes the stream while sendfile waits in its drain: the
 * file's rest must not pile up in a buffer nothing sends any more (it did,
 * then sendfile waited out its deadline in a drain nobody would wake). */
#define SF_BIG (4 << 20)

static corio_stream_t *g_sf_stream;

static intptr_t drain_then_close(void *arg)
{
    (void)arg;
    CHECK_EQ(corio_sleep(20 * MS), 0);
    CHECK_EQ(corio_stream_drain(g_sf_stream, SOON(5000)), 0);
    corio_stream_close(g_sf_stream);
    return 0;
}

static intptr_t slow_reader(void *arg)
{
    int peer = (int)(intptr_t)arg;
    static char buf[65536];
    while (corio_recv(peer, buf, sizeof buf, 0, SOON(5000)) > 0)
        CHECK_EQ(corio_sleep(MS), 0);
    return 0;
}

static intptr_t sendfile_closed_main(void *arg)
{
    (void)arg;
    char path[] = "/tmp/corio-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    static char data[SF_BIG];
    memset(data, 'x', sizeof data);
    CHECK_EQ(write(fd, data, sizeof data), (ssize_t)sizeof data); /* page-cached */
    int peer;
    corio_stream_options_t o = {.high_water = 65536, .low_water = 1};
    g_sf_stream = stream_pair(&peer, &o);
    int small = 4096;
    CHECK_EQ(setsockopt(corio_stream_fd(g_sf_stream), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    corio_task_t *r, *c;
    CHECK_EQ(corio_spawn(NULL, &r, slow_reader, (void *)(intptr_t)peer, NULL), 0);
    CHECK_EQ(corio_spawn(NULL, &c, drain_then_close, NULL, NULL), 0);
    int64_t t0 = corio_now();
    CHECK_EQ(corio_stream_sendfile(g_sf_stream, fd, 0, SF_BIG, SOON(5000)), -EPIPE);
    CHECK(corio_now() - t0 < 2000 * MS);
    CHECK_EQ(corio_task_await(c, NULL), 0);
    CHECK_EQ(corio_stream_wait_closed(g_sf_stream, SOON(5000)), 0);
    CHECK(corio_stream_write_buffered(g_sf_stream) <= 65536 + 65536);
    CHECK_EQ(corio_stream_drain(g_sf_stream, SOON(5000)), 0); /* closed: at once */
    CHECK_EQ(corio_task_await(r, NULL), 0);
    corio_task_release(r);
    corio_task_release(c);
    corio_stream_free(g_sf_stream);
    close(peer);
    close(fd);
    return 0;
}

/* write_eof after a send failed reports the failure, as write does. */
static intptr_t write_eof_after_error_main(void *arg)
{
    (void)arg;
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    struct linger lg = {1, 0};
    CHECK_EQ(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(peer);
    int rc = write_until_error(s);
    CHECK(rc < 0);
    CHECK_EQ(corio_stream_write_eof(s), rc);
    corio_stream_free(s);
    return 0;
}

static void sendfile_uncached(void)
{
    run(sendfile_main);
    run(sendfile_reset_main);
    run(sendfile_closed_main);
    run(write_eof_after_error_main);
}

/* ---- lengths past 4 GiB: never cut to 32 bits -------------------------------------- */

/* The kernel writes only what arrived, so a small buffer may claim to be
 * huge here; cut to 32 bits, 4 GiB would be a 0-byte receive: a false EOF. */
static intptr_t huge_len_main(void *arg)
{
    (void)arg;
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    char buf[64];
    const size_t huge = (size_t)1 << 32;
    peer_send(peer, "hello");
    CHECK_EQ(corio_recv(corio_stream_fd(s), buf, huge, 0, SOON(1000)), 5);
    peer_send(peer, "stream");
    CHECK_EQ(corio_stream_read(s, buf, huge, SOON(1000)), 6);
    CHECK(!corio_stream_at_eof(s));
    peer_send(peer, "0123456789");
    shutdown(peer, SHUT_WR);
    size_t partial = 0;
    CHECK_EQ(corio_stream_readexactly(s, buf, huge, &partial, SOON(1000)), CORIO_EINCOMPLETE);
    CHECK_EQ(partial, 10);
    CHECK(memcmp(buf, "0123456789", 10) == 0);
    CHECK_EQ(corio_stream_readexactly(s, buf, (size_t)SSIZE_MAX + 1, &partial, SOON(10)), -EINVAL);
    CHECK_EQ(corio_stream_read(s, buf, (size_t)-1, SOON(10)), -EINVAL);
    /* A write no buffer can hold fails at once, the stream intact. */
    CHECK_EQ(corio_stream_write(s, buf, 8), 0);
    CHECK_EQ(corio_stream_write(s, buf, SIZE_MAX - 4), -ENOMEM);
    CHECK_EQ(corio_stream_write(s, buf, SIZE_MAX / 2 + 1), -ENOMEM);
    CHECK_EQ(corio_stream_drain(s, SOON(1000)), 0);
    CHECK_EQ(corio_recv(peer, buf, sizeof buf, 0, SOON(1000)), 8);
    corio_stream_free(s);
    close(peer);
    return 0;
}

static void huge_lengths(void) { run(huge_len_main); }

/* ---- a loop closed with a freed stream's send still in flight --------------------------- */

static int g_bg_fd = -1, g_bg_peer = -1;
static int g_late_ran;

static void late_second(void *arg)
{
    (void)arg;
    g_late_ran = 1;
}

/* Runs in close's one turn; what it schedules is dropped, as asyncio's
 * close drops pending callbacks, even while sends are being finished. */
static void late_first(void *arg)
{
    CHECK_EQ(corio_loop_call_soon(arg, NULL, late_second, NULL), 0);
}

static intptr_t leave_send_in_flight(void *arg)
{
    (void)arg;
    corio_stream_t *s = stream_pair(&g_bg_peer, NULL);
    g_bg_fd = corio_stream_fd(s);
    static char big[32 << 20]; /* more than the socket buffers hold: the peer never reads */
    CHECK_EQ(corio_stream_write(s, big, sizeof big), 0);
    CHECK_EQ(corio_sleep(10 * MS), 0); /* the send is in the kernel */
    corio_stream_free(s); /* its memory and socket go when the send completes */
    CHECK_EQ(corio_loop_call_soon(corio_loop_current(), NULL, late_first, corio_loop_current()), 0);
    return 0;
}

/* Closing the loop completes (cancels) that send, so nothing leaks:
 * LeakSanitizer checks the memory, fcntl the descriptor. */
static void loop_close_finishes_sends(void)
{
    run(leave_send_in_flight);
    CHECK(g_bg_fd >= 0);
    CHECK(fcntl(g_bg_fd, F_GETFD) < 0 && errno == EBADF);
    CHECK_EQ(g_late_ran, 0);
    close(g_bg_peer);
}

/* A freed stream whose next send finds no SQE still goes: memory (checked
 * by LeakSanitizer) and descriptor. */
static intptr_t free_then_no_sqe(void *arg)
{
    (void)arg;
    int peer;
    corio_stream_t *s = stream_pair(&peer, NULL);
    int fd = corio_stream_fd(s);
    static char big[32 << 20]; /* loopback's socket buffers take about 8 MiB */
    CHECK_EQ(corio_stream_write(s, big, sizeof big), 0);
    CHECK_EQ(corio_sleep(10 * MS), 0); /* the socket buffers are full */
    corio_stream_free(s);
    corio__fault_set(CORIO_FAULT_SQE, 1); /* the send after the next completion */
    static char sink[1 << 16];
    bool gone = false;
    for (int i = 0; i < 2000 && !gone; i++) {
        while (recv(peer, sink, sizeof sink, MSG_DONTWAIT) > 0)
            ;
        CHECK_EQ(corio_sleep(MS), 0);
        gone = fcntl(fd, F_GETFD) < 0;
    }
    corio__fault_set(CORIO_FAULT_SQE, 0);
    CHECK(gone);
    close(peer);
    return 0;
}

static void freed_stream_without_sqe(void) { run(free_then_no_sqe); }

/* ---- writes keep their order ------------------------------------------------------------ */

#define ORDER_BIG 131073

static intptr_t collect_exact(void *arg)
{
    int peer = (int)(intptr_t)arg;
    static unsigned char got[ORDER_BIG + 200];
    size_t n = 0;
    for (;;) {
        ssize_t r = corio_recv(peer, got + n, sizeof got - n, 0, SOON(5000));
        CHECK(r >= 0);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    CHECK_EQ(n, ORDER_BIG + 144);
    for (size_t i = 0; i < n; i++)
        if (got[i] != (unsigned char)(i < ORDER_BIG ? i % 251 : i < ORDER_BIG + 72 ? 'A' : 'B')) {
            fprintf(stderr, "byte %zu is %#x\n", i, got[i]);
            CHECK(0);
        }
    return 0;
}

/* A send completes in part; before its stream resends the rest, a write
 * lands behind it (pend) and starts that resend; a write after that must
 * still queue behind the first, not join the resend ahead of it. */
static intptr_t order_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int small = 1; /* the kernel's minimum: every send completes in part */
    CHECK_EQ(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    CHECK_EQ(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    corio_stream_t *s;
    CHECK_EQ(corio_stream_new(sv[0], NULL, &s), 0);
    static unsigned char big[ORDER_BIG], a[72], b[72];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i % 251);
    memset(a, 'A', sizeof a);
    memset(b, 'B', sizeof b);
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, collect_exact, (void *)(intptr_t)sv[1], NULL), 0);
    CHECK_EQ(corio_stream_write(s, big, sizeof big), 0);
    CHECK_EQ(corio_sleep(0), 0); /* submitted; its first part completes */
    CHECK_EQ(corio_stream_write(s, a, sizeof a), 0);
    CHECK_EQ(corio_stream_write(s, b, sizeof b), 0);
    corio_stream_close(s);
    CHECK_EQ(corio_stream_wait_closed(s, SOON(5000)), 0);
    corio_stream_free(s);
    CHECK_EQ(corio_task_await(t, NULL), 0);
    corio_task_release(t);
    close(sv[1]);
    return 0;
}

static void writes_keep_order(void) { run(order_main); }

/* Streams freed after their loop closed (but before it is freed): what was
 * sent before the close arrived, the socket is closed, nothing leaks, and
 * a write is refused rather than touching the gone ring. */
static void free_after_loop_close(void)
{
    signal(SIGPIPE, SIG_IGN);
    for (int wrote = 0; wrote < 2; wrote++) {
        corio_loop_t *loop;
        CHECK_EQ(corio_loop_new(&loop, NULL), 0);
        int sv[2];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        corio_stream_t *s;
        CHECK_EQ(corio_stream_new(sv[0], NULL, &s), 0);
        if (wrote)
            CHECK_EQ(corio_stream_write(s, "abc", 3), 0);
        CHECK_EQ(corio_loop_close(loop), 0);
        CHECK_EQ(corio_stream_write(s, "x", 1), -EINVAL);
        corio_stream_close(s);
        corio_stream_abort(s);
        corio_stream_free(s);
        char buf[8];
        ssize_t n = read(sv[1], buf, sizeof buf);
        CHECK_EQ(n, wrote ? 3 : 0);
        if (wrote)
            CHECK_EQ(read(sv[1], buf, sizeof buf), 0); /* then the end */
        close(sv[1]);
        CHECK_EQ(corio_loop_free(loop), 0);
    }
}

/* ---- open_beneath: never outside the directory, never blocking the loop ---------------- */

static intptr_t open_beneath_main(void *arg)
{
    (void)arg;
    char dir[] = "/tmp/corio-beneath-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(dfd >= 0);
    int f = openat(dfd, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHECK(f >= 0);
    close(f);
    CHECK_EQ(symlinkat("/etc/passwd", dfd, "out"), 0);
    CHECK_EQ(mkfifoat(dfd, "fifo", 0600), 0);
    CHECK_EQ(corio_open_beneath(dfd, NULL, O_RDONLY, SOON(1000)), -EINVAL);
    CHECK_EQ(corio_open_beneath(dfd, "../etc/passwd", O_RDONLY, SOON(1000)), -EXDEV);
    CHECK_EQ(corio_open_beneath(dfd, "/etc/passwd", O_RDONLY, SOON(1000)), -EXDEV);
    CHECK_EQ(corio_open_beneath(dfd, "out", O_RDONLY, SOON(1000)), -EXDEV);
    CHECK_EQ(corio_open_beneath(dfd, "missing", O_RDONLY, SOON(1000)), -ENOENT);
    /* A regular file: the non-blocking open leaves no O_NONBLOCK behind
     * (the ring would fail its uncached reads with -EAGAIN). */
    int fd = corio_open_beneath(dfd, "file", O_RDONLY, SOON(1000));
    CHECK(fd >= 0);
    CHECK_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
    fd = corio_open_beneath(dfd, "file", O_WRONLY | O_APPEND | O_NONBLOCK, SOON(1000));
    CHECK(fd >= 0);
    CHECK_EQ(fcntl(fd, F_GETFL) & (O_NONBLOCK | O_APPEND), O_NONBLOCK | O_APPEND);
    close(fd);
    /* O_PATH handles: a directory to open beneath in turn, and a file. */
    CHECK_EQ(mkdirat(dfd, "sub", 0700), 0);
    int sub = corio_open_beneath(dfd, "sub", O_PATH | O_DIRECTORY, SOON(1000));
    CHECK(sub >= 0);
    CHECK_EQ(fcntl(sub, F_GETFL) & O_PATH, O_PATH);
    close(sub);
    fd = corio_open_beneath(dfd, "file", O_PATH, SOON(1000));
    CHECK(fd >= 0);
    close(fd);
    unlinkat(dfd, "sub", AT_REMOVEDIR);
    /* A FIFO with nobody at the other end opens at once for reading (it
     * used to block the loop's thread in the kernel until a writer came)
     * and fails for writing, as the ring's own open of it does. */
    int64_t t0 = corio_now();
    fd = corio_open_beneath(dfd, "fifo", O_RDONLY, SOON(1000));
    CHECK(fd >= 0);
    CHECK(corio_now() - t0 < 500 * MS);
    close(fd);
    CHECK_EQ(corio_open_beneath(dfd, "fifo", O_WRONLY, SOON(1000)), -ENXIO);
    CHECK_EQ(corio_open_beneath(dfd, "fifo", O_WRONLY | O_NONBLOCK, SOON(1000)), -ENXIO);
    unlinkat(dfd, "fifo", 0);
    unlinkat(dfd, "out", 0);
    unlinkat(dfd, "file", 0);
    close(dfd);
    CHECK_EQ(rmdir(dir), 0);
    return 0;
}

static void open_beneath(void) { run(open_beneath_main); }

TEST_MAIN(CASE(reading), CASE(cancel_mid_read), CASE_T(writing_flow_control, 60),
          CASE(server_graceful_close), CASE(closing),
          CASE(sendfile_uncached), CASE(huge_lengths),
          CASE(loop_close_finishes_sends), CASE(freed_stream_without_sqe),
          CASE(writes_keep_order), CASE(free_after_loop_close), CASE(open_beneath),
          CASE(server_close_timeout))
