# The Python original of examples/queue_report.c: four Processes report
# through a multiprocessing.Queue.
import os, sys
from multiprocessing import Process, Queue

WORKERS = 4

def worker(i, n, q):
    per = (n + WORKERS - 1) // WORKERS
    lo, hi = per * i, min(per * (i + 1), n)
    q.put((i, os.getpid(), sum(k * k for k in range(lo, hi))))

if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) == 3 and sys.argv[1] == "--n" else 1000000
    q = Queue()
    ps = [Process(target=worker, args=(i, n, q)) for i in range(WORKERS)]
    for p in ps: p.start()
    total = 0
    for _ in range(WORKERS):
        i, pid, s = q.get()
        print("report from worker %d (pid %d): %d" % (i, pid, s))
        total += s
    for p in ps: p.join()
    print("reports: %d\ntotal %d" % (WORKERS, total))
