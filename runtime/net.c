/* Sockets: addresses, listeners, and the awaitable socket calls, each one
 * kernel operation through corio__io_await (so cancellation and deadlines
 * wait for the operation's own completion before the caller's buffer goes). */
#include "internal.h"
#include "sync_internal.h"
#include "corio/executor.h"
#include "corio/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- addresses ----------------------------------------------------------- */

int corio_sockaddr_ip(corio_sockaddr_t *out, const char *host, int port)
{
    if (!out || port < 0 || port > 65535)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    if (!host || !*host) {
        out->u.in.sin_family = AF_INET;
        out->u.in.sin_port = htons((uint16_t)port);
        out->u.in.sin_addr.s_addr = htonl(INADDR_ANY);
        out->len = sizeof out->u.in;
        return 0;
    }
    if (inet_pton(AF_INET, host, &out->u.in.sin_addr) == 1) {
        out->u.in.sin_family = AF_INET;
        out->u.in.sin_port = htons((uint16_t)port);
        out->len = sizeof out->u.in;
        return 0;
    }
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = 0;
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &out->u.in6.sin6_addr) == 1) {
        out->u.in6.sin6_family = AF_INET6;
        out->u.in6.sin6_port = htons((uint16_t)port);
        out->len = sizeof out->u.in6;
        return 0;
    }
    return -EINVAL;
}

int corio_sockaddr_unix(corio_sockaddr_t *out, const char *path)
{
    if (!out || !path || !*path)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    size_t n = strlen(path);
    if (n >= sizeof out->u.un.sun_path)
        return -ENAMETOOLONG;
    out->u.un.sun_family = AF_UNIX;
    memcpy(out->u.un.sun_path, path, n + 1);
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

const char *corio_sockaddr_str(const corio_sockaddr_t *a, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (!buf || !size)
        return buf;
    buf[0] = 0;
    if (!a)
        return buf;
    switch (a->u.sa.sa_family) {
    case AF_INET:
        inet_ntop(AF_INET, &a->u.in.sin_addr, ip, sizeof ip);
        snprintf(buf, size, "%s:%u", ip, ntohs(a->u.in.sin_port));
        break;
    case AF_INET6:
        inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, sizeof ip);
        snprintf(buf, size, "[%s]:%u", ip, ntohs(a->u.in6.sin6_port));
        break;
    case AF_UNIX: {
        /* By length: a full sun_path has no NUL; an abstract name starts
         * with one (shown as @name, as ss does). */
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = a->len > off ? a->len - off : 0;
        const char *p = a->u.un.sun_path;
        if (n > sizeof a->u.un.sun_path)
            n = sizeof a->u.un.sun_path;
        if (n > 0 && p[0] == 0)
            snprintf(buf, size, "@%.*s", (int)(n - 1), p + 1);
        else
            snprintf(buf, size, "%.*s", (int)strnlen(p, n), p);
        break;
    }
    default:
        snprintf(buf, size, "(family %d)", a->u.sa.sa_family);
    }
    return buf;
}

int corio_sockaddr_port(const corio_sockaddr_t *a)
{
    if (!a)
        return -1;
    if (a->u.sa.sa_family == AF_INET)
        return ntohs(a->u.in.sin_port);
    if (a->u.sa.sa_family == AF_INET6)
        return ntohs(a->u.in6.sin6_port);
    return -1;
}

/* ---- name resolution ------------------------------------------------------ */

/* getaddrinfo may block for seconds, so it runs on the loop's default
 * thread pool (corio_run_in_executor) while the task awaits its future. The
 * request travels as bytes, copied at submit, so a cancelled task may leave
 * at once; the result is a malloc'd array of corio_sockaddr_t. */
typedef struct gai_req {
    int port, socktype;
    char host[];
} gai_req_t;

static int gai_code(int rc)
{
    switch (rc) {
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return errno ? -errno : -EIO;
    case EAI_SERVICE:
    case EAI_BADFLAGS:
    case EAI_SOCKTYPE:
    case EAI_FAMILY:
        return -EINVAL;
    default: /* EAI_NONAME, EAI_NODATA, EAI_FAIL */
        return -EADDRNOTAVAIL;
    }
}

static int gai_work(const corio_value_t *arg, corio_value_t *result)
{
    const gai_req_t *r = arg->ptr;
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    struct addrinfo hints = {.ai_socktype = r->socktype,
                             .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(r->host, port, &hints, &res);
    if (rc != 0)
        return gai_code(rc);
    size_t n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_addrlen <= sizeof(struct sockaddr_storage))
            n++;
    corio_sockaddr_t *v = n ? calloc(n, sizeof *v) : NULL;
    if (!v) {
        freeaddrinfo(res);
        return n ? -ENOMEM : -EADDRNOTAVAIL;
    }
    size_t i = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if (ai->ai_addrlen <= sizeof(struct sockaddr_storage)) {
            memcpy(&v[i].u.ss, ai->ai_addr, ai->ai_addrlen);
            v[i++].len = ai->ai_addrlen;
        }
    freeaddrinfo(res);
    result->ptr = v;
    result->len = n * sizeof *v;
    return 0;
}

static int resolve(const char *host, int port, int socktype, corio_sockaddr_t **out,
                   int64_t deadline)
{
    if (!out || port < 0 || port > 65535)
        return -EINVAL;
    *out = NULL;
    if (!corio_current_task())
        return -EDEADLK;
    /* Numeric hosts need no resolver. */
    corio_sockaddr_t a;
    if (corio_sockaddr_ip(&a, host, port) == 0) {
        *out = malloc(sizeof a);
        if (!*out)
            return -ENOMEM;
        **out = a;
        return 1;
    }
    if (!host || strlen(host) > 1024)
        return -EINVAL;
    size_t size = sizeof(gai_req_t) + strlen(host) + 1;
    gai_req_t *r = malloc(size);
    if (!r)
        return -ENOMEM;
    r->port = port;
    r->socktype = socktype ? socktype : SOCK_STREAM;
    strcpy(r->host, host);
    corio_future_t *f = NULL;
    int rc = corio_run_in_executor(NULL, gai_work, (corio_value_t){r, size}, &f);
    free(r);
    if (rc < 0)
        return rc;
    corio_value_t v = {NULL, 0};
    rc = corio_await_timeout(f, corio__timeout_for(deadline), NULL);
    if (rc == 0 && corio_future_take_result(f, &v) == 0) {
        *out = v.ptr;
        rc = (int)(v.len / sizeof(corio_sockaddr_t));
    } else if (rc == -ECANCELED || rc == -ETIMEDOUT) {
        corio_future_cancel(f); /* still queued: it never runs */
    }
    corio_future_unref(f);
    return rc;
}

int corio_getaddrinfo(const char *host, int port, int socktype, corio_sockaddr_t **out)
{
    return resolve(host, port, socktype, out, CORIO_NEVER);
}

/* ---- creating sockets ----------------------------------------------------- */

int corio_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

int corio_set_nodelay(int fd, bool on)
{
    int v = on;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) < 0)
        return errno == EOPNOTSUPP || errno == ENOPROTOOPT || errno == ENOTSUP ? 0 : -errno;
    return 0;
}

int corio_sockname(int fd, corio_sockaddr_t *out)
{
    if (!out)
        return -EINVAL;
    out->len = sizeof out->u;
    return getsockname(fd, &out->u.sa, &out->len) < 0 ? -errno : 0;
}

int corio_peername(int fd, corio_sockaddr_t *out)
{
    if (!out)
        return -EINVAL;
    out->len = sizeof out->u;
    return getpeername(fd, &out->u.sa, &out->len) < 0 ? -errno : 0;
}

enum { BIND_REUSEADDR = 1, BIND_REUSEPORT = 2 };

static int bind_socket(const corio_sockaddr_t *a, int type, int flags, corio_sockaddr_t *bound)
{
    int fd = corio_socket(a->u.sa.sa_family, type, 0);
    if (fd < 0)
        return fd;
    int one = 1;
    if (flags & BIND_REUSEADDR)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((flags & BIND_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (a->u.sa.sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, &a->u.sa, a->len) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (bound)
        corio_sockname(fd, bound);
    return fd;
}

static int listen_on(int fd, int backlog)
{
    if (fd >= 0 && listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int corio_tcp_listen_addr(const corio_sockaddr_t *addr, int backlog, bool reuse_port,
                          corio_sockaddr_t *bound)
{
    if (!addr || (addr->u.sa.sa_family != AF_INET && addr->u.sa.sa_family != AF_INET6))
        return -EINVAL;
    int flags = BIND_REUSEADDR | (reuse_port ? BIND_REUSEPORT : 0);
    return listen_on(bind_socket(addr, SOCK_STREAM, flags, bound), backlog);
}

int corio_tcp_listen(const char *host, int port, int backlog, corio_sockaddr_t *bound)
{
    corio_sockaddr_t a;
    int rc = corio_sockaddr_ip(&a, host, port);
    if (rc < 0)
        return rc;
    return corio_tcp_listen_addr(&a, backlog, false, bound);
}

int corio_unix_listen(const char *path, int backlog)
{
    corio_sockaddr_t a;
    int rc = corio_sockaddr_unix(&a, path);
    if (rc < 0)
        return rc;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    return listen_on(bind_socket(&a, SOCK_STREAM, 0, NULL), backlog);
}

int corio_udp_bind(const char *host, int port, corio_sockaddr_t *bound)
{
    corio_sockaddr_t a;
    int rc = corio_sockaddr_ip(&a, host, port);
    if (rc < 0)
        return rc;
    /* No SO_REUSEADDR: for UDP it lets a second socket bind the same port
     * and take its datagrams (asyncio dropped it for this). */
    return bind_socket(&a, SOCK_DGRAM, 0, bound);
}

/* ---- awaitable calls ------------------------------------------------------ */

static struct io_uring_sqe *sqe_for(corio_loop_t **loop, int *err)
{
    *loop = corio__tls_loop;
    if (!*loop || !(*loop)->current) {
        *err = -EDEADLK;
        return NULL;
    }
    return corio__get_sqe(*loop, err);
}

#define GET_SQE(loop, sqe)                                                     \
    corio_loop_t *loop;                                                        \
    int err_ = 0;                                                              \
    struct io_uring_sqe *sqe = sqe_for(&loop, &err_);                          \
    if (!sqe)                                                                  \
        return err_;

int corio_accept(int fd, corio_sockaddr_t *peer, int64_t deadline)
{
    GET_SQE(loop, sqe);
    if (peer)
        peer->len = sizeof peer->u;
    io_uring_prep_accept(sqe, fd, peer ? &peer->u.sa : NULL, peer ? &peer->len : NULL,
                         SOCK_CLOEXEC);
    return corio__io_await(loop, sqe, deadline, NULL);
}

int corio_connect(int fd, const corio_sockaddr_t *addr, int64_t deadline)
{
    if (!addr)
        return -EINVAL;
    GET_SQE(loop, sqe);
    io_uring_prep_connect(sqe, fd, &addr->u.sa, addr->len);
    return corio__io_await(loop, sqe, deadline, NULL);
}

/* One address after another: the caller's deadline or cancellation ends
 * the tries; the kernel's own -ETIMEDOUT (SYNs unanswered) moves on. */
static int connect_in_turn(const corio_sockaddr_t *addrs, int n, int64_t deadline)
{
    int rc = -EADDRNOTAVAIL;
    for (int i = 0; i < n; i++) {
        int fd = corio_socket(addrs[i].u.sa.sa_family, SOCK_STREAM, 0);
        if (fd < 0) {
            rc = fd;
            continue;
        }
        rc = corio_connect(fd, &addrs[i], deadline);
        if (rc == 0) {
            corio_set_nodelay(fd, true);
            return fd;
        }
        close(fd);
        if ((rc == -ECANCELED || rc == -ETIMEDOUT) && corio__interrupt_pending(deadline))
            break;
    }
    return rc;
}

/* RFC 8305's order: the first address's family, then the other, in turn,
 * each family keeping its own order. Not static: tested directly. */
void corio__interleave_families(const corio_sockaddr_t *in, int n, corio_sockaddr_t *out)
{
    int first = in[0].u.sa.sa_family, k = 0;
    int next_same = 0, next_other = 0;
    bool want_same = true;
    while (k < n) {
        int *next = want_same ? &next_same : &next_other;
        while (*next < n && (in[*next].u.sa.sa_family == first) != want_same)
            (*next)++;
        if (*next < n)
            out[k++] = in[(*next)++];
        want_same = !want_same;
    }
}

/* ---- Happy Eyeballs: a staggered race of connection attempts -------------- */

typedef struct attempt {
    corio_sockaddr_t addr;
    int64_t deadline;
    corio_task_t *task;
    bool reaped;
} attempt_t;

static intptr_t attempt_main(void *arg)
{
    attempt_t *a = arg;
    int fd = corio_socket(a->addr.u.sa.sa_family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int rc = corio_connect(fd, &a->addr, a->deadline);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* The fd or error of a finished attempt. */
static int attempt_result(attempt_t *a)
{
    a->reaped = true;
    corio_value_t v;
    int rc = corio_future_result(corio_task_future(a->task), &v);
    return rc < 0 ? rc : (int)corio_value_as_int(v);
}

typedef struct race {
    attempt_t *at;
    corio_future_t **pending, **done;
    int n, started, fd, err;
    int limit;          /* attempts that may start: n, less after a spawn failed */
    int64_t next_start; /* when the next attempt may start without a failure */
} race_t;

static int race_start_next(race_t *r, int64_t delay)
{
    attempt_t *a = &r->at[r->started];
    int rc = corio_spawn(NULL, &a->task, attempt_main, a,
                         &(corio_task_options_t){.name = "connect-attempt"});
    if (rc < 0)
        return rc;
    r->started++;
    r->next_start = corio__deadline_after(corio_now(), delay);
    return 0;
}

/* Reaps the attempts that finished: the first connection wins. */
static void race_reap(race_t *r, size_t ndone)
{
    for (size_t i = 0; i < ndone; i++)
        for (int j = 0; j < r->started; j++) {
            attempt_t *a = &r->at[j];
            if (a->reaped || corio_task_future(a->task) != r->done[i])
                continue;
            int rc = attempt_result(a);
            if (rc >= 0 && r->fd < 0)
                r->fd = rc;
            else if (rc >= 0)
                close(rc); /* connected in the same turn as the winner */
            else {
                r->err = rc;
                r->next_start = corio_now(); /* a failure starts the next at once */
            }
        }
}

/* Lists the attempts still running in r->pending; returns how many. */
static size_t race_pending(race_t *r)
{
    size_t np = 0;
    for (int j = 0; j < r->started; j++)
        if (!r->at[j].reaped)
            r->pending[np++] = corio_task_future(r->at[j].task);
    return np;
}

/* Waits for an attempt to finish or the next start time; false when the
 * race is over: a connection, every attempt failed (r->err is the last
 * error), the deadline, or the caller cancelled. */
static bool race_step(race_t *r, int64_t delay, int64_t deadline)
{
    if (r->fd >= 0 || (race_pending(r) == 0 && r->started == r->limit))
        return false;
    int why = corio__interrupt_pending(deadline); /* also tells the scopes whose deadline it was */
    if (why) {
        r->err = why;
        return false;
    }
    if (r->started < r->limit && corio_now() >= r->next_start) {
        int rc = race_start_next(r, delay);
        if (rc < 0) { /* no more attempts; those running go on */
            r->err = rc;
            r->limit = r->started;
        }
    }
    size_t np = race_pending(r);
    if (np == 0 && r->started == r->limit)
        return false;
    int64_t until = r->started < r->limit && r->next_start < deadline ? r->next_start : deadline;
    size_t ndone = 0;
    int rc = np ? corio_wait(r->pending, np, corio__timeout_for(until), CORIO_FIRST_COMPLETED,
                             r->done, &ndone, NULL, NULL)
                : corio_sleep(corio__time_until(until));
    if (rc < 0) {
        r->err = rc;
        return false;
    }
    race_reap(r, ndone);
    return true;
}

/* The attempts still running are cancelled and awaited, whatever happened
 * to the caller; one that connected all the same is closed. */
static void race_finish(race_t *r)
{
    for (int j = 0; j < r->started; j++) {
        attempt_t *a = &r->at[j];
        if (!a->reaped) {
            corio_task_cancel(a->task);
            corio__await_shielded(corio_task_future(a->task));
            int rc = attempt_result(a);
            if (rc >= 0)
                close(rc);
        }
        corio_task_release(a->task);
    }
}

int corio_tcp_connect_addrs(const corio_sockaddr_t *addrs, int n, int64_t delay_ns,
                            int64_t deadline)
{
    if (!addrs || n <= 0)
        return -EINVAL;
    if (!corio_current_task())
        return -EDEADLK;
    if (n == 1 || delay_ns < 0)
        return connect_in_turn(addrs, n, deadline);
    race_t r = {.n = n, .limit = n, .fd = -1, .err = -EADDRNOTAVAIL, .next_start = corio_now()};
    r.at = calloc((size_t)n, sizeof *r.at);
    corio_sockaddr_t *order = calloc((size_t)n, sizeof *order);
    r.pending = calloc((size_t)n, sizeof *r.pending);
    r.done = calloc((size_t)n, sizeof *r.done);
    bool ready = r.at && order && r.pending && r.done;
    if (ready) {
        corio__interleave_families(addrs, n, order);
        for (int i = 0; i < n; i++)
            r.at[i] = (attempt_t){.addr = order[i], .deadline = deadline};
    } else {
        r.err = -ENOMEM;
    }
    while (ready && race_step(&r, delay_ns, deadline))
        ;
    if (r.at)
        race_finish(&r);
    free(r.at);
    free(order);
    free(r.pending);
    free(r.done);
    if (r.fd >= 0)
        corio_set_nodelay(r.fd, true);
    return r.fd >= 0 ? r.fd : r.err;
}

int corio_tcp_connect(const char *host, int port, int64_t deadline)
{
    corio_sockaddr_t *addrs = NULL;
    int n = resolve(host, port, SOCK_STREAM, &addrs, deadline);
    if (n < 0)
        return n;
    int rc = corio_tcp_connect_addrs(addrs, n, CORIO_CONNECT_DELAY, deadline);
    free(addrs);
    return rc;
}

int corio_unix_connect(const char *path, int64_t deadline)
{
    corio_sockaddr_t a;
    int rc = corio_sockaddr_unix(&a, path);
    if (rc < 0)
        return rc;
    int fd = corio_socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    rc = corio_connect(fd, &a, deadline);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

ssize_t corio_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
    GET_SQE(loop, sqe);
    io_uring_prep_recv(sqe, fd, buf, corio__io_len(len), flags);
    return corio__io_await(loop, sqe, deadline, NULL);
}

ssize_t corio_send_some(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
    GET_SQE(loop, sqe);
    io_uring_prep_send(sqe, fd, buf, corio__io_len(len), flags | MSG_NOSIGNAL);
    return corio__io_await(loop, sqe, deadline, NULL);
}

ssize_t corio_send(int fd, const void *buf, size_t len, int64_t deadline, size_t *sent)
{
    size_t done = 0;
    ssize_t rc = 0;
    while (done < len) {
        /* MSG_WAITALL makes the kernel retry a short send itself. */
        rc = corio_send_some(fd, (const char *)buf + done, len - done, MSG_WAITALL, deadline);
        if (rc < 0)
            break;
        done += (size_t)rc;
    }
    if (sent)
        *sent = done;
    return rc < 0 ? rc : (ssize_t)done;
}

ssize_t corio_sendto(int fd, const void *buf, size_t len, int flags, const corio_sockaddr_t *to,
                     int64_t deadline)
{
    GET_SQE(loop, sqe);
    struct iovec iov = {(void *)buf, corio__io_len(len)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (to) {
        msg.msg_name = (void *)&to->u.sa;
        msg.msg_namelen = to->len;
    }
    io_uring_prep_sendmsg(sqe, fd, &msg, (unsigned)flags | MSG_NOSIGNAL);
    return corio__io_await(loop, sqe, deadline, NULL);
}

ssize_t corio_recvfrom(int fd, void *buf, size_t len, int flags, corio_sockaddr_t *from,
                       int64_t deadline)
{
    GET_SQE(loop, sqe);
    struct iovec iov = {buf, corio__io_len(len)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (from) {
        msg.msg_name = &from->u.sa;
        msg.msg_namelen = sizeof from->u;
    }
    io_uring_prep_recvmsg(sqe, fd, &msg, (unsigned)flags);
    int rc = corio__io_await(loop, sqe, deadline, NULL);
    if (from) {
        from->len = msg.msg_namelen;
        if (rc < 0 || from->len == 0)
            from->u.sa.sa_family = AF_UNSPEC; /* an unnamed sender: no stale bytes */
    }
    return rc;
}

/* shutdown and close are always done: through the ring from a task, at
 * once otherwise (a cancelled task, a callback, no SQE to be had). */
static struct io_uring_sqe *sqe_unless_interrupted(corio_loop_t **loop)
{
    int err = 0;
    if (!corio_current_task() || corio__interrupt_pending(CORIO_NEVER))
        return NULL;
    return sqe_for(loop, &err);
}

int corio_shutdown(int fd, int how)
{
    corio_loop_t *loop;
    struct io_uring_sqe *sqe = sqe_unless_interrupted(&loop);
    if (!sqe)
        return shutdown(fd, how) < 0 ? -errno : 0;
    io_uring_prep_shutdown(sqe, fd, how);
    return corio__io_await(loop, sqe, CORIO_NEVER, NULL);
}

int corio_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    corio_loop_t *loop;
    struct io_uring_sqe *sqe = sqe_unless_interrupted(&loop);
    if (sqe) {
        io_uring_prep_close(sqe, fd);
        return corio__io_await(loop, sqe, CORIO_NEVER, NULL);
    }
    /* Operations queued this turn may name fd: they go to the kernel
     * first, or they would find the number reused by the next open. */
    loop = corio__tls_loop;
    if (loop && !loop->closed)
        corio__submit_queued(loop);
    return close(fd) < 0 ? -errno : 0;
}
