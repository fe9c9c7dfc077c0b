# The Python original of examples/hello_child.c.
import os, sys
from multiprocessing import Process

def f(name):
    print("hello %s from the child: pid %d, parent %d" % (name, os.getpid(), os.getppid()))

if __name__ == "__main__":
    name = sys.argv[2] if len(sys.argv) == 3 and sys.argv[1] == "--name" else "bob"
    print("parent: pid %d" % os.getpid(), flush=True)
    p = Process(target=f, args=(name,))
    p.start()
    p.join()
    print("parent: child %d exited with status %d" % (p.pid, p.exitcode))
