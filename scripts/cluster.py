"""Queue one SLURM job per run of a sweep (`make sweep LAUNCHER=slurm`).

Usage: python scripts/cluster.py --help   (the logic and its full usage: w2v2_10min/cluster.py)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import run_main  # noqa: E402
from w2v2_10min.cluster import main  # noqa: E402

if __name__ == "__main__":
    run_main(main)
