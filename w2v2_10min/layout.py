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


# A run's identity: the knobs that name its folder, written once by `finetune` into
# RUN/run.json (these keys of it) and copied from there into every record a later stage writes
# (wer.json, the export's record). `lr` and `lr_decay` are the values the user gave
# (LR, LR_DECAY), '' for the recipe's own; the values trained with are run.json's
# `trained_lr` and `trained_lr_decay`, which records carry too.
IDENTITY = ("model", "protocol", "lr", "lr_decay", "split", "seed")
NO_SPLIT = "-"  # split and seed of a released checkpoint's record


def identity(model: str, protocol: str, split: str | int, seed: str | int, lr: str = "",
             lr_decay: str = "") -> dict:
    """A run's identity as every stage records it (all values strings)."""
    return {"model": str(model), "protocol": str(protocol), "lr": str(lr or ""),
            "lr_decay": str(lr_decay or ""), "split": str(split), "seed": str(seed)}


def released_identity(model: str) -> dict:
    """The identity of MODEL's released 10-minute checkpoint (the control row)."""
    return identity(model, RELEASED, NO_SPLIT, NO_SPLIT)


def protocol_label(ident: dict) -> str:
    """The protocol as the report groups runs: `paper`, or `paper-exponential` when LR_DECAY
    named the run (runs of every learning rate compete within one label)."""
    return ident["protocol"] + (f"-{ident['lr_decay']}" if ident.get("lr_decay") else "")


def run_name(ident: dict) -> str:
    """The top folder of a run: `<model>-<protocol>[-<lr_decay>][-lr<lr>]`, e.g.
    `base-fairseq`, `base-paper-exponential-lr3e-5`; `<model>-released` for a released one."""
    return f"{ident['model']}-{protocol_label(ident)}" + (f"-lr{ident['lr']}" if ident.get("lr")
                                                            else "")


def run_dir(root: Path, ident: dict) -> Path:
    """RUN: `<root>/<run_name>/10min-<split>/seed-<seed>`, or `<root>/<model>-released`."""
    if ident["protocol"] == RELEASED:
        return released_dir(root, ident["model"])
    return Path(root) / run_name(ident) / f"10min-{ident['split']}" / f"seed-{ident['seed']}"


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
