/* The sleeping halves of futex.h's lock and flag. */
#include "futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Sleeps while *word == expect; 0, or -ETIMEDOUT once abs passed. */
static int futex_wait(_Atomic uint32_t *word, uint32_t expect, const struct timespec *abs)
{
    long rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expect, abs, NULL,
                      FUTEX_BITSET_MATCH_ANY);
    return rc < 0 && errno == ETIMEDOUT ? -ETIMEDOUT : 0;
}

void corio__futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

void corio__flock_slow(corio_flock_t *l, uint32_t seen)
{
    for (int i = 0; i < 100 && seen; i++) {
        corio__cpu_relax();
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 && corio__flock_try(l, &seen))
            return;
    }
    /* Marked as having sleepers from here on: the unlock wakes one. */
    while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0)
        futex_wait(&l->word, 2, NULL);
}

int corio__flag_wait(_Atomic uint32_t *flag, const struct timespec *abs)
{
    for (;;) {
        uint32_t v = CORIO_FLAG_UNSET;
        if (!atomic_compare_exchange_strong(flag, &v, CORIO_FLAG_SLEEPERS) && v == CORIO_FLAG_SET)
            return 0;
        if (futex_wait(flag, CORIO_FLAG_SLEEPERS, abs) == -ETIMEDOUT)
            return atomic_load(flag) == CORIO_FLAG_SET ? 0 : -ETIMEDOUT;
    }
}
