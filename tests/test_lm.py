"""The 4-gram LM pieces without a model: the tiny ARPA estimate, the letter lexicon, the
emission cache, lexicon beam search on made-up emissions, and one-line errors for bad input."""
import gzip
import json
import math

import numpy as np
import pytest

from conftest import run_script
from tiny.make_tiny_lm import estimate_arpa
from w2v2_10min import emissions, lm
from w2v2_10min.common import UserError
from w2v2_10min.formats import dict_text
from w2v2_10min.lexicon import letter_lexicon, read_lexicon, spell

SENTENCES = ["THE CAT SAT", "THE CAT RAN AWAY", "A DOG SAT ON THE MAT", "THE DOG RAN"]


def parse_arpa(text: str):
    probs, backoffs = {}, {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2:
            gram = tuple(fields[1].split())
            probs[gram] = 10 ** float(fields[0])
            if len(fields) == 3:
                backoffs[gram] = 10 ** float(fields[2])
    return probs, backoffs


def test_tiny_arpa_is_a_normalised_back_off_model():
    probs, backoffs = parse_arpa(estimate_arpa(SENTENCES))

    def p(gram):
        return probs[gram] if gram in probs else backoffs.get(gram[:-1], 1.0) * p(gram[1:])

    vocabulary = [g[0] for g in probs if len(g) == 1 and g != ("<s>",)]
    assert "<unk>" in vocabulary and "</s>" in vocabulary
    histories = {g[:-1] for g in probs} | {("<s>", "THE", "CAT"), ("NEVER", "SEEN")}
    for history in histories:
        assert sum(p(history + (w,)) for w in vocabulary) == pytest.approx(1, abs=1e-5)
    # seen continuations beat unseen ones after a seen history
    assert p(("<s>", "THE", "CAT", "SAT")) > p(("<s>", "THE", "CAT", "MAT"))


def test_kenlm_reads_our_arpa_as_written(tmp_path):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    text = estimate_arpa(SENTENCES)
    probs, _ = parse_arpa(text)
    path = tmp_path / "lm.arpa.gz"
    path.write_bytes(gzip.compress(text.encode()))
    words = Dictionary()
    for word in ["THE", "CAT", "<unk>"]:
        words.add_entry(word)
    kenlm = KenLM(str(path), words)
    state, score = kenlm.score(kenlm.start(False), words.get_index("THE"))
    assert score == pytest.approx(math.log10(probs[("<s>", "THE")]), abs=1e-4)
    _, score = kenlm.score(state, words.get_index("CAT"))
    assert score == pytest.approx(math.log10(probs[("<s>", "THE", "CAT")]), abs=1e-4)


def test_tiny_lm_script_is_reproducible_and_leaves_out_the_eval_sets(tmp_path):
    for out in (tmp_path / "a", tmp_path / "b"):
        run_script("tiny/make_tiny_lm.py", "--out", out)
    assert (tmp_path / "a/4-gram.arpa.gz").read_bytes() == (tmp_path / "b/4-gram.arpa.gz").read_bytes()
    text = gzip.decompress((tmp_path / "a/4-gram.arpa.gz").read_bytes()).decode()
    assert "ngram 4=" in text
    assert "DASHWOOD" not in text  # a word only the librivox-real evaluation set has


def test_lexicon_spells_words_and_skips_and_counts_foreign_ones(tmp_path):
    assert spell("DON'T") == ["D", "O", "N", "'", "T", "|"]
    assert spell("CAFÉ") is None and spell("R2D2") is None and spell("hello") is None
    spelled, skipped = letter_lexicon(["THE", "CAFÉ", "A", "THE", "R2D2"])
    assert list(spelled) == ["A", "THE"] and skipped == ["CAFÉ", "R2D2"]
    words = tmp_path / "librispeech-lexicon.txt"
    words.write_text("THE\tDH AH0\nTHE\tDH IY0\nCAFÉ\tK AE0 F EY1\nA\tAH0\n")
    out = tmp_path / "lexicon.ltr.lst"
    proc = run_script("lexicon.py", "--words", words, "--out", out)
    assert out.read_text() == "A\tA |\nTHE\tT H E |\n"
    assert "2 words; skipped 1" in proc.stdout and "CAFÉ" in proc.stdout
    assert read_lexicon(out) == {"A": ["A", "|"], "THE": ["T", "H", "E", "|"]}


def fake_compute(calls, frames=5):
    def compute(subsets):
        calls.append(list(subsets))
        return [[np.full((frames + i, 32), float(i), dtype=np.float32) for i in range(3)]
                for _ in subsets]
    return compute


def manifest(tmp_path, rows=3):
    folder = tmp_path / "manifest"
    folder.mkdir(exist_ok=True)
    (folder / "dict.ltr.txt").write_text(dict_text())
    for subset in ("train", "dev_other"):
        (folder / f"{subset}.tsv").write_text("/root\n" + "".join(f"{i}.flac\t16000\n"
                                                               for i in range(rows)))
    return folder


def test_emission_cache_runs_the_model_once_per_checkpoint_and_manifest(tmp_path):
    data, cache, calls = manifest(tmp_path), tmp_path / "emissions", []
    first = emissions.from_cache(cache, "a" * 64, data, ["train", "dev_other"], fake_compute(calls))
    again = emissions.from_cache(cache, "a" * 64, data, ["dev_other", "train"], fake_compute(calls))
    assert calls == [["train", "dev_other"]]  # the second call never ran the model
    assert [e.dtype for e in again["train"]] == [np.float16] * 3
    assert [e.shape for e in again["train"]] == [(5, 32), (6, 32), (7, 32)]
    assert all((a == b).all() for a, b in zip(first["dev_other"], again["dev_other"]))
    emissions.from_cache(cache, "b" * 64, data, ["train"], fake_compute(calls))  # new checkpoint
    (data / "dev_other.tsv").write_text("/other-root\n0.flac\t16000\n")  # changed manifest
    emissions.from_cache(cache, "b" * 64, data, ["train", "dev_other"], fake_compute(calls))
    assert calls[1:] == [["train"], ["dev_other"]]
    (cache / "train.npz").write_bytes(b"damaged")
    emissions.from_cache(cache, "b" * 64, data, ["train"], fake_compute(calls))
    assert calls[-1] == ["train"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    (out / "words.txt").write_text("CAT\nDOG\nTHE\nSAT\nRAN\n")
    (out / "lm.arpa").write_text(estimate_arpa(["THE CAT SAT", "THE DOG RAN", "THE CAT RAN"]))
    run_script("lexicon.py", "--words", out / "words.txt", "--out", out / "lexicon.ltr.lst")
    return out


def emissions_for(letters: str, symbols: list[str], noise=0.0, seed=0) -> np.ndarray:
    """Log-probabilities that favour `letters` (blank between frames), with some noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for char in letters:
        for token in (char, "<s>"):
            row = np.full(len(symbols), -8.0)
            row[symbols.index(token)] = 0.0
            frames.append(row + noise * rng.standard_normal(len(symbols)))
    return np.array(frames, dtype=np.float32)


def test_beam_search_spells_lexicon_words_and_uses_the_lm(tmp_path, tiny_lm):
    symbols = lm.SPECIALS + [line.split()[0] for line in dict_text().splitlines()]
    search = lm.LexiconSearch(tiny_lm / "lm.arpa", tiny_lm / "lexicon.ltr.lst", symbols)
    settings = {"beam": 50, "beam_threshold": 25.0, "lm_weight": 1.0, "word_score": 0.0}
    clean = emissions_for("THE|CAT|SAT|", symbols)
    # "CAX" is no word: only lexicon words come out, and the LM prefers THE CAT over THE DOG
    blurred = emissions_for("THE|CAX|SAT|", symbols)
    hyps = search.decode([clean, blurred, clean], settings, jobs=2)
    assert hyps == ["THE CAT SAT", "THE CAT SAT", "THE CAT SAT"]
    assert search.decode([clean], settings, jobs=1) == ["THE CAT SAT"]


def test_bad_lm_and_lexicon_are_one_line_errors(tmp_path, tiny_lm):
    symbols = lm.SPECIALS + [line.split()[0] for line in dict_text().splitlines()]
    lexicon = tiny_lm / "lexicon.ltr.lst"
    with pytest.raises(UserError, match="language model not found; run `make lm`"):
        lm.LexiconSearch(tmp_path / "missing.arpa", lexicon, symbols)
    garbage = tmp_path / "garbage.arpa"
    garbage.write_text("this is no language model\n")
    with pytest.raises(UserError, match=r"garbage.arpa: KenLM cannot load it \(.*\\data\\"):
        lm.LexiconSearch(garbage, lexicon, symbols)
    with pytest.raises(UserError, match="lexicon not found; run `make lm`"):
        lm.LexiconSearch(tiny_lm / "lm.arpa", tmp_path / "missing.lst", symbols)
    bad = tmp_path / "bad.lst"
    bad.write_text("CAT\tC A T |\ncafé\tc a f é |\n")
    with pytest.raises(UserError, match=r"bad.lst:2: .* letters of dict.ltr.txt"):
        lm.LexiconSearch(tiny_lm / "lm.arpa", bad, symbols)


@pytest.mark.parametrize("args, message", [
    (["--lm", "missing.arpa"], "missing.arpa: language model not found; run `make lm`"),
    (["--lexicon", "missing.lst"], "missing.lst: lexicon not found; run `make lm`"),
    (["--lm", "garbage.arpa"], "garbage.arpa: KenLM cannot load it"),
    (["--lexicon", "bad.lst"], "bad.lst:2: 'cafe\\tc a f e |' is not `WORD<TAB>W O R D |`"),
    (["--lm-weight", "1"], "give both --lm-weight and --word-score"),
    (["--beam", "0"], "--beam 0: give a positive beam size"),
])
def test_decode_4gram_bad_input_is_one_line_before_the_model_runs(tmp_path, tiny_lm, args,
                                                                  message):
    data = manifest(tmp_path)
    (data / "train.ltr").write_text("C A T |\n" * 3)
    (tmp_path / "garbage.arpa").write_text("this is no language model\n")
    (tmp_path / "bad.lst").write_text("CAT\tC A T |\ncafe\tc a f e |\n")
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"never unpickled: the bad input is found first")
    given = {"--lm": tiny_lm / "lm.arpa", "--lexicon": tiny_lm / "lexicon.ltr.lst"}
    for flag, value in zip(args[::2], args[1::2]):
        given[flag] = tmp_path / value if flag in ("--lm", "--lexicon") else value
    proc = run_script("decode.py", "--decoder", "4gram", "--checkpoint", checkpoint,
                      "--manifests", data, "--subsets", "train", "--run", tmp_path / "run",
                      *[x for pair in given.items() for x in pair], check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "run" / "emissions").exists()


def test_tuning_keeps_its_trials_resumes_and_never_mixes_settings(tmp_path, tiny_lm):
    from w2v2_10min.tune_lm import tune

    symbols = lm.SPECIALS + [line.split()[0] for line in dict_text().splitlines()]
    search = lm.LexiconSearch(tiny_lm / "lm.arpa", tiny_lm / "lexicon.ltr.lst", symbols)
    utterances = [emissions_for("THE|CAT|SAT|", symbols, noise=2.0, seed=1),
                  emissions_for("THE|DOG|RAN|", symbols, noise=2.0, seed=2)]
    refs = ["THE CAT SAT", "THE DOG RAN"]
    storage, key = tmp_path / "tune-4gram" / "optuna.db", {"checkpoint_sha256": "a"}

    def decode(utterances, settings):
        return search.decode(utterances, settings, 1)
    study = tune(decode, utterances, refs, 4, 50, 1, storage, key)
    assert len(study.trials) == 4
    study = tune(decode, utterances, refs, 6, 50, 1, storage, key)  # two more, not six
    assert len(study.trials) == 6
    assert study.best_value == min(t.value for t in study.trials)
    for trial in study.trials:
        assert 0 <= trial.params["lm_weight"] <= 5 and -5 <= trial.params["word_score"] <= 5
    with pytest.raises(UserError, match="holds trials for another checkpoint"):
        tune(decode, utterances, refs, 8, 50, 1, storage, {"checkpoint_sha256": "b"})


def test_tuning_is_up_to_date_only_for_its_key_its_trials_and_its_last_trial(tmp_path):
    """A rerun of `make tune-lm` stops before loading the LM only when weights.json holds at
    least the trials asked for, for exactly this checkpoint, LM, lexicon, set and beam, and
    no trial was made after it (an interrupted later tuning)."""
    import json
    import os

    from w2v2_10min.tune_lm import finished

    out, key = tmp_path / "tune-4gram", {"checkpoint_sha256": "a", "beam": 500}
    assert finished(out, key, 16) is None  # never tuned
    out.mkdir()
    (out / "optuna.db").write_bytes(b"trials")
    record = {"trials": 16, "wer": 3.0, "tuning_key": key}
    (out / "weights.json").write_text(json.dumps(record))
    assert finished(out, key, 16) == record and finished(out, key, 8) == record
    assert finished(out, key, 32) is None  # more trials asked for
    assert finished(out, {**key, "beam": 50}, 16) is None
    later = (out / "weights.json").stat().st_mtime_ns + 1_000_000
    os.utime(out / "optuna.db", ns=(later, later))  # a trial after weights.json
    assert finished(out, key, 16) is None
    (out / "weights.json").write_text(json.dumps({"trials": 16, "wer": 3.0}))  # older file
    assert finished(out, key, 16) is None


# ---- tuning by rescoring the beam's hypotheses (w2v2_10min.rescore, TUNE=rescore) ----------
def noisy_set(symbols, copies=3, noise=3.0):
    texts = ["THE|CAT|SAT|", "THE|DOG|RAN|", "THE|CAT|RAN|", "THE|DOG|SAT|"] * copies
    utterances = [emissions_for(t, symbols, noise=noise, seed=i) for i, t in enumerate(texts)]
    return utterances, [t.replace("|", " ").strip() for t in texts]


def test_each_kept_hypothesis_scores_as_flashlight_scored_it(tiny_lm):
    """flashlight's score of every hypothesis of the final beam is acoustic + lm_weight * LM +
    word_score * words (sil_score 0, unk_score -inf), to float tolerance: rescoring a decode's
    beam at its own weights gives its own scores, and its own best."""
    from w2v2_10min.rescore import Lists

    symbols = lm.SPECIALS + [line.split()[0] for line in dict_text().splitlines()]
    search = lm.LexiconSearch(tiny_lm / "lm.arpa", tiny_lm / "lexicon.ltr.lst", symbols)
    utterances, refs = noisy_set(symbols)
    compared = 0
    for lm_weight, word_score in [(0.0, 0.0), (0.5, -1.0), (2.0, 1.0), (4.5, -3.5)]:
        settings = {"beam": 50, "beam_threshold": 25.0, "lm_weight": lm_weight,
                    "word_score": word_score}
        decoder = search.decoder(settings)
        for emissions in utterances:
            for result in search.results(decoder, emissions):
                acoustic, lm_score, words, _ = lm.hypothesis(result, search.words(result))
                assert result.score == pytest.approx(
                    acoustic + lm_weight * lm_score + word_score * words, rel=1e-6, abs=1e-4)
                compared += 1
        beams = search.decode(utterances, settings, jobs=2, beams=True)
        lists = Lists(refs)
        lists.merge(beams)
        assert lists.best(lm_weight, word_score) == search.decode(utterances, settings, jobs=1)
    assert compared > 4 * len(utterances)  # beams of several hypotheses


def test_the_grid_rescoring_chooses_as_rescoring_each_pair_does():
    """Lists.grid_errors (what the search scores, the whole grid at once) gives at every pair
    the errors of Lists.errors at that pair alone: the same hypothesis chosen, ties included
    (whole-number scores tie often on a grid of halves), and an utterance with no hypothesis
    kept counts all its words."""
    from w2v2_10min.rescore import Lists

    rng = np.random.default_rng(3)
    refs = [" ".join("ABCD"[i % 4] * (1 + i % 3) for i in range(k)) for k in range(1, 41)]
    lists = Lists(refs)
    beams = []
    for u, ref in enumerate(refs):
        words = ref.split()
        beam = [(float(rng.integers(-30, 0)), float(rng.integers(-20, 0)), n,
                 " ".join(rng.choice(words + ["X"], size=n)))
                for n in rng.integers(1, len(words) + 3, size=0 if u % 9 == 4 else 12)]
        beams.append([(a, lm_, len(w.split()), w) for a, lm_, _, w in beam])
    lists.merge(beams)
    assert any(not kept for kept in lists.kept)
    # both sides count these words (Lists.lost), so pin them here
    assert lists.lost() == sum(len(ref.split()) for u, ref in enumerate(refs) if u % 9 == 4) > 0
    lm_weights, word_scores = np.linspace(0, 5, 11), np.linspace(-5, 5, 21)
    grid = lists.grid_errors(lm_weights, word_scores)
    one_by_one = [[lists.errors(a, b) for b in word_scores] for a in lm_weights]
    assert grid.tolist() == one_by_one
    assert len({*grid.ravel().tolist()}) > 5  # the weights matter on these lists


def test_weights_found_by_rescoring_are_confirmed_by_a_full_decode(tiny_lm):
    """The pair rescoring prefers, decoded in full: its best hypothesis is the rescoring's best
    for at least 90% of the utterances (those it differs on: a hypothesis the first decode's
    beam had pruned), and its WER is the rescoring's within one utterance's words."""
    from w2v2_10min.rescore import Lists, search as rescoring_search
    from w2v2_10min.score import corpus_scores

    symbols = lm.SPECIALS + [line.split()[0] for line in dict_text().splitlines()]
    search = lm.LexiconSearch(tiny_lm / "lm.arpa", tiny_lm / "lexicon.ltr.lst", symbols)
    utterances, refs = noisy_set(symbols, copies=4, noise=3.5)
    start = {"beam": 50, "beam_threshold": 25.0, "lm_weight": 0.0, "word_score": 4.0}
    lists = Lists(refs)
    beams = search.decode(utterances, start, jobs=2, beams=True)
    lists.merge(beams)
    words = sum(len(r.split()) for r in refs)
    first = corpus_scores(refs, [beam[0][3] for beam in beams])["wer"]
    point, predicted, close, _ = rescoring_search(
        lists, words, lm.SEARCH_SPACE, [({"lm_weight": 0.0, "word_score": 4.0}, first)])
    assert close is None and predicted < first  # a new pair, better on the lists
    decoded = search.decode(utterances, {**start, **point}, jobs=2)
    rescored = lists.best(**point)
    same = sum(a == b for a, b in zip(decoded, rescored))
    assert same >= 0.9 * len(utterances), (point, decoded, rescored)
    assert abs(corpus_scores(refs, decoded)["wer"] - predicted) <= 100 * 3 / words


def test_rescoring_does_not_trust_the_lists_where_a_decode_found_them_optimistic():
    """A decode that measured worse than its lists say (its search pruned the hypothesis the
    lists rank first) makes rescoring's search count that gap around it: the tuning stops at
    the decoded pair instead of proposing a pair whose promise rests on the same lists."""
    from w2v2_10min.rescore import Lists, search as rescoring_search

    lists = Lists(["A B"])  # right when 2 * lm_weight + word_score > 5, else all words wrong
    lists.merge([[(-10.0, -1.0, 2, "A B"), (-5.0, -3.0, 1, "X")]])
    decoded = {"lm_weight": 4.0, "word_score": 0.0}
    assert lists.errors(**decoded) == 0  # the lists' pick; its decode got all words wrong
    point, predicted, close, _ = rescoring_search(lists, 2, lm.SEARCH_SPACE, [(decoded, 100.0)])
    assert close == decoded and predicted == 100.0


def test_rescoring_moves_to_the_least_lm_weight_of_a_plateau_and_confirms_far_from_it():
    """Every pair with 2 * lm_weight + word_score > 5.05 ranks the right words first on these
    lists: among those tied pairs the search moves to the least LM weight (the least word score
    with it), and the pair it would confirm next (near none decoded) is the tied pair farthest
    from the decoded one."""
    from w2v2_10min.rescore import Lists, search as rescoring_search

    lists = Lists(["A B"])
    lists.merge([[(-10.05, -1.0, 2, "A B"), (-5.0, -3.0, 1, "X")]])
    decoded = {"lm_weight": 0.0, "word_score": 0.0}
    point, predicted, close, runner_up = rescoring_search(lists, 2, lm.SEARCH_SPACE,
                                                          [(decoded, 100.0)])
    assert close is None and predicted == 0.0
    assert point == pytest.approx({"lm_weight": 0.05, "word_score": 5.0})
    assert runner_up == pytest.approx({"lm_weight": 5.0, "word_score": -4.9})
    assert lists.errors(**point) == lists.errors(**runner_up) == 0


def test_rescoring_never_stops_after_one_decode(tmp_path):
    """A first decode whose beams the LM led astray holds no better hypothesis for any pair, so
    rescoring alone would stop there (make demo's Transformer LM did, 6 Dec 2026, 3 runs worse
    than Viterbi); a second decode at the LM's least weight brings the acoustics' choice, and
    the pair chosen is the better of the two decodes."""
    from w2v2_10min import rescore

    calls = []

    def hypotheses(utterances, settings):
        calls.append({k: settings[k] for k in rescore.WEIGHTS})
        if settings["lm_weight"] >= 1.0:  # the LM's favourite only, with its beam-mate
            return [[(-9.0, -1.0, 1, "X"), (-9.5, -1.2, 1, "Y")]]
        return [[(-2.0, -6.0, 2, "A B"), (-9.0, -1.0, 1, "X")]]

    done = rescore.tune(hypotheses, [None], ["A B"], 50, tmp_path, {"k": 1},
                        lm.SEARCH_SPACE)
    assert calls[:2] == [rescore.start_point(lm.SEARCH_SPACE),
                         {"lm_weight": 0.0, "word_score": 0.0}]
    # the first round's search found nothing better than its own decode: it alone would stop
    assert rescore.near(done["rounds"][0]["best"], calls[0], lm.SEARCH_SPACE)
    assert done["wer"] == 0.0 and done["point"]["lm_weight"] < 1.0


def test_once_the_weights_stop_moving_rescoring_decodes_pairs_not_yet_decoded(tmp_path):
    """Where the decodes so far all pruned the right hypothesis, the lists cannot point to the
    pairs that keep it, and the search stops moving after the second decode (before CONFIRM
    decodes of the best pairs not yet decoded, the tuning ended there, all words wrong). Each
    further decode is at a pair near none decoded before, at most CONFIRM of them and
    MAX_ROUNDS decodes in all, and one of them keeps it: the pair chosen decodes every word."""
    from w2v2_10min import rescore

    every = [(-2.0, -6.0, 2, "A B"), (-9.0, -1.0, 1, "X"), (-9.5, -1.2, 1, "Y")]

    def hypotheses(utterances, settings):
        """Beams as flashlight's, best first at their weights; "A B" pruned unless word
        score > 1 (it ranks first where also word_score > 5 * lm_weight - 7)."""
        lm_weight, word_score = settings["lm_weight"], settings["word_score"]
        beam = [h for h in every if h[3] != "A B" or word_score > 1.0]
        return [sorted(beam, key=lambda h: -(h[0] + lm_weight * h[1] + word_score * h[2]))]

    done = rescore.tune(hypotheses, [None], ["A B"], 50, tmp_path, {"k": 1},
                        lm.SEARCH_SPACE)
    rounds = done["rounds"]
    assert [r["wer"] for r in rounds[:2]] == [100.0, 100.0]
    assert rounds[0]["why"] == "least LM"
    assert rescore.near(rounds[1]["best"], rounds[0]["point"], lm.SEARCH_SPACE)  # stopped moving
    assert rounds[1]["why"] == "confirm"
    for r, round_ in enumerate(rounds[:-1]):
        if round_["why"] == "confirm":
            assert not any(rescore.near(round_["next"], earlier["point"], lm.SEARCH_SPACE)
                           for earlier in rounds[:r + 1])
    assert sum(r["why"] == "confirm" for r in rounds) <= rescore.CONFIRM
    assert len(rounds) <= rescore.MAX_ROUNDS and done["converged"]
    assert done["wer"] == 0.0 and done["point"]["word_score"] > 1.0
    # on a tie, a pair the rounds moved to rather than a step-4 decode, then the latest
    tied = [i for i, r in enumerate(rounds) if r["wer"] == 0.0]
    moved = [i for i in tied if rounds[i - 1]["why"] != "confirm"]
    assert done["round"] - 1 == (moved or tied)[-1]


def test_rescore_tuning_resumes_and_never_reuses_another_keys_lists(tmp_path, tiny_lm, capsys):
    """Interrupted after its first round, tuning resumes at the second (the first decode not run
    again); lists kept for another key are not read but started afresh; the rounds stop when
    the search's best pair is near one already decoded, or at MAX_ROUNDS; the pair chosen is a
    decoded one, with the lowest WER its decode measured."""
    from w2v2_10min import rescore

    symbols = lm.SPECIALS + [line.split()[0] for line in dict_text().splitlines()]
    search = lm.LexiconSearch(tiny_lm / "lm.arpa", tiny_lm / "lexicon.ltr.lst", symbols)
    utterances, refs = noisy_set(symbols, copies=2, noise=3.5)
    calls = []

    def hypotheses(utterances, settings):
        calls.append({k: settings[k] for k in rescore.WEIGHTS})
        if len(calls) == 2 and interrupt:
            raise KeyboardInterrupt
        return search.decode(utterances, settings, 1, beams=True)

    out, key = tmp_path / "tune-4gram", {"checkpoint_sha256": "a", "method": "rescore"}
    interrupt, bad = True, {"lm_weight": 0.0, "word_score": 5.0}  # inserts: a round to move
    with pytest.raises(KeyboardInterrupt):
        rescore.tune(hypotheses, utterances, refs, 50, out, key, lm.SEARCH_SPACE, bad)
    assert len(json.loads((out / "rounds.json").read_text())["rounds"]) == 1
    assert calls[0] == bad and rescore.start_point(lm.SEARCH_SPACE) == {"lm_weight": 2.0,
                                                                        "word_score": -1.0}
    interrupt, first = False, list(calls)
    done = rescore.tune(hypotheses, utterances, refs, 50, out, key, lm.SEARCH_SPACE, bad)
    assert calls[len(first)] == calls[1]  # the round the interruption cut, not the first again
    assert "resuming after 1 round(s)" in capsys.readouterr().out
    rounds = done["rounds"]
    assert 2 <= len(rounds) <= rescore.MAX_ROUNDS and rounds[0]["wer"] > done["wer"]
    assert done["converged"] == (rounds[-1]["next"] is None)
    assert done["converged"] or len(rounds) == rescore.MAX_ROUNDS
    assert done["wer"] == min(r["wer"] for r in rounds)
    assert done["point"] in [r["point"] for r in rounds]  # a decoded pair, its WER a decode's
    calls.clear()
    rescore.tune(hypotheses, utterances, refs, 50, out, {**key, "lm_sha256": "b"},
                 lm.SEARCH_SPACE)
    assert calls[0] == {"lm_weight": 2.0, "word_score": -1.0}  # afresh
    assert "holds hypotheses for another" in capsys.readouterr().err
    saved = json.loads((out / "rounds.json").read_text())
    assert saved["tuning_key"] == {**key, "lm_sha256": "b"}
    assert rescore.Lists.load(out / "hypotheses.npz", key, refs) is None
    assert rescore.Lists.load(out / "hypotheses.npz", saved["tuning_key"], refs) is not None


def test_rescore_tuning_starts_afresh_over_unreadable_lists_or_rounds(tmp_path, capsys):
    """A hypotheses.npz or rounds.json cut short (a disk that filled, a copy broken off) is not
    a crash: tuning says so in one line and starts afresh, to the same weights."""
    from w2v2_10min import rescore

    def hypotheses(utterances, settings):
        return [[(-2.0, -6.0, 2, "A B"), (-9.0, -1.0, 1, "X")]]

    out, key = tmp_path / "tune-4gram", {"k": 1}
    whole = rescore.tune(hypotheses, [None], ["A B"], 50, out, key, lm.SEARCH_SPACE)
    for broken in ("hypotheses.npz", "rounds.json"):
        rescore.tune(hypotheses, [None], ["A B"], 50, out, key, lm.SEARCH_SPACE)
        assert "resuming" in capsys.readouterr().out  # whole: resumed, nothing decoded again
        (out / broken).write_bytes((out / broken).read_bytes()[:40])
        again = rescore.tune(hypotheses, [None], ["A B"], 50, out, key, lm.SEARCH_SPACE)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "or unreadable ones; tuning afresh" in err, broken
        assert again["point"] == whole["point"] and len(again["rounds"]) == len(whole["rounds"])


def test_tune_lm_refuses_a_set_without_words_and_an_unknown_method(tmp_path, tiny_lm):
    data = manifest(tmp_path)
    (data / "dev_other.ltr").write_text("\n\n\n")
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"never unpickled: the bad input is found first")
    common = ["--checkpoint", checkpoint, "--manifests", data, "--run", tmp_path / "run",
              "--lm", tiny_lm / "lm.arpa", "--lexicon", tiny_lm / "lexicon.ltr.lst"]
    for extra, message in [([], "dev_other.ltr: no words to tune on"),
                           (["--tune", "grid"], "TUNE=grid: TUNE accepts search or rescore")]:
        proc = run_script("tune_lm.py", *common, *extra, check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0], proc.stderr
    assert not (tmp_path / "run" / "emissions").exists()
