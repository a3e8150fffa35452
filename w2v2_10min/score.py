"""Score hypotheses against references: corpus WER (as fairseq computes it) and CER.

Usage: python scripts/score.py --ref REF --hyp HYP

REF and HYP hold one utterance per line, in the same order, words separated by spaces.
Prints one JSON object: wer (percent), errors, words, cer (percent), char_errors, chars.
WER = 100 x (sum of word-level edit distances) / (sum of reference words), fairseq's WER; CER
likewise over the characters of the words joined by single spaces (each space between two words
counts as a character). That CER is not fairseq's unit error rate (`uer` in its validation
logs), which compares letter tokens with a `|` after every word, the last one included, as the
model emitted them: the two figures differ, WER does not.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import editdistance

from w2v2_10min.common import UserError


def utterance_errors(refs: list[str], hyps: list[str]) -> list[tuple[int, int, int, int]]:
    """(word errors, reference words, char errors, reference chars) for each utterance."""
    if len(refs) != len(hyps):
        raise UserError(f"{len(refs)} references but {len(hyps)} hypotheses; "
                        "give one line per utterance in both, in the same order")
    out = []
    for index, (ref, hyp) in enumerate(zip(refs, hyps), 1):
        ref_words, hyp_words = ref.split(), hyp.split()
        if not ref_words:
            raise UserError(f"reference line {index} is empty; every utterance needs words")
        ref_chars, hyp_chars = " ".join(ref_words), " ".join(hyp_words)
        out.append((editdistance.eval(ref_words, hyp_words), len(ref_words),
                    editdistance.eval(ref_chars, hyp_chars), len(ref_chars)))
    return out


def summarise(per_utterance: list[tuple[int, int, int, int]]) -> dict:
    """Corpus-level WER and CER (percent) with their error and length counts."""
    if not per_utterance:
        raise UserError("no utterances to score")
    errors, words, char_errors, chars = (sum(column) for column in zip(*per_utterance))
    return {"wer": 100.0 * errors / words, "errors": errors, "words": words,
            "cer": 100.0 * char_errors / chars, "char_errors": char_errors, "chars": chars}


def corpus_scores(refs: list[str], hyps: list[str]) -> dict:
    return summarise(utterance_errors(refs, hyps))


def read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"{path}: not found")
    return path.read_text(encoding="utf-8").splitlines()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", type=Path, required=True)
    parser.add_argument("--hyp", type=Path, required=True)
    args = parser.parse_args(argv)
    refs, hyps = read_lines(args.ref), read_lines(args.hyp)
    if len(refs) != len(hyps):
        raise UserError(f"{args.ref} has {len(refs)} lines but {args.hyp} has {len(hyps)}; "
                        "give one line per utterance in both, in the same order")
    try:
        scores = corpus_scores(refs, hyps)
    except UserError as err:
        raise UserError(f"{args.ref}: {err}") from None
    print(json.dumps(scores, sort_keys=True))
    return 0

