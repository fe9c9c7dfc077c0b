/* Servers: one accepting task per listening socket, a task per connection,
 * and a graceful close that waits for the handlers up to a deadline. */
#include "internal.h"
#include "corio/net.h"
#include "corio/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct conn {
    struct corio_server *srv;
    corio_stream_t *stream;
    corio_task_t *task;
    struct conn *prev, *next;
} conn_t;

struct corio_server {
    corio_loop_t *loop;
    int fd;
    bool made_fd; /* by start_server: nobody else holds the listener */
    char *unix_path; /* start_unix_server's socket file, removed at close */
    dev_t unix_dev;
    ino_t unix_ino;
    corio_client_fn fn;
    void *arg;
    corio_server_options_t opts;
    corio_task_t *acceptor;
    conn_t *conns;
    corio_server_stats_t stats;
    corio_future_t *closed_fut; /* done once the server is closed */
    corio_future_t *idle_fut;   /* done when the last handler ends after close */
    bool closing, acceptor_done;
};

static void report(corio_server_t *srv, const char *msg, int code)
{
    corio_error_context_t ctx = {.message = msg, .code = code, .task_name = "server"};
    corio_loop_report(srv->loop, &ctx);
}

static intptr_t conn_main(void *arg)
{
    conn_t *c = arg;
    c->srv->fn(c->stream, c->srv->arg);
    /* A handler's error belongs to the handler: the connection is over. */
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
    corio_server_t *srv = arg;
    int64_t backoff = srv->opts.emfile_backoff_ns > 0 ? srv->opts.emfile_backoff_ns
                                                      : 100 * CORIO_NS_PER_MS;
    bool out_of_fds = false;
    while (!srv->closing) {
        int fd = corio_accept(srv->fd, NULL, CORIO_NEVER);
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
    (void)f;
    corio_server_t *srv = arg;
    srv->acceptor_done = true;
    if (srv->fd >= 0) {
        close(srv->fd);
        srv->fd = -1;
    }
}

int corio_server_adopt(int listen_fd, corio_client_fn on_client, void *arg,
                       const corio_server_options_t *opts, corio_server_t **out)
{
    if (!out || listen_fd < 0 || !on_client)
        return -EINVAL;
    *out = NULL;
    corio_loop_t *loop = corio__tls_loop;
    if (!loop)
        return -EINVAL;
    /* Anything but a listening socket would fail every accept, forever. */
    int listening = 0;
    socklen_t optlen = sizeof listening;
    if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) < 0)
        return -errno;
    if (!listening)
        return -EINVAL;
    corio_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    srv->fd = listen_fd;
    srv->fn = on_client;
    srv->arg = arg;
    if (opts)
        srv->opts = *opts;
    int rc = corio_future_new(loop, &srv->closed_fut);
    if (rc == 0)
        rc = corio_spawn(loop, &srv->acceptor, accept_main, srv,
                         &(corio_task_options_t){.name = "server-accept"});
    if (rc == 0)
        rc = corio_future_add_done_callback(corio_task_future(srv->acceptor), acceptor_done, srv);
    if (rc < 0) {
        if (srv->acceptor) {
            corio_task_cancel(srv->acceptor);
            corio_task_release(srv->acceptor);
        }
        if (srv->closed_fut)
            corio_future_unref(srv->closed_fut);
        free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int corio_start_server(const char *host, int port, corio_client_fn on_client, void *arg,
                       const corio_server_options_t *opts, corio_server_t **out)
{
    if (!out || !on_client)
        return -EINVAL;
    *out = NULL;
    int fd = corio_tcp_listen(host, port, opts ? opts->backlog : 0, NULL);
    if (fd < 0)
        return fd;
    int rc = corio_server_adopt(fd, on_client, arg, opts, out);
    if (rc < 0)
        close(fd);
    else
        (*out)->made_fd = true;
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
    if (!srv || srv->fd < 0)
        return -EBADF;
    return corio_sockname(srv->fd, out);
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
    if (!corio_task_done(srv->acceptor))
        corio_task_cancel(srv->acceptor);
    /* Stop listening now, as asyncio does: shutdown ends the accept in
     * flight at once; the file itself stays referenced by that operation
     * until its completion. Not for an adopted listener: another process
     * (systemd, a pre-forked sibling) may share it and go on listening. */
    remove_unix_path(srv);
    if (srv->fd >= 0) {
        if (srv->made_fd)
            shutdown(srv->fd, SHUT_RDWR);
        corio__submit_queued(srv->loop); /* an accept queued this turn */
        close(srv->fd);
        srv->fd = -1;
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
    if (rc < 0)
        return rc;
    if (!srv->acceptor_done) {
        rc = corio_task_await(srv->acceptor, NULL);
        if (rc == -ECANCELED && corio_current_task() && corio_task_cancelling(corio_current_task()))
            return rc;
        /* Let its done-callback (which closes the socket) run. */
        while (!srv->acceptor_done) {
            rc = corio_sleep(0);
            if (rc < 0)
                return rc;
        }
    }
    return result;
}

int corio_server_free(corio_server_t *srv)
{
    if (!srv)
        return 0;
    if (!srv->closing || srv->stats.connections > 0 || !srv->acceptor_done)
        return -EBUSY;
    corio_task_release(srv->acceptor);
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
