"""The task `audio_finetuning_fast`: fairseq's audio_finetuning, with less work around each update.

Selected by `recipes/finetune/speed/fast.yaml` (the default; `FAST=0` selects fairseq's own
`audio_finetuning`). Four changes, none touching what an update computes:

- the training split's audio is decoded once, when the task loads it, and kept in memory (a
  10-minute split is 38 MB as float32), instead of being read from FLAC again every epoch, and
  each transcript is turned into letter indices once, not again for every batch;
- an epoch is `passes_per_epoch` passes over the split. On a 10-minute split fairseq's recipes
  make one update per epoch (the split is smaller than an update's batch), so each update paid
  for an epoch's set-up, end-of-epoch logging and meter resets. Here pass j of epoch k shuffles
  the batches exactly as fairseq's epoch (k-1)*passes_per_epoch + j + 1 would, and with
  `update_freq` equal to the number of batches in a pass each update still sees the whole split
  once, batch for batch in fairseq's order (batches made again for each of fairseq's epochs,
  as the audio tasks' rebuild_batches does). `w2v2_10min.fast` chooses the values (and moves
  fairseq's epoch-counted intervals to the same updates); a guard here stops the run if an
  update ever spans other than one pass;
- the frozen CNN's features of each training batch are computed once and reused
  (`feature_cache.py`, exact while `feature_grad_mult` is 0, and checked);
- checkpoints are written on a time budget, at the end, and whenever validation is as good as
  the best so far (`checkpoint_budget.py`).

Randomness is untouched: fairseq seeds torch with seed + num_updates before each update, masks
and LayerDrop are drawn as the base task `audio_finetuning_seeded` draws them
(`seeded_draws.py`), and batch shuffles use their own seeded generator as above. A checkpoint
records the iterator's position as fairseq's does (epoch, batches into it): a run resumed
mid-epoch makes the epoch's passes again and skips the batches already seen.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from fairseq.data import BaseWrapperDataset
from fairseq.data.iterators import EpochBatchIterator
from fairseq.tasks import register_task

from w2v2_plugin import checkpoint_budget
from w2v2_plugin.feature_cache import FrozenFeatureCache
from w2v2_plugin.seeded_draws import SeededAudioFinetuningConfig, SeededAudioFinetuningTask

logger = logging.getLogger(__name__)

MAX_CACHED_SECONDS = 3600  # training audio whose frozen-CNN features are kept (in GPU memory)


class DecodedOnce(BaseWrapperDataset):
    """An audio dataset whose items are read once, up front, and then served from memory."""

    def __init__(self, dataset):
        super().__init__(dataset)
        self.items = [dataset[index] for index in range(len(dataset))]

    def __getitem__(self, index):
        return self.items[index]


def distinct_sizes(dataset) -> bool:
    """No two utterances of the dataset have the same length (as fairseq sorts them)."""
    sizes = np.asarray(getattr(dataset, "sizes", []))
    while not hasattr(dataset, "max_sample_size") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    if sizes.ndim != 1 or len(sizes) == 0 or not hasattr(dataset, "max_sample_size"):
        return False
    sizes = np.minimum(sizes, dataset.max_sample_size)
    return len(np.unique(sizes)) == len(sizes)


class PassesEpochBatchIterator(EpochBatchIterator):
    """fairseq's EpochBatchIterator whose epoch k is fairseq's epochs (k-1)P+1 .. kP in a row."""

    passes = 1

    @classmethod
    def wrap(cls, iterator: EpochBatchIterator, passes: int) -> "PassesEpochBatchIterator":
        wrapped = cls.__new__(cls)
        wrapped.__dict__.update(iterator.__dict__)
        wrapped.passes = passes
        return wrapped

    def __len__(self):
        return self.passes * math.ceil(len(self.frozen_batches) / float(self.num_shards))

    def ordered_batches(self, epoch, fix_batches_to_gpus, shuffle):
        # Audio tasks make batches again every epoch (rebuild_batches), ordering utterances by
        # length with ties broken at random (seed + epoch): with no two lengths alike the
        # batches come out the same every epoch, and are made once.
        rebuild = callable(self.batch_sampler) and not distinct_sizes(self.dataset)
        batches, frozen = [], self._frozen_batches
        try:
            for j in range(self.passes):
                fairseq_epoch = (epoch - 1) * self.passes + j + 1
                if rebuild:
                    self._frozen_batches = tuple(self.batch_sampler(self.dataset, fairseq_epoch))
                batches += super().ordered_batches(fairseq_epoch, fix_batches_to_gpus, shuffle)
        finally:
            self._frozen_batches = frozen
        return batches


@dataclass
class FastAudioFinetuningConfig(SeededAudioFinetuningConfig):
    passes_per_epoch: int = field(default=1, metadata={
        "help": "passes over the training split per epoch (each pass is one update)"})
    batches_per_pass: int = field(default=0, metadata={
        "help": "batches in one pass (must equal update_freq when passes_per_epoch > 1)"})
    audio_in_memory: bool = field(default=True, metadata={
        "help": "decode the training split's audio once and keep it in memory"})
    train_subset: str = field(default="train", metadata={"help": "the training split's name"})
    cache_frozen_features: bool = field(default=True, metadata={
        "help": "compute the frozen CNN's features of each training batch once (needs "
                "audio_in_memory; nothing is cached while feature_grad_mult > 0)"})
    checkpoint_minutes: float = field(default=0.0, metadata={
        "help": "write checkpoints at most every N minutes, at the end and when validation "
                "is as good as the best so far; 0: whenever fairseq's intervals say"})


@register_task("audio_finetuning_fast", dataclass=FastAudioFinetuningConfig)
class FastAudioFinetuningTask(SeededAudioFinetuningTask):
    """audio_finetuning_seeded with the training audio in memory and several updates per epoch."""

    cfg: FastAudioFinetuningConfig

    def __init__(self, cfg: FastAudioFinetuningConfig):
        super().__init__(cfg)
        self._update = None
        self._batches_in_update = 0
        self._feature_cache = None

    def load_dataset(self, split: str, task_cfg=None, **kwargs):
        super().load_dataset(split, task_cfg, **kwargs)
        if split == self.cfg.train_subset and self.cfg.audio_in_memory:
            labelled = self.datasets[split]  # AddTargetDataset(FileAudioDataset)
            audio = labelled.dataset
            if max(audio.sizes, default=0) > audio.max_sample_size:
                raise ValueError(f"{split}: utterances longer than task.max_sample_size are "
                                 "cropped at random per batch; audio_in_memory needs them whole")
            labelled.dataset = DecodedOnce(audio)
            if labelled.process_label is not None:  # each transcript encoded once, then reused
                labelled.process_label = functools.cache(labelled.process_label)
            seconds = sum(int(n) for n in audio.sizes) / self.cfg.sample_rate
            logger.info(f"{split}: {len(audio)} utterances ({seconds:.0f} s) decoded into memory")

    def build_model(self, model_cfg, from_checkpoint=False):
        model = super().build_model(model_cfg, from_checkpoint)
        w2v_model = getattr(getattr(model, "w2v_encoder", None), "w2v_model", None)
        if not (self.cfg.cache_frozen_features and self.cfg.audio_in_memory):
            return model
        if not hasattr(w2v_model, "feature_extractor"):
            logger.info("frozen-CNN feature cache: not a wav2vec 2.0 CTC model, nothing cached")
        elif w2v_model.feature_grad_mult > 0:
            logger.info(f"frozen-CNN feature cache: off, the CNN is trained "
                        f"(feature_grad_mult {w2v_model.feature_grad_mult})")
        else:  # sized when the training batches are made (get_batch_iterator)
            self._feature_cache = FrozenFeatureCache(w2v_model.feature_extractor, capacity=None)
        return model

    def begin_epoch(self, epoch, model):
        super().begin_epoch(epoch, model)
        if self.cfg.checkpoint_minutes > 0:  # training has begun (decoding never gets here)
            checkpoint_budget.install(self.cfg.checkpoint_minutes)
        if self._feature_cache is not None and epoch > 1 and self.cfg.passes_per_epoch > 1:
            reused, computed = self._feature_cache.take_counts()
            logger.info(f"frozen-CNN feature cache, epoch {epoch - 1}: {reused} batches reused, "
                        f"{computed} computed")

    def get_batch_iterator(self, dataset, **kwargs):
        iterator = super().get_batch_iterator(dataset, **kwargs)
        training = dataset is self.datasets.get(self.cfg.train_subset)
        if self._feature_cache is not None and training:
            self._size_feature_cache(dataset, len(iterator.frozen_batches))
        passes = self.cfg.passes_per_epoch
        if (passes > 1 and training
                and not isinstance(iterator, PassesEpochBatchIterator)):
            if iterator.num_shards != 1:
                raise ValueError("passes_per_epoch > 1 needs one GPU (distributed_world_size "
                                 "1); set it to 1 (FAST=0) to train on several")
            if len(iterator.frozen_batches) != self.cfg.batches_per_pass:
                # not training's batches (e.g. decoding the split): one pass per epoch. In
                # training, train_step's guard stops the run rather than let this pass.
                logger.warning(f"{self.cfg.train_subset}: {len(iterator.frozen_batches)} "
                               f"batches, not {self.cfg.batches_per_pass}: one pass per epoch")
                return iterator
            iterator = PassesEpochBatchIterator.wrap(iterator, passes)
            if dataset in self.dataset_to_epoch_iter:
                self.dataset_to_epoch_iter[dataset] = iterator
        return iterator

    def _size_feature_cache(self, dataset, batches: int) -> None:
        """Room for two passes' batches (batches made differently in one pass evict nothing
        else); none for a split over MAX_CACHED_SECONDS (features of an hour: 0.2-0.4 GB)."""
        seconds = sum(int(n) for n in dataset.sizes) / self.cfg.sample_rate
        capacity = 0 if seconds > MAX_CACHED_SECONDS else 2 * batches + 8
        if capacity == self._feature_cache.capacity:
            return
        self._feature_cache.capacity = capacity
        if capacity:
            logger.info(f"frozen-CNN feature cache: on (feature_grad_mult 0), room for "
                        f"{capacity} batches")
        else:
            logger.info(f"frozen-CNN feature cache: off, the split holds {seconds:.0f} s "
                        f"(more than {MAX_CACHED_SECONDS} s)")

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if self.cfg.passes_per_epoch > 1:
            if update_num != self._update:
                if self._update is not None and \
                        self._batches_in_update != self.cfg.batches_per_pass:
                    raise RuntimeError(f"update {self._update} saw {self._batches_in_update} "
                                       f"batches, not one pass ({self.cfg.batches_per_pass}): "
                                       "update_freq must equal task.batches_per_pass")
                self._update, self._batches_in_update = update_num, 0
            self._batches_in_update += 1
            if self._batches_in_update > self.cfg.batches_per_pass:
                raise RuntimeError(f"update {update_num} spans more than one pass over the "
                                   "split: update_freq must equal task.batches_per_pass")
        if self._feature_cache is None:
            return super().train_step(sample, model, criterion, optimizer, update_num,
                                      ignore_grad)
        self._feature_cache.before_batch(tuple(sample["id"].tolist()), update_num)
        try:
            return super().train_step(sample, model, criterion, optimizer, update_num,
                                      ignore_grad)
        finally:
            self._feature_cache.key = None
