"""Where each stage's outputs live: one function per folder, so no stage spells a path twice.

  runs/<model>-<protocol>[-<LR_DECAY>][-lr<LR>]/10min-<split>/seed-<seed>/   one run
      checkpoints/ config.yaml run.json done logs/ tensorboard/
      decode/<subset>/            Viterbi (no LM): hyp.wrd ref.wrd wer.json
      decode-<decoder>/<subset>/  any other decoder, e.g. decode-4gram/, same files
      emissions/<subset>.npz      the model's outputs kept for LM decoding (float16)
      tune-4gram/                 `make tune-lm`: optuna.db, trials.json, weights.json
  runs/<model>-released/decode*/<subset>/   a released fine-tuned checkpoint (the control row)
"""
from __future__ import annotations

from pathlib import Path

VITERBI = "viterbi"
RELEASED = "released"


def run_protocol(protocol: str, lr: str | None = None, lr_decay: str | None = None) -> str:
    """The protocol part of a run folder's name: `fairseq`, `fairseq-lr3e-5` with LR,
    `paper-exponential` with LR_DECAY (named whenever given), `paper-exponential-lr3e-5`."""
    return protocol + (f"-{lr_decay}" if lr_decay else "") + (f"-lr{lr}" if lr else "")


def run_dir(root: Path, model: str, protocol: str, split: str, seed: str | int,
            lr: str | None = None, lr_decay: str | None = None) -> Path:
    name = f"{model}-{run_protocol(protocol, lr, lr_decay)}"
    return Path(root) / name / f"10min-{split}" / f"seed-{seed}"


def released_dir(root: Path, model: str) -> Path:
    return Path(root) / f"{model}-{RELEASED}"


def decode_dir(run: Path, decoder: str = VITERBI) -> Path:
    """`decode/` for Viterbi (as runs have always had it), `decode-<decoder>/` for the rest."""
    return Path(run) / ("decode" if decoder == VITERBI else f"decode-{decoder}")


def decoder_of(folder_name: str) -> str:
    """The decoder whose outputs a folder named `decode` or `decode-<decoder>` holds."""
    return VITERBI if folder_name == "decode" else folder_name.removeprefix("decode-")


def wer_json_files(root: Path) -> list[Path]:
    """Every decoded subset under a runs folder, trained runs first, in sorted order."""
    root = Path(root)
    return sorted(root.glob("*/10min-*/seed-*/decode*/*/wer.json")) + \
        sorted(root.glob(f"*-{RELEASED}/decode*/*/wer.json"))


def emissions_dir(run: Path) -> Path:
    """The acoustic model's outputs kept for LM decoding: one `<subset>.npz` per set."""
    return Path(run) / "emissions"


def tuning_dir(run: Path, decoder: str = "4gram") -> Path:
    """`make tune-lm`'s trials and chosen LM weights for a run."""
    return Path(run) / f"tune-{decoder}"
