"""Fit a fine-tuning recipe to the hardware at hand: print fairseq overrides that keep its batch.

Usage:
  python scripts/plan_finetune.py --model base --protocol fairseq --pretrained CKPT \
      [--gpus 1] [--max-tokens N] [--lr LR] [--fp16 true|false] [--record RUN/run.json ...]

Composes recipes/finetune/10min.yaml for MODEL and PROTOCOL and prints, on stdout, the Hydra
overrides for fairseq-hydra-train that run it on GPUS devices with the recipe's effective batch:
  GPU-equivalents  = distributed_world_size x update_freq of the recipe
  update_freq      = GPU-equivalents x recipe max_tokens / (GPUS x MAX_TOKENS), rounded up,
                     with max_tokens then lowered so that GPUS x update_freq x max_tokens is
                     exactly the recipe's samples per update
and task.normalize as stored in the pre-trained checkpoint (an error if the recipe disagrees).
The effective batch, in seconds of audio, goes to stderr. With --record, writes run.json:
settings, seed, overrides, checkpoint SHA-256, git commit and versions.
The checkpoint is unpickled only after its SHA-256 matches <checkpoint>.sha256 beside it.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from omegaconf import OmegaConf

from common import (REPO, SAMPLE_RATE, UserError, git_commit, read_tsv, run_main,
                    verify_checkpoint, write_json_atomic)

RECIPES = REPO / "recipes" / "finetune"


def compose(model: str, protocol: str):
    """The recipe for MODEL and PROTOCOL as an OmegaConf config (without fairseq's defaults)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import MissingConfigException

    if not (RECIPES / "scale" / f"{protocol}_{model}.yaml").is_file():
        pairs = sorted(p.stem.replace("_", " / ") for p in (RECIPES / "scale").glob("*.yaml"))
        raise UserError(f"no recipe for MODEL={model} PROTOCOL={protocol} "
                        f"(recipes/finetune/scale/{protocol}_{model}.yaml); "
                        f"choose one of: {', '.join(pairs)} (protocol / model)")
    try:
        with initialize_config_dir(config_dir=str(RECIPES), version_base=None):
            return hydra_compose("10min", overrides=[f"pretrained={model}",
                                                     f"protocol={protocol}"])
    except MissingConfigException as err:
        raise UserError(f"recipes/finetune: {err}") from None


def checkpoint_normalize(path: Path) -> bool:
    """task.normalize as the checkpoint was pre-trained (new cfg or old args format)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("cfg") is not None:
        return bool(state["cfg"]["task"]["normalize"])
    if state.get("args") is not None:
        return bool(getattr(state["args"], "normalize", False))
    raise UserError(f"{path}: no cfg or args inside; is this a fairseq wav2vec 2.0 checkpoint?")


def fit_batch(world_size: int, update_freq: int, max_tokens: int, gpus: int,
              max_tokens_limit: int | None) -> dict:
    """Update frequency and max_tokens for GPUS devices that keep the recipe's batch."""
    if gpus < 1:
        raise UserError(f"GPUS={gpus}; give 1 or more")
    gpu_equivalents = world_size * update_freq
    samples_per_update = gpu_equivalents * max_tokens
    limit = max_tokens_limit or max_tokens
    new_update_freq = math.ceil(samples_per_update / (gpus * limit))
    new_max_tokens = samples_per_update // (gpus * new_update_freq)
    return {"gpu_equivalents": gpu_equivalents, "samples_per_update": samples_per_update,
            "gpus": gpus, "update_freq": new_update_freq, "max_tokens": new_max_tokens,
            "effective_batch_seconds": gpus * new_update_freq * new_max_tokens / SAMPLE_RATE}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--pretrained", type=Path, required=True)
    parser.add_argument("--gpus", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, help="samples per device batch (fit memory)")
    parser.add_argument("--lr", help="learning rate instead of the recipe's")
    parser.add_argument("--fp16", choices=["true", "false"], help="instead of the recipe's")
    parser.add_argument("--train-tsv", type=Path, help="the split's train.tsv, to compare sizes")
    parser.add_argument("--record", type=Path, help="write run.json here")
    parser.add_argument("--meta", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recorded in run.json (split, seed, command, ...)")
    args = parser.parse_args()

    recipe = compose(args.model, args.protocol)
    if not args.pretrained.is_file():
        raise UserError(f"{args.pretrained}: pre-trained checkpoint not found")
    pretrained_sha256 = verify_checkpoint(args.pretrained)  # before unpickling it
    normalize = checkpoint_normalize(args.pretrained)
    if not OmegaConf.is_missing(recipe.task, "normalize") and recipe.task.normalize != normalize:
        raise UserError(f"{args.pretrained} was pre-trained with normalize={normalize} but "
                        f"recipes/finetune/pretrained/{args.model}.yaml says "
                        f"{recipe.task.normalize}: "
                        "fine-tuning must use the pre-training value; fix the recipe or the file")
    batch = fit_batch(recipe.distributed_training.distributed_world_size,
                      recipe.optimization.update_freq[0], recipe.dataset.max_tokens,
                      args.gpus, args.max_tokens)
    overrides = [f"task.normalize={str(normalize).lower()}",
                 f"distributed_training.distributed_world_size={batch['gpus']}",
                 f"optimization.update_freq=[{batch['update_freq']}]",
                 f"dataset.max_tokens={batch['max_tokens']}"]
    if args.lr:
        overrides.append(f"optimization.lr=[{args.lr}]")
    if args.fp16:
        overrides.append(f"common.fp16={args.fp16}")
    print(f"effective batch: {batch['gpu_equivalents']} GPU-equivalents x "
          f"{recipe.dataset.max_tokens:,} samples = {batch['effective_batch_seconds']:,.0f} s "
          f"of audio per update; here {batch['gpus']} GPU(s) x update_freq "
          f"{batch['update_freq']} x max_tokens {batch['max_tokens']:,}", file=sys.stderr)
    if args.train_tsv and args.train_tsv.is_file():
        _, rows = read_tsv(args.train_tsv)
        batch["split_seconds"] = sum(n for _, n in rows) / SAMPLE_RATE
        if batch["split_seconds"] < batch["effective_batch_seconds"]:
            print(f"the split holds {batch['split_seconds']:,.0f} s, less than that: fairseq "
                  "ends an update at the end of an epoch, so each update sees the whole split "
                  "once", file=sys.stderr)
    if args.record:
        import fairseq
        import torch

        write_json_atomic(args.record, {
            "model": args.model, "protocol": args.protocol, "lr": args.lr or
            recipe.optimization.lr[0], "fp16": args.fp16 or recipe.common.fp16,
            **batch, "normalize": normalize, "overrides": overrides,
            "pretrained": str(args.pretrained.resolve()),
            "pretrained_sha256": pretrained_sha256,
            **dict(item.split("=", 1) for item in args.meta),
            "commit": git_commit(), "host": platform.node(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "fairseq": fairseq.__version__},
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        })
    print(" ".join(overrides))
    return 0


if __name__ == "__main__":
    run_main(main)
