/* corio sockets: awaitable socket calls on io_uring.
 *
 * Every awaitable call runs in a task of the loop that owns the calling
 * thread and takes a deadline: an absolute monotonic time in nanoseconds
 * (corio_now() based), or CORIO_NEVER. The task's timeout scope applies too.
 * On cancellation or expiry the kernel operation is cancelled and the call
 * returns only after the kernel has finished with the caller's buffer, with
 * -ECANCELED or -ETIMEDOUT. Outside a task the calls return -EDEADLK.
 *
 * Descriptors are plain file descriptors, created close-on-exec; the caller
 * owns them and closes them with corio_close (or close(2)). Errors are
 * negative errno values; resolver failures are -EADDRNOTAVAIL (no such
 * host) or -EAGAIN (temporary). */
#ifndef CORIO_NET_H
#define CORIO_NET_H

#include "common.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <netinet/in.h>

CORIO_BEGIN_DECLS

/* A socket address of any family, with its length. */
typedef struct corio_sockaddr {
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_un un;
        struct sockaddr_storage ss;
    } u;
    socklen_t len;
} corio_sockaddr_t;

/* Fills out from a numeric IPv4 or IPv6 host ("127.0.0.1", "::1", "[::1]")
 * and a port in 0..65535. NULL or "" means the IPv4 wildcard. Returns 0, or
 * -EINVAL for a bad host or port (no name resolution: see
 * corio_getaddrinfo). Any thread. */
CORIO_API int corio_sockaddr_ip(corio_sockaddr_t *out, const char *host, int port);
/* Fills out with a Unix socket path; -ENAMETOOLONG when it does not fit. */
CORIO_API int corio_sockaddr_unix(corio_sockaddr_t *out, const char *path);
/* Writes "1.2.3.4:80", "[::1]:80" or the Unix path into buf; returns buf. */
CORIO_API const char *corio_sockaddr_str(const corio_sockaddr_t *a, char *buf, size_t size);
/* The port of an IP address, or -1. */
CORIO_API int corio_sockaddr_port(const corio_sockaddr_t *a);

/* Resolves host and port without blocking the loop: getaddrinfo runs on
 * the loop's default thread pool while the task waits. socktype is
 * SOCK_STREAM or SOCK_DGRAM. On success returns the number of addresses
 * (> 0) and *out, an array the caller frees with free(). Task only. */
CORIO_API int corio_getaddrinfo(const char *host, int port, int socktype, corio_sockaddr_t **out);

/* ---- creating sockets (no waiting: plain system calls) --------------------- */

/* socket(2), close-on-exec. Returns the fd or a negative errno. */
CORIO_API int corio_socket(int domain, int type, int protocol);

/* A listening TCP socket on a numeric host (NULL or "" binds 0.0.0.0) and
 * port (0 picks a free one). Sets SO_REUSEADDR. backlog <= 0 means
 * SOMAXCONN. If bound is non-NULL it receives the bound address (and so the
 * chosen port). Returns the fd, -EINVAL for a bad host or port,
 * -EADDRINUSE, -EACCES, ... Any thread. */
CORIO_API int corio_tcp_listen(const char *host, int port, int backlog, corio_sockaddr_t *bound);
/* The same on an IPv4 or IPv6 address (-EINVAL for another family). An
 * IPv6 listener is IPv6-only, so an IPv4 one may share its port. With
 * reuse_port, SO_REUSEPORT too: several sockets (processes) listen on one
 * port and the kernel spreads the connections. Any thread. */
CORIO_API int corio_tcp_listen_addr(const corio_sockaddr_t *addr, int backlog, bool reuse_port,
                                    corio_sockaddr_t *bound);
/* A listening Unix stream socket at path (an existing socket file there is
 * replaced). */
CORIO_API int corio_unix_listen(const char *path, int backlog);
/* A UDP socket bound to a numeric host and port (port 0 picks one). No
 * SO_REUSEADDR: a port already bound gives -EADDRINUSE. */
CORIO_API int corio_udp_bind(const char *host, int port, corio_sockaddr_t *bound);
/* The local address of a socket (getsockname); returns 0 or -errno. */
CORIO_API int corio_sockname(int fd, corio_sockaddr_t *out);
CORIO_API int corio_peername(int fd, corio_sockaddr_t *out);
/* Sets TCP_NODELAY (a no-op returning 0 on non-TCP sockets). */
CORIO_API int corio_set_nodelay(int fd, bool on);

/* ---- awaitable calls (task only) ------------------------------------------ */

/* Accepts one connection: returns the new fd (close-on-exec) and, if peer
 * is non-NULL, its address. -EMFILE/-ENFILE when out of descriptors. */
CORIO_API int corio_accept(int fd, corio_sockaddr_t *peer, int64_t deadline);
/* Connects fd to addr. Returns 0, -ECONNREFUSED, -ENETUNREACH, ... */
CORIO_API int corio_connect(int fd, const corio_sockaddr_t *addr, int64_t deadline);
/* Resolves host (names allowed) and connects a TCP socket, racing its
 * addresses by Happy Eyeballs with CORIO_CONNECT_DELAY (see
 * corio_tcp_connect_addrs). Returns the connected fd with TCP_NODELAY set,
 * or the last address's error. */
CORIO_API int corio_tcp_connect(const char *host, int port, int64_t deadline);
/* Happy Eyeballs (RFC 8305), asyncio's happy_eyeballs_delay: 250 ms. */
#define CORIO_CONNECT_DELAY (250 * CORIO_NS_PER_MS)
/* Connects to one of addrs[0..n). With delay_ns >= 0 the attempts race,
 * staggered: the addresses are ordered by family in turn (the first one's
 * family first), each attempt starts when the one before failed or has not
 * connected within delay_ns, the first connection wins and the others are
 * cancelled. With delay_ns < 0 one address after another, each until the
 * kernel gives up on it. Returns the fd (TCP_NODELAY set) or the last
 * error; -ETIMEDOUT at the deadline, -EINVAL for no addresses. Task only. */
CORIO_API int corio_tcp_connect_addrs(const corio_sockaddr_t *addrs, int n, int64_t delay_ns,
                                      int64_t deadline);
/* Connects a Unix stream socket to path; returns the fd. */
CORIO_API int corio_unix_connect(const char *path, int64_t deadline);

/* One receive: returns the count (0 at end of stream) or a negative errno
 * (-ECONNRESET on a peer reset). flags as for recv(2). */
CORIO_API ssize_t corio_recv(int fd, void *buf, size_t len, int flags, int64_t deadline);
/* One send, possibly partial: returns the count sent. */
CORIO_API ssize_t corio_send_some(int fd, const void *buf, size_t len, int flags, int64_t deadline);
/* Sends all len bytes (MSG_NOSIGNAL: a closed peer gives -EPIPE, never
 * SIGPIPE). Returns len, or an error; if sent is non-NULL it receives the
 * bytes sent before the error. */
CORIO_API ssize_t corio_send(int fd, const void *buf, size_t len, int64_t deadline, size_t *sent);
/* Datagrams: one message to or from an address (sendmsg/recvmsg). */
CORIO_API ssize_t corio_sendto(int fd, const void *buf, size_t len, int flags,
                               const corio_sockaddr_t *to, int64_t deadline);
CORIO_API ssize_t corio_recvfrom(int fd, void *buf, size_t len, int flags,
                                 corio_sockaddr_t *from, int64_t deadline);
/* shutdown and close take no deadline: neither waits for the peer, and a
 * close under way cannot be cancelled anyway (the kernel finishes it). A
 * cancelled task still gets them done, synchronously. */
/* shutdown(2) on the ring (SHUT_RD, SHUT_WR, SHUT_RDWR). */
CORIO_API int corio_shutdown(int fd, int how);
/* Closes fd through the ring. Outside a task, in a cancelled one, or with
 * no SQE to be had it is close(2), after the operations already queued
 * (which may name fd) went to the kernel. The fd is closed in every case. */
CORIO_API int corio_close(int fd);

CORIO_END_DECLS

#endif
