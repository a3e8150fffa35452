"""What every stage CLI after fine-tuning does first: find the run, check its inputs, choose the
device, send fairseq's log to a file and turn fairseq's failures into one line.

Usage (in a stage's main):
    parser = argparse.ArgumentParser(...); stage.add_run_arguments(parser)
    args = parser.parse_args(argv)
    run = stage.resolve_run(args)             # RUN, its identity, the checkpoint (checked)
    stage.check_manifests(args.manifests, subsets)
    with stage.fairseq_stage("decode", detail, run.folder, "decode") as log: ...

A run is named either by its folder (`--run RUN`) or by its identity's knobs (`--run-root`,
`--model`, `--protocol`, `--split`, `--seed`, `--lr`, `--lr-decay`: the Makefile's), whose
folder w2v2_10min.layout makes. Its identity is read from RUN/run.json, which `finetune` wrote;
`--released MODEL` names MODEL's released checkpoint instead, whose run.json is written here.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from w2v2_10min import layout
from w2v2_10min.common import UserError, stage, write_json_atomic

BEST = Path("checkpoints") / "checkpoint_best.pt"


@dataclass
class Run:
    folder: Path
    identity: dict | None  # None: a folder without run.json (its records carry no identity)
    checkpoint: Path


def add_run_arguments(parser) -> None:
    group = parser.add_argument_group("the run (its folder, or the knobs that name it)")
    group.add_argument("--run", type=Path, help="the run folder (RUN)")
    group.add_argument("--run-root", type=Path, default=Path("runs"))
    for knob in ("model", "protocol", "split", "seed", "lr", "lr-decay"):
        group.add_argument(f"--{knob}", default="")
    group.add_argument("--released", metavar="MODEL",
                       help="MODEL's released 10-minute checkpoint (RUN_ROOT/<model>-released)")
    group.add_argument("--checkpoint", type=Path,
                       help="default: RUN/checkpoints/checkpoint_best.pt")
    group.add_argument("--verify-sha256", action="store_true",
                       help="a downloaded checkpoint: check it against <checkpoint>.sha256 first")
    parser.add_argument("--manifests", type=Path, required=True,
                        help="the split's manifest folder (MANIFEST_ROOT/10min-K)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")


def resolve_run(args) -> Run:
    """The run the arguments name, its identity (checked against its folder) and checkpoint;
    `args.run` is set to its folder for what reads the run later (a decoder's tuned weights)."""
    if args.released:
        ident = layout.released_identity(args.released)
        folder = layout.run_dir(args.run_root, ident)
    elif args.run is not None:
        folder, ident = args.run, None
    elif args.model and args.protocol and args.split and args.seed:
        ident = layout.identity(args.model, args.protocol, args.split, args.seed, args.lr,
                                args.lr_decay)
        folder = layout.run_dir(args.run_root, ident)
    else:
        raise UserError("name the run: --run RUN, or --model, --protocol, --split and --seed "
                        "(MODEL=, PROTOCOL=, SPLIT=, SEED=)")
    checkpoint = args.checkpoint or folder / BEST
    if not checkpoint.is_file():
        fix = "give its path" if args.checkpoint else "run `make finetune` first"
        raise UserError(f"{checkpoint}: checkpoint not found; {fix}")
    if args.released:
        write_released_record(folder, ident, checkpoint)
    args.run = folder
    return Run(folder, read_identity(folder, ident), checkpoint)


def read_identity(folder: Path, expected: dict | None = None) -> dict | None:
    """The identity in RUN/run.json; it must be the one the knobs name (`expected`)."""
    path = folder / "run.json"
    if not path.is_file():
        if expected is not None:
            raise UserError(f"{path}: not found; fine-tune the run first (make finetune)")
        return None
    try:
        record = json.loads(path.read_text())
        ident = {key: str(record[key]) for key in layout.IDENTITY}
    except (ValueError, KeyError) as err:
        raise UserError(f"{path}: no run identity in it ({err}); fine-tune the run again "
                        "(make finetune) or restore the file") from None
    if expected is not None and ident != expected:
        raise UserError(f"{path} names another run ({layout.run_name(ident)}, split "
                        f"{ident['split']}, seed {ident['seed']}) than its folder; restore it")
    ident.update({key: str(record[key]) for key in ("trained_lr", "trained_lr_decay")
                  if key in record})
    return ident


def write_released_record(folder: Path, ident: dict, checkpoint: Path) -> None:
    """RUN_ROOT/<model>-released/run.json: the released checkpoint's identity (the control
    row), so every later stage reads it as for a trained run; with the SHA-256 recorded at
    download (`<checkpoint>.sha256`), which each stage checks before it unpickles the file."""
    recorded = checkpoint.with_name(checkpoint.name + ".sha256")
    record = {**ident, "checkpoint": str(checkpoint.resolve()),
              "checkpoint_sha256": recorded.read_text().split()[0] if recorded.is_file()
              else None}
    path = folder / "run.json"
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


def log_to(path: Path) -> None:
    """Send fairseq's and Python's log lines and warnings to `path` instead of the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)


@contextlib.contextmanager
def fairseq_stage(name: str, detail: str, folder: Path, log_name: str):
    """Timestamped start and end lines; fairseq's log in FOLDER/logs/<log_name>-<time>.log
    (yielded); any failure that is not a UserError becomes one line naming that log."""
    log = folder / "logs" / f"{log_name}-{datetime.now():%Y%m%d-%H%M%S}.log"
    log_to(log)
    with stage(name, detail, log):
        try:
            yield log
        except UserError:
            raise
        except Exception as err:  # fairseq's own failures: the details are in the log
            logging.exception("%s failed", name)
            if isinstance(err.__context__, KeyboardInterrupt):  # a library failing on Ctrl-C
                raise KeyboardInterrupt from None  # (optuna's trial loop does): an interruption
            raise UserError(f"{name} failed ({type(err).__name__}: {err}); full log: {log}") \
                from None
