/* A static file server over HTTP/1.1 with keep-alive.
 *
 *   http_server [-t SECONDS] DIR PORT [HOST]
 *
 * Serves the files below DIR on HOST (default 127.0.0.1) and PORT (0 picks
 * a free one), and prints the bound address. GET and HEAD; exact
 * Content-Length; 404 for what is missing; nothing outside DIR is served,
 * whether by `..`, percent-encoding or symbolic links, because every file is
 * opened with openat2(RESOLVE_BENEATH) below DIR: the kernel refuses the
 * escape (403). A malformed request gets 400 and headers over 8 KiB get
 * 431, and the connection is closed; the server goes on. A client silent
 * for -t seconds (default 15) is dropped: idle between requests, 408 in the
 * middle of one, or not reading a response. SIGINT or SIGTERM stops it
 * gracefully. */
#include <corio.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADER 8192
/* A response goes out in pieces of this size, each within the timeout: a
 * large file to a slow but live client is not cut. */
#define SEND_CHUNK (1 << 20)
/* Before closing a connection that the client may still be writing to,
 * what it sends is read and dropped for up to this long (and this much):
 * closing with unread bytes makes the kernel reset the connection, which
 * throws away the end of the last response. */
#define LINGER_NS (2 * CORIO_NS_PER_SEC)
#define LINGER_MAX (1 << 20)

typedef struct {
    const char *dir, *host;
    int port, dirfd, sigfd;
    int64_t timeout; /* ns a client may stay silent */
    corio_server_t *srv;
} app_t;

static app_t app = {.timeout = 15 * CORIO_NS_PER_SEC};

static int64_t soon(void) { return corio_now() + app.timeout; }

/* The Date header, formatted once a second. */
static char date_buf[64];
static time_t date_sec;

static const char *http_date(void)
{
    time_t now = time(NULL);
    if (now != date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date_buf, sizeof date_buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        date_sec = now;
    }
    return date_buf;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".txt", "text/plain; charset=utf-8"}, {".css", "text/css"},
        {".js", "text/javascript"},           {".json", "application/json"},
        {".png", "image/png"},                {".jpg", "image/jpeg"},
        {".gif", "image/gif"},                {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

typedef struct request {
    bool head, keep_alive, http11;
    int status; /* 0, or an error to answer */
    char path[4096];
} request_t;

/* HTTP/1.1 keeps the connection unless told; HTTP/1.0 closes it unless
 * told, and a 1.0 client that asked must see it was kept. */
static const char *connection_header(const request_t *rq)
{
    if (!rq->keep_alive)
        return "Connection: close\r\n";
    return rq->http11 ? "" : "Connection: keep-alive\r\n";
}

/* Waits until the client has taken the response, within the timeout; a
 * client that stopped reading is dropped with what it did not take. */
static int drain(corio_stream_t *s)
{
    int rc = corio_stream_drain(s, soon());
    if (rc == -ETIMEDOUT)
        corio_stream_abort(s);
    return rc;
}

/* An error response with a short body; HEAD gets the headers only. */
static int send_error(corio_stream_t *s, int status, const request_t *rq)
{
    char body[128], msg[512];
    int blen = snprintf(body, sizeof body, "%d %s\n", status, reason(status));
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %d %s\r\nServer: corio\r\nDate: %s\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                     "%s%s\r\n%s",
                     status, reason(status), http_date(), blen, connection_header(rq),
                     status == 405 ? "Allow: GET, HEAD\r\n" : "", rq->head ? "" : body);
    int rc = corio_stream_write(s, msg, (size_t)n);
    return rc < 0 ? rc : drain(s);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the path of a request target into out (a path relative to DIR).
 * Returns 0, or 400 for a bad target. */
static int decode_path(const char *t, size_t n, char *out, size_t cap)
{
    if (n == 0 || t[0] != '/')
        return 400;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (c == '?' || c == '#')
            break;
        if (c == '%') {
            int hi = i + 2 < n ? hexval(t[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(t[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 400;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == 0)
            return 400; /* raw or as %00: a NUL would cut the path short */
        if (o + 1 >= cap)
            return 414;
        out[o++] = c;
    }
    out[o] = 0;
    /* Leading slashes go: the path is looked up below DIR. What remains,
     * `..` included, is left to openat2, which refuses any escape. */
    size_t skip = strspn(out, "/");
    memmove(out, out + skip, o - skip + 1);
    if (!out[0])
        strcpy(out, ".");
    return 0;
}

/* Reads a Connection header's value, a comma-separated list of options:
 * "close" anywhere wins over "keep-alive". */
static void connection_options(const char *v, size_t n, bool *close, bool *keep)
{
    const char *end = v + n;
    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *te = comma ? comma : end;
        while (v < te && (*v == ' ' || *v == '\t'))
            v++;
        while (te > v && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        size_t len = (size_t)(te - v);
        if (len == 5 && strncasecmp(v, "close", 5) == 0)
            *close = true;
        else if (len == 10 && strncasecmp(v, "keep-alive", 10) == 0)
            *keep = true;
        v = comma ? comma + 1 : end;
    }
}

/* Parses the request head (request line and headers, CRLF CRLF included). */
static void parse(const char *p, size_t n, request_t *rq)
{
    memset(rq, 0, offsetof(request_t, path));
    rq->path[0] = 0;
    const char *end = p + n;
    const char *eol = memchr(p, '\n', n);
    if (!eol || eol == p || eol[-1] != '\r') {
        rq->status = 400;
        return;
    }
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1) {
        rq->status = 400;
        return;
    }
    size_t mlen = (size_t)(sp1 - p);
    const char *ver = sp2 + 1;
    size_t vlen = (size_t)(eol - 1 - ver);
    for (size_t i = 0; i < mlen; i++)
        if (p[i] < 'A' || p[i] > 'Z') {
            rq->status = 400;
            return;
        }
    if (vlen != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1')) {
        rq->status = vlen == 8 && memcmp(ver, "HTTP/", 5) == 0 ? 505 : 400;
        return;
    }
    bool http11 = ver[7] == '1';
    rq->http11 = http11;
    rq->head = mlen == 4 && memcmp(p, "HEAD", 4) == 0;
    bool get = mlen == 3 && memcmp(p, "GET", 3) == 0;
    for (const char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f) {
            rq->status = 400;
            return;
        }
    /* Headers: Name ":" value CRLF, until the empty line. */
    bool has_host = false, conn_close = false, conn_keep = false;
    const char *line = eol + 1;
    while (line < end) {
        const char *le = memchr(line, '\n', (size_t)(end - line));
        if (!le || le[-1] != '\r') {
            rq->status = 400;
            return;
        }
        if (le == line + 1)
            break; /* the empty line */
        const char *colon = memchr(line, ':', (size_t)(le - line));
        if (!colon || colon == line || line[0] == ' ' || line[0] == '\t') {
            rq->status = 400; /* no name, or obsolete line folding */
            return;
        }
        for (const char *q = line; q < colon; q++)
            if (*q <= ' ' || *q >= 0x7f) {
                rq->status = 400;
                return;
            }
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        const char *ve = le - 1;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);
        if (nlen == 4 && strncasecmp(line, "host", 4) == 0)
            has_host = true;
        else if (nlen == 10 && strncasecmp(line, "connection", 10) == 0)
            connection_options(v, vl, &conn_close, &conn_keep);
        else if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
            /* A GET or HEAD with a body is not served: nothing here reads it. */
            if (vl != 1 || v[0] != '0') {
                rq->status = vl == 0 ? 400 : 501;
                return;
            }
        } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            rq->status = 501;
            return;
        }
        line = le + 1;
    }
    rq->keep_alive = !conn_close && (http11 || conn_keep);
    if (http11 && !has_host) {
        rq->status = 400;
        return;
    }
    if (!get && !rq->head) {
        rq->status = 405;
        return;
    }
    rq->status = decode_path(sp1 + 1, (size_t)(sp2 - sp1 - 1), rq->path, sizeof rq->path);
}

/* Opens path below dirfd and stats it: the fd, or -errno. */
static int open_stat(int dirfd, const char *path, struct stat *st)
{
    int fd = corio_open_beneath(dirfd, path, O_RDONLY | O_NOCTTY, soon());
    if (fd >= 0 && fstat(fd, st) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Sends size bytes of fd, a piece at a time, each within the timeout. A
 * file that shrank cannot keep its promised length, and a client that
 * stopped reading is given up on: both abort the connection. */
static int send_body(corio_stream_t *s, int fd, off_t size)
{
    for (off_t off = 0; off < size;) {
        size_t n = size - off < SEND_CHUNK ? (size_t)(size - off) : SEND_CHUNK;
        ssize_t sent = corio_stream_sendfile(s, fd, off, n, soon());
        if (sent < 0) {
            if (sent == CORIO_EINCOMPLETE || sent == -ETIMEDOUT)
                corio_stream_abort(s);
            return (int)sent;
        }
        off += (off_t)n;
    }
    return 0;
}

static int serve_file(corio_stream_t *s, request_t *rq)
{
    const char *name = rq->path;
    struct stat st;
    int fd = open_stat(app.dirfd, rq->path, &st);
    if (fd >= 0 && S_ISDIR(st.st_mode)) {
        int idx = open_stat(fd, "index.html", &st);
        close(fd);
        fd = idx;
        name = "index.html";
    }
    if (fd == -ECANCELED || fd == -ETIMEDOUT)
        return fd;
    if (fd < 0) {
        int status = fd == -ENOENT || fd == -ENOTDIR || fd == -ENAMETOOLONG ? 404
                     : fd == -EXDEV || fd == -EACCES || fd == -ELOOP || fd == -EPERM ? 403
                                                                                      : 500;
        return send_error(s, status, rq);
    }
    if (!S_ISREG(st.st_mode)) { /* a FIFO or a device: never read from */
        close(fd);
        return send_error(s, 403, rq);
    }
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr,
                     "HTTP/1.1 200 OK\r\nServer: corio\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %lld\r\n%s\r\n",
                     http_date(), content_type(name), (long long)st.st_size,
                     connection_header(rq));
    int rc = corio_stream_write(s, hdr, (size_t)n);
    if (rc == 0 && !rq->head)
        rc = send_body(s, fd, st.st_size);
    else if (rc == 0)
        rc = drain(s);
    close(fd);
    return rc;
}

/* Reads a request head line by line into buf: 0 and *len, 400 for a line
 * without CRLF, 431 past MAX_HEADER, 408 for a head not complete within
 * the timeout, or a negative error (end of stream, or -ETIMEDOUT when the
 * client sent nothing at all). */
static int read_head(corio_stream_t *s, char *buf, size_t *len)
{
    size_t total = 0;
    int64_t deadline = soon();
    for (;;) {
        const char *line;
        size_t n;
        int rc = corio_stream_readline(s, &line, &n, deadline);
        if (rc == CORIO_ELIMITOVERRUN)
            return 431;
        if (rc == -ETIMEDOUT && (total > 0 || corio_stream_read_buffered(s) > 0))
            return 408;
        if (rc < 0)
            return rc;
        if (n == 0 || line[n - 1] != '\n')
            return -EPIPE; /* the stream ended, maybe mid-request */
        if (n < 2 || line[n - 2] != '\r')
            return 400; /* a bare LF */
        if (total == 0 && n == 2)
            continue; /* empty lines before a request are ignored (RFC 9112) */
        if (total + n > MAX_HEADER)
            return 431;
        memcpy(buf + total, line, n);
        total += n;
        if (n == 2) {
            *len = total;
            return 0;
        }
    }
}

/* The server closes this connection with the client maybe still sending:
 * end our side once the response is out, then drop what arrives until the
 * client closes too (or the linger time or size runs out). */
static void linger_close(corio_stream_t *s)
{
    if (corio_stream_write_eof(s) < 0)
        return;
    int64_t until = corio_now() + LINGER_NS;
    static char sink[16384]; /* shared: what lands here is never looked at */
    for (size_t total = 0; total < LINGER_MAX;) {
        ssize_t n = corio_stream_read(s, sink, sizeof sink, until);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
}

static intptr_t handle(corio_stream_t *s, void *arg)
{
    (void)arg;
    request_t *rq = malloc(sizeof *rq);
    char *head = malloc(MAX_HEADER);
    for (;;) {
        if (!rq || !head)
            break;
        size_t len = 0;
        int rc = read_head(s, head, &len);
        if (rc < 0)
            break; /* end of stream, a reset, an idle client, cancelled */
        if (rc > 0) {
            *rq = (request_t){.status = rc};
            if (send_error(s, rc, rq) == 0)
                linger_close(s);
            break;
        }
        parse(head, len, rq);
        if (rq->status) {
            bool fatal = rq->status == 400 || rq->status == 501 || rq->status == 505;
            if (fatal)
                rq->keep_alive = false;
            rc = send_error(s, rq->status, rq);
        } else {
            rc = serve_file(s, rq);
        }
        if (rc < 0)
            break;
        if (!rq->keep_alive) {
            linger_close(s);
            break;
        }
    }
    free(head);
    free(rq);
    return 0;
}

static intptr_t main_task(void *arg)
{
    (void)arg;
    /* A client that stops taking a response is cut off after the timeout,
     * also once the handler has left the rest to the server. */
    corio_server_options_t opts = {.stream = {.limit = MAX_HEADER},
                                   .close_timeout_ns = app.timeout};
    int rc = corio_start_server(app.host, app.port, handle, NULL, &opts, &app.srv);
    if (rc < 0) {
        fprintf(stderr, "http_server: cannot listen on %s port %d: %s\n", app.host, app.port,
                corio_strerror(rc));
        return rc;
    }
    corio_sockaddr_t a;
    char name[128];
    corio_server_sockname(app.srv, &a);
    printf("http_server: serving %s on http://%s/\n", app.dir,
           corio_sockaddr_str(&a, name, sizeof name));
    fflush(stdout);
    struct signalfd_siginfo si = {0};
    while (read(app.sigfd, &si, sizeof si) != (ssize_t)sizeof si)
        if (corio_sleep(100 * CORIO_NS_PER_MS) < 0)
            break;
    corio_server_close(app.srv);
    corio_server_wait_closed(app.srv, corio_now() + CORIO_NS_PER_SEC);
    corio_server_stats_t st;
    corio_server_stats(app.srv, &st);
    printf("http_server: signal %u, closed after %llu connections\n", si.ssi_signo,
           (unsigned long long)st.accepted);
    corio_server_free(app.srv);
    return 0;
}

int main(int argc, char **argv)
{
    const char *prog = argv[0];
    int opt;
    while ((opt = getopt(argc, argv, "t:")) != -1) {
        char *end;
        double sec = opt == 't' ? strtod(optarg, &end) : 0;
        if (opt != 't' || *end || !(sec > 0 && sec < 1e6)) {
            fprintf(stderr, "usage: %s [-t SECONDS] DIR PORT [HOST]\n", prog);
            return 2;
        }
        app.timeout = (int64_t)(sec * CORIO_NS_PER_SEC);
    }
    argc -= optind - 1;
    argv += optind - 1;
    if (argc < 3) {
        fprintf(stderr, "usage: %s [-t SECONDS] DIR PORT [HOST]\n", prog);
        return 2;
    }
    char *end;
    long port = strtol(argv[2], &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "http_server: bad port '%s'\n", argv[2]);
        return 2;
    }
    app.dir = argv[1];
    app.port = (int)port;
    app.host = argc > 3 ? argv[3] : "127.0.0.1";
    app.dirfd = open(app.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (app.dirfd < 0) {
        fprintf(stderr, "http_server: %s: %s\n", app.dir, strerror(errno));
        return 1;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    app.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (app.sigfd < 0) {
        perror("signalfd");
        return 1;
    }
    intptr_t rc = corio_run(main_task, NULL);
    close(app.sigfd);
    close(app.dirfd);
    return rc < 0 ? 1 : 0;
}
