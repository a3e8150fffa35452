"""Synthetic stand-ins for a 10-minute run: a split of noise and a randomly initialised wav2vec 2.0.

Shared by `make gpu-check` (w2v2_10min/gpu_check.py), bench/bench_finetune.py and
bench/profile_finetune.py. The random weights make timing and memory real and the WER
meaningless.
- synthetic_split(root): Libri-light's layout (librispeech_finetuning/1h/0/...) holding COUNT
  utterances of noise, 2-35 s, TOTAL seconds in all (600: a 10-minute fold), letter transcripts
  of about 15 characters per second, and 1-second LibriSpeech dev/test sets.
- random_pretrained(model, work, python): MODEL's real architecture (base; large and vox:
  LARGE's) after one update of fairseq's own pre-training on that split, with the
  task.normalize of the released checkpoint, recorded (SHA-256) as `make finetune` wants it.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

from w2v2_10min.common import REPO, SAMPLE_RATE, UserError

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
ARCH["vox"] = ARCH["large"]  # LV-60k's model is LARGE's architecture
COMMON_ARCH = ["model.conv_pos=128", "model.conv_pos_groups=16", "model.latent_vars=320",
               "model.num_negatives=100", "model.mask_length=10"]
PRETRAINED_NAME = {"base": "wav2vec_small.pt", "large": "libri960_big.pt",
                   "vox": "wav2vec_vox_new.pt"}
# task.normalize of the released checkpoints (recipes/finetune/pretrained/*.yaml): `make finetune`
# refuses a checkpoint whose pre-training value differs from the recipe's
NORMALIZE = {"base": False, "large": True, "vox": True}


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
           "task.min_sample_size=32000", f"task.normalize={str(NORMALIZE[model]).lower()}",
           *ARCH[model], *COMMON_ARCH]
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"pre-training {model} failed: {proc.stderr[-2000:]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run / "checkpoint_last.pt", out)
    subprocess.run([python, str(REPO / "scripts/checkpoints.py"), "--record", str(out)],
                   check=True)
    return out
