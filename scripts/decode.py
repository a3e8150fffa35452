"""Decode a fine-tuned checkpoint with DECODER (a module of w2v2_10min/decoders/) and score WER
(`make decode`).

Usage: python scripts/decode.py --help   (the logic and its full usage: w2v2_10min/decode.py)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import run_main  # noqa: E402
from w2v2_10min.decode import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
