"""Pre-train the tiny wav2vec 2.0 that the tests and `make demo` fine-tune, with fairseq itself.

Usage: python tiny/make_tiny_pretrained.py [--corpus tiny/corpus] [--work runs/tiny-pretrain]
                                           [--out tiny/pretrained]

Writes OUT/tiny.pt (fairseq's checkpoint without the optimizer state, which fine-tuning never
reads) and OUT/tiny.pt.sha256. It is committed, so nobody waits for it: `make pretrain-tiny`
copies and checks it. Run this (`make tiny-pretrained`) after changing recipes/pretrain/tiny.yaml
or the corpus; it takes about 45 minutes on 2 idle cores.

The audio, never the labels: every file of the corpus's librispeech_finetuning/ (the six folds
and the pool) and EXTRA_PER_VOICE more sentences of the corpus's grammar from each espeak voice
but the evaluation speakers', half of them "other". No evaluation speaker's voice is in it, as
LibriSpeech's dev and test speakers are not in its 960 hours.
Needs: apt-get install espeak-ng sox
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min
sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_tiny_corpus

import make_tiny_corpus as corpus_maker  # noqa: E402
from w2v2_10min.checkpoints import record  # noqa: E402
from w2v2_10min.common import REPO, UserError, atomic_path, run_main  # noqa: E402
from w2v2_10min.manifests import build_pretrain  # noqa: E402

EXTRA_PER_VOICE = 8
SEED = 11


def extra_audio(root: Path) -> None:
    """EXTRA_PER_VOICE utterances from each voice no evaluation speaker has, in LibriSpeech
    layout under root."""
    rng = random.Random(SEED)
    held_out = corpus_maker.evaluation_voices()
    voices = [v for v in corpus_maker.VOICES_F + corpus_maker.VOICES_M if v not in held_out]
    for index, voice in enumerate(voices):
        speaker = 20_000 + index
        items = [(corpus_maker.sentence(rng), None) for _ in range(EXTRA_PER_VOICE)]
        condition = ("clean", "other")[index % 2]
        corpus_maker.write_chapter(root / condition, speaker, speaker * 10 + 1, items, voice,
                                   speed=rng.randint(150, 185), pitch=rng.randint(30, 70),
                                   other=condition == "other")


def pretraining_data(corpus: Path, data: Path) -> None:
    """DATA/librispeech_finetuning/{1h,9h} (the corpus's, linked) and extra/ (made here)."""
    if data.exists():
        shutil.rmtree(data)
    finetuning = data / "librispeech_finetuning"
    finetuning.mkdir(parents=True)
    for part in ("1h", "9h"):
        (finetuning / part).symlink_to((corpus / "librispeech_finetuning" / part).resolve())
    (data / "LibriSpeech").mkdir()
    (data / "LibriSpeech" / "dev-clean").symlink_to((corpus / "LibriSpeech/dev-clean").resolve())
    extra_audio(finetuning / "extra")


def pretrain(manifests: Path, run: Path) -> Path:
    """fairseq-hydra-train with recipes/pretrain/tiny.yaml; the last checkpoint's path."""
    if run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True)
    log = run / "pretrain.log"
    command = [str(Path(sys.executable).with_name("fairseq-hydra-train")),
               "--config-dir", str(REPO / "recipes" / "pretrain"), "--config-name", "tiny",
               f"task.data={manifests.resolve()}", f"checkpoint.save_dir={run.resolve()}",
               f"hydra.run.dir={run.resolve() / 'hydra'}"]
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "HYDRA_FULL_ERROR": "1"}
    print(f"pre-training, log: {log}", flush=True)
    with open(log, "w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise UserError(f"fairseq-hydra-train failed; see the end of {log}")
    return run / "checkpoint_last.pt"


def write_model(checkpoint: Path, out: Path) -> Path:
    """OUT/tiny.pt: the checkpoint without its optimizer state, and its SHA-256 record."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state["last_optimizer_state"] = None
    target = out / "tiny.pt"
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    record(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "tiny" / "corpus")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "tiny-pretrain")
    parser.add_argument("--out", type=Path, default=REPO / "tiny" / "pretrained")
    args = parser.parse_args()
    corpus_maker.require_tools()
    pretraining_data(args.corpus, args.work / "data")
    build_pretrain(args.work / "data", args.work / "manifests")
    target = write_model(pretrain(args.work / "manifests", args.work / "run"), args.out)
    print(f"wrote {target} ({target.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    run_main(main)
