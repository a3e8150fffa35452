"""The word Transformer LM decoder of `make decode DECODER=transformer`: the paper's
"Transformer" rows, fairseq's `W2lFairseqLMDecoder` search with the LM's key/value cache kept.

Usage:
  python scripts/decode.py --decoder transformer --run RUN --manifests MANIFEST_DIR \
      --subsets dev_other ... --lm LM.pt --lexicon LEXICON [--beam 500] \
      [--lm-weight W --word-score S] [--lm-parallel N] [--lm-batch N] [--lm-cache N] [--lm-fp16]

The LM is a fairseq `language_modeling` checkpoint (the released
`lm_librispeech_word_transformer.pt`) with its vocabulary as `dict.txt` beside it, upper-cased
to match the letter lexicon: where fairseq's decoder reads it. The search is flashlight-text's
LexiconDecoder with the options, trie and word scores of fairseq's `W2lFairseqLMDecoder`
(examples/speech_recognition/w2l_decoder.py), so the hypotheses are fairseq's. What differs is
the cost: fairseq re-runs the whole word prefix through the LM for every new LM state
(incremental decoding off); `TransformerLM` keeps each state's key/value step and runs one
step per new word. The search asks for one state's scores at a time and waits, so one
utterance's search has few states to run together; --lm-parallel utterances are searched at
once, in threads, and the states they wait for run together, in passes of up to --lm-batch
rows (`LMSteps`). Each utterance's search is flashlight's, unchanged (the search:
w2v2_10min.transformer_search). Weights as the 4-gram's (w2v2_10min.decoders.fourgram.weights),
from RUN/tune-transformer/weights.json.
"""
from __future__ import annotations

import os
from pathlib import Path

from w2v2_10min.common import UserError, file_digest
from w2v2_10min.decoders.fourgram import weights
from w2v2_10min.lm import BEAM_THRESHOLD, symbols, weights_key
from w2v2_10min.stage import device
from w2v2_10min.transformer_search import (BATCH, CACHE, PARALLEL, SIL_WEIGHT, TransformerSearch,
                                           lm_dictionary)

NAME = "transformer"
CACHED = True
NEEDS = ()
# The paper (section 4.4): Transformer-LM weights tuned at beam 50, test sets decoded at 500.
BEAM, TUNE_BEAM = 500, 50


def add_arguments(parser) -> None:
    group = parser.add_argument_group("--decoder transformer: utterances at once, the LM's "
                                      "batch, cache and precision")
    group.add_argument("--lm-parallel", type=int, default=PARALLEL,
                       help=f"utterances searched at once, their LM states run in shared "
                            f"batches (default {PARALLEL})")
    group.add_argument("--lm-batch", type=int, default=BATCH,
                       help=f"LM states run in one forward pass, at most (default {BATCH})")
    group.add_argument("--lm-cache", type=int, default=CACHE,
                       help=f"LM states kept with their keys, values and scores, shared out "
                            f"among the --lm-parallel searches (default {CACHE}; fewer: less "
                            f"memory, more steps run again)")
    group.add_argument("--lm-fp16", action="store_true",
                       help="run the LM in half precision (scores differ slightly from fp32)")


def check_files(args) -> None:
    if args.lm is None or args.lexicon is None:
        raise UserError("--decoder transformer needs --lm and --lexicon (TRANSFORMER_LM= and "
                        "LEXICON=; `make lm` writes the lexicon)")
    for path, what in ((args.lm, "Transformer LM"), (lm_dictionary(args.lm), "its dict.txt"),
                       (args.lexicon, "lexicon")):
        if not path.is_file():
            raise UserError(f"{path}: {what} not found; give the fairseq LM checkpoint with "
                            "dict.txt beside it (upper-cased), as fairseq's decoder reads it")


def settings(args, checkpoint_sha256: str) -> dict:
    """Everything that decides the Transformer-LM decoding's output, before any model runs."""
    check_files(args)
    beam = BEAM if args.beam is None else args.beam
    if beam < 1:
        raise UserError(f"--beam {beam}: give a positive beam size")
    dictionary = lm_dictionary(args.lm)
    key = {**weights_key(checkpoint_sha256, args.lm, args.lexicon),
           "dictionary_sha256": file_digest(dictionary)}
    return {"beam": beam, "beam_threshold": BEAM_THRESHOLD, **weights(args, key, NAME),
            "unk_weight": "-inf", "sil_weight": SIL_WEIGHT, "lm_fp16": bool(args.lm_fp16),
            "lm": str(args.lm.resolve()), "lm_sha256": key["lm_sha256"],
            "dictionary": str(dictionary.resolve()), "dictionary_sha256": key["dictionary_sha256"],
            "lexicon": str(args.lexicon.resolve()), "lexicon_sha256": key["lexicon_sha256"]}


def search_for(args, lm: Path, lexicon: Path, fp16: bool) -> TransformerSearch:
    """The search with add_arguments' knobs, on DEVICE (default: the GPU when there is one)."""
    return TransformerSearch(lm, lexicon, symbols(args.manifests), args.lm_batch, device(args),
                             args.lm_cache, fp16, args.lm_parallel)


def prepare(args, settings: dict) -> TransformerSearch:
    """The LM, dictionary and lexicon before the model: a bad one stops first."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # fairseq's own loads
    return search_for(args, Path(settings["lm"]), Path(settings["lexicon"]),
                      settings["lm_fp16"])


def decode(search: TransformerSearch, emissions, settings: dict, args) -> list[str]:
    return search.decode(emissions, settings)


def extra(args, settings: dict) -> dict:
    from importlib.metadata import version
    return {"decoder_settings": settings, "lm_batch": args.lm_batch,
            "lm_parallel": args.lm_parallel, "lm_cache": args.lm_cache, "device": device(args),
            "versions": {"flashlight-text": version("flashlight-text")}}


def said(record: dict, settings: dict) -> str:
    return f"Transformer LM{' (fp16)' if settings.get('lm_fp16') else ''}, beam " \
           f"{settings['beam']}, lm_weight {settings['lm_weight']:.3f}, " \
           f"word_score {settings['word_score']:.3f}"
