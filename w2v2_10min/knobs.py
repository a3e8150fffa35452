"""What each Make knob accepts, checked before a stage reads or writes anything.

Usage:
  parser.add_argument("--lr", type=knob("LR"))            # in a stage's argument parser
  python -m w2v2_10min.knobs JOBS=4 SEEDS="1 2 3" ...      # from the Makefile

A value a knob does not accept stops with one line naming the knob and what it accepts, e.g.
`error: LR=abc: LR accepts a learning rate > 0, e.g. LR=3e-5`. An empty value is a knob left
unset ("the recipe's"), accepted where the knob is optional.
"""
from __future__ import annotations

import math
import re
import sys
from typing import Callable

from w2v2_10min.common import UserError, run_main
from w2v2_10min.layout import POOLS, RUNGS, parse_pool_split
from w2v2_10min.trainers.transformers_trainer import OPTIMIZERS


def _whole(minimum: int) -> Callable[[str], bool]:
    return lambda value: value.isascii() and value.isdigit() and int(value) >= minimum


def _number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def _positive_number(value: str) -> bool:
    return _number(value) > 0


def _non_negative_number(value: str) -> bool:
    return _number(value) >= 0


def _matches(pattern: str) -> Callable[[str], bool]:
    return lambda value: re.fullmatch(pattern, value) is not None


def _each(check: Callable[[str], bool]) -> Callable[[str], bool]:
    """A space-separated list (empty allowed) whose every word passes `check`."""
    return lambda value: all(check(word) for word in value.split())


NO_SPACE = r"\S+"
LAUNCHERS = ("local", "slurm", "submitit_local")
TRAINERS = ("fairseq", "transformers")  # who trains a run (a key of its identity, w2v2_10min.layout.RunId)


def _split(value: str) -> bool:
    return re.fullmatch(r"[0-5]|s[0-9]+", value) is not None or \
        parse_pool_split(value) is not None

# knob: (what it accepts, in words; the check). MODEL and PROTOCOL are checked against the recipes
# themselves (finetune.compose), DECODER against decoders.DECODERS (decoders.knob).
KNOBS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "SPLIT": ("a fold 0..5 or sSEED for a drawn sample of the 9h pool (e.g. s1), or c100sSEED "
              "for 48 utterances of train-clean-100 drawn with sample seed SEED (c100sSEEDnN for "
              "N utterances, N not 48; e.g. c100s42)",
              _split),
    "SPLITS": ("splits as SPLIT takes them, space-separated, e.g. SPLITS=\"0 1 2\" or "
               "SPLITS=\"c100s42 c100s43\"", _each(_split)),
    "SAMPLE": ("sample seeds, whole numbers >= 0, space-separated, e.g. SAMPLE=\"1 2 3\"",
               _each(_whole(0))),
    "MINUTES": ("minutes of audio > 0, e.g. MINUTES=10", _positive_number),
    "POOL": (f"{' or '.join(sorted(POOLS.values()))} (empty: Libri-light's 9h pool)",
             lambda v: v in POOLS.values()),
    "UTTERANCES": ("a whole number of utterances >= 1, e.g. UTTERANCES=48", _whole(1)),
    "EVAL_SETS": ("LibriSpeech set names, space-separated, e.g. EVAL_SETS=\"dev-clean dev-other\"",
                  lambda v: bool(v.split()) and _each(_matches(r"[a-z0-9]+(-[a-z0-9]+)*"))(v)),
    "SEED": ("a whole number >= 0", _whole(0)),
    "SEEDS": ("whole numbers >= 0, space-separated, e.g. SEEDS=\"1 2 3\"", _each(_whole(0))),
    "GPUS": ("a whole number >= 0 (0: train on CPU)", _whole(0)),
    "MAX_TOKENS": ("a whole number of samples >= 1, e.g. MAX_TOKENS=640000", _whole(1)),
    "LR": ("a learning rate > 0, e.g. LR=3e-5", _positive_number),
    "LRS": ("learning rates > 0, space-separated, e.g. LRS=\"2e-5 3e-5\"",
            _each(_positive_number)),
    "LR_DECAY": ("linear or exponential (empty: the protocol's own)",
                 _matches("linear|exponential")),
    "TRAINER": (" or ".join(TRAINERS), lambda v: v in TRAINERS),
    "RUNG": (f"a rung of the departure ladder, one of {', '.join(RUNGS)} (empty: "
             "PROTOCOL=seed itself)", lambda v: v in RUNGS),
    "LADDER": (f"rungs, space-separated, from seed {' '.join(RUNGS)}",
               _each(lambda v: v in ("seed", *RUNGS))),
    # the optimizer of a TRAINER=transformers run: fairseq's Adam (the recipes'), torch's
    # AdamW, or bitsandbytes' 8-bit Adam (the seed's, GPU only)
    "OPTIM": (" or ".join(OPTIMIZERS), lambda v: v in OPTIMIZERS),
    "FP16": ("true or false", _matches("true|false")),
    "FAST": ("1 (this project's fast data path, docs/speed.md) or 0 (fairseq's own)",
             _matches("[01]")),
    "SEEDED": ("1 (masks and LayerDrop drawn from SEED, update and utterance) or 0 "
               "(fairseq's own draws)", _matches("[01]")),
    "CHECKPOINT_MINUTES": ("minutes >= 0, e.g. CHECKPOINT_MINUTES=10 (0: every save fairseq's "
                           "intervals ask for)", _non_negative_number),
    "LAUNCHER": (", ".join(LAUNCHERS), lambda v: v in LAUNCHERS),
    "PARTITION": ("a SLURM partition name (no spaces)", _matches(NO_SPACE)),
    "TIME_MIN": ("minutes, a whole number >= 1", _whole(1)),
    "JOBS": ("a whole number >= 1", _whole(1)),
    "REQUEUES": ("a whole number >= 0 of times a run's SLURM job may come back", _whole(0)),
    "DECODE_TRAIN": ("1 (also decode the training utterances) or nothing", _matches("1?")),
    "WANDB_PROJECT": ("a wandb project name (no spaces)", _matches(NO_SPACE)),
}


def check(name: str, value: str, accepts: str | None = None, ok: bool | None = None) -> str:
    """`value` if knob `name` accepts it, else a UserError naming the knob and what it accepts.

    A knob not in KNOBS (one whose choices a stage owns, e.g. DECODER) gives `accepts` and `ok`.
    """
    if ok is None:
        accepts, test = KNOBS[name]
        ok = test(value)
    if not ok:
        raise UserError(f"{name}={value}: {name} accepts {accepts}")
    return value


def knob(name: str, optional: bool = False) -> Callable[[str], str]:
    """An argparse `type=` that checks each value as knob `name` (a UserError: one line).

    optional: the empty value (the knob not set: "the recipe's") is accepted as well.
    """
    if name not in KNOBS:
        raise KeyError(f"{name}: not in w2v2_10min.knobs.KNOBS")
    return lambda value: value if optional and value == "" else check(name, value)


def main(argv=None) -> int:
    """Check NAME=VALUE arguments; an empty VALUE is a knob left unset and is not checked."""
    for item in sys.argv[1:] if argv is None else argv:
        name, sep, value = item.partition("=")
        if not sep or name not in KNOBS:
            raise UserError(f"{item}: give NAME=VALUE, NAME one of {' '.join(sorted(KNOBS))}")
        if value:
            check(name, value)
    return 0


if __name__ == "__main__":
    run_main(main)
