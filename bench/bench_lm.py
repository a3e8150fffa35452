"""Time 4-gram lexicon beam search per CPU core at the paper's beams, and estimate the real sets.

Usage:
  python bench/bench_lm.py --run RUN_DIR --manifests MANIFEST_DIR --lm LM --lexicon LEXICON \
      [--subset dev_other] [--repeats 5] [--words 200000]

Decodes RUN_DIR/emissions/<subset>.npz (written by `make decode DECODER=4gram` or
`make tune-lm`) in this one process, REPEATS times over, at beam 500 (the paper's tuning beam)
and 1,500 (its test beam), with the weights of RUN_DIR/tune-4gram/weights.json when present.
Speeds are per CPU second of this process, so a busy machine does not lower them.

Two vocabularies: the given LM and lexicon (the tiny demo's 60 words), and one of WORDS words
of LibriSpeech's size: the tiny corpus's words plus made-up ones drawn from a letter bigram
model of them (seeded), with a 4-gram estimated over the tiny corpus's training text and those
words (tiny/make_tiny_lm.py). A larger trie keeps more hypotheses alive; the real 4-gram
(1.3 GB compressed) costs more per lookup, while a well-trained model's sharper outputs keep
fewer hypotheses alive than the tiny model's: the figures are rough estimates for LibriSpeech,
not measurements of it.
Then prints what each speed per frame means for LibriSpeech's four dev/test sets.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from tiny.make_tiny_lm import estimate_arpa, training_sentences  # noqa: E402
from w2v2_10min.common import REPO, UserError, run_main  # noqa: E402
from w2v2_10min.lexicon import letter_lexicon  # noqa: E402
from w2v2_10min.lm import (BEAM_THRESHOLD, DECODE_BEAM, DEFAULT_WEIGHTS, TUNE_BEAM,  # noqa: E402
                           LexiconSearch, symbols)

# LibriSpeech dev-other: 5.3 hours (OpenSLR 12); wav2vec 2.0 emits 50 frames per second.
REAL_SET_FRAMES = 5.3 * 3600 * 50
TRIALS = 128


def made_up_vocabulary(sentences: list[str], size: int, seed: int = 0) -> list[str]:
    """The sentences' words plus made-up words from a letter bigram chain over them."""
    words = sorted({w for s in sentences for w in s.split()})
    follows: dict[str, list[str]] = {}
    for word in words:
        chain = ["^", *word, "$"]
        for a, b in zip(chain, chain[1:]):
            follows.setdefault(a, []).append(b)
    rng, vocabulary = random.Random(seed), set(words)
    while len(vocabulary) < size:
        letters, char = [], rng.choice(follows["^"])
        while char != "$" and len(letters) < 14:
            letters.append(char)
            char = rng.choice(follows[char])
        if len(letters) >= 2:
            vocabulary.add("".join(letters))
    return sorted(vocabulary)


def large_lm(folder: Path, size: int) -> tuple[Path, Path]:
    """An ARPA 4-gram and letter lexicon with `size` words (see the usage)."""
    sentences = training_sentences(REPO / "tiny" / "corpus")
    vocabulary = made_up_vocabulary(sentences, size)
    known = {w for s in sentences for w in s.split()}
    arpa, lexicon = folder / "large.arpa", folder / "large.lst"
    arpa.write_text(estimate_arpa(sentences + [w for w in vocabulary if w not in known]))
    spelled, _ = letter_lexicon(vocabulary)
    lexicon.write_text("".join(f"{w}\t{' '.join(s)}\n" for w, s in spelled.items()))
    return arpa, lexicon


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--manifests", type=Path, required=True)
    parser.add_argument("--lm", type=Path, required=True)
    parser.add_argument("--lexicon", type=Path, required=True)
    parser.add_argument("--subset", default="dev_other")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--words", type=int, default=200_000)
    args = parser.parse_args(argv)
    cache = args.run / "emissions" / f"{args.subset}.npz"
    if not cache.is_file():
        raise UserError(f"{cache}: no cached emissions; run `make decode DECODER=4gram` first")
    with np.load(cache) as saved:
        utterances = [saved[f"u{i}"] for i in range(int(saved["count"]))] * args.repeats
    tuned = args.run / "tune-4gram" / "weights.json"
    weights = dict(DEFAULT_WEIGHTS)
    if tuned.is_file():
        weights = {k: json.loads(tuned.read_text())[k] for k in DEFAULT_WEIGHTS}
    frames = sum(len(u) for u in utterances)
    print(f"{args.subset} of {args.run}: {len(utterances)} utterances, {frames} frames, one "
          f"process; lm_weight {weights['lm_weight']:.2f}, word_score {weights['word_score']:.2f}")
    print("\n| lexicon | beam | utterances/s/core | frames/s/core | one real set, core-hours "
          "(estimate) | tuning, 128 trials, core-hours (estimate) |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        vocabularies = [("the run's", args.lm, args.lexicon)]
        if args.words:
            vocabularies.append((f"{args.words:,} words", *large_lm(Path(tmp), args.words)))
        for name, lm, lexicon in vocabularies:
            search = LexiconSearch(lm, lexicon, symbols(args.manifests))
            for beam in (TUNE_BEAM, DECODE_BEAM):
                settings = {"beam": beam, "beam_threshold": BEAM_THRESHOLD, **weights}
                search.decode(utterances[:1], settings, jobs=1)  # warm-up
                start = time.process_time()
                search.decode(utterances, settings, jobs=1)
                seconds = time.process_time() - start
                one_set = REAL_SET_FRAMES * seconds / frames / 3600
                tuning = f"{one_set * TRIALS:.1f}" if beam == TUNE_BEAM else "—"
                print(f"| {name} | {beam} | {len(utterances) / seconds:.1f} | "
                      f"{frames / seconds:.0f} | {one_set:.2f} | {tuning} |", flush=True)
    print("\nEstimates only: LibriSpeech's 5.3 h per set at these speeds per frame.")
    return 0


if __name__ == "__main__":
    run_main(main)
