"""Does a 10-minute recipe fit this GPU, and how long does an update take? A benchmark.

Usage: python bench/bench_finetune.py --model large --max-tokens 1280000 640000 \
           [--cap-gb 16] [--updates 12] [--work .bench/finetune]

Builds, under WORK, a synthetic 10-minute split (48 utterances of noise, 2-35 s, about 600 s
in all, as a Libri-light fold) and a randomly initialised wav2vec 2.0 of MODEL's real
architecture (BASE or LARGE, made by fairseq's own pre-training for one update), then runs the
real `make finetune PROTOCOL=fairseq` for UPDATES updates at each MAX_TOKENS with the
transformer trained (as after fairseq's first 10k updates; at the first MAX_TOKENS also frozen,
as in those 10k updates), in fp16, with
the process capped at CAP_GB of GPU memory. Prints, per run: fits or out of memory, peak
memory reserved by PyTorch, and seconds per update; then the time a whole run would take.
Needs a CUDA GPU. The random weights make the timing and memory real and the WER meaningless.
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
"""


def synthetic_split(root: Path, count: int = 48, seed: int = 0) -> None:
    """Noise 'speech' in Libri-light layout with letter transcripts about 15 characters/s."""
    rng = random.Random(seed)
    durations = [min(35.0, max(2.0, rng.lognormvariate(2.4, 0.45))) for _ in range(count)]
    scale = 600.0 / sum(durations)
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


def random_pretrained(model: str, work: Path, python: str) -> Path:
    """A wav2vec 2.0 of the real architecture after one pre-training update (fairseq's own)."""
    out = work / "pretrained" / PRETRAINED_NAME[model]
    if out.is_file():
        return out
    subprocess.run([python, str(REPO / "scripts/manifests.py"), "--data", str(work / "data"),
                    "--pretrain", "--out", str(work / "pretrain-manifests")], check=True)
    run = work / f"pretrain-{model}"
    cmd = [sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir",
           str(REPO / "recipes/pretrain"), "--config-name", "tiny",
           f"task.data={work / 'pretrain-manifests'}", f"checkpoint.save_dir={run}",
           f"hydra.run.dir={run}/hydra", "common.cpu=false", "optimization.max_update=1",
           "task.min_sample_size=32000", *ARCH[model], *COMMON_ARCH]
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"pre-training {model} failed: {proc.stderr[-2000:]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run / "checkpoint_last.pt", out)
    subprocess.run([python, str(REPO / "scripts/fetch_checkpoint.py"), "--record", str(out)],
                   check=True)
    return out


def seconds_per_update(log: str) -> float | None:
    """Median wall seconds per update over the logged intervals after the first."""
    walls = [(int(m.group(1)), float(m.group(2))) for m in
             re.finditer(r"num_updates=(\d+).*?, wall=([\d.]+)", log)]
    steps = [(w2 - w1) / (u2 - u1) for (u1, w1), (u2, w2) in zip(walls, walls[1:]) if u2 > u1]
    return float(np.median(steps)) if steps else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["base", "large"], required=True)
    parser.add_argument("--max-tokens", type=int, nargs="+", required=True)
    parser.add_argument("--cap-gb", type=float, default=16.0)
    parser.add_argument("--updates", type=int, default=12)
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "finetune")
    parser.add_argument("--make-args", nargs="*", default=[],
                        help="extra make variables (e.g. VENV=..., PY=...)")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU: this benchmark measures GPU memory and speed")
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
          f"{args.updates} updates of a 600 s split per run")
    print(f"{'max_tokens':>10} {'transformer':>11} {'fits':>5} {'peak GiB':>9} {'s/update':>9}")
    results = []
    for index, max_tokens in enumerate(args.max_tokens):
        for frozen in (True, False) if index == 0 else (False,):
            name = f"{args.model}-{max_tokens}-{'frozen' if frozen else 'unfrozen'}"
            report = work / f"{name}.json"
            report.unlink(missing_ok=True)
            env = {**os.environ, "PYTHONPATH": f"{shim}:{os.environ.get('PYTHONPATH', '')}",
                   "BENCH_CAP_GB": str(args.cap_gb), "BENCH_REPORT": str(report)}
            overrides = [f"optimization.max_update={args.updates}", "common.log_interval=1",
                         "checkpoint.no_save=true", "dataset.num_workers=2",
                         "dataset.required_batch_size_multiple=1"]  # the 1-utterance dev sets
            if not frozen:
                overrides.append("model.freeze_finetune_updates=0")
            proc = make(work, "finetune", *make_vars, f"MODEL={args.model}", "PROTOCOL=fairseq",
                        "SPLIT=0", f"MAX_TOKENS={max_tokens}", f"PRETRAINED_DIR={work / 'pretrained'}",
                        f"MANIFEST_ROOT={work / 'manifests'}", f"RUN_ROOT={work / 'runs' / name}",
                        f"ARGS={' '.join(overrides)}", env=env)
            logs = sorted((work / "runs" / name).rglob("finetune-*.log"))
            log = logs[-1].read_text() if logs else proc.stderr
            oom = "out of memory" in log.lower()
            memory = json.loads(report.read_text()) if report.is_file() else {}
            step = seconds_per_update(log)
            row = {"model": args.model, "max_tokens": max_tokens, "frozen": frozen,
                   "fits": proc.returncode == 0 and not oom, "seconds_per_update": step,
                   **memory, "gpu": gpu, "cap_gb": args.cap_gb}
            results.append(row)
            peak = f"{memory['peak_reserved_gb']:.1f}" if memory else "-"
            seconds = "-" if step is None else f"{step:.2f}"
            print(f"{max_tokens:>10} {'frozen' if frozen else 'trained':>11} "
                  f"{'yes' if row['fits'] else 'OOM' if oom else 'fail':>5} {peak:>9} "
                  f"{seconds:>9}", flush=True)
            if proc.returncode and not oom:
                print(log[-3000:], file=sys.stderr)
    frozen = results[0]
    for trained in results[1:]:
        max_tokens = trained["max_tokens"]
        if frozen["seconds_per_update"] and trained["seconds_per_update"]:
            hours = (10_000 * frozen["seconds_per_update"] +
                     3_000 * trained["seconds_per_update"]) / 3600
            print(f"max_tokens {max_tokens}: a 13,000-update fairseq run (10k frozen + 3k "
                  f"trained) would take about {hours:.1f} h of training on this GPU, "
                  "plus validation")
    (work / f"results-{args.model}.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    run_main(main)
