#!/usr/bin/env python3
"""Summarise an `ncu --csv --metrics gpu__time_duration.sum` log of a deepgo generate run:
the kernels of the last decode step (each step ends with argmax_kernel), in order and grouped
by kernel, with their summed GPU time."""
import csv, sys, collections

rows = []
with open(sys.argv[1], newline="") as f:
    lines = [l for l in f if l.startswith('"')]
for r in csv.DictReader(lines):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    v = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "")
    us = v / 1000 if unit in ("nsecond", "ns") else v * 1000 if unit in ("msecond", "ms") else v
    rows.append((r["Kernel Name"], r.get("Grid Size", ""), r.get("Block Size", ""), us))

ends = [i for i, r in enumerate(rows) if "argmax_kernel" in r[0]]
if len(ends) < 2:
    sys.exit("fewer than two argmax kernels: no whole decode step in the log")
step = rows[ends[-2] + 1 : ends[-1] + 1]
short = lambda n: n.split("(")[0].replace("void ", "").replace("<unnamed>::", "").replace("dg::", "")[:70]
print(f"last decode step: {len(step)} kernels, {sum(r[3] for r in step):.1f} us of GPU time (serialised)")
g = collections.OrderedDict()
for n, grid, blk, us in step:
    k = short(n)
    c, t = g.get(k, (0, 0.0))
    g[k] = (c + 1, t + us)
print("\n| kernel | calls | us | us/call |\n|---|--:|--:|--:|")
for k, (c, t) in sorted(g.items(), key=lambda x: -x[1][1]):
    print(f"| {k} | {c} | {t:.1f} | {t / c:.2f} |")
print("\nin order (first 40 of the step = the first layer and a half):")
for n, grid, blk, us in step[:40]:
    print(f"{us:8.2f} us  grid {grid:>14} block {blk:>12}  {short(n)}")
