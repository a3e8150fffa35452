"""Decoding speed: utterances per second and real-time factor, on CPU and on a GPU if present.

Usage: python scripts/bench_decode.py --checkpoint CKPT --data MANIFEST_DIR --subset dev_other \
           [--devices cpu cuda] [--repeats 3] [--max-tokens 1600000]

Runs the project's decoder (scripts/decode.py: fairseq's task and dataset, best-path CTC) over
the whole subset REPEATS times per device after one warm-up pass, and prints the best time of
each as utterances/s and real-time factor (decoding seconds / audio seconds; lower is faster).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from common import SAMPLE_RATE, UserError, read_tsv, run_main
from decode import decode_subset, load



def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--subset", default="dev_other")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=1_600_000)
    args = parser.parse_args()
    import torch

    logging.disable(logging.INFO)  # fairseq's per-batch INFO lines
    _, rows = read_tsv(args.data / f"{args.subset}.tsv")
    audio = sum(n for _, n in rows) / SAMPLE_RATE
    print(f"{args.checkpoint.name} on {args.subset}: {len(rows)} utterances, {audio:.1f} s of "
          f"audio, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'device':<28} {'utt/s':>8} {'RTF':>9}")
    for device in args.devices:
        if device == "cuda" and not torch.cuda.is_available():
            print(f"{'cuda':<28} {'(no GPU here)':>18}")
            continue
        if device not in ("cpu", "cuda"):
            raise UserError(f"--devices {device}: give cpu or cuda")
        model, task = load(args.checkpoint, args.data, device)
        decode_subset(model, task, args.subset, device, args.max_tokens)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            decode_subset(model, task, args.subset, device, args.max_tokens)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
        print(f"{name:<28} {len(rows) / best:>8.1f} {best / audio:>9.5f}")
    return 0


if __name__ == "__main__":
    run_main(main)
