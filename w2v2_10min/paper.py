"""The paper's numbers: appendix Table 9 of Baevski et al. (2020), 10 minutes labelled.

WER (%) on LibriSpeech's dev/test sets for each pre-trained model and language model, as
printed in the paper (see shared reference notes); `PAPER_WER[model][lm][subset]`.
"""
from __future__ import annotations

MODEL_TITLES = {"base": "BASE (LS-960)", "large": "LARGE (LS-960)",
                "vox": "LARGE (LV-60k)", "tiny": "tiny (embedded corpus)"}
EVAL_SETS = ("dev-clean", "dev-other", "test-clean", "test-other")
MAIN_SUBSETS = ("dev_clean", "dev_other", "test_clean", "test_other")


def _row(dev_clean, dev_other, test_clean, test_other):
    return dict(zip(MAIN_SUBSETS, (dev_clean, dev_other, test_clean, test_other)))


PAPER_WER = {
    "base": {"none": _row(46.1, 51.5, 46.9, 50.9), "4gram": _row(8.9, 15.7, 9.1, 15.6),
             "transformer": _row(6.6, 13.2, 6.9, 12.9)},
    "large": {"none": _row(43.0, 46.3, 43.5, 45.3), "4gram": _row(8.6, 12.9, 8.9, 13.1),
              "transformer": _row(6.6, 10.6, 6.8, 10.8)},
    "vox": {"none": _row(38.3, 41.0, 40.2, 38.7), "4gram": _row(6.3, 9.8, 6.6, 10.3),
            "transformer": _row(4.6, 7.9, 4.8, 8.2)},
}
LM_TITLES = {"none": "no LM", "4gram": "4-gram LM", "transformer": "Transformer LM"}

# Which of the paper's LM rows a decoder of ours corresponds to.
DECODER_LM = {"viterbi": "none", "4gram": "4gram", "transformer": "transformer"}
DECODER_TITLES = {"viterbi": "Viterbi, no LM", "4gram": "4-gram LM (KenLM, lexicon beam search)",
                  "transformer": "Transformer LM (fairseq word LM, lexicon beam search)"}


def paper_row(model: str, decoder: str) -> dict[str, float]:
    """The paper's WER per subset for MODEL decoded as DECODER ({} when the paper has none)."""
    return PAPER_WER.get(model, {}).get(DECODER_LM.get(decoder, ""), {})
