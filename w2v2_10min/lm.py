"""Lexicon-constrained beam search with a KenLM n-gram LM, shared by `make decode DECODER=4gram`
(w2v2_10min.decoders.fourgram) and `make tune-lm`; and what every LM decoder shares (the 4-gram,
the word Transformer's w2v2_10min.decoders.transformer): its options (`search_arguments`), its
weights' search space and where its weights come from (`weights`), flashlight's options
(`lexicon_decoder`).

Usage: search = LexiconSearch(lm, lexicon, symbols(manifest)); search.decode(emissions, ...)

flashlight-text, the library fairseq's own `W2lKenLMDecoder` calls, searches the cached
emissions (w2v2_10min.emissions) on all CPU cores, as often as tuning needs, without running
the model again.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import sys
from pathlib import Path

import numpy as np

from w2v2_10min.common import UserError, file_digest
from w2v2_10min.formats import dictionary_symbols
from w2v2_10min.lexicon import BOUNDARY, spellings_for

# fairseq's Dictionary puts these in front of dict.ltr.txt's symbols; <s> is the CTC blank.
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
# The paper (section 4.4): weights tuned at beam 500, test sets decoded at beam 1,500.
TUNE_BEAM, DECODE_BEAM = 500, 1500
LM_WEIGHT_RANGE, WORD_SCORE_RANGE = (0.0, 5.0), (-5.0, 5.0)
# what `make tune-lm` draws (the paper's ranges), each weight with its range
SEARCH_SPACE = {"lm_weight": LM_WEIGHT_RANGE, "word_score": WORD_SCORE_RANGE}
# Untuned weights: fairseq's documented example (examples/wav2vec/README.md), and the
# beam threshold of fairseq's infer.py.
DEFAULT_WEIGHTS = {"lm_weight": 2.0, "word_score": -1.0}
BEAM_THRESHOLD = 25.0


def symbols(manifest: Path) -> list[str]:
    """The model's output symbols in index order, from the manifest's dict.ltr.txt."""
    return SPECIALS + dictionary_symbols(manifest / "dict.ltr.txt")


def weights_key(checkpoint_sha256: str, lm: Path, lexicon: Path) -> dict:
    """What tuned LM weights hold for: `make tune-lm` records it, 4-gram decoding checks it."""
    return {"checkpoint_sha256": checkpoint_sha256, "lm_sha256": file_digest(lm),
            "lexicon_sha256": file_digest(lexicon)}


def search_arguments(group, tuning: bool, users) -> None:
    """the LM search: LM, lexicon, beam (decoding: the weights)

    Usage: an entry of an LM decoder's ARGUMENTS (w2v2_10min.decoders), added once for all."""
    group.add_argument("--lm", type=Path,
                       help="the LM (make: the decoder's own knob, e.g. LM_ARPA, TRANSFORMER_LM)")
    group.add_argument("--lexicon", type=Path, help="letter lexicon (`make lm` writes it)")
    beams = ", ".join(f"{d.NAME} {d.TUNE_BEAM if tuning else d.BEAM}" for d in users)
    group.add_argument("--beam", type=int, help=f"beam size (default: the paper's, {beams})")
    if not tuning:  # tuning draws them
        group.add_argument("--lm-weight", type=float, help="instead of the tuned one")
        group.add_argument("--word-score", type=float, help="instead of the tuned one")


def beam(args, default: int) -> int:
    """--beam, else the decoder's `default`; a positive number."""
    size = default if args.beam is None else args.beam
    if size < 1:
        raise UserError(f"--beam {size}: give a positive beam size")
    return size


def weights(args, key: dict, tuned: Path) -> dict:
    """lm_weight, word_score and where they came from, in this order: --lm-weight and
    --word-score; `tuned` (RUN/tune-<decoder>/weights.json, written by `make tune-lm`), when
    made for `key` (checkpoint, LM, lexicon...); fairseq's example weights, with a note."""
    given = [args.lm_weight is not None, args.word_score is not None]
    if all(given):
        return {"lm_weight": args.lm_weight, "word_score": args.word_score,
                "weights_from": "given"}
    if any(given):
        raise UserError("give both --lm-weight and --word-score (LM_WEIGHT= and WORD_SCORE=), "
                        "or neither to use the tuned ones")
    if tuned.is_file():
        record = json.loads(tuned.read_text())
        changed = [name for name, value in key.items() if record.get(name) != value]
        if changed:
            raise UserError(f"{tuned}: tuned with another {changed[0].removesuffix('_sha256')}; "
                            "run `make tune-lm` again, or give LM_WEIGHT= and WORD_SCORE=")
        return {"lm_weight": record["lm_weight"], "word_score": record["word_score"],
                "weights_from": str(tuned.resolve())}
    print(f"note: {tuned} not found (run `make tune-lm`); using fairseq's example weights "
          f"lm_weight {DEFAULT_WEIGHTS['lm_weight']}, word_score "
          f"{DEFAULT_WEIGHTS['word_score']}", file=sys.stderr)
    return {**DEFAULT_WEIGHTS, "weights_from": "fairseq example (untuned)"}


def normalised(emissions: np.ndarray, n_symbols: int) -> np.ndarray:
    """Emissions as the search takes them: float32, C order, log-softmax per frame.

    As fairseq 0.10's W2lKenLMDecoder normalised them (later fairseq passes raw logits: the
    same search, since every hypothesis takes exactly one frame's score per step).
    """
    frames = np.asarray(emissions, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != n_symbols:
        raise UserError(f"emissions have {frames.shape[-1]} outputs but dict.ltr.txt gives "
                        f"{n_symbols} symbols; decode with the manifest the model was trained "
                        "with")
    return np.ascontiguousarray(frames - np.logaddexp.reduce(frames, axis=1, keepdims=True))


# ---- lexicon-constrained beam search -------------------------------------------------------
def load_kenlm(lm: Path, word_dict):
    from flashlight.lib.text.decoder.kenlm import KenLM

    if not lm.is_file():
        raise UserError(f"{lm}: language model not found; run `make lm` (or give LM_ARPA=)")
    try:
        return KenLM(str(lm), word_dict)
    except RuntimeError as err:  # KenLM's last line says what is wrong with the file
        reason = (str(err).strip().splitlines() or ["unreadable"])[-1]
        raise UserError(f"{lm}: KenLM cannot load it ({reason}); give an ARPA or KenLM "
                        "binary file, e.g. OpenSLR's 4-gram.arpa.gz (make lm)") from None


class LexiconSearch:
    """KenLM, lexicon trie and word dictionary, built once; decodes many times."""

    def __init__(self, lm: Path, lexicon: Path, output_symbols: list[str]):
        from flashlight.lib.text.decoder import SmearingMode, Trie
        from flashlight.lib.text.dictionary import Dictionary

        spellings, index = spellings_for(lexicon, output_symbols)
        self.word_dict = Dictionary()
        for word in spellings:
            self.word_dict.add_entry(word)
        self.word_dict.add_entry("<unk>")
        self.lm = load_kenlm(lm, self.word_dict)
        self.trie = Trie(len(output_symbols), index[BOUNDARY])
        start = self.lm.start(False)
        for word, letters in spellings.items():
            word_index = self.word_dict.get_index(word)
            _, score = self.lm.score(start, word_index)  # unigram score, smeared up the trie
            self.trie.insert([index[letter] for letter in letters], word_index, score)
        self.trie.smear(SmearingMode.MAX)
        self.symbols = output_symbols
        self.silence, self.blank = index[BOUNDARY], index["<s>"]
        self.unk = self.word_dict.get_index("<unk>")

    def decoder(self, settings: dict):
        return lexicon_decoder(self, settings)

    def results(self, decoder, emissions: np.ndarray) -> list:
        """flashlight's final beam (DecodeResult, best first) for one utterance's emissions."""
        frames = normalised(emissions, len(self.symbols))
        return decoder.decode(frames.ctypes.data, frames.shape[0], frames.shape[1])

    def words(self, result) -> str:
        return " ".join(self.word_dict.get_entry(w) for w in result.words if w >= 0)

    def decode_one(self, decoder, emissions: np.ndarray) -> str:
        return self.words(self.results(decoder, emissions)[0])

    def hypotheses_one(self, decoder, emissions: np.ndarray) -> list:
        """The final beam's hypotheses as w2v2_10min.rescore keeps them."""
        return [hypothesis(result, self.words(result))
                for result in self.results(decoder, emissions)]

    def decode(self, utterances: list[np.ndarray], settings: dict, jobs: int,
               beams: bool = False) -> list:
        """Word strings, in order, searched on `jobs` forked processes (they share the LM);
        beams: each utterance's final beam instead (`hypothesis` tuples, best first)."""
        global _JOB
        _JOB = (self, settings, utterances, beams)
        try:
            if jobs <= 1 or len(utterances) <= 1:
                _start_worker()
                return [_decode_index(i) for i in range(len(utterances))]
            context = multiprocessing.get_context("fork")
            with context.Pool(min(jobs, len(utterances)), initializer=_start_worker) as pool:
                return pool.map(_decode_index, range(len(utterances)), chunksize=1)
        finally:
            _JOB = None


def lexicon_decoder(search, settings: dict, lm=None):
    """flashlight's LexiconDecoder with the options fairseq's W2lKenLMDecoder and
    W2lFairseqLMDecoder give it, over a search's trie, LM (or `lm`), silence, blank and unknown
    word."""
    from flashlight.lib.text.decoder import (CriterionType, LexiconDecoder,
                                             LexiconDecoderOptions)

    options = LexiconDecoderOptions(
        beam_size=int(settings["beam"]), beam_size_token=len(search.symbols),
        beam_threshold=float(settings["beam_threshold"]),
        lm_weight=float(settings["lm_weight"]), word_score=float(settings["word_score"]),
        unk_score=-math.inf, sil_score=float(settings.get("sil_weight", 0.0)), log_add=False,
        criterion_type=CriterionType.CTC)
    return LexiconDecoder(options, search.trie, search.lm if lm is None else lm, search.silence,
                          search.blank, search.unk, [], False)


_JOB = None  # (search, settings, utterances, beams) of the running decode, inherited by workers
_DECODER = None


def _start_worker() -> None:
    global _DECODER
    search, settings, _, _ = _JOB
    _DECODER = search.decoder(settings)


def _decode_index(i: int):
    search, _, utterances, beams = _JOB
    one = search.hypotheses_one if beams else search.decode_one
    return one(_DECODER, utterances[i])


def hypothesis(result, words: str) -> tuple[float, float, int, str]:
    """One hypothesis of flashlight's final beam as rescoring keeps it: (acoustic score, LM
    score, words, word string). flashlight's LexiconDecoder scores it (LexiconDecoder.cpp,
    logAdd off) as

        score = emittingModelScore + lm_weight * lmScore + word_score * words
                + sil_score * (silence frames) + unk_score * (unknown words)

    with `emittingModelScore` the sum of its frames' (log-softmax) emissions and `lmScore` the
    sum of its words' LM log-probabilities, </s> included, plus, for a hypothesis that ends
    inside a word, the trie's smeared score of that word's prefix. Both decoders search with
    sil_score 0 and unk_score -inf (fairseq's), so the last two terms are 0, and the first
    three are all a (lm_weight, word_score) pair changes (w2v2_10min.rescore)."""
    return (float(result.emittingModelScore), float(result.lmScore),
            sum(1 for w in result.words if w >= 0), words)

