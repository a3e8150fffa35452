"""Fine-tune a pre-trained wav2vec 2.0 on one split with fairseq-hydra-train (`make finetune`).

Usage: python scripts/finetune.py --help   (the logic and its full usage: w2v2_10min/finetune.py)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import run_main  # noqa: E402
from w2v2_10min.finetune import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
