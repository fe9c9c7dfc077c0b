/* Process workers' side: naming functions across processes, the spawn
 * take-over before main, and the worker loop.
 *
 * A spawned worker is this program started afresh with CORIO_WORKER set in
 * its environment. The constructor below sees it and runs the worker loop
 * instead of main. A function is named by (module, offset from the module's
 * load address): the worker loads the same modules (at other addresses, so
 * ASLR and static functions work) and finds each by name. */
#include "executor_internal.h"

#include <errno.h>
#include <link.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct module {
    char *name;
    uintptr_t base;
} module_t;

/* Written once, by the constructor, before any thread exists. */
static module_t *g_modules;
static size_t g_nmodules;

static int collect_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    module_t *m = realloc(g_modules, (g_nmodules + 1) * sizeof *m);
    if (!m)
        return 1;
    g_modules = m;
    m[g_nmodules].name = strdup(info->dlpi_name ? info->dlpi_name : "");
    m[g_nmodules].base = info->dlpi_addr;
    if (m[g_nmodules].name)
        g_nmodules++;
    return 0;
}

size_t corio__module_count(void)
{
    return g_nmodules;
}

const char *corio__module_name(size_t i)
{
    return g_modules[i].name;
}

typedef struct find_addr {
    uintptr_t addr;
    uintptr_t base;
    const char *name;
} find_addr_t;

static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    find_addr_t *fa = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && fa->addr >= start && fa->addr < start + ph->p_memsz) {
            fa->base = info->dlpi_addr;
            fa->name = info->dlpi_name ? info->dlpi_name : "";
            return 1;
        }
    }
    return 0;
}

int corio__fn_name(const void *fn, uint32_t *module, uint64_t *offset)
{
    find_addr_t fa = {(uintptr_t)fn, 0, NULL};
    if (!dl_iterate_phdr(find_module, &fa))
        return CORIO_ENONAME;
    /* Only a module loaded at start is loaded, by name, in a fresh worker. */
    for (size_t i = 0; i < g_nmodules; i++)
        if (g_modules[i].base == fa.base && strcmp(g_modules[i].name, fa.name) == 0) {
            *module = (uint32_t)i;
            *offset = (uint64_t)(fa.addr - fa.base);
            return 0;
        }
    return CORIO_ENONAME;
}

/* ---- the worker ------------------------------------------------------------- */

typedef struct worker {
    int sock;
    uintptr_t *bases; /* the parent's module i loads here; 0 when absent */
    size_t nbases;
    int max_tasks;
} worker_t;

/* The worker reads ahead, so a stream of small tasks costs a few reads per
 * batch. Each result is written before the next task runs: a result held
 * back would die with the worker if that task crashed, and the parent
 * would blame the wrong task. Only the worker's main thread uses these. */
#define WORKER_BUF 65536
static char g_in[WORKER_BUF];
static size_t g_in_start, g_in_end;

static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len) {
        if (g_in_start < g_in_end) {
            size_t n = g_in_end - g_in_start < len ? g_in_end - g_in_start : len;
            memcpy(p, g_in + g_in_start, n);
            g_in_start += n;
            p += n;
            len -= n;
            continue;
        }
        bool direct = len >= WORKER_BUF;
        ssize_t r = recv(fd, direct ? p : g_in, direct ? len : WORKER_BUF, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (direct) {
            p += r;
            len -= (size_t)r;
        } else {
            g_in_start = 0;
            g_in_end = (size_t)r;
        }
    }
    return 0;
}

static int write_iov(int fd, struct iovec *iov, size_t niov)
{
    while (niov) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = niov < 1024 ? niov : 1024};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        while (niov && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            niov--;
        }
        if (niov) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static _Noreturn void worker_exit(int status)
{
    fflush(NULL);
    _exit(status);
}

static int send_hdr(int sock, uint32_t type, int32_t code)
{
    corio_wire_hdr_t h = {type, code, 0, 0};
    struct iovec iov = {&h, sizeof h};
    return write_iov(sock, &iov, 1);
}

static void *resolve(worker_t *w, const corio_wire_fn_t *fn)
{
    if (fn->module == CORIO_FN_ABSOLUTE)
        return (void *)(uintptr_t)fn->offset;
    if (fn->module >= w->nbases || !w->bases[fn->module])
        return NULL;
    return (void *)(w->bases[fn->module] + fn->offset);
}

/* Reads n items' table and bytes into args; the bytes are malloc'd. */
static int read_items(int sock, size_t n, corio_value_t *args, bool compact)
{
    if (compact) {
        /* In place: value i lands at byte 8i and moves to 16i, walking
         * down, so no value is overwritten before it is read. */
        char *buf = (char *)args;
        if (read_full(sock, buf, n * sizeof(uint64_t)) < 0)
            return -1;
        for (size_t i = n; i-- > 0;) {
            uint64_t v;
            memcpy(&v, buf + i * sizeof v, sizeof v);
            args[i] = (corio_value_t){(void *)(uintptr_t)v, 0};
        }
        return 0;
    }
    corio_wire_item_t *t = malloc((n ? n : 1) * sizeof *t);
    if (!t || read_full(sock, t, n * sizeof *t) < 0) {
        free(t);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        args[i].len = t[i].len;
        args[i].ptr = (void *)(uintptr_t)t[i].value;
        if (rc == 0 && t[i].len) {
            args[i].ptr = malloc(t[i].len);
            if (!args[i].ptr || read_full(sock, args[i].ptr, t[i].len) < 0)
                rc = -1;
        } else if (t[i].len) {
            args[i].ptr = NULL;
        }
    }
    free(t);
    return rc;
}

/* Runs one item; a failure drops whatever bytes it returned. */
static int run_item(corio_executor_fn fn, corio_value_t *arg, corio_value_t *res)
{
    *res = (corio_value_t){NULL, 0};
    int rc = fn ? fn(arg, res) : CORIO_ENONAME;
    if (rc > 0)
        rc = 0;
    if (rc < 0 && res->len) {
        free(res->ptr);
        *res = (corio_value_t){NULL, 0};
    }
    return rc;
}

/* The general RESULT: a table and every item's bytes. Items [0, from)
 * already ran and are pointer-sized values in vals; res holds item from. */
static int reply_full(worker_t *w, corio_executor_fn fn, corio_value_t *args, size_t n,
                      const uint64_t *vals, size_t from, int from_rc, corio_value_t from_res)
{
    /* Every entry is written below: no zeroing of these arrays. */
    corio_wire_item_t *t = malloc((n ? n : 1) * sizeof *t);
    corio_value_t *res = malloc((n ? n : 1) * sizeof *res);
    struct iovec *iov = malloc((n + 2) * sizeof *iov);
    if (!t || !res || !iov)
        worker_exit(70);
    corio_wire_hdr_t h = {CORIO_MSG_RESULT, 0, n, n * sizeof *t};
    size_t niov = 2;
    for (size_t i = 0; i < n; i++) {
        int rc = i == from ? from_rc : 0;
        if (i < from)
            res[i] = (corio_value_t){(void *)(uintptr_t)vals[i], 0};
        else if (i == from)
            res[i] = from_res;
        else
            rc = run_item(fn, &args[i], &res[i]);
        t[i] = (corio_wire_item_t){rc, 0, res[i].len,
                                   res[i].len ? 0 : (uint64_t)(uintptr_t)res[i].ptr};
        if (res[i].len) {
            iov[niov++] = (struct iovec){res[i].ptr, res[i].len};
            h.len += res[i].len;
        }
    }
    iov[0] = (struct iovec){&h, sizeof h};
    iov[1] = (struct iovec){t, n * sizeof *t};
    int rc = write_iov(w->sock, iov, niov);
    for (size_t i = 0; i < n; i++)
        if (res[i].len)
            free(res[i].ptr);
    free(t);
    free(res);
    free(iov);
    return rc;
}

/* Runs fn over args and sends the RESULT message: compact (n values) while
 * every item succeeds with a pointer-sized value, the common case of tiny
 * tasks; the general form from the first item that does not. */
static int run_and_reply(worker_t *w, corio_executor_fn fn, corio_value_t *args, size_t n)
{
    uint64_t *vals = malloc((n ? n : 1) * sizeof *vals);
    if (!vals)
        worker_exit(70);
    for (size_t i = 0; i < n; i++) {
        corio_value_t res;
        int rc = run_item(fn, &args[i], &res);
        if (rc < 0 || res.len) {
            rc = reply_full(w, fn, args, n, vals, i, rc, res);
            free(vals);
            return rc;
        }
        vals[i] = (uint64_t)(uintptr_t)res.ptr;
    }
    corio_wire_hdr_t h = {CORIO_MSG_RESULT, CORIO_WIRE_COMPACT, n, n * sizeof *vals};
    struct iovec iov[2] = {{&h, sizeof h}, {vals, n * sizeof *vals}};
    int rc = write_iov(w->sock, iov, 2);
    free(vals);
    return rc;
}

static int handle_task(worker_t *w, const corio_wire_hdr_t *h)
{
    corio_wire_fn_t fn;
    corio_value_t *args = malloc((h->n ? h->n : 1) * sizeof *args);
    if (!args)
        worker_exit(70);
    if (read_full(w->sock, &fn, sizeof fn) < 0 ||
        read_items(w->sock, h->n, args, h->code & CORIO_WIRE_COMPACT) < 0)
        worker_exit(0); /* the parent went away mid-message */
    int rc = run_and_reply(w, (corio_executor_fn)resolve(w, &fn), args, h->n);
    for (size_t i = 0; i < h->n; i++)
        if (args[i].len)
            free(args[i].ptr);
    free(args);
    return rc;
}

static int find_base(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    find_addr_t *fa = arg;
    if (strcmp(info->dlpi_name ? info->dlpi_name : "", fa->name) != 0)
        return 0;
    fa->base = info->dlpi_addr;
    return 1;
}

/* Reads the INIT message: the parent's module names, max tasks, initializer. */
static void handle_init(worker_t *w)
{
    corio_wire_hdr_t h;
    uint32_t nmods;
    if (read_full(w->sock, &h, sizeof h) < 0 || h.type != CORIO_MSG_INIT ||
        read_full(w->sock, &nmods, sizeof nmods) < 0)
        worker_exit(0);
    w->max_tasks = h.code;
    w->nbases = nmods;
    w->bases = calloc(nmods ? nmods : 1, sizeof *w->bases);
    if (!w->bases)
        worker_exit(70);
    for (uint32_t i = 0; i < nmods; i++) {
        uint32_t len;
        char name[4096];
        if (read_full(w->sock, &len, sizeof len) < 0 || len >= sizeof name ||
            read_full(w->sock, name, len) < 0)
            worker_exit(0);
        name[len] = 0;
        find_addr_t fa = {0, 0, name};
        if (dl_iterate_phdr(find_base, &fa))
            w->bases[i] = fa.base;
    }
    corio_wire_fn_t fn;
    corio_value_t arg;
    if (read_full(w->sock, &fn, sizeof fn) < 0 || read_items(w->sock, 1, &arg, false) < 0)
        worker_exit(0);
    corio_initializer_fn init = h.n ? (corio_initializer_fn)resolve(w, &fn) : NULL;
    int rc = h.n && !init ? CORIO_ENONAME : init ? init(&arg) : 0;
    if (arg.len)
        free(arg.ptr);
    if (rc != 0) {
        send_hdr(w->sock, CORIO_MSG_INIT_FAILED, rc);
        worker_exit(3);
    }
    if (send_hdr(w->sock, CORIO_MSG_READY, 0) < 0)
        worker_exit(0);
}

/* The lifeline's write end lives only in the parent: when the parent
 * process dies, however its threads went, the pipe reports a hang-up. */
static void *lifeline_watch(void *arg)
{
    struct pollfd pfd = {(int)(intptr_t)arg, POLLIN, 0};
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    _exit(1);
}

_Noreturn void corio__worker_main(int sock, int lifeline)
{
    pthread_t t;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&t, NULL, lifeline_watch, (void *)(intptr_t)lifeline) != 0)
        worker_exit(71);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    worker_t w = {.sock = sock};
    handle_init(&w);
    for (int done = 0; w.max_tasks <= 0 || done < w.max_tasks; done++) {
        corio_wire_hdr_t h;
        if (read_full(sock, &h, sizeof h) < 0 || h.type != CORIO_MSG_TASK)
            worker_exit(0);
        if (handle_task(&w, &h) < 0)
            worker_exit(0);
    }
    worker_exit(0);
}

/* Runs before main: records the modules loaded at start and, in a spawned
 * worker, never lets main run. */
__attribute__((constructor)) static void corio_worker_takeover(void)
{
    dl_iterate_phdr(collect_module, NULL);
    const char *env = getenv("CORIO_WORKER");
    int sock, lifeline;
    if (!env || sscanf(env, "%d:%d", &sock, &lifeline) != 2)
        return;
    unsetenv("CORIO_WORKER");
    corio__worker_main(sock, lifeline);
}
