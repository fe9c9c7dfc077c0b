/* Drives examples/http_server (its path in $HTTP_SERVER) with curl and with
 * raw requests: exact bodies and Content-Length, 404, HEAD, keep-alive,
 * `..`, percent-encoded and symbolic-link escapes, 400 and 431 on bad
 * requests while the server stays up, and a graceful stop. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_root[256], g_dir[300];
static int g_port;
static pid_t g_pid;
static int g_out;

static void write_file(const char *name, const void *data, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK_EQ(fwrite(data, 1, n, f), n);
    fclose(f);
}

static const char *g_timeout; /* -t for the server, or NULL */

static void setup(void)
{
    if (!getenv("HTTP_SERVER")) {
        fprintf(stderr, "# HTTP_SERVER is not set\n");
        exit(77);
    }
    if (system("curl --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "# curl is not installed\n");
        exit(77);
    }
    snprintf(g_root, sizeof g_root, "/tmp/corio-http-%d", getpid());
    snprintf(g_dir, sizeof g_dir, "%s/www", g_root);
    mkdir(g_root, 0755);
    CHECK_EQ(mkdir(g_dir, 0755), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/sub", g_dir);
    CHECK_EQ(mkdir(path, 0755), 0);
    write_file("index.html", "<h1>corio</h1>\n", 15);
    write_file("hello.txt", "hello, world\n", 13);
    write_file("empty.txt", "", 0);
    static unsigned char big[3 << 20];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 17 + (i >> 10));
    write_file("big.bin", big, sizeof big);
    write_file("a b.txt", "space\n", 6);
    /* Outside DIR: a secret, and links that point at it. */
    snprintf(path, sizeof path, "%s/secret.txt", g_root);
    FILE *f = fopen(path, "w");
    fputs("TOP SECRET\n", f);
    fclose(f);
    char link[512];
    snprintf(link, sizeof link, "%s/escape", g_dir);
    CHECK_EQ(symlink(path, link), 0);
    snprintf(link, sizeof link, "%s/escape_rel", g_dir);
    CHECK_EQ(symlink("../secret.txt", link), 0);
    snprintf(link, sizeof link, "%s/sub/up", g_dir);
    CHECK_EQ(symlink("..", link), 0);
    snprintf(link, sizeof link, "%s/inner", g_dir);
    CHECK_EQ(symlink("hello.txt", link), 0);
    snprintf(path, sizeof path, "%s/fifo", g_dir);
    CHECK_EQ(mkfifo(path, 0644), 0);

    int p[2];
    CHECK_EQ(pipe(p), 0);
    g_pid = fork();
    CHECK(g_pid >= 0);
    if (g_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed case */
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        const char *exe = getenv("HTTP_SERVER");
        if (g_timeout)
            execl(exe, exe, "-t", g_timeout, g_dir, "0", (char *)NULL);
        else
            execl(exe, exe, g_dir, "0", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    g_out = p[0];
    char line[512];
    struct pollfd pf = {g_out, POLLIN, 0};
    CHECK(poll(&pf, 1, 5000) == 1);
    ssize_t n = read(g_out, line, sizeof line - 1);
    CHECK(n > 0);
    line[n] = 0;
    char *port = strstr(line, "127.0.0.1:");
    CHECK(port);
    g_port = atoi(port + 10);
    CHECK(g_port > 0);
}

static void teardown(void)
{
    kill(g_pid, SIGTERM);
    int status;
    CHECK_EQ(waitpid(g_pid, &status, 0), g_pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    CHECK_EQ(system(cmd), 0);
}

/* Runs curl (never through a proxy) and returns its -w output. */
static char *curl(const char *args)
{
    static char out[4096];
    char cmd[2048];
    int len = snprintf(cmd, sizeof cmd,
                       "curl --noproxy '*' -sS --max-time 10 --path-as-is %s 2>&1",
                       args);
    CHECK(len > 0 && (size_t)len < sizeof cmd);
    FILE *f = popen(cmd, "r");
    CHECK(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    pclose(f);
    return out;
}

static void url(char *buf, size_t cap, const char *path)
{
    snprintf(buf, cap, "'http://127.0.0.1:%d%s'", g_port, path);
}

/* The status of GET path, the body saved to body_file (if not NULL). */
static int get_status(const char *path, const char *body_file)
{
    char u[512], args[1024];
    url(u, sizeof u, path);
    snprintf(args, sizeof args, "-o %s -w '%%{http_code}' %s", body_file ? body_file : "/dev/null",
             u);
    return atoi(curl(args));
}

static bool file_equals(const char *a, const char *b)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static void serves_files(void)
{
    setup();
    char body[400], src[400], args[1024], u[512];
    snprintf(body, sizeof body, "%s/body", g_root);
    /* Exact bodies, Content-Length equal to the size. */
    const char *names[] = {"hello.txt", "big.bin", "empty.txt", "index.html"};
    for (size_t i = 0; i < 4; i++) {
        char path[300];
        snprintf(path, sizeof path, "/%s", names[i]);
        url(u, sizeof u, path);
        snprintf(args, sizeof args, "-o %s -w '%%{http_code} %%{size_download} %%header{content-length}' %s",
                 body, u);
        const char *r = curl(args);
        struct stat st;
        snprintf(src, sizeof src, "%s/%s", g_dir, names[i]);
        CHECK_EQ(stat(src, &st), 0);
        char expect[100];
        snprintf(expect, sizeof expect, "200 %lld %lld", (long long)st.st_size,
                 (long long)st.st_size);
        if (strcmp(r, expect) != 0)
            fprintf(stderr, "# %s: got '%s', want '%s'\n", names[i], r ? r : "", expect);
        CHECK(strcmp(r, expect) == 0);
        CHECK(file_equals(body, src));
    }
    /* The directory gives its index.html; an encoded space is decoded. */
    CHECK_EQ(get_status("/", body), 200);
    snprintf(src, sizeof src, "%s/index.html", g_dir);
    CHECK(file_equals(body, src));
    CHECK_EQ(get_status("/a%20b.txt", body), 200);
    CHECK_EQ(get_status("/hello.txt?x=1", body), 200);
    /* 404 for what is missing; a directory without index.html too. */
    CHECK_EQ(get_status("/missing.txt", NULL), 404);
    CHECK_EQ(get_status("/sub/", NULL), 404);
    CHECK_EQ(get_status("/hello.txt/x", NULL), 404);
    /* HEAD: the headers, the same Content-Length, no body. */
    url(u, sizeof u, "/big.bin");
    snprintf(args, sizeof args, "-I -o /dev/null -w '%%{http_code} %%{size_download} %%header{content-length}' %s", u);
    CHECK(strcmp(curl(args), "200 0 3145728") == 0);
    url(u, sizeof u, "/missing");
    snprintf(args, sizeof args, "-I -o /dev/null -w '%%{http_code} %%{size_download}' %s", u);
    CHECK(strcmp(curl(args), "404 0") == 0);
    /* Other methods are refused. */
    url(u, sizeof u, "/hello.txt");
    snprintf(args, sizeof args, "-X DELETE -o /dev/null -w '%%{http_code}' %s", u);
    CHECK(strcmp(curl(args), "405") == 0);
    teardown();
}

static void keep_alive(void)
{
    setup();
    char u1[512], u2[512], u3[512], args[2048];
    url(u1, sizeof u1, "/hello.txt");
    url(u2, sizeof u2, "/missing");
    url(u3, sizeof u3, "/big.bin");
    /* One curl, three requests: one connection, reused (a 404 included). */
    snprintf(args, sizeof args, "-o /dev/null -o /dev/null -o /dev/null -w '%%{http_code}:%%{num_connects} ' %s %s %s", u1, u2, u3);
    const char *r = curl(args);
    if (strcmp(r, "200:1 404:0 200:0 ") != 0)
        fprintf(stderr, "# keep-alive: %s\n", r ? r : "");
    CHECK(strcmp(r, "200:1 404:0 200:0 ") == 0);
    /* HTTP/1.0 closes unless asked to keep the connection. */
    snprintf(args, sizeof args, "-0 -o /dev/null -o /dev/null -w '%%{http_code}:%%{num_connects} ' %s %s", u1, u1);
    r = curl(args);
    CHECK(strcmp(r, "200:1 200:1 ") == 0);
    teardown();
}

static void no_escape(void)
{
    setup();
    char body[400];
    snprintf(body, sizeof body, "%s/body", g_root);
    const char *attempts[] = {
        "/../secret.txt",          "/%2e%2e/secret.txt",    "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",        "/sub/../../secret.txt", "/escape",
        "/escape_rel",             "/sub/up/../secret.txt", "/%2e%2e%2f%2e%2e%2fetc/passwd",
        "/../../../../etc/passwd", "//etc/passwd",          "/%2fetc%2fpasswd",
    };
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        unlink(body);
        int st = get_status(attempts[i], body);
        if (st != 403 && st != 404)
            fprintf(stderr, "# %s: %d\n", attempts[i], st);
        CHECK(st == 403 || st == 404);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "grep -q -e 'TOP SECRET' -e 'root:' '%s'", body);
        CHECK(system(cmd) != 0);
    }
    /* A link that stays inside is followed; `..` that stays inside works. */
    CHECK_EQ(get_status("/inner", NULL), 200);
    CHECK_EQ(get_status("/sub/../hello.txt", NULL), 200);
    CHECK_EQ(get_status("/%00", NULL), 400);
    CHECK_EQ(get_status("/%zz", NULL), 400);
    teardown();
}

/* A raw request; returns the first line of the answer. */
static void raw(const char *req, size_t n, char *first, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before reading it all */
        off += (size_t)w;
    }
    char buf[4096];
    size_t got = 0;
    struct pollfd p = {fd, POLLIN, 0};
    while (got < sizeof buf - 1 && poll(&p, 1, 5000) == 1) {
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = 0;
    char *eol = strstr(buf, "\r\n");
    if (eol)
        *eol = 0;
    snprintf(first, cap, "%.*s", (int)(cap - 1), buf);
    close(fd);
}

static void bad_requests(void)
{
    setup();
    char first[256];
    static const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /hello.txt\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\n\r\n", /* no Host */
        "get /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /hello.txt HTTP/1.1\r\nHost x\r\n\r\n",
        "GET /hello.txt HTTP/1.1\nHost: x\n\n",
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        raw(bad[i], strlen(bad[i]), first, sizeof first);
        if (strncmp(first, "HTTP/1.1 400", 12) != 0)
            fprintf(stderr, "# request %zu: '%s'\n", i, first);
        CHECK(strncmp(first, "HTTP/1.1 400", 12) == 0);
    }
    const char *v2 = "GET / HTTP/2.0\r\nHost: x\r\n\r\n";
    raw(v2, strlen(v2), first, sizeof first);
    CHECK(strncmp(first, "HTTP/1.1 505", 12) == 0);
    /* Oversized headers: 431. */
    static char big[40000];
    int n = snprintf(big, sizeof big, "GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'a', 20000);
    memcpy(big + n + 20000, "\r\n\r\n", 4);
    raw(big, (size_t)n + 20004, first, sizeof first);
    CHECK(strncmp(first, "HTTP/1.1 431", 12) == 0);
    /* A huge request line without any newline: 431 as well. */
    memset(big, 'A', sizeof big);
    raw(big, sizeof big, first, sizeof first);
    CHECK(strncmp(first, "HTTP/1.1 431", 12) == 0 || strncmp(first, "HTTP/1.1 400", 12) == 0);
    /* A request cut short, then a connection closed at once. */
    raw("GET /hello", 10, first, sizeof first);
    CHECK(first[0] == 0);
    /* The server is still up. */
    CHECK_EQ(get_status("/hello.txt", NULL), 200);
    const char *ok = "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    raw(ok, strlen(ok), first, sizeof first);
    CHECK(strcmp(first, "HTTP/1.1 200 OK") == 0);
    teardown();
}

/* ---- connections: closing, HTTP/1.0, and clients that stall ------------------------- */

static int connect_server(int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    if (rcvbuf)
        CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        CHECK(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Reads until the server ends the connection (or wait_ms pass with
 * nothing): the bytes into buf (up to cap, the rest counted), and how it
 * ended: 0 for EOF, -ECONNRESET, or -ETIMEDOUT. */
static int read_to_end(int fd, char *buf, size_t cap, size_t *total, int wait_ms)
{
    *total = 0;
    struct pollfd p = {fd, POLLIN, 0};
    for (;;) {
        if (poll(&p, 1, wait_ms) != 1)
            return -ETIMEDOUT;
        char tmp[65536];
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r == 0)
            return 0;
        if (r < 0)
            return -errno;
        if (*total < cap)
            memcpy(buf + *total, tmp, (size_t)r < cap - *total ? (size_t)r : cap - *total);
        *total += (size_t)r;
    }
}

static void connections(void)
{
    setup();
    static char buf[4 << 20];
    size_t total;
    /* Connection: close with more requests already sent behind it: the
     * whole response arrives and the connection ends cleanly (closing with
     * them unread made the kernel reset it and drop the body's end). */
    int fd = connect_server(0);
    static char req[120000];
    int n = snprintf(req, sizeof req,
                     "GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    while ((size_t)n + 40 < sizeof req)
        n += snprintf(req + n, sizeof req - (size_t)n, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    send_all(fd, req, (size_t)n);
    CHECK_EQ(read_to_end(fd, buf, sizeof buf, &total, 5000), 0);
    char *body = strstr(buf, "\r\n\r\n");
    CHECK(body);
    CHECK_EQ(total - (size_t)(body + 4 - buf), (size_t)3 << 20);
    close(fd);
    /* HTTP/1.0 with keep-alive: the answer says so, and the connection
     * serves a second request. */
    fd = connect_server(0);
    const char *ka = "GET /hello.txt HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    for (int i = 0; i < 2; i++) {
        send_all(fd, ka, strlen(ka));
        char resp[1024];
        size_t got = 0;
        struct pollfd p = {fd, POLLIN, 0};
        while (!strstr(resp, "hello, world\n") && got < sizeof resp - 1 && poll(&p, 1, 5000) == 1) {
            ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
            CHECK(r > 0);
            got += (size_t)r;
            resp[got] = 0;
        }
        CHECK(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
        CHECK(strstr(resp, "\r\nConnection: keep-alive\r\n") != NULL);
        memset(resp, 0, sizeof resp);
    }
    close(fd);
    /* Connection is a list of options; close wins. */
    fd = connect_server(0);
    const char *both = "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n";
    send_all(fd, both, strlen(both));
    CHECK_EQ(read_to_end(fd, buf, sizeof buf, &total, 5000), 0);
    buf[total < 1000 ? total : 1000] = 0;
    CHECK(strstr(buf, "\r\nConnection: close\r\n") != NULL);
    close(fd);
    /* A FIFO under DIR: refused without opening it for reading, which
     * would have blocked the whole server until a writer came. */
    CHECK_EQ(get_status("/fifo", NULL), 403);
    CHECK_EQ(get_status("/hello.txt", NULL), 200);
    teardown();
}

/* With -t 1: an idle client is dropped without a word, a request head
 * that stalls gets 408, and a client that stops reading a response is cut
 * off; the server goes on serving. */
static void stalled_clients(void)
{
    g_timeout = "1";
    setup();
    g_timeout = NULL;
    static char buf[4 << 20];
    size_t total;
    int idle = connect_server(0);
    int partial = connect_server(0);
    send_all(partial, "GET /hello.txt HTTP/1.1\r\nHost:", 30);
    int slow = connect_server(4096);
    const char *big = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(slow, big, strlen(big));
    CHECK_EQ(read_to_end(idle, buf, sizeof buf, &total, 5000), 0);
    CHECK_EQ(total, 0);
    CHECK_EQ(read_to_end(partial, buf, sizeof buf, &total, 5000), 0);
    buf[total < 1000 ? total : 1000] = 0;
    CHECK(strncmp(buf, "HTTP/1.1 408 Request Timeout\r\n", 30) == 0);
    /* The slow reader reads nothing until well past the timeout, then
     * finds the response cut short. */
    usleep(2500 * 1000);
    int end = read_to_end(slow, buf, sizeof buf, &total, 5000);
    CHECK(end == 0 || end == -ECONNRESET);
    CHECK(total < ((size_t)3 << 20));
    close(idle);
    close(partial);
    close(slow);
    CHECK_EQ(get_status("/hello.txt", NULL), 200);
    teardown();
}

TEST_MAIN(CASE_T(serves_files, 60), CASE_T(keep_alive, 30), CASE_T(no_escape, 60),
          CASE_T(bad_requests, 60), CASE_T(connections, 60), CASE_T(stalled_clients, 60))
