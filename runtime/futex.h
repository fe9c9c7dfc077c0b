/* A word-sized lock and a one-shot completion flag on Linux futexes.
 *
 * Thread-safe futures are made by the hundred thousand: a pthread mutex
 * and condition variable cost 88 bytes and two init calls each, where
 * these cost 8 bytes and two stores. The lock is the three-state futex
 * mutex of Drepper's "Futexes Are Tricky" (0 free, 1 held, 2 held with
 * sleepers), spinning briefly first, since a future's critical sections
 * are a few stores long. */
#ifndef CORIO_FUTEX_H
#define CORIO_FUTEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct corio_flock {
    _Atomic uint32_t word;
} corio_flock_t;

void corio__futex_wake(_Atomic uint32_t *word, int n);
/* The contended half of corio__flock_lock; seen is the word it found. */
void corio__flock_slow(corio_flock_t *l, uint32_t seen);

static inline void corio__cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline bool corio__flock_try(corio_flock_t *l, uint32_t *seen)
{
    *seen = 0;
    return atomic_compare_exchange_strong_explicit(&l->word, seen, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

static inline void corio__flock_lock(corio_flock_t *l)
{
    uint32_t seen;
    if (!corio__flock_try(l, &seen))
        corio__flock_slow(l, seen);
}

static inline void corio__flock_unlock(corio_flock_t *l)
{
    if (atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2)
        corio__futex_wake(&l->word, 1);
}

/* A flag set once, which threads may sleep on. */
enum { CORIO_FLAG_UNSET, CORIO_FLAG_SLEEPERS, CORIO_FLAG_SET };

static inline void corio__flag_set(_Atomic uint32_t *flag)
{
    if (atomic_exchange(flag, CORIO_FLAG_SET) == CORIO_FLAG_SLEEPERS)
        corio__futex_wake(flag, 1 << 30);
}

/* Sleeps until the flag is set (0) or abs, a CLOCK_MONOTONIC time unless
 * NULL, passes (-ETIMEDOUT). */
int corio__flag_wait(_Atomic uint32_t *flag, const struct timespec *abs);

#endif
