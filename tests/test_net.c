/* Sockets: addresses and errors, TCP over IPv4 and IPv6, Unix sockets, UDP,
 * partial reads and writes, a peer reset, cancellation in the middle of a
 * read, deadlines, and EMFILE on accept. */
#include "harness.h"
#include "internal.h"
#include "corio/net.h"
#include "corio/stream.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define MS CORIO_NS_PER_MS

void corio__interleave_families(const corio_sockaddr_t *in, int n, corio_sockaddr_t *out);
int corio__unique_addrs(corio_sockaddr_t *a, int n);
#define SOON(ms) (corio_now() + (ms) * MS)

static void run(corio_task_fn fn)
{
    signal(SIGPIPE, SIG_IGN);
    intptr_t rc = corio_run(fn, NULL);
    if (rc != 0)
        fprintf(stderr, "main returned %ld (%s)\n", (long)rc, corio_strerror((int)rc));
    CHECK_EQ(rc, 0);
}

/* A connected TCP pair on 127.0.0.1 (or ::1). */
static void tcp_pair(const char *host, int *a, int *b)
{
    corio_sockaddr_t bound;
    int l = corio_tcp_listen(host, 0, 8, &bound);
    CHECK(l >= 0);
    CHECK(corio_sockaddr_port(&bound) > 0);
    int c = corio_socket(bound.u.sa.sa_family, SOCK_STREAM, 0);
    CHECK(c >= 0);
    CHECK_EQ(corio_connect(c, &bound, SOON(2000)), 0);
    int s = corio_accept(l, NULL, SOON(2000));
    CHECK(s >= 0);
    close(l);
    *a = c;
    *b = s;
}

static intptr_t echo_once(corio_stream_t *s, void *arg)
{
    (void)arg;
    char buf[4096];
    ssize_t n;
    while ((n = corio_stream_read(s, buf, sizeof buf, CORIO_NEVER)) > 0) {
        corio_stream_write(s, buf, (size_t)n);
        if (corio_stream_drain(s, CORIO_NEVER) < 0)
            break;
    }
    return 0;
}

/* ---- addresses and errors ------------------------------------------------- */

static intptr_t addresses_main(void *arg)
{
    (void)arg;
    corio_sockaddr_t a;
    char buf[128];
    CHECK_EQ(corio_sockaddr_ip(&a, "127.0.0.1", 80), 0);
    CHECK(strcmp(corio_sockaddr_str(&a, buf, sizeof buf), "127.0.0.1:80") == 0);
    CHECK_EQ(corio_sockaddr_ip(&a, "[::1]", 443), 0);
    CHECK(strcmp(corio_sockaddr_str(&a, buf, sizeof buf), "[::1]:443") == 0);
    CHECK_EQ(corio_sockaddr_port(&a), 443);
    CHECK_EQ(corio_sockaddr_ip(&a, "300.1.1.1", 80), -EINVAL);
    CHECK_EQ(corio_sockaddr_ip(&a, "not an address", 80), -EINVAL);
    CHECK_EQ(corio_sockaddr_ip(&a, "127.0.0.1", 65536), -EINVAL);
    CHECK_EQ(corio_sockaddr_ip(&a, "127.0.0.1", -1), -EINVAL);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    CHECK_EQ(corio_sockaddr_unix(&a, longpath), -ENAMETOOLONG);

    /* Listening: bad host and port, port 0 reports the port, in use. */
    CHECK_EQ(corio_tcp_listen("localhost", 0, 0, NULL), -EINVAL); /* numeric only */
    CHECK_EQ(corio_tcp_listen("127.0.0.1", 70000, 0, NULL), -EINVAL);
    CHECK_EQ(corio_tcp_listen("192.0.2.1", 0, 0, NULL), -EADDRNOTAVAIL);
    corio_sockaddr_t bound;
    int l = corio_tcp_listen("127.0.0.1", 0, 0, &bound);
    CHECK(l >= 0);
    int port = corio_sockaddr_port(&bound);
    CHECK(port > 0);
    int v = 0;
    socklen_t vl = sizeof v;
    CHECK_EQ(getsockopt(l, SOL_SOCKET, SO_REUSEADDR, &v, &vl), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(corio_tcp_listen("127.0.0.1", port, 0, NULL), -EADDRINUSE);
    corio_server_t *srv;
    CHECK_EQ(corio_start_server("127.0.0.1", port, echo_once, NULL, NULL, &srv),
             -EADDRINUSE);
    CHECK_EQ(corio_start_server("no-such-host.invalid", 0, echo_once, NULL, NULL, &srv),
             -EADDRNOTAVAIL);
    CHECK_EQ(corio_start_server("localhost", 70000, echo_once, NULL, NULL, &srv), -EINVAL);
    CHECK_EQ(corio_start_server(NULL, -1, echo_once, NULL, NULL, &srv), -EINVAL);
    /* Adopting anything but a listening socket is refused, the fd kept. */
    int pipefd[2];
    CHECK_EQ(pipe(pipefd), 0);
    CHECK_EQ(corio_server_adopt(pipefd[0], echo_once, NULL, NULL, &srv), -ENOTSOCK);
    int idle = corio_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(idle >= 0);
    CHECK_EQ(corio_server_adopt(idle, echo_once, NULL, NULL, &srv), -EINVAL);
    CHECK(srv == NULL);
    CHECK(fcntl(pipefd[0], F_GETFD) >= 0 && fcntl(idle, F_GETFD) >= 0);
    close(pipefd[0]);
    close(pipefd[1]);
    close(idle);
    close(l);

    /* Connecting: a refused port, a bad port, an unknown host. */
    int fd = corio_tcp_connect("127.0.0.1", port, SOON(2000));
    CHECK_EQ(fd, -ECONNREFUSED);
    CHECK_EQ(corio_tcp_connect("127.0.0.1", 65536, SOON(2000)), -EINVAL);
    int rc = corio_tcp_connect("no-such-host.invalid", 80, SOON(5000));
    CHECK(rc == -EADDRNOTAVAIL || rc == -EAGAIN || rc == -ETIMEDOUT);
    corio_stream_t *s;
    rc = corio_open_connection("127.0.0.1", port, NULL, SOON(2000), &s);
    CHECK_EQ(rc, -ECONNREFUSED);
    CHECK(s == NULL);
    /* Outside a task the awaitable calls refuse. */
    return 0;
}

static void addresses_and_errors(void)
{
    run(addresses_main);
    char buf[16];
    CHECK_EQ(corio_recv(0, buf, sizeof buf, 0, CORIO_NEVER), -EDEADLK);
}

/* ---- name resolution on the thread pool -------------------------------------- */

static intptr_t resolve_main(void *arg)
{
    (void)arg;
    corio_sockaddr_t *addrs = NULL;
    /* A numeric host needs no resolver; a name goes to the loop's default
     * thread pool (created on first use), never blocking the loop. */
    CHECK_EQ(corio_getaddrinfo("127.0.0.1", 80, SOCK_STREAM, &addrs), 1);
    free(addrs);
    CHECK(corio__loop_default_executor(corio_loop_current()) == NULL);
    int n = corio_getaddrinfo("localhost", 80, SOCK_STREAM, &addrs);
    CHECK(n >= 1);
    CHECK(corio__loop_default_executor(corio_loop_current()) != NULL);
    bool v4 = false;
    for (int i = 0; i < n; i++)
        if (addrs[i].u.sa.sa_family == AF_INET)
            v4 = corio_sockaddr_port(&addrs[i]) == 80;
    CHECK(v4);
    free(addrs);

    /* open_connection with a name: tries each address until one accepts. */
    corio_server_t *srv;
    CHECK_EQ(corio_start_server("127.0.0.1", 0, echo_once, NULL, NULL, &srv), 0);
    corio_stream_t *s;
    CHECK_EQ(corio_open_connection("localhost", corio_server_port(srv), NULL, SOON(5000), &s), 0);
    int v = 0;
    socklen_t vl = sizeof v;
    CHECK_EQ(getsockopt(corio_stream_fd(s), IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(corio_stream_write(s, "ping\n", 5), 0);
    const char *line;
    size_t len;
    CHECK_EQ(corio_stream_readline(s, &line, &len, SOON(5000)), 0);
    CHECK_EQ(len, 5);
    CHECK(memcmp(line, "ping\n", 5) == 0);
    corio_stream_free(s);
    int port = corio_server_port(srv);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);

    /* Each address in turn: a refused one, then one that listens. */
    CHECK_EQ(corio_start_server("127.0.0.1", 0, echo_once, NULL, NULL, &srv), 0);
    corio_sockaddr_t two[2];
    corio_sockaddr_ip(&two[0], "127.0.0.1", port); /* closed above: refused */
    corio_sockaddr_ip(&two[1], "127.0.0.1", corio_server_port(srv));
    for (int64_t delay = -1; delay <= CORIO_CONNECT_DELAY; delay += CORIO_CONNECT_DELAY + 1) {
        int fd = corio_tcp_connect_addrs(two, 2, delay, SOON(2000));
        CHECK(fd >= 0);
        corio_sockaddr_t peer;
        CHECK_EQ(corio_peername(fd, &peer), 0);
        CHECK_EQ(corio_sockaddr_port(&peer), corio_server_port(srv));
        close(fd);
    }
    CHECK_EQ(corio_tcp_connect_addrs(two, 1, CORIO_CONNECT_DELAY, SOON(2000)), -ECONNREFUSED);
    CHECK_EQ(corio_tcp_connect_addrs(two, 0, CORIO_CONNECT_DELAY, SOON(2000)), -EINVAL);
    CHECK_EQ(corio_tcp_connect_addrs(NULL, 2, CORIO_CONNECT_DELAY, SOON(2000)), -EINVAL);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    return 0;
}

static void resolve_and_connect(void) { run(resolve_main); }

/* An IPv6 server and client through the stream API. */
static intptr_t ipv6_main(void *arg)
{
    (void)arg;
    corio_server_t *srv;
    CHECK_EQ(corio_start_server("::1", 0, echo_once, NULL, NULL, &srv), 0);
    corio_sockaddr_t a;
    CHECK_EQ(corio_server_sockname(srv, &a), 0);
    CHECK_EQ(a.u.sa.sa_family, AF_INET6);
    corio_stream_t *s;
    CHECK_EQ(corio_open_connection("::1", corio_server_port(srv), NULL, SOON(2000), &s), 0);
    CHECK_EQ(corio_stream_write(s, "six\n", 4), 0);
    const char *line;
    size_t len;
    CHECK_EQ(corio_stream_readline(s, &line, &len, SOON(2000)), 0);
    CHECK(len == 4 && memcmp(line, "six\n", 4) == 0);
    corio_stream_free(s);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    return 0;
}

static void ipv6_server(void)
{
    int fd = corio_tcp_listen("::1", 0, 1, NULL);
    if (fd < 0) {
        fprintf(stderr, "# no IPv6 loopback: %s\n", strerror(-fd));
        exit(77);
    }
    close(fd);
    run(ipv6_main);
}

/* ---- TCP, partial reads and writes -------------------------------------------- */

#define BIG (4u << 20)

static int g_fd;
static size_t g_sent;

static intptr_t big_sender(void *arg)
{
    const unsigned char *p = arg;
    ssize_t n = corio_send(g_fd, p, BIG, SOON(20000), &g_sent);
    CHECK_EQ(n, (ssize_t)BIG);
    CHECK_EQ(g_sent, BIG);
    CHECK_EQ(corio_shutdown(g_fd, SHUT_WR), 0);
    return 0;
}

static intptr_t tcp_main_host(const char *host)
{
    int a, b;
    tcp_pair(host, &a, &b);
    unsigned char *src = malloc(BIG), *dst = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        src[i] = (unsigned char)(i * 7 + (i >> 13));
    /* A send larger than every socket buffer completes in full while the
     * reader takes it in small, partial pieces. */
    g_fd = a;
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, big_sender, src, NULL), 0);
    size_t got = 0, reads = 0;
    for (;;) {
        size_t want = 1 + (reads * 977) % 8191;
        if (want > BIG - got)
            want = BIG - got;
        ssize_t n = corio_recv(b, dst + got, want ? want : 1, 0, SOON(20000));
        CHECK(n >= 0);
        if (n == 0)
            break;
        CHECK((size_t)n <= want);
        got += (size_t)n;
        reads++;
    }
    CHECK_EQ(got, BIG);
    CHECK(memcmp(src, dst, BIG) == 0);
    CHECK(reads > 100);
    CHECK_EQ(corio_task_await(t, NULL), 0);
    corio_task_release(t);
    free(src);
    free(dst);
    CHECK_EQ(corio_close(a), 0);
    CHECK_EQ(corio_close(b), 0);
    corio_loop_stats_t st;
    corio_loop_stats(corio_loop_current(), &st);
    CHECK_EQ(st.ops_in_flight, 1); /* the loop's own wake-up read */
    return 0;
}

static intptr_t tcp4_main(void *arg)
{
    (void)arg;
    return tcp_main_host("127.0.0.1");
}

static intptr_t tcp6_main(void *arg)
{
    (void)arg;
    return tcp_main_host("::1");
}

static void tcp_ipv4_partial(void) { run(tcp4_main); }

static void tcp_ipv6_partial(void)
{
    int fd = corio_tcp_listen("::1", 0, 1, NULL);
    if (fd < 0) {
        fprintf(stderr, "# no IPv6 loopback: %s\n", strerror(-fd));
        exit(77);
    }
    close(fd);
    run(tcp6_main);
}

/* ---- Unix stream sockets and UDP ------------------------------------------------- */

static char g_path[108];

static intptr_t unix_main(void *arg)
{
    (void)arg;
    snprintf(g_path, sizeof g_path, "/tmp/corio-test-%d.sock", getpid());
    corio_server_t *srv;
    CHECK_EQ(corio_start_unix_server(g_path, echo_once, NULL, NULL, &srv), 0);
    CHECK_EQ(corio_server_port(srv), -1);
    corio_stream_t *s;
    CHECK_EQ(corio_open_unix_connection(g_path, NULL, SOON(2000), &s), 0);
    static char msg[100000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)('a' + i % 26);
    CHECK_EQ(corio_stream_write(s, msg, sizeof msg), 0);
    CHECK_EQ(corio_stream_write_eof(s), 0);
    static char back[sizeof msg];
    size_t partial = 0;
    CHECK_EQ(corio_stream_readexactly(s, back, sizeof back, &partial, SOON(5000)),
             (ssize_t)sizeof back);
    CHECK(memcmp(back, msg, sizeof msg) == 0);
    CHECK_EQ(corio_stream_read(s, back, 1, SOON(5000)), 0);
    CHECK(corio_stream_at_eof(s));
    corio_stream_free(s);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    unlink(g_path);
    return 0;
}

static void unix_stream(void) { run(unix_main); }

static intptr_t udp_main(void *arg)
{
    (void)arg;
    corio_sockaddr_t sa, ca, from;
    int s = corio_udp_bind("127.0.0.1", 0, &sa);
    int c = corio_udp_bind("127.0.0.1", 0, &ca);
    CHECK(s >= 0 && c >= 0);
    CHECK_EQ(corio_sendto(c, "hello", 5, 0, &sa, SOON(1000)), 5);
    char buf[64];
    CHECK_EQ(corio_recvfrom(s, buf, sizeof buf, 0, &from, SOON(1000)), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(corio_sockaddr_port(&from), corio_sockaddr_port(&ca));
    CHECK_EQ(corio_sendto(s, "world!", 6, 0, &from, SOON(1000)), 6);
    CHECK_EQ(corio_recvfrom(c, buf, sizeof buf, 0, NULL, SOON(1000)), 6);
    CHECK(memcmp(buf, "world!", 6) == 0);
    /* Nothing more arrives: the deadline ends the wait. */
    CHECK_EQ(corio_recvfrom(c, buf, sizeof buf, 0, NULL, SOON(50)), -ETIMEDOUT);
    corio_close(s);
    corio_close(c);
    return 0;
}

static void udp_datagrams(void) { run(udp_main); }

/* ---- cancellation, deadlines, resets ------------------------------------------------ */

static char g_buf[64];

static intptr_t blocked_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    memset(g_buf, 0, sizeof g_buf);
    return corio_recv(fd, g_buf, sizeof g_buf, 0, CORIO_NEVER);
}

static intptr_t cancel_main(void *arg)
{
    (void)arg;
    int a, b;
    tcp_pair("127.0.0.1", &a, &b);
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, blocked_reader, (void *)(intptr_t)b, NULL), 0);
    CHECK_EQ(corio_sleep(20 * MS), 0);
    corio_loop_stats_t st;
    corio_loop_stats(corio_loop_current(), &st);
    CHECK_EQ(st.ops_in_flight, 2); /* the wake-up read and the blocked receive */
    CHECK_EQ(corio_task_cancel(t), 0);
    CHECK_EQ(corio_task_await(t, NULL), -ECANCELED);
    corio_task_release(t);
    corio_loop_stats(corio_loop_current(), &st);
    CHECK_EQ(st.ops_in_flight, 1); /* the kernel's receive is gone */
    /* The cancelled receive took nothing: the next one gets every byte. */
    CHECK_EQ(corio_send(a, "after", 5, SOON(1000), NULL), 5);
    char buf[16];
    CHECK_EQ(corio_recv(b, buf, sizeof buf, 0, SOON(1000)), 5);
    CHECK(memcmp(buf, "after", 5) == 0);
    CHECK(g_buf[0] == 0);

    /* Deadlines on receive and accept. */
    int64_t t0 = corio_now();
    CHECK_EQ(corio_recv(b, buf, sizeof buf, 0, SOON(50)), -ETIMEDOUT);
    CHECK(corio_now() - t0 >= 45 * MS);
    int l = corio_tcp_listen("127.0.0.1", 0, 1, NULL);
    CHECK_EQ(corio_accept(l, NULL, SOON(30)), -ETIMEDOUT);
    CHECK_EQ(corio_recv(b, buf, sizeof buf, 0, corio_now() - 1), -ETIMEDOUT); /* past */
    close(l);
    corio_loop_stats(corio_loop_current(), &st);
    CHECK_EQ(st.ops_in_flight, 1);

    /* A peer reset: linger 0 makes close send RST. */
    struct linger lg = {1, 0};
    CHECK_EQ(setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(a);
    CHECK_EQ(corio_recv(b, buf, sizeof buf, 0, SOON(1000)), -ECONNRESET);
    ssize_t rc = corio_send(b, "x", 1, SOON(1000), NULL);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    close(b);
    return 0;
}

static void cancel_deadline_reset(void) { run(cancel_main); }

/* ---- EMFILE on accept: logged, backs off, keeps serving ------------------------------ */

static int g_reports;

static void count_reports(corio_loop_t *loop, const corio_error_context_t *ctx, void *arg)
{
    (void)loop;
    (void)arg;
    if (ctx->code == -EMFILE)
        g_reports++;
}

static intptr_t hold(corio_stream_t *s, void *arg)
{
    (void)arg;
    char c;
    corio_stream_read(s, &c, 1, CORIO_NEVER);
    return 0;
}

static intptr_t emfile_main(void *arg)
{
    (void)arg;
    corio_loop_set_error_handler(corio_loop_current(), count_reports, NULL);
    /* Fill the descriptor table: the clients connect, the server cannot
     * accept them. The limit is lowered before the server starts, since an
     * accept already waiting in the kernel took its limit when submitted. */
    int spare[64], nspare = 0, clients[4];
    for (int i = 0; i < 4; i++) {
        clients[i] = corio_socket(AF_INET, SOCK_STREAM, 0);
        CHECK(clients[i] >= 0);
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int top = dup(clients[0]);
    close(top);
    struct rlimit low = {(rlim_t)top + 8, rl.rlim_max};
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    corio_server_t *srv;
    corio_server_options_t opts = {.emfile_backoff_ns = 50 * MS};
    CHECK_EQ(corio_start_server("127.0.0.1", 0, hold, NULL, &opts, &srv), 0);
    corio_sockaddr_t addr;
    CHECK_EQ(corio_server_sockname(srv, &addr), 0);
    CHECK_EQ(corio_sleep(10 * MS), 0); /* the acceptor is waiting */
    int fd;
    while (nspare < 64 && (fd = dup(clients[0])) >= 0)
        spare[nspare++] = fd;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(corio_connect(clients[i], &addr, SOON(1000)), 0);
    corio_loop_stats_t st0, st1;
    corio_loop_stats(corio_loop_current(), &st0);
    CHECK_EQ(corio_sleep(300 * MS), 0);
    corio_loop_stats(corio_loop_current(), &st1);
    corio_server_stats_t ss;
    corio_server_stats(srv, &ss);
    CHECK_EQ(ss.accepted, 0);
    CHECK(ss.accept_errors >= 1);
    CHECK(g_reports == 1); /* once per episode, not once per retry */
    /* No busy loop: a pause of 50 ms between tries, so few turns. */
    CHECK(st1.turns - st0.turns < 40);
    /* Descriptors come back: the server catches up. */
    while (nspare)
        close(spare[--nspare]);
    for (int i = 0; i < 100 && ss.accepted < 4; i++) {
        corio_sleep(10 * MS);
        corio_server_stats(srv, &ss);
    }
    CHECK_EQ(ss.accepted, 4);
    CHECK_EQ(ss.connections, 4);
    for (int i = 0; i < 4; i++)
        close(clients[i]);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    setrlimit(RLIMIT_NOFILE, &rl);
    return 0;
}

static void emfile_backoff(void) { run(emfile_main); }

/* ---- a handler that cannot start: the connection is closed once -------------------- */

static int g_victim = -1;

/* Runs between the server closing the connection and its next step: a
 * descriptor opened here takes the number just freed, and must survive. */
static void grab_freed_fd(corio_loop_t *loop, const corio_error_context_t *ctx, void *arg)
{
    (void)loop;
    (void)arg;
    if (g_victim < 0 && strstr(ctx->message, "handler"))
        g_victim = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static intptr_t spawn_fail_main(void *arg)
{
    (void)arg;
    corio_loop_set_error_handler(corio_loop_current(), grab_freed_fd, NULL);
    corio_server_t *srv;
    /* No stack this big can be mapped: every handler fails to start. */
    corio_server_options_t opts = {.stack_size = (size_t)1 << 50, .emfile_backoff_ns = MS};
    CHECK_EQ(corio_start_server("127.0.0.1", 0, hold, NULL, &opts, &srv), 0);
    corio_sockaddr_t addr;
    CHECK_EQ(corio_server_sockname(srv, &addr), 0);
    int c = corio_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c >= 0);
    CHECK_EQ(corio_connect(c, &addr, SOON(1000)), 0);
    char b;
    ssize_t r = corio_recv(c, &b, 1, 0, SOON(2000)); /* the server drops it */
    CHECK(r == 0 || r == -ECONNRESET);
    CHECK_EQ(corio_sleep(20 * MS), 0);
    CHECK(g_victim >= 0);
    CHECK(fcntl(g_victim, F_GETFD) >= 0); /* not closed a second time */
    corio_server_stats_t ss;
    corio_server_stats(srv, &ss);
    CHECK_EQ(ss.accepted, 0);
    CHECK_EQ(ss.connections, 0);
    close(g_victim);
    close(c);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    return 0;
}

static void handler_spawn_failure(void) { run(spawn_fail_main); }

/* ---- a connection accepted as close begins is not served ---------------------------- */

static int g_served;

static intptr_t count_served(corio_stream_t *s, void *arg)
{
    (void)s;
    (void)arg;
    g_served++;
    return 0;
}

static intptr_t accept_close_race_main(void *arg)
{
    (void)arg;
    corio_server_t *srv;
    CHECK_EQ(corio_start_server("127.0.0.1", 0, count_served, NULL, NULL, &srv), 0);
    corio_sockaddr_t addr;
    CHECK_EQ(corio_server_sockname(srv, &addr), 0);
    CHECK_EQ(corio_sleep(10 * MS), 0); /* the accept is in the kernel */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    CHECK_EQ(connect(c, &addr.u.sa, addr.len), 0); /* completes the accept */
    /* This task runs first in the next turn, ahead of the acceptor the
     * same turn wakes with its new connection. */
    CHECK_EQ(corio_sleep(0), 0);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
    corio_server_stats_t ss;
    corio_server_stats(srv, &ss);
    CHECK_EQ(g_served, 0);
    CHECK_EQ(ss.accepted, 0);
    CHECK_EQ(corio_server_free(srv), 0);
    char b;
    ssize_t r = recv(c, &b, 1, 0); /* dropped: closed, or refused */
    CHECK(r == 0 || (r < 0 && errno == ECONNRESET));
    close(c);
    return 0;
}

static void accept_racing_close(void) { run(accept_close_race_main); }

/* ---- closing, connecting and binding: what the kernel must not get wrong ------------ */

static int g_close_fd;

static intptr_t queued_reader(void *arg)
{
    (void)arg;
    char buf[32] = {0};
    ssize_t n = corio_recv(g_close_fd, buf, sizeof buf - 1, 0, SOON(300));
    CHECK(n <= 0); /* never the bytes of the socket that took the number */
    return 0;
}

static intptr_t cancelled_closer(void *arg)
{
    (void)arg;
    CHECK_EQ(corio_task_cancel(corio_current_task()), 0);
    CHECK_EQ(corio_close(g_close_fd), 0); /* closed at once: the task is cancelled */
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(sv[0], g_close_fd); /* the number is reused at once */
    CHECK_EQ(write(sv[1], "another connection", 18), 18);
    corio_task_uncancel(corio_current_task());
    CHECK_EQ(corio_sleep(400 * MS), 0);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static intptr_t close_paths_main(void *arg)
{
    (void)arg;
    /* A receive queued this turn, its fd closed at once by a cancelled
     * task: the receive is submitted before the close, not after. */
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    g_close_fd = sv[0];
    corio_task_t *r, *c;
    CHECK_EQ(corio_spawn(NULL, &r, queued_reader, NULL, NULL), 0);
    CHECK_EQ(corio_spawn(NULL, &c, cancelled_closer, NULL, NULL), 0);
    CHECK_EQ(corio_task_await(r, NULL), 0);
    CHECK_EQ(corio_task_await(c, NULL), 0);
    corio_task_release(r);
    corio_task_release(c);
    close(sv[1]);
    /* No SQE to be had: close and shutdown are still done. */
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    corio__fault_set(CORIO_FAULT_SQE, 1);
    CHECK_EQ(corio_shutdown(sv[1], SHUT_WR), 0);
    corio__fault_set(CORIO_FAULT_SQE, 1);
    CHECK_EQ(corio_close(sv[0]), 0);
    corio__fault_set(CORIO_FAULT_SQE, 0);
    CHECK_EQ(fcntl(sv[0], F_GETFD), -1);
    char b;
    CHECK_EQ(recv(sv[1], &b, 1, MSG_DONTWAIT), 0); /* the peer is gone */
    close(sv[1]);
    return 0;
}

static void close_paths(void) { run(close_paths_main); }

/* The kernel's own connect timeout (SYNs unanswered, as for a blackholed
 * address) moves on to the next address; only the caller's deadline ends
 * the tries. SYNs to a listener whose accept queue is full are dropped;
 * TCP_SYNCNT, set on the library's sockets here, makes the kernel give up
 * after about 3 s instead of 2 minutes. */
static bool g_short_syn;

int socket(int domain, int type, int protocol)
{
    int fd = (int)syscall(SYS_socket, domain, type, protocol);
    int one = 1;
    if (fd >= 0 && g_short_syn && domain == AF_INET && (type & 0xf) == SOCK_STREAM)
        setsockopt(fd, IPPROTO_TCP, TCP_SYNCNT, &one, sizeof one);
    return fd;
}

static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

static intptr_t race_unanswered(void *arg)
{
    corio_sockaddr_t *addrs = arg;
    return corio_tcp_connect_addrs(addrs, 2, CORIO_CONNECT_DELAY, CORIO_NEVER);
}

/* addrs[0] never answers (its SYNs are dropped, for about two minutes by
 * default): in turn, the deadline ends the connect; raced, the second
 * address starts after the delay and wins, and the loser is cancelled. */
static void happy_eyeballs(corio_sockaddr_t *addrs, corio_sockaddr_t good)
{
    int before = open_fds();
    CHECK_EQ(corio_tcp_connect_addrs(addrs, 2, -1, SOON(1500)), -ETIMEDOUT);
    int fd = corio_tcp_connect_addrs(addrs, 2, CORIO_CONNECT_DELAY, SOON(1500));
    CHECK(fd >= 0);
    corio_sockaddr_t peer;
    CHECK_EQ(corio_peername(fd, &peer), 0);
    CHECK_EQ(corio_sockaddr_port(&peer), corio_sockaddr_port(&good));
    int v = 0;
    socklen_t vl = sizeof v;
    CHECK_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
    CHECK_EQ(v, 1);
    close(fd);
    CHECK_EQ(open_fds(), before); /* the losing attempt's socket is closed */
    /* Neither answers: the deadline ends the race, both attempts cancelled. */
    corio_sockaddr_t both[2] = {addrs[0], addrs[0]};
    CHECK_EQ(corio_tcp_connect_addrs(both, 2, CORIO_CONNECT_DELAY, SOON(600)), -ETIMEDOUT);
    CHECK_EQ(open_fds(), before);
    /* The caller cancelled mid-race: -ECANCELED, nothing left open. */
    corio_task_t *t;
    CHECK_EQ(corio_spawn(NULL, &t, race_unanswered, both, NULL), 0);
    CHECK_EQ(corio_sleep(400 * MS), 0); /* both attempts are in the kernel */
    CHECK_EQ(corio_task_cancel(t), 0);
    corio_value_t out;
    CHECK_EQ(corio_task_await(t, &out), -ECANCELED);
    corio_task_release(t);
    CHECK_EQ(open_fds(), before);
}

/* RFC 8305's interleaving: families alternate, each keeping its order. */
static intptr_t interleave_main(void *arg)
{
    (void)arg;
    const char *in[] = {"::1", "::2", "::3", "127.0.0.1", "127.0.0.2"};
    const char *want[] = {"[::1]:1", "127.0.0.1:1", "[::2]:1", "127.0.0.2:1", "[::3]:1"};
    corio_sockaddr_t a[5], out[5];
    for (int i = 0; i < 5; i++)
        CHECK_EQ(corio_sockaddr_ip(&a[i], in[i], 1), 0);
    corio__interleave_families(a, 5, out);
    char buf[64];
    for (int i = 0; i < 5; i++)
        CHECK(strcmp(corio_sockaddr_str(&out[i], buf, sizeof buf), want[i]) == 0);
    corio__interleave_families(a, 3, out); /* one family: unchanged */
    for (int i = 0; i < 3; i++)
        CHECK(memcmp(&out[i], &a[i], sizeof a[i]) == 0);
    /* A server listens once on each address, in the resolver's order. */
    corio_sockaddr_t dup[] = {a[0], a[3], a[0], a[1], a[3]};
    CHECK_EQ(corio__unique_addrs(dup, 5), 3);
    CHECK(memcmp(&dup[0], &a[0], sizeof a[0]) == 0);
    CHECK(memcmp(&dup[1], &a[3], sizeof a[3]) == 0);
    CHECK(memcmp(&dup[2], &a[1], sizeof a[1]) == 0);
    return 0;
}

static void address_order(void) { run(interleave_main); }

static intptr_t connect_next_main(void *arg)
{
    (void)arg;
    corio_sockaddr_t full, good;
    int lf = corio_tcp_listen("127.0.0.1", 0, 1, &full);
    int lg = corio_tcp_listen("127.0.0.1", 0, 4, &good);
    CHECK(lf >= 0 && lg >= 0);
    int fill[8], nfill = 0;
    for (; nfill < 8; nfill++) { /* well past what its queue holds */
        fill[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[nfill], &full.u.sa, full.len);
    }
    usleep(100 * 1000);
    g_short_syn = true;
    corio_sockaddr_t addrs[] = {full, good};
    int64_t t0 = corio_now();
    int fd = corio_tcp_connect_addrs(addrs, 2, -1, CORIO_NEVER);
    g_short_syn = false;
    CHECK(fd >= 0); /* the second address, after the kernel gave up on the first */
    corio_sockaddr_t peer;
    CHECK_EQ(corio_peername(fd, &peer), 0);
    CHECK_EQ(corio_sockaddr_port(&peer), corio_sockaddr_port(&good));
    CHECK(corio_now() - t0 < 20000 * MS);
    close(fd);
    /* The caller's deadline still ends the tries at once. */
    g_short_syn = true;
    CHECK_EQ(corio_tcp_connect_addrs(addrs, 2, -1, SOON(200)), -ETIMEDOUT);
    g_short_syn = false;
    happy_eyeballs(addrs, good);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(lf);
    close(lg);
    return 0;
}

static void connect_tries_next_address(void) { run(connect_next_main); }

static intptr_t never_called(corio_stream_t *s, void *arg)
{
    (void)s;
    (void)arg;
    return 0;
}

static void count_any_report(corio_loop_t *loop, const corio_error_context_t *ctx, void *arg)
{
    (void)loop;
    (void)arg;
    (void)ctx;
    g_reports++;
}

static intptr_t bind_and_close_main(void *arg)
{
    (void)arg;
    /* UDP: no SO_REUSEADDR, so a port is bound once. */
    corio_sockaddr_t bound;
    int u = corio_udp_bind("127.0.0.1", 0, &bound);
    CHECK(u >= 0);
    CHECK_EQ(corio_udp_bind("127.0.0.1", corio_sockaddr_port(&bound), NULL), -EADDRINUSE);
    close(u);
    /* An adopted listener may be shared (systemd, pre-forked servers):
     * closing the server must not stop it listening for the others. */
    int l = corio_tcp_listen("127.0.0.1", 0, 8, &bound);
    CHECK(l >= 0);
    corio_server_t *srv;
    int dup_fd = dup(l);
    CHECK_EQ(corio_server_adopt(dup_fd, never_called, NULL, NULL, &srv), 0);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(1000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    int c = corio_socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(corio_connect(c, &bound, SOON(1000)), 0);
    close(c);
    /* And when another holder shuts it down, the server says so once and
     * closes, instead of retrying a dead socket for ever. */
    g_reports = 0;
    corio_loop_set_error_handler(corio_loop_current(), count_any_report, NULL);
    CHECK_EQ(corio_server_adopt(dup(l), never_called, NULL, NULL, &srv), 0);
    CHECK_EQ(corio_sleep(10 * MS), 0);
    CHECK_EQ(shutdown(l, SHUT_RDWR), 0);
    CHECK_EQ(corio_server_serve_forever(srv, SOON(2000)), 0);
    CHECK_EQ(g_reports, 1);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(1000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    corio_loop_set_error_handler(corio_loop_current(), NULL, NULL);
    close(l);
    /* A Unix server removes its socket file when it closes, as asyncio's
     * does, unless another socket took the name meanwhile. */
    char path[] = "/tmp/corio-unix-srv-XXXXXX";
    int tmp = mkstemp(path);
    CHECK(tmp >= 0);
    close(tmp);
    unlink(path);
    CHECK_EQ(corio_start_unix_server(path, never_called, NULL, NULL, &srv), 0);
    CHECK_EQ(access(path, F_OK), 0);
    corio_server_close(srv);
    CHECK_EQ(access(path, F_OK), -1);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(1000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    CHECK_EQ(corio_start_unix_server(path, never_called, NULL, NULL, &srv), 0);
    unlink(path);
    int other = corio_unix_listen(path, 1);
    CHECK(other >= 0);
    corio_server_close(srv);
    CHECK_EQ(access(path, F_OK), 0); /* not ours any more */
    CHECK_EQ(corio_server_wait_closed(srv, SOON(1000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    close(other);
    unlink(path);
    /* Deadlines far in the past end at once (they overflowed before). */
    CHECK_EQ(corio_start_server("127.0.0.1", 0, never_called, NULL, NULL, &srv), 0);
    CHECK_EQ(corio_server_serve_forever(srv, INT64_MIN), -ETIMEDOUT);
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, INT64_MIN), 0);
    CHECK_EQ(corio_server_free(srv), 0);
    /* Addresses print by their length: an unnamed sender, an abstract name. */
    char buf[128];
    corio_sockaddr_t a;
    memset(&a, 'x', sizeof a);
    a.u.un.sun_family = AF_UNIX;
    a.len = (socklen_t)offsetof(struct sockaddr_un, sun_path);
    CHECK_EQ(strcmp(corio_sockaddr_str(&a, buf, sizeof buf), ""), 0);
    memcpy(a.u.un.sun_path, "\0name", 5);
    a.len += 5;
    CHECK_EQ(strcmp(corio_sockaddr_str(&a, buf, sizeof buf), "@name"), 0);
    return 0;
}

static void bind_and_close(void) { run(bind_and_close_main); }


/* ---- servers on several addresses (asyncio's start_server) ----------------- */

/* Sends a line to addr's echo server and checks it comes back. */
static void echo_through(const corio_sockaddr_t *addr)
{
    int fd = corio_socket(addr->u.sa.sa_family, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK_EQ(corio_connect(fd, addr, SOON(2000)), 0);
    CHECK_EQ(corio_send(fd, "ping\n", 5, SOON(2000), NULL), 5);
    char buf[8];
    size_t got = 0;
    while (got < 5) {
        ssize_t n = corio_recv(fd, buf + got, sizeof buf - got, 0, SOON(2000));
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK(got == 5 && memcmp(buf, "ping\n", 5) == 0);
    corio_close(fd);
}

static bool ipv6_available(void)
{
    int fd = corio_tcp_listen("::1", 0, 1, NULL);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static void close_and_free(corio_server_t *srv)
{
    corio_server_close(srv);
    CHECK_EQ(corio_server_wait_closed(srv, SOON(2000)), 0);
    CHECK_EQ(corio_server_free(srv), 0);
}

/* NULL listens on every interface of both families, on one port. */
static intptr_t wildcard_main(void *arg)
{
    (void)arg;
    corio_server_t *srv;
    CHECK_EQ(corio_start_server(NULL, 0, echo_once, NULL, NULL, &srv), 0);
    int port = corio_server_port(srv);
    CHECK(port > 0);
    corio_sockaddr_t names[4];
    int n = corio_server_socknames(srv, names, 4);
    CHECK_EQ(n, ipv6_available() ? 2 : 1);
    CHECK_EQ(names[0].u.sa.sa_family, AF_INET);
    corio_sockaddr_t to;
    CHECK_EQ(corio_sockaddr_ip(&to, "127.0.0.1", port), 0);
    echo_through(&to);
    if (n == 2) {
        CHECK_EQ(names[1].u.sa.sa_family, AF_INET6);
        CHECK_EQ(corio_sockaddr_port(&names[1]), port);
        CHECK_EQ(corio_sockaddr_ip(&to, "::1", port), 0);
        echo_through(&to);
    }
    CHECK_EQ(corio_server_socknames(srv, NULL, 0), n);
    CHECK_EQ(corio_server_socknames(srv, NULL, 1), -EINVAL);
    corio_server_stats_t st;
    CHECK_EQ(corio_server_stats(srv, &st), 0);
    CHECK_EQ(st.accepted, (uint64_t)n);
    close_and_free(srv);
    /* Every listener is gone: nothing answers on either family. */
    CHECK_EQ(corio_sockaddr_ip(&to, "127.0.0.1", port), 0);
    int fd = corio_socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(corio_connect(fd, &to, SOON(2000)), -ECONNREFUSED);
    close(fd);
    if (n == 2) {
        CHECK_EQ(corio_sockaddr_ip(&to, "::1", port), 0);
        fd = corio_socket(AF_INET6, SOCK_STREAM, 0);
        CHECK_EQ(corio_connect(fd, &to, SOON(2000)), -ECONNREFUSED);
        close(fd);
    }
    return 0;
}

static void server_every_interface(void) { run(wildcard_main); }

/* A name is resolved off the loop and listened on at each address. */
static intptr_t named_main(void *arg)
{
    (void)arg;
    corio_sockaddr_t *want;
    int nwant = corio_getaddrinfo("localhost", 0, SOCK_STREAM, &want);
    CHECK(nwant > 0);
    corio_server_t *srv;
    CHECK_EQ(corio_start_server("localhost", 0, echo_once, NULL, NULL, &srv), 0);
    corio_sockaddr_t names[8];
    int n = corio_server_socknames(srv, names, 8);
    CHECK(n >= 1 && n <= nwant);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(corio_sockaddr_port(&names[i]), corio_server_port(srv));
        echo_through(&names[i]);
    }
    free(want);
    close_and_free(srv);
    return 0;
}

static void server_on_a_name(void) { run(named_main); }

/* Resolving a name would block the loop's thread outside a task. */
static void start_named_outside_task(void *arg)
{
    int *rc = arg;
    corio_server_t *srv = NULL;
    *rc = corio_start_server("localhost", 0, never_called, NULL, NULL, &srv);
    CHECK(srv == NULL);
}

/* SO_REUSEPORT lets a second server share the port; without it, refused. */
static intptr_t reuse_port_main(void *arg)
{
    (void)arg;
    int rc = 0;
    CHECK_EQ(corio_loop_call_soon(corio_loop_current(), NULL, start_named_outside_task, &rc), 0);
    for (int i = 0; i < 10 && rc == 0; i++)
        CHECK_EQ(corio_sleep(0), 0);
    CHECK_EQ(rc, -EDEADLK);
    corio_server_options_t opts = {.reuse_port = true};
    corio_server_t *a, *b, *c;
    CHECK_EQ(corio_start_server("127.0.0.1", 0, echo_once, NULL, &opts, &a), 0);
    int port = corio_server_port(a);
    CHECK_EQ(corio_start_server("127.0.0.1", port, echo_once, NULL, &opts, &b), 0);
    CHECK_EQ(corio_start_server("127.0.0.1", port, echo_once, NULL, NULL, &c), -EADDRINUSE);
    corio_sockaddr_t to;
    CHECK_EQ(corio_sockaddr_ip(&to, "127.0.0.1", port), 0);
    close_and_free(a);
    echo_through(&to); /* b still serves the port */
    close_and_free(b);
    return 0;
}

static void server_reuse_port(void) { run(reuse_port_main); }

/* An attempt that fails for want of memory (its stack cannot be mapped)
 * is one failed address: the race goes on to the next. A delay too long
 * for the clock starts the next attempt only on a failure. */
static intptr_t race_failures_main(void *arg)
{
    (void)arg;
    corio_server_t *a, *b;
    CHECK_EQ(corio_start_server("127.0.0.1", 0, never_called, NULL, NULL, &a), 0);
    CHECK_EQ(corio_start_server("127.0.0.1", 0, never_called, NULL, NULL, &b), 0);
    corio_sockaddr_t addrs[2];
    CHECK_EQ(corio_server_sockname(a, &addrs[0]), 0);
    CHECK_EQ(corio_server_sockname(b, &addrs[1]), 0);
    CHECK_EQ(corio_sleep(10 * MS), 0); /* the acceptors have their stacks */
    corio__fault_set(CORIO_FAULT_MMAP, 1); /* the first attempt's stack */
    int fd = corio_tcp_connect_addrs(addrs, 2, CORIO_CONNECT_DELAY, SOON(2000));
    corio__fault_set(CORIO_FAULT_MMAP, 0);
    CHECK(fd >= 0);
    corio_sockaddr_t peer;
    CHECK_EQ(corio_peername(fd, &peer), 0);
    CHECK_EQ(corio_sockaddr_port(&peer), corio_sockaddr_port(&addrs[1]));
    close(fd);
    fd = corio_tcp_connect_addrs(addrs, 2, CORIO_NEVER, SOON(2000));
    CHECK(fd >= 0);
    CHECK_EQ(corio_peername(fd, &peer), 0);
    CHECK_EQ(corio_sockaddr_port(&peer), corio_sockaddr_port(&addrs[0]));
    close(fd);
    corio_server_stats_t st = {0};
    for (int i = 0; i < 2000 && st.accepted < 1; i++) {
        CHECK_EQ(corio_sleep(MS), 0);
        CHECK_EQ(corio_server_stats(b, &st), 0);
    }
    CHECK_EQ(corio_sleep(100 * MS), 0);
    CHECK_EQ(corio_server_stats(b, &st), 0);
    CHECK_EQ(st.accepted, 1); /* the second race never reached b */
    close_and_free(a);
    close_and_free(b);
    return 0;
}

static void connect_race_failures(void) { run(race_failures_main); }

/* A listener whose acceptor cannot start (no stack) is reported, once. */
static intptr_t acceptor_fails_main(void *arg)
{
    (void)arg;
    g_reports = 0;
    corio_loop_set_error_handler(corio_loop_current(), count_any_report, NULL);
    corio__fault_set(CORIO_FAULT_MMAP, 1);
    corio_server_t *srv;
    CHECK_EQ(corio_start_server("127.0.0.1", 0, never_called, NULL, NULL, &srv), 0);
    CHECK_EQ(corio_sleep(10 * MS), 0); /* the acceptor's first turn */
    corio__fault_set(CORIO_FAULT_MMAP, 0);
    CHECK_EQ(g_reports, 1);
    close_and_free(srv);
    CHECK_EQ(g_reports, 1);
    corio_loop_set_error_handler(corio_loop_current(), NULL, NULL);
    return 0;
}

static void acceptor_failure_reported(void) { run(acceptor_fails_main); }

TEST_MAIN(CASE(addresses_and_errors), CASE(resolve_and_connect), CASE(ipv6_server), CASE_T(tcp_ipv4_partial, 60),
          CASE_T(tcp_ipv6_partial, 60), CASE(unix_stream), CASE(udp_datagrams),
          CASE(cancel_deadline_reset), CASE(emfile_backoff), CASE(handler_spawn_failure),
          CASE(accept_racing_close), CASE(close_paths), CASE_T(connect_tries_next_address, 60),
          CASE(bind_and_close), CASE(server_every_interface), CASE(server_on_a_name),
          CASE(server_reuse_port), CASE(address_order),
          CASE(connect_race_failures), CASE(acceptor_failure_reported))
