/* Error descriptions and the monotonic clock. */
#include "internal.h"

#include <string.h>
#include <time.h>

const char *corio_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case CORIO_EINVALSTATE: return "future is in the wrong state for this call";
    case CORIO_EBROKEN: return "executor pool is broken";
    case CORIO_EINCOMPLETE: return "end of stream before the requested bytes";
    case CORIO_EWORKERDIED: return "worker process died while running the task";
    case CORIO_ELIMITOVERRUN: return "separator not found within the limit";
    case CORIO_EQUEUESHUTDOWN: return "queue was shut down";
    case CORIO_EBROKENBARRIER: return "barrier is broken";
    case CORIO_ENONAME: return "function cannot be named in a spawned worker";
    case CORIO_ESHUTDOWN: return "executor was shut down";
    default: break;
    }
    if (code < 0 && code > -4096)
        return strerrordesc_np(-code) ? strerrordesc_np(-code) : "unknown error";
    return "unknown error";
}

int64_t corio_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * CORIO_NS_PER_SEC + ts.tv_nsec;
}

/* Fault injection: per thread, so tests in different threads never meet. */
static CORIO_TLS long fault_countdown[CORIO_FAULT_NSITES];

void corio__fault_set(int site, long nth)
{
    if (site >= 0 && site < CORIO_FAULT_NSITES)
        fault_countdown[site] = nth;
}

bool corio__fault_hit(int site)
{
    long *c = &fault_countdown[site];
    if (corio_likely(*c == 0))
        return false;
    return --*c == 0;
}
