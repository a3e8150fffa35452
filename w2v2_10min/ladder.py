"""The departure ladder (issue 36): from the seed's recipe (PROTOCOL=seed) toward the paper's,
one departure at a time.

    from w2v2_10min import ladder
    config = ladder.climb(seed_config, paper_config, "masks")   # dicts of composed configs

A run's RUNG (a key of its identity) names the last departure returned to the paper's value:
RUNG=masks trains PROTOCOL=seed with the paper's normalisation, number of updates, freezing and
masks, and the seed's dropouts, schedule and optimizer. The paper's values are those of the
paper's own recipe for the model (PROTOCOL=paper; tiny for the tiny model), composed with the
same ARGS, so no number is written twice. `make ladder` trains and decodes each rung of LADDER,
and `make compare` lists them in climbing order (layout.label_order). What no rung returns
(batch, lr, fp16's flavour, the trailing `|` of targets, the data) is in docs/seed-study.md.
"""
from __future__ import annotations

import copy

from w2v2_10min.layout import RUNGS
from w2v2_10min.trainers.transformers_trainer import TRAINER_ONLY

SEED_PROTOCOL = "seed"
# each rung: the composed config's keys (`group.key`) or whole groups (`group`) it takes from
# the paper's recipe, in layout.RUNGS' order
DEPARTURES = {
    "norm": ("task.input_normalization",),
    "updates": ("optimization.max_update",),
    "freeze": ("model.freeze_finetune_updates",),
    "masks": ("model.mask_draws", "model.mask_prob", "model.mask_length",
              "model.mask_channel_prob", "model.mask_channel_length"),
    "dropouts": ("model.dropout", "model.attention_dropout", "model.activation_dropout",
                 "model.final_dropout", "model.dropout_input", "model.layerdrop"),
    "schedule": ("lr_scheduler",),
    "optimizer": ("optimizer", "optimization.clip_norm", "criterion.loss_divisor",
                  "criterion.zero_infinity"),
}
assert tuple(DEPARTURES) == RUNGS
# keys only the transformers trainer reads: their value where a recipe does not set them
# (fairseq's way), which is what the paper's recipe means
TRAINER_DEFAULTS = TRAINER_ONLY


def paper_protocol(model: str) -> str:
    """The protocol whose values the ladder climbs to for MODEL."""
    return "tiny" if model == "tiny" else "paper"


def rungs_up_to(rung: str) -> tuple[str, ...]:
    """The rungs a run at RUNG has climbed (RUNG '' : none, the seed's recipe)."""
    return RUNGS[:RUNGS.index(rung) + 1] if rung else ()


def climb(seed: dict, paper: dict, rung: str) -> dict:
    """The seed's composed config with the paper's values for every departure up to RUNG."""
    out = copy.deepcopy(seed)
    for name in rungs_up_to(rung):
        for key in DEPARTURES[name]:
            group, _, field = key.partition(".")
            if not field:
                out[group] = copy.deepcopy(paper[group])
            elif field in paper.get(group, {}) or key in TRAINER_DEFAULTS:
                value = paper.get(group, {}).get(field, TRAINER_DEFAULTS.get(key))
                out.setdefault(group, {})[field] = copy.deepcopy(value)
            else:  # the paper's recipe leaves it to fairseq's default: so does the rung
                out.get(group, {}).pop(field, None)
    return out


def main(argv=None) -> int:
    """Usage: python -m w2v2_10min.ladder RUNG...   (make ladder): each LADDER rung as a
    RUNG=... argument of make, one a line (`seed`, the seed's recipe itself: RUNG=)."""
    import sys

    from w2v2_10min.knobs import check

    words = sys.argv[1:] if argv is None else argv
    check("LADDER", " ".join(words))
    for word in words:
        print(f"RUNG={'' if word == SEED_PROTOCOL else word}")
    return 0


if __name__ == "__main__":
    from w2v2_10min.common import run_main

    run_main(main)
