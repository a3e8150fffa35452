"""The whole chain on the embedded tiny corpus, through the same Make targets as `make demo`.

Proves learning, not just memorising: after the tiny recipe's updates every run of the demo's
grid (3 splits x 2 seeds) reads the held-out synthetic dev and test sets, new sentences from new
voices, with Viterbi WER under HELD_OUT_BOUND; the 4-gram LM lowers it further, and so does the
word Transformer LM; the same recipe stopped after a few updates stays far above it, and
fairseq's own path (FAST=0) makes those updates as the demo's fast path does (those two:
test_end_to_end_paths.py).
"""
import json
import os

import pytest
import yaml

from conftest import PYTHON, REPO, make, on_terminal, run_script, squeeze
from demo_bounds import HELD_OUT, HELD_OUT_BOUND, RUN, held_out_wer
from w2v2_10min.common import file_digest
from w2v2_10min import emissions
from w2v2_10min.decoders import viterbi
from w2v2_10min.loading import load_finetuned
from w2v2_10min.score import summarise, utterance_errors

RUNS = [f"tiny-tiny/10min-{k}/seed-{s}" for k in (0, 1, 2) for s in (1, 2)]
EVAL_UTTERANCES = {"librivox_real": 5, **{s: 10 for s in HELD_OUT}}
TRAIN_UTTERANCES = 64


def pooled(runs, subsets) -> float:
    """WER over all the runs' utterances of these sets together (errors / words)."""
    records = [json.loads((run / "decode" / s / "wer.json").read_text())
               for run in runs for s in subsets]
    return 100 * sum(r["errors"] for r in records) / sum(r["words"] for r in records)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    knobs = [f"DEMO_ROOT={root / 'demo'}", f"PRETRAINED_DIR={root / 'pretrained'}"]
    proc = make("demo", *knobs)
    return root, knobs, proc.stdout


def test_demo_ends_with_the_table(demo):
    root, _, stdout = demo
    assert "# 10-minute fine-tuning: WER (%) against the paper's Table 9" in stdout
    table = squeeze((root / "demo/results/table9.md").read_text())
    for subset in ["dev_clean", "dev_other", "test_clean", "test_other", "librivox_real"]:
        record = json.loads((root / "demo" / RUN / "decode" / subset / "wer.json").read_text())
        assert record["utterances"] == EVAL_UTTERANCES[subset]
        assert f"| {subset} | {record['wer']:.2f} |" in table
        lines = (root / "demo" / RUN / "decode" / subset / "hyp.wrd").read_text().splitlines()
        assert len(lines) == record["utterances"]
    assert (root / "demo/results/wer-dev_other.png").stat().st_size > 1000
    # for each of the 6 runs, one row per subset and decoder: Viterbi (and its train row),
    # 4-gram, Transformer LM
    assert (root / "demo/results/table9.csv").read_text().count("\n") == 1 + 6 * (5 + 1 + 5 + 5)


def test_demo_report_opens_with_the_spread_in_plain_words(demo):
    """The first lines say how much WER varies between splits and between seeds, and that the
    numbers are synthetic; every statistic of the grid is filled in."""
    root, _, stdout = demo
    start = stdout.index("# 10-minute fine-tuning: WER (%) against the paper's Table 9")
    opening = stdout[start:stdout.index("## Viterbi", start)]
    assert "3 splits, 2 seeds each (6 runs)" in opening
    assert "sd " in opening and "between splits" in opening and "between seeds" in opening
    assert "say nothing about wav2vec 2.0" in opening and "synthetic" in opening
    analysis = json.loads((root / "demo/results/statistics.json").read_text())
    for setting in analysis:
        assert (setting["model"], setting["protocol"]) == ("tiny", "tiny")
        for subset in HELD_OUT:
            entry = setting["subsets"][subset]
            (level,) = [lr["all"] for lr in entry["seed_level"].values()]
            assert level["splits"] == 3 and level["runs_count"] == 6
            if level["var_total"] == 0:  # every run read the set perfectly (the 4-gram can)
                assert level["icc"] is None and level["method"] == "every run has the same WER"
            else:
                assert level["icc"] is not None and 0 <= level["icc"] <= 1
            assert level["ci"] and level["pi_run"] and level["var_seed"] is not None
            assert entry["selected"]["all"]["pi"]  # the paper-style best-of-runs interval
    readme = (root / "demo/results/README.md").read_text()
    assert "![wer-dev_other.png](wer-dev_other.png)" in readme


def test_fine_tuning_generalises_to_new_sentences_and_voices(demo):
    """Held-out speech (new sentences, voices no run was trained on): every run well below 100%,
    each of the four sets under HELD_OUT_BOUND over the grid; the real LibriVox clips stay
    foreign."""
    root, _, _ = demo
    runs = [root / "demo" / run for run in RUNS]
    for run in runs:
        assert all(wer < 70 for wer in held_out_wer(run).values()), run
    each = {s: pooled(runs, [s]) for s in HELD_OUT}
    assert max(each.values()) <= HELD_OUT_BOUND, each
    real = [json.loads((run / "decode/librivox_real/wer.json").read_text())["wer"] for run in runs]
    assert min(real) >= 80


def test_demo_shows_its_training_set_apart_from_the_held_out_sets(demo):
    """The table itself shows that fine-tuning learned: the split's own training utterances,
    read back almost perfectly, in a table of their own under the held-out rows."""
    root, _, stdout = demo
    stdout = squeeze(stdout)
    train = json.loads((root / "demo" / RUN / "decode/train/wer.json").read_text())
    assert train["utterances"] == TRAIN_UTTERANCES and train["wer"] <= 15
    assert (f"| split 0, seed 1 | {train['wer']:.1f} | {train['cer']:.1f} | "
            f"{TRAIN_UTTERANCES} |") in stdout
    held_out = [line for line in stdout.splitlines() if line.startswith("| row |")]
    assert held_out == ["| row | dev_clean | dev_other | test_clean | test_other | "
                        "librivox_real |"] * 3  # Viterbi, 4-gram, Transformer: no train column


def held_out_errors(run, folder: str) -> int:
    """Word errors of one of the run's decoders (its folder) on the synthetic held-out sets."""
    return sum(json.loads((run / folder / s / "wer.json").read_text())["errors"]
               for s in HELD_OUT)


def check_lm_decodes(run, decoder: str, beam: int, tuned: dict, lm) -> None:
    """Every set decoded with the LM decoder at `beam` with the tuned weights and this LM."""
    for subset in EVAL_UTTERANCES:
        record = json.loads((run / f"decode-{decoder}" / subset / "wer.json").read_text())
        settings = record["decoder_settings"]
        assert record["decoder"] == decoder and settings["beam"] == beam
        assert (settings["lm_weight"], settings["word_score"]) == (tuned["lm_weight"],
                                                                   tuned["word_score"])
        assert settings["lm_sha256"] == file_digest(lm)
        assert record["utterances"] == EVAL_UTTERANCES[subset]


def test_rerun_is_a_no_op_that_keeps_results(demo):
    root, knobs, _ = demo
    wer_json = root / "demo" / RUN / "decode/dev_other/wer.json"
    lm_json = root / "demo" / RUN / "decode-4gram/dev_other/wer.json"
    before = wer_json.stat().st_mtime_ns, lm_json.stat().st_mtime_ns
    stdout = make("demo", *knobs).stdout
    assert "is finished" in stdout and "decode is up to date" in stdout
    assert "decode-4gram is up to date" in stdout
    assert "tune-4gram is up to date" in stdout and "tune-transformer is up to date" in stdout
    assert (wer_json.stat().st_mtime_ns, lm_json.stat().st_mtime_ns) == before


def test_decoder_agrees_with_fairseqs_validation_wer(demo):
    """Batched as fairseq's validation batches them (padded, up to the recipe's max_tokens), our
    best-path decoding and scoring give the dev_other WER fairseq logged for checkpoint_best.
    `make decode` itself decodes group-norm models unpadded (w2v2_10min.loading.batching)."""
    root, _, _ = demo
    run = root / "demo" / RUN
    log = sorted((run / "logs").glob("finetune-*.log"))[-1].read_text()
    logged = [line for line in log.splitlines() if "[dev_other][INFO]" in line]
    best = float(logged[-1].split("| wer ")[1].split()[0])  # one validation: the best
    config = yaml.safe_load((run / "config.yaml").read_text())["dataset"]
    model, task, _ = load_finetuned(run / "checkpoints/checkpoint_best.pt",
                                    root / "demo/manifests/10min-0", "cpu")
    as_fairseq = {"feature_norm": "group", "max_sentences": None, "padded": True,
                  "max_tokens": config["max_tokens"]}
    frames = emissions.compute(model, task, "dev_other", "cpu", 0, plan=as_fairseq)
    refs = emissions.references(root / "demo/manifests/10min-0", "dev_other")
    ours = summarise(utterance_errors(refs, viterbi.words(task.target_dictionary, frames)))
    assert ours["wer"] == pytest.approx(best, abs=0.001)


def test_decoding_shows_progress_on_a_terminal(demo, tmp_path):
    """Utterances decoded so far, of how many, on a terminal; nothing of it in captured output."""
    root, _, _ = demo
    args = ["--checkpoint", root / "demo" / RUN / "checkpoints/checkpoint_best.pt",
            "--manifests", root / "demo/manifests/10min-0", "--subsets", "train", "--device", "cpu"]
    captured = run_script("decode.py", *args, "--run", tmp_path / "captured")
    assert "utt/s" not in captured.stderr + captured.stdout
    assert "s/utt" not in captured.stderr + captured.stdout
    code, seen = on_terminal(PYTHON, REPO / "scripts/decode.py", *args, "--run", tmp_path / "tty")
    bars = [line for line in seen.split("\r") if line.startswith("decoding train:")]
    # tqdm gives the rate as utt/s, or as s/utt below one utterance a second (a busy machine)
    assert code == 0 and bars and all(f"/{TRAIN_UTTERANCES} [" in line and ("utt/s]" in line or "s/utt]" in line)
                                      for line in bars)


def test_demo_shows_the_4gram_row_decoded_with_the_tuned_weights(demo):
    root, _, stdout = demo
    run = root / "demo" / RUN
    tuned = json.loads((run / "tune-4gram/weights.json").read_text())
    trials = json.loads((run / "tune-4gram/trials.json").read_text())
    assert len(trials) == tuned["trials"] == 16 and tuned["beam"] == 500
    assert tuned["wer"] == min(t["wer"] for t in trials)
    assert 0 <= tuned["lm_weight"] <= 5 and -5 <= tuned["word_score"] <= 5
    lm = root / "demo/lm/4-gram.arpa.gz"
    table = (root / "demo/results/table9.md").read_text()
    assert "4-gram LM (KenLM, lexicon beam search)" in table and "4-gram" in stdout
    check_lm_decodes(run, "4gram", 1500, tuned, lm)
    # held-out sets: the LM knows their words (not their sentences) and lowers the errors
    for run in [root / "demo" / r for r in RUNS]:
        assert held_out_errors(run, "decode-4gram") < held_out_errors(run, "decode"), run
    # every set the Viterbi decode read, its training split too (DECODE_TRAIN=1), kept once
    assert sorted(p.name for p in (run / "emissions").iterdir()) == sorted(
        f"{s}.npz" for s in ["dev_clean", "dev_other", "test_clean", "test_other",
                             "librivox_real", "train"])


def test_lm_decoding_beats_viterbi_on_the_training_split_and_the_model_runs_once(demo):
    """On its training split the tiny model gets most letters right (Viterbi WER 1-12% across
    our runs) and the LM, estimated from text that includes those sentences, reads them all."""
    root, _, _ = demo
    run, out = root / "demo" / RUN, root / "lm-train"
    common = ["--checkpoint", run / "checkpoints/checkpoint_best.pt", "--manifests",
              root / "demo/manifests/10min-0", "--subsets", "train", "--run", out,
              "--device", "cpu"]
    lm = ["--lm", root / "demo/lm/4-gram.arpa.gz", "--lexicon",
          root / "demo/lm/lexicon.ltr.lst", "--jobs", "2"]
    run_script("decode.py", *common)  # Viterbi keeps the emissions it computed for the LMs
    cache = out / "emissions/train.npz"
    key = emissions.cache_key(file_digest(run / "checkpoints/checkpoint_best.pt"),
                              root / "demo/manifests/10min-0", "train")
    kept = emissions.load_cached(cache, key)
    first = run_script("decode.py", *common, "--decoder", "4gram", *lm)
    assert kept and "computing emissions" not in first.stderr
    viterbi = json.loads((out / "decode/train/wer.json").read_text())
    with_lm = json.loads((out / "decode-4gram/train/wer.json").read_text())
    assert with_lm["decoder_settings"]["weights_from"] == "fairseq example (untuned)"
    assert with_lm["utterances"] == viterbi["utterances"] == TRAIN_UTTERANCES
    assert with_lm["errors"] == 0 and with_lm["wer"] <= viterbi["wer"]
    # without them, the LM decode runs the model itself and keeps exactly what Viterbi kept
    alone = run_script("decode.py", *common[:-3], out / "alone", "--device", "cpu",
                       "--decoder", "4gram", *lm)
    assert "computing emissions of train" in alone.stderr
    computed = emissions.load_cached(out / "alone/emissions/train.npz", key)
    assert len(computed) == len(kept) == TRAIN_UTTERANCES
    assert all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(computed, kept))
    # other weights: a new search over the kept emissions, not a new run of the model
    made = cache.stat().st_mtime_ns
    again = run_script("decode.py", *common, "--decoder", "4gram", *lm,
                       "--lm-weight", "0.5", "--word-score", "1")
    assert "computing emissions" not in again.stderr and cache.stat().st_mtime_ns == made
    record = json.loads((out / "decode-4gram/train/wer.json").read_text())
    assert record["decoder_settings"]["weights_from"] == "given"
    # on kept emissions, a 4-gram stage needs neither torch nor fairseq (seconds of imports),
    # and still records their versions
    imported = on_cached_emissions(REPO / "scripts/decode.py", *common, "--decoder", "4gram",
                                   *lm, "--lm-weight", "1", "--word-score", "0")
    assert imported == {"torch": False, "fairseq": False}
    import fairseq
    import torch
    record = json.loads((out / "decode-4gram/train/wer.json").read_text())
    assert record["decoder_settings"]["lm_weight"] == 1
    assert (record["versions"]["torch"], record["versions"]["fairseq"]) == \
        (torch.__version__, fairseq.__version__)


def on_cached_emissions(script, *args) -> dict[str, bool]:
    """Run a stage's script as `make` does; whether it imported torch and fairseq."""
    import subprocess

    probe = ("import atexit, json, runpy, sys\n"
             "atexit.register(lambda: print(json.dumps({m: m in sys.modules "
             "for m in ('torch', 'fairseq')})))\n"
             "sys.argv = sys.argv[1:]\n"
             "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    proc = subprocess.run([PYTHON, "-c", probe, str(script), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, env={**os.environ,
                                                               "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_demo_shows_the_transformer_lm_row_tuned_at_beam_50_and_beating_viterbi(demo):
    """Each demo run tunes the tiny word Transformer LM at the paper's beam 50 (16 trials)
    and decodes at 500 with those weights; on the held-out sets it beats Viterbi every run."""
    root, _, stdout = demo
    lm = root / "demo/lm/tiny_word_transformer.pt"
    table = (root / "demo/results/table9.md").read_text()
    assert "## Transformer LM (fairseq word LM, lexicon beam search)" in table
    for run in [root / "demo" / r for r in RUNS]:
        tuned = json.loads((run / "tune-transformer/weights.json").read_text())
        assert tuned["trials"] == 16 and tuned["beam"] == 50 and tuned["decoder"] == "transformer"
        check_lm_decodes(run, "transformer", 500, tuned, lm)
        assert held_out_errors(run, "decode-transformer") < held_out_errors(run, "decode"), run
