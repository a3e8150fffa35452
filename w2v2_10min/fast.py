"""FAST=1: what `make finetune` adds to a recipe composed with speed=fast (docs/speed.md).

recipes/finetune/speed/fast.yaml selects w2v2_plugin's audio_finetuning_fast (training audio
decoded once and kept in memory, dataset.num_workers=0). `fast_overrides(config)` takes the
composed fairseq config and returns the overrides that depend on the split and the recipe:
- task.passes_per_epoch=P passes (updates) per epoch, only when fairseq makes one update per
  epoch (a pass's B batches fit in update_freq); then update_freq=[B] so an update is one pass,
  and fairseq's epoch-counted intervals (validate_interval, save_interval) are divided by P.
  P is the largest number dividing every save and validation interval, so every save and
  validation falls at the end of an epoch at the same update as on fairseq's path.
"""
from __future__ import annotations

import logging
import math
import os

from w2v2_10min.common import UserError

MAX_PASSES = 1000
# Learning-rate schedulers that set the rate from the update count alone (fairseq calls their
# step(epoch) at each epoch end too, but they only act in step_update), so moving epoch ends
# leaves the rate untouched. Epoch-driven ones (fixed, reduce_lr_on_plateau) keep one pass per epoch.
UPDATE_DRIVEN_SCHEDULERS = {"tri_stage", "tri_stage_linear", "cosine", "inverse_sqrt"}


def batches_per_pass(config: dict) -> int:
    """Batches fairseq's own task makes of the training split with the config's batch limits."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    from fairseq import utils
    from fairseq.tasks.audio_finetuning import AudioFinetuningConfig, AudioFinetuningTask
    from omegaconf import OmegaConf

    fields = AudioFinetuningConfig.__dataclass_fields__
    root = OmegaConf.create({"common": config["common"], "task": OmegaConf.merge(
        OmegaConf.structured(AudioFinetuningConfig),
        {k: v for k, v in config["task"].items() if k in fields})})  # tpu: ${common.tpu}
    subset = config["dataset"]["train_subset"]
    logging.disable(logging.INFO)  # fairseq's dataset lines belong to training's log, not here
    try:
        task = AudioFinetuningTask.setup_task(root.task)
        task.load_dataset(subset)
    finally:
        logging.disable(logging.NOTSET)
    max_tokens = config["dataset"]["max_tokens"]
    iterator = task.get_batch_iterator(
        dataset=task.dataset(subset), max_tokens=max_tokens,
        max_sentences=config["dataset"]["batch_size"],
        max_positions=utils.resolve_max_positions(task.max_positions(), None, max_tokens),
        ignore_invalid_inputs=True,
        required_batch_size_multiple=config["dataset"]["required_batch_size_multiple"],
        seed=config["common"]["seed"], epoch=1, disable_iterator_cache=True)
    return len(iterator.frozen_batches)


def passes_per_epoch(config: dict) -> int:
    """The largest P (<= MAX_PASSES) dividing every save/validation interval of the config."""
    dataset, checkpoint = config["dataset"], config["checkpoint"]
    intervals = [dataset["validate_interval"], checkpoint["save_interval"],
                 dataset["validate_interval_updates"], checkpoint["save_interval_updates"]]
    return math.gcd(*[int(n) for n in intervals if n and n > 0], MAX_PASSES) or 1


def fast_overrides(config: dict) -> tuple[list[str], str]:
    """Overrides for the fast path of a composed fairseq config, and what they do (one line)."""
    if config["task"]["_name"] != "audio_finetuning_fast":
        return [], ""
    if not config["common"].get("user_dir"):
        raise UserError("FAST=1 runs w2v2_plugin's task, and ARGS say plugin=none: "
                        "add FAST=0 for fairseq exactly as installed")
    overrides = [f"task.train_subset={config['dataset']['train_subset']}"]
    batches = batches_per_pass(config)
    update_freq = config["optimization"]["update_freq"]
    world = config["distributed_training"]["distributed_world_size"]
    passes = passes_per_epoch(config)
    if world != 1 or len(update_freq) != 1 or batches > update_freq[0] or \
            config["optimization"]["max_epoch"] or passes == 1 or \
            config["lr_scheduler"]["_name"] not in UPDATE_DRIVEN_SCHEDULERS:
        return overrides, ("FAST=1: training audio in memory (an update is not one pass "
                           "over the split here, so one epoch stays one pass)")
    overrides += [f"task.passes_per_epoch={passes}", f"task.batches_per_pass={batches}",
                  f"optimization.update_freq=[{batches}]",
                  f"dataset.validate_interval={config['dataset']['validate_interval'] // passes}",
                  f"checkpoint.save_interval={config['checkpoint']['save_interval'] // passes}"]
    return overrides, (f"FAST=1: training audio in memory; {passes} updates per epoch, each "
                       f"one pass of {batches} batch(es) over the split (update_freq {batches})")
