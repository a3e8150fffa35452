"""w2v2_10min.analysis (with the README text of w2v2_10min.tables and the plots of
w2v2_10min.plots drawn from it): the numbers of results/README.md and statistics.json on
synthetic records whose answer is known, traceable to the wer.json paths they came from."""
import json

import pytest

from conftest import squeeze
from w2v2_10min.analysis import analyse
from w2v2_10min.plots import plot_subset
from w2v2_10min.tables import paragraph, readme

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rec(split, seed, wer, subset="test_other", decoder="viterbi", lr="", protocol="fairseq"):
    """A wer.json record with the run's identity (a released checkpoint's has no trained_lr)."""
    trained = {} if protocol == "released" else {"trained_lr": lr or "5e-05"}
    return {"model": "large", "protocol": protocol, "lr": lr, "lr_decay": "", "split": str(split),
            "seed": str(seed), "subset": subset, "decoder": decoder, "wer": float(wer),
            "path": f"runs/large-{protocol}/10min-{split}/seed-{seed}/{decoder}/{subset}.json",
            **trained}


def far_grid(level):
    """Six official folds and three seeded samples, three seeds each, around `level` (test_other),
    seeds spread by ±0.5 and splits by a few points; dev_other for the selection."""
    records = []
    for index, split in enumerate(["0", "1", "2", "3", "4", "5", "s1", "s2", "s3"]):
        for seed, noise in zip((1, 2, 3), (-0.5, 0.0, 0.5)):
            wer = level + (index % 4) - 1.5 + noise
            records += [rec(split, seed, wer), rec(split, seed, wer + 3, "dev_other")]
    return records


def test_a_paper_number_far_below_is_said_to_be_below():
    [setting] = analyse(far_grid(80.0) + [rec("-", "-", 70.0, protocol="released")])
    entry = setting["subsets"]["test_other"]
    assert entry["paper"] == 45.3 and entry["released"] == 70.0
    assert entry["selected"]["all"]["verdict"] == "below"
    level = entry["seed_level"][""]["all"]
    assert level["verdict_seed_mean"] == "below" and level["verdict_run"] == "below"
    assert level["icc"] > 0.8  # splits differ by points, seeds by half a point
    text = paragraph(setting)
    assert "The paper's 45.3 lies below the best-of-runs interval and below the interval for a " \
        "mean of 3 seeds." in text
    assert "which 10 minutes you draw matters more than the seed." in text


def test_a_paper_number_far_above_is_said_to_be_above_and_near_is_within():
    [setting] = analyse(far_grid(20.0))
    assert setting["subsets"]["test_other"]["selected"]["all"]["verdict"] == "above"
    [setting] = analyse(far_grid(45.3))
    assert setting["subsets"]["test_other"]["selected"]["all"]["verdict"] == "within"


def test_selected_runs_are_the_lowest_dev_other_and_traceable():
    [setting] = analyse(far_grid(50.0))
    assert [c["seed"] for c in setting["selection"]] == ["1"] * 9  # noise -0.5 is lowest
    assert [c["split"] for c in setting["selection"]][:7] == ["0", "1", "2", "3", "4", "5", "s1"]
    kept = setting["subsets"]["test_other"]["selected"]
    assert set(kept) == {"all", "official", "seeded"}
    assert [r["path"] for r in kept["seeded"]["runs"]] == [
        f"runs/large-fairseq/10min-s{i}/seed-1/viterbi/test_other.json" for i in (1, 2, 3)]
    assert kept["all"]["candidates"] == [3]


def test_official_and_seeded_are_reported_apart_and_together():
    [setting] = analyse(far_grid(50.0))
    levels = setting["subsets"]["test_other"]["seed_level"][""]
    assert [levels[k]["splits"] for k in ("all", "official", "seeded")] == [9, 6, 3]
    welch = levels["all"]["seeded_vs_official"]
    # official folds 0..5 sit at offsets -1.5, -.5, .5, 1.5, -1.5, -.5; s1..s3 at .5, 1.5, -1.5
    assert welch["difference"] == pytest.approx(1 / 6 - (-1 / 3))
    assert "On test_other the 3 seeded samples average 0.5 points above the 6 official folds " \
        f"(Welch's t-test p = {welch['p']:.2f};" in paragraph(setting)


def test_readme_statistics_json_and_plot(tmp_path):
    records = far_grid(50.0) + [rec("-", "-", 47.0, protocol="released")]
    analysis = analyse(records)
    json.dumps(analysis)  # statistics.json is this
    assert plot_subset(analysis, records, "test_other", "viterbi", tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC
    assert not plot_subset(analysis, records, "test_other", "4gram", tmp_path / "q.png")
    assert not (tmp_path / "q.png").exists()
    text = squeeze(readme(analysis, ["p.png"]))
    assert text.startswith("# 10-minute fine-tuning: how consistently does it replicate?")
    assert "**LARGE (LS-960), protocol fairseq, Viterbi, no LM.** 9 splits, 3 seeds each " \
        "(27 runs)." in text
    assert "| released checkpoint | — | 47.0 |" in text
    assert "![p.png](p.png)" in text


def test_every_run_and_split_left_out_is_said_and_n_is_the_number_used():
    """A kept run without the test decode, runs without dev_other, a split with neither:
    each is named in the report, and best-of-n is over the splits and runs actually used."""
    def gone(r):
        return (r["split"], r["seed"], r["subset"]) == ("2", "1", "test_other") or \
            (r["split"] == "5" and r["seed"] in "12" and r["subset"] == "dev_other") or \
            (r["split"] == "s3" and r["subset"] == "dev_other") or \
            (r["split"] == "4" and r["subset"] == "test_other")

    [setting] = analyse([r for r in far_grid(50.0) if not gone(r)])
    by_split = {c["split"]: c for c in setting["selection"]}
    assert (by_split["5"]["seed"], by_split["5"]["candidates"]) == ("3", 1)
    assert by_split["5"]["note"] == "no 4-gram decodes; seed 1 left out: no dev_other decode; " \
        "seed 2 left out: no dev_other decode"
    assert by_split["s3"]["seed"] is None and by_split["s3"]["candidates"] == 0
    entry = setting["subsets"]["test_other"]
    kept = entry["selected"]["all"]
    assert [r["split"] for r in kept["runs"]] == ["0", "1", "3", "5", "s1", "s2"]
    assert kept["candidates"] == [1, 3]
    assert entry["seed_level"][""]["all"]["splits"] == 8
    assert entry["notes"] == [
        "split 4: no test_other decode; left out of the seed-level statistics",
        "split 2: its kept run (seed 1) has no test_other decode (viterbi); left out of the "
        "best-of-n interval",
        "split 4: its kept run (seed 1) has no test_other decode (viterbi); left out of the "
        "best-of-n interval",
        "split s3: no run kept (seed 1 left out: no dev_other decode; seed 2 left out: no "
        "dev_other decode; seed 3 left out: no dev_other decode); left out of the best-of-n "
        "interval"]
    text = squeeze(readme([setting], []))
    assert "- test_other: split 2: its kept run (seed 1) has no test_other decode" in text
    assert "| s3 | seeded | none | dev_other, viterbi | — | 0 |" in text
    assert "(n=1–3) |" in text and "best of 1–3 runs" in text


def test_no_interval_is_said_with_its_reason_never_as_nan():
    """One split: the report says why there is no interval and gives no verdict."""
    records = [rec("0", seed, 40 + seed) for seed in (1, 2, 3)] + \
        [rec("0", seed, 43 + seed, "dev_other") for seed in (1, 2, 3)]
    [setting] = analyse(records)
    level = setting["subsets"]["test_other"]["seed_level"][""]["all"]
    assert level["ci"] is None and level["verdict_seed_mean"] is None
    text = squeeze(readme([setting], []))
    assert "On test_other the mean over splits is 42.0% (no interval: one split: an interval " \
        "needs two or more)." in text
    assert "- test_other: no best-of-n interval: one split: an interval needs two or more" in text
    assert "nan" not in text.lower() and "lies None" not in text
