"""The word Transformer LM decoder of `make decode DECODER=transformer` and `make tune-lm
DECODER=transformer`: the paper's "Transformer" rows, fairseq's `W2lFairseqLMDecoder` search with
the LM's key/value cache kept (the search: w2v2_10min.transformer_search).

Usage:
  python scripts/decode.py --decoder transformer --run RUN --manifests MANIFEST_DIR \
      --subsets dev_other ... --lm LM.pt --lexicon LEXICON [--beam 500] \
      [--lm-weight W --word-score S] [--lm-parallel N] [--lm-batch N] [--lm-cache N] [--lm-fp16]
  python scripts/tune_lm.py --decoder transformer --run RUN ... --lm LM.pt --lexicon LEXICON

The LM is a fairseq `language_modeling` checkpoint with its vocabulary as dict.txt beside it
(`make lm LM=transformer`). The LM-search options (--lm, --lexicon, --beam, the weights) are
w2v2_10min.lm's, shared with the 4-gram decoder, and so is where the weights come from
(w2v2_10min.lm.weights), here RUN/tune-transformer/weights.json; the --lm-* knobs are this
decoder's own. The paper (section 4.4) tuned the weights at beam 50 and decoded at 500.
"""
from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

from w2v2_10min import layout
from w2v2_10min.common import UserError, file_digest
from w2v2_10min.lm import (BEAM_THRESHOLD, SEARCH_SPACE, beam, search_arguments, symbols,
                           weights, weights_key)
from w2v2_10min.stage import device
from w2v2_10min.transformer_search import (BATCH, CACHE, PARALLEL, SIL_WEIGHT, TransformerSearch,
                                           lm_dictionary)

NAME = "transformer"
CACHED = True
NEEDS = ()
FILES = {"lm": "TRANSFORMER_LM", "lexicon": "TRANSFORMER_LEXICON"}
# The paper (section 4.4): Transformer-LM weights tuned at beam 50, test sets decoded at 500;
# SEARCH_SPACE, imported from w2v2_10min.lm: it has weights for `make tune-lm`
BEAM, TUNE_BEAM = 500, 50


def arguments(group, tuning: bool, users) -> None:
    """utterances at once, the LM's batch, cache and precision"""
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


ARGUMENTS = (search_arguments, arguments)


def check_files(args) -> None:
    if args.lm is None or args.lexicon is None:
        raise UserError("--decoder transformer needs --lm and --lexicon (TRANSFORMER_LM= and "
                        "TRANSFORMER_LEXICON=; `make lm LM=transformer` writes them)")
    for path, what in ((args.lm, "Transformer LM"), (lm_dictionary(args.lm), "its dict.txt"),
                       (args.lexicon, "lexicon")):
        if not path.is_file():
            raise UserError(f"{path}: {what} not found; give the fairseq LM checkpoint with "
                            "dict.txt beside it (upper-cased), as fairseq's decoder reads it")


def files_key(args, checkpoint_sha256: str) -> dict:
    """The checkpoint, LM, lexicon and the LM's dict.txt: what decoding checks tuned weights
    against."""
    check_files(args)
    return {**weights_key(checkpoint_sha256, args.lm, args.lexicon),
            "dictionary_sha256": file_digest(lm_dictionary(args.lm))}


def tuning_key(args, checkpoint_sha256: str) -> dict:
    """What weights tuned for this decoder hold for: files_key and the LM's precision."""
    return {**files_key(args, checkpoint_sha256), "lm_fp16": args.lm_fp16}


def settings(args, run: Path, checkpoint_sha256: str) -> dict:
    """Everything that decides the Transformer-LM decoding's output, before any model runs."""
    check_files(args)
    size = beam(args, BEAM)
    dictionary = lm_dictionary(args.lm)
    key = files_key(args, checkpoint_sha256)
    return {"beam": size, "beam_threshold": BEAM_THRESHOLD,
            **weights(args, key, layout.tuning_dir(run, NAME) / "weights.json"),
            "unk_weight": "-inf", "sil_weight": SIL_WEIGHT, "lm_fp16": bool(args.lm_fp16),
            "lm": str(args.lm.resolve()), "lm_sha256": key["lm_sha256"],
            "dictionary": str(dictionary.resolve()), "dictionary_sha256": key["dictionary_sha256"],
            "lexicon": str(args.lexicon.resolve()), "lexicon_sha256": key["lexicon_sha256"]}


def search_for(args, lm: Path, lexicon: Path, fp16: bool) -> TransformerSearch:
    """The search with the --lm-* knobs, on DEVICE (default: the GPU when there is one)."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # fairseq's own loads
    return TransformerSearch(lm, lexicon, symbols(args.manifests), args.lm_batch, device(args),
                             args.lm_cache, fp16, args.lm_parallel)


def prepare(args, settings: dict) -> TransformerSearch:
    """The LM, dictionary and lexicon before the model: a bad one stops first."""
    return search_for(args, Path(settings["lm"]), Path(settings["lexicon"]),
                      settings["lm_fp16"])


def decode(search: TransformerSearch, emissions, settings: dict, args) -> list[str]:
    return search.decode(emissions, settings)


def searcher(args):
    """decode(utterances, settings) -> words over --lm and --lexicon, for `make tune-lm`."""
    return search_for(args, args.lm, args.lexicon, args.lm_fp16).decode


def hypotheses(args):
    """decode(utterances, settings) -> each utterance's final beam, for TUNE=rescore."""
    return search_for(args, args.lm, args.lexicon, args.lm_fp16).hypotheses


def extra(args, settings: dict) -> dict:
    return {"decoder_settings": settings, "lm_batch": args.lm_batch,
            "lm_parallel": args.lm_parallel, "lm_cache": args.lm_cache, "device": device(args),
            "versions": {"flashlight-text": version("flashlight-text")}}


def said(record: dict, settings: dict) -> str:
    return f"Transformer LM{' (fp16)' if settings.get('lm_fp16') else ''}, beam " \
           f"{settings['beam']}, lm_weight {settings['lm_weight']:.3f}, " \
           f"word_score {settings['word_score']:.3f}"
