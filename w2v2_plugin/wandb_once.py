"""One wandb run per training process, however many progress bars fairseq makes.

fairseq 0.12.3 wraps every progress bar (one per epoch, one per validation) in
`WandBProgressBarWrapper`, which calls `wandb.init(project=..., reinit=False, name=...)`. wandb
0.31 returns the active run then, but only after setting up a new run folder for the call, so a
10-minute run (an epoch per update on fairseq's own path) left thousands of empty
`offline-run-*` folders beside the one that holds the data. Importing this module (fairseq
imports the plugin before it makes any progress bar) points fairseq's progress-bar module at
`OneRun`, which hands fairseq the active run instead of calling `wandb.init` again; everything
else is wandb's own. `make finetune` sets WANDB_RUN_ID from the run folder and WANDB_RESUME, so
a run resumed after an interruption logs on in the same wandb run.
"""
from __future__ import annotations

from fairseq.logging import progress_bar


class OneRun:
    """wandb, except that `init` returns the active run when there is one."""

    def __init__(self, wandb):
        self._wandb = wandb

    def init(self, *args, **kwargs):
        return self._wandb.run or self._wandb.init(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._wandb, name)


if progress_bar.wandb is not None and not isinstance(progress_bar.wandb, OneRun):
    progress_bar.wandb = OneRun(progress_bar.wandb)
