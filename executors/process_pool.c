/* ProcessPoolExecutor.
 *
 * One manager thread per pool owns the workers: it starts them, writes
 * tasks to them and reads results over non-blocking sockets in one poll()
 * loop, watches each worker's pidfd, and reaps and replaces workers that
 * die. submit only queues a job and wakes the manager, so it never blocks
 * on a worker, whatever the size of the argument.
 *
 * Lock order: the pool's mutex is never held while a future completes or
 * runs callbacks (a callback may submit again). The workers array is
 * written by the manager only, under the mutex, so readers may take it. */
#include "executor_internal.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* At most this many tasks sent ahead to a busy worker (see backlog). */
#define PIPELINE_DEPTH 64
/* Reads smaller than this go through a worker's staging buffer. */
#define STAGE_SIZE 65536

/* What is being written to a worker: one or more messages. */
typedef struct outmsg {
    char **heads; /* per message: header, function and table */
    size_t nheads;
    struct iovec *iov;
    size_t niov, idx;
} outmsg_t;

typedef struct reader {
    corio_wire_hdr_t hdr;
    int stage; /* 0 header, 1 table, 2 items */
    size_t got;
    corio_wire_item_t *table;
    corio_batch_result_t *br; /* the outcomes, built in place */
    corio_batch_item_t *items; /* br->items; NULL for a compact result */
    size_t item;
} reader_t;

typedef struct proc_worker {
    pid_t pid; /* 0: free slot */
    int pidfd, sock;
    bool ready, eof, timed_out;
    corio_job_t *inflight[PIPELINE_DEPTH]; /* [0] runs in the worker */
    int ninflight;
    int sent;
    int64_t head_started;
    bool has_out;
    outmsg_t out;
    reader_t rd;
    char *stage; /* STAGE_SIZE bytes read ahead */
    size_t stage_start, stage_end;
} proc_worker_t;

typedef struct process_pool {
    corio_executor_t base;
    pthread_mutex_t mu;
    corio_job_queue_t q;
    bool shutdown, broken, polling;
    int wake_fd;
    int lifeline[2];
    pthread_t manager;
    pthread_mutex_t join_mu;
    bool joined;
    proc_worker_t *workers;
    int nlive;
    corio_process_pool_options_t o;
    corio_wire_fn_t init_fn;
    int depth;
    int64_t retry_at; /* a failed start is retried then */
    int start_failures; /* workers that died before READY, in a row */
    int64_t task_ns;    /* moving average of a task's time in its worker */
} process_pool_t;

static void wake_manager(process_pool_t *p)
{
    if (!p->polling)
        return;
    p->polling = false;
    uint64_t one = 1;
    ssize_t r = write(p->wake_fd, &one, sizeof one);
    (void)r;
}

static int pp_submit(corio_executor_t *ex, corio_job_t *job)
{
    process_pool_t *p = (process_pool_t *)ex;
    int rc = 0;
    if (p->o.start_method == CORIO_START_FORK) {
        job->fn_module = CORIO_FN_ABSOLUTE;
        job->fn_offset = (uint64_t)(uintptr_t)job->fn;
    } else {
        rc = corio__fn_name((const void *)job->fn, &job->fn_module, &job->fn_offset);
    }
    pthread_mutex_lock(&p->mu);
    if (rc == 0)
        rc = p->broken ? CORIO_EBROKEN : p->shutdown ? CORIO_ESHUTDOWN : 0;
    if (rc == 0) {
        corio__jq_push(&p->q, job);
        wake_manager(p);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* ---- messages to a worker -------------------------------------------------- */

static void out_free(outmsg_t *m)
{
    for (size_t i = 0; i < m->nheads; i++)
        free(m->heads[i]);
    free(m->heads);
    free(m->iov);
    memset(m, 0, sizeof *m);
}

/* Room for one more message of k iovecs; the head is allocated here. */
static char *out_grow(outmsg_t *m, size_t hsize, size_t k)
{
    char **heads = realloc(m->heads, (m->nheads + 1) * sizeof *heads);
    if (!heads)
        return NULL;
    m->heads = heads;
    struct iovec *iov = realloc(m->iov, (m->niov + k) * sizeof *iov);
    if (!iov)
        return NULL;
    m->iov = iov;
    char *head = malloc(hsize); /* every byte is written by the caller */
    if (head)
        m->heads[m->nheads++] = head;
    return head;
}

/* Appends a TASK message for j; its bytes are sent from the job's copies. */
static int encode_task(outmsg_t *m, const corio_job_t *j)
{
    size_t nbytes = 0; /* args that carry bytes */
    for (size_t i = 0; j->nbytes && i < j->n; i++)
        nbytes += j->args[i].len != 0;
    bool compact = nbytes == 0;
    size_t hsize = sizeof(corio_wire_hdr_t) + sizeof(corio_wire_fn_t) +
                   j->n * (compact ? sizeof(uint64_t) : sizeof(corio_wire_item_t));
    char *head = out_grow(m, hsize, nbytes + 1);
    if (!head)
        return -ENOMEM;
    corio_wire_hdr_t *h = (corio_wire_hdr_t *)head;
    corio_wire_fn_t *fn = (corio_wire_fn_t *)(h + 1);
    corio_wire_item_t *t = (corio_wire_item_t *)(fn + 1);
    *h = (corio_wire_hdr_t){CORIO_MSG_TASK, compact ? CORIO_WIRE_COMPACT : 0, j->n,
                            hsize - sizeof *h};
    *fn = (corio_wire_fn_t){j->fn_module, 0, j->fn_offset};
    m->iov[m->niov++] = (struct iovec){head, hsize};
    for (size_t i = 0; compact && i < j->n; i++)
        ((uint64_t *)t)[i] = (uint64_t)(uintptr_t)j->args[i].ptr;
    for (size_t i = 0; !compact && i < j->n; i++) {
        t[i] = (corio_wire_item_t){0, 0, j->args[i].len,
                                   j->args[i].len ? 0 : (uint64_t)(uintptr_t)j->args[i].ptr};
        if (j->args[i].len) {
            m->iov[m->niov++] = (struct iovec){j->args[i].ptr, j->args[i].len};
            h->len += j->args[i].len;
        }
    }
    return 0;
}

static size_t put(char *buf, size_t at, const void *src, size_t len)
{
    if (buf)
        memcpy(buf + at, src, len);
    return at + len;
}

/* INIT: the parent's module names (so the worker finds each by name), the
 * initializer and its argument, and max_tasks_per_child in code. */
static size_t init_payload(process_pool_t *p, char *buf)
{
    uint32_t n = (uint32_t)corio__module_count();
    size_t at = put(buf, 0, &n, sizeof n);
    for (uint32_t i = 0; i < n; i++) {
        const char *name = corio__module_name(i);
        uint32_t len = (uint32_t)strlen(name);
        at = put(buf, at, &len, sizeof len);
        at = put(buf, at, name, len);
    }
    corio_wire_item_t item = {0, 0, p->o.initarg.len, p->o.initarg.len ? 0 : (uint64_t)(uintptr_t)p->o.initarg.ptr};
    at = put(buf, at, &p->init_fn, sizeof p->init_fn);
    at = put(buf, at, &item, sizeof item);
    if (p->o.initarg.len)
        at = put(buf, at, p->o.initarg.ptr, p->o.initarg.len);
    return at;
}

static int encode_init(process_pool_t *p, outmsg_t *m)
{
    size_t len = init_payload(p, NULL);
    char *head = out_grow(m, sizeof(corio_wire_hdr_t) + len, 1);
    if (!head) {
        out_free(m);
        return -ENOMEM;
    }
    corio_wire_hdr_t h = {CORIO_MSG_INIT, p->o.max_tasks_per_child, p->o.initializer != NULL, len};
    memcpy(head, &h, sizeof h);
    init_payload(p, head + sizeof h);
    m->iov[m->niov++] = (struct iovec){head, sizeof h + len};
    return 0;
}

/* Writes what the socket takes now; 0, or -1 when the worker is gone. */
static int flush_out(proc_worker_t *w)
{
    outmsg_t *m = &w->out;
    while (w->has_out) {
        size_t n = m->niov - m->idx < 1024 ? m->niov - m->idx : 1024;
        struct msghdr mh = {.msg_iov = m->iov + m->idx, .msg_iovlen = n};
        ssize_t r = sendmsg(w->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        while (m->idx < m->niov && (size_t)r >= m->iov[m->idx].iov_len)
            r -= (ssize_t)m->iov[m->idx++].iov_len;
        if (m->idx < m->niov) {
            m->iov[m->idx].iov_base = (char *)m->iov[m->idx].iov_base + r;
            m->iov[m->idx].iov_len -= (size_t)r;
        } else {
            out_free(m);
            w->has_out = false;
        }
    }
    return 0;
}

/* ---- results from a worker --------------------------------------------------- */

static void reader_reset(reader_t *r)
{
    for (size_t i = 0; r->items && i < r->hdr.n; i++)
        if (r->items[i].v.len)
            free(r->items[i].v.ptr);
    free(r->table);
    free(r->br);
    memset(r, 0, sizeof *r);
}

/* Where the next bytes go; advances stages whose data is complete. */
static int reader_target(reader_t *r, char **dst, size_t *need)
{
    for (;;) {
        if (r->stage == 0) {
            *dst = (char *)&r->hdr + r->got;
            *need = sizeof r->hdr - r->got;
            return 0;
        }
        bool compact = r->hdr.code & CORIO_WIRE_COMPACT;
        size_t tsize = r->hdr.n * (compact ? sizeof(uint64_t) : sizeof *r->table);
        if (r->stage == 1 && r->got < tsize) {
            /* A compact table is the result itself: read straight into it. */
            char *table = compact ? (char *)corio__batch_values(r->br) : (char *)r->table;
            *dst = table + r->got;
            *need = tsize - r->got;
            return 0;
        }
        if (r->stage == 1 && compact)
            return 1;
        if (r->stage == 1) {
            r->stage = 2;
            r->got = 0;
            r->item = 0;
            for (size_t i = 0; i < r->hdr.n; i++) {
                r->items[i].rc = r->table[i].rc;
                r->items[i].v.ptr = (void *)(uintptr_t)r->table[i].value;
            }
        }
        while (r->item < r->hdr.n && r->got == r->table[r->item].len) {
            r->item++;
            r->got = 0;
        }
        if (r->item == r->hdr.n)
            return 1; /* the message is complete */
        corio_batch_item_t *it = &r->items[r->item];
        if (!it->v.len) {
            if (!(it->v.ptr = malloc(r->table[r->item].len)))
                return -ENOMEM;
            it->v.len = r->table[r->item].len;
        }
        *dst = (char *)it->v.ptr + r->got;
        *need = r->table[r->item].len - r->got;
        return 0;
    }
}

/* A complete header: prepares a RESULT's table; 1 when a bodiless message is done. */
static int reader_header_done(reader_t *r)
{
    r->got = 0;
    if (r->hdr.type != CORIO_MSG_RESULT)
        return 1;
    size_t n = r->hdr.n ? r->hdr.n : 1;
    r->stage = 1;
    if (r->hdr.code & CORIO_WIRE_COMPACT) {
        /* Every value is written by the read: no zeroing. */
        r->br = malloc(sizeof *r->br + n * sizeof(uint64_t));
        if (!r->br)
            return -ENOMEM;
        r->br->compact = true;
        return 0;
    }
    r->table = malloc(n * sizeof *r->table);
    r->br = calloc(1, sizeof *r->br + n * sizeof *r->items);
    r->items = r->br ? r->br->items : NULL;
    return r->table && r->items ? 0 : -ENOMEM;
}

/* Copies into dst what the stage holds, refilling it with one recv: small
 * messages cost one system call per batch, not several each. Large reads
 * go straight to their destination. */
static ssize_t stage_read(proc_worker_t *w, char *dst, size_t need)
{
    if (w->stage_start == w->stage_end) {
        if (need >= STAGE_SIZE || !w->stage)
            return recv(w->sock, dst, need, MSG_DONTWAIT);
        ssize_t got = recv(w->sock, w->stage, STAGE_SIZE, MSG_DONTWAIT);
        if (got <= 0)
            return got;
        w->stage_start = 0;
        w->stage_end = (size_t)got;
    }
    size_t n = w->stage_end - w->stage_start < need ? w->stage_end - w->stage_start : need;
    memcpy(dst, w->stage + w->stage_start, n);
    w->stage_start += n;
    return (ssize_t)n;
}

/* Reads what is there. Returns 1 with a complete message in w->rd, 0 when
 * the socket has no more for now, -1 on EOF or error. */
static int read_some(proc_worker_t *w)
{
    reader_t *r = &w->rd;
    for (;;) {
        char *dst;
        size_t need;
        int rc = reader_target(r, &dst, &need);
        if (rc != 0)
            return rc > 0 ? 1 : -1;
        ssize_t got = stage_read(w, dst, need);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (got <= 0)
            return -1;
        r->got += (size_t)got;
        if (r->stage == 0 && r->got == sizeof r->hdr) {
            rc = reader_header_done(r);
            if (rc != 0)
                return rc > 0 ? 1 : -1;
        }
    }
}

/* ---- starting workers -------------------------------------------------------- */

static int start_fork(process_pool_t *p, int parent_sock, int child_sock, pid_t *pid)
{
    int keep[2] = {child_sock, p->lifeline[0]};
    /* Output buffered before the fork would be written again by the worker
     * when it exits (it flushes every stream its tasks may have written),
     * as Python avoids by flushing first. stdout and stderr are purged in
     * the child too: another thread may print between flush and fork. */
    fflush(NULL);
    *pid = fork();
    if (*pid < 0)
        return -errno;
    if (*pid > 0)
        return 0;
    __fpurge(stdout);
    __fpurge(stderr);
    /* The child: drop the parent's ends, so only the parent holds them. */
    close(parent_sock);
    close(p->lifeline[1]);
    for (int i = 0; i < p->base.max_workers; i++)
        if (p->workers[i].pid && p->workers[i].sock >= 0)
            close(p->workers[i].sock);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    corio__worker_main(keep[0], keep[1]);
}

/* posix_spawn of this program: a fresh process, so no lock another thread
 * held at the time can be held in it. */
static int start_spawn(process_pool_t *p, int child_sock, pid_t *pid)
{
    char var[64];
    snprintf(var, sizeof var, "CORIO_WORKER=%d:%d", child_sock, p->lifeline[0]);
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CORIO_WORKER=", 13) != 0)
            env[k++] = environ[i];
    env[k++] = var;
    env[k] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    /* dup2 onto itself clears close-on-exec for just these two. */
    posix_spawn_file_actions_adddup2(&fa, child_sock, child_sock);
    posix_spawn_file_actions_adddup2(&fa, p->lifeline[0], p->lifeline[0]);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"corio-worker", NULL};
    int rc = posix_spawn(pid, "/proc/self/exe", &fa, &at, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    free(env);
    return -rc;
}

static int start_worker(process_pool_t *p, proc_worker_t *w)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t pid;
    int rc = p->o.start_method == CORIO_START_FORK ? start_fork(p, sv[0], sv[1], &pid)
                                                   : start_spawn(p, sv[1], &pid);
    close(sv[1]);
    if (rc == 0 && (rc = encode_init(p, &w->out)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (rc < 0) {
        close(sv[0]);
        return rc;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    memset(&w->rd, 0, sizeof w->rd);
    w->stage = malloc(STAGE_SIZE); /* without it, reads go direct */
    w->stage_start = w->stage_end = 0;
    w->sock = sv[0];
    w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    w->has_out = true;
    w->ready = w->eof = w->timed_out = false;
    w->ninflight = w->sent = 0;
    pthread_mutex_lock(&p->mu);
    w->pid = pid;
    p->nlive++;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* Fills free slots; a failure is retried a little later. */
static void start_missing(process_pool_t *p)
{
    if (p->retry_at && corio_now() < p->retry_at)
        return;
    p->retry_at = 0;
    for (int i = 0; i < p->base.max_workers; i++)
        if (!p->workers[i].pid && start_worker(p, &p->workers[i]) < 0) {
            p->retry_at = corio_now() + 100 * CORIO_NS_PER_MS;
            return;
        }
}

/* ---- the manager ------------------------------------------------------------- */

static void describe_death(pid_t pid, int status, bool reaped, char *buf, size_t len)
{
    if (!reaped)
        snprintf(buf, len, "process worker %d died (its status was collected elsewhere)", pid);
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "process worker %d was killed by signal %d (%s)", pid,
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "process worker %d exited with status %d", pid, WEXITSTATUS(status));
}

/* Fails every queued job; called with the lock held. */
static void fail_queued_locked(process_pool_t *p, corio_job_queue_t *out)
{
    corio_job_t *j;
    while ((j = corio__jq_pop(&p->q)))
        corio__jq_push(out, j);
}

static void fail_all(corio_job_queue_t *q, int code, const char *msg)
{
    corio_job_t *j;
    while ((j = corio__jq_pop(q)))
        corio__job_fail(j, code, msg);
}

static void break_pool(process_pool_t *p, const char *msg)
{
    corio_job_queue_t failed = {0};
    pthread_mutex_lock(&p->mu);
    p->broken = true;
    fail_queued_locked(p, &failed);
    pthread_mutex_unlock(&p->mu);
    fail_all(&failed, CORIO_EBROKEN, msg);
}

static void close_worker(process_pool_t *p, proc_worker_t *w)
{
    if (w->has_out)
        out_free(&w->out);
    w->has_out = false;
    reader_reset(&w->rd);
    free(w->stage);
    w->stage = NULL;
    w->stage_start = w->stage_end = 0;
    close(w->sock);
    if (w->pidfd >= 0)
        close(w->pidfd);
    pthread_mutex_lock(&p->mu);
    w->pid = 0;
    p->nlive--;
    pthread_mutex_unlock(&p->mu);
}

/* The worker is dead: the task it ran fails with how it died (it writes
 * each result before the next task starts, so that is the oldest without
 * one). The tasks sent behind it go back to the front of the queue, or fail
 * if the pool is broken, since nothing takes jobs from a broken pool. */
static void worker_died(process_pool_t *p, proc_worker_t *w)
{
    int status = 0;
    pid_t pid = w->pid;
    bool reaped = waitpid(pid, &status, 0) == pid;
    bool retired = reaped && WIFEXITED(status) && WEXITSTATUS(status) == 0 && w->ready &&
                   w->ninflight == 0;
    char msg[160];
    describe_death(pid, status, reaped, msg, sizeof msg);
    bool was_ready = w->ready;
    corio_job_t *head = w->ninflight ? w->inflight[0] : NULL;
    close_worker(p, w);
    corio_job_queue_t failed = {0};
    pthread_mutex_lock(&p->mu);
    for (int i = w->ninflight - 1; i >= 1; i--)
        corio__jq_push_front(p->broken ? &failed : &p->q, w->inflight[i]);
    w->ninflight = 0;
    pthread_mutex_unlock(&p->mu);
    fail_all(&failed, CORIO_EBROKEN, "the process pool broke before this task ran");
    if (head && w->timed_out)
        corio__job_fail(head, -ETIMEDOUT, "the task passed its deadline; its worker was killed");
    else if (head)
        corio__job_fail(head, CORIO_EWORKERDIED, msg);
    /* A worker that crashes or exits while starting (its initializer, or a
     * program that cannot start) breaks the pool, as in Python; one killed
     * from outside (SIGKILL) is replaced, though not forever. */
    bool killed = reaped && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    if (!was_ready && !retired && !p->broken && (!killed || ++p->start_failures >= 10)) {
        char m2[200];
        snprintf(m2, sizeof m2, "workers die while starting: %s", msg);
        break_pool(p, m2);
    }
}

static void deliver(process_pool_t *p, proc_worker_t *w)
{
    reader_t *r = &w->rd;
    if (r->hdr.type == CORIO_MSG_READY) {
        w->ready = true;
        p->start_failures = 0;
    } else if (r->hdr.type == CORIO_MSG_INIT_FAILED) {
        char msg[96];
        snprintf(msg, sizeof msg, "a process pool initializer failed: %s",
                 corio_strerror(r->hdr.code));
        break_pool(p, msg);
    } else if (r->hdr.type == CORIO_MSG_RESULT && w->ninflight > 0) {
        corio_job_t *j = w->inflight[0];
        memmove(w->inflight, w->inflight + 1, (size_t)--w->ninflight * sizeof *w->inflight);
        int64_t now = corio_now(), took = now - w->head_started;
        p->task_ns = p->task_ns ? (7 * p->task_ns + took) / 8 : took + 1;
        w->head_started = now;
        if (r->hdr.n == j->n) {
            r->br->n = j->n;
            corio__job_finish_owned(j, r->br);
            r->br = NULL;
            r->items = NULL;
        } else {
            corio_future_set_exception(j->fut, -EPROTO, "a worker sent a malformed result");
        }
        corio__job_free(j);
    }
    reader_reset(r);
}

/* Gives a worker the next queued jobs, up to depth in flight. */
static void dispatch(process_pool_t *p, proc_worker_t *w, int depth)
{
    int max = p->o.max_tasks_per_child;
    bool batched = false;
    if (w->has_out)
        return;
    while (w->pid && !w->eof && w->ninflight < depth &&
           (max <= 0 || w->sent < max)) {
        pthread_mutex_lock(&p->mu);
        corio_job_t *j = p->broken ? NULL : corio__jq_pop(&p->q);
        pthread_mutex_unlock(&p->mu);
        if (!j)
            break;
        if (corio_future_running(j->fut) == false &&
            corio_future_set_running_or_notify_cancel(j->fut) != 0) {
            corio__job_free(j);
            continue;
        }
        if (encode_task(&w->out, j) < 0) {
            corio__job_fail(j, -ENOMEM, "no memory to send a task");
            continue;
        }
        if (w->ninflight == 0)
            w->head_started = corio_now();
        w->inflight[w->ninflight++] = j;
        w->sent++;
        batched = true;
    }
    /* The jobs taken in this call leave in one write. */
    if (batched) {
        w->has_out = true;
        if (flush_out(w) < 0)
            w->eof = true;
    }
}

static void on_socket(process_pool_t *p, proc_worker_t *w, short rev)
{
    if ((rev & POLLOUT) && flush_out(w) < 0)
        w->eof = true; /* the worker is gone: its pidfd will say how */
    while (!w->eof && (rev & (POLLIN | POLLHUP | POLLERR))) {
        int rc = read_some(w);
        if (rc == 0)
            break;
        if (rc < 0)
            w->eof = true;
        else
            deliver(p, w);
    }
}

static void on_death(process_pool_t *p, proc_worker_t *w)
{
    /* Read what it sent before dying: a result may precede the exit. */
    while (!w->eof) {
        int rc = read_some(w);
        if (rc <= 0)
            break;
        deliver(p, w);
    }
    worker_died(p, w);
}

static void check_deadlines(process_pool_t *p, int64_t now, int64_t *next)
{
    int64_t limit = p->o.task_timeout_ns;
    if (limit <= 0)
        return;
    for (int i = 0; i < p->base.max_workers; i++) {
        proc_worker_t *w = &p->workers[i];
        if (!w->pid || !w->ninflight || w->timed_out)
            continue;
        int64_t due = corio__deadline_after(w->head_started, limit);
        if (due <= now) {
            w->timed_out = true;
            kill(w->pid, SIGKILL);
        } else if (due < *next) {
            *next = due;
        }
    }
}

static bool work_left(process_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    bool left = !p->shutdown || p->q.len > 0;
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; !left && i < p->base.max_workers; i++)
        left = p->workers[i].pid && p->workers[i].ninflight > 0;
    return left;
}

/* Builds the poll set: [0] the wake-up, then per worker its socket and pidfd. */
static nfds_t build_pollset(process_pool_t *p, struct pollfd *pfd, int *who)
{
    nfds_t n = 1;
    pfd[0] = (struct pollfd){p->wake_fd, POLLIN, 0};
    for (int i = 0; i < p->base.max_workers; i++) {
        proc_worker_t *w = &p->workers[i];
        if (!w->pid)
            continue;
        short ev = (short)((w->eof ? 0 : POLLIN) | (w->has_out && !w->eof ? POLLOUT : 0));
        pfd[n] = (struct pollfd){w->eof ? -1 : w->sock, ev, 0};
        who[n++] = i;
        pfd[n] = (struct pollfd){w->pidfd, POLLIN, 0};
        who[n++] = i;
    }
    return n;
}

/* How many tasks a busy worker may hold. Sending tasks ahead saves the
 * worker's idle time between them and batches system calls, but a task
 * sent ahead waits behind the running one even if another worker frees
 * up, and can no longer be cancelled: so only for short tasks (under a
 * millisecond on average): one task ahead, or more when more jobs are
 * queued than workers, each worker getting at most its share. */
static int backlog(process_pool_t *p)
{
    if (p->task_ns == 0 || p->task_ns > CORIO_NS_PER_MS)
        return 1;
    pthread_mutex_lock(&p->mu);
    size_t q = p->q.len, n = (size_t)p->base.max_workers;
    pthread_mutex_unlock(&p->mu);
    size_t share = q <= n ? 2 : q / n + 1; /* one sent ahead at least */
    return share < (size_t)p->depth ? (int)share : p->depth;
}

/* True when a ready worker could take a job now. */
static bool any_idle(process_pool_t *p)
{
    int max = p->o.max_tasks_per_child;
    for (int i = 0; i < p->base.max_workers; i++) {
        proc_worker_t *w = &p->workers[i];
        if (w->pid && w->ready && !w->eof && !w->has_out && w->ninflight < 1 &&
            (max <= 0 || w->sent < max))
            return true;
    }
    return false;
}

/* poll's timeout until next: a task deadline may be weeks away, past
 * what an int of milliseconds holds. */
static int poll_timeout(int64_t next, int64_t now)
{
    if (next == CORIO_NEVER)
        return -1;
    int64_t ms = next <= now ? 0 : (next - now) / CORIO_NS_PER_MS + 1;
    return ms < INT_MAX ? (int)ms : INT_MAX;
}

static void manager_turn(process_pool_t *p, struct pollfd *pfd, int *who)
{
    pthread_mutex_lock(&p->mu);
    bool replace = !p->broken && (!p->shutdown || p->q.len > 0);
    pthread_mutex_unlock(&p->mu);
    if (replace)
        start_missing(p);
    int depth = backlog(p);
    for (int i = 0; i < p->base.max_workers; i++)
        if (p->workers[i].ready)
            dispatch(p, &p->workers[i], depth);
    int64_t now = corio_now(), next = CORIO_NEVER;
    check_deadlines(p, now, &next);
    if (p->retry_at && p->retry_at < next)
        next = p->retry_at;
    nfds_t n = build_pollset(p, pfd, who);
    int timeout = poll_timeout(next, now);
    pthread_mutex_lock(&p->mu);
    p->polling = true;
    bool woken = p->q.len > 0 && p->nlive > 0 && any_idle(p);
    pthread_mutex_unlock(&p->mu);
    if (woken)
        timeout = 0; /* a job arrived between dispatch and here */
    if (poll(pfd, n, timeout) < 0)
        pfd[0].revents = 0;
    pthread_mutex_lock(&p->mu);
    p->polling = false;
    pthread_mutex_unlock(&p->mu);
    if (pfd[0].revents & POLLIN) {
        uint64_t v;
        ssize_t r = read(p->wake_fd, &v, sizeof v);
        (void)r;
    }
    for (nfds_t k = 1; k < n; k += 2) {
        proc_worker_t *w = &p->workers[who[k]];
        if (pfd[k].revents)
            on_socket(p, w, pfd[k].revents);
        if (pfd[k + 1].revents || (w->pidfd < 0 && w->eof))
            on_death(p, w);
    }
}

/* Closes every socket (workers exit on EOF) and reaps them; one that does
 * not exit within seconds (a task ignoring its end) is killed. */
static void stop_workers(process_pool_t *p)
{
    for (int i = 0; i < p->base.max_workers; i++) {
        proc_worker_t *w = &p->workers[i];
        if (!w->pid)
            continue;
        pid_t pid = w->pid;
        int pidfd = w->pidfd;
        w->pidfd = -1;
        close_worker(p, w);
        struct pollfd pfd = {pidfd, POLLIN, 0};
        if (pidfd >= 0 && poll(&pfd, 1, 5000) == 0)
            kill(pid, SIGKILL);
        if (pidfd >= 0)
            close(pidfd);
        waitpid(pid, NULL, 0);
    }
}

/* The pool whose manager this thread is: shutdown must not wait for itself. */
static _Thread_local process_pool_t *tls_managed;

static void *manager_main(void *arg)
{
    process_pool_t *p = arg;
    tls_managed = p;
    size_t cap = 1 + 2 * (size_t)p->base.max_workers;
    struct pollfd *pfd = calloc(cap, sizeof *pfd);
    int *who = calloc(cap, sizeof *who);
    while (pfd && who && work_left(p))
        manager_turn(p, pfd, who);
    free(pfd);
    free(who);
    stop_workers(p);
    return NULL;
}

/* ---- the executor ------------------------------------------------------------ */

static int pp_shutdown(corio_executor_t *ex, bool wait, bool cancel_futures)
{
    process_pool_t *p = (process_pool_t *)ex;
    corio_job_queue_t cancelled = {0};
    pthread_mutex_lock(&p->mu);
    p->shutdown = true;
    if (cancel_futures)
        fail_queued_locked(p, &cancelled);
    p->polling = true; /* force the wake-up: the manager must re-check */
    wake_manager(p);
    pthread_mutex_unlock(&p->mu);
    fail_all(&cancelled, -ECANCELED, NULL);
    if (!wait)
        return 0;
    if (tls_managed == p)
        return -EDEADLK; /* a done-callback on the manager; free joins it */
    pthread_mutex_lock(&p->join_mu);
    if (!p->joined && pthread_join(p->manager, NULL) == 0)
        p->joined = true;
    pthread_mutex_unlock(&p->join_mu);
    return 0;
}

static void pp_destroy(corio_executor_t *ex)
{
    process_pool_t *p = (process_pool_t *)ex;
    corio_job_queue_t left = {0};
    fail_queued_locked(p, &left);
    fail_all(&left, -ECANCELED, NULL);
    int fds[3] = {p->wake_fd, p->lifeline[0], p->lifeline[1]};
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (p->o.initarg.len)
        free(p->o.initarg.ptr);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->join_mu);
    free(p->workers);
    free(p);
}

static int pp_workers(corio_executor_t *ex)
{
    process_pool_t *p = (process_pool_t *)ex;
    pthread_mutex_lock(&p->mu);
    int n = p->nlive;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int pp_worker_pids(corio_executor_t *ex, int *pids, int max)
{
    process_pool_t *p = (process_pool_t *)ex;
    int n = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->base.max_workers; i++)
        if (p->workers[i].pid) {
            if (n < max)
                pids[n] = p->workers[i].pid;
            n++;
        }
    pthread_mutex_unlock(&p->mu);
    return n;
}

static const corio_executor_ops_t process_pool_ops = {
    .submit = pp_submit,
    .shutdown = pp_shutdown,
    .destroy = pp_destroy,
    .workers = pp_workers,
    .worker_pids = pp_worker_pids,
};

static int pool_options(process_pool_t *p, const corio_process_pool_options_t *opts)
{
    if (opts)
        p->o = *opts;
    corio_process_pool_options_t *o = &p->o;
    corio_value_t arg = o->initarg;
    o->initarg = (corio_value_t){arg.len ? NULL : arg.ptr, 0};
    if (o->max_workers < 0 || o->max_tasks_per_child < 0 ||
        (o->start_method != CORIO_START_SPAWN && o->start_method != CORIO_START_FORK) ||
        (arg.len && !arg.ptr))
        return -EINVAL;
    if (o->max_workers == 0)
        o->max_workers = corio__cpu_count();
    p->depth = o->task_timeout_ns > 0 ? 1 : PIPELINE_DEPTH;
    p->init_fn = (corio_wire_fn_t){CORIO_FN_ABSOLUTE, 0, (uint64_t)(uintptr_t)o->initializer};
    if (o->initializer && o->start_method == CORIO_START_SPAWN &&
        corio__fn_name((const void *)o->initializer, &p->init_fn.module, &p->init_fn.offset) < 0)
        return CORIO_ENONAME;
    if (arg.len && !(o->initarg.ptr = malloc(arg.len)))
        return -ENOMEM;
    if (arg.len)
        memcpy(o->initarg.ptr, arg.ptr, arg.len);
    o->initarg.len = arg.len;
    return 0;
}

static int pool_resources(process_pool_t *p)
{
    p->workers = calloc((size_t)p->base.max_workers, sizeof *p->workers);
    if (!p->workers)
        return -ENOMEM;
    for (int i = 0; i < p->base.max_workers; i++)
        p->workers[i].pidfd = p->workers[i].sock = -1;
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->wake_fd < 0 || pipe2(p->lifeline, O_CLOEXEC) < 0)
        return -errno;
    return 0;
}

int corio_process_pool_new(corio_executor_t **out, const corio_process_pool_options_t *opts)
{
    if (!out)
        return -EINVAL;
    process_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->base.ops = &process_pool_ops;
    /* Before anything can fail: calloc's zeros would name fd 0. */
    p->wake_fd = p->lifeline[0] = p->lifeline[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->join_mu, NULL);
    int rc = pool_options(p, opts);
    p->base.max_workers = p->o.max_workers;
    if (rc == 0)
        rc = pool_resources(p);
    /* Start every worker now, so a broken setup fails here. */
    for (int i = 0; rc == 0 && i < p->base.max_workers; i++)
        rc = start_worker(p, &p->workers[i]);
    sigset_t old;
    corio__block_signals(&old);
    if (rc == 0)
        rc = -pthread_create(&p->manager, NULL, manager_main, p);
    if (rc == 0)
        pthread_setname_np(p->manager, "corio-procpool");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        for (int i = 0; p->workers && i < p->base.max_workers; i++)
            if (p->workers[i].pid) {
                kill(p->workers[i].pid, SIGKILL);
                pid_t pid = p->workers[i].pid;
                close_worker(p, &p->workers[i]);
                waitpid(pid, NULL, 0);
            }
        pp_destroy(&p->base);
        return rc;
    }
    *out = &p->base;
    return 0;
}
