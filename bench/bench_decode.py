"""Decoding speed: utterances per second and real-time factor, on CPU and on a GPU if present.

Usage: python bench/bench_decode.py --checkpoint CKPT --manifests MANIFEST_DIR --subset dev_other \
           [--devices cpu cuda] [--repeats 3] [--max-tokens 1600000]

Runs the project's decoder (w2v2_10min/decode.py: fairseq's task and dataset, best-path CTC) over
the whole subset REPEATS times per device after one warm-up pass, and prints the best time of
each as utterances/s and real-time factor (decoding seconds / audio seconds; lower is faster).
For a group-norm model (BASE, LARGE LS-960) it times both the one-utterance batches decoding
uses (batch-independent emissions) and padded batches of --max-tokens (what it would cost to
batch them, with emissions that depend on the batch).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import SAMPLE_RATE, UserError, run_main  # noqa: E402
from w2v2_10min.formats import read_tsv  # noqa: E402
from w2v2_10min import emissions  # noqa: E402
from w2v2_10min.decoders import viterbi  # noqa: E402
from w2v2_10min.loading import batching, load_finetuned  # noqa: E402


def decode_once(model, task, subset: str, device: str, plan: dict) -> list[str]:
    """Emissions and Viterbi hypotheses for one subset, batched as `plan` says."""
    frames = emissions.compute(model, task, subset, device, plan["max_tokens"], plan=plan)
    return viterbi.words(task.target_dictionary, frames)


def plans(model, max_tokens: int) -> list[tuple[str, dict]]:
    """How `make decode` batches this model and, for a group-norm model, padded batches too."""
    ours = batching(model, max_tokens)
    if not ours["padded"]:
        padded = {**ours, "max_sentences": None, "max_tokens": max_tokens, "padded": True}
        return [("1 utt/batch", ours), ("padded (batch-dependent)", padded)]
    return [("padded", ours)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--manifests", type=Path, required=True)
    parser.add_argument("--subset", default="dev_other")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=1_600_000)
    args = parser.parse_args()
    import torch

    logging.disable(logging.INFO)  # fairseq's per-batch INFO lines
    _, rows = read_tsv(args.manifests / f"{args.subset}.tsv")
    audio = sum(n for _, n in rows) / SAMPLE_RATE
    print(f"{args.checkpoint.name} on {args.subset}: {len(rows)} utterances, {audio:.1f} s of "
          f"audio, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'device, batching':<40} {'utt/s':>8} {'RTF':>9}")
    for device in args.devices:
        if device == "cuda" and not torch.cuda.is_available():
            print(f"{'cuda':<40} {'(no GPU here)':>18}")
            continue
        if device not in ("cpu", "cuda"):
            raise UserError(f"--devices {device}: give cpu or cuda")
        model, task, _ = load_finetuned(args.checkpoint, args.manifests, device)
        for how, plan in plans(model, args.max_tokens):
            decode_once(model, task, args.subset, device, plan)  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                decode_once(model, task, args.subset, device, plan)
                if device == "cuda":
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
            print(f"{name + ', ' + how:<40} {len(rows) / best:>8.1f} {best / audio:>9.5f}")
    return 0


if __name__ == "__main__":
    run_main(main)
