"""Tune the 4-gram's weights both ways on the same emissions, in one run: the paper's full search
(a decode per trial, TUNE=search) and rescoring the beams' hypotheses (TUNE=rescore), and print,
side by side, the weights each chose, dev-other WER at them (a full decode: each method's
figure is a decode's), the decodes and the core-seconds each spent; for the noisy letters also
the WER at them on held-out draws (twice as many fresh noisy-letter draws, not tuned on: the
tuning set's WER favours whichever method decoded more pairs, by its lucky minimum).

Usage:
  python bench/bench_tune.py --run RUN_DIR --manifests MANIFEST_DIR --lm LM --lexicon LEXICON \
      [--subset dev_other] [--words 200000] [--trials 128] [--beam 500] [--sampler-seed 1]
      [--noisy-copies 20] [--draw 0] [--noise 2.5]

Emissions: RUN_DIR/emissions/<subset>.npz (written by `make decode DECODER=4gram` or `make
tune-lm`), and, since a briefly fine-tuned tiny model emits little but blanks (every pair of
weights then gives the same empty words), the set's own letters under Gaussian noise
(bench/bench_transformer_lm.py's noisy_letters, --noisy-copies draws, --noise more noise), on
which the LM and word score decide. Two vocabularies, as bench/bench_lm.py: the given LM and
lexicon, and WORDS words (the tiny corpus's plus made-up ones) with a 4-gram over them.
Core-seconds are this process's CPU time (one process searches, --jobs 1), the rescoring's own
search and Optuna's included.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from bench.bench_lm import large_lm  # noqa: E402
from bench.bench_transformer_lm import noisy_letters  # noqa: E402
from w2v2_10min import rescore  # noqa: E402
from w2v2_10min.common import UserError, run_main  # noqa: E402
from w2v2_10min.emissions import references  # noqa: E402
from w2v2_10min.lm import (BEAM_THRESHOLD, SEARCH_SPACE, TUNE_BEAM, LexiconSearch,  # noqa: E402
                           symbols)
from w2v2_10min.score import corpus_scores  # noqa: E402
from w2v2_10min.tune_lm import tune  # noqa: E402


def both(search: LexiconSearch, utterances: list, refs: list[str], args, folder: Path):
    """(weights, WER, decodes, core-seconds) of the full search, then of the rescoring."""
    def decode(utterances, settings):
        return search.decode(utterances, settings, 1)

    def hypotheses(utterances, settings):
        return search.decode(utterances, settings, 1, beams=True)

    out, quiet = [], contextlib.redirect_stdout(io.StringIO())  # each trial's and round's line
    start = time.process_time()
    with quiet:
        study = tune(decode, utterances, refs, args.trials, args.beam, args.sampler_seed,
                     folder / "search" / "optuna.db", {"bench": "search"})
    out.append((study.best_params, study.best_value, len(study.trials),
                time.process_time() - start))
    start = time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        done = rescore.tune(hypotheses, utterances, refs, args.beam, folder / "rescore",
                            {"bench": "rescore"}, SEARCH_SPACE)
    out.append((done["point"], done["wer"], len(done["rounds"]), time.process_time() - start))
    return out


def held_out_wer(search: LexiconSearch, held_out, weights: dict, beam: int) -> float | None:
    """WER of a full decode of the held-out set (utterances, references) at `weights`."""
    if held_out is None:
        return None
    utterances, refs = held_out
    settings = {"beam": beam, "beam_threshold": BEAM_THRESHOLD,
                **{name: weights[name] for name in rescore.WEIGHTS}}
    return corpus_scores(refs, search.decode(utterances, settings, 1))["wer"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--manifests", type=Path, required=True)
    parser.add_argument("--lm", type=Path, required=True)
    parser.add_argument("--lexicon", type=Path, required=True)
    parser.add_argument("--subset", default="dev_other")
    parser.add_argument("--words", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=128,
                        help="full decodes of the search")
    parser.add_argument("--beam", type=int, default=TUNE_BEAM)
    parser.add_argument("--sampler-seed", type=int, default=1)
    parser.add_argument("--noisy-copies", type=int, default=20,
                        help="noisy-letter draws of each utterance (seeds 0..N-1): 20 make the "
                             "demo run's 66-word dev_other 1,320 words, on which a word is 0.08 "
                             "points (at 5, a word was 0.3 and the search's lucky minimum of "
                             "its 128 decodes decided the comparison)")
    parser.add_argument("--draw", type=int, default=0,
                        help="which noisy-letter draws to tune on: 0, seeds 0..N-1 (N: "
                             "--noisy-copies); K > 0, seeds (3+K)N..(4+K)N-1, beyond the "
                             "held-out draws' N..3N-1, with noise of their own")
    parser.add_argument("--noise", type=float, default=2.5,
                        help="Gaussian noise (sd) added over noisy_letters' own (1.5): at 2.5 "
                             "the tiny LM's weights matter (WER 6%% at 2, -1; 60%% at 0.5, 0)")
    args = parser.parse_args(argv)
    cache = args.run / "emissions" / f"{args.subset}.npz"
    if not cache.is_file():
        raise UserError(f"{cache}: no cached emissions; run `make decode DECODER=4gram` first")
    with np.load(cache) as saved:
        run_emissions = [saved[f"u{i}"] for i in range(int(saved["count"]))]
    refs = references(args.manifests, args.subset)
    output_symbols = symbols(args.manifests)
    copies = args.noisy_copies

    def noisy(seeds: range, noise_seed: int) -> list:
        """noisy_letters' draws of each utterance (`seeds`), more Gaussian noise (--noise) over
        them, drawn from `noise_seed`."""
        rng = np.random.default_rng(noise_seed)
        return [u + rng.normal(0, args.noise, u.shape).astype(np.float32) for seed in seeds
                for u in noisy_letters(args.manifests, args.subset, output_symbols, seed)]

    tuning = noisy(range(copies) if args.draw == 0 else
                   range((3 + args.draw) * copies, (4 + args.draw) * copies), 99 + args.draw)
    sets = [("the run's emissions", run_emissions, refs),
            (f"noisy letters x{copies}, noise {args.noise}"
             + (f", draw {args.draw}" if args.draw else ""), tuning, refs * copies)]
    print(f"{args.subset} of {args.run}: {len(refs)} utterances, "
          f"{sum(len(r.split()) for r in refs)} words; beam {args.beam}, {args.trials} trials; "
          f"one process")
    held_out = [None,  # none for the run's emissions; the noisy letters' with noise of their own
                (noisy(range(copies, 3 * copies), 7), refs * 2 * copies)]
    print("\n| lexicon | emissions | method | lm_weight | word_score | WER at them (full decode) "
          "| WER at them, held-out draws | decodes | core-seconds |\n"
          "|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        vocabularies = [("the run's", args.lm, args.lexicon)]
        if args.words:
            vocabularies.append((f"{args.words:,} words", *large_lm(Path(tmp), args.words)))
        for v, (name, lm, lexicon) in enumerate(vocabularies):
            search = LexiconSearch(lm, lexicon, output_symbols)
            for s, (what, utterances, texts) in enumerate(sets):
                rows = both(search, utterances, texts, args, Path(tmp) / f"{v}-{s}")
                held = [held_out_wer(search, held_out[s], weights, args.beam)
                        for weights, *_ in rows]  # not timed
                for method, (weights, wer, decodes, seconds), other in zip(
                        ("search", "rescore"), rows, held):
                    print(f"| {name} | {what} | {method} | {weights['lm_weight']:.3f} | "
                          f"{weights['word_score']:.3f} | {wer:.2f} | "
                          f"{'-' if other is None else f'{other:.2f}'} | {decodes} | "
                          f"{seconds:.1f} |", flush=True)
                (_, wer_s, _, sec_s), (_, wer_r, _, sec_r) = rows
                print(f"| {name} | {what} | rescore - search | | | {wer_r - wer_s:+.2f} | "
                      f"{'' if held[0] is None else f'{held[1] - held[0]:+.2f}'} | | "
                      f"x{sec_s / max(sec_r, 1e-9):.1f} faster |", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
