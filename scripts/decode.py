"""Viterbi-decode a fine-tuned wav2vec 2.0 CTC checkpoint on manifest subsets and score WER.

Usage:
  python scripts/decode.py --checkpoint CKPT --data MANIFEST_DIR --subsets dev_clean ... \
      --out OUT_DIR [--max-tokens 1600000] [--device cpu|cuda] [--meta key=value ...]

For each subset, fairseq's own task reads MANIFEST_DIR/<subset>.{tsv,ltr}; the model's
emissions are decoded by best path (argmax per frame, merge repeats, drop the blank) and the
letters turned into words as fairseq does. Writes OUT_DIR/<subset>/{hyp.wrd,ref.wrd,wer.json},
each subset in one atomic step. Every utterance of the manifest must come back decoded.
Only checkpoints this project made, or whose SHA-256 was verified, may be given here:
fairseq checkpoints are pickles.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from common import (SAMPLE_RATE, UserError, atomic_path, file_digest, git_commit, read_tsv,
                    run_main, verify_checkpoint)
from score import summarise, utterance_errors


def load(checkpoint: Path, data: Path, device: str):
    """Model (eval mode, on `device`) and task from a fine-tuned fairseq checkpoint."""
    # fairseq pickles its config into checkpoints; torch >= 2.6 refuses them by default.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    from fairseq import checkpoint_utils

    overrides = {"data": str(data), "max_sample_size": 10**9, "min_sample_size": 0}
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides=overrides)
    if getattr(cfg.task, "labels", None) != "ltr":
        raise UserError(f"{checkpoint}: not a letter-CTC fine-tuned checkpoint "
                        f"(task.labels={getattr(cfg.task, 'labels', None)})")
    model = models[0].to(device).eval()
    return model, task


def best_path(emissions, lengths, blank: int) -> list[list[int]]:
    """Argmax per frame, merge repeats, drop blanks: one token list per utterance."""
    import torch

    out = []
    for frames, length in zip(emissions.argmax(-1), lengths):
        tokens = torch.unique_consecutive(frames[:length])
        out.append(tokens[tokens != blank].tolist())
    return out


def to_words(task, tokens: list[int]) -> str:
    """Letters to words exactly as fairseq's `letter` post-processing does."""
    import torch

    letters = task.target_dictionary.string(torch.tensor(tokens, dtype=torch.long))
    return " ".join(letters.replace(" ", "").replace("|", " ").split())


def decode_subset(model, task, subset: str, device: str, max_tokens: int):
    """Hypotheses and references (word strings) in manifest order."""
    import torch

    task.load_dataset(subset)
    dataset = task.dataset(subset)
    _, rows = read_tsv(Path(task.cfg.data) / f"{subset}.tsv")
    if len(dataset) != len(rows):
        raise UserError(f"{subset}.tsv: fairseq loaded {len(dataset)} of {len(rows)} utterances "
                        "(too short or too long for the task's limits); fix the manifest")
    iterator = task.get_batch_iterator(
        dataset=dataset, max_tokens=max_tokens, max_positions=None,
        ignore_invalid_inputs=False, required_batch_size_multiple=1, num_workers=0,
    ).next_epoch_itr(shuffle=False)
    blank = task.target_dictionary.bos()
    hyps: dict[int, str] = {}
    refs: dict[int, str] = {}
    with torch.inference_mode():
        for sample in iterator:
            net_input = {k: v.to(device) if torch.is_tensor(v) else v
                         for k, v in sample["net_input"].items()}
            net_output = model(**net_input)
            emissions = model.get_logits(net_output).transpose(0, 1).float().cpu()  # B x T x V
            padding = net_output["padding_mask"]
            lengths = [emissions.size(1)] * emissions.size(0) if padding is None else \
                (~padding).sum(-1).tolist()
            for uid, tokens, target in zip(sample["id"].tolist(),
                                           best_path(emissions, lengths, blank),
                                           sample["target"]):
                hyps[uid] = to_words(task, tokens)
                target = target[target != task.target_dictionary.pad()].tolist()
                refs[uid] = to_words(task, target)
    missing = sorted(set(range(len(rows))) - set(hyps))
    if missing:
        raise UserError(f"{subset}: {len(missing)} utterances were not decoded "
                        f"(first: {rows[missing[0]][0]})")
    order = range(len(rows))
    return [hyps[i] for i in order], [refs[i] for i in order]


def versions() -> dict:
    import fairseq
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "fairseq": fairseq.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="manifest folder")
    parser.add_argument("--subsets", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=1_600_000, help="samples per batch")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--verify-sha256", action="store_true",
                        help="a downloaded checkpoint: check it against <checkpoint>.sha256 first")
    parser.add_argument("--meta", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recorded in each wer.json (model, protocol, split, seed, ...)")
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        raise UserError(f"{args.checkpoint}: checkpoint not found; run `make finetune` first")
    for subset in args.subsets:
        for ext in ("tsv", "ltr"):
            if not (args.data / f"{subset}.{ext}").is_file():
                raise UserError(f"{args.data / f'{subset}.{ext}'}: not found; "
                                "run `make manifests` first")
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    meta = dict(item.split("=", 1) for item in args.meta)
    checkpoint_sha = verify_checkpoint(args.checkpoint) if args.verify_sha256 else \
        file_digest(args.checkpoint)
    model, task = load(args.checkpoint, args.data, device)
    for subset in args.subsets:
        start = time.perf_counter()
        hyps, refs = decode_subset(model, task, subset, device, args.max_tokens)
        seconds = time.perf_counter() - start
        per_utterance = utterance_errors(refs, hyps)
        scores = summarise(per_utterance)
        _, rows = read_tsv(args.data / f"{subset}.tsv")
        audio_seconds = sum(n for _, n in rows) / SAMPLE_RATE
        record = {"subset": subset, **scores, "utterances": len(hyps),
                  "checkpoint": str(args.checkpoint.resolve()),
                  "checkpoint_sha256": checkpoint_sha, "manifest": str(args.data.resolve()),
                  "decoder": "viterbi", "device": device, "commit": git_commit(),
                  "versions": versions(), "decode_seconds": round(seconds, 3),
                  "real_time_factor": round(seconds / audio_seconds, 5),
                  "utterance_errors": [u[0] for u in per_utterance],
                  "utterance_words": [u[1] for u in per_utterance], **meta}
        with atomic_path(args.out / subset) as tmp:
            tmp.mkdir()
            (tmp / "hyp.wrd").write_text("".join(h + "\n" for h in hyps))
            (tmp / "ref.wrd").write_text("".join(r + "\n" for r in refs))
            (tmp / "wer.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        print(f"{subset}: WER {scores['wer']:.2f} ({scores['errors']}/{scores['words']}), "
              f"CER {scores['cer']:.2f}, {len(hyps)} utterances -> {args.out / subset}")
    return 0


if __name__ == "__main__":
    run_main(main)
