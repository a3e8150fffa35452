"""Does a 10-minute recipe fit this GPU, and how long does an update take? A benchmark.

Usage: python bench/bench_finetune.py --model large --max-tokens 1280000 640000 \
           [--cap-gb 16] [--updates 12] [--fast 0 1] [--card "RTX 5000"] [--work .bench/finetune]

Builds, under WORK, a synthetic 10-minute split (48 utterances of noise, 2-35 s, about 600 s
in all, as a Libri-light fold) and a randomly initialised wav2vec 2.0 of MODEL's real
architecture (BASE or LARGE, made by fairseq's own pre-training for one update), then runs the
real `make finetune PROTOCOL=fairseq` for UPDATES updates at each MAX_TOKENS with the
transformer trained (as after fairseq's first 10k updates; at the first MAX_TOKENS also frozen,
as in those 10k updates), in fp16, with
the process capped at CAP_GB of GPU memory, on fairseq's own path (FAST=0) and the fast path
(FAST=1), each with a checkpoint write every UPDATES/2 updates and a validation at the end.
Prints, per run: fits or out of memory, peak memory reserved by PyTorch, seconds per update,
the model's own seconds per update (forward, backward, optimizer; w2v2_10min/profile_hooks.py) and
seconds per checkpoint write (CHECKPOINT_MINUTES=0: every write the run asks for is made and
timed); then the time a whole 13,000-update run would take (updates, checkpoint writes: fairseq's
70, or FAST=1's on its 10-minute budget, 4 validations on dev-other at the frozen forward's speed), and
an estimate for CARD that scales only the arithmetic (model seconds, validation) by the ratio of
peak fp16 TFLOP/s and keeps the rest of each update as measured. Needs a CUDA GPU. The random weights make the timing and memory real and the WER meaningless.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import REPO, UserError, run_main  # noqa: E402
# the synthetic split and the random pre-trained models, shared with `make gpu-check`
from w2v2_10min.synthetic import random_pretrained, synthetic_split  # noqa: E402,F401

# Injected into the fine-tuning process (never into the project's own runs): caps GPU memory
# and reports the peak that PyTorch reserved.
SITECUSTOMIZE = """
import atexit, json, os
from w2v2_10min import startup  # what the repository's sitecustomize.py, shadowed, does
startup.defer_unused_imports()
cap = os.environ.get("BENCH_CAP_GB")
if cap:
    import torch
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(float(cap) * 2**30 / total)
    def _report():
        with open(os.environ["BENCH_REPORT"], "w") as f:
            json.dump({"peak_reserved_gb": torch.cuda.max_memory_reserved() / 2**30,
                       "peak_allocated_gb": torch.cuda.max_memory_allocated() / 2**30}, f)
    atexit.register(_report)
import sys
if os.environ.get("BENCH_PROFILE") and sys.argv and sys.argv[0].endswith("fairseq-hydra-train"):
    from w2v2_10min import profile_hooks
    profile_hooks.install()
"""


def make(work: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)


def seconds_per_update(log: str) -> float | None:
    """Median wall seconds per update over the logged intervals after the first."""
    walls = [(int(m.group(1)), float(m.group(2))) for m in
             re.finditer(r"num_updates=(\d+).*?, wall=([\d.]+)", log)]
    steps = [(w2 - w1) / (u2 - u1) for (u1, w1), (u2, w2) in zip(walls, walls[1:]) if u2 > u1]
    return float(np.median(steps)) if steps else None


# Peak dense fp16 tensor TFLOP/s (vendor data sheets) for scaling the arithmetic to another card.
PEAK_TFLOPS = {"H100": 990.0, "H200": 990.0, "A100": 312.0, "RTX 5000": 89.0}
DEV_OTHER_SECONDS = 5.3 * 3600  # validation: LibriSpeech dev-other, 2,864 utterances
RUN = {"frozen": 10_000, "trained": 3_000, "validations": 4}  # fairseq's recipe, 13k updates
# fairseq's saves in those 13k: at epoch ends 1,000 .. 9,000 (save_interval 1000; an update is an
# epoch) and every 50 updates from validate_after_updates (10,000) to 13,000.
FAIRSEQ_WRITES = 9 + 61
BUDGET_SECONDS = 600  # FAST=1: CHECKPOINT_MINUTES=10


def checkpoint_writes(fast: str, seconds: float) -> int:
    """Writes in a whole run: fairseq's 70, or on FAST=1's budget at most one per 10 minutes,
    one per validation (when it is the best so far) and the last."""
    if fast == "0":
        return FAIRSEQ_WRITES
    return min(FAIRSEQ_WRITES, int(seconds // BUDGET_SECONDS) + RUN["validations"] + 1)


def peak_tflops(name: str, given: float | None) -> float | None:
    return given or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def part(profile: dict, *names: str) -> float:
    """Seconds per update of the named parts (w2v2_10min/profile_hooks.py)."""
    return sum(profile["seconds"].get(n, 0.0) for n in names) / max(profile["updates"], 1)


def per_call(profile: dict, name: str) -> float:
    calls = profile["calls"].get(name, 0)
    return profile["seconds"].get(name, 0.0) / calls if calls else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["base", "large"], required=True)
    parser.add_argument("--max-tokens", type=int, nargs="+", required=True)
    parser.add_argument("--cap-gb", type=float, default=16.0)
    parser.add_argument("--updates", type=int, default=12)
    parser.add_argument("--fast", nargs="+", default=["0", "1"], choices=["0", "1"],
                        help="paths to time: 0 fairseq's own, 1 the fast path")
    parser.add_argument("--gpu-tflops", type=float, help="this GPU's peak (default: by name)")
    parser.add_argument("--card", default="RTX 5000", help="the 16 GB card to estimate for")
    parser.add_argument("--card-tflops", type=float, help="its peak (default: by name)")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "finetune")
    parser.add_argument("--make-args", nargs="*", default=[],
                        help="extra make variables (e.g. VENV=..., PY=...)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU: this benchmark measures GPU memory and speed "
                        "(on CPU, bench/profile_finetune.py profiles an update)")
    work = args.work.resolve()
    if not (work / "data").is_dir():
        synthetic_split(work / "data")
    python = sys.executable
    make_vars = [f"PY={python}", *args.make_args]
    manifests = make(work, "manifests", *make_vars, f"DATA={work / 'data'}", "SPLITS=0",
                     f"MANIFEST_ROOT={work / 'manifests'}")
    if manifests.returncode:
        raise UserError(f"make manifests failed: {manifests.stderr[-2000:]}")
    random_pretrained(args.model, work, python)
    shim = work / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    gpu = torch.cuda.get_device_name(0)
    print(f"{args.model}, fairseq protocol, fp16, {gpu} capped at {args.cap_gb:g} GiB, "
          f"{args.updates} updates of a 600 s split per run, a checkpoint every "
          f"{max(1, args.updates // 2)} updates and a validation at the end")
    print(f"{'max_tokens':>10} {'transformer':>11} {'FAST':>4} {'fits':>5} {'peak GiB':>9} "
          f"{'s/update':>9} {'model s':>8} {'s/write':>8}")
    results = []
    for index, max_tokens in enumerate(args.max_tokens):
        for frozen in (True, False) if index == 0 else (False,):
            for fast in args.fast:
                state = "frozen" if frozen else "trained"
                name = f"{args.model}-{max_tokens}-{state}-fast{fast}"
                report, profile_json = work / f"{name}.json", work / f"{name}-profile.json"
                report.unlink(missing_ok=True)
                profile_json.unlink(missing_ok=True)
                env = {**os.environ, "BENCH_CAP_GB": str(args.cap_gb), "BENCH_REPORT": str(report),
                       "BENCH_PROFILE": str(profile_json)}
                overrides = [f"optimization.max_update={args.updates}", "common.log_interval=1",
                             f"checkpoint.save_interval_updates={max(1, args.updates // 2)}",
                             "dataset.validate_after_updates=0",
                             f"dataset.validate_interval_updates={args.updates}",
                             "dataset.required_batch_size_multiple=1"]  # 1-utterance dev sets
                if not frozen:
                    overrides.append("model.freeze_finetune_updates=0")
                subprocess.run(["rm", "-rf", str(work / "runs" / name)], check=True)
                proc = make(work, "finetune", *make_vars, f"MODEL={args.model}",
                            "PROTOCOL=fairseq", "SPLIT=0", f"MAX_TOKENS={max_tokens}",
                            f"FAST={fast}", "CHECKPOINT_MINUTES=0",  # every write, timed
                            f"PRETRAINED_DIR={work / 'pretrained'}",
                            f"MANIFEST_ROOT={work / 'manifests'}",
                            f"RUN_ROOT={work / 'runs' / name}", f"PYTHONPATH={shim}:{REPO}",
                            f"ARGS={' '.join(overrides)}", env=env)
                logs = sorted((work / "runs" / name).rglob("finetune-*.log"))
                log = logs[-1].read_text() if logs else proc.stderr
                oom = "out of memory" in log.lower()
                memory = json.loads(report.read_text()) if report.is_file() else {}
                profile = json.loads(profile_json.read_text()) if profile_json.is_file() else None
                step = seconds_per_update(log)
                row = {"model": args.model, "max_tokens": max_tokens, "frozen": frozen,
                       "fast": fast, "fits": proc.returncode == 0 and not oom,
                       "seconds_per_update": step, **memory, "gpu": gpu, "cap_gb": args.cap_gb,
                       "profile": profile}
                if profile:
                    row["model_seconds"] = part(profile, "forward", "backward",
                                                "optimizer and trainer")
                    row["write_seconds"] = per_call(profile, "checkpoint write")
                    row["forward_seconds"] = part(profile, "forward")
                results.append(row)
                peak = f"{memory['peak_reserved_gb']:.1f}" if memory else "-"
                cells = [("-" if row.get(k) is None else f"{row[k]:.3f}")
                         for k in ("seconds_per_update", "model_seconds", "write_seconds")]
                print(f"{max_tokens:>10} {state:>11} {fast:>4} "
                      f"{'yes' if row['fits'] else 'OOM' if oom else 'fail':>5} {peak:>9} "
                      f"{cells[0]:>9} {cells[1]:>8} {cells[2]:>8}", flush=True)
                if proc.returncode and not oom:
                    print(log[-3000:], file=sys.stderr)
    (work / f"results-{args.model}.json").write_text(json.dumps(results, indent=2))
    whole_run(results, args, gpu)
    return 0


def whole_run(results: list[dict], args, gpu: str) -> None:
    """A 13,000-update run from the measured parts, here and (arithmetic scaled) on CARD."""
    this, card = peak_tflops(gpu, args.gpu_tflops), peak_tflops(args.card, args.card_tflops)
    for fast in args.fast:
        rows = [r for r in results if r["fast"] == fast and r.get("model_seconds")
                and r["seconds_per_update"]]
        frozen = next((r for r in rows if r["frozen"]), None)
        for trained in (r for r in rows if not r["frozen"]):
            if frozen is None:
                continue
            # validation on dev-other: the frozen forward's speed per second of audio (600 s)
            valid = frozen["forward_seconds"] * DEV_OTHER_SECONDS / 600
            parts = {"frozen": frozen, "trained": trained}
            seconds = sum(RUN[k] * parts[k]["seconds_per_update"] for k in parts) + \
                RUN["validations"] * valid
            writes = checkpoint_writes(fast, seconds)
            seconds += writes * trained["write_seconds"]
            line = (f"FAST={fast} max_tokens {trained['max_tokens']}: a 13,000-update run "
                    f"(10k frozen + 3k trained, {writes} checkpoint writes, "
                    f"{RUN['validations']} validations on dev-other) about {seconds / 3600:.2f} h "
                    f"on this {gpu}")
            if this and card:
                ratio = this / card
                scaled = sum(RUN[k] * (parts[k]["seconds_per_update"] +
                                       (ratio - 1) * parts[k]["model_seconds"]) for k in parts) + \
                    RUN["validations"] * valid * ratio
                scaled += checkpoint_writes(fast, scaled) * trained["write_seconds"]
                line += (f"; estimate for a {args.card} ({card:g} against {this:g} peak TFLOP/s, "
                         f"only the arithmetic scaled): about {scaled / 3600:.1f} h")
            print(line)


if __name__ == "__main__":
    run_main(main)
