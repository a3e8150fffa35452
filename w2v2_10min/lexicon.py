"""Write the letter lexicon that lexicon-constrained beam search needs (part of `make lm`).

Usage:
  python scripts/lexicon.py --words WORDS --out LEXICON

WORDS is LibriSpeech's `librispeech-lexicon.txt` (OpenSLR 11: a word and its phones per line;
only the word is read) or any list with one word first on each line. LEXICON gets one line per
distinct word, sorted: the word, a tab, its letters separated by spaces and the word boundary
`|` (`HELLO<TAB>H E L L O |`), the format of fairseq's `librispeech_lexicon.lst`, which
fairseq's KenLM decoder reads too. A word with a character outside dict.ltr.txt cannot be
spelled by the model: it is skipped and counted (the decoder could never output it), and the
count and the first few such words are printed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from w2v2_10min.common import UserError, atomic_path
from w2v2_10min.formats import LETTERS

BOUNDARY = "|"


def spell(word: str) -> list[str] | None:
    """The word's letters then the boundary, or None when a character is not a letter of ours."""
    if not word or any(char not in LETTERS for char in word):
        return None
    return [*word, BOUNDARY]


def read_words(path: Path) -> list[str]:
    """The first field of each non-empty line, in file order."""
    if not path.is_file():
        raise UserError(f"{path}: word list not found; run `make lm` (or give --words)")
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def letter_lexicon(words: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Spellings of the distinct words (sorted) and the words that cannot be spelled."""
    spelled, skipped = {}, []
    for word in sorted(set(words)):
        letters = spell(word)
        if letters is None:
            skipped.append(word)
        else:
            spelled[word] = letters
    return spelled, skipped


def write_lexicon(path: Path, spelled: dict[str, list[str]]) -> None:
    """Write `WORD<TAB>W O R D |` lines, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{w}\t{' '.join(s)}\n" for w, s in spelled.items()),
                       encoding="utf-8")


def read_lexicon(path: Path) -> dict[str, list[str]]:
    """Read a letter lexicon (`WORD<TAB>W O R D |` lines) and check every spelling."""
    if not path.is_file():
        raise UserError(f"{path}: lexicon not found; run `make lm` (or give --lexicon)")
    out = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        word, _, spelling = line.partition("\t")
        letters = spelling.split()
        if letters != spell(word):
            raise UserError(f"{path}:{lineno}: {line!r} is not `WORD<TAB>W O R D |` in the "
                            "letters of dict.ltr.txt; rebuild it with `make lm`")
        out[word] = letters
    if not out:
        raise UserError(f"{path}: empty lexicon; rebuild it with `make lm`")
    return out


def spellings_for(path: Path, output_symbols: list[str]) -> tuple[dict[str, list[str]], dict]:
    """The lexicon's spellings, each in letters the model outputs, and each symbol's index."""
    spellings = read_lexicon(path)
    index = {symbol: i for i, symbol in enumerate(output_symbols)}
    for word, letters in spellings.items():
        if any(letter not in index for letter in letters):
            raise UserError(f"{path}: {word} has letters the model does not output; "
                            "rebuild the lexicon with `make lm`")
    return spellings, index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    spelled, skipped = letter_lexicon(read_words(args.words))
    if not spelled:
        raise UserError(f"{args.words}: no word can be spelled in the letters of dict.ltr.txt "
                        "(upper-case A-Z and '); give LibriSpeech's word list")
    write_lexicon(args.out, spelled)
    note = f"; skipped {len(skipped)} with other characters (e.g. {' '.join(skipped[:5])})" \
        if skipped else ""
    print(f"{args.out}: {len(spelled)} words{note}")
    return 0
