/* A libuv echo server for bench/run_net.sh, written the way libuv's own
 * benchmark-pump and echo servers are: uv_read_start, and each read handed
 * to uv_write (which tries the write at once), its buffer freed in the
 * write callback.
 *
 *   uv_echo PORT        (prints "listening on 127.0.0.1:PORT") */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static uv_loop_t *loop;

static void on_close(uv_handle_t *h) { free(h); }

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    (void)size;
    buf->base = malloc(65536);
    buf->len = 65536;
}

static void after_write(uv_write_t *req, int status)
{
    write_req_t *wr = (write_req_t *)req;
    uv_stream_t *s = req->handle;
    free(wr->buf.base);
    free(wr);
    if (status < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_close);
}

static void after_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread <= 0) {
        free(buf->base);
        if (nread < 0 && !uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_close);
        return;
    }
    write_req_t *wr = malloc(sizeof *wr);
    wr->buf = uv_buf_init(buf->base, (unsigned)nread);
    if (uv_write(&wr->req, s, &wr->buf, 1, after_write) < 0) {
        free(buf->base);
        free(wr);
        uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(loop, c);
    if (uv_accept(server, (uv_stream_t *)c) == 0) {
        uv_tcp_nodelay(c, 1);
        uv_read_start((uv_stream_t *)c, alloc_cb, after_read);
    } else {
        uv_close((uv_handle_t *)c, on_close);
    }
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) ||
        uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection)) {
        fprintf(stderr, "uv_echo: cannot listen\n");
        return 1;
    }
    int len = sizeof addr;
    uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
    printf("uv_echo: listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
