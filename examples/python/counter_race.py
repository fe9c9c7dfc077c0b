# The Python original of examples/counter_race.c: a shared counter with and
# without a lock, for threads and for processes.
import sys, threading
from multiprocessing import Process, Value

def bump(counter, iters, locked):
    for _ in range(iters):
        if locked:
            with counter.get_lock():
                counter.value += 1
        else:
            counter.value += 1

def run(kind, workers, iters, locked):
    counter = Value("l", 0)
    mk = threading.Thread if kind == "threads" else Process
    ws = [mk(target=bump, args=(counter, iters, locked)) for _ in range(workers)]
    for w in ws: w.start()
    for w in ws: w.join()
    return counter.value

if __name__ == "__main__":
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    workers, iters = int(args.get("--workers", 2)), int(args.get("--iters", 100000))
    expected = workers * iters
    print("counter_race: %d workers x %d increments (expected %d)" % (workers, iters, expected))
    for kind in ("threads", "processes"):
        for locked in (False, True):
            total = run(kind, workers, iters, locked)
            print("%-10s %-7s %12d %12d" % (kind, "locked" if locked else "none", total,
                                            expected - total))
