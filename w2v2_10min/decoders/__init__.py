"""The decoders of `make decode DECODER=...`: each a module here that turns a run's emissions
into words, found by its NAME; adding one is adding a module.

Usage: from w2v2_10min import decoders; decoder = decoders.get("4gram")

A decoder module defines:
  NAME                          the DECODER value; outputs go to RUN/decode-<NAME>/ (Viterbi:
                                RUN/decode/), w2v2_10min.layout.decode_dir
  CACHED                        True: it reads float16 emissions from RUN/emissions/ (computed
                                once, w2v2_10min.emissions.cached); False: float32, freshly
  NEEDS                         keys an up-to-date wer.json of it must hold
  add_arguments(parser)         its own options
  settings(args, sha256)        what decides its output (recorded as `decoder_settings`),
                                checked before any model runs; None when nothing does
  prepare(args, settings)       what it builds once (an LM, a lexicon trie, a dictionary)
  decode(prepared, emissions, settings, args) -> list[str]    words per utterance, in order
  extra(args, settings)         what its wer.json holds beyond the common record
  said(record, settings)        the middle of its one-line summary per subset
"""
from __future__ import annotations

import importlib
import pkgutil

from w2v2_10min.knobs import check

_MODULES = [importlib.import_module(f"{__name__}.{info.name}")
            for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")]
DECODERS = {module.NAME: module for module in sorted(_MODULES, key=lambda m: m.NAME != "viterbi")}


def get(name: str):
    return DECODERS[name]


def knob(value: str) -> str:
    """argparse type of --decoder: a known decoder, else the knob's one-line error."""
    return check("DECODER", value, " or ".join(DECODERS), value in DECODERS)


def add_arguments(parser) -> None:
    for module in DECODERS.values():
        module.add_arguments(parser)
