"""Faster start-up of every process that imports fairseq: the imports fairseq makes when it
starts, for parts of it that no stage of this project runs, wait until their first use.

fairseq imports all its tasks, criterions and loggers at start-up. Two of them import
scikit-learn and SciPy's statistics (with pandas) only to score audio classification and
sentence prediction, and its progress bars import wandb, which only fine-tuning with a wandb
project uses: 3 s of a 6.7 s start-up on a 2-core machine. While those three fairseq modules
run, each name they take is bound to a stand-in that imports the real package on first use;
once they have run, the stand-ins leave `sys.modules`, so every other import gets the real
package. What
fairseq registers and does is unchanged; a package that is not installed is left to fairseq's
own handling. Installed by sitecustomize.py at the repository's root, which Python imports
first in every process `make` starts (the Makefile puts the repository on PYTHONPATH);
bench/bench_startup.py measures it.

Usage: from w2v2_10min import startup; startup.defer_unused_imports()  (before fairseq)
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

# fairseq module -> {module it imports when it runs: the functions it takes from it by name}
UNUSED = {
    "fairseq.tasks.audio_classification": {"sklearn.metrics": ()},  # from sklearn import metrics
    "fairseq.criterions.sentence_prediction": {
        "sklearn.metrics": ("f1_score", "matthews_corrcoef"),
        "scipy.stats": ("pearsonr", "spearmanr")},
    "fairseq.logging.progress_bar": {"wandb": ()},
}


def real(module: str):
    """The real module, imported now if need be (stand-ins of it or of the packages above it
    still in sys.modules make way)."""
    parts = module.split(".")
    for name in (".".join(parts[:level]) for level in range(1, len(parts) + 1)):
        if isinstance(sys.modules.get(name), Deferred):
            del sys.modules[name]
    return importlib.import_module(module)


class Deferred(types.ModuleType):
    """A module's stand-in: any attribute it lacks comes from the real module, imported then."""

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):  # the import system probing: not a use
            raise AttributeError(attribute)
        return getattr(real(self.__name__), attribute)


def deferred_function(module: str, name: str):
    """`module.name`, imported on the first call."""
    def call(*args, **kwargs):
        return getattr(real(module), name)(*args, **kwargs)
    call.__name__ = call.__qualname__ = name
    return call


def stand_ins(imports: dict) -> dict[str, Deferred]:
    """Stand-ins for the modules of `imports` (and the packages above them) whose package is
    installed and not yet imported: sklearn and sklearn.metrics, sklearn's `metrics` being the
    latter, with the functions named as deferred functions."""
    made: dict[str, Deferred] = {}
    for module, functions in imports.items():
        top = module.partition(".")[0]
        if top in sys.modules or importlib.util.find_spec(top) is None:
            continue
        parts = module.split(".")
        for level in range(1, len(parts) + 1):
            name = ".".join(parts[:level])
            made.setdefault(name, Deferred(name))
            if level > 1:
                setattr(made[".".join(parts[:level - 1])], parts[level - 1], made[name])
        for function in functions:
            setattr(made[module], function, deferred_function(module, function))
    return made


class DeferringLoader(importlib.abc.Loader):
    """Runs a fairseq module with stand-ins in `sys.modules` for the packages it imports."""

    def __init__(self, loader, imports: dict):
        self.loader, self.imports = loader, imports

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        made = stand_ins(self.imports)
        sys.modules.update(made)
        try:
            self.loader.exec_module(module)
        finally:
            for name, stand_in in made.items():
                if sys.modules.get(name) is stand_in:
                    del sys.modules[name]


class DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of UNUSED as Python would, to be run by a DeferringLoader."""

    def find_spec(self, name, path, target=None):
        if name not in UNUSED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = DeferringLoader(spec.loader, UNUSED[name])
        return spec


def defer_unused_imports() -> None:
    """Install the finder (once; a no-op after fairseq has been imported)."""
    if not any(isinstance(finder, DeferringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, DeferringFinder())
