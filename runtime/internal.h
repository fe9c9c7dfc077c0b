/* Private structures shared by the runtime's parts. Never installed. */
#ifndef CORIO_INTERNAL_H
#define CORIO_INTERNAL_H

#include "corio.h"
#include "futex.h"

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>

#define CORIO_UNUSED __attribute__((unused))
#define corio_container_of(ptr, type, member)                                  \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#define corio_likely(x) __builtin_expect(!!(x), 1)
#define corio_unlikely(x) __builtin_expect(!!(x), 0)

#if defined(__SANITIZE_ADDRESS__)
#define CORIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CORIO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORIO_TSAN 1
#endif
#endif

/* ---- coroutine: a stack and a context switch, no loop -------------------- */

typedef struct corio_ctx {
    void *sp;
} corio_ctx_t;

typedef struct corio_stack {
    void *map;         /* start of the mapping (the guard page) */
    uint32_t map_size; /* guard + usable; stacks stay below 4 GiB */
    uint32_t size;     /* usable bytes above the guard */
} corio_stack_t;

/* Assembly, one file per target: saves the callee-saved registers and the
 * floating-point control state on the current stack, stores the stack pointer
 * in from->sp and resumes to->sp. */
void corio__switch(corio_ctx_t *from, corio_ctx_t *to);
/* Resumes to from a context that will never run again (nothing is saved). */
void corio__switch_final(corio_ctx_t *to);
/* Prepares ctx so that the first switch to it calls entry(arg) on the stack
 * below top; entry must never return. It starts with the control state in
 * force at this call. */
void corio__ctx_init(corio_ctx_t *ctx, void *top, void (*entry)(void *), void *arg);
/* The same, but the coroutine starts with the control state in force at the
 * first switch to it: no read now, no load then. */
void corio__ctx_init_inherit(corio_ctx_t *ctx, void *top, void (*entry)(void *), void *arg);
/* A fresh context made to inherit will start with the control state saved
 * in suspended (a context switched away from), whoever switches to it. */
void corio__ctx_inherit_from(corio_ctx_t *fresh, const corio_ctx_t *suspended);

/* A coroutine with sanitizer bookkeeping. */
typedef struct corio_coro {
    corio_ctx_t ctx;
    corio_stack_t stack;
#ifdef CORIO_TSAN
    void *tsan_fiber;
#endif
#ifdef CORIO_ASAN
    const void *asan_bottom; /* for ASan's switch annotations */
    size_t asan_size;
    void *asan_fake_stack;
#endif
} corio_coro_t;

void corio__coro_init_main(corio_coro_t *main_coro);
/* The coroutine starts with the floating-point control state in force now. */
void corio__coro_create(corio_coro_t *c, void (*entry)(void *), void *arg);
/* It starts with the control state of whoever first switches to it. */
void corio__coro_create_inherit(corio_coro_t *c, void (*entry)(void *), void *arg);
void corio__coro_destroy(corio_coro_t *c);
#if defined(CORIO_ASAN) || defined(CORIO_TSAN)
/* finishing: the coroutine being left will never run again. */
void corio__coro_switch(corio_coro_t *from, corio_coro_t *to, bool finishing);
/* The first thing a new coroutine's entry must call. */
void corio__coro_started(corio_coro_t *self);
#else
/* Without sanitizers to tell, a switch is the bare one, inline. */
static inline void corio__coro_switch(corio_coro_t *from, corio_coro_t *to, bool finishing)
{
    if (finishing)
        corio__switch_final(&to->ctx);
    else
        corio__switch(&from->ctx, &to->ctx);
}
static inline void corio__coro_started(corio_coro_t *self) { (void)self; }
#endif

/* Guarded stacks, pooled per loop. */
typedef struct corio_stack_pool {
    corio_stack_t *free;
    size_t nfree, cap;
    size_t page;
    bool guard_madvise; /* MADV_GUARD_INSTALL works here */
    bool exhausted;     /* the last mapping failed; cleared by a success or a put */
} corio_stack_pool_t;

void corio__stack_pool_init(corio_stack_pool_t *p);
void corio__stack_pool_destroy(corio_stack_pool_t *p);
int corio__stack_get(corio_stack_pool_t *p, size_t size, corio_stack_t *out);
/* A default-sized stack from the pool, if it holds one: the spawn path's
 * common case, without corio__stack_get's checks. */
static inline bool corio__stack_take_pooled(corio_stack_pool_t *p, corio_stack_t *out)
{
    if (!p->nfree)
        return false;
    *out = p->free[--p->nfree];
    return true;
}
/* Idle stacks the pool keeps at most; more are unmapped. */
#define CORIO_STACK_POOL_MAX 4096
/* Pools a default-sized stack when the pool has room already; otherwise
 * corio__stack_put decides. */
static inline bool corio__stack_put_pooled(corio_stack_pool_t *p, corio_stack_t *s)
{
    if (s->size != CORIO_DEFAULT_STACK_SIZE || p->nfree >= p->cap ||
        p->nfree >= CORIO_STACK_POOL_MAX)
        return false;
    p->exhausted = false;
    p->free[p->nfree++] = *s;
    s->map = NULL;
    return true;
}
void corio__stack_put(corio_stack_pool_t *p, corio_stack_t *s);
/* True when addr lies in the guard page of s. */
bool corio__stack_guard_hit(const corio_stack_t *s, const void *addr);
/* Installs the overflow handler (alternate stack per thread). */
int corio__overflow_handler_install(void);
/* Frees the alternate stack installed for this thread, if any. */
void corio__overflow_handler_release(void);

/* ---- waits: the one suspension primitive --------------------------------- */

typedef struct corio_waiter corio_waiter_t;
struct corio_waiter {
    corio_task_t *task;
    int result;
    bool woken;
    /* Detaches the waiter after an interrupt (cancel, deadline). Returns true
     * when detached, so the wait ends at once; false when the source will
     * still call corio__wake (a kernel operation being cancelled). NULL means
     * nothing to detach. */
    bool (*detach)(corio_waiter_t *w);
    void *data;
    corio_waiter_t *prev, *next;
    /* Set by corio__suspend (task.c), in the wait's frame rather than the
     * task record: why the wait was interrupted, the per-call deadline and
     * the timer that fires at the earlier of it and the scope's. */
    int interrupt;
    int64_t deadline;
    corio_handle_t *timer; /* NULL in a plain yield */
};

/* Suspends the current task until corio__wake(w), cancellation, or the
 * earlier of deadline and the task's scope deadline. Returns the wake
 * result, -ECANCELED or -ETIMEDOUT. Must be called from a task. */
int corio__wait(corio_waiter_t *w, int64_t deadline);
/* Wakes a waiter (loop thread): its task resumes on a later turn. */
void corio__wake(corio_waiter_t *w, int result);
/* Wakes from another thread, through h, a handle that lives as long as w
 * (the waits on thread-safe futures carry one). */
void corio__wake_threadsafe(corio_loop_t *loop, corio_waiter_t *w, corio_handle_t *h, int result);
/* Non-zero (-ECANCELED/-ETIMEDOUT) when an await would end at once. */
int corio__interrupt_pending(int64_t deadline);
/* Re-arms the deadline of t's current wait after t->scope_deadline changed
 * (a timeout scope rescheduled from another task). */
void corio__task_deadline_changed(corio_task_t *t);

/* ---- futures -------------------------------------------------------------- */

typedef struct corio_done_cb {
    corio_done_fn fn;
    void *arg;
} corio_done_cb_t;

typedef struct corio_future_sync {
    corio_flock_t lock;
    _Atomic uint32_t done; /* a futex flag (futex.h): blocked threads sleep on it */
} corio_future_sync_t;

/* What a future is, set before it is shared. */
typedef enum corio_future_kind {
    CORIO_FK_LOOP,       /* a loop future, or a task: counts on the loop's thread */
    CORIO_FK_THREADSAFE, /* a corio_ts_future_t: locked, callbacks in the completing thread */
    CORIO_FK_SHARED,     /* a loop future another thread may release: atomic counts */
} corio_future_kind_t;

struct corio_future {
    atomic_int refs;
    _Atomic uint8_t state;
    bool retrieved;
    bool is_task;
    /* A corio_future_kind_t. One byte, so that the bytes above fill a word
     * (two bools would cost 8 bytes of padding; as bit-fields they cost 13%
     * of the warm spawn+join rate, their stores being read-modify-writes). */
    uint8_t kind;
    int error;
    uint32_t ncb;        /* callbacks: cb0, then cbs[0..ncb-2] */
    corio_value_t value; /* the result; with error set, {message or NULL, 0} */
    corio_loop_t *loop; /* NULL for thread-safe futures */
    corio_done_cb_t cb0; /* inline slot: one callback costs no allocation */
    corio_done_cb_t *cbs; /* capacity: the power of two (at least 4) above its count */
    corio_waiter_t *whead, *wtail;
};

static inline bool corio__future_threadsafe(const corio_future_t *f)
{
    return f->kind == CORIO_FK_THREADSAFE;
}

/* The callback run of a loop future is scheduled on a handle outside the
 * core struct: a plain future carries one, a task lends its step handle
 * (idle for good once the task finished). Plain futures are on their loop's
 * list, so that closing the loop can clear their loop pointer; task records
 * are found through the task arena instead. Keeps task records small. */
typedef struct corio_loop_future {
    corio_future_t f;
    corio_handle_t cb_handle;
    struct corio_loop_future *lprev, *lnext;
} corio_loop_future_t;

typedef struct corio_ts_future {
    corio_future_t f;
    corio_future_sync_t sync;
} corio_ts_future_t;

/* Records for thread-safe futures (future_arena.c), from any thread. */
corio_ts_future_t *corio__ts_future_alloc(void);
void corio__ts_future_dealloc(corio_ts_future_t *tf);

static inline corio_future_sync_t *corio__future_sync(corio_future_t *f)
{
    return &((corio_ts_future_t *)f)->sync;
}

/* Field by field: tasks reuse dirty records, and a memset of the whole
 * future costs more than these stores on the spawn path. cb0 and the
 * callback handle's other fields are written before they are read. */
static inline void corio__future_init(corio_future_t *f, corio_loop_t *loop)
{
    atomic_init(&f->refs, 1);
    atomic_init(&f->state, CORIO_FUTURE_PENDING);
    f->retrieved = false;
    f->is_task = false;
    f->kind = CORIO_FK_LOOP;
    f->error = 0;
    f->ncb = 0;
    f->value = (corio_value_t){NULL, 0};
    f->loop = loop;
    f->cbs = NULL;
    f->whead = f->wtail = NULL;
}
/* Completes f with an outcome (state FINISHED or CANCELLED). */
int corio__future_complete(corio_future_t *f, uint8_t state, int error, const char *msg,
                           corio_value_t v);
void corio__future_release_storage(corio_future_t *f);
/* Completes a pending loop future that only its owner completes, on its
 * loop's thread (a task, from its own end); with error set, v is
 * {message or NULL, 0} and f takes the message. */
void corio__future_finish_local(corio_future_t *f, uint8_t state, int error, corio_value_t v);
/* Loop close: h, just taken off the ready queue, is dropped unrun; if it was
 * a future's callback run, releases the reference that run held. */
void corio__future_drop_scheduled(corio_handle_t *h);

/* ---- tasks ---------------------------------------------------------------- */

struct corio_task {
    corio_future_t fut; /* first: a task is a future */
    corio_coro_t coro; /* its loop is fut.loop */
    corio_task_fn fn;
    void *arg;
    corio_handle_t step;     /* resumes the task */
    corio_waiter_t *waiter;  /* the wait the task is suspended in */
    int cancel_requests;
    bool shielded; /* in a shielded wait: scope_deadline parked at CORIO_NEVER */
    bool waits_for_scope;    /* its shielded wait's deadline is the scope's (timeout.c) */
    bool scope_expired;      /* a wait ended by the scope deadline */
    bool started;            /* finished is fut's done state: nothing else sets it */
    int64_t scope_deadline;  /* the innermost timeout scope's deadline */
    struct corio_timeout *scope_top; /* innermost timeout scope (timeout.c) */
    corio_task_t *tprev, *tnext; /* the loop's unfinished tasks */
    /* The name (malloc'd: given, or formatted on demand) or, with the low
     * bit set, the id of the default name "task-<id>" above that bit. */
    uintptr_t label;
#ifdef CORIO_ASAN
    corio_task_t *arena_prev, *arena_next; /* live records (task_arena.c) */
    struct corio_task_arena *arena;
#endif
};

/* The task's name, or its default name formatted into buf: safe in a signal
 * handler, unlike corio_task_name, which may allocate. */
const char *corio__task_name_safe(const corio_task_t *t, char buf[32]);

/* Task records (task_arena.c): recycled per loop; a record may outlive its
 * loop and then be dropped on any thread. */
typedef struct corio_task_arena corio_task_arena_t;
#define CORIO_TASK_CHUNK_SIZE ((size_t)2 << 20)
/* How much of an arena's first chunk is used. It is on small pages, so
 * that a program with a few records does not pay 2 MiB of resident memory;
 * a program that outgrows it makes records in bulk, and every chunk after
 * it is on huge pages, where one fault maps 2 MiB: on this class of VM 512
 * small-page faults (a whole first chunk) cost as much as the rest of a
 * 100,000-task spawn. */
#define CORIO_FIRST_CHUNK_USE ((size_t)256 << 10)
/* A record rounded up to whole cache lines. */
#define CORIO_TASK_RECORD_SIZE ((sizeof(corio_task_t) + 63) & ~(size_t)63)
/* A CORIO_TASK_CHUNK_SIZE-aligned mapping of that size, so that a record
 * finds its chunk by masking; huge asks for transparent huge pages. */
void *corio__map_chunk(bool huge);
int corio__task_arena_new(corio_loop_t *loop);
void corio__task_arena_close(corio_loop_t *loop);
corio_task_t *corio__task_alloc(corio_loop_t *loop);
void corio__task_dealloc(corio_task_t *t);
/* Frees a task record whose last reference went. */
void corio__task_free(corio_task_t *t);
/* Loop close: every record still referenced forgets the loop (its future's
 * loop becomes NULL), as plain futures do. */
void corio__task_arena_forget_loop(corio_loop_t *loop);

/* ---- loop ------------------------------------------------------------------ */

/* A kernel operation in flight: its address is the SQE's user_data. */
typedef struct corio_op {
    void (*complete)(struct corio_op *op, int res, uint32_t flags);
} corio_op_t;

enum { CORIO_H_IDLE = 0, CORIO_H_READY = 1, CORIO_H_TIMER = 2 };

struct corio_loop {
    struct io_uring ring;
    int64_t now;
    corio_handle_t ready; /* sentinel of the FIFO of ready handles */
    uint64_t nready;
    corio_handle_t **heap; /* timer min-heap on (when, seq) */
    uint32_t nheap, heapcap;
    uint64_t timer_seq;
    /* Thread-safe calls: a locked list plus one eventfd wake-up. */
    pthread_mutex_t ts_mu;
    corio_handle_t *ts_head, *ts_tail;
    bool ts_closed; /* under ts_mu: close has begun, calls are refused */
    atomic_bool ts_wake_pending;
    int wake_fd;
    uint64_t wake_buf;
    corio_op_t wake_op;
    bool wake_armed;
    corio_loop_stats_t stats;
    /* Ready handles the running turn still owes (run_ready); a direct
     * task-to-task switch (task.c) takes one of them, or else one of the
     * turn's budget of switches to handles readied during the turn. */
    uint64_t ready_left;
    /* Ready handles are stamped in push order (in seq, which only timers
     * use otherwise): those below turn_ready_end are what the turn owes. */
    uint64_t ready_seq, turn_ready_end, turn_cancelled;
    uint64_t direct_turn;
    int direct_left;
    /* A task that finished by switching straight to another; retired by
     * whoever runs next, once its stack is no longer in use. */
    corio_task_t *retiring;
    corio_task_t *tasks; /* unfinished tasks */
    corio_loop_future_t *futures; /* plain loop futures (not tasks) */
    corio_task_t *current;
    corio_coro_t main_coro;
    corio_stack_pool_t stacks;
    struct corio_task_arena *task_arena; /* task records (task_arena.c) */
    bool running, stopping, closed;
    bool in_turn; /* a turn is running its callbacks: no nested run or close */
    bool closing; /* close is finishing operations: no more turns will run */
    bool pollable; /* CORIO_LOOP_EMBEDDED: the ring fd wakes poll() */
    uint64_t task_counter;
    corio_error_handler_fn error_fn;
    void *error_arg;
    /* The default executor (run_in_executor), owned through its hooks. */
    void *default_executor;
    void (*default_executor_shutdown)(void *executor);
};

/* An SQE, flushing the SQ to the kernel when it is full. NULL only when the
 * ring is unusable (the error is in *err). Loop thread. */
/* The most one read or write moves (the kernel's MAX_RW_COUNT): a longer
 * length would be cut to 32 bits in the SQE, 4 GiB reading as 0 (EOF). */
#define CORIO_IO_MAX 0x7ffff000u
static inline unsigned corio__io_len(size_t n) { return n > CORIO_IO_MAX ? CORIO_IO_MAX : (unsigned)n; }

struct io_uring_sqe *corio__get_sqe(corio_loop_t *loop, int *err);
/* Hands queued SQEs to the kernel now: call before closing a descriptor a
 * queued SQE may name, so that the operation holds the file it was meant
 * for rather than finding the number closed (or reused) at submission. */
void corio__submit_queued(corio_loop_t *loop);
/* Submits sqe (already prepared) and suspends the current task until its own
 * completion arrives. Cancellation or the deadline cancels the operation in
 * the kernel and still waits for that completion. Returns the CQE's res. */
int corio__io_await(corio_loop_t *loop, struct io_uring_sqe *sqe, int64_t deadline,
                    uint32_t *cqe_flags);
/* Notes an SQE submitted with op as user_data (in-flight statistics). */
void corio__op_started(corio_loop_t *loop);

/* Timers (timer.c): a binary min-heap of handles. */
int corio__timer_insert(corio_loop_t *loop, corio_handle_t *h);
void corio__timer_remove(corio_loop_t *loop, corio_handle_t *h);
corio_handle_t *corio__timer_peek(corio_loop_t *loop);
void corio__timer_free(corio_loop_t *loop);

/* The FIFO of ready handles (a ring through the loop's sentinel). */
static inline void corio__ready_push(corio_loop_t *loop, corio_handle_t *h)
{
    corio_handle_t *tail = loop->ready.prev;
    h->prev = tail;
    h->next = &loop->ready;
    tail->next = h;
    loop->ready.prev = h;
    h->state = CORIO_H_READY;
    h->seq = loop->ready_seq++;
    loop->nready++;
}

static inline void corio__ready_remove(corio_loop_t *loop, corio_handle_t *h)
{
    h->prev->next = h->next;
    h->next->prev = h->prev;
    h->prev = h->next = NULL;
    h->state = CORIO_H_IDLE;
    loop->nready--;
}

/* Default executor hooks for the executors part. */
void *corio__loop_default_executor(corio_loop_t *loop);
void corio__loop_set_default_executor(corio_loop_t *loop, void *executor,
                                      void (*shutdown)(void *executor));

/* now + ns, saturated: a duration too long for the clock is CORIO_NEVER. */
static inline int64_t corio__deadline_after(int64_t now, int64_t ns)
{
    return ns >= CORIO_NEVER - now ? CORIO_NEVER : now + ns;
}

/* ns from now until when, 0 once past; when may be as far back as
 * INT64_MIN, where when - now would overflow. */
static inline int64_t corio__time_until(int64_t when)
{
    int64_t now = corio_now();
    return when <= now ? 0 : when - now;
}

/* The per-call timeout of an absolute deadline: -1 (no limit) for
 * CORIO_NEVER, 0 once past. */
static inline int64_t corio__timeout_for(int64_t deadline)
{
    return deadline == CORIO_NEVER ? -1 : corio__time_until(deadline);
}

/* Thread-locals of the runtime's hot paths. The initial-exec model reads
 * them from the thread pointer: in the shared library the default model
 * calls __tls_get_addr on every access (every reference count change).
 * They are a few words, which glibc's static TLS reserve holds even for a
 * library loaded by dlopen. */
#define CORIO_TLS __thread __attribute__((tls_model("initial-exec")))

/* The loop of this thread (thread-local). */
extern CORIO_TLS corio_loop_t *corio__tls_loop;
/* Called on this thread before it blocks on a thread-safe future (a pool
 * worker hands back the queued jobs it holds, which the wait may need). */
extern CORIO_TLS void (*corio__before_block)(void);

/* A loop future is referenced only on its loop's thread while the loop is
 * open (future.h), so there a plain load and store do; a locked add costs
 * more than the rest of a trivial task's spawn. Thread-safe futures, and
 * loop futures once their loop closed (f->loop is cleared then), count
 * atomically. */
static inline bool corio__future_refs_local(const corio_future_t *f)
{
    return f->loop && f->loop == corio__tls_loop && f->kind != CORIO_FK_SHARED;
}

/* Drops a reference; true when it was the last. */
static inline bool corio__future_drop_ref(corio_future_t *f)
{
    if (corio__future_refs_local(f)) {
        int n = atomic_load_explicit(&f->refs, memory_order_relaxed);
        atomic_store_explicit(&f->refs, n - 1, memory_order_relaxed);
        return n == 1;
    }
    return atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1;
}

/* corio_current_task, inline for the runtime's own paths. */
static inline corio_task_t *corio__current(void)
{
    corio_loop_t *loop = corio__tls_loop;
    return loop ? loop->current : NULL;
}

/* Fault injection for tests: makes the Nth later call of a site fail. */
enum {
    CORIO_FAULT_SQE,
    CORIO_FAULT_SUBMIT,
    CORIO_FAULT_SUBMIT_BUSY, /* a submit finding the completion queue full */
    CORIO_FAULT_MMAP,
    CORIO_FAULT_TIMER, /* growing the timer heap */
    CORIO_FAULT_GROUP_ERRORS, /* growing a task group's error list */
    CORIO_FAULT_NSITES
};
void corio__fault_set(int site, long nth);
bool corio__fault_hit(int site);

#endif
