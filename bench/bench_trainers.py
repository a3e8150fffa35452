"""Seconds per update of the two trainers of one recipe, side by side: fairseq
(`make finetune TRAINER=fairseq`, FAST=0 and FAST=1) and transformers (`TRAINER=transformers`).

Usage: python bench/bench_trainers.py --model tiny|base [--updates N] [--work .bench/trainers]

Each trainer runs the real `make finetune` twice, for N and 2N updates, and an update's time is
(wall time of the 2N run - wall time of the N run) / N: start-up (imports, building the model,
loading the split, the conversion to transformers) cancels out, and what is left is the
training loop as a user pays for it, data, forward, backward, optimizer and each trainer's own
bookkeeping. Both trainers train the same composed config in fp32 on this machine's device
(the CPU here; the transformers trainer refuses fp16 for now):
- tiny: the tiny model on the tiny corpus, PROTOCOL=tiny (its transformer trained from update
  0 here: model.freeze_finetune_updates=0);
- base: BASE's architecture with random weights on a synthetic 30 s split (as
  bench/profile_finetune.py makes them), PROTOCOL=fairseq, the transformer frozen as in the
  recipe's first 10k updates, no checkpoints or validation within the run.
Timings on a shared machine are noisy: compare the columns of one run.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import REPO, UserError, run_main  # noqa: E402
from w2v2_10min.synthetic import random_pretrained, synthetic_split  # noqa: E402

TRAINERS = [("fairseq, FAST=0", ["TRAINER=fairseq", "FAST=0"]),
            ("fairseq, FAST=1", ["TRAINER=fairseq", "FAST=1"]),
            ("transformers", ["TRAINER=transformers"])]


def make(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(["make", "--no-print-directory", *args, "WANDB_PROJECT="], cwd=REPO,
                          env=env, capture_output=True, text=True)


def prepare(model: str, work: Path) -> tuple[list[str], list[str]]:
    """The make variables that select the split and pre-trained model, and the overrides."""
    if model == "tiny":
        data, manifests = REPO / "tiny" / "corpus", work / "manifests-tiny"
        knobs = ["MODEL=tiny", "PROTOCOL=tiny", f"PRETRAINED_DIR={REPO / 'tiny' / 'pretrained'}"]
        overrides = ["model.freeze_finetune_updates=0", "dataset.validate_interval_updates=0",
                     "checkpoint.save_interval_updates=0"]
    else:
        data, manifests = work / "data-30s", work / "manifests-30s"
        if not data.is_dir():
            synthetic_split(data, count=3, total=30.0)
        random_pretrained("base", work, sys.executable, data=data, cpu=True)
        knobs = ["MODEL=base", "PROTOCOL=fairseq", f"PRETRAINED_DIR={work / 'pretrained'}"]
        overrides = ["dataset.validate_after_updates=1000000",
                     "checkpoint.save_interval_updates=0", "common.cpu=true",
                     "dataset.required_batch_size_multiple=1"]
    made = make("manifests", f"DATA={data}", "SPLITS=0", f"MANIFEST_ROOT={manifests}",
                "EVAL_SETS=dev-other")
    if made.returncode:
        raise UserError(f"make manifests failed: {made.stderr[-2000:]}")
    return [*knobs, f"MANIFEST_ROOT={manifests}", "EVAL_SETS=dev-other", "SPLIT=0", "SEED=1",
            "FP16=false", "GPUS=1"], overrides


def wall_seconds(work: Path, name: str, knobs: list[str], overrides: list[str],
                 updates: int) -> float:
    runs = work / "runs" / f"{name.replace(', ', '-').replace('=', '')}-{updates}"
    subprocess.run(["rm", "-rf", str(runs)], check=True)
    start = time.perf_counter()
    proc = make("finetune", *knobs, f"RUN_ROOT={runs}",
                f"ARGS={' '.join([*overrides, f'optimization.max_update={updates}'])}")
    if proc.returncode:
        raise UserError(f"make finetune ({name}, {updates} updates) failed: "
                        f"{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--updates", type=int, help="N (default: 40 tiny, 3 base)")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "trainers")
    args = parser.parse_args(argv)
    updates = args.updates or (40 if args.model == "tiny" else 3)
    work = args.work.resolve() / args.model
    work.mkdir(parents=True, exist_ok=True)
    knobs, overrides = prepare(args.model, work)
    rows = []
    for name, extra in TRAINERS:
        once = wall_seconds(work, name, [*knobs, *extra], overrides, updates)
        twice = wall_seconds(work, name, [*knobs, *extra], overrides, 2 * updates)
        rows.append((name, (twice - once) / updates, once, twice))
        print(f"{name}: {once:.1f} s for {updates} updates, {twice:.1f} s for {2 * updates}",
              file=sys.stderr, flush=True)
    reference = rows[0][1]
    print(f"\n{args.model}, {updates} and {2 * updates} updates per trainer, fp32, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '1')}")
    print(f"{'trainer':<18} {'s/update':>10} {'vs fairseq FAST=0':>18} {'start-up s':>11}")
    for name, per_update, once, _ in rows:
        print(f"{name:<18} {per_update:>10.4f} {per_update / reference:>17.2f}x "
              f"{once - updates * per_update:>11.1f}")
    return 0


if __name__ == "__main__":
    run_main(main)
