"""Fetch and prepare the word Transformer LM of DECODER=transformer (`make lm LM=transformer`).

Usage:
  python scripts/transformer_lm.py --dest DATA/transformer --words DATA/librispeech-lexicon.txt \
      [--base-url URL]

Downloads wav2letter's 2019 release (LM_URL, the link fairseq's wav2vec README gives):
lm_librispeech_word_transformer.pt and its vocabulary lm_librispeech_word_transformer.dict.
Nothing publishes their checksums, so the first download's SHA-256 is recorded beside each file
(DEST/<file>.sha256, trust on first use, as for the released checkpoints) and every later run
verifies it before anything is unpickled. A download resumes its DEST/<file>.part. Then, each
written atomically:
  DEST/dict.txt          the vocabulary upper-cased: fairseq's decoder reads dict.txt beside the
                         .pt, and the letter lexicon is upper case (fairseq #3658, #3667)
  DEST/lexicon.ltr.lst   the letter lexicon of WORDS's words that the LM knows. fairseq's
                         decoder gives the others the LM's <unk> (scored -inf): they can never
                         be output, so leaving them out changes no hypothesis.
The checkpoint is loaded once, as the decoder loads it, so a bad file stops here in one line.
--base-url URL (or $FETCH_BASE_URL) fetches both files from URL/<file name> (a mirror).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from w2v2_10min.checkpoints import fetch_recorded
from w2v2_10min.common import UserError, write_text_atomic
from w2v2_10min.download import mirror
from w2v2_10min.lexicon import letter_lexicon, read_words, write_lexicon

LM_URL = "https://dl.fbaipublicfiles.com/wav2letter/sota/2019/lm/"
NAME = "lm_librispeech_word_transformer"


def upper_case_dictionary(source: Path, target: Path) -> list[str]:
    """Write fairseq's dict.txt of the word LM with its words upper-cased; return the words.

    Each line is `word count` (fairseq's Dictionary format, optionally a flag after it); two
    words that upper-case alike would make fairseq refuse the file, so they stop here.
    """
    lines = source.read_text(encoding="utf-8").splitlines()
    words, seen = [], {}
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) < 2 or not fields[1].lstrip("-").isdigit():
            raise UserError(f"{source}:{lineno}: {line!r} is not `word count`; give the LM's "
                            f"vocabulary ({NAME}.dict, fairseq's dict.txt format)")
        word = fields[0].upper()
        if word in seen:
            raise UserError(f"{source}:{lineno}: {fields[0]!r} upper-cases to {word!r} as line "
                            f"{seen[word]} does; fairseq would refuse the upper-cased dict.txt")
        seen[word] = lineno
        words.append(word)
    if not words:
        raise UserError(f"{source}: empty vocabulary; fetch it again")
    write_text_atomic(target, "".join(line.upper() + "\n" for line in lines))
    return words


def lm_lexicon(words_file: Path, lm_words: list[str], out: Path) -> tuple[int, int, int]:
    """Write the letter lexicon of the listed words the LM knows; (written, listed words the
    LM lacks, known words the model's letters cannot spell)."""
    known = set(lm_words)
    listed = set(read_words(words_file))
    spelled, unspellable = letter_lexicon(listed & known)
    if not spelled:
        raise UserError(f"{words_file}: none of its words is in the LM's vocabulary; give "
                        "LibriSpeech's word list (`make lm` fetches librispeech-lexicon.txt)")
    write_lexicon(out, spelled)
    return len(spelled), len(listed - known), len(unspellable)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, required=True, help="folder for the LM's files")
    parser.add_argument("--words", type=Path, required=True,
                        help="word list of the lexicon (LibriSpeech's librispeech-lexicon.txt)")
    parser.add_argument("--base-url", default=os.environ.get("FETCH_BASE_URL") or None)
    args = parser.parse_args(argv)
    read_words(args.words)  # a missing word list stops before gigabytes are fetched
    checkpoint, vocabulary = args.dest / f"{NAME}.pt", args.dest / f"{NAME}.dict"
    for path in (vocabulary, checkpoint):
        fetch_recorded(mirror(LM_URL + path.name, args.base_url), path)
    words = upper_case_dictionary(vocabulary, args.dest / "dict.txt")
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # its SHA-256 was checked
    from w2v2_10min.transformer_search import load_model
    load_model(checkpoint)
    lexicon = args.dest / "lexicon.ltr.lst"
    written, lacking, unspellable = lm_lexicon(args.words, words, lexicon)
    left_out = [f"{lacking} listed words the LM lacks"] * bool(lacking) + \
        [f"{unspellable} with characters outside dict.ltr.txt"] * bool(unspellable)
    note = f" (left out: {', '.join(left_out)})" if left_out else ""
    print(f"{checkpoint}: checked, with {len(words)} words in {args.dest / 'dict.txt'}; "
          f"{lexicon}: {written} words{note}")
    return 0
