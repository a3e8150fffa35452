"""Test-only: fairseq's masks drawn from numpy's seeded generator, so two runs can be compared.

fairseq 0.12.3's compute_mask_indices draws each utterance's mask positions from
`np.random.default_rng(None)`, i.e. fresh OS entropy: no two fairseq runs mask alike, whatever
common.seed says: two runs of fairseq's own path differ from the first update. test_fast.py puts
this folder on the training process's PYTHONPATH for both paths alike; `default_rng(None)` then
takes its seed from numpy's global generator, which fairseq seeds with common.seed.
"""
import sys

if sys.argv and sys.argv[0].endswith("fairseq-hydra-train"):
    import numpy as np

    _default_rng = np.random.default_rng

    def default_rng(seed=None):
        return _default_rng(np.random.randint(2**31) if seed is None else seed)

    np.random.default_rng = default_rng
