"""Download a released wav2vec 2.0 checkpoint and record or verify its SHA-256.

Usage:
  python scripts/checkpoints.py --pretrained MODEL [--dest DIR] [--base-url URL]  # make pretrained
  python scripts/checkpoints.py --released MODEL [--dest DIR]      # make decode-original etc.
  python scripts/checkpoints.py NAME [--dest DIR] [--base-url URL]
  python scripts/checkpoints.py --record PATH    # a checkpoint this project made

MODEL's files are in PRETRAINED_FILES and RELEASED_FILES (the one table of MODEL -> file, which
the Makefile's targets and the stages resolve through). NAME is one of CHECKPOINT_SHA256:
wav2vec_small.pt, libri960_big.pt, wav2vec_vox_new.pt (pre-trained) or wav2vec_small_10m.pt,
wav2vec_big_10m.pt, wav2vec_vox_10m_new.pt (fine-tuned on 10 minutes). The download resumes a
partial DEST/NAME.part. Where CHECKPOINT_SHA256 pins a SHA-256 the file must match it; fairseq publishes none, so by default the first download's
SHA-256 is written to DEST/NAME.sha256 (trust on first use, printed for you to compare with a
colleague's copy) and every later load is checked against that record before unpickling.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from w2v2_10min.common import UserError, file_digest, write_text_atomic
from w2v2_10min.download import download, mirror


# Released checkpoints (https://dl.fbaipublicfiles.com/fairseq/wav2vec/). fairseq publishes no
# checksums for them: None means "record the SHA-256 of the first download" (fetch_recorded);
# put a value here to pin one.
CHECKPOINT_URL = "https://dl.fbaipublicfiles.com/fairseq/wav2vec/"
CHECKPOINT_SHA256: dict[str, str | None] = {
    "wav2vec_small.pt": None, "libri960_big.pt": None, "wav2vec_vox_new.pt": None,
    "wav2vec_small_10m.pt": None, "wav2vec_big_10m.pt": None, "wav2vec_vox_10m_new.pt": None,
}

# MODEL -> its pre-trained checkpoint (PRETRAINED_DIR; tiny's is the committed one, `make
# pretrain-tiny`) and its released 10-minute fine-tuned one (RELEASED_DIR, the control row)
PRETRAINED_FILES = {"tiny": "tiny.pt", "base": "wav2vec_small.pt", "large": "libri960_big.pt",
                    "vox": "wav2vec_vox_new.pt"}
RELEASED_FILES = {"base": "wav2vec_small_10m.pt", "large": "wav2vec_big_10m.pt",
                  "vox": "wav2vec_vox_10m_new.pt"}


def released_file(model: str) -> str:
    """The file name of MODEL's released 10-minute checkpoint; a model without one (tiny) is
    one line naming those that have one."""
    if model not in RELEASED_FILES:
        raise UserError(f"MODEL={model} has no released checkpoint; choose "
                        f"{', '.join(list(RELEASED_FILES)[:-1])} or {list(RELEASED_FILES)[-1]}")
    return RELEASED_FILES[model]


def pretrained_file(model: str) -> str:
    """The file name of MODEL's pre-trained checkpoint (in PRETRAINED_DIR)."""
    if model not in PRETRAINED_FILES:
        raise UserError(f"MODEL={model} has no pre-trained checkpoint; choose "
                        f"{', '.join(PRETRAINED_FILES)}")
    return PRETRAINED_FILES[model]


def verify_checkpoint(path: Path) -> str:
    """SHA-256 of `path` after checking it against the `<path>.sha256` recorded beside it.

    fairseq checkpoints are pickles, and unpickling runs code: nothing loads one that fails.
    """
    path = Path(path)
    record = path.with_name(path.name + ".sha256")
    if not record.is_file():
        raise UserError(f"{path}: no recorded SHA-256 ({record.name}); fetch it with "
                        "`make pretrained` / `make decode-original` (an LM: `make lm "
                        "LM=transformer`), or record one you trust: "
                        f"python scripts/checkpoints.py --record {path}")
    expected = record.read_text().split()[0]
    actual = file_digest(path)
    if actual != expected:
        raise UserError(f"{path}: SHA-256 {actual} differs from the recorded {expected}; "
                        "delete the file and fetch it again")
    return actual


def checkpoint_sha256(path: Path, verify: bool) -> str:
    """SHA-256 of `path`; with `verify`, checked first against `<path>.sha256` (a download)."""
    return verify_checkpoint(path) if verify else file_digest(path)


def record(path: Path) -> str:
    """Record the SHA-256 of a checkpoint this project made in `<path>.sha256`; return it."""
    digest = file_digest(path)
    write_text_atomic(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n")
    return digest


def fetch_recorded(url: str, path: Path, pinned: str | None = None) -> str:
    """Download `url` to `path` (resuming `path`.part) and record its SHA-256 beside it, or,
    when `path` is already there, verify it against that record; return the SHA-256.

    `pinned` is a published SHA-256 the download must match; without one, the first
    download's is recorded (trust on first use) and printed to compare with a trusted copy.
    """
    if path.is_file():
        digest = verify_checkpoint(path)
        print(f"{path}: already here, SHA-256 verified")
        return digest
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    download(url, part)
    digest = file_digest(part)
    if pinned and digest != pinned:
        os.replace(part, path.with_name(path.name + ".bad"))
        raise UserError(f"{path.with_name(path.name + '.bad')}: SHA-256 {digest}, expected "
                        f"{pinned}; delete it and fetch again")
    # the record first: a file in place without one would be refused as never checked
    write_text_atomic(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n")
    os.replace(part, path)
    how = "matches the pinned value" if pinned else \
        "recorded on first download (none is published): compare it with a trusted copy"
    print(f"{path}: SHA-256 {digest} {how}")
    return digest


def fetch_checkpoint(name: str, dest: Path, base_url: str | None) -> Path:
    """Download the released file NAME into DEST (or verify the copy there); its path."""
    if name not in CHECKPOINT_SHA256:
        raise UserError(f"{name}: not a released checkpoint this project knows; choose from "
                        f"{' '.join(CHECKPOINT_SHA256)}")
    fetch_recorded(mirror(CHECKPOINT_URL + name, base_url), dest / name, CHECKPOINT_SHA256[name])
    return dest / name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="checkpoint file name")
    parser.add_argument("--pretrained", metavar="MODEL",
                        help="MODEL's pre-trained checkpoint (make pretrained)")
    parser.add_argument("--released", metavar="MODEL",
                        help="MODEL's released 10-minute checkpoint (make decode-original)")
    parser.add_argument("--dest", type=Path, default=Path("pretrained"))
    parser.add_argument("--base-url", default=os.environ.get("FETCH_BASE_URL") or None)
    parser.add_argument("--record", type=Path, metavar="PATH",
                        help="record the SHA-256 of a checkpoint this project made")
    args = parser.parse_args(argv)
    if args.record:
        print(f"{args.record}: SHA-256 {record(args.record)} recorded")
    elif args.pretrained:
        released_file(args.pretrained)  # only the released models' files are published
        fetch_checkpoint(pretrained_file(args.pretrained), args.dest, args.base_url)
    elif args.released:
        fetch_checkpoint(released_file(args.released), args.dest, args.base_url)
    elif args.name:
        fetch_checkpoint(args.name, args.dest, args.base_url)
    else:
        parser.error("give --pretrained MODEL, --released MODEL, NAME or --record PATH")
    return 0

