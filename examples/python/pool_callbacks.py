# The Python original of examples/pool_callbacks.c.
import sys
from multiprocessing import Pool

APPLY_COUNT = 8

def square(x): return x * x
def cube(x): return x * x * x

if __name__ == "__main__":
    n = int(sys.argv[2]) if len(sys.argv) == 3 and sys.argv[1] == "--n" else 10000
    got = []
    with Pool(2) as pool:
        print("map: sum %d" % sum(pool.map(square, range(n))))
        r = pool.map_async(square, range(n), callback=lambda lst: got.append(sum(lst)))
        r.wait()
        print("map_async: sum %d" % got[0])
        cubes = []
        rs = [pool.apply_async(cube, (x,), callback=cubes.append) for x in range(APPLY_COUNT)]
        for a in rs: a.wait()
        print("apply_async: sum of cubes of 0..%d: %d" % (APPLY_COUNT - 1, sum(cubes)))
