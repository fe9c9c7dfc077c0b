/* Drives examples/echo_server (its path in $ECHO_SERVER) with real clients:
 * one connection echoing a megabyte, then 10,000 connections held open at
 * once, each echoing a payload larger than its socket send buffer, checked
 * byte for byte (in waves of 1,000 while all stay open), with the server's
 * statistics showing all of them. The client of the big case is a separate
 * process that connects in batches; each process raises its own descriptor
 * limit. */
#include "harness.h"
#include "corio.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS CORIO_NS_PER_MS

typedef struct server {
    pid_t pid;
    int out; /* the server's stdout */
    int port;
    char buf[8192];
    size_t len;
} server_t;

/* Reads one line of the server's output into line, waiting at most ms.
 * Returns false on timeout or end of output. */
static bool server_line(server_t *s, char *line, size_t cap, int ms)
{
    int64_t end = corio_now() + ms * MS;
    for (;;) {
        char *nl = memchr(s->buf, '\n', s->len);
        if (nl) {
            size_t n = (size_t)(nl - s->buf);
            size_t k = n < cap - 1 ? n : cap - 1;
            memcpy(line, s->buf, k);
            line[k] = 0;
            memmove(s->buf, nl + 1, s->len - n - 1);
            s->len -= n + 1;
            return true;
        }
        int left = (int)((end - corio_now()) / MS);
        if (left <= 0)
            return false;
        struct pollfd p = {s->out, POLLIN, 0};
        if (poll(&p, 1, left) <= 0)
            continue;
        ssize_t r = read(s->out, s->buf + s->len, sizeof s->buf - s->len - 1);
        if (r <= 0)
            return false;
        s->len += (size_t)r;
    }
}

static void server_start(server_t *s)
{
    const char *exe = getenv("ECHO_SERVER");
    if (!exe) {
        fprintf(stderr, "# ECHO_SERVER is not set\n");
        exit(77);
    }
    memset(s, 0, sizeof *s);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    s->pid = fork();
    CHECK(s->pid >= 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed case */
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(exe, exe, "0", "127.0.0.1", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    s->out = p[0];
    char line[512];
    CHECK(server_line(s, line, sizeof line, 5000));
    char *colon = strrchr(line, ':');
    CHECK(strstr(line, "listening on 127.0.0.1:") && colon);
    s->port = atoi(colon + 1);
    CHECK(s->port > 0);
}

/* SIGTERM: the server closes gracefully and exits 0 after its final line. */
static void server_stop(server_t *s, char *final_line, size_t cap)
{
    kill(s->pid, SIGTERM);
    char line[512];
    final_line[0] = 0;
    while (server_line(s, line, sizeof line, 10000))
        if (strncmp(line, "final:", 6) == 0)
            snprintf(final_line, cap, "%s", line);
    int status;
    CHECK_EQ(waitpid(s->pid, &status, 0), s->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(s->out);
}

static unsigned long long stat_of(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : ~0ull;
}

/* ---- one connection, a megabyte ------------------------------------------------ */

static int g_port;

static intptr_t one_main(void *arg)
{
    (void)arg;
    corio_stream_t *s;
    CHECK_EQ(corio_open_connection("127.0.0.1", g_port, NULL, corio_now() + 2000 * MS, &s), 0);
    static unsigned char out[1 << 20], in[1 << 20];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 31 + (i >> 11));
    CHECK_EQ(corio_stream_write(s, out, sizeof out), 0);
    CHECK_EQ(corio_stream_write_eof(s), 0);
    size_t got = 0;
    CHECK_EQ(corio_stream_readexactly(s, in, sizeof in, &got, corio_now() + 10000 * MS),
             (ssize_t)sizeof in);
    CHECK(memcmp(in, out, sizeof in) == 0);
    char c;
    CHECK_EQ(corio_stream_read(s, &c, 1, corio_now() + 2000 * MS), 0); /* server closed */
    corio_stream_free(s);
    return 0;
}

static void echo_one(void)
{
    server_t srv;
    server_start(&srv);
    g_port = srv.port;
    CHECK_EQ(corio_run(one_main, NULL), 0);
    char final[512];
    server_stop(&srv, final, sizeof final);
    CHECK(final[0]);
    CHECK_EQ(stat_of(final, "accepted="), 1);
    CHECK_EQ(stat_of(final, "connections="), 0);
}

/* ---- 10,000 connections at once ------------------------------------------------- */

#define NCONN 10000
#define BATCH 500
#define PAYLOAD (128 * 1024)
#define SNDBUF (16 * 1024) /* the kernel doubles it: 32 KiB, a quarter of the payload */
/* All 10,000 connections stay open throughout; they echo in waves of 1,000
 * so that the bytes in flight (up to twice the payload per connection, plus
 * the kernel's overhead per buffer) stay well below the kernel's TCP memory
 * limit (net.ipv4.tcp_mem, about 1.5 GB of pressure threshold here): past
 * it, loopback drops segments and the retransmission back-off stalls
 * connections for tens of seconds. */
#define WAVE 1000

static unsigned char *g_pattern; /* PAYLOAD + 256 bytes; connection i uses offset i % 256 */
static int g_fds[NCONN];
static int g_connected, g_failed, g_verified;
static corio_future_t *g_wave[NCONN / WAVE];

static intptr_t writer(void *arg)
{
    int i = (int)(intptr_t)arg;
    ssize_t n = corio_send(g_fds[i], g_pattern + i % 256, PAYLOAD, CORIO_NEVER, NULL);
    return n == PAYLOAD ? 0 : n;
}

static intptr_t conn_main(void *arg)
{
    int i = (int)(intptr_t)arg;
    corio_sockaddr_t a;
    corio_sockaddr_ip(&a, "127.0.0.1", g_port);
    int fd = corio_socket(AF_INET, SOCK_STREAM, 0);
    int sz = SNDBUF;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    int rc = fd < 0 ? fd : corio_connect(fd, &a, corio_now() + 30000 * MS);
    if (rc < 0) {
        fprintf(stderr, "# connection %d: %s\n", i, corio_strerror(rc));
        g_failed++;
        g_connected++;
        return rc;
    }
    g_fds[i] = fd;
    g_connected++;
    if (corio_await(g_wave[i / WAVE], NULL) < 0)
        return -ECANCELED;
    /* The payload must not fit in the send buffer: the echo has to flow. */
    int eff = 0;
    socklen_t el = sizeof eff;
    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &eff, &el);
    CHECK(eff < PAYLOAD);
    corio_task_t *w;
    CHECK_EQ(corio_spawn(NULL, &w, writer, arg, NULL), 0);
    const unsigned char *expect = g_pattern + i % 256;
    unsigned char buf[16384];
    size_t got = 0;
    bool same = true;
    while (got < PAYLOAD) {
        ssize_t n = corio_recv(fd, buf, sizeof buf, 0, corio_now() + 60000 * MS);
        if (n <= 0) {
            /* Say where the bytes are: waiting to be read here, or unsent. */
            int inq = -1, outq = -1;
            ioctl(fd, FIONREAD, &inq);
            ioctl(fd, SIOCOUTQ, &outq);
            fprintf(stderr, "# connection %d: recv %zd after %zu bytes; readable %d, unsent %d\n",
                    i, n, got, inq, outq);
            same = false;
            break;
        }
        if (got + (size_t)n > PAYLOAD || memcmp(buf, expect + got, (size_t)n) != 0)
            same = false;
        got += (size_t)n;
    }
    CHECK_EQ(corio_task_await(w, NULL), 0);
    corio_task_release(w);
    if (same && got == PAYLOAD)
        g_verified++;
    return 0;
}

static int g_ctl;

static void ctl_say(const char *msg) { CHECK(write(g_ctl, msg, strlen(msg)) == (ssize_t)strlen(msg)); }

static void ctl_wait(const char *word)
{
    char buf[64];
    ssize_t n = corio_recv(g_ctl, buf, sizeof buf - 1, 0, corio_now() + 120000 * MS);
    CHECK(n > 0);
    buf[n] = 0;
    CHECK(strstr(buf, word));
}

static intptr_t client_main(void *arg)
{
    (void)arg;
    g_pattern = malloc(PAYLOAD + 256);
    for (size_t i = 0; i < PAYLOAD + 256; i++)
        g_pattern[i] = (unsigned char)(i * 131 + (i >> 9) * 7);
    for (int w = 0; w < NCONN / WAVE; w++)
        CHECK_EQ(corio_future_new(NULL, &g_wave[w]), 0);
    static corio_task_t *tasks[NCONN];
    corio_task_options_t topts = {.stack_size = 64 * 1024};
    /* Connect in batches, each within the listen backlog (somaxconn). */
    for (int i = 0; i < NCONN; i += BATCH) {
        for (int j = i; j < i + BATCH && j < NCONN; j++)
            CHECK_EQ(corio_spawn(NULL, &tasks[j], conn_main, (void *)(intptr_t)j, &topts), 0);
        while (g_connected < i + BATCH && g_connected < NCONN)
            corio_sleep(MS);
    }
    CHECK_EQ(g_failed, 0);
    char msg[64];
    snprintf(msg, sizeof msg, "connected %d\n", g_connected);
    ctl_say(msg);
    ctl_wait("go");
    for (int w = 0; w < NCONN / WAVE; w++) {
        corio_future_set_result(g_wave[w], corio_value_int(0));
        for (int i = w * WAVE; i < (w + 1) * WAVE; i++) {
            corio_task_await(tasks[i], NULL);
            corio_task_release(tasks[i]);
        }
    }
    snprintf(msg, sizeof msg, "verified %d\n", g_verified);
    ctl_say(msg);
    ctl_wait("bye");
    for (int i = 0; i < NCONN; i++)
        close(g_fds[i]);
    for (int w = 0; w < NCONN / WAVE; w++)
        corio_future_unref(g_wave[w]);
    free(g_pattern);
    return g_verified == NCONN ? 0 : 1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max < NCONN + 100) {
        fprintf(stderr, "# RLIMIT_NOFILE hard limit %llu is below %d\n",
                (unsigned long long)rl.rlim_max, NCONN + 100);
        exit(77);
    }
    rl.rlim_cur = rl.rlim_max;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static void ctl_read(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    CHECK(poll(&p, 1, ms) == 1);
    ssize_t n = read(fd, buf, cap - 1);
    CHECK(n > 0);
    buf[n] = 0;
}

/* Waits for a statistics line with connections=want. */
static void wait_connections(server_t *srv, unsigned long long want, int ms, char *seen, size_t cap)
{
    int64_t end = corio_now() + ms * MS;
    char line[512];
    while (corio_now() < end) {
        if (!server_line(srv, line, sizeof line, 1500))
            continue;
        snprintf(seen, cap, "%s", line);
        if (stat_of(line, "connections=") == want)
            return;
    }
    fprintf(stderr, "# last statistics: %s\n", seen);
    CHECK(!"the server never showed the expected connections");
}

static void echo_10k(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < NCONN + 100) {
        fprintf(stderr, "# RLIMIT_NOFILE hard limit too low\n");
        exit(77);
    }
    server_t srv;
    server_start(&srv);
    int ctl[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl), 0);
    int64_t t0 = corio_now();
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(ctl[0]);
        close(srv.out);
        raise_nofile();
        g_port = srv.port;
        g_ctl = ctl[1];
        intptr_t rc = corio_run(client_main, NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    close(ctl[1]);
    char msg[64], seen[512] = "";
    ctl_read(ctl[0], msg, sizeof msg, 120000);
    CHECK(strstr(msg, "connected 10000"));
    int64_t t1 = corio_now();
    /* All 10,000 are open at once, and the server's statistics say so. */
    wait_connections(&srv, NCONN, 20000, seen, sizeof seen);
    fprintf(stderr, "# server: %s\n", seen);
    CHECK(write(ctl[0], "go\n", 3) == 3);
    ctl_read(ctl[0], msg, sizeof msg, 200000);
    int64_t t2 = corio_now();
    fprintf(stderr, "# %s (connect %.1f s, echo %.1f s)\n", strtok(msg, "\n"),
            (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9);
    CHECK(strstr(msg, "verified 10000"));
    CHECK(write(ctl[0], "bye\n", 4) == 4);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    wait_connections(&srv, 0, 20000, seen, sizeof seen);
    char final[512];
    server_stop(&srv, final, sizeof final);
    fprintf(stderr, "# %s\n", final);
    CHECK_EQ(stat_of(final, "peak="), NCONN);
    CHECK_EQ(stat_of(final, "accepted="), NCONN);
    CHECK_EQ(stat_of(final, "accept_errors="), 0);
    close(ctl[0]);
}

TEST_MAIN(CASE_T(echo_one, 60), CASE_T(echo_10k, 400))
