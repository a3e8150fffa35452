"""`make decode DECODER=transformer` gives fairseq's own W2lFairseqLMDecoder's hypotheses and
scores, on the tiny fine-tuned model and the tiny word Transformer LM (trained with fairseq by
`make tiny-transformer-lm`); a bad LM file, a lower-case dictionary and a lexicon word the LM
lacks each stop with one line. `make lm LM=transformer`'s fetch and preparation run against a
local server that serves the tiny LM under the released file names.

fairseq's decoder is run as installed (the reference, not a copy); its unconditional `.cuda()`
calls are made no-ops so that it runs on CPU.
"""
import argparse
import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.bench_transformer_lm import noisy_letters
from conftest import make, one_error, run_script
from local_server import Server, local_only  # noqa: F401  (local_only is autouse)
from w2v2_10min import transformer_search
from w2v2_10min.common import file_digest
from w2v2_10min.emissions import from_cache
from w2v2_10min.lm import BEAM_THRESHOLD, normalised, symbols
from w2v2_10min.transformer_search import TransformerSearch

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # fairseq's decoder loads the LM
SUBSET = "dev_other"
BEAM, WEIGHTS = 8, [(2.0, -1.0), (0.5, 2.0)]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """The demo's lexicon and tiny Transformer LM, as `make demo` makes them."""
    root = tmp_path_factory.mktemp("demo")
    make("tiny-lm", f"DEMO_ROOT={root}")
    make("tiny-transformer-lm", f"DEMO_ROOT={root}")
    return root / "lm"


@pytest.fixture(scope="module")
def run(tiny_run):
    """The tiny model fine-tuned for 20 updates on tiny split 0: RUN_ROOT and its run folder."""
    return tiny_run.parents[2], tiny_run


def decode(tiny_env, run, lm: Path, lexicon: Path, *knobs, check=True):
    return make("decode", "MODEL=tiny", "PROTOCOL=tiny", f"MANIFEST_ROOT={tiny_env / 'manifests'}",
                f"RUN_ROOT={run[0]}", "EVAL_SETS=dev-other", "DECODER=transformer",
                f"TRANSFORMER_LM={lm}", f"TRANSFORMER_LEXICON={lexicon}", f"BEAM={BEAM}", *knobs,
                check=check)


@pytest.fixture
def fairseq_decoder(monkeypatch):
    """fairseq's W2lFairseqLMDecoder for given weights, on CPU (.cuda() made a no-op)."""
    import fairseq
    from fairseq.data import Dictionary

    monkeypatch.syspath_prepend(str(Path(fairseq.__file__).parent))  # its `examples` package
    # w2l_decoder.py imports flashlight-sequence's Viterbi path with the LM decoder's names,
    # in one try; only W2lViterbiDecoder uses it, and it is not installed: a stand-in module
    criterion = types.ModuleType("flashlight.lib.sequence.criterion")
    criterion.CpuViterbiPath = criterion.get_data_ptr_as_bytes = None
    monkeypatch.setitem(sys.modules, "flashlight.lib.sequence", types.ModuleType("sequence"))
    monkeypatch.setitem(sys.modules, "flashlight.lib.sequence.criterion", criterion)
    monkeypatch.delitem(sys.modules, "examples.speech_recognition.w2l_decoder", raising=False)
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *a, **k: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    from examples.speech_recognition.w2l_decoder import W2lFairseqLMDecoder

    def build(manifests: Path, lm: Path, lexicon: Path, lm_weight: float, word_score: float):
        args = argparse.Namespace(nbest=1, lexicon=str(lexicon), kenlm_model=str(lm), beam=BEAM,
                                  beam_threshold=BEAM_THRESHOLD, lm_weight=lm_weight,
                                  word_score=word_score, unk_weight=-math.inf, sil_weight=0.0)
        return W2lFairseqLMDecoder(args, Dictionary.load(str(manifests / "dict.ltr.txt")))
    return build


def cached_emissions(tiny_env, run) -> list[np.ndarray]:
    manifests = tiny_env / "manifests" / "10min-0"
    checkpoint = run[1] / "checkpoints" / "checkpoint_best.pt"

    def missing(subsets):
        raise AssertionError(f"make decode cached no emissions of {subsets}")
    return from_cache(run[1] / "emissions", file_digest(checkpoint), manifests, [SUBSET],
                      missing)[SUBSET]


def test_hypotheses_and_scores_are_fairseqs(tiny_env, run, lm_dir, fairseq_decoder):
    lm, lexicon = lm_dir / "tiny_word_transformer.pt", lm_dir / "lexicon.ltr.lst"
    manifests = tiny_env / "manifests" / "10min-0"
    lm_weight, word_score = WEIGHTS[0]
    decode(tiny_env, run, lm, lexicon, f"LM_WEIGHT={lm_weight}", f"WORD_SCORE={word_score}")
    folder = run[1] / "decode-transformer" / SUBSET
    record = json.loads((folder / "wer.json").read_text())
    assert record["decoder"] == "transformer"
    assert record["decoder_settings"]["lm_sha256"] == file_digest(lm)
    assert record["decoder_settings"]["dictionary_sha256"] == file_digest(lm_dir / "dict.txt")
    ours = (folder / "hyp.wrd").read_text().splitlines()
    utterances = cached_emissions(tiny_env, run)
    # one state per LM call, and the default batch (what make decode ran), one utterance at a
    # time; then the default, several utterances at once (their states in shared batches)
    searches = [TransformerSearch(lm, lexicon, symbols(manifests), batch=batch, parallel=1)
                for batch in (1, transformer_search.BATCH)]
    at_once = TransformerSearch(lm, lexicon, symbols(manifests), parallel=4)
    # the 20-update model emits blanks only: add noisy letter emissions of the references,
    # on which the search places words and the LM decides between them
    utterances = utterances + noisy_letters(manifests, SUBSET, searches[0].symbols)
    worded = 0
    for lm_weight, word_score in WEIGHTS:
        reference = fairseq_decoder(manifests, lm, lexicon, lm_weight, word_score)
        settings = {"beam": BEAM, "beam_threshold": BEAM_THRESHOLD, "lm_weight": lm_weight,
                    "word_score": word_score, "sil_weight": 0.0}
        decoders = [search.decoder(settings) for search in searches]
        together = at_once.decode_all(utterances, settings)
        for i, emissions in enumerate(utterances):
            frames = torch.from_numpy(normalised(emissions, len(searches[0].symbols)))[None]
            expected = reference.decode(frames)[0][0]
            for search, decoder in [*zip(searches, decoders), (at_once, None)]:
                best = together[i] if decoder is None else search.best(decoder, emissions)
                words = [search.dictionary[w] for w in best.words if w >= 0]
                assert words == expected["words"], (i, lm_weight, search.steps.batch,
                                                    search.parallel)
                assert best.score == pytest.approx(expected["score"], rel=1e-5, abs=1e-4)
                if (lm_weight, word_score) == WEIGHTS[0] and i < len(ours):
                    assert " ".join(words) == ours[i]
            worded += bool(words)
    assert worded >= len(WEIGHTS) * (len(utterances) - len(ours)), "too few words to compare"


def test_bad_lm_files_stop_with_one_line(tmp_path, tiny_env, run, lm_dir):
    lexicon = lm_dir / "lexicon.ltr.lst"
    cases = {}
    bad = tmp_path / "bad" / "lm.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"not a checkpoint")
    (bad.parent / "dict.txt").write_bytes((lm_dir / "dict.txt").read_bytes())
    cases["not a fairseq LM checkpoint"] = (bad, lexicon)
    lower = tmp_path / "lower" / "lm.pt"
    lower.parent.mkdir()
    lower.write_bytes((lm_dir / "tiny_word_transformer.pt").read_bytes())
    (lower.parent / "dict.txt").write_bytes((lm_dir / "tiny_word_transformer.dict").read_bytes())
    cases["upper-case dict.txt"] = (lower, lexicon)
    extra = tmp_path / "lexicon.ltr.lst"
    extra.write_text(lexicon.read_text() + "ZEBRA\tZ E B R A |\n")
    cases["1 word(s) not in the LM's dictionary"] = (lm_dir / "tiny_word_transformer.pt", extra)
    for said, (lm, lex) in cases.items():
        proc = decode(tiny_env, run, lm, lex, "LM_WEIGHT=1", "WORD_SCORE=0", check=False)
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
        assert len(lines) == 1 and said in lines[0], proc.stderr


@pytest.fixture
def lm_server(lm_dir):
    """The tiny LM and its lower-case vocabulary under the released names, on 127.0.0.1."""
    srv = Server()
    srv.files = {"lm_librispeech_word_transformer.pt":
                 (lm_dir / "tiny_word_transformer.pt").read_bytes(),
                 "lm_librispeech_word_transformer.dict":
                 (lm_dir / "tiny_word_transformer.dict").read_bytes()}
    yield srv
    srv.close()


def fetch_lm(dest: Path, words: Path, url: str, check=True):
    return run_script("transformer_lm.py", "--dest", dest, "--words", words, "--base-url", url,
                      check=check)


def test_make_lm_transformer_fetches_checks_and_prepares(tmp_path, tiny_env, lm_dir, lm_server):
    """Downloaded with SHA-256 recorded, dict.txt upper-cased, the lexicon cut to the LM's
    words; a rerun verifies instead of fetching; a changed file or bad input gives one line."""
    dest, words = tmp_path / "transformer", tmp_path / "librispeech-lexicon.txt"
    known = [line.split()[0] for line in (lm_dir / "dict.txt").read_text().splitlines()]
    # LibriSpeech's lexicon lists words with their phones; one here the LM never saw
    words.write_text("".join(f"{w}\tW ER1 D\n" for w in known if w.isalpha()) + "ZEBRA\tZ IY1\n")
    fetch_lm(dest, words, lm_server.url)
    for name in ("lm_librispeech_word_transformer.pt", "lm_librispeech_word_transformer.dict"):
        record = (dest / f"{name}.sha256").read_text().split()
        assert record == [file_digest(dest / name), name]
        assert (dest / name).read_bytes() == lm_server.files[name]
    assert (dest / "dict.txt").read_text() == (lm_dir / "dict.txt").read_text()
    lexicon = (dest / "lexicon.ltr.lst").read_text().splitlines()
    assert "ZEBRA" not in {line.split("\t")[0] for line in lexicon}
    assert len(lexicon) == sum(w.isalpha() for w in known)
    # the decoder takes what it prepared: the words of the lexicon are all the LM's
    search = TransformerSearch(dest / "lm_librispeech_word_transformer.pt",
                               dest / "lexicon.ltr.lst",
                               symbols(tiny_env / "manifests" / "10min-0"))
    assert len(search.dictionary) == len(known) + 4  # fairseq's <s> <pad> </s> <unk>
    asked = len(lm_server.requests)
    fetch_lm(dest, words, lm_server.url)
    assert len(lm_server.requests) == asked, "a verified file is not fetched again"
    # a file changed after its first download is refused before it is unpickled
    with (dest / "lm_librispeech_word_transformer.pt").open("ab") as out:
        out.write(b"tampered")
    line = one_error(fetch_lm(dest, words, lm_server.url, check=False))
    assert "differs from the recorded" in line and "lm_librispeech_word_transformer.pt" in line
    # not a checkpoint, though the download is what the server sent
    lm_server.files["lm_librispeech_word_transformer.pt"] = b"not a checkpoint"
    line = one_error(fetch_lm(tmp_path / "bad", words, lm_server.url, check=False))
    assert "not a fairseq LM checkpoint" in line
    # a vocabulary whose words collide once upper-cased, and a missing word list
    lm_server.files["lm_librispeech_word_transformer.dict"] = b"the 10\nThe 3\n"
    line = one_error(fetch_lm(tmp_path / "twice", words, lm_server.url, check=False))
    assert "upper-cases to 'THE'" in line
    line = one_error(fetch_lm(tmp_path / "none", tmp_path / "nowhere.txt", lm_server.url,
                             check=False))
    assert "nowhere.txt: word list not found" in line
    assert not (tmp_path / "none").exists(), "nothing fetched without a word list"


def test_make_lm_transformer_plan():
    """`make lm LM=transformer` runs the fetch into TRANSFORMER_LM's folder after the 4-gram's."""
    plan = make("-n", "lm", "LM=transformer", "DATA=/d").stdout
    assert "scripts/transformer_lm.py --dest /d/transformer/ --words /d/librispeech-lexicon.txt" \
        in plan
    assert "transformer_lm.py" not in make("-n", "lm", "DATA=/d").stdout


def test_the_transformer_beams_kept_hypotheses_score_as_flashlight_scored_them(tiny_env, lm_dir):
    """TUNE=rescore's lists from the Transformer LM search (w2v2_10min.rescore): each
    hypothesis of each final beam scores acoustic + lm_weight * LM + word_score * words, as
    flashlight scored it, and the lists' best at the decode's weights is the decode's."""
    from w2v2_10min.lm import hypothesis
    from w2v2_10min.rescore import Lists

    lm, lexicon = lm_dir / "tiny_word_transformer.pt", lm_dir / "lexicon.ltr.lst"
    manifests = tiny_env / "manifests" / "10min-0"
    search = TransformerSearch(lm, lexicon, symbols(manifests), parallel=4)
    utterances = noisy_letters(manifests, SUBSET, search.symbols)  # words for the LM to weigh
    compared = 0
    for lm_weight, word_score in WEIGHTS:
        settings = {"beam": BEAM, "beam_threshold": BEAM_THRESHOLD, "lm_weight": lm_weight,
                    "word_score": word_score}
        beams = search.decode_all(utterances, settings, beams=True)
        for beam in beams:
            for result in beam:
                acoustic, lm_score, words, _ = hypothesis(result, search.words(result))
                assert result.score == pytest.approx(
                    acoustic + lm_weight * lm_score + word_score * words, rel=1e-6, abs=1e-4)
                compared += 1
        lists = Lists(["X"] * len(utterances))  # a made-up reference: errors not asked for
        lists.merge(search.hypotheses(utterances, settings))
        assert lists.best(lm_weight, word_score) == search.decode(utterances, settings)
    assert compared > 2 * len(utterances)


def test_tune_lm_transformer_tunes_at_beam_50_and_decode_uses_its_weights(tiny_env, run, lm_dir):
    """`make tune-lm DECODER=transformer`: the paper's tuning beam (50) by default, its own
    folder (tune-transformer/, apart from the 4-gram's), weights `make decode` then takes."""
    lm, lexicon = lm_dir / "tiny_word_transformer.pt", lm_dir / "lexicon.ltr.lst"
    knobs = ["MODEL=tiny", "PROTOCOL=tiny", f"MANIFEST_ROOT={tiny_env / 'manifests'}",
             f"RUN_ROOT={run[0]}", "DECODER=transformer", f"TRANSFORMER_LM={lm}",
             f"TRANSFORMER_LEXICON={lexicon}"]
    make("tune-lm", *knobs, "TRIALS=3", "TUNE=search")
    tuned = run[1] / "tune-transformer" / "weights.json"
    searched = json.loads(tuned.read_text())
    assert searched["tuning_method"] == "search" and searched["decodes"] == 3
    make("tune-lm", *knobs, "TRIALS=3", "TUNE=rescore")  # another method, tuned again
    weights = json.loads(tuned.read_text())
    assert weights["tuning_method"] == "rescore" and weights["tuning_key"]["method"] == "rescore"
    assert 1 <= weights["decodes"] <= weights["max_rounds"]
    assert weights["wer"] == min(r["wer"] for r in weights["rounds"])
    assert weights["decoder"] == "transformer" and weights["beam"] == 50
    assert weights["trials"] == weights["decodes"] and weights["subset"] == SUBSET
    assert weights["sampler"] == "grid 101x101" and weights["tuning_key"]["grid"] == 101
    again = make("tune-lm", *knobs, "TUNE=rescore").stdout  # TRIALS are the search's alone
    assert f"tune-transformer is up to date (rescore, {weights['decodes']} decodes" in again
    assert weights["dictionary_sha256"] == file_digest(lm_dir / "dict.txt")
    assert not (run[1] / "tune-4gram" / "weights.json").exists() or \
        json.loads((run[1] / "tune-4gram" / "weights.json").read_text()).get("decoder") != \
        "transformer"
    decode(tiny_env, run, lm, lexicon)
    record = json.loads((run[1] / "decode-transformer" / SUBSET / "wer.json").read_text())
    settings = record["decoder_settings"]
    assert settings["weights_from"] == str(tuned.resolve())
    assert (settings["lm_weight"], settings["word_score"]) == \
        (weights["lm_weight"], weights["word_score"])


def test_a_small_lm_cache_and_fp16_keep_the_words(tiny_env, run, lm_dir):
    """States dropped from a cache of 3 and run again give the same words and scores as the
    default cache (which the test above holds to fairseq's), with more steps run; fp16 gives
    the same words on the tiny LM (its scores differ slightly)."""
    lm, lexicon = lm_dir / "tiny_word_transformer.pt", lm_dir / "lexicon.ltr.lst"
    manifests = tiny_env / "manifests" / "10min-0"
    output_symbols = symbols(manifests)
    utterances = noisy_letters(manifests, SUBSET, output_symbols)
    # a light LM weight, as tuning picks for the tiny LM: a wide search, many LM states
    settings = {"beam": 50, "beam_threshold": BEAM_THRESHOLD, "lm_weight": 0.3,
                "word_score": 0.0, "sil_weight": 0.0}
    results = {}
    # the default cache against 3 at one batch size, so that steps counted run again
    for name, options in {"default": {"batch": 4}, "cache 3": {"cache": 3, "batch": 4},
                          "fp16": {"fp16": True}}.items():
        search = TransformerSearch(lm, lexicon, output_symbols, parallel=1, **options)
        decoder = search.decoder(settings)
        most = 0
        best = []
        for emissions in utterances:
            best.append(search.best(decoder, emissions))
            most = max(most, len(search.lm.kept))
        results[name] = (best, search.lm.steps_run, most)
    default, capped, half = results["default"], results["cache 3"], results["fp16"]
    for a, b in zip(default[0], capped[0]):
        assert a.words == b.words and a.score == pytest.approx(b.score, rel=1e-6, abs=1e-5)
    assert capped[1] > default[1], "the dropped states were run again"
    # at most the cache and what one request runs (a prefix and a batch) beyond it
    longest = max(sum(w >= 0 for w in b.words) for b in default[0]) + 2
    assert capped[2] <= 3 + longest + 4 < default[2]
    assert [b.words for b in half[0]] == [b.words for b in default[0]]
    assert sum(w >= 0 for b in default[0] for w in b.words) >= 2 * len(utterances)


def test_utterances_searched_at_once_share_lm_passes_and_an_error_stops_them(tiny_env, lm_dir):
    """Utterances searched at once give the words of one at a time in fewer LM passes (their
    waiting states run together); one that fails stops the others and its error reaches the
    caller, with no search left waiting."""
    import threading

    lm, lexicon = lm_dir / "tiny_word_transformer.pt", lm_dir / "lexicon.ltr.lst"
    output_symbols = symbols(tiny_env / "manifests" / "10min-0")
    utterances = noisy_letters(tiny_env / "manifests" / "10min-0", SUBSET, output_symbols)
    settings = {"beam": 50, "beam_threshold": BEAM_THRESHOLD, "lm_weight": 0.3,
                "word_score": 0.0, "sil_weight": 0.0}
    passes, words = {}, {}
    for parallel in (1, 8):
        search = TransformerSearch(lm, lexicon, output_symbols, batch=64, parallel=parallel)
        rows = []
        search.steps.model.register_forward_pre_hook(lambda m, a: rows.append(len(a[0])))
        words[parallel] = [best.words for best in search.decode_all(utterances, settings)]
        passes[parallel] = rows
    assert words[8] == words[1]
    assert len(passes[8]) <= len(passes[1]) / 2, passes
    assert max(passes[8]) > max(passes[1])

    bad = utterances[:3] + [np.zeros((5, len(output_symbols) + 1), np.float32)] + utterances[3:]
    outcome = []

    def run_bad():
        try:
            search.decode_all(bad, settings)
        except Exception as err:  # noqa: BLE001 (the test reads it)
            outcome.append(err)
    caller = threading.Thread(target=run_bad, daemon=True)
    caller.start()
    caller.join(120)
    assert not caller.is_alive(), "a search was left waiting"
    assert len(outcome) == 1 and "decode with the manifest" in str(outcome[0])
    assert search.steps.searches == 0 and not search.steps.waiting
    assert [b.words for b in search.decode_all(utterances, settings)] == words[1]


CTRL_C_DURING_SEARCH = """
import os, signal, sys, threading
from pathlib import Path
from bench.bench_transformer_lm import noisy_letters
from w2v2_10min.lm import BEAM_THRESHOLD, symbols
from w2v2_10min.transformer_search import TransformerSearch

signal.signal(signal.SIGINT, signal.default_int_handler)  # as Python sets it in a terminal
lm, lexicon, manifests = map(Path, sys.argv[1:4])
output_symbols = symbols(manifests)
utterances = noisy_letters(manifests, "dev_other", output_symbols) * 6
settings = {"beam": 50, "beam_threshold": BEAM_THRESHOLD, "lm_weight": 0.3, "word_score": 0.0,
            "sil_weight": 0.0}
search = TransformerSearch(lm, lexicon, output_symbols, parallel=4)
finished = []

def done(i, best):  # Ctrl-C once the first utterance is in, the other searches mid-way
    finished.append(i)
    if len(finished) == 1:
        os.kill(os.getpid(), signal.SIGINT)
try:
    search.decode_all(utterances, settings, done)
    print("not interrupted")
except KeyboardInterrupt:
    alive = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    print("interrupted", len(finished), "of", len(utterances), "alive", alive,
          search.steps.stopped, search.steps.searches, len(search.steps.waiting))
again = [best.words for best in search.decode_all(utterances, settings)]
fresh = TransformerSearch(lm, lexicon, output_symbols, parallel=4)
print("same words after it", again == [b.words for b in fresh.decode_all(utterances, settings)])
"""


def test_ctrl_c_while_searching_ends_every_search_before_it_is_raised(tiny_env, lm_dir):
    """Ctrl-C while utterances are searched at once: KeyboardInterrupt reaches the caller only
    once no search thread runs (none is left inside flashlight's C++ at the interpreter's
    exit, which aborted the process), and the same search then decodes as a new one."""
    import subprocess

    from conftest import PYTHON, REPO
    proc = subprocess.run([PYTHON, "-c", CTRL_C_DURING_SEARCH, lm_dir / "tiny_word_transformer.pt",
                           lm_dir / "lexicon.ltr.lst", tiny_env / "manifests" / "10min-0"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = proc.stdout.splitlines()
    interrupted = said[0].split()
    assert interrupted[0] == "interrupted", said
    assert int(interrupted[1]) < int(interrupted[3])  # it stopped before the end
    assert " ".join(interrupted[4:]) == "alive [] False 0 0", said
    assert said[1] == "same words after it True"


def test_tiny_transformer_lm_is_the_same_file_each_time(tmp_path, lm_dir):
    """Trained again, the tiny LM is byte for byte the same (its SHA-256 keys the tuned
    weights), and `make tiny-transformer-lm` does not train again when nothing changed."""
    make("tiny-transformer-lm", f"DEMO_ROOT={tmp_path}")
    name = "tiny_word_transformer.pt"
    assert file_digest(tmp_path / "lm" / name) == file_digest(lm_dir / name)
    again = make("tiny-transformer-lm", f"DEMO_ROOT={tmp_path}")
    assert "make_tiny_transformer_lm.py" not in again.stdout + again.stderr


def test_interrupted_tuning_says_one_line_and_a_rerun_continues(tiny_env, run, lm_dir, tmp_path):
    """Ctrl-C during `tune-lm DECODER=transformer`: one line and status 130, the finished trials
    kept; the same command again runs only the trials still owed."""
    import shutil
    import signal
    import subprocess

    from conftest import PYTHON, REPO
    tuned = run[1] / "tune-transformer"
    shutil.rmtree(tuned, ignore_errors=True)  # a study of its own (the other tuning test's)
    args = [PYTHON, str(REPO / "scripts/tune_lm.py"), "--decoder", "transformer",
            "--lm", lm_dir / "tiny_word_transformer.pt", "--lexicon", lm_dir / "lexicon.ltr.lst",
            "--manifests", tiny_env / "manifests" / "10min-0", "--run-root", tmp_path / "runs",
            "--run", run[1], "--tune", "search", "--trials", "40"]
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    finished = 0
    for line in proc.stdout:  # interrupt once two trials are in
        finished += line.startswith("trial ")
        if finished == 2:
            break
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error: ")] == \
        ["error: interrupted; run the same command again to continue"]
    again = run_script("tune_lm.py", *args[2:-1], "5")
    weights = json.loads((tuned / "weights.json").read_text())
    assert weights["trials"] == 5 and again.stdout.count("trial ") < 5
    shutil.rmtree(tuned)
