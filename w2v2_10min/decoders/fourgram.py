"""The 4-gram decoder of `make decode DECODER=4gram` and `make tune-lm`: lexicon-constrained beam
search with a KenLM n-gram LM (w2v2_10min.lm), the paper's "4-gram" rows.

Usage:
  python scripts/decode.py --decoder 4gram --run RUN --manifests MANIFEST_DIR \
      --subsets dev_clean ... --lm LM.arpa[.gz] --lexicon LEXICON [--beam 1500] \
      [--lm-weight W --word-score S] [--jobs N]
  python scripts/tune_lm.py --decoder 4gram --run RUN ... --lm LM.arpa[.gz] --lexicon LEXICON

Emissions come from RUN/emissions/<subset>.npz (w2v2_10min.emissions.cached). The weights are,
in this order: --lm-weight and --word-score; RUN/tune-4gram/weights.json, written by
`make tune-lm` for this checkpoint, LM and lexicon; fairseq's example weights (2, -1), with a
note (w2v2_10min.lm.weights). wer.json records `decoder_settings` (beam, weights and where they
came from, LM and lexicon with their SHA-256); a subset decoded before with the same settings is
skipped. The LM-search options (--lm, --lexicon, --beam, the weights) are w2v2_10min.lm's,
shared with the Transformer decoder; --jobs is this decoder's own.
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from w2v2_10min import layout
from w2v2_10min.common import UserError, cpu_cores
from w2v2_10min.lm import (BEAM_THRESHOLD, DECODE_BEAM, SEARCH_SPACE, TUNE_BEAM, LexiconSearch,
                           beam, search_arguments, symbols, weights, weights_key)

NAME = "4gram"
DEFAULT = "tune-lm"  # what `make tune-lm` tunes when DECODER names none with weights (viterbi)
CACHED = True
NEEDS = ()
FILES = {"lm": "LM_ARPA", "lexicon": "LEXICON"}
BEAM = DECODE_BEAM  # the paper's (section 4.4): decoded at 1,500, tuned at TUNE_BEAM (500)
# TUNE_BEAM and SEARCH_SPACE, imported from w2v2_10min.lm: it has weights for `make tune-lm`


def arguments(group, tuning: bool, users) -> None:
    """processes for the search"""
    group.add_argument("--jobs", type=int, default=cpu_cores(),
                       help="processes for the 4-gram search (default: all cores)")


ARGUMENTS = (search_arguments, arguments)


def check_files(args) -> None:
    """The LM and lexicon are given and exist (before anything is hashed or loaded)."""
    if args.lm is None or args.lexicon is None:
        raise UserError("--decoder 4gram needs --lm and --lexicon (LM_ARPA= and LEXICON=; "
                        "`make lm` downloads them)")
    for path, what in ((args.lm, "language model"), (args.lexicon, "lexicon")):
        if not path.is_file():
            raise UserError(f"{path}: {what} not found; run `make lm` (or give its path)")


def tuning_key(args, checkpoint_sha256: str) -> dict:
    """What weights tuned for this decoder hold for: the checkpoint, LM and lexicon."""
    check_files(args)
    return weights_key(checkpoint_sha256, args.lm, args.lexicon)


def settings(args, run: Path, checkpoint_sha256: str) -> dict:
    """Everything that decides the 4-gram decoding's output, checked before any model runs."""
    check_files(args)
    size = beam(args, BEAM)
    key = tuning_key(args, checkpoint_sha256)
    return {"beam": size, "beam_threshold": BEAM_THRESHOLD,
            **weights(args, key, layout.tuning_dir(run, NAME) / "weights.json"),
            "lm": str(args.lm.resolve()), "lm_sha256": key["lm_sha256"],
            "lexicon": str(args.lexicon.resolve()), "lexicon_sha256": key["lexicon_sha256"]}


def prepare(args, settings: dict) -> LexiconSearch:
    """The LM and lexicon before the model: a bad one stops before minutes of emissions."""
    return LexiconSearch(Path(settings["lm"]), Path(settings["lexicon"]),
                         symbols(args.manifests))


def decode(search: LexiconSearch, emissions, settings: dict, args) -> list[str]:
    return search.decode(emissions, settings, args.jobs)


def searcher(args):
    """decode(utterances, settings) -> words over --lm and --lexicon, for `make tune-lm`."""
    search = LexiconSearch(args.lm, args.lexicon, symbols(args.manifests))
    return lambda utterances, settings: search.decode(utterances, settings, args.jobs)


def hypotheses(args):
    """decode(utterances, settings) -> each utterance's final beam, for TUNE=rescore."""
    search = LexiconSearch(args.lm, args.lexicon, symbols(args.manifests))
    return lambda utterances, settings: search.decode(utterances, settings, args.jobs, True)


def extra(args, settings: dict) -> dict:
    return {"decoder_settings": settings, "search_processes": args.jobs, "device": "cpu",
            "versions": {"flashlight-text": version("flashlight-text")}}


def said(record: dict, settings: dict) -> str:
    return f"4-gram LM, beam {settings['beam']}, lm_weight {settings['lm_weight']:.3f}, " \
           f"word_score {settings['word_score']:.3f}"
