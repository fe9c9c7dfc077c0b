# The Python original of examples/producer_consumer.c: a producer and a
# consumer thread handing items over through a box and two Events.
import sys, threading, time

if __name__ == "__main__":
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    n, delay = int(args.get("--n", 20)), int(args.get("--delay-ms", 2)) / 1000
    item_ready, slot_free = threading.Event(), threading.Event()
    slot_free.set()
    box = {"item": None, "closed": False}
    got = []

    def producer():
        for i in range(n + 1):
            slot_free.wait(); slot_free.clear()
            if i == n:
                box["closed"] = True
            else:
                time.sleep(delay)
                box["item"] = i * i
            item_ready.set()

    def consumer():
        while True:
            item_ready.wait(); item_ready.clear()
            if box["closed"]:
                return
            got.append(box["item"])
            slot_free.set()

    ts = [threading.Thread(target=consumer), threading.Thread(target=producer)]
    for t in ts: t.start()
    for t in ts: t.join()
    print("consumed %d items, sum %d" % (len(got), sum(got)))
