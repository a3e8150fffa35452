"""Export a fine-tuned fairseq checkpoint as a verified transformers Wav2Vec2ForCTC + processor.

Usage: python scripts/hf_export.py --help   (the logic and its full usage: w2v2_10min/hf_export/__init__.py)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import run_main  # noqa: E402
from w2v2_10min.hf_export import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
