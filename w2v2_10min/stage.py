"""What every stage CLI after fine-tuning does first: find the run, check its inputs, choose the
device, send fairseq's log to a file and turn fairseq's failures into one line.

Usage (in a stage's main):
    parser = argparse.ArgumentParser(...); stage.add_run_arguments(parser)
    args = parser.parse_args(argv)
    run = stage.resolve_run(args)             # RUN, its identity, the checkpoint (checked)
    stage.check_manifests(args.manifests, subsets)
    with stage.fairseq_stage("decode", detail, run.folder, "decode") as log: ...

A run is named either by its folder (`--run RUN`) or by its identity's knobs (`--run-root` and
an option per key of w2v2_10min.layout.RunId: `--model`, `--protocol`, `--split`, `--seed`,
`--lr`, `--lr-decay`, `--trainer`, the Makefile's), whose folder RunId makes. Its identity is read from RUN/run.json, which `finetune` wrote;
`--released MODEL` names MODEL's released checkpoint instead, whose run.json is written here.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from w2v2_10min import layout
from w2v2_10min.checkpoints import released_file
from w2v2_10min.common import UserError, no_space, out_of_space, stage, write_json_atomic
from w2v2_10min.knobs import KNOBS, knob


@dataclass
class Run:
    folder: Path
    identity: dict | None  # None: a folder without run.json (its records carry no identity)
    checkpoint: Path
    settings: dict = field(default_factory=dict)  # RUN/run.json as finetune wrote it ({}: none)


def option(name: str) -> str:
    """The --option of an identity key: `lr_decay` -> `--lr-decay`."""
    return "--" + name.replace("_", "-")


def add_identity_arguments(group, required: bool = False) -> None:
    """An option per key of the run's identity (layout.RunId), each checked as its Make knob
    (w2v2_10min.knobs) where that knob has a check; `required`: the keys without a default."""
    for name, knob_name in layout.RunId.knobs().items():
        needed = required and name in layout.RunId.required()
        group.add_argument(option(name), default="", required=needed, help=f"{knob_name}=",
                           type=knob(knob_name, optional=not needed) if knob_name in KNOBS
                           else str)


def add_run_arguments(parser) -> None:
    group = parser.add_argument_group("the run (its folder, or the knobs that name it)")
    group.add_argument("--run", type=Path, help="the run folder (RUN)")
    group.add_argument("--run-root", type=Path, default=Path("runs"))
    add_identity_arguments(group)
    group.add_argument("--released", metavar="MODEL",
                       help="MODEL's released 10-minute checkpoint (RUN_ROOT/<model>-released)")
    group.add_argument("--released-dir", type=Path, default=Path("released"),
                       help="where --released MODEL's file is (RELEASED_DIR)")
    group.add_argument("--checkpoint", type=Path,
                       help="default: RUN/checkpoints/checkpoint_best.pt")
    group.add_argument("--verify-sha256", action="store_true",
                       help="a downloaded checkpoint: check it against <checkpoint>.sha256 first")
    parser.add_argument("--manifests", type=Path, required=True,
                        help="the split's manifest folder (MANIFEST_ROOT/10min-K)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")


def identity_of(args) -> layout.RunId | None:
    """The identity the knobs name (empty knobs take the key's default); None when a key
    without a default is not given."""
    values = {name: getattr(args, name) for name in layout.RunId.keys()}
    if not all(values[name] for name in layout.RunId.required()):
        return None
    return layout.RunId(**{name: value for name, value in values.items() if value})


def resolve_run(args) -> Run:
    """The run the arguments name, its identity (checked against its folder) and checkpoint."""
    if args.released:
        ident = layout.RunId.released(args.released)
        folder = ident.folder(args.run_root)
    elif args.run is not None:
        folder, ident = args.run, None
    elif (ident := identity_of(args)) is not None:
        folder = ident.folder(args.run_root)
    else:
        required = layout.RunId.required()
        knobs = layout.RunId.knobs()
        raise UserError(f"name the run: --run RUN, or {', '.join(map(option, required[:-1]))} "
                        f"and {option(required[-1])} "
                        f"({', '.join(knobs[name] + '=' for name in required)})")
    checkpoint = args.checkpoint or (args.released_dir / released_file(args.released)
                                      if args.released else layout.best_checkpoint(folder))
    if not checkpoint.is_file():
        fix = "give its path" if args.checkpoint else "run `make finetune` first"
        raise UserError(f"{checkpoint}: checkpoint not found; {fix}")
    if args.released:
        write_released_record(folder, ident, checkpoint)
    path = layout.run_json(folder)
    return Run(folder, read_identity(folder, ident), checkpoint,
               json.loads(path.read_text()) if path.is_file() else {})


def read_identity(folder: Path, expected: layout.RunId | None = None) -> dict | None:
    """The identity in RUN/run.json, as records copy it (with the learning rate and decay
    trained with); it must be the one the knobs name (`expected`)."""
    path = layout.run_json(folder)
    if not path.is_file():
        if expected is not None:
            raise UserError(f"{path}: not found; fine-tune the run first (make finetune)")
        return None
    try:
        record = json.loads(path.read_text())
        ident = layout.RunId.of(record)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"{path}: no run identity in it ({type(err).__name__}: {err}); "
                        "fine-tune the run again (make finetune) or restore the file") from None
    if expected is not None and ident != expected:
        raise UserError(f"{path} names another run ({ident.name}, split {ident.split}, seed "
                        f"{ident.seed}) than its folder; restore it")
    return {**ident.record(), **{key: str(record[key]) for key in
                                 ("trained_lr", "trained_lr_decay") if key in record}}


def write_released_record(folder: Path, ident: layout.RunId, checkpoint: Path) -> None:
    """RUN_ROOT/<model>-released/run.json: the released checkpoint's identity (the control
    row), so every later stage reads it as for a trained run; with the SHA-256 recorded at
    download (`<checkpoint>.sha256`), which each stage checks before it unpickles the file."""
    recorded = checkpoint.with_name(checkpoint.name + ".sha256")
    record = {**ident.record(), "checkpoint": str(checkpoint.resolve()),
              "checkpoint_sha256": recorded.read_text().split()[0] if recorded.is_file()
              else None}
    path = layout.run_json(folder)
    if not path.is_file() or json.loads(path.read_text()) != record:
        write_json_atomic(path, record)


def check_manifests(folder: Path, subsets: list[str], exts=("tsv", "ltr")) -> None:
    """Each subset's manifest files and dict.ltr.txt exist, before any model is loaded."""
    needed = [folder / f"{subset}.{ext}" for subset in subsets for ext in exts]
    for path in [*needed, folder / "dict.ltr.txt"]:
        if not path.is_file():
            raise UserError(f"{path}: not found; run `make manifests` first")


# a GPU torch can use has one of these (NVIDIA, AMD's ROCm, WSL's GPU); without any, a stage
# that only reads cached emissions need not import torch to learn that it runs on the CPU
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def device(args) -> str:
    """DEVICE, else the GPU when torch sees one, else the CPU."""
    if args.device:
        return args.device
    if not any(os.path.exists(node) for node in GPU_DEVICE_NODES):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class QuietWhenFull(logging.FileHandler):
    """A log file that, on a full disk, drops its lines instead of printing a traceback for
    each (the stage's own one-line error says that the disk is full)."""

    def handleError(self, record):
        if not out_of_space(sys.exc_info()[1]):
            super().handleError(record)


def log_to(path: Path) -> None:
    """Send fairseq's and Python's log lines and warnings to `path` instead of the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = QuietWhenFull(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)


@contextlib.contextmanager
def fairseq_stage(name: str, detail: str, folder: Path, log_name: str):
    """Timestamped start and end lines; fairseq's log in FOLDER/logs/<log_name>-<time>.log
    (yielded); any failure that is not a UserError becomes one line naming that log."""
    log = layout.logs_dir(folder) / f"{log_name}-{datetime.now():%Y%m%d-%H%M%S}.log"
    log_to(log)
    with stage(name, detail, log):
        try:
            yield log
        except UserError:
            raise
        except Exception as err:  # fairseq's own failures: the details are in the log
            logging.exception("%s failed", name)
            if out_of_space(err):
                raise no_space(err, Path(getattr(err, "filename", None) or folder / "outputs")) \
                    from None
            if isinstance(err.__context__, KeyboardInterrupt):  # a library failing on Ctrl-C
                raise KeyboardInterrupt from None  # (optuna's trial loop does): an interruption
            raise UserError(f"{name} failed ({type(err).__name__}: {err}); full log: {log}") \
                from None
