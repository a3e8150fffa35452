"""Shared fixtures: the repository paths, the tiny corpus, running scripts and Make targets."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tiny" / "corpus"
PYTHON = sys.executable


def run_script(name: str, *args, check=True) -> subprocess.CompletedProcess:
    """Run scripts/<name> (or another path under the repository) as a user would."""
    script = REPO / name if "/" in name else REPO / "scripts" / name
    proc = subprocess.run([PYTHON, str(script), *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def make(*args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "--no-print-directory", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"make {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A private copy of the tiny corpus that a test may damage."""
    dest = tmp_path / "corpus"
    shutil.copytree(TINY, dest)
    return dest


@pytest.fixture(scope="session")
def tiny_env(tmp_path_factory):
    """A tiny pre-trained model and the tiny split-0 manifests, made once per test session."""
    root = tmp_path_factory.mktemp("tiny-env")
    make("pretrain-tiny", f"PRETRAINED_DIR={root / 'pretrained'}", f"DEMO_ROOT={root / 'demo'}")
    make("manifests", f"DATA={TINY}", "SPLITS=0", f"MANIFEST_ROOT={root / 'manifests'}")
    return root
