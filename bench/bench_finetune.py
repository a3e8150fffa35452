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
the model's own seconds per update (forward, backward, optimizer; bench/profile_hooks.py) and
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
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import REPO, SAMPLE_RATE, UserError, run_main  # noqa: E402

ARCH = {
    # fairseq's wav2vec2_base_librispeech.yaml and wav2vec2_large_librivox.yaml
    "base": ["model.conv_feature_layers='[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2'",
             "model.encoder_layers=12", "model.encoder_embed_dim=768",
             "model.encoder_ffn_embed_dim=3072", "model.encoder_attention_heads=12",
             "model.final_dim=256"],
    "large": ["model.conv_feature_layers='[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2'",
              "model.extractor_mode=layer_norm", "+model.layer_norm_first=true",
              "+model.conv_bias=true", "model.encoder_layers=24", "model.encoder_embed_dim=1024",
              "model.encoder_ffn_embed_dim=4096", "model.encoder_attention_heads=16",
              "model.final_dim=768"],
}
COMMON_ARCH = ["model.conv_pos=128", "model.conv_pos_groups=16", "model.latent_vars=320",
               "model.num_negatives=100", "model.mask_length=10"]
PRETRAINED_NAME = {"base": "wav2vec_small.pt", "large": "libri960_big.pt"}
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
    sys.path.insert(0, os.environ["BENCH_HOOKS"])
    import profile_hooks
    profile_hooks.install()
"""


def synthetic_split(root: Path, count: int = 48, seed: int = 0, total: float = 600.0) -> None:
    """Noise 'speech' in Libri-light layout with letter transcripts about 15 characters/s."""
    rng = random.Random(seed)
    durations = [min(35.0, max(2.0, rng.lognormvariate(2.4, 0.45))) for _ in range(count)]
    scale = total / sum(durations)
    words = ["THE", "AND", "OF", "TO", "A", "IN", "WAS", "HE", "THAT", "IT", "HIS", "HER"]
    for index, seconds in enumerate(durations):
        condition = "clean" if index % 2 == 0 else "other"
        speaker = 100 + index % 4
        folder = root / "librispeech_finetuning/1h/0" / condition / str(speaker) / "1"
        folder.mkdir(parents=True, exist_ok=True)
        samples = int(min(35.0, seconds * scale) * SAMPLE_RATE)
        audio = np.random.default_rng(index).normal(0, 0.1, samples).astype("float32")
        utt = f"{speaker}-1-{index:04d}"
        soundfile.write(folder / f"{utt}.flac", audio, SAMPLE_RATE)
        text = " ".join(rng.choice(words) for _ in range(max(1, int(samples / SAMPLE_RATE * 3))))
        with open(folder / f"{speaker}-1.trans.txt", "a") as f:
            f.write(f"{utt} {text}\n")
    for subset in ("dev-clean", "dev-other", "test-clean", "test-other"):
        folder = root / "LibriSpeech" / subset / "1" / "1"
        folder.mkdir(parents=True, exist_ok=True)
        soundfile.write(folder / "1-1-0000.flac", np.zeros(SAMPLE_RATE, "float32"), SAMPLE_RATE)
        (folder / "1-1.trans.txt").write_text("1-1-0000 A\n")


def make(work: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)


def random_pretrained(model: str, work: Path, python: str, data: Path | None = None,
                      cpu: bool = False) -> Path:
    """A wav2vec 2.0 of the real architecture after one pre-training update (fairseq's own)."""
    out = work / "pretrained" / PRETRAINED_NAME[model]
    if out.is_file():
        return out
    subprocess.run([python, str(REPO / "scripts/manifests.py"), "--data", str(data or work / "data"),
                    "--pretrain", "--out", str(work / "pretrain-manifests")], check=True)
    run = work / f"pretrain-{model}"
    cmd = [sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir",
           str(REPO / "recipes/pretrain"), "--config-name", "tiny",
           f"task.data={work / 'pretrain-manifests'}", f"checkpoint.save_dir={run}",
           f"hydra.run.dir={run}/hydra", f"common.cpu={str(cpu).lower()}", "optimization.max_update=1",
           "task.min_sample_size=32000", *ARCH[model], *COMMON_ARCH]
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"pre-training {model} failed: {proc.stderr[-2000:]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run / "checkpoint_last.pt", out)
    subprocess.run([python, str(REPO / "scripts/checkpoints.py"), "--record", str(out)],
                   check=True)
    return out


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
    """Seconds per update of the named parts (bench/profile_hooks.py)."""
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
                       "BENCH_PROFILE": str(profile_json), "BENCH_HOOKS": str(REPO / "bench")}
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
