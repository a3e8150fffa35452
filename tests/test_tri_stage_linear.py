"""The paper's linear tri-stage decay (w2v2_plugin/tri_stage_linear.py) against its formula,
beside fairseq's exponential one, and in a real (tiny) fairseq training run."""
import math
import re

import pytest
import torch
from omegaconf import OmegaConf

import w2v2_plugin  # noqa: F401  (registers tri_stage_linear)
from conftest import make
from fairseq.optim.adam import FairseqAdam
from fairseq.optim.lr_scheduler import build_lr_scheduler

PEAK, INIT, FINAL = 5e-5, 0.01, 0.05


def scheduler(name: str, max_update: int = 12_000):
    adam = OmegaConf.create({"lr": [PEAK], "adam_betas": "(0.9,0.98)", "adam_eps": 1e-8,
                             "weight_decay": 0.0, "tpu": False, "use_old_adam": False,
                             "fp16_adam_stats": False})
    optimizer = FairseqAdam(adam, [torch.nn.Parameter(torch.zeros(1))])
    cfg = OmegaConf.create({"_name": name, "phase_ratio": [0.1, 0.4, 0.5], "init_lr_scale": INIT,
                            "final_lr_scale": FINAL, "max_update": max_update, "lr": [PEAK]})
    return build_lr_scheduler(cfg, optimizer), optimizer


def linear(u: int, peak=PEAK, warmup=1200, hold=4800, decay=6000) -> float:
    """The paper's schedule: linear warm-up from INIT x peak, hold, linear decay to FINAL x peak."""
    if u < warmup:
        return peak * INIT + (peak - peak * INIT) * u / warmup
    if u < warmup + hold:
        return peak
    return peak - (peak - peak * FINAL) * min(u - warmup - hold, decay) / decay


@pytest.mark.parametrize("update", [0, 1, 600, 1199, 1200, 5999, 6000, 6001, 9000, 10_000,
                                    11_999, 12_000, 12_001, 20_000])
def test_linear_decay_follows_the_formula_at_the_phase_boundaries(update):
    schedule, optimizer = scheduler("tri_stage_linear")
    assert schedule.step_update(update) == pytest.approx(linear(update), rel=1e-12)
    assert optimizer.get_lr() == pytest.approx(linear(update), rel=1e-12)


def test_only_the_decay_differs_from_fairseqs_exponential_tri_stage():
    lin, _ = scheduler("tri_stage_linear")
    exp, _ = scheduler("tri_stage")
    for update in (0, 600, 1200, 6000, 12_000, 13_000):  # warm-up, hold, both ends of the decay
        assert lin.step_update(update) == pytest.approx(exp.step_update(update), rel=1e-12)
    assert exp.step_update(9000) == pytest.approx(PEAK * math.exp(math.log(FINAL) * 0.5))
    # over updates 10k-12k the exponential decay gives far less learning rate than the line
    summed = [sum(s.step_update(u) for u in range(10_000, 12_000)) for s in (lin, exp)]
    assert summed[1] < 0.45 * summed[0]


def test_fairseq_trains_with_it(tiny_env, tmp_path):
    make("finetune", "MODEL=tiny", "PROTOCOL=tiny", "LR_DECAY=linear",
         f"PRETRAINED_DIR={tiny_env / 'pretrained'}", f"MANIFEST_ROOT={tiny_env / 'manifests'}",
         f"RUN_ROOT={tmp_path}", "ARGS=optimization.max_update=20 common.log_interval=1")
    run = tmp_path / "tiny-tiny-linear" / "10min-0" / "seed-1"
    assert "_name: tri_stage_linear" in (run / "config.yaml").read_text()
    log = "\n".join(p.read_text() for p in (run / "logs").glob("finetune-*.log"))
    logged = {int(u): float(lr) for u, lr in
              re.findall(r"num_updates=(\d+), lr=([0-9.e-]+)", log)}
    assert len(logged) >= 15
    peak = OmegaConf.load(run / "config.yaml").optimization.lr[0]
    for update, lr in logged.items():  # the rate fairseq set after `update` of 20 updates
        assert lr == pytest.approx(linear(update, peak, warmup=2, hold=8, decay=10), rel=1e-3)
