/* A plain epoll echo server, the baseline for bench/run_net.sh: one thread,
 * non-blocking sockets, level-triggered; a read is written straight back,
 * and what the socket does not take waits for EPOLLOUT.
 *
 *   epoll_echo PORT        (prints "listening on 127.0.0.1:PORT")
 *
 * Built with -DBUSY_POLL (epoll_echo_spin) it never sleeps: epoll_wait with
 * a zero timeout in a loop. That is the bound for any server that answers a
 * lone connection faster by staying awake: its CPU time per round trip is
 * the whole round trip. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    char *pend; /* bytes the socket did not take yet */
    size_t plen;
} conn_t;

static void drop(int ep, conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, SOMAXCONN) < 0) {
        perror("listen");
        return 1;
    }
    getsockname(l, (struct sockaddr *)&a, &al);
    printf("epoll_echo: listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static char buf[65536];
    struct epoll_event evs[256];
    for (;;) {
#ifdef BUSY_POLL
        int n = epoll_wait(ep, evs, 256, 0);
#else
        int n = epoll_wait(ep, evs, 256, -1);
#endif
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                ssize_t w = write(c->fd, c->pend, c->plen);
                if (w > 0) {
                    memmove(c->pend, c->pend + w, c->plen - (size_t)w);
                    c->plen -= (size_t)w;
                }
                if (c->plen == 0) {
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
                }
                continue;
            }
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                drop(ep, c);
                continue;
            }
            if (r < 0)
                continue;
            ssize_t w = write(c->fd, buf, (size_t)r);
            if (w < 0 && errno != EAGAIN) {
                drop(ep, c);
                continue;
            }
            if (w < r) {
                /* Flow control: stop reading until the rest is written. */
                size_t left = (size_t)(r - (w < 0 ? 0 : w));
                c->pend = realloc(c->pend, left);
                memcpy(c->pend, buf + (r - (ssize_t)left), left);
                c->plen = left;
                struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
            }
        }
    }
}
