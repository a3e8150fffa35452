"""How long a process takes to import fairseq, with and without w2v2_10min/startup.py.

Usage: python bench/bench_startup.py [--repeats 5]

Starts `python -c "import torch, fairseq"` REPEATS times each way, alternating: with the
repository on PYTHONPATH (its sitecustomize.py defers what fairseq imports for parts no stage
runs, as in every process `make` starts) and without (fairseq's own start-up). Prints the median
wall and CPU seconds of each, which packages each left unimported, and the ratio; torch alone
for reference. Every stage (decode, tune-lm, the fine-tuning's processes) pays this once.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = ("import sys, time, torch, fairseq; "
         "print(' '.join(m for m in ('sklearn', 'scipy.stats', 'pandas', 'wandb') "
         "if m not in sys.modules) or '-')")


def start(code: str, with_startup: bool) -> tuple[float, float, str]:
    """Wall and CPU seconds of one `python -c code`, and what it printed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if with_startup:
        env["PYTHONPATH"] = str(REPO)
    before, wall = os.times(), time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    wall, after = time.perf_counter() - wall, os.times()
    cpu = (after.children_user - before.children_user) + \
        (after.children_system - before.children_system)
    return wall, cpu, done.stdout.strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = {"torch alone": [], "fairseq's own start-up": [],
            "with w2v2_10min/startup.py": []}
    left = {}
    for _ in range(args.repeats):
        rows["torch alone"].append(start("import torch", False)[:2])
        for name, deferred in (("fairseq's own start-up", False),
                               ("with w2v2_10min/startup.py", True)):
            wall, cpu, out = start(PROBE, deferred)
            rows[name].append((wall, cpu))
            left[name] = out
    print(f"`import torch, fairseq` in a new process, median of {args.repeats}")
    print("| start-up | wall s | CPU s | not imported |")
    print("|---|---|---|---|")
    medians = {}
    for name, times in rows.items():
        wall, cpu = (statistics.median(t[i] for t in times) for i in (0, 1))
        medians[name] = wall
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {left.get(name, '')} |")
    ratio = medians["fairseq's own start-up"] / medians["with w2v2_10min/startup.py"]
    print(f"fairseq's own / with startup.py: {ratio:.2f}x (wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
