/* The echo load generator, one client for every server compared: plain
 * epoll, one thread. Each of N connections sends a message, waits for the
 * whole echo, and sends the next (ping-pong). After a warm-up it counts
 * round trips for a fixed time and reads the server's CPU time (user +
 * system, from /proc/PID/stat) over the same interval.
 *
 *   bench_echo_client PORT CONNECTIONS SECONDS [MSG_BYTES [SERVER_PID]]
 *
 * Prints parseable lines: `echo_rtt_per_sec VALUE round-trips/s` and, with
 * a server pid, `echo_server_cpu_ns VALUE ns/round-trip`. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    size_t got;
} conn_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of a process, in seconds. */
static double cpu_of(int pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command may contain spaces */
    if (!p)
        return -1;
    unsigned long utime = 0, stime = 0;
    /* Fields after ")": state(3) ... utime(14) stime(15). */
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            utime = strtoul(tok, NULL, 10);
        else if (field == 15) {
            stime = strtoul(tok, NULL, 10);
            break;
        }
    }
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s PORT CONNECTIONS SECONDS [MSG_BYTES [SERVER_PID]]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), nconn = atoi(argv[2]);
    double secs = atof(argv[3]);
    size_t msg = argc > 4 ? (size_t)atoi(argv[4]) : 64;
    int spid = argc > 5 ? atoi(argv[5]) : 0;
    if (nconn <= 0 || msg == 0 || msg > 65536)
        return 2;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    char *out = malloc(msg), *in = malloc(65536);
    memset(out, 'x', msg);
    conn_t *c = calloc((size_t)nconn, sizeof *c);
    int ep = epoll_create1(0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nconn; i++) {
        c[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c[i].fd, (struct sockaddr *)&a, sizeof a) < 0) {
            perror("connect");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    for (int i = 0; i < nconn; i++)
        if (send(c[i].fd, out, msg, MSG_NOSIGNAL) != (ssize_t)msg) {
            perror("send");
            return 1;
        }
    struct epoll_event evs[256];
    double warm = now_s() + (secs > 2 ? 0.5 : secs / 4);
    double t0 = 0, end = 0, cpu0 = 0;
    unsigned long long count = 0;
    bool measuring = false;
    for (;;) {
        double t = now_s();
        if (!measuring && t >= warm) {
            measuring = true;
            t0 = t;
            end = t0 + secs;
            count = 0;
            cpu0 = spid ? cpu_of(spid) : 0;
        }
        if (measuring && t >= end)
            break;
        int n = epoll_wait(ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            conn_t *cc = evs[k].data.ptr;
            ssize_t r = recv(cc->fd, in, 65536, 0);
            if (r <= 0) {
                fprintf(stderr, "connection closed by the server (%s)\n",
                        r < 0 ? strerror(errno) : "EOF");
                return 1;
            }
            cc->got += (size_t)r;
            if (cc->got >= msg) {
                cc->got -= msg;
                count++;
                if (send(cc->fd, out, msg, MSG_NOSIGNAL) != (ssize_t)msg) {
                    perror("send");
                    return 1;
                }
            }
        }
    }
    double elapsed = now_s() - t0;
    double cpu1 = spid ? cpu_of(spid) : 0;
    printf("echo_rtt_per_sec %.0f round-trips/s\n", (double)count / elapsed);
    if (spid)
        printf("echo_server_cpu_ns %.0f ns/round-trip\n", (cpu1 - cpu0) * 1e9 / (double)count);
    for (int i = 0; i < nconn; i++)
        close(c[i].fd);
    free(c);
    free(out);
    free(in);
    return 0;
}
