/* Guarded coroutine stacks, pooled per loop, and the overflow report.
 *
 * The guard is the lowest page of each mapping. MADV_GUARD_INSTALL (Linux
 * 6.13+) makes it without splitting the mapping, so 100,000 stacks stay under
 * vm.max_map_count; elsewhere mprotect splits each stack in two. */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef CORIO_ASAN
#include <sanitizer/asan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif


void corio__stack_pool_init(corio_stack_pool_t *p)
{
    memset(p, 0, sizeof *p);
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    p->guard_madvise = true; /* probed on the first stack */
}

static void stack_unmap(corio_stack_t *s)
{
#ifdef CORIO_ASAN
    /* Frames left on the stack poisoned its shadow, and ASan does not
     * clear shadow on munmap: whatever is mapped here next (an io_uring
     * ring, say) would read as a stack redzone. */
    if (s->map)
        ASAN_UNPOISON_MEMORY_REGION(s->map, s->map_size);
#endif
    if (s->map)
        munmap(s->map, s->map_size);
    s->map = NULL;
}

void corio__stack_pool_destroy(corio_stack_pool_t *p)
{
    for (size_t i = 0; i < p->nfree; i++)
        stack_unmap(&p->free[i]);
    free(p->free);
    p->free = NULL;
    p->nfree = p->cap = 0;
}

static int stack_guard(corio_stack_pool_t *p, void *map)
{
    if (p->guard_madvise) {
        if (madvise(map, p->page, MADV_GUARD_INSTALL) == 0)
            return 0;
        if (errno != EINVAL)
            return -errno;
        p->guard_madvise = false; /* this kernel predates guard regions */
    }
    return mprotect(map, p->page, PROT_NONE) == 0 ? 0 : -errno;
}

static int stack_map(corio_stack_pool_t *p, size_t size, corio_stack_t *out)
{
    size_t usable = (size + p->page - 1) & ~(p->page - 1);
    size_t total = usable + p->page;
    p->exhausted = true;
    if (corio__fault_hit(CORIO_FAULT_MMAP))
        return -ENOMEM;
    void *map = mmap(NULL, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return -ENOMEM;
    int rc = stack_guard(p, map);
    if (rc < 0) {
        munmap(map, total);
        return rc == -EFAULT ? -ENOMEM : rc; /* ENOMEM: vm.max_map_count reached */
    }
    p->exhausted = false;
    out->map = map;
    out->map_size = (uint32_t)total;
    out->size = (uint32_t)usable;
    return 0;
}

int corio__stack_get(corio_stack_pool_t *p, size_t size, corio_stack_t *out)
{
    if (size == 0)
        size = CORIO_DEFAULT_STACK_SIZE;
    if (size < 16 * 1024)
        size = 16 * 1024;
    if (size > UINT32_MAX - 2 * p->page)
        return -EINVAL; /* a stack of 4 GiB or more is a mistake */
    if (size == CORIO_DEFAULT_STACK_SIZE && p->nfree > 0) {
        *out = p->free[--p->nfree];
        return 0;
    }
    return stack_map(p, size, out);
}

void corio__stack_put(corio_stack_pool_t *p, corio_stack_t *s)
{
    if (!s->map)
        return; /* never bound (its mapping failed): nothing to pool */
    p->exhausted = false;
    if (s->size == CORIO_DEFAULT_STACK_SIZE && p->nfree < CORIO_STACK_POOL_MAX &&
        p->nfree == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        corio_stack_t *n = realloc(p->free, cap * sizeof *n);
        if (n) {
            p->free = n;
            p->cap = cap;
        }
    }
    if (!corio__stack_put_pooled(p, s))
        stack_unmap(s);
}

bool corio__stack_guard_hit(const corio_stack_t *s, const void *addr)
{
    const char *guard = s->map;
    size_t guard_size = s->map_size - s->size;
    /* A large frame can step over the guard: count a little below it too. */
    return (const char *)addr >= guard - guard_size && (const char *)addr < guard + guard_size;
}

/* ---- overflow report ------------------------------------------------------ */

static struct sigaction old_segv, old_bus;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static __thread void *alt_stack; /* ours, when the thread had none */
#define ALT_STACK_SIZE (64 * 1024)

static void write_str(const char *s) { (void)!write(2, s, strlen(s)); }

static void chain(int sig, siginfo_t *si, void *uctx)
{
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction)
            old->sa_sigaction(sig, si, uctx);
        return;
    }
    if (old->sa_handler == SIG_IGN || old->sa_handler == SIG_DFL) {
        /* Returning re-runs the faulting instruction under the default. */
        signal(sig, SIG_DFL);
        return;
    }
    old->sa_handler(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    corio_loop_t *loop = corio__tls_loop;
    corio_task_t *t = loop ? loop->current : NULL;
    if (t && corio__stack_guard_hit(&t->coro.stack, si->si_addr)) {
        char buf[32];
        write_str("corio: stack overflow in task '");
        write_str(corio__task_name_safe(t, buf));
        write_str("'\n");
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    chain(sig, si, uctx);
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

int corio__overflow_handler_install(void)
{
    pthread_once(&handler_once, install_handlers);
    if (alt_stack)
        return 0;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0; /* the application gave this thread one already */
    size_t size = ALT_STACK_SIZE;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -ENOMEM;
    stack_t ss = {.ss_sp = mem, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) < 0) {
        munmap(mem, size);
        return -errno;
    }
    alt_stack = mem;
    return 0;
}

void corio__overflow_handler_release(void)
{
    if (!alt_stack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    if (sigaltstack(&ss, NULL) == 0)
        munmap(alt_stack, ALT_STACK_SIZE);
    alt_stack = NULL;
}
