"""Where does a fine-tuning update's time go? A profile of `make finetune`, FAST=0 against FAST=1.

Usage: python bench/profile_finetune.py --model tiny|base [--updates N] [--seconds S]
           [--save-every K] [--work .bench/profile]

Runs the real `make finetune` twice, on fairseq's own path (FAST=0) and on the fast path
(FAST=1), with w2v2_10min/profile_hooks.py timing fairseq's loop from inside (a sitecustomize on
PYTHONPATH; fairseq is not changed), and prints seconds per update for each part: epoch set-up
(iterator, progress bar, begin/end of epoch), data loading (FLAC decoding, collating, waiting
for workers), forward (model and CTC loss), backward, optimizer and trainer bookkeeping,
validation, checkpoint writes, logging, and the rest of fairseq's loop.
- tiny: the tiny model (make pretrain-tiny) on the tiny corpus, PROTOCOL=tiny, on CPU.
- base: BASE's architecture with random weights (made as bench/bench_finetune.py makes them)
  on a synthetic split of S seconds, PROTOCOL=fairseq in fp32, transformer frozen (as in the
  recipe's first 10k updates); checkpoints and validation every K updates (the recipe: 50 and
  1000) so that a short run pays for them; `--device cuda` runs it on a GPU instead of the CPU.
Per-update figures divide each part by the updates run; checkpoint writes are also shown per
write. Timings on a shared machine are noisy: compare the two columns of one run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.synthetic import random_pretrained, synthetic_split  # noqa: E402
from w2v2_10min.common import REPO, UserError, run_main  # noqa: E402

PARTS = ["epoch set-up", "data loading", "forward", "backward", "optimizer and trainer",
         "validation", "checkpoint write", "logging", "other (fairseq loop)"]
SITECUSTOMIZE = """
import os, sys
from w2v2_10min import startup  # what the repository's sitecustomize.py, shadowed, does
startup.defer_unused_imports()
if os.environ.get("BENCH_PROFILE") and sys.argv and sys.argv[0].endswith("fairseq-hydra-train"):
    from w2v2_10min import profile_hooks
    profile_hooks.install()
"""


def make(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)


def prepare(args, work: Path) -> list[str]:
    """Manifests and pre-trained model; the make variables that select them."""
    if args.model == "tiny":
        data, manifests = REPO / "tiny" / "corpus", work / "manifests-tiny"
    else:
        data, manifests = work / f"data-{args.seconds:g}s", work / f"manifests-{args.seconds:g}s"
        if not data.is_dir():
            synthetic_split(data, count=max(2, round(args.seconds / 12)), total=args.seconds)
    made = make("manifests", f"DATA={data}", "SPLITS=0", f"MANIFEST_ROOT={manifests}")
    if made.returncode:
        raise UserError(f"make manifests failed: {made.stderr[-2000:]}")
    if args.model == "tiny":
        made = make("pretrain-tiny", f"PRETRAINED_DIR={work / 'pretrained'}",
                    f"DEMO_ROOT={work / 'demo'}")
        if made.returncode:
            raise UserError(f"make pretrain-tiny failed: {made.stderr[-2000:]}")
        return ["MODEL=tiny", "PROTOCOL=tiny", f"PRETRAINED_DIR={work / 'pretrained'}",
                f"MANIFEST_ROOT={manifests}"]
    random_pretrained("base", work, sys.executable, data=data, cpu=args.device == "cpu")
    return ["MODEL=base", "PROTOCOL=fairseq", f"PRETRAINED_DIR={work / 'pretrained'}",
            f"MANIFEST_ROOT={manifests}", "FP16=false"]


def profile(args, work: Path, make_vars: list[str], fast: str) -> dict:
    shim = work / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    report = work / f"profile-{args.model}-fast{fast}.json"
    report.unlink(missing_ok=True)
    runs = work / "runs" / f"{args.model}-fast{fast}"
    subprocess.run(["rm", "-rf", str(runs)], check=True)
    env = {**os.environ, "BENCH_PROFILE": str(report),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    every = args.save_every
    overrides = [f"optimization.max_update={args.updates}"]
    if args.model == "tiny":  # a validation with each checkpoint, as the README's figures had it
        overrides += ["dataset.validate_interval_updates=100"]
    if args.model == "base":
        overrides += [f"checkpoint.save_interval_updates={every}",
                      "dataset.validate_after_updates=0", f"dataset.validate_interval_updates={every}",
                      "dataset.required_batch_size_multiple=1",  # the 1-utterance dev sets
                      f"common.cpu={str(args.device == 'cpu').lower()}"]
    proc = make("finetune", *make_vars, "SPLIT=0", f"FAST={fast}", f"RUN_ROOT={runs}",
                f"PYTHONPATH={shim}:{REPO}", f"ARGS={' '.join(overrides)}", env=env)
    if proc.returncode or not report.is_file():
        raise UserError(f"make finetune FAST={fast} failed: {proc.stderr[-3000:]}")
    return json.loads(report.read_text())


def part_seconds(result: dict, part: str) -> float:
    return result["seconds"].get(part, 0.0) / max(result["updates"], 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "base"], required=True)
    parser.add_argument("--updates", type=int, default=0, help="default: tiny 200, base 10")
    parser.add_argument("--seconds", type=float, default=30.0, help="base: seconds of audio")
    parser.add_argument("--save-every", type=int, default=5,
                        help="base: checkpoint and validate every K updates")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "profile")
    args = parser.parse_args()
    args.updates = args.updates or (200 if args.model == "tiny" else 10)
    work = args.work.resolve()
    make_vars = prepare(args, work)
    results = {fast: profile(args, work, make_vars, fast) for fast in ("0", "1")}
    what = "tiny model, tiny corpus split 0 (8 utterances)" if args.model == "tiny" else \
        f"BASE architecture (random weights), synthetic {args.seconds:g} s split, frozen transformer"
    print(f"{what}; {args.updates} updates on {args.device}; seconds per update")
    print(f"{'part':<24} {'FAST=0':>9} {'FAST=1':>9}")
    totals = {}
    for part in PARTS:
        cells = []
        for fast in ("0", "1"):
            result = results[fast]
            seconds = result["seconds"].get(part, 0.0) / max(result["updates"], 1)
            totals[fast] = totals.get(fast, 0.0) + seconds
            cells.append(f"{seconds:9.4f}")
        print(f"{part:<24} {' '.join(cells)}")
    print(f"{'total per update':<24} {totals['0']:9.4f} {totals['1']:9.4f}")
    for fast in ("0", "1"):
        result = results[fast]
        writes = result["calls"].get("checkpoint write", 0)
        if writes:
            print(f"FAST={fast}: {writes} checkpoint writes, "
                  f"{result['seconds']['checkpoint write'] / writes:.3f} s each; once at start-up "
                  "(loading the split, building the optimizer) "
                  f"{result['seconds'].get('start-up (load split)', 0):.2f} s")
    model_seconds = {f: sum(results[f]["seconds"].get(p, 0.0) for p in ("forward", "backward"))
                     / max(results[f]["updates"], 1) for f in ("0", "1")}
    for fast in ("0", "1"):
        around = totals[fast] - model_seconds[fast] - part_seconds(results[fast],
                                                                   "optimizer and trainer")
        print(f"FAST={fast}: an update takes {totals[fast] / model_seconds[fast]:.2f}x "
              f"the model's own forward and backward; {around:.4f} s per update goes to "
              "neither them nor the optimizer")
    (work / f"profile-{args.model}.json").write_text(json.dumps(
        {"model": args.model, "updates": args.updates, "device": args.device,
         "seconds": args.seconds, "save_every": args.save_every, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    run_main(main)
