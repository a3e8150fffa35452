"""The `make decode` stage: decode a fine-tuned wav2vec 2.0 CTC checkpoint and score WER.

Usage:
  python scripts/decode.py --checkpoint CKPT --data MANIFEST_DIR --run RUN \
      --subsets dev_clean dev_other ... [--decoder viterbi] [--max-tokens 1600000] \
      [--device cpu|cuda] [--verify-sha256] [--pretrained CKPT] [--meta key=value ...]

The checkpoint may be in any layout fairseq released (w2v2_10min.loading, docs/checkpoints.md).
For each subset, fairseq's own task reads MANIFEST_DIR/<subset>.{tsv,ltr} and the model's
emissions are computed (`compute_emissions`); a decoder turns them into letters, and letters
into words as fairseq does. The Viterbi decoder (no LM) takes the best path: argmax per frame,
merge repeats, drop the blank. Outputs go to the run's folder for that decoder
(w2v2_10min.layout.decode_dir): RUN/decode/<subset>/ for Viterbi, RUN/decode-<decoder>/<subset>/
for any other, each holding hyp.wrd, ref.wrd and wer.json, written in one atomic step.
A subset whose wer.json is newer than the checkpoint and was made by the same decoder is
skipped. Every utterance of the manifest must come back decoded. fairseq's log goes to
RUN/logs/decode-<time>.log. Only checkpoints this project made, or whose SHA-256 was
verified (--verify-sha256), may be given here: fairseq checkpoints are pickles.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import datetime
from pathlib import Path

from w2v2_10min import decode_lm, layout
from w2v2_10min.checkpoints import checkpoint_sha256
from w2v2_10min.common import (SAMPLE_RATE, UserError, atomic_path, git_commit,
                               progress, stage, versions)
from w2v2_10min.formats import read_tsv, words_of
from w2v2_10min.knobs import check
from w2v2_10min.loading import batching, load_finetuned
from w2v2_10min.scoring import summarise, utterance_errors

DECODERS = (layout.VITERBI, decode_lm.DECODER)


def compute_emissions(model, task, subset: str, device: str, max_tokens: int, *, plan=None):
    """The model's emissions for every utterance of a subset, in manifest order.

    A model whose feature encoder uses group norm (BASE, LARGE LS-960) sees one utterance per
    batch, so its emissions do not depend on `max_tokens` or on its neighbours in a batch
    (loading.batching); other models are batched up to `max_tokens` samples. `plan` replaces
    that choice (bench/bench_decode.py measures padded batches with it).

    Returns (emissions, references): one float32 array (frames x vocabulary) per utterance,
    and the reference words of each utterance.
    """
    import torch

    task.load_dataset(subset)
    dataset = task.dataset(subset)
    _, rows = read_tsv(Path(task.cfg.data) / f"{subset}.tsv")
    if len(dataset) != len(rows):
        raise UserError(f"{subset}.tsv: fairseq loaded {len(dataset)} of {len(rows)} utterances "
                        "(too short or too long for the task's limits); fix the manifest")
    plan = plan or batching(model, max_tokens)  # group norm: one utterance per batch, unpadded
    iterator = task.get_batch_iterator(
        dataset=dataset, max_tokens=plan["max_tokens"], max_sentences=plan["max_sentences"],
        max_positions=None,
        ignore_invalid_inputs=False, required_batch_size_multiple=1, num_workers=0,
    ).next_epoch_itr(shuffle=False)
    emissions: dict[int, object] = {}
    refs: dict[int, str] = {}
    with torch.inference_mode(), progress(f"decoding {subset}", len(rows), unit="utt") as bar:
        for sample in iterator:
            net_input = {k: v.to(device) if torch.is_tensor(v) else v
                         for k, v in sample["net_input"].items()}
            net_output = model(**net_input)
            batch = model.get_logits(net_output).transpose(0, 1).float().cpu()  # B x T x V
            padding = net_output["padding_mask"]
            lengths = [batch.size(1)] * batch.size(0) if padding is None else \
                (~padding).sum(-1).tolist()
            for uid, frames, length, target in zip(sample["id"].tolist(), batch, lengths,
                                                   sample["target"]):
                emissions[uid] = frames[:length].numpy()
                target = target[target != task.target_dictionary.pad()].tolist()
                refs[uid] = to_words(task, target)
            bar.update(len(sample["id"]))
    missing = sorted(set(range(len(rows))) - set(emissions))
    if missing:
        raise UserError(f"{subset}: {len(missing)} utterances were not decoded "
                        f"(first: {rows[missing[0]][0]})")
    order = range(len(rows))
    return [emissions[i] for i in order], [refs[i] for i in order]


def best_path(emissions, lengths, blank: int) -> list[list[int]]:
    """Argmax per frame, merge repeats, drop blanks: one token list per utterance."""
    import torch

    out = []
    for frames, length in zip(emissions.argmax(-1), lengths):
        tokens = torch.unique_consecutive(frames[:length])
        out.append(tokens[tokens != blank].tolist())
    return out


def viterbi(task, emissions) -> list[str]:
    """Best-path hypotheses (words) for per-utterance emissions."""
    import torch

    blank = task.target_dictionary.bos()
    return [to_words(task, best_path(torch.from_numpy(e)[None], [len(e)], blank)[0])
            for e in emissions]


def to_words(task, tokens: list[int]) -> str:
    """Letters to words exactly as fairseq's `letter` post-processing does."""
    import torch

    letters = task.target_dictionary.string(torch.tensor(tokens, dtype=torch.long))
    return words_of(letters)


def up_to_date(folder: Path, checkpoint: Path, decoder: str,
               settings: dict | None = None) -> bool:
    """A decoded subset newer than the checkpoint, made by the same decoder and settings."""
    record = folder / "wer.json"
    if not record.is_file() or record.stat().st_mtime_ns < checkpoint.stat().st_mtime_ns:
        return False
    try:
        record = json.loads(record.read_text())
    except ValueError:
        return False
    if decoder == layout.VITERBI and "batching" not in record:
        return False  # decoded before decoding was made independent of batching: redo it
    return record.get("decoder") == decoder and record.get("decoder_settings") == settings


def write_subset(folder: Path, hyps: list[str], refs: list[str], record: dict) -> None:
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "hyp.wrd").write_text("".join(h + "\n" for h in hyps))
        (tmp / "ref.wrd").write_text("".join(r + "\n" for r in refs))
        (tmp / "wer.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def log_to(path: Path) -> None:
    """Send fairseq's and Python's log lines and warnings to `path` instead of the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)


def result_record(args, subset: str, hyps: list[str], refs: list[str], seconds: float,
                  checkpoint_sha: str, device: str, meta: dict) -> dict:
    """wer.json of one decoded subset: scores, per-utterance errors, provenance."""
    per_utterance = utterance_errors(refs, hyps)
    _, rows = read_tsv(args.data / f"{subset}.tsv")
    audio_seconds = sum(n for _, n in rows) / SAMPLE_RATE
    return {"subset": subset, **summarise(per_utterance), "utterances": len(hyps),
            "checkpoint": str(args.checkpoint.resolve()),
            "checkpoint_sha256": checkpoint_sha, "manifest": str(args.data.resolve()),
            "decoder": args.decoder, "device": device, "commit": git_commit(),
            "versions": versions(), "decode_seconds": round(seconds, 3),
            "real_time_factor": round(seconds / audio_seconds, 5),
            "utterance_errors": [u[0] for u in per_utterance],
            "utterance_words": [u[1] for u in per_utterance], **meta}


def decode(args, todo: list[str], out: Path, device: str, checkpoint_sha: str,
           meta: dict) -> None:
    """Decode and score each subset in `todo` into `out`."""
    model, task, _ = load_finetuned(args.checkpoint, args.data, device, args.pretrained)
    plan = batching(model, args.max_tokens)
    for subset in todo:
        start = time.perf_counter()
        emissions, refs = compute_emissions(model, task, subset, device, args.max_tokens,
                                            plan=plan)
        hyps = viterbi(task, emissions)
        seconds = time.perf_counter() - start
        scores = result_record(args, subset, hyps, refs, seconds, checkpoint_sha, device,
                               {**meta, "batching": plan})
        write_subset(out / subset, hyps, refs, scores)
        print(f"{subset}: WER {scores['wer']:.2f} ({scores['errors']}/{scores['words']}), "
              f"CER {scores['cer']:.2f}, {len(hyps)} utterances -> {out / subset}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="manifest folder")
    parser.add_argument("--subsets", nargs="+", required=True)
    parser.add_argument("--run", type=Path, required=True,
                        help="the run folder; outputs go to its decode folder")
    parser.add_argument("--decoder", default=layout.VITERBI,
                        type=lambda v: check("DECODER", v, " or ".join(DECODERS), v in DECODERS))
    parser.add_argument("--max-tokens", type=int, default=1_600_000, help="samples per batch")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--pretrained", type=Path,
                        help="the pre-trained checkpoint, read (SHA-256 verified) only for a "
                        "fine-tuned file that does not embed its pre-training settings")
    parser.add_argument("--verify-sha256", action="store_true",
                        help="a downloaded checkpoint: check it against <checkpoint>.sha256 first")
    parser.add_argument("--meta", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recorded in each wer.json (model, protocol, split, seed, ...)")
    decode_lm.add_arguments(parser)
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        raise UserError(f"{args.checkpoint}: checkpoint not found; run `make finetune` first")
    for subset in args.subsets:
        for ext in ("tsv", "ltr"):
            if not (args.data / f"{subset}.{ext}").is_file():
                raise UserError(f"{args.data / f'{subset}.{ext}'}: not found; "
                                "run `make manifests` first")
    out = layout.decode_dir(args.run, args.decoder)
    # before anything is unpickled or written; Viterbi decoding that is up to date needs none
    checkpoint_sha, settings = None, None
    if args.decoder == decode_lm.DECODER:  # tuned weights are matched to the checkpoint
        checkpoint_sha = checkpoint_sha256(args.checkpoint, args.verify_sha256)
        settings = decode_lm.settings(args, checkpoint_sha)
    todo = [s for s in args.subsets
            if not up_to_date(out / s, args.checkpoint, args.decoder, settings)]
    if not todo:
        print(f"{out} is up to date")
        return 0
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    meta = dict(item.split("=", 1) for item in args.meta)
    checkpoint_sha = checkpoint_sha or checkpoint_sha256(args.checkpoint, args.verify_sha256)
    log = args.run / "logs" / f"decode-{datetime.now():%Y%m%d-%H%M%S}.log"
    log_to(log)
    with stage(f"decode ({args.decoder})", f"{args.checkpoint} -> {out}", log):
        try:
            if settings is None:
                decode(args, todo, out, device, checkpoint_sha, meta)
            else:
                decode_lm.decode(args, todo, out, device, checkpoint_sha, meta, settings)
        except UserError:
            raise
        except Exception as err:  # fairseq's own failures: the details are in the log
            logging.exception("decoding failed")
            raise UserError(f"decoding failed ({type(err).__name__}: {err}); full log: {log}") \
                from None
    return 0
