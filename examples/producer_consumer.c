/* producer_consumer: an Event-driven producer and consumer.
 *
 * Two coroutines hand items over through a one-item box and two events:
 * "item ready" (set by the producer, cleared by the consumer) and "slot
 * free" (the other way round). Each side waits for its event, so neither
 * polls, and the producer can never overwrite an item not yet taken.
 *
 * Python original (examples/python/producer_consumer.py): two threads and
 * two threading.Event objects. Here corio_event_t is asyncio.Event: the two
 * sides are tasks on one loop, so a wait suspends only that task.
 *
 *   producer_consumer [--n ITEMS] [--delay-ms MS] */
#include <corio.h>
#include <corio/sync.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOWN 5 /* items printed at each end; the rest are counted */

typedef struct box {
    corio_event_t item_ready, slot_free;
    int64_t item;
    bool closed; /* the producer is done: no item in the box */
    long n;
    int64_t delay_ns;
    long consumed;
    int64_t sum;
} box_t;

static bool shown(const box_t *b, long i)
{
    return i < SHOWN || i >= b->n - SHOWN;
}

static intptr_t producer(void *arg)
{
    box_t *b = arg;
    for (long i = 0; i <= b->n; i++) {
        int rc = corio_event_wait(&b->slot_free);
        if (rc < 0)
            return rc;
        corio_event_clear(&b->slot_free);
        if (i == b->n) {
            b->closed = true;
        } else {
            corio_sleep(b->delay_ns); /* making an item takes a while */
            b->item = (int64_t)i * i;
            if (shown(b, i))
                printf("produced %lld\n", (long long)b->item);
        }
        corio_event_set(&b->item_ready);
    }
    return 0;
}

static intptr_t consumer(void *arg)
{
    box_t *b = arg;
    for (;;) {
        int rc = corio_event_wait(&b->item_ready);
        if (rc < 0)
            return rc;
        corio_event_clear(&b->item_ready);
        if (b->closed)
            return 0;
        if (shown(b, b->consumed))
            printf("  consumed %lld\n", (long long)b->item);
        else if (b->consumed == SHOWN)
            printf("  ...\n");
        b->sum += b->item;
        b->consumed++;
        corio_event_set(&b->slot_free);
    }
}

static intptr_t run(void *arg)
{
    box_t *b = arg;
    corio_event_init(&b->item_ready);
    corio_event_init(&b->slot_free);
    corio_event_set(&b->slot_free); /* the box starts empty */
    corio_task_t *p, *c;
    int rc = corio_spawn(NULL, &c, consumer, b, NULL);
    if (rc < 0)
        return rc;
    if ((rc = corio_spawn(NULL, &p, producer, b, NULL)) < 0)
        return rc;
    corio_value_t v;
    int rp = corio_task_await(p, &v), rcn = corio_task_await(c, &v);
    corio_task_release(p);
    corio_task_release(c);
    corio_event_destroy(&b->item_ready);
    corio_event_destroy(&b->slot_free);
    return rp < 0 ? rp : rcn;
}

int main(int argc, char **argv)
{
    box_t b = {.n = 20, .delay_ns = 2 * CORIO_NS_PER_MS};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--n") == 0)
            b.n = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--delay-ms") == 0)
            b.delay_ns = atol(argv[i + 1]) * CORIO_NS_PER_MS;
    }
    if (b.n < 0 || b.delay_ns < 0) {
        fprintf(stderr, "usage: producer_consumer [--n ITEMS>=0] [--delay-ms MS>=0]\n");
        return 2;
    }
    int64_t t0 = corio_now();
    intptr_t rc = corio_run(run, &b);
    if (rc < 0) {
        fprintf(stderr, "producer_consumer: %s\n", corio_strerror((int)rc));
        return 1;
    }
    printf("consumed %ld items, sum %lld, in %.3f s\n", b.consumed, (long long)b.sum,
           (double)(corio_now() - t0) / 1e9);
    printf("Each side sleeps in its wait until the other sets its event: no busy\n"
           "polling, and the one-item box is never overwritten before it is read.\n");
    return b.consumed == b.n ? 0 : 1;
}
