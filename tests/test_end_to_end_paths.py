"""The demo's recipe on split 0, seed 1, two other ways: fairseq's own training path (FAST=0)
reaches the held-out bound too, and the recipe stopped after 100 updates does not.

Apart from test_end_to_end.py (and its `make demo`) so that `make test` runs them beside it;
they fine-tune from the same committed tiny model on the same split-0 manifests as the demo.
"""
import pytest

from conftest import make
from demo_bounds import HELD_OUT, HELD_OUT_BOUND, RUN, held_out_wer


@pytest.fixture(scope="module")
def split0(tmp_path_factory):
    """The committed tiny model and split 0's manifests, as `make demo` makes them."""
    root = tmp_path_factory.mktemp("paths")
    knobs = [f"PRETRAINED_DIR={root / 'pretrained'}", f"MANIFEST_ROOT={root / 'manifests'}"]
    make("pretrain-tiny", *knobs)
    make("manifests", *knobs, "DATA=tiny/corpus", "SPLITS=0",
         "EVAL_SETS=dev-clean dev-other test-clean test-other librivox-real")
    return root, knobs


def another_run(split0, name: str, *knobs) -> dict[str, float]:
    """Split 0, seed 1 fine-tuned with the demo's recipe and these knobs into ROOT/name, decoded:
    its held-out Viterbi WER."""
    root, paths = split0
    common = [*paths, "MODEL=tiny", "PROTOCOL=tiny", "SPLIT=0", "SEED=1",
              f"RUN_ROOT={root / name}"]
    make("finetune", *common, *knobs)
    make("decode", *common, f"EVAL_SETS={' '.join(s.replace('_', '-') for s in HELD_OUT)}")
    return held_out_wer(root / name / RUN)


def test_the_recipe_stopped_early_does_not_reach_the_bound(split0):
    """The bound is earned by the recipe's updates: 100 of them leave held-out WER far above."""
    early = another_run(split0, "early", "ARGS=optimization.max_update=100")
    assert all(wer >= HELD_OUT_BOUND + 20 for wer in early.values()), early


def test_fairseqs_own_path_generalises_too(split0):
    """FAST=0 (fairseq's own training path, no plug-in speed-ups) reaches the same bound on
    split 0, seed 1."""
    plain = another_run(split0, "plain", "FAST=0")
    assert sum(plain.values()) / len(plain) <= HELD_OUT_BOUND, plain
