/* corio streams: buffered reading and writing on a connected socket, and
 * servers that run a task per connection (asyncio's StreamReader,
 * StreamWriter, open_connection and start_server).
 *
 * A stream is one object for both directions. It belongs to its loop's
 * thread; one task at a time may read (another gets -EBUSY), any task may
 * write. Awaitable calls run in a task and take a deadline (absolute
 * monotonic ns, or CORIO_NEVER); the task's timeout scope and cancellation
 * apply, as in net.h.
 *
 * Writing never blocks: corio_stream_write copies the bytes into the
 * stream's buffer and the stream sends them in the background.
 * corio_stream_drain is the flow control: it suspends while more than the
 * high-water mark is buffered, until the buffer is down to the low-water
 * mark. A send error (the peer reset, -EPIPE) is kept and returned by the
 * next write or drain. */
#ifndef CORIO_STREAM_H
#define CORIO_STREAM_H

#include "common.h"
#include "net.h"

CORIO_BEGIN_DECLS

typedef struct corio_stream corio_stream_t;

typedef struct corio_stream_options {
    size_t limit;      /* readline/readuntil: separator search limit; 0: 65536 */
    size_t high_water; /* drain waits above this many buffered bytes; 0: 65536 */
    size_t low_water;  /* ...until at most this many remain; 0: high_water / 4 */
} corio_stream_options_t;

/* Adopts a connected socket fd (the stream now owns it and closes it).
 * opts may be NULL. Returns 0 and *out, -EINVAL or -ENOMEM (fd not closed
 * then). Loop thread. */
CORIO_API int corio_stream_new(int fd, const corio_stream_options_t *opts, corio_stream_t **out);

/* open_connection: resolves host without blocking the loop (names allowed),
 * races its addresses by Happy Eyeballs (corio_tcp_connect), and wraps the
 * connected socket (TCP_NODELAY set). Returns 0 and *out, or the connection error (-ECONNREFUSED,
 * -EADDRNOTAVAIL for an unknown host, -EINVAL for a bad port, -ETIMEDOUT).
 * Task only. */
CORIO_API int corio_open_connection(const char *host, int port, const corio_stream_options_t *opts,
                                    int64_t deadline, corio_stream_t **out);
CORIO_API int corio_open_unix_connection(const char *path, const corio_stream_options_t *opts,
                                         int64_t deadline, corio_stream_t **out);

/* The socket, still owned by the stream. */
CORIO_API int corio_stream_fd(const corio_stream_t *s);

/* ---- reading (task only) -------------------------------------------------- */

/* Reads up to n bytes (n > 0) into buf: returns the count, 0 at end of
 * stream, or an error (-ECONNRESET, -ECANCELED, -ETIMEDOUT, -EBUSY when
 * another task is reading). */
CORIO_API ssize_t corio_stream_read(corio_stream_t *s, void *buf, size_t n, int64_t deadline);

/* Reads exactly n bytes into buf: returns n, or CORIO_EINCOMPLETE when the
 * stream ended first, with the partial bytes in buf and their count in
 * *partial (may be NULL); other errors also set *partial. */
CORIO_API ssize_t corio_stream_readexactly(corio_stream_t *s, void *buf, size_t n, size_t *partial,
                                           int64_t deadline);

/* Reads up to and including the separator sep (seplen > 0 bytes). Returns
 * 0 with *data pointing into the stream's buffer and *len its length,
 * separator included; the bytes stay valid until the next read call or
 * corio_stream_free. Errors:
 * - CORIO_ELIMITOVERRUN: no separator within the limit; nothing is consumed,
 *   *data and *len show what is buffered, and it stays readable;
 * - CORIO_EINCOMPLETE: the stream ended first; *data and *len hold the
 *   partial bytes, which are consumed;
 * - a receive error (-ECONNRESET, ...): likewise, the bytes before it are
 *   in *data and *len, consumed; later reads return the error. */
CORIO_API int corio_stream_readuntil(corio_stream_t *s, const void *sep, size_t seplen,
                                     const char **data, size_t *len, int64_t deadline);
/* readuntil("\n"), except that at end of stream it returns 0 with the
 * partial line (*len == 0 once everything was read). */
CORIO_API int corio_stream_readline(corio_stream_t *s, const char **data, size_t *len,
                                    int64_t deadline);
/* True when the peer ended the stream and every byte was read. */
CORIO_API bool corio_stream_at_eof(const corio_stream_t *s);
/* Bytes buffered and not yet read. */
CORIO_API size_t corio_stream_read_buffered(const corio_stream_t *s);

/* ---- writing (loop thread) ------------------------------------------------ */

/* Queues n bytes (copied) and starts sending them. Returns 0, -ENOMEM, the
 * stored send error, -EPIPE after write_eof or close, or -EINVAL once the
 * stream's loop is closed. */
CORIO_API int corio_stream_write(corio_stream_t *s, const void *buf, size_t n);
/* Flow control: returns at once below the high-water mark or once the
 * stream is closed, else waits until the buffer drains to the low-water
 * mark. Returns 0, the send error, -ECANCELED or -ETIMEDOUT. Task only. */
CORIO_API int corio_stream_drain(corio_stream_t *s, int64_t deadline);
/* Bytes written and not yet accepted by the kernel. */
CORIO_API size_t corio_stream_write_buffered(const corio_stream_t *s);
/* Sends end-of-stream (shutdown SHUT_WR) once the buffered bytes are sent.
 * Returns 0, -EPIPE after close, or the stored send error. */
CORIO_API int corio_stream_write_eof(corio_stream_t *s);

/* Sends count bytes of the file fd from offset, after what is buffered, and
 * waits as drain does. Page-cached data is read without waiting; the rest
 * is read through the ring. Returns count, CORIO_EINCOMPLETE when the file
 * is shorter, a read error, the send error, or -EPIPE when the stream is
 * closed (by another task) before all of it is queued. Task only. */
CORIO_API ssize_t corio_stream_sendfile(corio_stream_t *s, int fd, off_t offset, size_t count,
                                        int64_t deadline);

/* Opens path below the directory dirfd and never outside it: openat2 with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, so `..`, absolute paths and
 * symbolic links that leave the directory fail with -EXDEV (a kernel
 * guarantee, not a string check). flags as for open(2); O_CLOEXEC is
 * added. A lookup the dentry cache can answer is made at once
 * (RESOLVE_CACHED); others go through the ring. The open never waits for
 * the other end of a FIFO or device (it is made with O_NONBLOCK, which is
 * then cleared unless flags hold it, as io_uring's own open does): a FIFO
 * without a reader gives -ENXIO for writing. Returns the fd or -errno.
 * Task only. */
CORIO_API int corio_open_beneath(int dirfd, const char *path, int flags, int64_t deadline);

/* ---- closing ---------------------------------------------------------------- */

/* Starts closing: buffered bytes are still sent, then the socket is closed.
 * Reads in progress end with 0. Loop thread; idempotent. */
CORIO_API void corio_stream_close(corio_stream_t *s);
/* Waits until the socket is closed (buffered bytes sent or failed). Returns
 * 0, the send error (-EPIPE or -ECONNRESET from a peer that went away,
 * before or after an abort; what abort itself discards is not an error),
 * -ECANCELED or -ETIMEDOUT. Task only. */
CORIO_API int corio_stream_wait_closed(corio_stream_t *s, int64_t deadline);
/* Closes (as corio_stream_close) and releases the stream; its memory goes
 * once the kernel has finished with it (at the latest when its loop
 * closes). Loop thread. Also allowed after the loop is closed, but before
 * it is freed: the socket is closed and the memory released at once. */
CORIO_API void corio_stream_free(corio_stream_t *s);
/* Closes at once: buffered bytes are dropped, sends in flight cancelled. */
CORIO_API void corio_stream_abort(corio_stream_t *s);

/* ---- servers ------------------------------------------------------------------ */

typedef struct corio_server corio_server_t;

/* Runs in a task of its own for each connection. The server owns s: when
 * the handler returns it closes s and sends what is buffered as long as the
 * peer takes some of it within each close timeout; a peer that stopped
 * reading is cut off (aborted). A cancelled handler's connection is
 * aborted. */
typedef intptr_t (*corio_client_fn)(corio_stream_t *s, void *arg);

typedef struct corio_server_options {
    int backlog;                  /* listen backlog; 0: SOMAXCONN */
    size_t stack_size;            /* handler task stacks; 0: the default */
    corio_stream_options_t stream; /* for each connection's stream */
    int64_t emfile_backoff_ns;    /* pause after EMFILE/ENFILE; 0: 100 ms */
    bool reuse_port;              /* SO_REUSEPORT: processes share the port */
    int64_t close_timeout_ns;     /* a peer taking none of what a handler left
                                     for this long is cut off; 0: 30 s, < 0: never */
} corio_server_options_t;

/* start_server: listens on host and port, SO_REUSEADDR set, and starts
 * accepting: each connection runs on_client(stream, arg) in a new task.
 * As with asyncio, host NULL or "" means every interface, IPv4 (0.0.0.0)
 * and IPv6 (::, skipped on a kernel without IPv6); a numeric address
 * ("127.0.0.1", "::1") is used as it is; a name ("localhost") is resolved
 * on the loop's default thread pool and every address it has is listened
 * on, which needs a task (-EDEADLK outside one). Of several addresses, one
 * this host lacks (EADDRNOTAVAIL, EAFNOSUPPORT) is skipped while another
 * binds. Port 0 picks one free port, the same on every address (see
 * corio_server_port). Returns 0 and
 * *out, or -EINVAL (bad port, no loop), -EADDRNOTAVAIL (unknown name),
 * -EADDRINUSE, ... Loop thread. */
CORIO_API int corio_start_server(const char *host, int port, corio_client_fn on_client, void *arg,
                                 const corio_server_options_t *opts, corio_server_t **out);
/* The same on a Unix socket path; closing the server removes the socket
 * file (unless another socket has taken the path since). */
CORIO_API int corio_start_unix_server(const char *path, corio_client_fn on_client, void *arg,
                                      const corio_server_options_t *opts, corio_server_t **out);
/* The same on a listening socket the caller made (the server now owns it).
 * -ENOTSOCK for a descriptor that is no socket, -EINVAL for a socket that
 * is not listening; on failure the caller keeps listen_fd. */
CORIO_API int corio_server_adopt(int listen_fd, corio_client_fn on_client, void *arg,
                                 const corio_server_options_t *opts, corio_server_t **out);

/* The bound port (IP servers; the same on every address), or -1. */
CORIO_API int corio_server_port(const corio_server_t *srv);
/* The first listening socket's address; -EBADF once closed. */
CORIO_API int corio_server_sockname(const corio_server_t *srv, corio_sockaddr_t *out);
/* asyncio's Server.sockets: writes the address of up to max listening
 * sockets to out and returns how many the server has (0 once closed). */
CORIO_API int corio_server_socknames(const corio_server_t *srv, corio_sockaddr_t *out, int max);

/* Waits until the server is closed. Returns 0, -ECANCELED (the server goes
 * on: close it), -ETIMEDOUT. Task only. */
CORIO_API int corio_server_serve_forever(corio_server_t *srv, int64_t deadline);

/* Stops accepting and closes the listening sockets; open connections go
 * on. Listeners the server made are shut down at once; an adopted one is
 * only closed, as other processes may share it. Loop thread; idempotent. */
CORIO_API void corio_server_close(corio_server_t *srv);
/* Graceful close: waits for the handlers to finish (and the bytes they
 * left to go) until deadline, then cancels those left, which aborts their
 * connections, and waits for them. Returns 0, or -ETIMEDOUT when
 * handlers had to be cancelled. Call after corio_server_close. Task only. */
CORIO_API int corio_server_wait_closed(corio_server_t *srv, int64_t deadline);
/* Frees a closed server whose handlers are done (-EBUSY otherwise). */
CORIO_API int corio_server_free(corio_server_t *srv);

typedef struct corio_server_stats {
    uint64_t connections;   /* open right now (handlers running) */
    uint64_t accepted;      /* since start */
    uint64_t peak;          /* most open at once */
    uint64_t accept_errors; /* failed accepts (EMFILE and others) */
} corio_server_stats_t;
CORIO_API int corio_server_stats(const corio_server_t *srv, corio_server_stats_t *out);

CORIO_END_DECLS

#endif
