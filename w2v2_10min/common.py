"""Helpers every stage shares: one-line user errors, atomic writes, checksums, provenance.

Nothing here runs on its own; the stage modules of this package import what they need.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SAMPLE_RATE = 16_000  # wav2vec 2.0 reads 16 kHz mono audio


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 1."""


def run_main(main) -> None:
    """Call main(); turn a UserError into one line on stderr and exit status 1, and Ctrl-C
    into one line and status 130 (outputs are written atomically: a rerun continues)."""
    try:
        sys.exit(main())
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to continue", file=sys.stderr)
        sys.exit(130)
    except OSError as err:  # a write that no stage expected to fail: a full disk
        if not out_of_space(err):
            raise
        where = f" in {Path(err.filename).parent}" if err.filename else ""
        print(f"error: no space left on device{where} (writing "
              f"{Path(err.filename).name if err.filename else 'a file'}); free space there, "
              "then run the same command to continue", file=sys.stderr)
        sys.exit(1)


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    Works for files and folders: a failure or interruption leaves `path` as it was, and no
    temporary file beside it. A write that fails for lack of space is a one-line UserError
    naming the folder (no_space).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise no_space(err, path) or err
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    except Exception as err:
        said = no_space(err, path)
        if said is None:
            raise
        raise said from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def out_of_space(err: BaseException | None) -> bool:
    """An OSError ENOSPC or EDQUOT in the error's chain (numpy's and torch's writers raise
    errors of their own whose context is that OSError)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in SPACE_ERRNOS:
            return True
        err = err.__cause__ or err.__context__
    return False


def no_space(err: BaseException, path: Path, needed: int | None = None) -> UserError | None:
    """The one-line error for writing `path` (a file or folder) on a full disk, with the space `needed` when known; None when `err` is not about space."""
    if not out_of_space(err):
        return None
    folder = Path(path).parent
    try:
        free = f", {size_text(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = ""
    need = f": {size_text(needed)} needed{free}" if needed else free
    return UserError(f"no space left on device in {folder}{need} (writing {Path(path).name}); "
                     "free space there, then run the same command to continue")


def size_text(n: int) -> str:
    """`12.3 MB` (decimal units, as df -H)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def git_commit() -> str:
    """The repository's commit, with `-dirty` when files differ from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_cores() -> int:
    """The cores this process may run on (its affinity on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (sha256, md5, ...), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict:
    """Versions of what produced a result: Python, torch, fairseq, as their installed
    distributions give them (torch.__version__ and fairseq.__version__ alike, without seconds
    of importing them in a stage that needs neither)."""
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> dict:
    # once per process: packages_distributions reads every installed distribution's records
    import platform
    from importlib.metadata import packages_distributions, version

    providers = packages_distributions()  # the package fairseq comes from ve-fairseq
    found = {name: version(providers.get(name, [name])[0]) for name in ("torch", "fairseq")}
    return {"python": platform.python_version(), **found, "torch": _torch_version(found["torch"])}


def _torch_version(distribution: str) -> str:
    """torch.__version__ read from torch/version.py without importing torch: PyPI's CUDA
    wheels carry the build (`2.13.0+cu130`) there, not in their distribution's version."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            said = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]",
                             (Path(folder) / "version.py").read_text(), re.M)
        except OSError:
            continue
        if said:
            return said.group(1)
    return distribution


def progress(desc: str, total: int | None, **options):
    """A tqdm progress bar on stderr while a user waits (downloads, decoding).

    Shown only when stderr is a terminal and cleared when done, so that logs and captured
    output keep just the stage's own lines. `options` go to tqdm (unit, initial, ...).
    """
    from tqdm import tqdm

    return tqdm(desc=desc, total=total, disable=None, leave=False, file=sys.stderr, **options)


def timestamp() -> str:
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S")


@contextlib.contextmanager
def stage(name: str, detail: str = "", log: Path | None = None):
    """Print one timestamped start line and one end line (with the duration) for a stage.

    The lines go to stderr and, when given, to the stage's log file as well (unless the disk
    it is on is full: the stage's own one-line error says so).
    """
    def say(text: str) -> None:
        line = f"[{timestamp()}] {name}: {text}"
        print(line, file=sys.stderr, flush=True)
        if log is not None:
            try:
                Path(log).parent.mkdir(parents=True, exist_ok=True)
                with open(log, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
            except OSError as err:  # a full disk: the line is on stderr, the error follows
                if not out_of_space(err):
                    raise

    say(f"start{' (' + detail + ')' if detail else ''}")
    started = time.monotonic()
    outcome = "failed"
    try:
        yield
        outcome = "done"
    finally:
        seconds = time.monotonic() - started
        say(f"{outcome} in {int(seconds // 60)}m{seconds % 60:04.1f}s")
