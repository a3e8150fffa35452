"""Python imports this first in every process `make` starts (the Makefile puts the repository on
PYTHONPATH): fairseq's start-up imports that no stage uses wait until their first use
(w2v2_10min/startup.py). Then the sitecustomize this one shadows, if there is one further on
the path (a cluster's or a distribution's own set-up), runs as it would have."""
import importlib.machinery
import importlib.util
import os
import sys

from w2v2_10min import startup

startup.defer_unused_imports()


def _run_shadowed() -> None:
    """The next sitecustomize on sys.path after this folder (by its real path: the repository
    may be on the path under two names), run once."""
    here = os.path.dirname(os.path.realpath(__file__))
    rest = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_run_shadowed()
