"""w2v2_plugin's checkpoint budget and frozen-feature cache, driven through fairseq's own code.

The budget wraps fairseq's real `checkpoint_utils.save_checkpoint`; a stand-in trainer writes
what fairseq hands it, and a stand-in clock says when. The cache wraps a real convolution.
"""
import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.dataclass.configs import CheckpointConfig
from omegaconf import OmegaConf

from w2v2_plugin import checkpoint_budget
from w2v2_plugin.feature_cache import FrozenFeatureCache

MAX_UPDATE = 400


class Trainer:
    """What fairseq's save_checkpoint asks of its trainer, writing files as fairseq's does."""

    data_parallel_rank = 0
    should_save_checkpoint_on_current_rank = True
    always_call_state_dict_during_save_checkpoint = False
    checkpoint_suffix = ""
    task = None

    def __init__(self, **settings):
        self.updates = 0
        self.cfg = OmegaConf.create({
            "optimization": {"max_update": MAX_UPDATE, "stop_time_hours": 0, "max_epoch": 0,
                             "stop_min_lr": settings.get("stop_min_lr", -1.0)},
            "distributed_training": {"distributed_world_size": settings.get("world", 1)},
            "checkpoint": {"patience": settings.get("patience", -1),
                           "keep_best_checkpoints": settings.get("keep_best", -1)}})

    def get_num_updates(self):
        return self.updates

    def cumulative_training_time(self):
        return 0.0

    def consolidate_optimizer(self):
        pass

    def save_checkpoint(self, filename, extra_state):
        torch.save({"updates": self.updates, "extra_state": extra_state}, filename)
        return filename


class EpochIterator:
    epoch = 1

    def end_of_epoch(self):
        return True  # the fast path's saves all fall at epoch ends

    def state_dict(self):
        return {"epoch": self.epoch}


@pytest.fixture
def budget(monkeypatch, tmp_path):
    """Install a 10-minute budget on a clock the test moves; undone after the test."""
    clock = [0.0]
    monkeypatch.setattr(checkpoint_budget.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(checkpoint_utils, "save_checkpoint", checkpoint_utils.save_checkpoint)
    checkpoint_budget.install(10)
    cfg = OmegaConf.structured(CheckpointConfig(
        save_dir=str(tmp_path), save_interval_updates=50, keep_interval_updates=1,
        no_epoch_checkpoints=True, best_checkpoint_metric="wer"))

    def save(trainer, update, wer, minute):
        """fairseq asks for a save at `update` (validated: `wer`) `minute`s into training."""
        clock[0] = 60.0 * minute
        trainer.updates = update
        return checkpoint_utils.save_checkpoint(cfg, trainer, EpochIterator(), wer)
    return save


def saved(path):
    return torch.load(path, weights_only=False)


def test_written_at_each_best_on_the_budget_and_at_the_end(budget, tmp_path):
    trainer = Trainer()
    asks = [(50, None, 1), (100, 90.0, 2), (150, None, 5), (200, 95.0, 6.5), (250, 90.0, 8),
            (300, None, 17.9), (350, None, 18.1), (375, 99.0, 19), (MAX_UPDATE, None, 19.2)]
    written = [update for update, wer, minute in asks if budget(trainer, update, wer, minute)]
    # first validation, a tie with the best (fairseq rewrites best then), 10 min after the
    # write at 250, the end; not: no validation within budget, or worse than the best
    assert written == [100, 250, 350, MAX_UPDATE]
    assert saved(tmp_path / "checkpoint_best.pt")["updates"] == 250
    last = saved(tmp_path / "checkpoint_last.pt")
    assert last["updates"] == MAX_UPDATE and last["extra_state"]["best"] == 90.0
    assert checkpoint_utils.save_checkpoint.best == 90.0  # fairseq's validation reads it there


def test_the_best_score_of_a_resumed_run_is_kept(monkeypatch, tmp_path):
    """fairseq's load_checkpoint records the best score so far before training begins; a
    validation worse than it is then not written (fairseq would not write checkpoint_best)."""
    original = checkpoint_utils.save_checkpoint
    monkeypatch.setattr(checkpoint_utils, "save_checkpoint", original)
    monkeypatch.setattr(original, "best", 80.0, raising=False)
    checkpoint_budget.install(10)
    assert checkpoint_utils.save_checkpoint.best == 80.0
    cfg = OmegaConf.structured(CheckpointConfig(save_dir=str(tmp_path),
                                                best_checkpoint_metric="wer"))
    trainer = Trainer()
    trainer.updates = 100
    assert checkpoint_utils.save_checkpoint(cfg, trainer, EpochIterator(), 85.0) is None
    assert checkpoint_utils.save_checkpoint(cfg, trainer, EpochIterator(), 80.0)


@pytest.mark.parametrize("settings", [{"world": 2}, {"patience": 5}, {"keep_best": 3},
                                      {"stop_min_lr": 0.0}])
def test_every_save_is_written_where_skipping_could_lose_one(budget, settings):
    trainer = Trainer(**settings)
    assert budget(trainer, 100, 90.0, 1)
    assert budget(trainer, 150, None, 2) and budget(trainer, 200, 95.0, 3)


def test_zero_minutes_is_fairseqs_own_rhythm(budget):
    checkpoint_budget.install(0)  # installed already: the budget changes, not the wrapping
    trainer = Trainer()
    assert all(budget(trainer, update, None, update / 1000) for update in (50, 100, 150))


def conv():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv1d(1, 4, 10, stride=5), torch.nn.GroupNorm(4, 4))


def test_feature_cache_serves_a_batch_it_has_seen_and_only_without_gradients():
    extractor, reference = conv(), conv()
    cache = FrozenFeatureCache(extractor, capacity=2)
    batch = torch.randn(2, 1, 400)
    with torch.no_grad():
        cache.before_batch((3, 7), update=1)
        first = extractor(batch)
        cache.before_batch((3, 7), update=1)
        again = extractor(batch)
        assert again is first and torch.equal(first, reference(batch))
        cache.key = None  # e.g. validation: computed
        assert extractor(batch) is not first
    cache.before_batch((3, 7), update=1)
    assert extractor(batch) is not first  # with gradients (feature_grad_mult > 0): computed
    assert cache.take_counts() == (1, 1)
    assert extractor.state_dict().keys() == reference.state_dict().keys()  # checkpoints unchanged


def test_feature_cache_is_emptied_when_the_weights_change():
    extractor = conv()
    cache = FrozenFeatureCache(extractor, capacity=2)
    batch = torch.randn(2, 1, 400)
    with torch.no_grad():
        cache.before_batch((3, 7), update=1)
        first = extractor(batch)
        extractor[0].weight.add_(1.0)
        cache.before_batch((3, 7), update=2)  # a new update: the weights are compared
        changed = extractor(batch)
    assert not torch.equal(changed, first)
    assert cache.take_counts() == (0, 2)


def test_feature_cache_keeps_capacity_batches():
    extractor = conv()
    cache = FrozenFeatureCache(extractor, capacity=2)
    with torch.no_grad():
        for key in [(1,), (2,), (3,), (1,)]:
            cache.before_batch(key, update=1)
            extractor(torch.randn(1, 1, 400))
    assert cache.take_counts() == (0, 4) and len(cache.features) == 2
