import json

import pytest

from w2v2_10min.common import UserError
from conftest import run_script
from w2v2_10min.score import corpus_scores


def test_hand_computed_corpus_wer():
    # utterance 1: one substitution (3 words); utterance 2: one deletion + one insertion (2 words)
    refs = ["THE CAT SAT", "A DOG"]
    hyps = ["THE BAT SAT", "DOG BARKS"]
    scores = corpus_scores(refs, hyps)
    assert (scores["errors"], scores["words"]) == (3, 5)
    assert scores["wer"] == pytest.approx(60.0)
    # chars: "THE CAT SAT" vs "THE BAT SAT" = 1; "A DOG" vs "DOG BARKS" = 6 ("A " deleted, " BARKS" inserted)
    assert (scores["char_errors"], scores["chars"]) == (1 + 8, 11 + 5)


def test_corpus_wer_is_not_the_mean_of_utterance_wers():
    scores = corpus_scores(["A", "B C D E"], ["X", "B C D E"])
    assert scores["wer"] == pytest.approx(100 * 1 / 5)


def test_empty_hypothesis_counts_every_word_deleted():
    scores = corpus_scores(["ONE TWO THREE"], [""])
    assert scores["wer"] == 100.0 and scores["errors"] == 3


def test_extra_spaces_do_not_count():
    assert corpus_scores(["A  B "], [" A B"])["wer"] == 0.0


def test_empty_reference_line_is_an_error():
    with pytest.raises(UserError, match="reference line 2 is empty"):
        corpus_scores(["A", "  "], ["A", "B"])


def test_cli_prints_one_json_object(tmp_path):
    (tmp_path / "ref").write_text("HELLO WORLD\nGOOD DAY\n")
    (tmp_path / "hyp").write_text("HELLO WORD\nGOOD DAY\n")
    proc = run_script("score.py", "--ref", tmp_path / "ref", "--hyp", tmp_path / "hyp")
    scores = json.loads(proc.stdout)
    assert scores["wer"] == 25.0 and scores["errors"] == 1 and scores["words"] == 4
    assert scores["char_errors"] == 1 and scores["chars"] == 19
    assert set(scores) == {"wer", "errors", "words", "cer", "char_errors", "chars"}


def test_cli_mismatched_line_counts_is_one_line_error(tmp_path):
    (tmp_path / "ref").write_text("A\nB\n")
    (tmp_path / "hyp").write_text("A\n")
    proc = run_script("score.py", "--ref", tmp_path / "ref", "--hyp", tmp_path / "hyp",
                      check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "2 lines" in proc.stderr and str(tmp_path / "hyp") in proc.stderr
