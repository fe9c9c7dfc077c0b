#!/usr/bin/env python3
"""Tests of the teaching examples (issue 7).

    test_examples.py NAME EXECUTABLE PYTHON_DIR

Each case runs the example at its full size where that is quick, checking
the known values (the factorisation checksum, the sums of primes), and then
on a second, smaller input whose expected output comes from the Python
original, run now: no expected value of the small runs is written here.
Prints TAP; exits 0 on success, 1 on failure.
"""
import math
import os
import re
import subprocess
import sys
import tempfile

FACTOR_CHECKSUM = 236620913152936
PRIMES_FIRST = "[100000, 454396537]"
PRIMES_LAST = "[2400000, 203110644373]"


class Failure(Exception):
    pass


def run(argv, timeout=100):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise Failure("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                      % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p.stdout


def python(pydir, script, *args):
    return run([sys.executable, os.path.join(pydir, script)] + list(args))


def python_call(pydir, module, expr):
    """Evaluates expr with the Python original imported as module."""
    code = "import sys; sys.path.insert(0, %r); import %s; print(%s)" % (pydir, module, expr)
    return run([sys.executable, "-c", code]).strip()


def field(text, pattern):
    m = re.search(pattern, text, re.M)
    if not m:
        raise Failure("no match for %r in:\n%s" % (pattern, text))
    return m.group(1)


def expect(cond, what):
    if not cond:
        raise Failure(what)


# ---- the four workloads -----------------------------------------------------

def case_factorize(exe, pydir):
    with tempfile.TemporaryDirectory() as d:
        svg = os.path.join(d, "chart.svg")
        out = run([exe, "--svg", svg])
        expect(field(out, r"^checksum (\d+)$") == str(FACTOR_CHECKSUM), "full checksum")
        expect("results: identical in every mode" in out, "modes agree")
        rows = re.findall(r"^(serial|threads|processes)\s+(\d+)\s+[\d.]+\s+[\d.]+x$", out, re.M)
        expect([(m, int(w)) for m, w in rows] ==
               [("serial", 1), ("threads", 2), ("threads", 4), ("threads", 8),
                ("processes", 2), ("processes", 4), ("processes", 8)], "one row per mode")
        with open(svg) as f:
            chart = f.read()
        expect(chart.startswith("<svg") and chart.count('class="bar"') == 7, "SVG: 7 bars")
    small = run([exe, "--count", "7", "--svg", "none"])
    ref = python(pydir, "factorize.py", "7")
    expect(field(small, r"^checksum (\d+)$") == field(ref, r"^checksum (\d+)$"),
           "small checksum equals the Python original's")


def case_sum_primes(exe, pydir):
    out = run([exe])
    lines = re.findall(r"^\[\d+, \d+\]$", out, re.M)
    expect(len(lines) == 24 and lines[0] == PRIMES_FIRST and lines[-1] == PRIMES_LAST,
           "24 sums, first and last exact")
    ns = [int(l[1:].split(",")[0]) for l in lines]
    expect(ns == sorted(ns), "sorted by n")
    expect(re.search(r"^process\s+2\s", out, re.M) and re.search(r"^thread\s+2\s", out, re.M),
           "process and thread rows")
    small = run([exe, "--start", "1000", "--stop", "30000", "--step", "1000"])
    ref = python_call(pydir, "sum_primes",
                      "'\\n'.join('[%d, %d]' % (n, sum_primes.sum_primes(n)) "
                      "for n in range(1000, 30000, 1000))")
    expect(re.findall(r"^\[\d+, \d+\]$", small, re.M) == ref.splitlines(),
           "small sums equal the Python original's")
    trial = run([exe, "--trial", "--start", "100", "--stop", "3000", "--step", "100"])
    ref = python_call(pydir, "sum_primes",
                      "'\\n'.join('[%d, %d]' % (n, sum_primes.trial(n)) "
                      "for n in range(100, 3000, 100))")
    expect(re.findall(r"^\[\d+, \d+\]$", trial, re.M) == ref.splitlines(),
           "trial division equals the Python original's")


def case_map_compare(exe, pydir):
    n = 300000
    out = run([exe, "--n", str(n)])
    expect("results: identical in every mode" in out, "modes agree")
    expect(int(field(out, r"^sum of the squares % 2\*\*61: (\d+)$")) == (n * (n - 1) * (2 * n - 1) // 6) % (1 << 61),
           "sum of squares")
    for fn in ("spin", "square"):
        for mode in ("sequential", "threads", "processes"):
            expect(re.search(r"^%s\s+%s\s" % (fn, mode), out, re.M), "row %s %s" % (fn, mode))
    expect(len(re.findall(r"^(threads|processes)\s+(1|100|10000)\s", out, re.M)) == 6,
           "chunksize table")
    small = run([exe, "--n", "20000"])
    ref = python(pydir, "map_compare.py", "20000")
    expect(field(small, r"^sum of the squares % 2\*\*61: (\d+)$") == field(ref, r"^sum (\d+)$"),
           "small sum equals the Python original's")


def case_pipeline(exe, pydir):
    out = run([exe, "--n", "2000"])
    sums = re.findall(r"^checksum (\d+)$", out, re.M)
    expect(len(sums) == 2 and sums[0] == sums[1], "both forms agree")
    expect("2000 collected" in out, "no item lost")
    small = run([exe, "--n", "150"])
    ref = python(pydir, "pipeline.py", "150")
    expect(re.findall(r"^checksum (\d+)$", small, re.M) == [field(ref, r"^checksum (\d+)$")] * 2,
           "small checksums equal the Python original's")


# ---- the classic small programs -----------------------------------------------

def case_hello_child(exe, pydir):
    out = run([exe, "--name", "alice"])
    parent = field(out, r"^parent: pid (\d+)$")
    child_parent = field(out, r"^hello alice from the child: pid \d+, parent (\d+)$")
    expect(parent == child_parent, "the child's parent is the parent")
    expect(field(out, r"exited with status (\d+)") == "0", "child exit status")
    ref = python(pydir, "hello_child.py", "--name", "alice")
    strip = lambda t: re.sub(r"\d+", "N", "\n".join(t.splitlines()[:3]))
    expect(strip(out) == strip(ref), "same lines as the Python original")


def tree_lines(text):
    return [tuple(map(int, m)) for m in
            re.findall(r"^depth (\d+): pid (\d+), parent (\d+)$", text, re.M)]


def case_process_tree(exe, pydir):
    for depth in ("3", "1"):
        out = run([exe, "--depth", depth])
        ref = python(pydir, "process_tree.py", "--depth", depth)
        nodes = tree_lines(out)
        expect(len(nodes) == len(tree_lines(ref)) == int(field(ref, r"^processes: (\d+)$")),
               "as many processes as the Python original")
        pids = {pid: d for d, pid, _ in nodes}
        for d, pid, parent in nodes:
            expect(d == 0 or pids.get(parent) == d - 1, "parent one level up")
        expect(sorted(d for d, _, _ in nodes) == sorted(d for d, _, _ in tree_lines(ref)),
               "same shape")


def case_queue_report(exe, pydir):
    out = run([exe, "--n", "12345"])
    ref = python(pydir, "queue_report.py", "--n", "12345")
    reports = lambda t: sorted(re.findall(r"^report from worker (\d) \(pid \d+\): (\d+)$", t, re.M))
    expect(len(reports(out)) == 4, "four reports")
    expect(reports(out) == reports(ref), "reports equal the Python original's")
    expect(field(out, r"^total (\d+)$") == field(ref, r"^total (\d+)$"), "total")


def case_pool_callbacks(exe, pydir):
    pat = r"^(map|map_async|apply_async): sum (?:of cubes of 0\.\.7: )?(\d+)"
    out = run([exe, "--n", "777"])
    ref = python(pydir, "pool_callbacks.py", "--n", "777")
    got = re.findall(pat, out, re.M)
    expect(len(got) == 3 and got == re.findall(pat, ref, re.M),
           "map, map_async and apply_async equal the Python original's")
    cubes = sorted(map(int, field(out, r"callbacks ran:((?: \d+)+)$").split()))
    expect(cubes == [x ** 3 for x in range(8)], "every apply_async callback ran once")


def case_counter_race(exe, pydir):
    out = run([exe, "--workers", "2", "--iters", "200000"])
    rows = re.findall(r"^(threads|processes)\s+(none|locked)\s+(\d+)\s+(-?\d+)$", out, re.M)
    expect(len(rows) == 4, "four rows")
    for kind, lock, total, lost in rows:
        total, lost = int(total), int(lost)
        expect(total + lost == 400000, "lost = expected - total")
        expect(0 < total <= 400000, "an unlocked total never exceeds the expected")
        expect(lock == "none" or lost == 0, "%s locked total exact" % kind)
    small = run([exe, "--workers", "3", "--iters", "3000"])
    ref = python(pydir, "counter_race.py", "--workers", "3", "--iters", "3000")
    locked = lambda t: re.findall(r"^(\w+)\s+locked\s+(\d+)\s+0$", t, re.M)
    expect(locked(small) == locked(ref) and len(locked(ref)) == 2,
           "locked totals equal the Python original's")
    expect(field(small, r"\(expected (\d+)\)") == field(ref, r"\(expected (\d+)\)"), "expected")


def case_producer_consumer(exe, pydir):
    out = run([exe])
    expect(len(re.findall(r"^produced \d+$", out, re.M)) ==
           len(re.findall(r"^  consumed \d+$", out, re.M)) == 10, "shown items")
    pat = r"^consumed (\d+) items, sum (\d+)"
    small = run([exe, "--n", "13", "--delay-ms", "0"])
    ref = python(pydir, "producer_consumer.py", "--n", "13", "--delay-ms", "0")
    got = re.findall(pat, small, re.M)
    expect(len(got) == 1 and got == re.findall(pat, ref, re.M),
           "count and sum equal the Python original's")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    name, exe, pydir = sys.argv[1:]
    case = globals().get("case_" + name)
    if not case:
        print("no case for %s" % name, file=sys.stderr)
        return 2
    print("1..1")
    try:
        case(os.path.abspath(exe), os.path.abspath(pydir))
    except (Failure, subprocess.TimeoutExpired) as e:
        print("not ok 1 - %s\n# %s" % (name, str(e).replace("\n", "\n# ")))
        return 1
    print("ok 1 - %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
