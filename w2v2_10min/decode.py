"""The `make decode` stage: decode a run's checkpoint on manifest subsets with one decoder, score
WER, and record each subset with the run's identity.

Usage:
  python scripts/decode.py --run RUN --manifests MANIFEST_DIR --subsets dev_clean dev_other ... \
      [--decoder NAME] [--checkpoint CKPT] [--max-tokens 1600000] \
      [--device cpu|cuda] [--verify-sha256] [--pretrained CKPT] [decoder options] \
      [--files KNOB=PATH ...]
  python scripts/decode.py --run-root runs --model base --protocol fairseq --split 0 --seed 1 ...
  python scripts/decode.py --released base --checkpoint released/wav2vec_small_10m.pt ...

The run is named as in w2v2_10min.stage (its folder or its knobs); its identity comes from
RUN/run.json and goes into every wer.json. The checkpoint (RUN/checkpoints/checkpoint_best.pt
unless given) may be in any layout fairseq released (w2v2_10min.loading). The model's emissions
(w2v2_10min.emissions) go to the decoder (a module of w2v2_10min.decoders, which says what it
defines: its options, files and settings), which returns words; outputs go to
RUN/decode/<subset>/ for Viterbi, RUN/decode-<decoder>/<subset>/ for the rest (hyp.wrd, ref.wrd,
wer.json: w2v2_10min.records), each written in one atomic step. A
subset whose wer.json is newer than the checkpoint and was made by the same decoder, settings
and run is skipped. fairseq's log goes to RUN/logs/decode-<time>.log. Only checkpoints this
project made, or whose SHA-256 was verified (--verify-sha256), may be given here: fairseq
checkpoints are pickles.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from w2v2_10min import decoders, emissions, layout, records, stage
from w2v2_10min.checkpoints import checkpoint_sha256, pretrained_file
from w2v2_10min.common import UserError


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stage.add_run_arguments(parser)
    parser.add_argument("--subsets", nargs="+", required=True)
    parser.add_argument("--decoder", default=decoders.default("decode").NAME, type=decoders.knob,
                        help=f"one of {', '.join(decoders.DECODERS)}")
    parser.add_argument("--max-tokens", type=int, default=1_600_000, help="samples per batch")
    parser.add_argument("--pretrained", type=Path,
                        help="the pre-trained checkpoint, read (SHA-256 verified) only for a "
                        "fine-tuned file that does not embed its pre-training settings")
    parser.add_argument("--pretrained-dir", type=Path,
                        help="with --released MODEL: MODEL's pre-trained file there, if it is "
                        "there, is --pretrained")
    decoders.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.pretrained is None and args.pretrained_dir and args.released:
        here = args.pretrained_dir / pretrained_file(args.released)
        args.pretrained = here if here.is_file() else None
    return args


def subset_emissions(args, run: stage.Run, decoder, todo: list[str], device: str, sha: str):
    """(subset, emissions, seconds spent on them, what the record adds) for each subset."""
    if decoder.CACHED:
        cached = emissions.cached(run.folder, run.checkpoint, sha, args.manifests, todo, device,
                                  args.max_tokens, args.pretrained)
        for subset in todo:
            yield subset, cached[subset], 0.0, {}
        return
    from w2v2_10min.loading import batching, load_finetuned

    model, task, _ = load_finetuned(run.checkpoint, args.manifests, device, args.pretrained)
    plan = batching(model, args.max_tokens)
    for subset in todo:
        start = time.perf_counter()
        frames = emissions.compute(model, task, subset, device, args.max_tokens, plan=plan)
        seconds = time.perf_counter() - start
        emissions.keep(run.folder, sha, args.manifests, subset, frames)
        yield subset, frames, seconds, {"batching": plan}


def decode(args, run: stage.Run, decoder, todo: list[str], settings, sha: str) -> None:
    """Decode and score each subset in `todo` into the run's folder for the decoder."""
    out = layout.decode_dir(run.folder, decoder.NAME)
    prepared = decoder.prepare(args, settings)
    device = stage.device(args)
    for subset, frames, seconds, added in subset_emissions(args, run, decoder, todo, device, sha):
        refs = emissions.references(args.manifests, subset)
        if len(refs) != len(frames):
            raise UserError(f"{args.manifests / subset}.ltr: {len(refs)} lines for "
                            f"{len(frames)} utterances; rebuild it with `make manifests`")
        start = time.perf_counter()
        hyps = decoder.decode(prepared, frames, settings, args)
        seconds += time.perf_counter() - start
        record = records.result(subset, hyps, refs, seconds, args.manifests, run.checkpoint, sha,
                                decoder.NAME, device, run.identity,
                                {**added, **decoder.extra(args, settings)})
        records.write_subset(out / subset, hyps, refs, record)
        print(f"{subset}: WER {record['wer']:.2f} ({record['errors']}/{record['words']}), "
              f"{decoder.said(record, settings)} -> {out / subset}")


def main(argv=None) -> int:
    args = parse(argv)
    run = stage.resolve_run(args)
    stage.check_manifests(args.manifests, args.subsets)
    decoder = decoders.chosen(args)
    # before anything is unpickled or written; Viterbi decoding that is up to date needs none
    sha = checkpoint_sha256(run.checkpoint, args.verify_sha256) if decoder.CACHED else None
    settings = decoder.settings(args, run.folder, sha)
    out = layout.decode_dir(run.folder, decoder.NAME)
    todo = [s for s in args.subsets if not records.up_to_date(
        out / s, run.checkpoint, decoder.NAME, settings, run.identity, decoder.NEEDS)]
    if not todo:
        print(f"{out} is up to date")
        return 0
    if run.identity is None:
        print(f"note: {run.folder / 'run.json'} not found: these records carry no run identity, "
              "and `make compare` will not count them", file=sys.stderr)
    sha = sha or checkpoint_sha256(run.checkpoint, args.verify_sha256)
    with stage.fairseq_stage(f"decode ({decoder.NAME})", f"{run.checkpoint} -> {out}",
                             run.folder, "decode"):
        decode(args, run, decoder, todo, settings, sha)
    return 0
