"""Does MODEL's recipe run and fit on this machine's GPU, and what will a run cost (`make gpu-check`)?

Usage: python scripts/gpu_check.py --model tiny|base|large|vox [--device cuda|cpu]
           [--price 2.00] [--updates 4] [--seconds 600] [--work .bench/gpu-check]
(what it runs and prints: w2v2_10min/gpu_check.py)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import run_main  # noqa: E402
from w2v2_10min.gpu_check import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
