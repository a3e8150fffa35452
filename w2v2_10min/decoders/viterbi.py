"""Viterbi decoding (no LM), the paper's "None" rows: per frame the most likely letter, repeats
merged, blanks dropped, letters to words as fairseq's `letter` post-processing does.

Usage: make decode (DECODER=viterbi, the default)
"""
from __future__ import annotations

import numpy as np

NAME = "viterbi"
DEFAULT = "decode"  # make decode's DECODER when none is named
CACHED = False  # float32 emissions, computed afresh: argmax on float16 could break ties
NEEDS = ("batching",)  # decoded before decoding was made independent of batching: redo it

FILES: dict = {}
ARGUMENTS = ()  # no options of its own


def settings(args, run, checkpoint_sha256: str) -> None:
    return None


def prepare(args, settings):
    """fairseq's own letter dictionary, as the task reads it (MANIFEST/dict.ltr.txt)."""
    from fairseq.data import Dictionary

    return Dictionary.load(str(args.manifests / "dict.ltr.txt"))


def best_path(emissions, lengths, blank: int) -> list[list[int]]:
    """Argmax per frame, merge repeats, drop blanks: one token list per utterance."""
    import torch

    out = []
    for frames, length in zip(emissions.argmax(-1), lengths):
        tokens = torch.unique_consecutive(frames[:length])
        out.append(tokens[tokens != blank].tolist())
    return out


def words(dictionary, emissions: list[np.ndarray]) -> list[str]:
    """Best-path hypotheses (words) for per-utterance emissions."""
    import torch

    from w2v2_10min.formats import words_of

    blank = dictionary.bos()  # fairseq's CTC blank is <s>
    out = []
    for frames in emissions:
        tokens = best_path(torch.from_numpy(np.asarray(frames))[None], [len(frames)], blank)[0]
        out.append(words_of(dictionary.string(torch.tensor(tokens, dtype=torch.long))))
    return out


def decode(dictionary, emissions: list[np.ndarray], settings, args) -> list[str]:
    return words(dictionary, emissions)


def extra(args, settings) -> dict:
    return {}


def said(record: dict, settings) -> str:
    return f"CER {record['cer']:.2f}, {record['utterances']} utterances"
