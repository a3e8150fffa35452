"""Write the tiny corpus's 4-gram language model (ARPA) and word list, for `make demo`.

Usage: python tiny/make_tiny_lm.py [--corpus tiny/corpus] --out DIR

Reads the transcripts of the tiny corpus's training pool (librispeech_finetuning/: the six
folds and the 9h pool, never the LibriSpeech dev/test sets, as LibriSpeech's LM corpus leaves
out the books of its dev and test sets) and writes
  DIR/4-gram.arpa.gz  an interpolated absolute-discounting 4-gram (Ney et al., 1994), D = 0.5
  DIR/words.txt       its words, one a line, sorted (for `scripts/lexicon.py`)
No external LM tool: the estimate is ours, written in ARPA back-off form, which KenLM reads.
"""
from __future__ import annotations

import argparse
import gzip
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import REPO, UserError, atomic_path, run_main  # noqa: E402
from w2v2_10min.formats import read_transcripts  # noqa: E402


def estimate_arpa(sentences: list[str], order: int = 4, discount: float = 0.5) -> str:
    """ARPA text of an interpolated absolute-discounting n-gram model of `sentences`.

    P(w|h) = max(c(h w) - D, 0) / c(h .) + g(h) P(w|h'), with g(h) = D N1+(h .) / c(h .) and
    h' = h without its first word; unigrams interpolate with the uniform distribution over the
    vocabulary (with <unk>). Such a model is exactly an ARPA back-off model: each seen n-gram
    carries its interpolated P(w|h), and g(h) is the back-off weight of the history h.
    """
    if not 0 < discount < 1:
        raise ValueError("discount must lie between 0 and 1")
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    for sentence in sentences:
        words = ["<s>", *sentence.split(), "</s>"]
        for n in range(1, order + 1):
            for i in range(len(words) - n + 1):
                counts[n][tuple(words[i:i + n])] += 1
    del counts[1][("<s>",)]  # a sentence start is given, never predicted
    if not counts[1]:
        raise UserError("no words to estimate a language model from")
    total = [defaultdict(int) for _ in range(order + 1)]  # c(h .)
    kinds = [defaultdict(int) for _ in range(order + 1)]  # N1+(h .)
    for n in range(1, order + 1):
        for gram, count in counts[n].items():
            total[n][gram[:-1]] += count
            kinds[n][gram[:-1]] += 1

    def backoff(history: tuple) -> float:
        n = len(history) + 1
        seen = total[n].get(history, 0)
        return discount * kinds[n][history] / seen if seen else 1.0

    vocabulary = sorted({gram[0] for gram in counts[1]} | {"<unk>"})
    prob = {(word,): max(counts[1][(word,)] - discount, 0) / total[1][()]
            + backoff(()) / len(vocabulary) for word in vocabulary}

    def p(gram: tuple) -> float:
        return prob[gram] if gram in prob else backoff(gram[:-1]) * p(gram[1:])

    for n in range(2, order + 1):
        for gram in sorted(counts[n]):
            prob[gram] = ((counts[n][gram] - discount) / total[n][gram[:-1]]
                          + backoff(gram[:-1]) * p(gram[1:]))
    grams = [[("<s>",)] + [(word,) for word in vocabulary]]
    grams += [sorted(counts[n]) for n in range(2, order + 1)]
    lines = ["\\data\\"] + [f"ngram {n}={len(g)}" for n, g in enumerate(grams, 1)]
    for n, level in enumerate(grams, 1):
        lines += ["", f"\\{n}-grams:"]
        for gram in level:
            logp = -99.0 if gram == ("<s>",) else math.log10(prob[gram])
            line = f"{logp:.6f}\t{' '.join(gram)}"
            if n < order and gram in total[n + 1]:
                line += f"\t{math.log10(backoff(gram)):.6f}"
            lines.append(line)
    return "\n".join(["", *lines, "", "\\end\\", ""])


def training_sentences(corpus: Path) -> list[str]:
    """Transcripts under corpus/librispeech_finetuning, in sorted file and utterance order."""
    files = sorted((corpus / "librispeech_finetuning").rglob("*.trans.txt"))
    if not files:
        raise UserError(f"{corpus}: no librispeech_finetuning/**/*.trans.txt; "
                        "give the tiny corpus folder (tiny/corpus)")
    return [text for path in files for _, text in sorted(read_transcripts(path).items())]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "tiny" / "corpus")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    sentences = training_sentences(args.corpus)
    arpa = estimate_arpa(sentences).encode("utf-8")
    with atomic_path(args.out / "4-gram.arpa.gz") as tmp:
        tmp.write_bytes(gzip.compress(arpa, mtime=0))  # mtime 0: the same bytes every run
    with atomic_path(args.out / "words.txt") as tmp:
        tmp.write_text("".join(w + "\n" for w in sorted({w for s in sentences for w in s.split()})))
    print(f"{args.out}/4-gram.arpa.gz: 4-gram LM of {len(sentences)} sentences")
    return 0


if __name__ == "__main__":
    run_main(main)
