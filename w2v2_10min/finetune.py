"""The `make finetune` stage: fit the recipe to the hardware, then run fairseq-hydra-train.

Usage:
  python scripts/finetune.py --model base --protocol fairseq --split 0 --seed 1 \
      --manifests manifests/10min-0 [--pretrained-dir pretrained | --pretrained CKPT] \
      [--run-root runs] [--trainer fairseq|transformers] \
      [--gpus 1] [--max-tokens N] [--lr LR] [--lr-decay linear|exponential] [--fp16 true|false] \
      [--launcher local|slurm|...] [--fast 1|0] [--seeded 1|0] [--checkpoint-minutes 10] \
      [--print-config] [--args 'model.mask_prob=0.5 ...']

1. Plan: compose recipes/finetune/10min.yaml for MODEL and PROTOCOL and work out the Hydra
   overrides that run it on GPUS devices with the recipe's effective batch:
     GPU-equivalents  = distributed_world_size x update_freq of the recipe
     update_freq      = GPU-equivalents x recipe max_tokens / (GPUS x MAX_TOKENS), rounded up,
                        with max_tokens then lowered so that GPUS x update_freq x max_tokens is
                        exactly the recipe's samples per update
   and task.normalize as stored in the pre-trained checkpoint (an error if the recipe disagrees);
   the checkpoint is unpickled only after its SHA-256 matches <checkpoint>.sha256 beside it.
2. Compose fairseq's full config (as `--cfg job` prints it) into RUN/config.yaml;
   --print-config prints it and stops. A run folder whose config.yaml differs is refused
   (delete it or pick another SEED/RUN_ROOT), except in task.checkpoint_minutes and
   common.wandb_project, which change when checkpoints are written and where the run is logged,
   and nothing else; a finished one (RUN/done) is left alone, without reading the pre-trained
   file again (its run.json has the file's SHA-256 and normalize).
3. Train: RUN/run.json records settings, seed, overrides, checkpoint SHA-256, commit and
   versions; fairseq resumes from RUN/checkpoints/checkpoint_last.pt when there is one; the log
   goes to RUN/logs/finetune-<time>.log; RUN/done marks the end, with a one-line summary.
RUN is RUN_ROOT/<model>-<protocol>[-<LR_DECAY>][-<TRAINER>][-lr<LR>]/10min-<split>/seed-<seed>
(w2v2_10min.layout.RunId): LR_DECAY, when given, names the folder even if it is the protocol's
own; TRAINER=transformers trains the same composed config with w2v2_10min/trainers/.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from w2v2_10min import ladder, layout
from w2v2_10min.checkpoints import PRETRAINED_FILES, verify_checkpoint
from w2v2_10min.common import (REPO, SAMPLE_RATE, UserError, git_commit, size_text, stage,
                               versions, write_json_atomic, write_text_atomic)
from w2v2_10min.fast import fast_overrides
from w2v2_10min.formats import read_tsv
from w2v2_10min.knobs import LAUNCHERS, knob
from w2v2_10min.loading import pretrained_normalize
from w2v2_10min.stage import add_identity_arguments, identity_of
from w2v2_10min.trainers.transformers_trainer import OPTIMIZERS

RECIPES = REPO / "recipes" / "finetune"
TRANSFORMERS = "transformers"  # TRAINER: the transformers trainer (w2v2_10min/trainers/)
# recipes/finetune/lr_decay/: fairseq scheduler name -> LR_DECAY choice
LR_DECAYS = {"tri_stage": "exponential", "tri_stage_linear": "linear"}
# fairseq pickles its config into checkpoints and torch >= 2.6 refuses such pickles by default.
# Training only ever loads checkpoints this project made or whose checksum it verified.
FAIRSEQ_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "HYDRA_FULL_ERROR": "1"}


def compose(model: str, protocol: str, lr_decay: str = ""):
    """The recipe for MODEL and PROTOCOL (and LR_DECAY) as an OmegaConf config (without
    fairseq's defaults)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import MissingConfigException

    if not (RECIPES / "scale" / f"{protocol}_{model}.yaml").is_file():
        pairs = sorted(p.stem.replace("_", " / ") for p in (RECIPES / "scale").glob("*.yaml"))
        raise UserError(f"no recipe for MODEL={model} PROTOCOL={protocol} "
                        f"(recipes/finetune/scale/{protocol}_{model}.yaml); "
                        f"choose one of: {', '.join(pairs)} (protocol / model)")
    try:
        # Hydra 1.1's rules, as fairseq-hydra-train has them (it gives no version_base); a
        # newer base would also stay set in this process and make fairseq's own use of
        # hydra.experimental (loading argparse-era checkpoints) an ImportError
        with initialize_config_dir(config_dir=str(RECIPES), version_base="1.1"):
            return hydra_compose("10min", overrides=[f"pretrained={model}",
                                                     f"protocol={protocol}",
                                                     *decay_override(lr_decay)])
    except MissingConfigException as err:
        raise UserError(f"recipes/finetune: {err}") from None


def decay_override(lr_decay: str) -> list[str]:
    """The Hydra choice for LR_DECAY (none: the protocol's own)."""
    return [f"lr_decay={lr_decay}"] if lr_decay else []


def seeded_override(seeded: str, args: str) -> list[str]:
    """The plugin task's seeded_draws for SEEDED; none for ARGS=plugin=none (fairseq's task)."""
    if "plugin=none" not in shlex.split(args):
        return [f"task.seeded_draws={'true' if seeded == '1' else 'false'}"]
    if seeded == "1":
        raise UserError("SEEDED=1 draws masks and LayerDrop in w2v2_plugin, and ARGS say "
                        "plugin=none: add SEEDED=0 FAST=0 for fairseq exactly as installed")
    return []


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


def plan(args, finished: dict | None = None) -> tuple[list[str], dict]:
    """fairseq overrides that fit the recipe to GPUS devices, and what run.json records. For a
    finished run, its run.json (`finished`) gives the pre-trained file's SHA-256 and normalize:
    the file (1.2 GB for LARGE) is not read again only to say that the run is finished."""
    recipe = compose(args.model, args.protocol, args.lr_decay)
    if finished:
        pretrained_sha256, normalize = finished["pretrained_sha256"], finished["normalize"]
    else:
        if not args.pretrained.is_file():
            fix = "run: make pretrain-tiny" if args.model == "tiny" else \
                f"download it: make pretrained MODEL={args.model}"
            raise UserError(f"pre-trained checkpoint '{args.pretrained}' for MODEL={args.model} "
                            f"not found; {fix}")
        pretrained_sha256 = verify_checkpoint(args.pretrained)  # before unpickling it
        normalize = pretrained_normalize(args.pretrained)  # hydra cfg or argparse args
    if not OmegaConf.is_missing(recipe.task, "normalize") and recipe.task.normalize != normalize:
        raise UserError(f"{args.pretrained} was pre-trained with normalize={normalize} but "
                        f"recipes/finetune/pretrained/{args.model}.yaml says "
                        f"{recipe.task.normalize}: "
                        "fine-tuning must use the pre-training value; fix the recipe or the file")
    batch = fit_batch(recipe.distributed_training.distributed_world_size,
                      recipe.optimization.update_freq[0], recipe.dataset.max_tokens,
                      max(int(args.gpus), 1), int(args.max_tokens) if args.max_tokens else None)
    overrides = [*(["common.cpu=true"] if args.gpus == "0" else []),  # GPUS=0: one CPU process
                 f"task.normalize={str(normalize).lower()}",
                 f"distributed_training.distributed_world_size={batch['gpus']}",
                 f"optimization.update_freq=[{batch['update_freq']}]",
                 f"dataset.max_tokens={batch['max_tokens']}",
                 *seeded_override(args.seeded, args.args)]
    if args.lr:
        overrides.append(f"optimization.lr=[{args.lr}]")
    if args.fast == "1":
        overrides.append(f"task.checkpoint_minutes={args.checkpoint_minutes}")
    if args.fp16:
        overrides.append(f"common.fp16={args.fp16}")
    utterances = recipe.dataset.get("batch_size")
    if utterances:  # batches of N utterances (the seed's), max_tokens only a cap
        print(f"effective batch: {batch['gpu_equivalents']} batches of {utterances} utterances "
              f"(each at most {recipe.dataset.max_tokens:,} samples) per update; here "
              f"{batch['gpus']} GPU(s) x update_freq {batch['update_freq']}", file=sys.stderr)
    else:
        print(f"effective batch: {batch['gpu_equivalents']} GPU-equivalents x "
              f"{recipe.dataset.max_tokens:,} samples = {batch['effective_batch_seconds']:,.0f} "
              f"s of audio per update; here {batch['gpus']} GPU(s) x update_freq "
              f"{batch['update_freq']} x max_tokens {batch['max_tokens']:,}", file=sys.stderr)
    _, rows = read_tsv(args.manifests / "train.tsv")
    batch["split_seconds"] = sum(n for _, n in rows) / SAMPLE_RATE
    if batch["split_seconds"] < batch["effective_batch_seconds"] and not utterances:
        print(f"the split holds {batch['split_seconds']:,.0f} s, less than that: fairseq "
              "ends an update at the end of an epoch, so each update sees the whole split "
              "once", file=sys.stderr)
    record = {**run_identity(args).record(),
              "trained_lr_decay": LR_DECAYS.get(recipe.lr_scheduler._name,
                                                recipe.lr_scheduler._name),
              "trained_lr": str(args.lr or recipe.optimization.lr[0]),
              "fp16": args.fp16 or recipe.common.fp16, **batch, "normalize": normalize,
              "overrides": overrides, "pretrained": str(args.pretrained.resolve()),
              "pretrained_sha256": pretrained_sha256,
              "launcher": args.launcher, "fast": args.fast, "seeded": args.seeded,
              "args": args.args}
    return overrides, record


def fairseq_command(args, run: Path, overrides: list[str], multirun: bool = False,
                    last: list[str] = ()) -> list[str]:
    """The fairseq-hydra-train call: recipe groups, paths, plan, user overrides, then `last`."""
    train = Path(sys.executable).with_name("fairseq-hydra-train")
    command = [str(train), "--config-dir", str(REPO / "recipes" / "finetune"),
               "--config-name", "10min"]
    if multirun:
        command.append("--multirun")
    run = run.resolve()
    command += [f"pretrained={args.model}", f"protocol={args.protocol}",
                *decay_override(args.lr_decay),
                f"speed={'fast' if args.fast == '1' else 'plain'}",
                f"common.seed={args.seed}",
                f"task.data={args.manifests.resolve()}",
                f"model.w2v_path={args.pretrained.resolve()}",
                f"checkpoint.save_dir={layout.checkpoint_dir(run)}",
                f"hydra.run.dir={layout.hydra_dir(run)}",
                f"common.tensorboard_logdir={layout.tensorboard_dir(run)}"]
    if args.wandb_project:
        command.append(f"common.wandb_project={args.wandb_project}")
    return command + overrides + shlex.split(args.args) + list(last)


def launcher_overrides(args, run: Path) -> list[str]:
    """Hydra's submitit launcher settings (SLURM or local processes); none for `local`."""
    if args.launcher == "local":
        return []
    common = [f"hydra.sweep.dir={layout.hydra_dir(run.resolve())}",
              f"hydra.launcher.timeout_min={args.time_min}"]
    if args.launcher == "submitit_local":
        return ["hydra/launcher=submitit_local", *common]
    return ["hydra/launcher=submitit_slurm", *common,
            f"hydra.launcher.gpus_per_node={args.gpus}", "hydra.launcher.tasks_per_node=1",
            *([f"hydra.launcher.partition={args.partition}"] if args.partition else [])]


def run_identity(args) -> layout.RunId:
    """The run's identity from the command line's knobs (an option per key)."""
    return identity_of(args)


def environment(args, run: Path, training: bool = False) -> dict:
    """fairseq's environment; for training, also the run's own wandb id (WANDB_RUN_ID, kept in
    RUN/wandb-id), so that a resumed run logs on in the same wandb run (WANDB_RESUME=allow)."""
    ident = run_identity(args)
    name = f"{ident.name}-10min-{ident.split}-seed-{ident.seed}"
    env = {**os.environ, **FAIRSEQ_ENV, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline"),
           "WANDB_DIR": str(run.resolve()), "WANDB_NAME": name}
    if training and args.wandb_project:
        if not layout.wandb_id_file(run).is_file():
            write_text_atomic(layout.wandb_id_file(run), secrets.token_hex(4) + "\n")
        env.update(WANDB_RUN_ID=layout.wandb_id_file(run).read_text().strip(),
                   WANDB_RESUME="allow")
    return env


def compose_config(args, run: Path, overrides: list[str], last: list[str] = ()) -> str:
    """fairseq's full config for the run, as `fairseq-hydra-train --cfg job` prints it, composed
    here as that command composes it (fairseq's schema stored under the config's name, Hydra's
    search path of fairseq_cli.hydra_train with recipes/finetune prepended, as --config-dir
    does) instead of in two more processes; tests/test_finetune.py checks that both agree."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.config_store import ConfigStore
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    from fairseq.dataclass.initialize import hydra_init
    root.setLevel(level)  # importing fairseq sends every DEBUG line to stderr: not here
    root.handlers[:] = handlers

    command = fairseq_command(args, run, overrides, last=last)
    name = command[command.index("--config-name") + 1]
    hydra_overrides = command[command.index("--config-name") + 2:]
    search_path = create_automatic_config_search_path(
        None, "fairseq_cli.hydra_train", os.path.join("..", "fairseq", "config"))
    search_path.prepend(provider="command-line", path=f"file://{RECIPES}",
                        anchor=SearchPathQuery(provider="schema"))
    store = ConfigStore.instance()
    stored = dict(store.repo)  # hydra_init adds fairseq's schema at the top: taken out after
    try:
        hydra_init(name)
        with warnings.catch_warnings():  # Hydra's, on the schema named as the config: as ever
            warnings.simplefilter("ignore")
            hydra = Hydra.create_main_hydra2(task_name="hydra_train",
                                             config_search_path=search_path)
            config = hydra.compose_config(name, hydra_overrides, run_mode=RunMode.RUN)
        return OmegaConf.to_yaml(hydra.get_sanitized_cfg(config, "job"))
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        said = [line.strip() for line in str(err).splitlines() if line.strip()
                and not line[0].isspace() and not line.rstrip().endswith(":")
                and not line.startswith("See ")]
        hint = f" ({' '.join(said[:2])})" if said else ""
        raise UserError(f"fairseq could not compose the config{hint}; "
                        "check ARGS and the recipe") from None
    finally:
        GlobalHydra.instance().clear()
        store.repo.clear()
        store.repo.update(stored)


def same_training(config: str) -> dict:
    """A composed config without what may change between a run's start and its resumption:
    when checkpoints are written, and the wandb project it logs to (WANDB_PROJECT)."""
    parsed = yaml.safe_load(config)
    parsed.get("task", {}).pop("checkpoint_minutes", None)
    parsed.get("common", {}).pop("wandb_project", None)
    return parsed


def stopped(code: int, run: Path, log: Path) -> str | None:
    """What fairseq's exit status says when training stopped on purpose (w2v2_plugin's
    no_work_lost): saved on the warning signal, or a checkpoint with no space to be written;
    None for any other failure."""
    from w2v2_plugin.no_work_lost import NO_SPACE, STOPPED, save_signal

    folder = layout.checkpoint_dir(run)
    text = log.read_text(errors="replace") if log.is_file() else ""
    saved = layout.SAVED.findall(text)
    if code == STOPPED:
        return (f"stopped on signal {save_signal().name} after saving update "
                f"{saved[-1] if saved else '?'} in {folder}; run the same command to resume "
                "from it")
    if code != NO_SPACE:
        return None
    sizes = [p.stat().st_size for p in folder.glob("checkpoint*.pt")]
    # a save writes its first file, then copies it onto checkpoint_last.pt: twice its size
    needed = f"about {size_text(2 * max(sizes))} needed, " if sizes else ""
    try:
        free = f"{size_text(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "full"
    kept = f"{layout.last_checkpoint(run).name} is kept as it was" \
        if layout.last_checkpoint(run).is_file() else "no checkpoint yet"
    return (f"no space left on device in {folder} ({needed}{free}); {kept}; free space "
            "there, then run the same command to resume")


def summary(log: Path) -> str | None:
    """`num_updates N, best_wer W on dev_other` from fairseq's last validation line."""
    sources = [log, *sorted(log.parent.parent.glob("hydra/.submitit/*/*_log.out"))]
    lines = [line for path in sources if path.is_file()
             for line in path.read_text(errors="replace").splitlines()
             if "[dev_other][INFO]" in line]
    if not lines:
        return None
    updates = re.search(r"num_updates (\d+)", lines[-1])
    best = re.search(r"best_wer ([\d.]+)", lines[-1]) or re.search(r"\| wer ([\d.]+)", lines[-1])
    return f"num_updates {updates.group(1)}, best_wer {best.group(1)} on dev_other" \
        if updates and best else None


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_identity_arguments(parser, required=True)  # --model, --protocol, --split, --seed, ...
    parser.add_argument("--manifests", type=Path, required=True, help="the split's manifests")
    parser.add_argument("--pretrained", type=Path,
                        help="the pre-trained checkpoint (default: MODEL's in --pretrained-dir)")
    parser.add_argument("--pretrained-dir", type=Path, default=Path("pretrained"),
                        help="PRETRAINED_DIR, where MODEL's file is (checkpoints.PRETRAINED_FILES)")
    parser.add_argument("--run-root", type=Path, default=Path("runs"))
    parser.add_argument("--gpus", default="1", type=knob("GPUS"))
    parser.add_argument("--max-tokens", default="", type=knob("MAX_TOKENS", optional=True),
                        help="samples per device batch (fit memory)")
    parser.add_argument("--fp16", default="", type=knob("FP16", optional=True),
                        help="true or false instead of the recipe's")
    parser.add_argument("--launcher", default="local", type=knob("LAUNCHER"),
                        help=" | ".join(LAUNCHERS))
    parser.add_argument("--partition", default="", type=knob("PARTITION", optional=True),
                        help="SLURM partition")
    parser.add_argument("--time-min", default="1440", type=knob("TIME_MIN"),
                        help="SLURM time limit per run")
    parser.add_argument("--wandb-project", default="w2v2-10min",
                        type=knob("WANDB_PROJECT", optional=True),
                        help="wandb project (offline unless WANDB_MODE=online); empty: no wandb")
    parser.add_argument("--args", default="", help="extra Hydra overrides for fairseq")
    parser.add_argument("--fast", default="1", type=knob("FAST"),
                        help="1: w2v2_plugin's fast path (docs/speed.md); 0: fairseq's own")
    parser.add_argument("--seeded", default="1", type=knob("SEEDED"),
                        help="1: masks and LayerDrop drawn from (seed, update, utterance); "
                        "0: fairseq's own draws")
    parser.add_argument("--checkpoint-minutes", default="10", type=knob("CHECKPOINT_MINUTES"),
                        help="FAST=1: write checkpoints at most every N minutes (and at the end "
                        "and at each best validation); 0: whenever fairseq's intervals say")
    parser.add_argument("--print-config", action="store_true",
                        help="print the composed fairseq config and stop")
    args = parser.parse_args(argv)  # checks each knob's value (w2v2_10min.knobs)
    if args.pretrained is None:  # a MODEL with no file has no recipe either (plan says so)
        args.pretrained = args.pretrained_dir / PRETRAINED_FILES.get(args.model, "")
    if not (args.manifests / "train.tsv").is_file():
        raise UserError(f"{args.manifests / 'train.tsv'} not found; run: make manifests DATA=...")
    if args.trainer == TRANSFORMERS and args.fast == "1":
        print("TRAINER=transformers: fairseq's own dataset and batches feed it (FAST=0)",
              file=sys.stderr)
        args.fast = "0"
    return args


def finished_record(run: Path) -> dict | None:
    """RUN/run.json of a finished run (RUN/done) that recorded its pre-trained file's SHA-256 and
    normalize, else None."""
    if not layout.done_file(run).exists():
        return None
    try:
        record = json.loads(layout.run_json(run).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("pretrained_sha256") and "normalize" in record else None


def check_seed_knobs(args) -> None:
    """RUNG and OPTIM: the departure ladder's and the transformers trainer's knobs."""
    if args.rung and args.protocol != ladder.SEED_PROTOCOL:
        raise UserError(f"RUNG={args.rung} climbs from the seed's recipe toward the paper's: "
                        f"give PROTOCOL={ladder.SEED_PROTOCOL} (not {args.protocol})")
    if args.optim and args.trainer != TRANSFORMERS:
        raise UserError(f"OPTIM={args.optim} picks the transformers trainer's optimizer "
                        f"(TRAINER={args.trainer} trains with its recipe's): add "
                        "TRAINER=transformers")


def climb_ladder(args, run: Path, config: str, overrides: list[str]) -> str:
    """The composed config of RUNG: the seed's, with the paper's recipe's values (composed for
    the same MODEL, ARGS and batch) for every departure up to RUNG (w2v2_10min.ladder)."""
    paper_args = argparse.Namespace(**{**vars(args), "rung": "", "optim": "",
                                       "protocol": ladder.paper_protocol(args.model)})
    paper = compose_config(paper_args, run, overrides)
    seed_values, paper_values = (OmegaConf.to_container(OmegaConf.create(text))
                                 for text in (config, paper))
    return OmegaConf.to_yaml(OmegaConf.create(ladder.climb(seed_values, paper_values,
                                                           args.rung)))


def refuse_transformers_keys(config: str) -> None:
    """The fairseq trainer refuses, in one line, what only the transformers trainer honours."""
    values = OmegaConf.to_container(OmegaConf.create(config))
    said = [f"{key}={value}" for key, default in ladder.TRAINER_DEFAULTS.items()
            for group, _, field in [key.partition(".")]
            if (value := values.get(group, {}).get(field, default)) != default]
    if values.get("optimizer", {}).get("_name") in OPTIMIZERS[1:]:  # not fairseq's adam
        said.append(f"optimizer._name={values['optimizer']['_name']}")
    if said:
        raise UserError(f"TRAINER=fairseq cannot honour {', '.join(said)} (transformers' ways: "
                        "PROTOCOL=seed is the seed's transformers recipe): add "
                        "TRAINER=transformers")


def configure(args, run: Path) -> tuple[str, list[str], list[str], dict]:
    """fairseq's composed config, the overrides, the fast path's overrides (last), run.json."""
    check_seed_knobs(args)
    overrides, record = plan(args, finished_record(run))
    chosen = [*overrides, *([f"optimizer._name={args.optim}"] if args.optim else [])]
    config = compose_config(args, run, chosen)
    if args.rung:
        config = climb_ladder(args, run, config, overrides)
        record["ladder"] = {"paper_protocol": ladder.paper_protocol(args.model),
                            "returned": list(ladder.rungs_up_to(args.rung))}
    fast, said = fast_overrides(yaml.safe_load(config))  # after ARGS: they depend on them
    if fast:
        print(said, file=sys.stderr)
        record["fast_overrides"] = fast
        config = compose_config(args, run, chosen, last=fast)
    return config, chosen, fast, record


def transformers_command(args, run: Path, config: str) -> list[str]:
    """The transformers trainer on the run's composed config (RUN/config.yaml): one process,
    or one per GPU (distributed_world_size, GPUS) started by torchrun on this node."""
    processes = int(yaml.safe_load(config)["distributed_training"]["distributed_world_size"])
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={processes}"]
    return [*launcher, "-m", "w2v2_10min.trainers.transformers_trainer",
            "--config", str(layout.config_file(run).resolve()),
            "--manifests", str(args.manifests.resolve()), "--run-dir", str(run.resolve())]


def check_transformers(args, config: str) -> None:
    """What the transformers trainer cannot honour of the composed recipe: one line, before
    anything is written."""
    if args.launcher != "local":
        raise UserError(f"TRAINER=transformers trains in the make process: LAUNCHER=local "
                        f"(not {args.launcher}); `make sweep LAUNCHER=slurm` runs it as jobs")
    from omegaconf import OmegaConf

    from w2v2_10min.trainers import transformers_trainer

    installed = transformers_trainer.unproven_version()
    if installed:
        raise UserError(f"transformers {installed}: the transformers trainer was shown equal to "
                        f"fairseq with {', '.join(transformers_trainer.PROVEN)} only; install "
                        "that (make setup installs requirements.txt's pin), or run "
                        "tests/test_transformers_trainer.py with yours and add it to PROVEN")
    refused = transformers_trainer.refusals(transformers_trainer.resolve(
        OmegaConf.create(yaml.safe_load(config)), args.manifests))
    if refused:
        raise UserError(f"TRAINER=transformers cannot honour {', '.join(refused)}; change "
                        "them (e.g. FP16=false, GPUS=1, SEEDED=1, ARGS=) or train with "
                        "TRAINER=fairseq")


def saved_at_the_end(run: Path) -> int | None:
    """The update of fairseq's last save when it is the recipe's max_update and
    checkpoint_last.pt is there (a run killed after its last save, before `done`): fairseq
    resumed from it would train one update more before it checks max_update. None otherwise.
    fairseq logs "Saved checkpoint" once every copy of a save is written."""
    if not layout.last_checkpoint(run).is_file():
        return None
    text = "".join(p.read_text(errors="replace")
                   for p in sorted(layout.logs_dir(run).glob("finetune-*.log")))
    saved = layout.SAVED.findall(text)
    last = yaml.safe_load(layout.config_file(run).read_text())["optimization"]["max_update"]
    return int(saved[-1]) if saved and int(saved[-1]) >= int(last) else None


def train(args, run: Path, overrides: list[str], fast: list[str]) -> None:
    """fairseq-hydra-train (or the transformers trainer) on the run; its log in RUN/logs/;
    a failure is one line."""
    end = saved_at_the_end(run) if args.trainer != TRANSFORMERS else None
    if end is not None:
        print(f"{run} was saved at its last update ({end}) before it was stopped; done")
        layout.done_file(run).touch()
        return
    log = layout.logs_dir(run) / f"finetune-{datetime.now():%Y%m%d-%H%M%S}.log"
    if args.trainer == TRANSFORMERS:
        command = transformers_command(args, run, layout.config_file(run).read_text())
    else:
        command = fairseq_command(args, run, overrides, multirun=args.launcher != "local",
                                  last=fast) + launcher_overrides(args, run)
    print(f"training {run} with {args.trainer} (log: {log})")
    layout.stop_status_file(run).unlink(missing_ok=True)  # this attempt's, not an earlier one's
    with stage("finetune", str(run), log):
        with open(log, "a") as out:
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                  env=environment(args, run, training=True)).returncode
        if code != 0 and layout.stop_status_file(run).is_file():  # torchrun's "failed"
            code = int(layout.stop_status_file(run).read_text())
        if code != 0:
            said = stopped(code, run, log)
            if said is None:
                print("\n".join(log.read_text(errors="replace").splitlines()[-20:]),
                      file=sys.stderr)
            raise UserError(said or f"fine-tuning failed; full log: {log}; "
                            "rerun the same command to resume")
    layout.done_file(run).touch()
    said = summary(log)
    if said:
        print(f"finished: {said}")


def main(argv=None) -> int:
    args = parse(argv)
    run = run_identity(args).folder(args.run_root)
    config, overrides, fast, record = configure(args, run)
    if args.print_config:
        print(config, end="")
        return 0
    if args.trainer == TRANSFORMERS:
        check_transformers(args, config)
    else:
        refuse_transformers_keys(config)
    if layout.config_file(run).is_file() and \
            same_training(layout.config_file(run).read_text()) != same_training(config):
        raise UserError(f"{run} was made with other settings (see its config.yaml); delete it, "
                        "or pick another SEED or RUN_ROOT")
    write_text_atomic(layout.config_file(run), config)
    if layout.done_file(run).exists():
        print(f"{run} is finished; delete it to train again")
        return 0
    write_json_atomic(layout.run_json(run), {
        **record, "commit": git_commit(), "host": platform.node(), "versions": versions(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    train(args, run, overrides, fast)
    return 0
