"""Fetch and prepare the word Transformer LM of DECODER=transformer (`make lm LM=transformer`).

Usage: python scripts/transformer_lm.py --help   (the logic and its full usage: w2v2_10min/transformer_lm.py)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import run_main  # noqa: E402
from w2v2_10min.transformer_lm import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
