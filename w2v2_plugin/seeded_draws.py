"""Masks and LayerDrop drawn from (common.seed, update, utterance): the task option `seeded_draws`.

Usage (the plugin's tasks do this; `recipes/finetune/plugin/w2v2.yaml` selects them):
    draws = SeededDraws.install(model, seed)        # once the task has built the model
    with draws.batch(update_num, sample["id"]):     # around each training batch
        loss = criterion(model, sample)

fairseq 0.12.3 draws two kinds of random numbers outside torch, and neither is fixed by
`common.seed` the way dropout is (fairseq re-seeds torch with seed + num_updates before every
update):
- `compute_mask_indices`, which draws wav2vec 2.0's time and channel masks, seeds each
  utterance's generator with `hash((seed, epoch, index))` only when its caller passes all three;
  `Wav2Vec2Model.apply_mask` passes none, so masks come from fresh OS entropy.
- LayerDrop (`TransformerEncoder.extract_features`) draws `np.random.random()` per layer from
  numpy's global generator, seeded once at start-up: a resumed run starts that stream again.

Here `apply_mask` calls fairseq's own `compute_mask_indices` with seed (common.seed, stream),
epoch = the update number and the batch's utterance ids (the seeded API fairseq's later models
use), and LayerDrop draws inside fairseq's `numpy_seed(common.seed, stream, update, ids of the
micro-batch)`, which restores the global generator afterwards. The arithmetic is fairseq's
(same probabilities, spans, rate), only the source of the numbers changes, with one step done
here: with `require_same_masks` (the default) fairseq trims every utterance's mask to the
batch's smallest count using the generator of the batch's *last* utterance, which would tie an
utterance's mask to its batch's order; here each utterance trims with its own generator (the
same uniform choice of frames), so its mask depends on its batch-mates only through that count.
fairseq's seeded API folds each seed into `hash(...) % 1e6` (Python's hash of integers, the same
in every process), a million seeds per stream. The model, its parameters and state_dict are
unchanged: the two methods are replaced on the instance only.
"""
from __future__ import annotations

import itertools
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from fairseq.data import data_utils
from fairseq.models.wav2vec import wav2vec2
from fairseq.tasks import register_task
from fairseq.tasks.audio_finetuning import AudioFinetuningConfig, AudioFinetuningTask

logger = logging.getLogger(__name__)

LAYERDROP_STREAM = 2  # masks are streams 0, 1 (in the order apply_mask asks for them)


def seeded_mask_indices(seed: tuple, update: int, ids: np.ndarray, shape, padding_mask,
                        mask_prob, mask_length, mask_type="static", mask_other=0.0,
                        min_masks=0, no_overlap=False, min_space=0, require_same_masks=True,
                        mask_dropout=0.0) -> np.ndarray:
    """fairseq's compute_mask_indices, each utterance's draws seeded by (seed, update, its id)."""
    mask = data_utils.compute_mask_indices(
        shape, padding_mask, mask_prob, mask_length, mask_type, mask_other, min_masks,
        no_overlap, min_space, require_same_masks=False, mask_dropout=0.0,
        seed=seed, epoch=update, indices=ids)
    if not require_same_masks and mask_dropout <= 0:
        return mask
    target = mask.sum(axis=1).min()
    for row, index in zip(mask, ids.tolist()):
        rng = np.random.default_rng([*seed, update, index])
        masked = np.flatnonzero(row)
        if require_same_masks and len(masked) > target:  # as fairseq: a uniform subset
            row[:] = False
            row[rng.permutation(masked)[:target]] = True
        if mask_dropout > 0:
            masked = np.flatnonzero(row)
            row[rng.choice(masked, int(np.rint(len(masked) * mask_dropout)), replace=False)] = False
    return mask


class SeededDraws:
    """A wav2vec 2.0 model's masks and LayerDrop, seeded by the training batch set in `batch`."""

    def __init__(self, w2v_model: wav2vec2.Wav2Vec2Model, seed: int):
        self.model, self.seed = w2v_model, int(seed)
        self.key = None  # (update, utterance ids) of the training batch being computed
        self.fairseq_apply_mask = w2v_model.apply_mask  # the class's own methods, bound
        self.fairseq_extract_features = w2v_model.encoder.extract_features
        w2v_model.apply_mask = self.apply_mask
        w2v_model.encoder.extract_features = self.extract_features

    @classmethod
    def install(cls, model, seed: int) -> "SeededDraws | None":
        """Seed the draws of `model` (fairseq's wav2vec_ctc); None for any other model."""
        w2v_model = getattr(getattr(model, "w2v_encoder", None), "w2v_model", None)
        if not isinstance(w2v_model, wav2vec2.Wav2Vec2Model):
            logger.info("seeded draws: not a wav2vec 2.0 CTC model, fairseq's own draws")
            return None
        logger.info(f"seeded draws: masks and LayerDrop drawn from (seed {seed}, update, "
                    "utterance ids) (task.seeded_draws)")
        return cls(w2v_model, seed)

    @contextmanager
    def batch(self, update: int, ids: torch.Tensor):
        """Draw for the training batch of utterances `ids` at update `update` (0-based)."""
        self.key = (int(update), np.asarray(ids.tolist(), dtype=np.int64))
        try:
            yield
        finally:
            self.key = None

    def current(self) -> tuple[int, np.ndarray]:
        """(update, utterance ids) of the training batch; an error outside one."""
        if self.key is None:
            raise RuntimeError("w2v2_plugin seeded draws: the model trains outside the task's "
                               "train_step, so no update number seeds its masks/LayerDrop")
        return self.key

    def apply_mask(self, x, padding_mask, mask_indices=None, mask_channel_indices=None):
        """fairseq's apply_mask, its masks drawn by seeded_mask_indices (streams 0, 1)."""
        update, ids = self.current()
        streams = itertools.count()

        def compute_mask_indices(shape, padding_mask, *args, **kwargs):
            return seeded_mask_indices((self.seed, next(streams)), update, ids, shape,
                                       padding_mask, *args, **kwargs)

        # fairseq's apply_mask looks the function up in its module: seeded for this call only
        fairseq_function = wav2vec2.compute_mask_indices
        wav2vec2.compute_mask_indices = compute_mask_indices
        try:
            return self.fairseq_apply_mask(x, padding_mask, mask_indices, mask_channel_indices)
        finally:
            wav2vec2.compute_mask_indices = fairseq_function

    def extract_features(self, x, *args, **kwargs):
        """fairseq's encoder, its LayerDrop drawn in numpy_seed(seed, stream, update, ids)."""
        encoder = self.model.encoder
        if not (encoder.training and encoder.layerdrop > 0):
            return self.fairseq_extract_features(x, *args, **kwargs)
        update, ids = self.current()
        with data_utils.numpy_seed(self.seed, LAYERDROP_STREAM, update, *sorted(ids.tolist())):
            return self.fairseq_extract_features(x, *args, **kwargs)


@dataclass
class SeededAudioFinetuningConfig(AudioFinetuningConfig):
    seeded_draws: bool = field(default=True, metadata={
        "help": "draw masks and LayerDrop from (common.seed, update, utterance ids), so that a "
                "seed fixes the run and a resumed run ends as an uninterrupted one; false: "
                "fairseq's own draws"})


@register_task("audio_finetuning_seeded", dataclass=SeededAudioFinetuningConfig)
class SeededAudioFinetuningTask(AudioFinetuningTask):
    """fairseq's audio_finetuning whose masks and LayerDrop are seeded (task.seeded_draws)."""

    cfg: SeededAudioFinetuningConfig

    def __init__(self, cfg: SeededAudioFinetuningConfig):
        super().__init__(cfg)
        self.draws = None

    def build_model(self, model_cfg, from_checkpoint=False):
        model = super().build_model(model_cfg, from_checkpoint)
        if self.cfg.seeded_draws:
            self.draws = SeededDraws.install(model, self.cfg.seed)
        return model

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if self.draws is None:
            return super().train_step(sample, model, criterion, optimizer, update_num,
                                      ignore_grad)
        with self.draws.batch(update_num, sample["id"]):
            return super().train_step(sample, model, criterion, optimizer, update_num,
                                      ignore_grad)
