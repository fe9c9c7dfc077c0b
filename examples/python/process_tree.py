# The Python original of examples/process_tree.c: a binary tree of processes.
import os, sys

def node(depth, maxd):
    os.write(1, b"depth %d: pid %d, parent %d\n" % (depth, os.getpid(), os.getppid()))
    if depth == maxd:
        return 0
    kids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            os._exit(node(depth + 1, maxd))
        kids.append(pid)
    return max(os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids)

if __name__ == "__main__":
    d = int(sys.argv[2]) if len(sys.argv) == 3 and sys.argv[1] == "--depth" else 2
    rc = node(0, d)
    print("processes: %d" % ((1 << (d + 1)) - 1))
    sys.exit(rc)
