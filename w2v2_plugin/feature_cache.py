"""The frozen CNN's features of a training batch, computed once and reused every pass.

While `model.feature_grad_mult` is 0 (all the recipes), fairseq runs wav2vec 2.0's
convolutional feature extractor under `torch.no_grad()`: it gets no gradient, so Adam leaves its
weights as they are, and nothing in it is random (its dropout is 0). Its output for a given
input is therefore the same every time. The input is a whole padded batch, not an utterance:
BASE's and LARGE LS-960's extractor normalises each channel over the padded length (group
norm), so features are kept per batch, keyed by the batch's utterance ids in order and its
padded shape. On a 10-minute split fairseq's batches are the same every epoch (the split's
utterances sorted by length; the order of batches is what is shuffled), so after the first
pass every batch is a cache hit; a batch made differently (utterances of equal length ordered
differently) is a new key and is computed.

Exactness is checked, not assumed: before each update the extractor's weights are compared
with those the cached features were computed with, and the cache is emptied if they differ.
With `feature_grad_mult` > 0 the CNN is trained: fairseq runs it with gradients and nothing is
cached (the extractor is computed as usual, and the log says so at start).
"""
from __future__ import annotations

import logging
from collections import OrderedDict

import torch

logger = logging.getLogger(__name__)


class FrozenFeatureCache:
    """Serves a feature extractor's output for a keyed batch from memory (LRU, `capacity`
    batches; 0 or None: off)."""

    def __init__(self, extractor: torch.nn.Module, capacity: int | None):
        self.extractor = extractor
        self.compute = extractor.forward  # the module's own forward, bound
        self.capacity = capacity
        self.key = None  # set by the task around each training batch
        self.update = None
        self.features: OrderedDict = OrderedDict()
        self.weights: list[torch.Tensor] = []
        self.reused = self.computed = 0
        # An instance attribute: the module, its parameters and state_dict stay as they are.
        extractor.forward = self.forward

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        if self.key is None or not self.capacity or torch.is_grad_enabled():
            return self.compute(source)
        key = (self.key, tuple(source.shape), source.dtype, source.device)
        if key in self.features:
            self.features.move_to_end(key)
            self.reused += 1
            return self.features[key]
        features = self.compute(source)
        if not self.features:
            self.weights = [p.detach().clone() for p in self.extractor.parameters()]
        self.features[key] = features
        if len(self.features) > self.capacity:
            self.features.popitem(last=False)
        self.computed += 1
        return features

    def before_batch(self, key: tuple, update: int) -> None:
        """Serve the training batch `key` next; first, at each new update, check the weights."""
        if update != self.update:
            self.update = update
            self.check_weights()
        self.key = key

    def check_weights(self) -> None:
        """Empty the cache if the extractor's weights are no longer those it was filled with."""
        if self.features and not all(torch.equal(kept, p.detach()) for kept, p in
                                     zip(self.weights, self.extractor.parameters())):
            logger.warning("the CNN feature extractor's weights changed: cached features "
                           "dropped (is it being trained?)")
            self.features.clear()

    def take_counts(self) -> tuple[int, int]:
        """(batches reused, batches computed) since the last call."""
        counts = self.reused, self.computed
        self.reused = self.computed = 0
        return counts
