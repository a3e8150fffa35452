"""Python imports this first in every process `make` starts (the Makefile puts the repository on
PYTHONPATH): fairseq's start-up imports that no stage uses wait until their first use
(w2v2_10min/startup.py)."""
from w2v2_10min import startup

startup.defer_unused_imports()
