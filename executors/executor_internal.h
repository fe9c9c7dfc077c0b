/* Private to the executors: the interface behind corio_executor_t and the
 * job both pools run. */
#ifndef CORIO_EXECUTOR_INTERNAL_H
#define CORIO_EXECUTOR_INTERNAL_H

#include "corio.h"
#include "corio/executor.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

/* runtime/future.c: called on this thread before it blocks on a
 * thread-safe future (a pool worker hands back the jobs it holds). */
extern __thread __attribute__((tls_model("initial-exec"))) void (*corio__before_block)(void);

/* One unit of work: a task, or a chunk of a map (a batch). A batch's future
 * gets a corio_batch_result_t as its bytes. */
typedef struct corio_job {
    struct corio_job *next;
    corio_future_t *fut; /* the job holds one reference */
    corio_executor_fn fn;
    bool batch;
    size_t n;
    corio_value_t *args; /* n args; bytes are the job's own copies */
    corio_value_t arg1;  /* storage when n == 1 */
    size_t nbytes;       /* the args' bytes in all; 0: every arg is pointer-sized */
    uint32_t fn_module;  /* process pool: the function's name */
    uint64_t fn_offset;
} corio_job_t;

typedef struct corio_batch_item {
    int rc;
    corio_value_t v; /* bytes owned by whoever holds the batch result */
} corio_batch_item_t;

/* A compact result (every item succeeded with a pointer-sized value, as a
 * process worker's compact reply says) keeps n uint64_t values in place of
 * the items: a third of the bytes to fill and to read. */
typedef struct corio_batch_result {
    size_t n;
    bool compact;
    corio_batch_item_t items[];
} corio_batch_result_t;

static inline uint64_t *corio__batch_values(corio_batch_result_t *br)
{
    return (uint64_t *)(void *)br->items;
}

/* Item i of a batch result, either form. */
static inline corio_batch_item_t corio__batch_item(corio_batch_result_t *br, size_t i)
{
    if (br->compact)
        return (corio_batch_item_t){0, {(void *)(uintptr_t)corio__batch_values(br)[i], 0}};
    return br->items[i];
}

/* Frees the bytes of items [from, n) and the result. */
void corio__batch_free(corio_batch_result_t *br, size_t from);

typedef struct corio_executor_ops {
    /* Takes ownership of job; returns 0 or an error (job untouched). */
    int (*submit)(corio_executor_t *ex, corio_job_t *job);
    int (*shutdown)(corio_executor_t *ex, bool wait, bool cancel_futures);
    void (*destroy)(corio_executor_t *ex);
    int (*workers)(corio_executor_t *ex);
    int (*worker_pids)(corio_executor_t *ex, int *pids, int max);
} corio_executor_ops_t;

struct corio_executor {
    const corio_executor_ops_t *ops;
    int max_workers;
};

/* A FIFO of jobs. */
typedef struct corio_job_queue {
    corio_job_t *head, *tail;
    size_t len;
} corio_job_queue_t;

void corio__jq_push(corio_job_queue_t *q, corio_job_t *j);
void corio__jq_push_front(corio_job_queue_t *q, corio_job_t *j);
corio_job_t *corio__jq_pop(corio_job_queue_t *q);

/* A job of n args (copied); 0 or -ENOMEM. */
int corio__job_new(corio_executor_fn fn, const corio_value_t *args, size_t n, bool batch,
                   corio_job_t **out);
/* Runs the job's items in this thread and completes its future. */
void corio__job_run(corio_job_t *job);
/* Completes the future from per-item outcomes (takes the bytes). */
void corio__job_finish(corio_job_t *job, corio_batch_item_t *items);
/* The same from a malloc'd batch result, which it takes (no copy for a
 * batch job). */
void corio__job_finish_owned(corio_job_t *job, corio_batch_result_t *br);
/* Fails the job's future (if not yet done) and frees the job. */
void corio__job_fail(corio_job_t *job, int code, const char *msg);
void corio__job_free(corio_job_t *job);

/* ---- process workers: wire format and function names (wire.c) ---------- */

enum {
    CORIO_MSG_INIT = 1,        /* parent: modules, initializer, max tasks */
    CORIO_MSG_TASK = 2,        /* parent: a function and n arguments */
    CORIO_MSG_READY = 3,       /* worker: the initializer succeeded */
    CORIO_MSG_INIT_FAILED = 4, /* worker: code is the initializer's */
    CORIO_MSG_RESULT = 5,      /* worker: n outcomes */
};

/* Every message starts with this header; len bytes of payload follow. A
 * TASK payload: corio_wire_fn_t, n corio_wire_item_t, then the items'
 * bytes in order. A RESULT payload: n corio_wire_item_t, then bytes. */
typedef struct corio_wire_hdr {
    uint32_t type;
    int32_t code;
    uint64_t n;
    uint64_t len;
} corio_wire_hdr_t;

typedef struct corio_wire_fn {
    uint32_t module; /* CORIO_FN_ABSOLUTE: offset is an address (fork) */
    uint32_t pad;
    uint64_t offset;
} corio_wire_fn_t;

typedef struct corio_wire_item {
    int32_t rc;
    uint32_t pad;
    uint64_t len; /* bytes that follow, or 0 for a pointer-sized value */
    uint64_t value;
} corio_wire_item_t;

#define CORIO_FN_ABSOLUTE UINT32_MAX
/* In a TASK or RESULT header's code: the items are n uint64_t values (all
 * pointer-sized, and for a RESULT all succeeded), a third of the bytes. */
#define CORIO_WIRE_COMPACT 1

/* Names fn by the module it lies in, among those loaded at program start.
 * 0, or CORIO_ENONAME. */
int corio__fn_name(const void *fn, uint32_t *module, uint64_t *offset);
/* The modules loaded at program start, for the INIT message. */
size_t corio__module_count(void);
const char *corio__module_name(size_t i);

/* The worker side: never returns. */
_Noreturn void corio__worker_main(int sock, int lifeline);

int corio__cpu_count(void);
/* The deadline of a timeout from now (negative: none); a timeout too long
 * for the clock saturates to CORIO_NEVER instead of overflowing. */
int64_t corio__timeout_deadline(int64_t timeout_ns);
/* Blocks every signal in the calling thread (pool threads). */
void corio__block_signals(sigset_t *old);

#endif
