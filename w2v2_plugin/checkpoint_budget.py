"""Checkpoint writes on a time budget: `task.checkpoint_minutes` of `audio_finetuning_fast`.

fairseq decides when to save in `fairseq_cli/train.py` (every `save_interval_updates` once
validation has begun, and at epoch ends), and every save writes the whole training state: for
LARGE with Adam's moments several GB, written and then copied to `checkpoint_last.pt`. Which
files exist at the end does not depend on how often that happens, only how much work a crash
loses does. `install(minutes)` wraps fairseq's `checkpoint_utils.save_checkpoint` in this
process (fairseq's files are not changed) once training has begun, so that a save fairseq asks for is carried out when

- it is the last one (max_update or max_epoch reached, stop_time_hours passed, or the run
  stops on SLURM's warning signal: `no_work_lost.py`),
- the validation it follows is as good as the best so far (fairseq writes `checkpoint_best.pt`
  then, and `checkpoint_last.pt` with it, so `last` is never older than `best`),
- or `minutes` have passed since the last write (or since training started);

otherwise it is skipped, with a line in the log. What a skipped save would have recorded (the
best validation score) is kept as fairseq keeps it, on the function. Some settings have every
save carried out (`always_written`).
"""
from __future__ import annotations

import logging
import math
import time

from fairseq import checkpoint_utils

from w2v2_plugin import no_work_lost

logger = logging.getLogger(__name__)


def must_write(*, seconds_since_write: float, minutes: float, final: bool,
               as_good_as_best: bool) -> bool:
    """Whether a save fairseq asks for is carried out under a budget of `minutes`."""
    return final or as_good_as_best or minutes <= 0 or seconds_since_write >= 60 * minutes


def is_final(trainer, epoch_itr) -> bool:
    """This save is fairseq's last of the run (train.py stops after it)."""
    optimization = trainer.cfg.optimization
    if trainer.get_num_updates() >= (optimization.max_update or math.inf):
        return True
    if 0 < optimization.stop_time_hours < trainer.cumulative_training_time() / 3600:
        return True
    return bool(optimization.max_epoch) and epoch_itr.epoch >= optimization.max_epoch \
        and epoch_itr.end_of_epoch()


def as_good_as_best(cfg, val_loss, best) -> bool:
    """fairseq would write checkpoint_best.pt for this validation score (ties included)."""
    if val_loss is None:
        return False
    if best is None:
        return True
    return val_loss >= best if cfg.maximize_best_checkpoint_metric else val_loss <= best


def always_written(cfg) -> bool:
    """Settings under which every save is carried out: several GPUs (their clocks may not
    agree), early stopping and stop_min_lr (fairseq may stop after any save without saying so
    first), and keep_best_checkpoints (fairseq keeps the N best, not only the best)."""
    return cfg.distributed_training.distributed_world_size > 1 or cfg.checkpoint.patience > 0 \
        or cfg.optimization.stop_min_lr >= 0 or cfg.checkpoint.keep_best_checkpoints > 0


def install(minutes: float) -> None:
    """Carry out fairseq's checkpoint saves in this process on a budget of `minutes`, counted
    from now (the task calls this as training begins)."""
    current = checkpoint_utils.save_checkpoint
    if hasattr(current, "budget_minutes"):  # installed already: a task set up again
        current.budget_minutes = minutes
        return
    original = current
    last_write = [time.monotonic()]

    def save_checkpoint(cfg, trainer, epoch_itr, val_loss):
        since = time.monotonic() - last_write[0]
        if not (always_written(trainer.cfg) or must_write(
                seconds_since_write=since, minutes=save_checkpoint.budget_minutes,
                final=is_final(trainer, epoch_itr) or no_work_lost.stopping(),
                as_good_as_best=as_good_as_best(cfg, val_loss,
                                                getattr(save_checkpoint, "best", None)))):
            logger.info(f"checkpoint write skipped at update {trainer.get_num_updates()}: last "
                        f"written {since:.0f} s ago, within task.checkpoint_minutes="
                        f"{save_checkpoint.budget_minutes:g}")
            return None
        # fairseq's function records the best score on `save_checkpoint`, looked up in its
        # module: that is this wrapper now (and the score so far was carried over to it), so
        # the score lives in one place as before.
        path = original(cfg, trainer, epoch_itr, val_loss)
        last_write[0] = time.monotonic()
        return path

    save_checkpoint.budget_minutes = minutes
    save_checkpoint.__doc__ = original.__doc__
    if hasattr(original, "best"):  # recorded by fairseq's load_checkpoint when resuming
        save_checkpoint.best = original.best
    checkpoint_utils.save_checkpoint = save_checkpoint
    logger.info(f"checkpoints: written at most every {minutes:g} min, at the end, and whenever "
                "validation is as good as the best so far (task.checkpoint_minutes)")
