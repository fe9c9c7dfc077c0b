/* A TCP echo server: every byte a client sends comes back.
 *
 *   echo_server PORT [HOST]
 *
 * Listens on HOST (default 127.0.0.1) and PORT (0 picks a free one), prints
 * the bound address, then one statistics line whenever the numbers change
 * (at most once a second). SIGINT or SIGTERM closes it gracefully: it stops
 * accepting, gives the open connections two seconds to finish, cancels the
 * rest, prints the final statistics and exits with status 0. */
#include <corio.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

typedef struct {
    const char *host;
    int port;
    int sigfd;
    corio_server_t *srv;
} app_t;

static intptr_t echo(corio_stream_t *s, void *arg)
{
    (void)arg;
    char buf[16384];
    for (;;) {
        ssize_t n = corio_stream_read(s, buf, sizeof buf, CORIO_NEVER);
        if (n <= 0)
            break; /* end of stream, a reset, or the server cancelled us */
        if (corio_stream_write(s, buf, (size_t)n) < 0)
            break;
        if (corio_stream_drain(s, CORIO_NEVER) < 0)
            break; /* flow control: waits while the peer does not read */
    }
    return 0;
}

static void print_stats(corio_server_t *srv, const char *prefix)
{
    corio_server_stats_t st;
    corio_server_stats(srv, &st);
    corio_loop_stats_t ls;
    corio_loop_stats(corio_loop_current(), &ls);
    printf("%sconnections=%llu peak=%llu accepted=%llu accept_errors=%llu tasks=%llu\n", prefix,
           (unsigned long long)st.connections, (unsigned long long)st.peak,
           (unsigned long long)st.accepted, (unsigned long long)st.accept_errors,
           (unsigned long long)ls.tasks_live);
    fflush(stdout);
}

static intptr_t stats_main(void *arg)
{
    app_t *app = arg;
    corio_server_stats_t last = {0};
    while (corio_sleep(CORIO_NS_PER_SEC) == 0) {
        corio_server_stats_t st;
        corio_server_stats(app->srv, &st);
        if (memcmp(&st, &last, sizeof st) != 0)
            print_stats(app->srv, "stats: ");
        last = st;
    }
    return 0;
}

static intptr_t main_task(void *arg)
{
    app_t *app = arg;
    int rc = corio_start_server(app->host, app->port, echo, NULL, NULL, &app->srv);
    if (rc < 0) {
        fprintf(stderr, "echo_server: cannot listen on %s port %d: %s\n", app->host, app->port,
                corio_strerror(rc));
        return rc;
    }
    corio_sockaddr_t a;
    char name[128];
    corio_server_sockname(app->srv, &a);
    printf("echo_server: listening on %s\n", corio_sockaddr_str(&a, name, sizeof name));
    fflush(stdout);
    corio_task_t *stats;
    corio_spawn(NULL, &stats, stats_main, app, NULL);

    /* Wait for SIGINT or SIGTERM: the signals are blocked and polled from a
     * non-blocking signalfd ten times a second. */
    struct signalfd_siginfo si = {0};
    while (read(app->sigfd, &si, sizeof si) != (ssize_t)sizeof si)
        if (corio_sleep(100 * CORIO_NS_PER_MS) < 0)
            break;
    printf("echo_server: signal %u, closing\n", si.ssi_signo);
    corio_server_close(app->srv);
    rc = corio_server_wait_closed(app->srv, corio_now() + 2 * CORIO_NS_PER_SEC);
    if (rc == -ETIMEDOUT)
        printf("echo_server: handlers cancelled after 2 s\n");
    corio_task_cancel(stats);
    corio_task_await(stats, NULL);
    corio_task_release(stats);
    print_stats(app->srv, "final: ");
    corio_server_free(app->srv);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [HOST]\n", argv[0]);
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "echo_server: bad port '%s'\n", argv[1]);
        return 2;
    }
    app_t app = {.host = argc > 2 ? argv[2] : "127.0.0.1", .port = (int)port};
    /* A server may hold many connections: raise the soft descriptor limit. */
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
    intptr_t rc = corio_run(main_task, &app);
    close(app.sigfd);
    return rc < 0 ? 1 : 0;
}
