"""The paper's learning-rate schedule: fairseq's tri-stage with a linear decay (`tri_stage_linear`).

Selected by `recipes/finetune/lr_decay/linear.yaml` (LR_DECAY=linear). Baevski et al. (2020)
warm the rate up over the first 10% of updates, hold it for 40%, then decay it "linearly";
fairseq's `tri_stage` decays it exponentially instead. Here, with peak rate `lr`, the decay
stage of D = decay_steps updates goes on a straight line from `lr` to `lr * final_lr_scale`:

    lr(u) = lr - (lr - lr * final_lr_scale) * (u - warmup_steps - hold_steps) / D

and stays at `lr * final_lr_scale` after it. Warm-up, hold, the phase boundaries and every
setting (phase_ratio, init_lr_scale, final_lr_scale) are fairseq's `tri_stage`, unchanged,
except that final_lr_scale may be 0 (a straight line to 0, as the seed's schedule,
recipes/finetune/protocol/seed.yaml), which fairseq's exponential cannot take (log 0).
"""
import copy
from dataclasses import dataclass

from fairseq.optim.lr_scheduler import register_lr_scheduler
from fairseq.optim.lr_scheduler.tri_stage_lr_scheduler import (TriStageLRSchedule,
                                                               TriStageLRScheduleConfig)


@dataclass
class TriStageLinearConfig(TriStageLRScheduleConfig):
    """The same settings as fairseq's tri_stage."""


@register_lr_scheduler("tri_stage_linear", dataclass=TriStageLinearConfig)
class TriStageLinearSchedule(TriStageLRSchedule):
    """fairseq's tri-stage schedule whose third stage is a straight line, not an exponential."""

    def __init__(self, cfg, optimizer):
        if cfg.final_lr_scale != 0:
            super().__init__(cfg, optimizer)
            return
        # fairseq's __init__ takes log(final_lr_scale) for its exponential, unused here
        positive = copy.deepcopy(cfg)
        positive.final_lr_scale = 1.0
        super().__init__(positive, optimizer)
        self.cfg, self.final_lr = cfg, 0.0

    def step_update(self, num_updates):
        stage, steps_in_stage = self._decide_stage(num_updates)
        if stage != 2:
            return super().step_update(num_updates)
        self.lr = self.peak_lr + (self.final_lr - self.peak_lr) * steps_in_stage / self.decay_steps
        self.optimizer.set_lr(self.lr)
        return self.lr
