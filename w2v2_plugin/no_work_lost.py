"""No work lost to a full disk or a time limit, in fairseq's training process.

Installed on import when the importing process trains (fairseq_cli.train is loaded: the
`fairseq-hydra-train` of `make finetune`); fairseq's files are not changed, its module
attributes are wrapped in this process:

- every checkpoint copy is atomic: fairseq writes a save's first file as `<file>.tmp` and
  renames it, but copies it onto `checkpoint_last.pt` and `checkpoint_best.pt` in place, so a
  copy that fails half-way (a full disk) would leave a truncated `checkpoint_last.pt`. Here a
  copy goes to a temporary file beside it and is renamed over it.
- a save first removes the temporary files of a process killed while saving (kill -9, a
  node lost); a save that fails for lack of space removes its own, logs one line and ends the
  process with status NO_SPACE: the checkpoints written before are as they were, and the same
  command resumes from `checkpoint_last.pt` once space is freed.
- the save signal (USR2, `kill -USR2 PID` by hand; another one named by W2V2_SAVE_SIGNAL,
  e.g. USR1: a SLURM job (w2v2_10min.cluster) sends that one shortly before its limit, and
  leaves SLURM's early USR2 warning to itself) asks for a save: the current update finishes,
  fairseq saves through its own `save_checkpoint` (no validation; the checkpoint budget,
  checkpoint_budget.py, carries it out), and the process ends with status STOPPED, so that the job is requeued at once and resumes from this save.
  With several GPUs the ranks agree on the update to stop after (an all-reduce of the flag
  after each update).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile

logger = logging.getLogger(__name__)

STOPPED = 75  # exit status: saved on the save signal, stopped to resume (sysexits' EX_TEMPFAIL)
NO_SPACE = 28  # exit status: a save failed for lack of space (as errno's ENOSPC)
SIGNAL_ENV = "W2V2_SAVE_SIGNAL"  # the save signal's name without SIG: USR2 unless it says


def save_signal() -> signal.Signals:
    return signal.Signals["SIG" + (os.environ.get(SIGNAL_ENV) or "USR2")]


_flags = {"signalled": False, "stopping": False}


def out_of_space(err: BaseException, folder: str) -> bool:
    """An error of a write that failed for lack of space: an OSError ENOSPC or EDQUOT in its
    chain (w2v2_10min.common.out_of_space; torch.save raises a RuntimeError whose context is
    that OSError), or, when torch kept no OSError, a folder with under 1 MiB free."""
    from w2v2_10min.common import out_of_space as space_error

    if space_error(err):
        return True
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def atomic_copy(src: str, dst: str, overwrite: bool = False) -> bool:
    """PathManager.copy for local files as fairseq calls it, into a temporary file beside
    `dst` renamed onto it: `dst` is either the old file or the whole new one."""
    if os.path.exists(dst) and not overwrite:
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dst)}.", suffix=".tmp",
                               dir=os.path.dirname(dst) or ".")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        shutil.copymode(src, tmp)  # mkstemp's file is the owner's only
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return True


def remove_temporary(folder: str) -> list[str]:
    """A failed save's temporary files in `folder` (fairseq's `*.pt.tmp`, atomic_copy's)."""
    removed = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".tmp"):
            try:
                os.remove(os.path.join(folder, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def _on_signal(signum, frame) -> None:
    if not _flags["signalled"]:
        logger.info(f"signal {signal.Signals(signum).name}: saving after this update, then "
                    "stopping so that the run resumes from there")
    _flags["signalled"] = True


def stopping() -> bool:
    """The save fairseq is about to carry out was asked for by the save signal (once asked,
    every rank of a multi-GPU run has agreed on it)."""
    return _flags["stopping"]


def _agreed(trainer) -> bool:
    """The save signal arrived (on any rank, with several GPUs: each rank reaches this after
    the same update, so all stop after it)."""
    flag = _flags["signalled"]
    if getattr(trainer, "data_parallel_world_size", 1) > 1:
        import torch
        from fairseq.distributed import utils as distributed_utils

        tensor = torch.tensor([1.0 if flag else 0.0], device=trainer.device)
        tensor = distributed_utils.all_reduce(tensor, group=trainer.data_parallel_process_group)
        flag = bool(tensor.item() > 0)
    return flag


def install() -> None:
    """Wrap fairseq's saves and stopping rule in this (training) process; once."""
    from fairseq import checkpoint_utils
    from fairseq.file_io import PathManager
    import fairseq_cli.train as train

    from w2v2_plugin import checkpoint_budget

    if getattr(train.validate_and_save, "no_work_lost", False):
        return
    original_validate_and_save = train.validate_and_save
    original_should_stop_early = train.should_stop_early
    original_save = checkpoint_utils.save_checkpoint
    original_copy = PathManager.copy

    def validate_and_save(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch):
        _flags["stopping"] = _agreed(trainer)
        losses, should_stop = original_validate_and_save(cfg, trainer, task, epoch_itr,
                                                         valid_subsets, end_of_epoch)
        if _flags["stopping"] and not checkpoint_budget.is_final(trainer, epoch_itr):
            logger.info(f"saved at update {trainer.get_num_updates()} on signal "
                        f"{save_signal().name}; stopping (status {STOPPED}): run the same command "
                        "to resume from this update")
            for handler in logging.getLogger().handlers:
                handler.flush()
            raise SystemExit(STOPPED)
        return losses, should_stop

    def should_stop_early(cfg, valid_loss):
        # fairseq saves whenever this says stop (validate_and_save), and stops after the save
        return original_should_stop_early(cfg, valid_loss) or _flags["stopping"]

    def copy(src_path, dst_path, overwrite=False):
        if os.path.isfile(src_path) and "://" not in str(dst_path):
            return atomic_copy(src_path, dst_path, overwrite)
        return original_copy(src_path, dst_path, overwrite)

    def save_checkpoint(cfg, trainer, epoch_itr, val_loss):
        if trainer.should_save_checkpoint_on_current_rank:
            remove_temporary(cfg.save_dir)  # of a process killed while it saved
        try:
            return original_save(cfg, trainer, epoch_itr, val_loss)
        except Exception as err:
            removed = remove_temporary(cfg.save_dir)
            if not out_of_space(err, cfg.save_dir):
                raise
            logger.error(f"no space left on device in {cfg.save_dir}: checkpoint at update "
                         f"{trainer.get_num_updates()} not written"
                         f"{' (removed ' + ', '.join(removed) + ')' if removed else ''}; "
                         "the checkpoints before it are kept; stopping (status "
                         f"{NO_SPACE})")
            raise SystemExit(NO_SPACE) from None

    validate_and_save.no_work_lost = True
    save_checkpoint.__doc__ = original_save.__doc__
    if hasattr(original_save, "best"):
        save_checkpoint.best = original_save.best
    train.validate_and_save = validate_and_save
    train.should_stop_early = should_stop_early
    checkpoint_utils.save_checkpoint = save_checkpoint
    PathManager.copy = staticmethod(copy)
    try:
        signal.signal(save_signal(), _on_signal)
    except ValueError:  # not the main thread: no handler (the signal's default or SIG_IGN)
        logger.warning(f"signal {save_signal().name} not handled in this thread")


if "fairseq_cli.train" in sys.modules:  # fairseq's training process (not decoding)
    install()
