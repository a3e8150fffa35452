"""Helpers shared by the w2v2-10min command-line tools.

Nothing here runs on its own: each script in this folder imports what it needs
(atomic writes, one-line user errors, LibriSpeech transcripts, fairseq manifests,
the paper's Table 9).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The released letter dictionary (dict.ltr.txt), symbol and count, in its order.
# fairseq adds <s> <pad> </s> <unk> in front, so models have 32 outputs; <s> is the CTC blank.
DICT_LTR = [
    ("|", 94802), ("E", 51860), ("T", 38431), ("A", 33152), ("O", 31495),
    ("N", 28855), ("I", 28794), ("H", 27187), ("S", 26071), ("R", 23546),
    ("D", 18289), ("L", 16308), ("U", 12400), ("M", 10685), ("W", 10317),
    ("C", 9844), ("F", 9062), ("G", 8924), ("Y", 8226), ("P", 6890),
    ("B", 6339), ("V", 3936), ("K", 3456), ("'", 1023), ("X", 636),
    ("J", 598), ("Q", 437), ("Z", 213),
]
LETTERS = frozenset(symbol for symbol, _ in DICT_LTR if symbol != "|")

# Appendix Table 9 of Baevski et al. (2020), 10 minutes labelled, no language model.
PAPER_NO_LM = {
    "base": {"dev_clean": 46.1, "dev_other": 51.5, "test_clean": 46.9, "test_other": 50.9},
    "large": {"dev_clean": 43.0, "dev_other": 46.3, "test_clean": 43.5, "test_other": 45.3},
    "vox": {"dev_clean": 38.3, "dev_other": 41.0, "test_clean": 40.2, "test_other": 38.7},
}
MODEL_TITLES = {"base": "BASE (LS-960)", "large": "LARGE (LS-960)",
                "vox": "LARGE (LV-60k)", "tiny": "tiny (embedded corpus)"}
EVAL_SETS = ("dev-clean", "dev-other", "test-clean", "test-other")
SAMPLE_RATE = 16_000  # wav2vec 2.0 reads 16 kHz mono audio


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit status 1."""


def run_main(main) -> None:
    """Call main(); turn a UserError into one line on stderr and exit status 1."""
    try:
        sys.exit(main())
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def subset_name(directory: str) -> str:
    """fairseq's manifest name for a LibriSpeech folder: dev-clean -> dev_clean."""
    return directory.replace("-", "_")


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; rename it onto `path` only on success.

    Works for files and folders: a failure or interruption leaves `path` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_transcripts(trans_file: Path) -> dict[str, str]:
    """Read a LibriSpeech `SPK-CHAP.trans.txt`: lines `UTTID TRANSCRIPT`."""
    out = {}
    for lineno, line in enumerate(trans_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt, _, text = line.strip().partition(" ")
        text = " ".join(text.split())
        if not text:
            raise UserError(f"{trans_file}:{lineno}: empty transcript for {utt}; "
                            "give it its words or remove the line and its audio")
        out[utt] = text
    return out


def letters(words: str) -> str:
    """fairseq's letter target: `HELLO WORLD` -> `H E L L O | W O R L D |`."""
    return " ".join(" ".join(word) + " |" for word in words.split())


def read_tsv(path: Path) -> tuple[str, list[tuple[str, int]]]:
    """Read a fairseq audio manifest: root line, then `relpath<TAB>samples` rows."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines:
        raise UserError(f"{path}: empty manifest; rebuild it with `make manifests`")
    rows = []
    for line in lines[1:]:
        rel, samples = line.split("\t")
        rows.append((rel, int(samples)))
    return lines[0], rows


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


# Released checkpoints (https://dl.fbaipublicfiles.com/fairseq/wav2vec/). fairseq publishes no
# checksums for them: None means "record the SHA-256 of the first download" (see
# scripts/fetch_checkpoint.py); put a value here to pin one.
CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/fairseq/wav2vec/"
CHECKPOINT_SHA256: dict[str, str | None] = {
    "wav2vec_small.pt": None, "libri960_big.pt": None, "wav2vec_vox_new.pt": None,
    "wav2vec_small_10m.pt": None, "wav2vec_big_10m.pt": None, "wav2vec_vox_10m_new.pt": None,
}


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (sha256, md5, ...), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_checkpoint(path: Path) -> str:
    """SHA-256 of `path` after checking it against the `<path>.sha256` recorded beside it.

    fairseq checkpoints are pickles, and unpickling runs code: nothing loads one that fails.
    """
    path = Path(path)
    record = path.with_name(path.name + ".sha256")
    if not record.is_file():
        raise UserError(f"{path}: no recorded SHA-256 ({record.name}); fetch it with "
                        "`make pretrained` / `make decode-original`, or record one you trust: "
                        f"python scripts/fetch_checkpoint.py --record {path}")
    expected = record.read_text().split()[0]
    actual = file_digest(path)
    if actual != expected:
        raise UserError(f"{path}: SHA-256 {actual} differs from the recorded {expected}; "
                        "delete the file and fetch it again")
    return actual
