"""The 4-gram decoder of `make decode DECODER=4gram`: lexicon-constrained beam search with a
KenLM n-gram LM (w2v2_10min.lm), the paper's "4-gram" rows.

Usage:
  python scripts/decode.py --decoder 4gram --run RUN --manifests MANIFEST_DIR \
      --subsets dev_clean ... --lm LM.arpa[.gz] --lexicon LEXICON [--beam 1500] \
      [--lm-weight W --word-score S] [--jobs N]

Emissions come from RUN/emissions/<subset>.npz (w2v2_10min.emissions.cached). The weights are,
in this order: --lm-weight and --word-score; RUN/tune-4gram/weights.json, written by
`make tune-lm` for this checkpoint, LM and lexicon; fairseq's example weights (2, -1), with a
note. wer.json records `decoder_settings` (beam, weights and where they came from, LM and
lexicon with their SHA-256); a subset decoded before with the same settings is skipped.
"""
from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path

from w2v2_10min import layout
from w2v2_10min.common import UserError, cpu_cores
from w2v2_10min.lm import (BEAM_THRESHOLD, DECODE_BEAM, DEFAULT_WEIGHTS, LexiconSearch,
                           symbols, weights_key)

NAME = "4gram"
CACHED = True
NEEDS = ()


def add_arguments(parser) -> None:
    group = parser.add_argument_group("--decoder 4gram")
    group.add_argument("--lm", type=Path, help="n-gram LM, ARPA (gzipped or not) or KenLM binary")
    group.add_argument("--lexicon", type=Path, help="letter lexicon (`make lm` writes it)")
    group.add_argument("--beam", type=int, default=DECODE_BEAM)
    group.add_argument("--lm-weight", type=float, help="instead of the tuned one")
    group.add_argument("--word-score", type=float, help="instead of the tuned one")
    group.add_argument("--jobs", type=int, default=cpu_cores(),
                       help="processes for the search (default: all cores)")


def weights(args, key: dict) -> dict:
    """lm_weight, word_score and where they came from (see the usage)."""
    given = [args.lm_weight is not None, args.word_score is not None]
    if all(given):
        return {"lm_weight": args.lm_weight, "word_score": args.word_score,
                "weights_from": "given"}
    if any(given):
        raise UserError("give both --lm-weight and --word-score (LM_WEIGHT= and WORD_SCORE=), "
                        "or neither to use the tuned ones")
    tuned = layout.tuning_dir(args.run, NAME) / "weights.json"
    if tuned.is_file():
        record = json.loads(tuned.read_text())
        changed = [name for name, value in key.items() if record.get(name) != value]
        if changed:
            raise UserError(f"{tuned}: tuned with another {changed[0].removesuffix('_sha256')}; "
                            "run `make tune-lm` again, or give LM_WEIGHT= and WORD_SCORE=")
        return {"lm_weight": record["lm_weight"], "word_score": record["word_score"],
                "weights_from": str(tuned.resolve())}
    print(f"note: {tuned} not found (run `make tune-lm`); using fairseq's example weights "
          f"lm_weight {DEFAULT_WEIGHTS['lm_weight']}, word_score "
          f"{DEFAULT_WEIGHTS['word_score']}", file=sys.stderr)
    return {**DEFAULT_WEIGHTS, "weights_from": "fairseq example (untuned)"}


def check_files(args) -> None:
    """The LM and lexicon are given and exist (before anything is hashed or loaded)."""
    if args.lm is None or args.lexicon is None:
        raise UserError("--decoder 4gram needs --lm and --lexicon (LM_ARPA= and LEXICON=; "
                        "`make lm` downloads them)")
    for path, what in ((args.lm, "language model"), (args.lexicon, "lexicon")):
        if not path.is_file():
            raise UserError(f"{path}: {what} not found; run `make lm` (or give its path)")


def settings(args, checkpoint_sha256: str) -> dict:
    """Everything that decides the 4-gram decoding's output, checked before any model runs."""
    check_files(args)
    if args.beam < 1:
        raise UserError(f"--beam {args.beam}: give a positive beam size")
    key = weights_key(checkpoint_sha256, args.lm, args.lexicon)
    return {"beam": args.beam, "beam_threshold": BEAM_THRESHOLD, **weights(args, key),
            "lm": str(args.lm.resolve()), "lm_sha256": key["lm_sha256"],
            "lexicon": str(args.lexicon.resolve()), "lexicon_sha256": key["lexicon_sha256"]}


def prepare(args, settings: dict) -> LexiconSearch:
    """The LM and lexicon before the model: a bad one stops before minutes of emissions."""
    return LexiconSearch(Path(settings["lm"]), Path(settings["lexicon"]),
                         symbols(args.manifests))


def decode(search: LexiconSearch, emissions, settings: dict, args) -> list[str]:
    return search.decode(emissions, settings, args.jobs)


def extra(args, settings: dict) -> dict:
    return {"decoder_settings": settings, "search_processes": args.jobs, "device": "cpu",
            "versions": {"flashlight-text": version("flashlight-text")}}


def said(record: dict, settings: dict) -> str:
    return f"4-gram LM, beam {settings['beam']}, lm_weight {settings['lm_weight']:.3f}, " \
           f"word_score {settings['word_score']:.3f}"
