"""Shared fixtures: the repository paths, the tiny corpus, running scripts and Make targets."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import slurm_cluster

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tiny" / "corpus"
PYTHON = sys.executable

# System tools a few tests need beyond Python and make: how to tell one is here, and the
# Debian/Ubuntu packages that provide it. Mark such a test @pytest.mark.needs("sox", ...).
TOOLS = {
    "espeak-ng": (lambda: shutil.which("espeak-ng") is not None, "espeak-ng"),
    "sox": (lambda: shutil.which("sox") is not None, "sox libsox-fmt-all"),
    "pocketsphinx-testdata": (
        lambda: Path("/usr/share/pocketsphinx/test/data/librivox").is_dir(),
        "pocketsphinx-testdata"),
    # slurmctld, slurmd, munged and the client commands (tests/slurm_cluster.py)
    "slurm": (slurm_cluster.available, "slurm-wlm munge"),
}


# Tests that train or decode with fairseq through these fixtures are the `chain` tier; the rest
# are unit tests, which `make test-unit` runs alone (`pytest -m "not chain"`, the developer's
# loop). `make test` runs both.
# tiny_run uses tiny_env; split0 (test_end_to_end_paths.py) fine-tunes, lm_dir
# (test_transformer_lm.py) trains the tiny Transformer LM with fairseq
CHAIN_FIXTURES = {"tiny_env", "demo", "split0", "lm_dir"}


# Under pytest-xdist (`make test`: a test file per worker at a time, in this order, as
# --no-loadscope-reorder keeps it) the files start longest first, so that the cores finish
# together: test_end_to_end.py's `make demo` alone is a third of the suite, and the SLURM
# tests, which mostly wait for their jobs, start beside it. Then, as measured in `make test`
# (2 Dec 2026: 220 s down to 28 s each); the files not named take seconds and come last.
STARTED_FIRST = {name: order for order, name in enumerate([
    "test_end_to_end.py", "test_slurm.py", "test_end_to_end_paths.py", "test_finetune.py",
    "test_transformers_trainer.py", "test_transformer_lm.py", "test_no_work_lost.py",
    "test_fast.py", "test_hf_export.py", "test_seeded_runs.py", "test_lm.py",
    "test_gpu_check.py", "test_decode_original.py", "test_loading.py", "test_identity.py",
    "test_compare.py"])}


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(*tools): system tools the test needs (see "
                            "conftest.TOOLS): skipped without them, failed under CI=true")
    config.addinivalue_line("markers", "chain: trains or decodes with fairseq (minutes); "
                            "given to every test using a fixture in conftest.CHAIN_FIXTURES")


def missing_tools(item) -> str | None:
    """`needs espeak-ng, sox; install: apt-get install ...` for a test whose tools are missing."""
    missing = [tool for marker in item.iter_markers("needs") for tool in marker.args
               if not TOOLS[tool][0]()]
    if not missing:
        return None
    packages = " ".join(TOOLS[tool][1] for tool in missing)
    return f"needs {', '.join(missing)}; install: apt-get install {packages}"


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def pytest_collection_modifyitems(config, items):
    """Mark the chain tier; skip a test whose system tools are missing, with one line saying
    how to install them. The longest files go first (STARTED_FIRST)."""
    items[:] = sorted(items, key=lambda item: STARTED_FIRST.get(item.path.name, 99))
    for item in items:
        if CHAIN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.chain)
    if not under_ci():
        for item in items:
            reason = missing_tools(item)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item):
    """Under CI (CI=true) a missing tool fails the test, so it cannot silently stop running."""
    reason = missing_tools(item) if under_ci() else None
    if reason:
        pytest.fail(f"{reason} (CI=true: a missing tool fails the test)", pytrace=False)


def run_script(name: str, *args, check=True) -> subprocess.CompletedProcess:
    """Run scripts/<name> (or another path under the repository) as a user would."""
    script = REPO / name if "/" in name else REPO / "scripts" / name
    proc = subprocess.run([PYTHON, str(script), *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def one_error(proc) -> str:
    """The one `error: ` line of a failed command (status 1, no traceback)."""
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def on_terminal(*command, env=None) -> tuple[int, str]:
    """Run a command with stdout and stderr on a pseudo-terminal (as a user sees it): its exit
    status and everything it wrote, carriage returns included."""
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    # a new pseudo-terminal is 0 columns wide: give it the size of a small terminal window
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([str(c) for c in command], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=secondary, stderr=secondary, env={**os.environ, **(env or {})})
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 1 << 16)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def make(*args, check=True, env=None) -> subprocess.CompletedProcess:
    """`make ARGS` in the repository. wandb is off (WANDB_PROJECT=) unless a test names a
    project: its start costs each fine-tuning seconds, and the tests of wandb name one."""
    if not any(str(arg).startswith("WANDB_PROJECT=") for arg in args):
        args = (*args, "WANDB_PROJECT=")
    proc = subprocess.run(["make", "--no-print-directory", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"make {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A private copy of the tiny corpus that a test may damage."""
    dest = tmp_path / "corpus"
    shutil.copytree(TINY, dest)
    return dest


# Utterances per speaker that the chain tests' smaller corpus keeps (`small_corpus`): a tiny
# split of 8 and evaluation sets of 4, so that a fine-tuning update costs a test a few
# hundredths of a second. Learning itself is tested on the whole corpus (test_end_to_end).
SMALL_CORPUS_KEEPS = {"librispeech_finetuning": 1, "LibriSpeech": 2}


def small_corpus(dest: Path) -> Path:
    """The tiny corpus with fewer utterances per speaker (SMALL_CORPUS_KEEPS; the real LibriVox
    clips all kept), in its layout, at dest; made once, then reused."""
    texts = b"".join(t.read_bytes() for t in sorted(TINY.rglob("*.trans.txt")))
    made_from = hashlib.sha256(texts).hexdigest()
    stamp = dest / ".made-from"  # the transcripts it was cut from: a new corpus remakes it
    if stamp.is_file() and stamp.read_text() == made_from:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(TINY, dest)
    for part, keep in SMALL_CORPUS_KEEPS.items():
        for trans in sorted((dest / part).rglob("*.trans.txt")):
            if "librivox-real" in trans.parts:
                continue
            lines = trans.read_text().splitlines(keepends=True)
            trans.write_text("".join(lines[:keep]))
            for line in lines[keep:]:
                (trans.parent / f"{line.split()[0]}.flac").unlink()
    stamp.write_text(made_from)
    return dest


@pytest.fixture(scope="session")
def tiny_env(tmp_path_factory):
    """The tiny pre-trained model, the smaller corpus (small_corpus) and its split-0
    manifests, made once per test session, or kept in W2V2_TINY_ENV (a folder) across sessions
    for a developer's loop: `make` remakes them there only when their sources changed."""
    root = Path(os.environ["W2V2_TINY_ENV"]) if os.environ.get("W2V2_TINY_ENV") else \
        tmp_path_factory.mktemp("tiny-env")
    make("pretrain-tiny", f"PRETRAINED_DIR={root / 'pretrained'}", f"DEMO_ROOT={root / 'demo'}")
    corpus = small_corpus(root / "corpus")
    make("manifests", f"DATA={corpus}", "SPLITS=0", f"MANIFEST_ROOT={root / 'manifests'}")
    return root


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A live single-node SLURM cluster (tests/slurm_cluster.py) for the session; SLURM_CONF
    points every sbatch, squeue and scontrol of the tests at it. Stopped at the end."""
    cluster = slurm_cluster.SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        cluster.stop()
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before


@pytest.fixture(scope="session")
def tiny_run(tiny_env, tmp_path_factory):
    """The run folder of the tiny model fine-tuned for 20 updates on tiny split 0, made once per
    test session for the tests that need any fine-tuned checkpoint."""
    root = tmp_path_factory.mktemp("tiny-run")
    make("finetune", "MODEL=tiny", "PROTOCOL=tiny", f"PRETRAINED_DIR={tiny_env / 'pretrained'}",
         f"MANIFEST_ROOT={tiny_env / 'manifests'}", f"RUN_ROOT={root}",
         "ARGS=optimization.max_update=20")
    return root / "tiny-tiny/10min-0/seed-1"


# fairseq's line for each update it trains (common.log_interval apart): its loss, its update
TRAIN_INNER = re.compile(r"\[train_inner\].*?loss=([\d.]+).*?num_updates=(\d+)")


def logged_losses(log: str) -> list[tuple[int, float]]:
    """(update, loss) of each update a fairseq training log holds, in the log's order."""
    return [(int(u), float(loss)) for loss, u in TRAIN_INNER.findall(log)]


def squeeze(text: str) -> str:
    """Markdown tables without their column padding (tabulate pads each column to its widest
    cell): `| a | b |` however wide the columns, so a test can look for a row's cells."""
    return "\n".join(re.sub(r" *\| *", " | ", line).strip() if line.startswith("|") else line
                     for line in text.split("\n"))
