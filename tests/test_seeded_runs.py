"""A seed is a run (CPU, fp32, FAST=0 and FAST=1 alike): the same SEED gives the same losses and
weights; a run killed with kill -9 between two checkpoint writes and resumed ends with the
weights of one never interrupted; SEED=2 gives another model."""
import json
import os
import re
import signal
import subprocess
import time

import pytest
import torch
import yaml

from conftest import REPO, logged_losses, make

UPDATES, EVERY = 24, 8  # checkpoints (and validations) at updates 8, 16 and 24
SETTINGS = ["MODEL=tiny", "PROTOCOL=tiny", "MAX_TOKENS=100000", "CHECKPOINT_MINUTES=60",
            "WANDB_PROJECT="]
# 4 batches of 2 utterances per update; LayerDrop on (the tiny recipe has none), so that its
# draws are part of what must repeat
ARGS = (f"ARGS=optimization.max_update={UPDATES} common.log_interval=1 model.layerdrop=0.5 "
        f"checkpoint.save_interval_updates={EVERY} dataset.validate_interval_updates={EVERY}")
# The runs of a test go on at once: one thread each (the same in every run, so that their
# sums are added up in the same order), and logs written as they happen (for kill_after)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(env, fast, seed, root, **popen):
    """`make finetune` of the tiny recipe with FAST and SEED into RUN_ROOT=env/root."""
    args = ["finetune", *SETTINGS, ARGS, f"FAST={fast}", f"SEED={seed}",
            f"PRETRAINED_DIR={env / 'pretrained'}", f"MANIFEST_ROOT={env / 'manifests'}",
            f"RUN_ROOT={env / root}"]
    return subprocess.Popen(["make", "--no-print-directory", *args], cwd=REPO, env=ENV,
                            text=True, **popen)


def finish(proc):
    out, _ = proc.communicate()
    assert proc.returncode == 0, out


def run_dir(env, root, seed):
    return env / root / "tiny-tiny" / "10min-0" / f"seed-{seed}"


def logs(run):
    return [path.read_text() for path in sorted((run / "logs").glob("finetune-*.log"))]


def losses(log):
    """{update: loss} as fairseq logged them."""
    return dict(logged_losses(log))


def kill_after(proc, run, update):
    """kill -9 the process group of `proc` once its log shows `update`; the last update logged."""
    deadline = time.time() + 600
    while not any(u >= update for log in logs(run) for u in losses(log)):
        assert time.time() < deadline and proc.poll() is None, "the run never got there"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "done").exists()
    return max(losses(logs(run)[-1]))


@pytest.fixture(scope="module", params=["0", "1"], ids=["fast0", "fast1"])
def runs(request, tiny_env):
    """SEED=1 run through; SEED=1 killed after update 10 and run again; SEED=2 run through."""
    fast, root = request.param, f"seeded-fast{request.param}"
    piped = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    whole = [start(tiny_env, fast, seed, f"{root}/whole", **piped) for seed in (1, 2)]
    killed = run_dir(tiny_env, f"{root}/killed", 1)
    killed_at = kill_after(start(tiny_env, fast, 1, f"{root}/killed", start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                           killed, EVERY + 2)
    for proc in whole:
        finish(proc)
    finish(start(tiny_env, fast, 1, f"{root}/killed", **piped))  # resumes
    return {"whole": run_dir(tiny_env, f"{root}/whole", 1), "killed": killed,
            "killed_at": killed_at, "seed2": run_dir(tiny_env, f"{root}/whole", 2)}


def weights(run, name):
    return torch.load(run / "checkpoints" / name, weights_only=False)["model"]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_run_records_seeded_draws(runs):
    record = json.loads((runs["whole"] / "run.json").read_text())
    config = yaml.safe_load((runs["whole"] / "config.yaml").read_text())
    assert record["seeded"] == "1" and config["task"]["seeded_draws"] is True
    assert config["model"]["layerdrop"] == 0.5 and config["model"]["mask_prob"] > 0
    assert "seeded draws: masks and LayerDrop drawn from (seed 1" in logs(runs["whole"])[0]


def test_same_seed_same_losses_and_weights(runs):
    """The killed run's first process computed updates 1..k from scratch as the other did."""
    whole, first, resumed = losses(logs(runs["whole"])[0]), *map(losses, logs(runs["killed"]))
    assert sorted(whole) == list(range(1, UPDATES + 1))
    assert first == {u: whole[u] for u in range(1, runs["killed_at"] + 1)}
    assert {**first, **resumed} == whole
    for name in ("checkpoint_best.pt", "checkpoint_last.pt"):
        assert same_weights(weights(runs["killed"], name), weights(runs["whole"], name))
    assert whole[UPDATES] < whole[1]  # it learned something


def test_killed_between_checkpoints_resumes_to_the_same_model(runs):
    """Resumed from the checkpoint before the kill, it redid the updates after it with the same
    losses (masks, LayerDrop, dropout, batch order: the same draws), and ended the same."""
    first_log, resumed_log = logs(runs["killed"])
    loaded = re.search(r"Loaded checkpoint .*? \(epoch \d+ @ (\d+) updates\)", resumed_log)
    start = int(loaded.group(1))
    assert EVERY <= start < runs["killed_at"] < UPDATES  # updates lost to the kill, redone
    resumed = losses(resumed_log)
    assert min(resumed) == start + 1
    assert all(resumed[u] == losses(first_log)[u] for u in range(start + 1, runs["killed_at"]))
    assert (runs["killed"] / "done").exists()
    assert same_weights(weights(runs["killed"], "checkpoint_last.pt"),
                        weights(runs["whole"], "checkpoint_last.pt"))
    # the checkpoint budget (FAST=1) wrote the same saves after the resume as without it
    saved = [re.findall(r"Saved checkpoint .*? @ (\d+) updates", log) for log in
             (logs(runs["whole"])[0], resumed_log)]
    assert [u for u in saved[0] if int(u) > start] == saved[1]


def test_another_seed_another_model(runs):
    one, two = losses(logs(runs["whole"])[0]), losses(logs(runs["seed2"])[0])
    assert sorted(two) == sorted(one) and one[1] != two[1]
    assert not same_weights(weights(runs["whole"], "checkpoint_last.pt"),
                            weights(runs["seed2"], "checkpoint_last.pt"))


def test_seeded_reaches_the_config_and_needs_the_plugin(tiny_env):
    from w2v2_10min.finetune import seeded_override

    assert seeded_override("0", "") == ["task.seeded_draws=false"]
    assert seeded_override("0", "plugin=none model.mask_prob=0.5") == []  # fairseq's own task
    proc = make("finetune", f"PRETRAINED_DIR={tiny_env / 'pretrained'}", "MODEL=tiny",
                "PROTOCOL=tiny", f"MANIFEST_ROOT={tiny_env / 'manifests'}", "FAST=0",
                f"RUN_ROOT={tiny_env / 'seeded-knob'}", "ARGS=plugin=none", "CFG=1", check=False)
    assert proc.returncode != 0 and "SEEDED=1 draws masks and LayerDrop in w2v2_plugin, and " \
        "ARGS say plugin=none: add SEEDED=0 FAST=0" in proc.stderr
