"""Seed-to-seed spread of dev-other WER of the two trainers, side by side: the tiny recipe with
its own dropouts (activation dropout 0.1, masks), fine-tuned by fairseq and by transformers for
each seed on the tiny corpus's split 0, then decoded (Viterbi).

Usage: python bench/bench_spread.py [--seeds 1 2 3] [--work .bench/spread]   (make bench-spread)

With the dropouts at 0 the two trainers give the same run for a seed (tests/test_transformers_
trainer.py); with the recipe's dropouts each draws its dropout masks from torch in its own
order, so a seed no longer gives the same model, and what should agree is the spread: each
trainer's WERs over the seeds, their mean and range, printed with whether the ranges overlap.
Eight minutes or so on one core for three seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import REPO, UserError, run_main  # noqa: E402

TRAINERS = ("fairseq", "transformers")


def make(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(["make", "--no-print-directory", *args, "WANDB_PROJECT="], cwd=REPO,
                          env=env, capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"make {args[0]} failed: {proc.stderr[-2000:]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", default=["1", "2", "3"])
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "spread")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    knobs = ["MODEL=tiny", "PROTOCOL=tiny", "DATA=tiny/corpus", "GPUS=0", "SPLIT=0",
             f"MANIFEST_ROOT={work / 'manifests'}", f"PRETRAINED_DIR={work / 'pretrained'}",
             f"RUN_ROOT={work / 'runs'}", "EVAL_SETS=dev-other"]
    make("pretrain-tiny", f"PRETRAINED_DIR={work / 'pretrained'}")
    make("manifests", *knobs, "SPLITS=0")
    wers = {}
    for trainer in TRAINERS:
        for seed in args.seeds:
            make("finetune", *knobs, f"TRAINER={trainer}", f"SEED={seed}")
            make("decode", *knobs, f"TRAINER={trainer}", f"SEED={seed}")
            name = "tiny-tiny" + ("" if trainer == "fairseq" else "-transformers")
            record = work / "runs" / name / "10min-0" / f"seed-{seed}" / "decode" / \
                "dev_other" / "wer.json"
            wers.setdefault(trainer, []).append(json.loads(record.read_text())["wer"])
            print(f"{trainer}, seed {seed}: dev-other WER {wers[trainer][-1]:.2f}",
                  file=sys.stderr, flush=True)
    print(f"\ntiny recipe (its dropouts), split 0, seeds {' '.join(args.seeds)}: dev-other WER")
    print(f"{'trainer':<14} {'per seed':<28} {'mean':>6} {'sd':>6} {'range':>15}")
    for trainer in TRAINERS:
        values = wers[trainer]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{trainer:<14} {' '.join(f'{v:.2f}' for v in values):<28} "
              f"{statistics.mean(values):>6.2f} {sd:>6.2f} "
              f"{min(values):>7.2f}-{max(values):<7.2f}")
    low = max(min(v) for v in wers.values())
    high = min(max(v) for v in wers.values())
    print(f"ranges overlap: {'yes' if low <= high else 'no'}")
    return 0


if __name__ == "__main__":
    run_main(main)
