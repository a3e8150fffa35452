"""The decoders of `make decode DECODER=...` and `make tune-lm`: each a module here that turns a
run's emissions into words, found by its NAME; adding one is adding a module (or, from outside
the package, `register(module)`). decode and tune_lm route through this protocol only.

Usage:
  decoders.add_arguments(parser)          # --decoder's choices' options, --files
  decoder = decoders.chosen(args)         # tune-lm: decoders.tuned(args)

A decoder module defines:
  NAME                          the DECODER value; outputs go to RUN/decode-<NAME>/ (Viterbi:
                                RUN/decode/), w2v2_10min.layout.decode_dir
  DEFAULT                       (optional) the stage whose decoder it is when none is named:
                                "decode" (viterbi), "tune-lm" (4gram: also for a DECODER with
                                nothing to tune, as `make tune-lm` with Make's DECODER=viterbi)
  CACHED                        True: it reads float16 emissions from RUN/emissions/ (computed
                                once, w2v2_10min.emissions.cached); False: float32, freshly
  NEEDS                         keys an up-to-date wer.json of it must hold
  FILES                         {option: Make knob}: the files it reads, --<option> PATH or, as
                                `make` passes every decoder's, --files KNOB=PATH
  ARGUMENTS                     functions f(group, tuning, users) adding its options to an
                                argument group titled with their docstring's first line and
                                the decoders (`users`) listing them; tuning: for tune-lm (no
                                weights given). One several decoders list is added once
                                (w2v2_10min.lm.search_arguments: --lm, --lexicon, --beam, ...)
  settings(args, run, sha256)   what decides its output (recorded as `decoder_settings`),
                                checked before any model runs; None when nothing does. `run`:
                                the run folder (its tuned weights: RUN/tune-<NAME>/)
  prepare(args, settings)       what it builds once (an LM, a lexicon trie, a dictionary)
  decode(prepared, emissions, settings, args) -> list[str]    words per utterance, in order
  extra(args, settings)         what its wer.json holds beyond the common record
  said(record, settings)        the middle of its one-line summary per subset
A decoder with weights for `make tune-lm` to tune also defines (what tune_lm reads of it, with
NAME and FILES; its outputs go to RUN/tune-<NAME>/, w2v2_10min.layout.tuning_dir, which its
settings read):
  TUNE_BEAM                     the beam tuning searches at (the paper's)
  SEARCH_SPACE                  {weight: (low, high)} each trial draws (w2v2_10min.lm's)
  tuning_key(args, sha256)      what tuned weights hold for (checkpoint, files' SHA-256...),
                                its files checked before anything loads
  searcher(args)                decode(utterances, settings) -> words, built once; settings:
                                beam, beam_threshold and one draw of SEARCH_SPACE
  hypotheses(args)              decode(utterances, settings) -> each utterance's final beam, as
                                w2v2_10min.lm.hypothesis tuples (acoustic score, LM score,
                                words, word string), best first: what TUNE=rescore rescores
                                (w2v2_10min.rescore), built once
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from w2v2_10min.common import UserError
from w2v2_10min.knobs import check

REQUIRED = ("NAME", "CACHED", "NEEDS", "FILES", "ARGUMENTS", "settings", "prepare", "decode",
            "extra", "said")
TUNING = ("TUNE_BEAM", "SEARCH_SPACE", "tuning_key", "searcher", "hypotheses")
DECODERS: dict = {}


def register(module) -> None:
    """Add a decoder module (one that defines REQUIRED, and all of TUNING or none of it);
    `make decode` and `make tune-lm` then take it by its NAME, with its options.

    Usage: decoders.register(importlib.import_module("my_decoder"))
    """
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    tuning = [name for name in TUNING if hasattr(module, name)]
    if tuning and len(tuning) < len(TUNING):
        missing += [name for name in TUNING if name not in tuning]
    if missing:
        raise ValueError(f"{module.__file__}: a decoder module defines {', '.join(missing)} "
                         f"too (w2v2_10min/decoders/__init__.py says what each is)")
    if module.NAME in DECODERS and DECODERS[module.NAME] is not module:
        raise ValueError(f"{module.__file__}: decoder {module.NAME} is "
                         f"{DECODERS[module.NAME].__file__} already; give it another NAME")
    DECODERS[module.NAME] = module
    # the default decoder first (it lists first in DECODER's choices and in --help)
    for name in sorted(DECODERS, key=lambda n: getattr(DECODERS[n], "DEFAULT", "") != "decode"):
        DECODERS[name] = DECODERS.pop(name)


for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        register(importlib.import_module(f"{__name__}.{_info.name}"))


def get(name: str):
    return DECODERS[name]


def default(stage: str):
    """The decoder of `stage` ("decode", "tune-lm") when none is named."""
    return next(m for m in DECODERS.values() if getattr(m, "DEFAULT", None) == stage)


def tunes(module) -> bool:
    """Whether the decoder has weights for `make tune-lm`."""
    return hasattr(module, "TUNE_BEAM")


def knob(value: str) -> str:
    """argparse type of --decoder: a known decoder, else the knob's one-line error."""
    return check("DECODER", value, " or ".join(DECODERS), value in DECODERS)


def knob_file(value: str) -> tuple[str, Path]:
    """argparse type of --files: KNOB=PATH."""
    name, equals, path = value.partition("=")
    if not (equals and name):
        raise UserError(f"--files {value}: give KNOB=PATH (e.g. LM_ARPA=data/4-gram.arpa.gz)")
    return name, Path(path)


def add_arguments(parser, tuning: bool = False) -> None:
    """Every decoder's options (each function of their ARGUMENTS once, in a group of its own)
    and --files, which `make` passes for all of them."""
    users: dict = {}
    for module in DECODERS.values():
        for add in module.ARGUMENTS:
            users.setdefault(add, []).append(module)
    for add, modules in users.items():
        title = (add.__doc__ or "options").strip().splitlines()[0]
        names = ", ".join(m.NAME for m in modules)
        add(parser.add_argument_group(f"--decoder {names}: {title}"), tuning, modules)
    parser.add_argument("--files", nargs="+", type=knob_file, default=[],
                        metavar="KNOB=PATH",
                        help="each decoder's files by Make knob (make passes all): the decoder "
                             "takes those of its FILES that no --<option> gives")


def take_files(args, module) -> None:
    """Fill the decoder's file options (its FILES) that are not given from --files."""
    given = dict(args.files)
    for option, knob_name in module.FILES.items():
        if getattr(args, option) is None and given.get(knob_name, Path()) != Path():
            setattr(args, option, given[knob_name])


def chosen(args):
    """The decoder --decoder names, its files taken (`make decode`)."""
    module = get(args.decoder)
    take_files(args, module)
    return module


def tuned(args):
    """The decoder `make tune-lm` tunes: --decoder's, or the default's for one without
    weights; its files taken."""
    module = get(args.decoder)
    module = module if tunes(module) else default("tune-lm")
    take_files(args, module)
    return module
