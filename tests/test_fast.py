"""FAST=1 trains as fairseq's own path does (FAST=0): same batches, losses, weights and WER."""
import json
import math
import re

import pytest
import torch
import yaml

from conftest import logged_losses, make

UPDATES, EVERY = 150, 25
# Batches of two tiny utterances (4 per pass) inside an update of 8, as a 10-minute split is a
# few batches inside BASE's update of 8; saves and validations every EVERY updates, so the
# fast path's epochs hold EVERY passes and the run crosses epoch boundaries.
SETTINGS = ["MODEL=tiny", "PROTOCOL=tiny", "MAX_TOKENS=100000", "CHECKPOINT_MINUTES=60",
            "WANDB_PROJECT=w2v2-10min"]  # wandb on, as by default (test_one_wandb_run_...)
ARGS = (f"ARGS=optimization.max_update={UPDATES} common.log_interval=1 "
        f"checkpoint.save_interval_updates={EVERY} dataset.validate_interval_updates={EVERY}")


def knobs(env, root):
    return [f"PRETRAINED_DIR={env / 'pretrained'}", f"MANIFEST_ROOT={env / 'manifests'}",
            f"RUN_ROOT={env / root}"]


def run_dir(env, root):
    return env / root / "tiny-tiny" / "10min-0" / "seed-1"


@pytest.fixture(scope="module")
def both(tiny_env):
    """The same tiny fine-tuning run on fairseq's path and on the fast path, then decoded
    (masks seeded by the plugin, as by default: fairseq's own draw from OS entropy)."""
    runs = {}
    for fast in ("0", "1"):
        root = f"fast{fast}"
        make("finetune", *SETTINGS, *knobs(tiny_env, root), f"FAST={fast}", ARGS)
        make("decode", *SETTINGS, *knobs(tiny_env, root), "EVAL_SETS=train dev-other")
        runs[fast] = run_dir(tiny_env, root)
    return runs


def log_of(run):
    """The run's (last) fine-tuning log."""
    return sorted((run / "logs").glob("finetune-*.log"))[-1].read_text()


def losses(run):
    """(update, loss) of every update, as fairseq logged them."""
    return logged_losses(log_of(run))


def test_fast_path_is_selected_with_one_pass_per_update(both):
    plain = yaml.safe_load((both["0"] / "config.yaml").read_text())
    fast = yaml.safe_load((both["1"] / "config.yaml").read_text())
    assert plain["task"]["_name"] == "audio_finetuning_seeded"  # fairseq's, masks seeded
    assert plain["optimization"]["update_freq"] == [8]
    assert fast["task"]["_name"] == "audio_finetuning_fast"
    assert fast["task"]["passes_per_epoch"] == EVERY and fast["task"]["batches_per_pass"] == 4
    assert fast["optimization"]["update_freq"] == [4] and fast["dataset"]["num_workers"] == 0
    # everything else, the training mathematics included, is fairseq's recipe unchanged
    for config in (plain, fast):
        del config["task"], config["optimization"]["update_freq"], config["dataset"]["num_workers"]
        config["dataset"].pop("validate_interval"), config["checkpoint"].pop("save_interval")
        for key in ("save_dir", "tensorboard_logdir"):
            config["checkpoint"].pop(key, None), config["common"].pop(key, None)
    assert plain == fast


def test_same_losses_every_update(both):
    plain, fast = losses(both["0"]), losses(both["1"])
    assert [u for u, _ in plain] == list(range(1, UPDATES + 1))
    assert fast == plain
    assert plain[-1][1] < plain[0][1]  # it learned something


def test_same_weights_and_schedule(both):
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        plain = torch.load(both["0"] / "checkpoints" / name, weights_only=False)
        fast = torch.load(both["1"] / "checkpoints" / name, weights_only=False)
        assert plain["optimizer_history"][-1]["num_updates"] == \
            fast["optimizer_history"][-1]["num_updates"]
        assert plain["model"].keys() == fast["model"].keys()
        for key, value in plain["model"].items():
            torch.testing.assert_close(fast["model"][key], value, rtol=1e-5, atol=1e-6)
    # validations at the same updates, with the same results
    validations = {}
    for fast, run in both.items():
        validations[fast] = re.findall(r"\[dev_other\].*?wer ([\d.]+).*?num_updates (\d+)",
                                       log_of(run))
    assert validations["0"] == validations["1"] and len(validations["0"]) == UPDATES // EVERY


def test_checkpoints_written_at_the_end_and_at_each_best_within_the_budget(both):
    """Under an hour's budget the fast path writes only the saves whose validation is as good
    as the best so far (fairseq writes checkpoint_best.pt then) and the last; fairseq's path
    writes one every EVERY updates. The files left are the same
    (test_same_weights_and_schedule)."""
    saved = {fast: [int(u) for u in re.findall(r"Saved checkpoint .*? @ (\d+) updates",
                                                  log_of(run))] for fast, run in both.items()}
    assert saved["0"] == list(range(EVERY, UPDATES + 1, EVERY))
    wers = [(int(u), float(w)) for w, u in
            re.findall(r"\[dev_other\].*?wer ([\d.]+).*?num_updates (\d+)", log_of(both["1"]))]
    best, as_good = math.inf, []
    for update, wer in wers:
        if wer <= best:
            best, as_good = wer, as_good + [update]
    assert saved["1"] == sorted(set(as_good) | {UPDATES})
    skipped = re.findall(r"checkpoint write skipped at update (\d+)", log_of(both["1"]))
    assert sorted(int(u) for u in skipped) == sorted(set(saved["0"]) - set(saved["1"]))


def test_frozen_cnn_features_are_computed_once_per_batch(both):
    """The fast path reused the CNN's features (and test_same_losses_every_update shows that
    reusing them changed nothing): one pass's 4 batches are computed, the rest reused."""
    counts = [(int(r), int(c)) for r, c in re.findall(
        r"frozen-CNN feature cache, epoch \d+: (\d+) batches reused, (\d+) computed",
        log_of(both["1"]))]
    assert len(counts) == UPDATES // EVERY - 1  # logged as each later epoch begins
    assert all(r + c == EVERY * 4 for r, c in counts)
    assert sum(r for r, _ in counts) >= 0.9 * EVERY * 4 * len(counts)
    assert "frozen-CNN feature cache" not in log_of(both["0"])


def test_one_wandb_run_per_training_run(both):
    """fairseq calls wandb.init for every progress bar (an epoch per update on its own path);
    w2v2_plugin.wandb_once keeps that to one run folder, holding what fairseq logged."""
    for run in both.values():
        folders = list((run / "wandb").glob("offline-run-*"))
        assert len(folders) == 1 and list(folders[0].glob("run-*.wandb"))


@pytest.mark.parametrize("subset", ["train", "dev_other"])
def test_same_wer(both, subset):
    """Plain and fast paths decode every set to the same words (the checkpoints are identical)."""
    plain, fast = (json.loads((both[f] / "decode" / subset / "wer.json").read_text())
                   for f in ("0", "1"))
    assert (plain["wer"], plain["cer"]) == (fast["wer"], fast["cer"])
    assert plain["utterance_errors"] == fast["utterance_errors"]
    assert (both["0"] / "decode" / subset / "hyp.wrd").read_text() == \
        (both["1"] / "decode" / subset / "hyp.wrd").read_text()
    if subset == "train":  # the comparison is not of two blank outputs: letters were learned
        hyps = (both["0"] / "decode" / subset / "hyp.wrd").read_text().split()
        assert hyps and plain["cer"] < 100


def train_batches(tiny_env):
    """A function making fairseq's own batch iterator over the tiny split (seed 3)."""
    from fairseq.tasks.audio_finetuning import AudioFinetuningConfig, AudioFinetuningTask
    from omegaconf import OmegaConf

    config = AudioFinetuningConfig(data=str(tiny_env / "manifests" / "10min-0"), labels="ltr")
    root = OmegaConf.create({"common": {"tpu": False}, "task": OmegaConf.structured(config)})
    task = AudioFinetuningTask.setup_task(root.task)
    task.load_dataset("train")
    return lambda: task.get_batch_iterator(
        dataset=task.dataset("train"), max_tokens=100000, max_positions=(100000, 100000),
        required_batch_size_multiple=1, seed=3, disable_iterator_cache=True)


def ids(epoch_iterator):
    return [sample["id"].tolist() for sample in epoch_iterator]


@pytest.mark.parametrize("distinct", [True, False])
def test_passes_reproduce_fairseq_epochs(tiny_env, monkeypatch, distinct):
    """One fast epoch of P passes yields fairseq's P epochs of batches, in their order.

    distinct=False: batches made again for every pass, as when utterances tie in length.
    """
    from w2v2_plugin import fast_finetuning
    from w2v2_plugin.fast_finetuning import PassesEpochBatchIterator

    iterator = train_batches(tiny_env)
    assert fast_finetuning.distinct_sizes(iterator().dataset)
    if not distinct:
        monkeypatch.setattr(fast_finetuning, "distinct_sizes", lambda dataset: False)
    plain = iterator()
    expected = [ids(plain.next_epoch_itr()) for _ in range(6)]
    assert len(expected[0]) == 4 and expected[0] != expected[1]  # shuffled every epoch
    fast = PassesEpochBatchIterator.wrap(iterator(), passes=3)
    got = [ids(fast.next_epoch_itr()) for _ in range(2)]
    assert len(fast) == 12
    assert got == [sum(expected[0:3], []), sum(expected[3:6], [])]


@pytest.mark.parametrize("stop", [5, 12])  # mid-epoch (in its second pass), at its end
def test_passes_resume_where_they_stopped(tiny_env, stop):
    """A fast iterator saved after `stop` batches and restored in a new one (as fairseq does
    from a checkpoint) goes on with the batches the first would have given next."""
    from w2v2_plugin.fast_finetuning import PassesEpochBatchIterator

    iterator = train_batches(tiny_env)
    whole = PassesEpochBatchIterator.wrap(iterator(), passes=3)
    expected = ids(whole.next_epoch_itr()) + ids(whole.next_epoch_itr())
    first = PassesEpochBatchIterator.wrap(iterator(), passes=3)
    batches = first.next_epoch_itr()
    seen = [next(batches)["id"].tolist() for _ in range(stop)]
    state = first.state_dict()
    assert state["iterations_in_epoch"] == (0 if stop == 12 else stop)
    resumed = PassesEpochBatchIterator.wrap(iterator(), passes=3)
    resumed.load_state_dict(state)
    rest = ids(resumed.next_epoch_itr())
    if stop == 12:  # a new epoch: its passes are fairseq's epochs 4..6
        assert resumed.epoch == 2
    else:
        rest += ids(resumed.next_epoch_itr())
    assert seen + rest == expected


def recipe_config(**changes):
    """The parts of a composed fairseq recipe that w2v2_10min.fast reads (fairseq's base_10m)."""
    config = {"task": {"_name": "audio_finetuning_fast"}, "common": {"user_dir": "w2v2_plugin"},
              "dataset": {"train_subset": "train", "validate_interval": 1000,
                          "validate_interval_updates": 0},
              "checkpoint": {"save_interval": 1000, "save_interval_updates": 50},
              "optimization": {"update_freq": [8], "max_epoch": 0},
              "distributed_training": {"distributed_world_size": 1},
              "lr_scheduler": {"_name": "tri_stage"}}
    for key, value in changes.items():
        section, name = key.split("__", 1)
        config[section][name] = value
    return config


@pytest.mark.parametrize("changes, passes", [
    ({}, 50),                                                     # fairseq's recipe
    ({"checkpoint__save_interval_updates": 100, "dataset__validate_interval": 10**6,
      "checkpoint__save_interval": 10**6, "dataset__validate_interval_updates": 100}, 100),  # tiny
    ({"checkpoint__save_interval_updates": 7}, 1),
    ({"distributed_training__distributed_world_size": 2}, 1),     # several GPUs
    ({"optimization__update_freq": [3]}, 1),                      # a pass needs 2 updates
    ({"lr_scheduler___name": "reduce_lr_on_plateau"}, 1),         # steps at epoch ends
])
def test_passes_keep_every_save_and_validation_at_its_update(monkeypatch, changes, passes):
    from w2v2_10min import fast

    monkeypatch.setattr(fast, "batches_per_pass", lambda config: 4)
    overrides, said = fast.fast_overrides(recipe_config(**changes))
    assert overrides[0] == "task.train_subset=train" and said.startswith("FAST=1")
    if passes == 1:
        assert len(overrides) == 1
        return
    config = recipe_config(**changes)
    assert overrides[1:] == [
        f"task.passes_per_epoch={passes}", "task.batches_per_pass=4",
        "optimization.update_freq=[4]",
        f"dataset.validate_interval={config['dataset']['validate_interval'] // passes}",
        f"checkpoint.save_interval={config['checkpoint']['save_interval'] // passes}"]


def test_plain_recipe_gets_no_fast_overrides():
    from w2v2_10min import fast

    assert fast.fast_overrides(recipe_config(task___name="audio_finetuning")) == ([], "")


def test_fast_path_without_the_plugin_says_how_to_fix():
    from w2v2_10min import fast
    from w2v2_10min.common import UserError

    with pytest.raises(UserError, match="add FAST=0"):
        fast.fast_overrides(recipe_config(common__user_dir=None))
