"""What the end-to-end tests hold the demo's recipe to, shared by test_end_to_end.py and
test_end_to_end_paths.py (a test file imports no other test file).

Usage: from demo_bounds import HELD_OUT, HELD_OUT_BOUND, RUN, held_out_wer
"""
import json

RUN = "tiny-tiny/10min-0/seed-1"  # split 0, seed 1: the run the single-run checks look at
HELD_OUT = ["dev_clean", "dev_other", "test_clean", "test_other"]
HELD_OUT_BOUND = 40  # Viterbi WER (%) on each synthetic held-out set, over the grid


def held_out_wer(run) -> dict[str, float]:
    """The run's Viterbi WER on each synthetic held-out set."""
    return {s: json.loads((run / "decode" / s / "wer.json").read_text())["wer"] for s in HELD_OUT}
