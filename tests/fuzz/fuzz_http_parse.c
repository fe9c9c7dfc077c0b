/* Fuzz target: the HTTP/1.1 request handling of examples/http_server.c
 * (read_head, parse, decode_path, and the responses handle() makes of
 * them), against a reference model written here from the contracts in
 * that file's comments.
 *
 * Byte 0 of the input picks a mode (b & 3):
 *   0  decode_path on the rest, into a buffer of a size byte 1 picks;
 *   1  parse on the rest (any bytes, not only a head read_head made);
 *   2  the rest is sent over a Unix socketpair in chunks (byte 1 seeds
 *      their sizes, byte 2 picks the largest) to a task calling read_head
 *      and parse in a loop; each result is checked against the model;
 *   3  the same bytes go to handle() itself, serving a small directory
 *      made in LLVMFuzzerInitialize; the client reads every response and
 *      checks status line, Content-Length, Connection: close, Allow and
 *      the body against what the model expects for each request, and that
 *      the connection ends where it should.
 * Any difference aborts. */
#define main http_server_main
#include "../../examples/http_server.c"
#undef main

#include <linux/sockios.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define OP_TIMEOUT (20 * CORIO_NS_PER_SEC)
#define REF_EOF (-1)

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_http_parse: " __VA_ARGS__);                                          \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- the reference model ------------------------------------------------------ */

/* decode_path: the target's path (up to '?' or '#'), percent-decoded (a
 * '%' needs two hex digits; a NUL, raw or as %00, is refused), leading slashes dropped, "."
 * for nothing; 414 when it does not fit in cap with its NUL. The first
 * problem met, left to right, decides: a bad escape at output position o
 * is a 400 as long as o < cap, the output reaching cap a 414. */
static int ref_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* only A-F become a-f */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int ref_decode(const unsigned char *t, size_t n, char *out, size_t cap)
{
    if (n == 0 || t[0] != '/')
        return 400;
    size_t end = 0;
    while (end < n && t[end] != '?' && t[end] != '#')
        end++;
    char *tmp = malloc(end + 1);
    if (!tmp)
        abort();
    size_t o = 0;
    int status = 0;
    for (size_t i = 0; i < end; i++) {
        unsigned char c = t[i];
        if (c == '%') {
            int hi = i + 1 < end ? ref_hex(t[i + 1]) : -1;
            int lo = i + 2 < end ? ref_hex(t[i + 2]) : -1;
            if (hi < 0 || lo < 0 || hi * 16 + lo == 0) {
                status = 400;
                break;
            }
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == 0) {
            status = 400;
            break;
        }
        tmp[o++] = (char)c;
    }
    if (status == 400 && o < cap)
        ; /* the bad escape comes first */
    else if (o >= cap)
        status = 414;
    if (status == 0) {
        size_t skip = 0;
        while (skip < o && tmp[skip] == '/')
            skip++;
        if (skip == o)
            strcpy(out, ".");
        else {
            memcpy(out, tmp + skip, o - skip);
            out[o - skip] = 0;
        }
    }
    free(tmp);
    return status;
}

typedef struct {
    int status;
    bool head, keep, v11;
    char path[4096];
} ref_rq_t;

static bool span_is(const unsigned char *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static bool span_is_nocase(const unsigned char *p, size_t n, const char *s)
{
    return n == strlen(s) && strncasecmp((const char *)p, s, n) == 0;
}

static const unsigned char *find_byte(const unsigned char *p, size_t n, unsigned char c)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == c)
            return p + i;
    return NULL;
}

/* parse: request line "METHOD SP target SP HTTP/1.x CRLF" (method in
 * A-Z, target without controls or spaces); headers "name: value CRLF"
 * (name without controls, spaces or non-ASCII, no folding) up to the empty
 * line; 505 for another HTTP version, 400 for anything malformed, 501 for
 * a body (Content-Length other than 0, any Transfer-Encoding), 400 for
 * HTTP/1.1 without Host, 405 for a method other than GET or HEAD, then
 * decode_path's answer. Keep-alive: HTTP/1.1's default; the Connection
 * headers are lists of options (split at commas, blanks trimmed, any case):
 * "close" in any of them closes, else "keep-alive" keeps HTTP/1.0's. */
static void ref_parse(const unsigned char *p, size_t n, ref_rq_t *r)
{
    memset(r, 0, sizeof *r);
    r->status = 400;
    const unsigned char *lf = find_byte(p, n, '\n');
    if (!lf || lf == p || lf[-1] != '\r')
        return;
    size_t rl = (size_t)(lf - 1 - p); /* the request line without CRLF */
    const unsigned char *sp1 = find_byte(p, rl, ' ');
    if (!sp1 || sp1 == p)
        return;
    const unsigned char *tgt = sp1 + 1;
    const unsigned char *sp2 = find_byte(tgt, rl - (size_t)(tgt - p), ' ');
    if (!sp2 || sp2 == tgt)
        return;
    size_t mlen = (size_t)(sp1 - p), tlen = (size_t)(sp2 - tgt);
    const unsigned char *ver = sp2 + 1;
    size_t vlen = rl - (size_t)(ver - p);
    for (size_t i = 0; i < mlen; i++)
        if (!(p[i] >= 'A' && p[i] <= 'Z'))
            return;
    bool v11 = span_is(ver, vlen, "HTTP/1.1");
    if (!v11 && !span_is(ver, vlen, "HTTP/1.0")) {
        r->status = vlen == 8 && memcmp(ver, "HTTP/", 5) == 0 ? 505 : 400;
        return;
    }
    r->v11 = v11;
    bool opt_close = false, opt_keep = false;
    r->head = span_is(p, mlen, "HEAD");
    bool get = span_is(p, mlen, "GET");
    for (size_t i = 0; i < tlen; i++)
        if (tgt[i] <= ' ' || tgt[i] == 0x7f)
            return;
    bool host = false;
    size_t at = (size_t)(lf + 1 - p);
    while (at < n) {
        const unsigned char *le = find_byte(p + at, n - at, '\n');
        if (!le)
            return;
        size_t ll = (size_t)(le - (p + at)); /* the line without its LF */
        if (ll == 0 || le[-1] != '\r')
            return;
        const unsigned char *line = p + at;
        ll--; /* and without its CR */
        at += ll + 2;
        if (ll == 0)
            break;
        if (line[0] == ' ' || line[0] == '\t')
            return;
        const unsigned char *colon = find_byte(line, ll, ':');
        if (!colon || colon == line)
            return;
        size_t nl = (size_t)(colon - line);
        for (size_t i = 0; i < nl; i++)
            if (line[i] <= ' ' || line[i] >= 0x7f)
                return;
        size_t vs = nl + 1, ve = ll;
        while (vs < ve && (line[vs] == ' ' || line[vs] == '\t'))
            vs++;
        while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
            ve--;
        const unsigned char *v = line + vs;
        size_t vl = ve - vs;
        if (span_is_nocase(line, nl, "host")) {
            host = true;
        } else if (span_is_nocase(line, nl, "connection")) {
            for (size_t a = 0; a <= vl;) {
                size_t b = a;
                while (b < vl && v[b] != ',')
                    b++;
                size_t x = a, y = b;
                while (x < y && (v[x] == ' ' || v[x] == '\t'))
                    x++;
                while (y > x && (v[y - 1] == ' ' || v[y - 1] == '\t'))
                    y--;
                opt_close |= span_is_nocase(v + x, y - x, "close");
                opt_keep |= span_is_nocase(v + x, y - x, "keep-alive");
                a = b + 1;
            }
        } else if (span_is_nocase(line, nl, "content-length")) {
            if (!span_is(v, vl, "0")) {
                r->status = vl == 0 ? 400 : 501;
                return;
            }
        } else if (span_is_nocase(line, nl, "transfer-encoding")) {
            r->status = 501;
            return;
        }
    }
    r->keep = !opt_close && (v11 || opt_keep);
    if (v11 && !host)
        return;
    if (!get && !r->head) {
        r->status = 405;
        return;
    }
    r->status = ref_decode(tgt, tlen, r->path, sizeof r->path);
}

/* read_head over the whole client input from *pos: lines through readline
 * (limit MAX_HEADER: a separator starting past it, or MAX_HEADER + 1 bytes
 * without one, is an overrun: 431); a line not ending in CRLF is a 400;
 * empty lines before the request are skipped; the head (from the request
 * line to the empty line) must fit in MAX_HEADER (431). Returns 0 with the
 * head's span, 400, 431, or REF_EOF when the input ends first. */
static int ref_read_head(const unsigned char *in, size_t n, size_t *pos, size_t *hs, size_t *hl)
{
    size_t total = 0, start = 0;
    for (;;) {
        size_t rem = n - *pos;
        const unsigned char *lf = find_byte(in + *pos, rem, '\n');
        if (!lf)
            return rem >= MAX_HEADER + 1 ? 431 : REF_EOF;
        size_t len = (size_t)(lf - (in + *pos)) + 1;
        if (len - 1 > MAX_HEADER)
            return 431;
        *pos += len;
        if (len < 2 || lf[-1] != '\r')
            return 400;
        if (total == 0 && len == 2)
            continue;
        if (total == 0)
            start = *pos - len;
        if (total + len > MAX_HEADER)
            return 431;
        total += len;
        if (len == 2) {
            *hs = start;
            *hl = total;
            return 0;
        }
    }
}

/* The served directory, as the model sees it. */
typedef struct {
    const char *name;
    int parent;
    bool dir;
    const char *content;
} node_t;

static const node_t tree[] = {
    {"", 0, true, NULL},
    {"index.html", 0, false, "<p>root</p>\n"},
    {"a.txt", 0, false, "hello\n"},
    {"empty.txt", 0, false, ""},
    {"sub", 0, true, NULL},
    {"b.css", 4, false, "b{}\n"},
    {"d", 0, true, NULL},
    {"index.html", 6, false, "<p>d</p>\n"},
};
#define NNODES (int)(sizeof tree / sizeof tree[0])

static int child(int dir, const char *name, size_t len)
{
    for (int i = 1; i < NNODES; i++)
        if (tree[i].parent == dir && strlen(tree[i].name) == len &&
            memcmp(tree[i].name, name, len) == 0)
            return i;
    return -1;
}

/* serve_file's answer for path: openat2 below the directory walks the
 * components in order ("." and empty ones stay, ".." at the top is the
 * escape: 403; a missing name, a name over 255 bytes or anything after a
 * file: 404); a directory serves its index.html (404 without one). */
static int ref_walk(const char *path, const char **body)
{
    int cur = 0;
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (!tree[cur].dir)
            return 404;
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* stays */
        } else if (len > 255) {
            return 404;
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (cur == 0)
                return 403;
            cur = tree[cur].parent;
        } else if ((cur = child(cur, p, len)) < 0) {
            return 404;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    if (tree[cur].dir && (cur = child(cur, "index.html", 10)) < 0)
        return 404;
    *body = tree[cur].content;
    return 200;
}

/* ---- the served directory ------------------------------------------------------ */

static char tmpdir[64];

static void write_file(const char rel[32], const char *content)
{
    char path[sizeof tmpdir + 64];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(content, fp) < 0 || fclose(fp) != 0)
        abort();
}

static void remove_tmpdir(void)
{
    static const char *const files[] = {"index.html", "a.txt", "empty.txt", "sub/b.css",
                                        "d/index.html", "sub", "d", ""};
    char path[sizeof tmpdir + 64];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        remove(path);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/corio-fuzz-XXXXXX",
             base && strlen(base) < 40 ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        abort();
    char path[sizeof tmpdir + 64];
    snprintf(path, sizeof path, "%s/sub", tmpdir);
    if (mkdir(path, 0755) < 0)
        abort();
    snprintf(path, sizeof path, "%s/d", tmpdir);
    if (mkdir(path, 0755) < 0)
        abort();
    for (int i = 1; i < NNODES; i++) {
        if (tree[i].dir)
            continue;
        char rel[32];
        snprintf(rel, sizeof rel, "%s%s%s", tree[i].parent ? tree[tree[i].parent].name : "",
                 tree[i].parent ? "/" : "", tree[i].name);
        write_file(rel, tree[i].content);
    }
    atexit(remove_tmpdir);
    app.dirfd = open(tmpdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (app.dirfd < 0)
        abort();
    return 0;
}

/* ---- modes 0 and 1: the functions alone ---------------------------------------------- */

static void fuzz_decode(const uint8_t *d, size_t n)
{
    static const size_t caps[] = {4096, 1, 2, 3, 4, 8, 16, 64};
    size_t cap = n ? caps[d[0] & 7] : 4096;
    if (n) {
        d++;
        n--;
    }
    char *t = malloc(n ? n : 1), *out = malloc(cap), *want = malloc(cap > 2 ? cap : 2);
    if (!t || !out || !want)
        abort();
    memcpy(t, d, n);
    int rc = decode_path(t, n, out, cap);
    int ref = ref_decode((const unsigned char *)t, n, want, cap);
    if (rc != ref)
        FAIL("decode_path = %d, want %d", rc, ref);
    if (rc == 0 && strcmp(out, want) != 0)
        FAIL("decode_path gives \"%s\", want \"%s\"", out, want);
    free(t);
    free(out);
    free(want);
}

static void compare_parse(const request_t *rq, const ref_rq_t *ref)
{
    if (rq->status != ref->status || rq->head != ref->head || rq->keep_alive != ref->keep)
        FAIL("parse: status %d head %d keep-alive %d; want %d %d %d", rq->status, rq->head,
             rq->keep_alive, ref->status, ref->head, ref->keep);
    if (rq->status == 0 && strcmp(rq->path, ref->path) != 0)
        FAIL("parse: path \"%s\", want \"%s\"", rq->path, ref->path);
}

static void fuzz_parse(const uint8_t *d, size_t n)
{
    char *p = malloc(n ? n : 1);
    request_t *rq = malloc(sizeof *rq);
    ref_rq_t *ref = malloc(sizeof *ref);
    if (!p || !rq || !ref)
        abort();
    memcpy(p, d, n);
    parse(p, n, rq);
    ref_parse((const unsigned char *)p, n, ref);
    compare_parse(rq, ref);
    free(p);
    free(rq);
    free(ref);
}

/* ---- modes 2 and 3: over a connection ------------------------------------------------- */

typedef struct {
    int status;
    bool head, keep, v11;
    const char *body; /* NULL: the error body */
} expect_t;

typedef struct {
    const unsigned char *in;
    size_t n;
    uint32_t seed;
    size_t max_chunk;
    bool full; /* mode 3 */
    int fds[2]; /* the server's end, the client's */
    corio_stream_t *s;
    bool server_done;
    unsigned char *resp;
    size_t resp_len, resp_cap;
} conn_t;

static uint32_t next_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static int queued(int fd)
{
    int q = 0;
    return ioctl(fd, SIOCINQ, &q) < 0 ? 0 : q;
}

/* The client sends the input in chunks, each once the server has taken
 * the one before from the socket, then ends its side. */
static intptr_t client_writer(void *arg)
{
    conn_t *c = arg;
    uint32_t x = c->seed | 1;
    size_t off = 0;
    while (off < c->n && !c->server_done) {
        size_t k = 1 + next_rand(&x) % c->max_chunk;
        if (k > c->n - off)
            k = c->n - off;
        if (corio_send(c->fds[1], c->in + off, k, corio_now() + OP_TIMEOUT, NULL) < 0)
            break; /* the server closed */
        off += k;
        while (!c->server_done && queued(c->fds[0]) > 0)
            if (corio_sleep(0) < 0)
                break;
    }
    shutdown(c->fds[1], SHUT_WR);
    return 0;
}

static intptr_t client_reader(void *arg)
{
    conn_t *c = arg;
    for (;;) {
        if (c->resp_cap - c->resp_len < 4096) {
            c->resp_cap = c->resp_cap ? c->resp_cap * 2 : 16384;
            c->resp = realloc(c->resp, c->resp_cap);
            if (!c->resp)
                abort();
        }
        ssize_t r = corio_recv(c->fds[1], c->resp + c->resp_len, c->resp_cap - c->resp_len, 0,
                               corio_now() + OP_TIMEOUT);
        /* A reset after the responses: the server closed with bytes of
         * ours unread (after an error, or Connection: close). */
        if (r == 0 || r == -ECONNRESET)
            return 0;
        if (r < 0)
            FAIL("client recv: %s", corio_strerror((int)r));
        c->resp_len += (size_t)r;
    }
}

/* Mode 2: read_head and parse, request after request. */
static void heads_loop(conn_t *c)
{
    char *head = malloc(MAX_HEADER);
    request_t *rq = malloc(sizeof *rq);
    ref_rq_t *ref = malloc(sizeof *ref);
    if (!head || !rq || !ref)
        abort();
    size_t pos = 0;
    for (;;) {
        size_t len = 0, hs = 0, hl = 0;
        int rc = read_head(c->s, head, &len);
        int want = ref_read_head(c->in, c->n, &pos, &hs, &hl);
        if (want == REF_EOF) {
            if (rc != -EPIPE)
                FAIL("read_head = %d, want -EPIPE (end of stream)", rc);
            break;
        }
        if (rc != want)
            FAIL("read_head = %d, want %d", rc, want);
        if (rc)
            break;
        if (len != hl || memcmp(head, c->in + hs, hl) != 0)
            FAIL("read_head: a head of %zu bytes, want %zu from offset %zu", len, hl, hs);
        parse(head, len, rq);
        ref_parse((const unsigned char *)head, len, ref);
        compare_parse(rq, ref);
    }
    free(head);
    free(rq);
    free(ref);
}

static intptr_t server_task(void *arg)
{
    conn_t *c = arg;
    if (c->full)
        handle(c->s, NULL);
    else
        heads_loop(c);
    c->server_done = true;
    corio_stream_close(c->s);
    int rc = corio_stream_wait_closed(c->s, corio_now() + OP_TIMEOUT);
    if (rc < 0 && rc != -EPIPE)
        FAIL("wait_closed: %s", corio_strerror(rc));
    corio_stream_free(c->s);
    c->s = NULL;
    return 0;
}

static intptr_t conn_main(void *arg)
{
    conn_t *c = arg;
    corio_stream_options_t opts = {.limit = MAX_HEADER}; /* as main_task's server */
    if (corio_stream_new(c->fds[0], &opts, &c->s) < 0)
        abort();
    corio_task_t *t[3];
    int nt = 0;
    if (corio_spawn(NULL, &t[nt++], server_task, c, NULL) < 0 ||
        corio_spawn(NULL, &t[nt++], client_writer, c, NULL) < 0 ||
        (c->full && corio_spawn(NULL, &t[nt++], client_reader, c, NULL) < 0))
        abort();
    for (int i = 0; i < nt; i++) {
        if (corio_task_await(t[i], NULL) < 0)
            FAIL("task %d failed", i);
        corio_task_release(t[i]);
    }
    return 0;
}

/* What handle() must answer to the whole input, in order. */
static size_t expected(const conn_t *c, expect_t **out)
{
    size_t n = 0, cap = 16, pos = 0;
    expect_t *e = malloc(cap * sizeof *e);
    ref_rq_t *ref = malloc(sizeof *ref);
    if (!e || !ref)
        abort();
    for (;;) {
        if (n == cap && !(e = realloc(e, (cap *= 2) * sizeof *e)))
            abort();
        size_t hs = 0, hl = 0;
        int rc = ref_read_head(c->in, c->n, &pos, &hs, &hl);
        if (rc == REF_EOF)
            break;
        if (rc) {
            e[n++] = (expect_t){rc, false, false, false, NULL};
            break;
        }
        ref_parse(c->in + hs, hl, ref);
        expect_t x = {ref->status, ref->head, ref->keep, ref->v11, NULL};
        if (x.status == 400 || x.status == 501 || x.status == 505)
            x.keep = false;
        if (x.status == 0)
            x.status = ref_walk(ref->path, &x.body);
        e[n++] = x;
        if (!x.keep)
            break;
    }
    free(ref);
    *out = e;
    return n;
}

static const unsigned char *find_crlf2(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return p + i;
    return NULL;
}

static void check_responses(const conn_t *c)
{
    expect_t *e;
    size_t ne = expected(c, &e);
    const unsigned char *r = c->resp;
    size_t rp = 0;
    for (size_t i = 0; i < ne; i++) {
        const unsigned char *end = find_crlf2(r + rp, c->resp_len - rp);
        if (!end)
            FAIL("response %zu of %zu missing (status %d expected)", i + 1, ne, e[i].status);
        char line[128], body[128];
        int ll = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", e[i].status,
                          reason(e[i].status));
        if (memcmp(r + rp, line, (size_t)ll) != 0)
            FAIL("response %zu: \"%.12s\", want status %d", i + 1, (const char *)r + rp,
                 e[i].status);
        long clen = -1;
        bool close_hdr = false, keep_hdr = false, allow = false;
        for (const unsigned char *h = r + rp + ll; h < end + 2;) {
            const unsigned char *he = find_byte(h, (size_t)(end + 2 - h), '\n');
            size_t hn = (size_t)(he - h) - 1;
            char tmp[128];
            snprintf(tmp, sizeof tmp, "%.*s", (int)hn, (const char *)h);
            if (strncmp(tmp, "Content-Length: ", 16) == 0)
                clen = strtol(tmp + 16, NULL, 10);
            close_hdr |= strcmp(tmp, "Connection: close") == 0;
            keep_hdr |= strcmp(tmp, "Connection: keep-alive") == 0;
            allow |= strcmp(tmp, "Allow: GET, HEAD") == 0;
            h = he + 1;
        }
        const char *want_body = e[i].body;
        if (!want_body) {
            snprintf(body, sizeof body, "%d %s\n", e[i].status, reason(e[i].status));
            want_body = body;
        }
        size_t blen = strlen(want_body);
        if (clen != (long)blen)
            FAIL("response %zu (%d): Content-Length %ld, want %zu", i + 1, e[i].status, clen,
                 blen);
        if (close_hdr == e[i].keep)
            FAIL("response %zu (%d): Connection: close %s", i + 1, e[i].status,
                 close_hdr ? "present, keep-alive expected" : "missing");
        if (keep_hdr != (e[i].keep && !e[i].v11))
            FAIL("response %zu (%d): Connection: keep-alive %s", i + 1, e[i].status,
                 keep_hdr ? "present, only for a kept HTTP/1.0 connection" : "missing");
        if (allow != (e[i].status == 405))
            FAIL("response %zu (%d): Allow header %s", i + 1, e[i].status,
                 allow ? "present" : "missing");
        rp = (size_t)(end + 4 - r);
        if (!e[i].head) {
            if (c->resp_len - rp < blen || memcmp(r + rp, want_body, blen) != 0)
                FAIL("response %zu (%d): wrong body", i + 1, e[i].status);
            rp += blen;
        }
    }
    if (rp != c->resp_len)
        FAIL("%zu bytes after the %zu expected responses: \"%.40s\"", c->resp_len - rp, ne,
             (const char *)r + rp);
    free(e);
}

static void fuzz_conn(const uint8_t *d, size_t n, bool full)
{
    static const size_t maxes[] = {1, 2, 3, 7, 16, 64, 512, 1 << 20};
    conn_t c = {.full = full};
    c.seed = n > 0 ? d[0] * 2654435761u : 1;
    c.max_chunk = n > 1 ? maxes[d[1] & 7] : 1;
    size_t skip = n < 2 ? n : 2;
    unsigned char *in = malloc(n - skip + 1);
    if (!in)
        abort();
    memcpy(in, d + skip, n - skip);
    c.in = in;
    c.n = n - skip;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c.fds) < 0)
        abort();
    intptr_t rc = corio_run(conn_main, &c);
    if (rc != 0)
        FAIL("main returned %ld (%s)", (long)rc, corio_strerror((int)rc));
    close(c.fds[1]);
    if (full)
        check_responses(&c);
    free(c.resp);
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] & 3) {
    case 0: fuzz_decode(data + 1, size - 1); break;
    case 1: fuzz_parse(data + 1, size - 1); break;
    case 2: fuzz_conn(data + 1, size - 1, false); break;
    default: fuzz_conn(data + 1, size - 1, true); break;
    }
    return 0;
}
