"""Timing wrappers around fairseq's training loop, for bench/profile_finetune.py,
bench/bench_finetune.py and `make gpu-check` (w2v2_10min/gpu_check.py).

Imported by a `sitecustomize` that those put on PYTHONPATH, inside the fairseq-hydra-train
process of a real `make finetune`; fairseq itself is not changed. Each wrapped function charges
its time, less that of wrapped functions it calls, to one part of an update (forward inside
validation counts as validation), in each thread apart (data loading that fairseq's
BufferedIterator does in a thread of its own overlaps the update and is charged as such). Each Trainer.train_step call is also recorded on its own
(STEPS: when it started, its forward and backward seconds, fairseq's update count after it; an
fp16 step whose gradients overflowed leaves the count unchanged). At exit the totals and the
steps go to the JSON file named by $BENCH_PROFILE.
"""
from __future__ import annotations

import atexit
import functools
import json
import os
import threading
import time
from collections import defaultdict

TOTALS: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
STEPS: list[dict] = []  # one per Trainer.train_step call
# Each thread's own stack of [part, seconds spent in wrapped callees]: fairseq's BufferedIterator
# reads batches (FileAudioDataset.__getitem__ with num_workers 0) in a thread of its own, beside
# the update; one shared stack charged the update's forward to whatever that thread was in.
_LOCAL = threading.local()
_SYNC = None


def _stack() -> list[list]:
    if not hasattr(_LOCAL, "stack"):
        _LOCAL.stack = []
    return _LOCAL.stack


def _now() -> float:
    if _SYNC is not None:
        _SYNC()
    return time.perf_counter()


def _enter(part: str) -> float:
    if any(frame[0] == "validation" for frame in _stack()):
        part = "validation"
    _stack().append([part, 0.0])
    return _now()


def _leave(start: float) -> None:
    elapsed = _now() - start
    stack = _stack()
    part, inner = stack.pop()
    TOTALS[part] += elapsed - inner
    CALLS[part] += 1
    if stack:
        stack[-1][1] += elapsed


def timed(part: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = _enter(part)
        try:
            return function(*args, **kwargs)
        finally:
            _leave(start)
    return wrapper


def timed_generator(part: str, function):
    """Charge the time each next() of the generator takes to `part`."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        iterator = iter(function(*args, **kwargs))
        while True:
            start = _enter(part)
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                _leave(start)
            yield item
    return wrapper


def recorded(train_step):
    """Record each call of Trainer.train_step in STEPS."""
    @functools.wraps(train_step)
    def wrapper(self, *args, **kwargs):
        before = {part: TOTALS[part] for part in ("forward", "backward")}
        start = _now()
        try:
            return train_step(self, *args, **kwargs)
        finally:
            STEPS.append({"start": start, "seconds": _now() - start,
                          **{part: TOTALS[part] - before[part] for part in before},
                          "num_updates": self.get_num_updates()})
    return wrapper


def install() -> None:
    global _SYNC
    import torch
    from fairseq import checkpoint_utils, trainer
    from fairseq.criterions import ctc
    from fairseq.data import iterators
    from fairseq.data.audio import raw_audio_dataset
    from fairseq.logging import progress_bar
    from fairseq.optim import fairseq_optimizer
    import fairseq_cli.train as train

    if torch.cuda.is_available():
        _SYNC = torch.cuda.synchronize
    Trainer = trainer.Trainer
    first = {"done": False}
    get_train_iterator = Trainer.get_train_iterator

    def train_iterator(self, *args, **kwargs):  # the first call is start-up, not an update's
        part = "epoch set-up" if first["done"] else "start-up (load split)"
        first["done"] = True
        return timed(part, get_train_iterator)(self, *args, **kwargs)

    Trainer.get_train_iterator = train_iterator
    # built on first use of trainer.optimizer / lr_scheduler (in the first lr_step): once a run
    Trainer._build_optimizer = timed("start-up (load split)", Trainer._build_optimizer)
    Trainer.begin_epoch = timed("epoch set-up", Trainer.begin_epoch)
    Trainer.lr_step = timed("epoch set-up", Trainer.lr_step)
    Trainer.train_step = recorded(timed("optimizer and trainer", Trainer.train_step))
    iterators.EpochBatchIterator.next_epoch_itr = timed(
        "epoch set-up", iterators.EpochBatchIterator.next_epoch_itr)
    iterators.GroupedIterator.__init__ = timed("epoch set-up", iterators.GroupedIterator.__init__)
    iterators._chunk_iterator = timed_generator("data loading", iterators._chunk_iterator)
    progress_bar.progress_bar = timed("epoch set-up", progress_bar.progress_bar)
    raw_audio_dataset.FileAudioDataset.__getitem__ = timed(
        "data loading", raw_audio_dataset.FileAudioDataset.__getitem__)
    ctc.CtcCriterion.forward = timed("forward", ctc.CtcCriterion.forward)
    fairseq_optimizer.FairseqOptimizer.backward = timed(
        "backward", fairseq_optimizer.FairseqOptimizer.backward)
    checkpoint_utils.save_checkpoint = timed("checkpoint write", checkpoint_utils.save_checkpoint)
    train.validate = timed("validation", train.validate)
    train.get_training_stats = timed("logging", train.get_training_stats)
    for name in dir(progress_bar):
        cls = getattr(progress_bar, name)
        if isinstance(cls, type) and issubclass(cls, progress_bar.BaseProgressBar):
            for method in ("log", "print"):
                if method in cls.__dict__:
                    setattr(cls, method, timed("logging", cls.__dict__[method]))
    train.train = timed("other (fairseq loop)", train.train)
    atexit.register(report)


def report() -> None:
    updates = CALLS.get("optimizer and trainer", 0)
    with open(os.environ["BENCH_PROFILE"], "w") as f:
        json.dump({"seconds": dict(TOTALS), "calls": dict(CALLS), "updates": updates,
                   "steps": STEPS}, f)
