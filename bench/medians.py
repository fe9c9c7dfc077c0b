"""Medians and ratio tables for the bench/run_*.sh scripts.

Each script gathers the `name value unit` lines of several alternating runs
into one file; this module takes the median of each figure and prints the
Markdown tables that go into BENCHMARKS.md."""
import statistics


def fmt_default(x):
    return f"{x:,.0f}" if x >= 1000 else f"{x:.2f}" if x < 100 else f"{x:.1f}"


class Report:
    def __init__(self, path, default_unit="", fmt=fmt_default, ratio_digits=2):
        self.vals, self.units = {}, {}
        for line in open(path):
            p = line.split()
            if len(p) >= 2:
                self.vals.setdefault(p[0], []).append(float(p[1]))
                self.units[p[0]] = p[2] if len(p) > 2 else default_unit
        self.med = {k: statistics.median(v) for k, v in self.vals.items()}
        self.fmt = fmt
        self.ratio_digits = ratio_digits

    def figures(self, title):
        print(title + "\n")
        print("| figure | median | unit |")
        print("| --- | ---: | --- |")
        for k in self.vals:
            print(f"| `{k}` | {self.fmt(self.med[k])} | {self.units[k]} |")

    def ratios(self, heading):
        print(f"\n| {heading} | value | goal |")
        print("| --- | ---: | --- |")

    def ratio(self, label, num, den, goal):
        med = self.med
        if num in med and den in med and med[den] > 0:
            print(f"| {label} | {med[num] / med[den]:.{self.ratio_digits}f}x | {goal} |")
