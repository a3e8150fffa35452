"""fairseq's file formats for letter-CTC fine-tuning, and LibriSpeech's transcripts.

The released letter dictionary, the `.tsv` audio manifest, `.ltr` letter targets, and
LibriSpeech's `SPK-CHAP.trans.txt`: what every stage reads or writes.
"""
from __future__ import annotations

from pathlib import Path

from w2v2_10min.common import UserError

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


def subset_name(directory: str) -> str:
    """fairseq's manifest name for a LibriSpeech folder: dev-clean -> dev_clean."""
    return directory.replace("-", "_")


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


def words_of(letters: str) -> str:
    """fairseq's `letter` post-processing: `H I | T H E R E |` -> `HI THERE`."""
    return " ".join(letters.replace(" ", "").replace("|", " ").split())


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


def dictionary_symbols(path: Path) -> list[str]:
    """The symbols of a fairseq dict.ltr.txt (`SYMBOL COUNT` lines), in order; the counts do
    not matter. A missing file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; run `make manifests` first")
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def dict_text() -> str:
    """The released dict.ltr.txt, byte for byte: `SYMBOL COUNT` lines."""
    return "".join(f"{symbol} {count}\n" for symbol, count in DICT_LTR)
