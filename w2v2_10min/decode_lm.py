"""The 4-gram decoder of `make decode DECODER=4gram` (scripts/decode.py --decoder 4gram).

Usage:
  python scripts/decode.py --decoder 4gram --checkpoint CKPT --data MANIFEST_DIR --run RUN \
      --subsets dev_clean ... --lm LM.arpa[.gz] --lexicon LEXICON [--beam 1500] \
      [--lm-weight W --word-score S] [--jobs N]

Emissions come from RUN/emissions/<subset>.npz; the model runs only for a subset missing there
or cached from another checkpoint or manifest. The weights are, in this order: --lm-weight and
--word-score; RUN/tune-4gram/weights.json, written by `make tune-lm` for this checkpoint, LM
and lexicon; fairseq's example weights (2, -1), with a note. Writes
RUN/decode-4gram/<subset>/{hyp.wrd,ref.wrd,wer.json}: wer.json as Viterbi decoding writes it,
plus `decoder_settings` (beam, weights and where they came from, LM and lexicon with their
SHA-256). A subset decoded before with the same checkpoint and settings is skipped.
"""
from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

from w2v2_10min import layout
from w2v2_10min.common import UserError
from w2v2_10min.formats import words_of
from w2v2_10min.lm import (BEAM_THRESHOLD, DECODE_BEAM, DEFAULT_WEIGHTS, LexiconSearch,
                           cpu_cores, emission_cache, symbols, weights_key)

DECODER = "4gram"


def add_arguments(parser) -> None:
    group = parser.add_argument_group("--decoder 4gram")
    group.add_argument("--lm", type=Path, help="n-gram LM, ARPA (gzipped or not) or KenLM binary")
    group.add_argument("--lexicon", type=Path, help="letter lexicon (`make lm` writes it)")
    group.add_argument("--beam", type=int, default=DECODE_BEAM)
    group.add_argument("--lm-weight", type=float, help="instead of the tuned one")
    group.add_argument("--word-score", type=float, help="instead of the tuned one")
    group.add_argument("--jobs", type=int, default=cpu_cores(),
                       help="processes for the search (default: all cores)")


def references(manifest: Path, subset: str) -> list[str]:
    """Reference words from the manifest's letter targets (`H I | T H E R E |`)."""
    return [words_of(line)
            for line in (manifest / f"{subset}.ltr").read_text(encoding="utf-8").splitlines()]


def cached_emissions(checkpoint: Path, checkpoint_sha256: str, manifest: Path, run: Path,
                     subsets: list[str], device: str, max_tokens: int,
                     pretrained: Path | None = None):
    """Emissions per subset, from RUN/emissions/ or, for missing ones, from the model.

    They are computed as Viterbi decoding computes them (decode.compute_emissions), so they do
    not depend on batching for group-norm models; `pretrained` as in loading.load_finetuned.
    """
    def compute(missing: list[str]):
        from w2v2_10min.decode import compute_emissions
        from w2v2_10min.loading import load_finetuned

        print(f"computing emissions of {' '.join(missing)} on {device} "
              f"(kept in {layout.emissions_dir(run)})", file=sys.stderr, flush=True)
        model, task, _ = load_finetuned(checkpoint, manifest, device, pretrained)
        return [compute_emissions(model, task, s, device, max_tokens)[0] for s in missing]

    emissions = emission_cache(layout.emissions_dir(run), checkpoint_sha256, manifest, subsets,
                               compute)
    for subset in subsets:
        lines = len(references(manifest, subset))
        if lines != len(emissions[subset]):
            raise UserError(f"{manifest / subset}.ltr: {lines} lines for "
                            f"{len(emissions[subset])} utterances; rebuild it with "
                            "`make manifests`")
    return emissions


def weights(args, key: dict) -> dict:
    """lm_weight, word_score and where they came from (see the usage)."""
    given = [args.lm_weight is not None, args.word_score is not None]
    if all(given):
        return {"lm_weight": args.lm_weight, "word_score": args.word_score,
                "weights_from": "given"}
    if any(given):
        raise UserError("give both --lm-weight and --word-score (LM_WEIGHT= and WORD_SCORE=), "
                        "or neither to use the tuned ones")
    tuned = layout.tuning_dir(args.run, DECODER) / "weights.json"
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


def settings(args, checkpoint_sha256: str) -> dict:
    """Everything that decides the 4-gram decoding's output, checked before any model runs."""
    if args.lm is None or args.lexicon is None:
        raise UserError("--decoder 4gram needs --lm and --lexicon (LM_ARPA= and LEXICON=; "
                        "`make lm` downloads them)")
    if args.beam < 1:
        raise UserError(f"--beam {args.beam}: give a positive beam size")
    for path, what in ((args.lm, "language model"), (args.lexicon, "lexicon")):
        if not path.is_file():
            raise UserError(f"{path}: {what} not found; run `make lm` (or give its path)")
    key = weights_key(checkpoint_sha256, args.lm, args.lexicon)
    return {"beam": args.beam, "beam_threshold": BEAM_THRESHOLD, **weights(args, key),
            "lm": str(args.lm.resolve()), "lm_sha256": key["lm_sha256"],
            "lexicon": str(args.lexicon.resolve()), "lexicon_sha256": key["lexicon_sha256"]}


def decode(args, todo: list[str], out: Path, device: str, checkpoint_sha: str, meta: dict,
           decoder_settings: dict) -> None:
    """Lexicon beam search with the LM on each subset in `todo`, scored into `out`."""
    from w2v2_10min.decode import result_record, write_subset

    # the LM and lexicon before the model: a bad one stops before minutes of emissions
    search = LexiconSearch(Path(decoder_settings["lm"]), Path(decoder_settings["lexicon"]),
                           symbols(args.data))
    emissions = cached_emissions(args.checkpoint, checkpoint_sha, args.data, args.run, todo,
                                 device, args.max_tokens, args.pretrained)
    for subset in todo:
        start = time.perf_counter()
        hyps = search.decode(emissions[subset], decoder_settings, args.jobs)
        seconds = time.perf_counter() - start
        refs = references(args.data, subset)
        record = result_record(args, subset, hyps, refs, seconds, checkpoint_sha, "cpu", meta)
        record["decoder_settings"] = decoder_settings
        record["search_processes"] = args.jobs
        record["versions"]["flashlight-text"] = version("flashlight-text")
        write_subset(out / subset, hyps, refs, record)
        print(f"{subset}: WER {record['wer']:.2f} ({record['errors']}/{record['words']}), "
              f"4-gram LM, beam {args.beam}, lm_weight {decoder_settings['lm_weight']:.3f}, "
              f"word_score {decoder_settings['word_score']:.3f} -> {out / subset}")
