"""Time 4-gram lexicon beam search per CPU core at the paper's beams, and estimate the real sets.

Usage:
  python bench/bench_lm.py --run RUN_DIR --data MANIFEST_DIR --lm LM --lexicon LEXICON \
      [--subset dev_other] [--repeats 20]

Decodes RUN_DIR/emissions/<subset>.npz (written by `make decode DECODER=4gram` or
`make tune-lm`) on one process, REPEATS times over, at beam 500 (the paper's tuning beam) and
1,500 (its test beam), with the weights of RUN_DIR/tune-4gram/weights.json when present.
Prints utterances and frames per second per core, then what the same speed per frame would
mean for LibriSpeech's four dev/test sets: an estimate only (the real 4-gram LM and 200k-word
lexicon make each frame dearer than the tiny ones do, by an amount this cannot measure).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import UserError, run_main  # noqa: E402
from w2v2_10min.lm import (BEAM_THRESHOLD, DECODE_BEAM, DEFAULT_WEIGHTS, TUNE_BEAM,  # noqa: E402
                           LexiconSearch, symbols)

# LibriSpeech dev/test: hours of audio (OpenSLR 12); wav2vec 2.0 emits 50 frames per second.
REAL_HOURS = {"dev_clean": 5.4, "dev_other": 5.3, "test_clean": 5.4, "test_other": 5.3}
FRAMES_PER_SECOND = 50
TRIALS = 128


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--lm", type=Path, required=True)
    parser.add_argument("--lexicon", type=Path, required=True)
    parser.add_argument("--subset", default="dev_other")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    cache = args.run / "emissions" / f"{args.subset}.npz"
    if not cache.is_file():
        raise UserError(f"{cache}: no cached emissions; run `make decode DECODER=4gram` first")
    with np.load(cache) as saved:
        utterances = [saved[f"u{i}"] for i in range(int(saved["count"]))]
    tuned = args.run / "tune-4gram" / "weights.json"
    weights = dict(DEFAULT_WEIGHTS)
    if tuned.is_file():
        record = json.loads(tuned.read_text())
        weights = {k: record[k] for k in DEFAULT_WEIGHTS}
    search = LexiconSearch(args.lm, args.lexicon, symbols(args.data))
    frames = sum(len(u) for u in utterances) * args.repeats
    count = len(utterances) * args.repeats
    real_frames = {s: h * 3600 * FRAMES_PER_SECOND for s, h in REAL_HOURS.items()}
    print(f"{args.subset} of {args.run}: {count} utterances, {frames} frames, one process")
    print("| beam | utterances/s/core | frames/s/core | est. core-hours, one real set | "
          "est. core-hours, tuning (128 trials on dev-other) |")
    print("|---|---|---|---|---|")
    for beam in (TUNE_BEAM, DECODE_BEAM):
        settings = {"beam": beam, "beam_threshold": BEAM_THRESHOLD, **weights}
        search.decode(utterances[:1], settings, jobs=1)  # warm-up
        start = time.perf_counter()
        search.decode(utterances * args.repeats, settings, jobs=1)
        seconds = time.perf_counter() - start
        per_frame = seconds / frames
        one_set = real_frames["dev_other"] * per_frame / 3600
        print(f"| {beam} | {count / seconds:.1f} | {frames / seconds:.0f} | {one_set:.2f} | "
              f"{one_set * TRIALS:.1f} |" if beam == TUNE_BEAM else
              f"| {beam} | {count / seconds:.1f} | {frames / seconds:.0f} | {one_set:.2f} | — |")
    print("Core-hours are estimates at the tiny LM's speed per frame, a lower bound for the "
          "real 4-gram LM and lexicon.")
    return 0


if __name__ == "__main__":
    run_main(main)
