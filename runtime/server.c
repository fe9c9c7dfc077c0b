/* Servers: one accepting task per listening socket, a task per connection,
 * and a graceful close that waits for the handlers up to a deadline. */
#include "internal.h"
#include "corio/net.h"
#include "corio/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct conn {
    struct corio_server *srv;
    corio_stream_t *stream;
    corio_task_t *task;
    struct conn *prev, *next;
} conn_t;

/* One listening socket and the task accepting on it. */
typedef struct listener {
    struct corio_server *srv;
    int fd;
    corio_task_t *acceptor;
    bool done; /* the acceptor finished and the socket is closed */
} listener_t;

struct corio_server {
    corio_loop_t *loop;
    listener_t *ls; /* one per bound address */
    int nls;
    bool made_fd; /* by start_server: nobody else holds the listeners */
    char *unix_path; /* start_unix_server's socket file, removed at close */
    dev_t unix_dev;
    ino_t unix_ino;
    corio_client_fn fn;
    void *arg;
    corio_server_options_t opts;
    conn_t *conns;
    corio_server_stats_t stats;
    corio_future_t *closed_fut; /* done once the server is closed */
    corio_future_t *idle_fut;   /* done when the last handler ends after close */
    bool closing;
};

static void report(corio_server_t *srv, const char *msg, int code)
{
    corio_error_context_t ctx = {.message = msg, .code = code, .task_name = "server"};
    corio_loop_report(srv->loop, &ctx);
}

/* A mark that moves while the peer takes data: TCP's count of acked bytes
 * (a send in flight hides how much of it went), what waits in the stream's
 * buffer, and what waits in the socket's. */
typedef struct progress {
    uint64_t acked;
    size_t buffered;
    int outq;
} progress_t;

static progress_t progress_of(corio_stream_t *s)
{
    progress_t p = {.buffered = corio_stream_write_buffered(s)};
    int fd = corio_stream_fd(s);
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        len >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked)
        p.acked = ti.tcpi_bytes_acked;
    if (ioctl(fd, SIOCOUTQ, &p.outq) < 0)
        p.outq = -1;
    return p;
}

/* Sends what the handler left buffered while the peer takes it: one that
 * takes nothing for the close timeout (as nginx's send_timeout) must not
 * hold the connection for ever, and is cut off. A cancelled handler's
 * connection is aborted at once. */
static void close_conn(corio_server_t *srv, corio_stream_t *s)
{
    int64_t t = srv->opts.close_timeout_ns;
    if (t == 0)
        t = 30 * CORIO_NS_PER_SEC;
    corio_stream_close(s);
    progress_t last = progress_of(s);
    int rc;
    for (;;) {
        int64_t deadline = t < 0 ? CORIO_NEVER : corio__deadline_after(corio_now(), t);
        rc = corio_stream_wait_closed(s, deadline);
        if (rc != -ETIMEDOUT)
            break;
        progress_t now = progress_of(s);
        if (now.acked == last.acked && now.buffered == last.buffered && now.outq == last.outq)
            break; /* nothing moved for a whole timeout */
        last = now;
    }
    if (rc == -ETIMEDOUT) {
        /* A reset: the kernel keeps nothing queued for a peer that reads nothing. */
        struct linger reset = {.l_onoff = 1, .l_linger = 0};
        setsockopt(corio_stream_fd(s), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        corio_stream_abort(s);
}

static intptr_t conn_main(void *arg)
{
    conn_t *c = arg;
    c->srv->fn(c->stream, c->srv->arg);
    /* A handler's error belongs to the handler: the connection is over. */
    close_conn(c->srv, c->stream);
    return 0;
}

/* Cleans up after the handler, as a done-callback so that it also runs for
 * a handler cancelled before it started. */
static void conn_done(corio_future_t *f, void *arg)
{
    (void)f;
    conn_t *c = arg;
    corio_server_t *srv = c->srv;
    corio_stream_free(c->stream);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->stats.connections--;
    if (srv->stats.connections == 0 && srv->idle_fut && !corio_future_done(srv->idle_fut))
        corio_future_set_result(srv->idle_fut, corio_value_int(0));
    corio_task_release(c->task);
    free(c);
}

/* Takes fd: on failure it is closed, once (by the stream when there is one). */
static int start_conn(corio_server_t *srv, int fd)
{
    conn_t *c = calloc(1, sizeof *c);
    int rc = c ? corio_stream_new(fd, &srv->opts.stream, &c->stream) : -ENOMEM;
    if (rc < 0) {
        free(c);
        close(fd);
        return rc;
    }
    c->srv = srv;
    corio_task_options_t topts = {.name = "conn", .stack_size = srv->opts.stack_size};
    rc = corio_spawn(srv->loop, &c->task, conn_main, c, &topts);
    if (rc == 0) {
        rc = corio_future_add_done_callback(corio_task_future(c->task), conn_done, c);
        if (rc < 0) {
            corio_task_cancel(c->task);
            corio_task_release(c->task);
        }
    }
    if (rc < 0) {
        corio_stream_free(c->stream);
        free(c);
        return rc;
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->stats.accepted++;
    if (++srv->stats.connections > srv->stats.peak)
        srv->stats.peak = srv->stats.connections;
    return 0;
}

void corio_server_close(corio_server_t *srv);

static intptr_t accept_main(void *arg)
{
    listener_t *l = arg;
    corio_server_t *srv = l->srv;
    int64_t backoff = srv->opts.emfile_backoff_ns > 0 ? srv->opts.emfile_backoff_ns
                                                      : 100 * CORIO_NS_PER_MS;
    bool out_of_fds = false;
    while (!srv->closing) {
        int fd = corio_accept(l->fd, NULL, CORIO_NEVER);
        if (fd == -ECANCELED || fd == -ETIMEDOUT)
            break;
        if (fd < 0) {
            if (srv->closing)
                break; /* the listening socket was shut down */
            srv->stats.accept_errors++;
            if (fd == -ECONNABORTED || fd == -EINTR || fd == -EAGAIN || fd == -EPROTO)
                continue;
            if (fd == -EINVAL || fd == -EBADF || fd == -ENOTSOCK || fd == -EOPNOTSUPP) {
                /* The socket stopped listening (another holder of an
                 * adopted listener shut it down): no pause helps. */
                report(srv, "accept: the socket no longer listens; closing the server", fd);
                corio_server_close(srv);
                break;
            }
            /* Out of descriptors (or memory): the pending connection stays
             * in the backlog. Say so once per episode, and pause instead of
             * retrying at once, which would spin. */
            if (!out_of_fds || (fd != -EMFILE && fd != -ENFILE))
                report(srv, fd == -EMFILE || fd == -ENFILE
                                ? "accept: out of file descriptors; pausing accepts"
                                : "accept failed; pausing accepts",
                       fd);
            out_of_fds = fd == -EMFILE || fd == -ENFILE;
            if (corio_sleep(backoff) < 0)
                break;
            continue;
        }
        out_of_fds = false;
        if (srv->closing) { /* accepted as close began: not served */
            close(fd);
            break;
        }
        int rc = start_conn(srv, fd);
        if (rc < 0) {
            report(srv, "cannot start a connection handler", rc);
            if (corio_sleep(backoff) < 0)
                break;
        }
    }
    return 0;
}

static void acceptor_done(corio_future_t *f, void *arg)
{
    listener_t *l = arg;
    l->done = true;
    /* Ended with the server open: it failed to start (no stack to be had)
     * and this address no longer accepts. Said, not silent. */
    int code = corio_future_exception(f, NULL);
    if (!l->srv->closing && code < 0)
        report(l->srv, "a listener stopped accepting", code);
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

/* Undoes what server_new set up: the acceptors never ran (a task cancelled
 * before its first turn does not start), and the fds stay the caller's. */
static void server_discard(corio_server_t *srv)
{
    for (int i = 0; i < srv->nls; i++) {
        listener_t *l = &srv->ls[i];
        if (!l->acceptor)
            continue;
        corio_future_remove_done_callback(corio_task_future(l->acceptor), acceptor_done, l);
        corio_task_cancel(l->acceptor);
        corio_task_release(l->acceptor);
    }
    if (srv->closed_fut)
        corio_future_unref(srv->closed_fut);
    free(srv->ls);
    free(srv);
}

/* A server accepting on each of n listening sockets. On failure the caller
 * keeps the fds. */
static int server_new(const int *fds, int n, corio_client_fn on_client, void *arg,
                      const corio_server_options_t *opts, corio_server_t **out)
{
    corio_loop_t *loop = corio__tls_loop;
    if (!loop)
        return -EINVAL;
    corio_server_t *srv = calloc(1, sizeof *srv);
    listener_t *ls = srv ? calloc((size_t)n, sizeof *ls) : NULL;
    if (!ls) {
        free(srv);
        return -ENOMEM;
    }
    srv->loop = loop;
    srv->ls = ls;
    srv->nls = n;
    srv->fn = on_client;
    srv->arg = arg;
    if (opts)
        srv->opts = *opts;
    int rc = corio_future_new(loop, &srv->closed_fut);
    for (int i = 0; i < n && rc == 0; i++) {
        ls[i] = (listener_t){.srv = srv, .fd = fds[i]};
        rc = corio_spawn(loop, &ls[i].acceptor, accept_main, &ls[i],
                         &(corio_task_options_t){.name = "server-accept"});
        if (rc == 0)
            rc = corio_future_add_done_callback(corio_task_future(ls[i].acceptor), acceptor_done,
                                                &ls[i]);
    }
    if (rc < 0) {
        server_discard(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int corio_server_adopt(int listen_fd, corio_client_fn on_client, void *arg,
                       const corio_server_options_t *opts, corio_server_t **out)
{
    if (!out || listen_fd < 0 || !on_client)
        return -EINVAL;
    *out = NULL;
    if (!corio__tls_loop)
        return -EINVAL;
    /* Anything but a listening socket would fail every accept, forever. */
    int listening = 0;
    socklen_t optlen = sizeof listening;
    if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) < 0)
        return -errno;
    if (!listening)
        return -EINVAL;
    return server_new(&listen_fd, 1, on_client, arg, opts, out);
}

/* ---- the addresses start_server listens on ------------------------------------ */

/* Drops repeated addresses, keeping the first of each in order (/etc/hosts
 * may list ::1 both as localhost and ip6-localhost); returns the count
 * left. Not static: tested directly. */
int corio__unique_addrs(corio_sockaddr_t *a, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < k && !seen; j++)
            seen = a[i].len == a[j].len && memcmp(&a[i].u, &a[j].u, a[i].len) == 0;
        if (!seen)
            a[k++] = a[i];
    }
    return k;
}

/* The addresses for host, as asyncio's start_server takes them: every
 * interface of both families for NULL or "", a numeric address as it is,
 * and a name resolved (off the loop's thread) to all its addresses. Returns
 * their count and a malloc'd array in *out. */
static int server_addrs(const char *host, int port, corio_sockaddr_t **out)
{
    corio_sockaddr_t a;
    int rc = corio_sockaddr_ip(&a, host, port);
    if (rc < 0 && (!host || !*host))
        return rc; /* a bad port */
    if (rc == 0) {
        bool wildcard = !host || !*host;
        *out = calloc(wildcard ? 2 : 1, sizeof a);
        if (!*out)
            return -ENOMEM;
        (*out)[0] = a;
        if (!wildcard)
            return 1;
        corio_sockaddr_ip(&(*out)[1], "::", port); /* the port was checked above */
        return 2;
    }
    if (port < 0 || port > 65535)
        return -EINVAL;
    if (!corio_current_task())
        return -EDEADLK; /* resolving would block the loop's thread */
    int n = corio_getaddrinfo(host, port, SOCK_STREAM, out);
    return n > 0 ? corio__unique_addrs(*out, n) : n;
}

static void set_port(corio_sockaddr_t *a, int port)
{
    if (a->u.sa.sa_family == AF_INET)
        a->u.in.sin_port = htons((uint16_t)port);
    else
        a->u.in6.sin6_port = htons((uint16_t)port);
}

/* An address whose family the kernel lacks, or that is not this host's
 * (IPv6 disabled: bind gives EADDRNOTAVAIL), is skipped while another one
 * binds, as asyncio does (bpo-30945). */
static bool skippable(int err)
{
    return err == -EAFNOSUPPORT || err == -EADDRNOTAVAIL;
}

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* Listens on every address, with one port for all of them: port 0 takes the
 * port the first one got, and a clash on a later address starts over with
 * a new pick. Returns the number of fds written to fds. */
static int listen_all(corio_sockaddr_t *addrs, int n, int port, const corio_server_options_t *opts,
                      int *fds)
{
    int backlog = opts ? opts->backlog : 0;
    bool reuse_port = opts && opts->reuse_port;
    for (int attempt = 0; attempt < 16; attempt++) {
        int k = 0, rc = 0, picked = port;
        for (int i = 0; i < n && rc == 0; i++) {
            corio_sockaddr_t a = addrs[i], bound;
            set_port(&a, picked);
            int fd = corio_tcp_listen_addr(&a, backlog, reuse_port, &bound);
            if (fd >= 0) {
                fds[k++] = fd;
                picked = corio_sockaddr_port(&bound);
            } else if (!skippable(fd) || (i == n - 1 && k == 0)) {
                rc = fd;
            }
        }
        if (rc == 0)
            return k;
        close_all(fds, k);
        if (rc != -EADDRINUSE || port != 0 || k == 0)
            return rc;
    }
    return -EADDRINUSE;
}

int corio_start_server(const char *host, int port, corio_client_fn on_client, void *arg,
                       const corio_server_options_t *opts, corio_server_t **out)
{
    if (!out || !on_client)
        return -EINVAL;
    *out = NULL;
    if (!corio__tls_loop)
        return -EINVAL;
    corio_sockaddr_t *addrs = NULL;
    int n = server_addrs(host, port, &addrs); /* > 0 or an error */
    if (n < 0)
        return n;
    int *fds = calloc((size_t)n, sizeof *fds);
    int rc = fds ? listen_all(addrs, n, port, opts, fds) : -ENOMEM;
    free(addrs);
    if (rc > 0) {
        n = rc;
        rc = server_new(fds, n, on_client, arg, opts, out);
        if (rc < 0)
            close_all(fds, n);
        else
            (*out)->made_fd = true;
    }
    free(fds);
    return rc;
}

int corio_start_unix_server(const char *path, corio_client_fn on_client, void *arg,
                            const corio_server_options_t *opts, corio_server_t **out)
{
    if (!out || !on_client)
        return -EINVAL;
    *out = NULL;
    int fd = corio_unix_listen(path, opts ? opts->backlog : 0);
    if (fd < 0)
        return fd;
    struct stat st; /* the file bind made (fstat would give the socket's inode) */
    char *copy = strdup(path);
    int rc = !copy ? -ENOMEM : lstat(path, &st) < 0 ? -errno : 0;
    if (rc == 0)
        rc = corio_server_adopt(fd, on_client, arg, opts, out);
    if (rc < 0) {
        free(copy);
        close(fd);
        unlink(path); /* made just now by corio_unix_listen */
        return rc;
    }
    (*out)->made_fd = true;
    (*out)->unix_path = copy;
    (*out)->unix_dev = st.st_dev;
    (*out)->unix_ino = st.st_ino;
    return 0;
}

/* Removes the server's socket file, unless another socket took its name. */
static void remove_unix_path(corio_server_t *srv)
{
    struct stat st;
    if (srv->unix_path && lstat(srv->unix_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == srv->unix_dev && st.st_ino == srv->unix_ino)
        unlink(srv->unix_path);
    free(srv->unix_path);
    srv->unix_path = NULL;
}

int corio_server_sockname(const corio_server_t *srv, corio_sockaddr_t *out)
{
    if (!srv || srv->closing)
        return -EBADF;
    return corio_sockname(srv->ls[0].fd, out);
}

int corio_server_socknames(const corio_server_t *srv, corio_sockaddr_t *out, int max)
{
    if (!srv || max < 0 || (max > 0 && !out))
        return -EINVAL;
    if (srv->closing)
        return 0;
    for (int i = 0; i < srv->nls && i < max; i++) {
        int rc = corio_sockname(srv->ls[i].fd, &out[i]);
        if (rc < 0)
            return rc;
    }
    return srv->nls;
}

int corio_server_port(const corio_server_t *srv)
{
    corio_sockaddr_t a;
    if (corio_server_sockname(srv, &a) < 0)
        return -1;
    return corio_sockaddr_port(&a);
}

int corio_server_serve_forever(corio_server_t *srv, int64_t deadline)
{
    if (!srv)
        return -EINVAL;
    return corio_await_timeout(srv->closed_fut, corio__timeout_for(deadline), NULL);
}

void corio_server_close(corio_server_t *srv)
{
    if (!srv || srv->closing)
        return;
    srv->closing = true;
    for (int i = 0; i < srv->nls; i++)
        if (!corio_task_done(srv->ls[i].acceptor))
            corio_task_cancel(srv->ls[i].acceptor);
    /* Stop listening now, as asyncio does: shutdown ends the accept in
     * flight at once; the file itself stays referenced by that operation
     * until its completion. Not for an adopted listener: another process
     * (systemd, a pre-forked sibling) may share it and go on listening. */
    remove_unix_path(srv);
    for (int i = 0; i < srv->nls; i++)
        if (srv->made_fd && srv->ls[i].fd >= 0)
            shutdown(srv->ls[i].fd, SHUT_RDWR);
    corio__submit_queued(srv->loop); /* an accept queued this turn */
    for (int i = 0; i < srv->nls; i++)
        if (srv->ls[i].fd >= 0) {
            close(srv->ls[i].fd);
            srv->ls[i].fd = -1;
        }
    if (!corio_future_done(srv->closed_fut))
        corio_future_set_result(srv->closed_fut, corio_value_int(0));
}

static int wait_idle(corio_server_t *srv, int64_t deadline)
{
    while (srv->stats.connections > 0) {
        if (!srv->idle_fut || corio_future_done(srv->idle_fut)) {
            if (srv->idle_fut)
                corio_future_unref(srv->idle_fut);
            srv->idle_fut = NULL;
            int rc = corio_future_new(srv->loop, &srv->idle_fut);
            if (rc < 0)
                return rc;
        }
        int rc = corio_await_timeout(srv->idle_fut, corio__timeout_for(deadline), NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool acceptors_done(const corio_server_t *srv)
{
    for (int i = 0; i < srv->nls; i++)
        if (!srv->ls[i].done)
            return false;
    return true;
}

/* Waits for the acceptors, and for their done-callbacks, which close the
 * sockets. */
static int wait_acceptors(corio_server_t *srv)
{
    for (int i = 0; i < srv->nls; i++) {
        if (srv->ls[i].done)
            continue;
        int rc = corio_task_await(srv->ls[i].acceptor, NULL);
        if (rc == -ECANCELED && corio_current_task() && corio_task_cancelling(corio_current_task()))
            return rc;
    }
    while (!acceptors_done(srv)) {
        int rc = corio_sleep(0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int corio_server_wait_closed(corio_server_t *srv, int64_t deadline)
{
    if (!srv)
        return -EINVAL;
    if (!srv->closing)
        corio_server_close(srv);
    int rc = wait_idle(srv, deadline);
    int result = 0;
    if (rc == -ETIMEDOUT) {
        /* Past the deadline: cancel the handlers left and wait for them. */
        for (conn_t *c = srv->conns; c; c = c->next)
            corio_task_cancel(c->task);
        result = -ETIMEDOUT;
        rc = wait_idle(srv, CORIO_NEVER);
    }
    if (rc == 0)
        rc = wait_acceptors(srv);
    return rc < 0 ? rc : result;
}

int corio_server_free(corio_server_t *srv)
{
    if (!srv)
        return 0;
    if (!srv->closing || srv->stats.connections > 0 || !acceptors_done(srv))
        return -EBUSY;
    for (int i = 0; i < srv->nls; i++)
        corio_task_release(srv->ls[i].acceptor);
    free(srv->ls);
    corio_future_unref(srv->closed_fut);
    if (srv->idle_fut)
        corio_future_unref(srv->idle_fut);
    free(srv);
    return 0;
}

int corio_server_stats(const corio_server_t *srv, corio_server_stats_t *out)
{
    if (!srv || !out)
        return -EINVAL;
    *out = srv->stats;
    return 0;
}
