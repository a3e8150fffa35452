"""w2v2_10min.stats on synthetic WER grids whose answer is known: paper-style selection,
variance components and ICC, intervals, verdicts and the hierarchical bootstrap."""
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.linalg import block_diag

from w2v2_10min.layout import RunId, split_kind, trained_lr
from w2v2_10min.stats import (hierarchical_bootstrap, intervals, lr_label, no_interval,
                              select_runs, selected_interval, summarise_runs,
                              variance_components, verdict)


def grid(split_effects, seed_effects, mu=40.0):
    """{split: [mu + a_i + e_ij for each seed]}."""
    return {str(i): [mu + a + e for e in seed_effects[i]] for i, a in enumerate(split_effects)}


def rec(split, seed, wer, subset="dev_other", decoder="viterbi", lr="", **extra):
    """A wer.json record with the run's identity (the recipe's lr 5e-05 unless `lr` says)."""
    return {"model": "large", "protocol": "fairseq", "lr": lr, "lr_decay": "",
            "trained_lr": lr or "5e-05", "split": str(split), "seed": str(seed),
            "subset": subset, "decoder": decoder, "wer": float(wer),
            "path": f"runs/{split}/{seed}/{decoder}/{subset}/wer.json", **extra}


def test_split_kind_lr_and_protocol():
    assert [split_kind(s) for s in ["0", "5", "s1", "s12"]] == \
        ["official", "official", "seeded", "seeded"]
    # `make decode LR=3e-5` records lr 3e-5 beside the plain protocol
    run = {"model": "large", "split": "0", "seed": "1"}
    lr3 = {**run, "protocol": "fairseq", "lr": "3e-5", "lr_decay": "", "trained_lr": "3e-5"}
    assert (lr_label(lr3), RunId.of(lr3).label) == ("3e-5", "fairseq")
    own = {**run, "protocol": "paper", "lr": "", "lr_decay": "exponential", "trained_lr": "5e-05"}
    assert (lr_label(own), RunId.of(own).label, trained_lr(own)) == \
        ("", "paper-exponential", 5e-5)
    assert RunId("large", "paper", "0", "1", lr=2e-05).lr == "2e-05"


def test_no_seed_variance_and_large_split_variance_gives_icc_one():
    exact = variance_components(grid([-6, -2, 0, 3, 5, 9], [[0, 0, 0]] * 6))
    assert exact["icc"] == 1.0 and exact["var_seed"] == 0.0
    assert exact["var_split"] == pytest.approx(statistics.variance([-6, -2, 0, 3, 5, 9]))
    rng = np.random.default_rng(1)
    noisy = variance_components(grid([-6, -2, 0, 3, 5, 9], rng.normal(0, 0.05, (6, 3))))
    assert noisy["icc"] > 0.99 and noisy["method"].startswith("REML")


def test_no_split_variance_gives_icc_zero():
    # every split has the same three seed values: the split means coincide
    comp = variance_components(grid([0] * 6, [[-5, 0, 5], [5, -5, 0], [0, 5, -5]] * 2))
    assert comp["var_split"] == 0.0 and comp["icc"] == 0.0 and comp["converged"]
    assert comp["var_seed"] == pytest.approx(300 / 17)  # at the boundary: s² of all 18 runs
    assert comp["mean"] == pytest.approx(40.0)


def test_balanced_reml_equals_the_anova_estimates():
    values = {"0": [40, 44], "1": [46, 49], "2": [43, 45]}
    # by hand: split means 42, 47.5, 44; MSW = (8 + 4.5 + 2) / 3 = 29/6;
    # MSB = 2 * var(42, 47.5, 44) = 2 * 7.75 = 15.5; var_split = (MSB - MSW) / 2 = 16/3
    comp = variance_components(values)
    assert comp["var_seed"] == pytest.approx(29 / 6, rel=1e-4)
    assert comp["var_split"] == pytest.approx(16 / 3, rel=1e-4)
    assert comp["icc"] == pytest.approx(32 / 61, rel=1e-4)
    assert comp["mean"] == pytest.approx(44.5)
    assert comp["se"] == pytest.approx((15.5 / 6) ** 0.5, rel=1e-4)  # sqrt(MSB / (k m))
    t = scipy_stats.t.ppf(0.975, 2)
    iv = intervals(comp, seeds=2)
    assert iv["ci"] == pytest.approx((44.5 - t * comp["se"], 44.5 + t * comp["se"]))
    run_half = t * (15.5 / 6 + 16 / 3 + 29 / 6) ** 0.5
    assert iv["pi_run"] == pytest.approx((44.5 - run_half, 44.5 + run_half), rel=1e-4)
    mean_half = t * (15.5 / 6 + 16 / 3 + 29 / 12) ** 0.5
    assert iv["pi_seed_mean"] == pytest.approx((44.5 - mean_half, 44.5 + mean_half), rel=1e-4)


def test_unbalanced_seeds_are_fitted():
    comp = variance_components({"0": [40, 41, 42], "1": [47], "2": [44, 46], "3": [50, 52, 51]})
    assert comp["method"].startswith("REML") and comp["converged"]
    assert comp["seeds"] == (1, 3) and comp["runs"] == 9
    assert 0.8 < comp["icc"] < 1 and 40 < comp["mean"] < 52


def test_one_run_per_split_gives_the_total_only():
    values = {"0": [40], "1": [44], "2": [42], "3": [46]}
    comp = variance_components(values)
    assert comp["icc"] is None and comp["var_split"] is None
    assert comp["var_total"] == pytest.approx(statistics.variance([40, 44, 42, 46]))
    iv = intervals(comp, seeds=1)
    half = scipy_stats.t.ppf(0.975, 3) * statistics.stdev([40, 44, 42, 46]) * (1 + 1 / 4) ** 0.5
    assert iv["pi_run"] == pytest.approx((43 - half, 43 + half))
    assert iv["pi_seed_mean"] == iv["pi_run"]


def test_one_split_gives_no_interval_and_equal_values_collapse():
    comp = variance_components({"s3": [40, 42, 44]})
    assert comp["var_seed"] == 4 and comp["var_split"] is None and comp["mean"] == 42
    assert intervals(comp, 3) == {"ci": None, "pi_run": None, "pi_seed_mean": None,
                                  "seeds_in_mean": 3}
    flat = variance_components({"0": [40, 40], "1": [40, 40]})
    assert flat["icc"] is None and intervals(flat, 2)["pi_run"] == (40, 40)


def test_verdict_below_within_above():
    comp = variance_components(grid([-2, -1, 0, 1, 2, 0], [[0, 1, -1]] * 6, mu=50))
    low, high = intervals(comp, 3)["pi_run"]
    assert low < 50 < high
    assert verdict(20.0, low, high) == "below"
    assert verdict(50.0, low, high) == "within"
    assert verdict(80.0, low, high) == "above"


def test_selected_interval_is_the_normal_prediction_interval():
    values = [41.0, 44.0, 43.0, 40.0, 42.0]
    out = selected_interval(values)
    half = scipy_stats.t.ppf(0.975, 4) * statistics.stdev(values) * (1.2 ** 0.5)
    assert out["mean"] == 42.0 and out["pi"] == pytest.approx((42 - half, 42 + half))
    assert selected_interval([41.0])["pi"] is None


def test_selection_uses_the_4gram_decode_when_every_run_has_it():
    records = [rec(0, 1, 50, lr="2e-05"), rec(0, 1, 20, decoder="4gram", lr="2e-05"),
               rec(0, 2, 48, lr="2e-05"), rec(0, 2, 22, decoder="4gram", lr="2e-05"),
               rec(0, 1, 52, lr="3e-05"), rec(0, 1, 19, decoder="4gram", lr="3e-05"),
               rec(0, 1, 30, subset="test_other", lr="3e-05")]
    [chosen] = select_runs(records)
    # Viterbi would pick (2e-05, 2); the 4-gram LM picks (3e-05, 1)
    assert (chosen["lr"], chosen["seed"], chosen["criterion_decoder"]) == ("3e-05", "1", "4gram")
    assert chosen["criterion_wer"] == 19 and chosen["candidates"] == 3 and chosen["note"] == ""
    assert chosen["path"] == "runs/0/1/4gram/dev_other/wer.json"


def test_selection_pools_the_learning_rates_of_a_protocol():
    records = [rec(0, 1, 50, lr="2e-5"), rec(0, 1, 47, lr="3e-5")]
    [chosen] = select_runs(records)
    assert (chosen["protocol"], chosen["lr"], chosen["candidates"]) == ("fairseq", "3e-5", 2)


def test_selection_falls_back_to_viterbi_and_says_why():
    records = [rec("s1", 1, 50), rec("s1", 1, 20, decoder="4gram"), rec("s1", 2, 48),
               rec(3, 1, 45), rec(3, 2, 45), rec(3, 3, 47)]
    by_split = {c["split"]: c for c in select_runs(records)}
    assert list(by_split) == ["3", "s1"]  # official folds first
    assert by_split["s1"]["seed"] == "2" and by_split["s1"]["criterion_decoder"] == "viterbi"
    assert by_split["s1"]["note"] == "4-gram decode missing for 1 of 2 runs"
    assert by_split["3"]["seed"] == "1" and by_split["3"]["note"] == "no 4-gram decodes"  # tie


def test_bootstrap_agrees_with_the_analytic_interval_on_a_large_grid():
    rng = np.random.default_rng(7)
    k, m = 60, 3
    values = grid(rng.normal(0, 3, k), rng.normal(0, 0.5, (k, m)))
    analytic = intervals(variance_components(values), m)["ci"]
    runs = {s: [{"wer": w} for w in ws] for s, ws in values.items()}
    boot = hierarchical_bootstrap(runs, samples=2000, seed=0)
    assert not boot["utterances"]
    width = analytic[1] - analytic[0]
    assert abs(boot["low"] - analytic[0]) < 0.1 * width
    assert abs(boot["high"] - analytic[1]) < 0.1 * width


def test_bootstrap_utterance_level_adds_the_test_set_uncertainty():
    k = 8
    values = grid([-3, -2, -1, 0, 0, 1, 2, 3], [[0, 0.5]] * k)
    rng = np.random.default_rng(3)
    base = rng.integers(0, 20, 200)  # shared hard and easy utterances

    def runs(spread):
        out = {}
        for s, ws in values.items():
            out[s] = []
            for w in ws:
                words = np.full(200, 20)
                errors = np.clip(np.round(w / 100 * 20 + spread * (base - 10) / 10), 0, 20)
                out[s].append({"wer": 100 * errors.sum() / words.sum(),
                               "utterance_errors": errors.tolist(),
                               "utterance_words": words.tolist()})
        return out

    flat = runs(0.0)
    assert hierarchical_bootstrap(flat, samples=500)["utterances"]
    no_utt = hierarchical_bootstrap(flat, samples=500, utterances=False)
    with_utt = hierarchical_bootstrap(flat, samples=500)
    assert with_utt["high"] - with_utt["low"] == pytest.approx(no_utt["high"] - no_utt["low"],
                                                               rel=0.15)
    varied = hierarchical_bootstrap(runs(6.0), samples=500)
    assert varied["high"] - varied["low"] > 1.3 * (no_utt["high"] - no_utt["low"])


def test_prediction_interval_covers_a_new_split_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    hits = {"pi_run": 0, "pi_seed_mean": 0}
    trials = 200
    for _ in range(trials):
        values = grid(rng.normal(0, 2, 6), rng.normal(0, 1, (6, 3)))
        iv = intervals(variance_components(values), 3)
        new_split = rng.normal(0, 2)
        new_runs = 40 + new_split + rng.normal(0, 1, 3)
        hits["pi_run"] += iv["pi_run"][0] <= new_runs[0] <= iv["pi_run"][1]
        hits["pi_seed_mean"] += iv["pi_seed_mean"][0] <= new_runs.mean() <= iv["pi_seed_mean"][1]
    assert all(0.9 <= h / trials <= 0.995 for h in hits.values()), hits


def test_summarise_runs_groups_by_split():
    records = [rec(s, seed, 40 + int(s) + seed) for s in range(4) for seed in (1, 2)]
    out = summarise_runs(records)
    assert out["by_split"] == {"0": [41, 42], "1": [42, 43], "2": [43, 44], "3": [44, 45]}
    assert out["components"]["splits"] == 4 and out["intervals"]["seeds_in_mean"] == 2
    assert out["bootstrap"]["low"] < out["components"]["mean"] < out["bootstrap"]["high"]


# --- unbalanced grids and numbers that are not numbers (issue 19) ---------------------------

# Seeds per split 3, 2, 1, 3, 2, 1 near 39.5, seed sd 1.1: statsmodels' own standard error of
# the mean (bse_fe) is NaN on the first and 0.06 on the second, against 0.34 and 0.41 by GLS.
NAN_SE = {"0": [38.3, 38.01, 39.75], "1": [38.28, 40.79], "2": [40.29],
          "3": [37.3, 39.8, 38.29], "4": [39.54, 39.55], "5": [37.31]}
SMALL_SE = {"0": [39.993, 39.36, 38.234], "1": [39.138, 39.957], "2": [37.004],
            "3": [39.661, 41.549, 37.967], "4": [40.92, 40.158], "5": [37.267]}


@pytest.mark.parametrize("values", [NAN_SE, SMALL_SE])
def test_unbalanced_se_is_the_gls_one_at_the_reml_variances(values):
    comp = variance_components(values)
    y = np.concatenate([values[s] for s in values])
    blocks = [np.ones((len(v), len(v))) for v in values.values()]
    V = comp["var_split"] * block_diag(*blocks) + comp["var_seed"] * np.eye(len(y))
    inverse = np.linalg.inv(V)
    ones = np.ones(len(y))
    assert comp["se"] == pytest.approx((ones @ inverse @ ones) ** -0.5, rel=1e-9)
    assert comp["mean"] == pytest.approx(ones @ inverse @ y / (ones @ inverse @ ones))
    assert 0.3 < comp["se"] < 0.5 and comp["converged"]
    ci = intervals(comp, 2)["ci"]
    assert ci[0] < 39.5 < ci[1]


def test_coverage_on_an_unbalanced_grid():
    """A cheap version of bench/coverage_stats.py: 3, 2, 1, 3, 2, 1 seeds, split and seed sd
    1.1; the full table is in docs/statistics.md."""
    rng = np.random.default_rng(19)
    trials, hits = 100, {"ci": 0, "pi_run": 0}
    for _ in range(trials):
        values = {str(i): list(39.5 + rng.normal(0, 1.1) + rng.normal(0, 1.1, n))
                  for i, n in enumerate((3, 2, 1, 3, 2, 1))}
        comp = variance_components(values)
        assert np.isfinite(comp["se"]) and comp["se"] > 0
        iv = intervals(comp, 2)
        hits["ci"] += iv["ci"][0] <= 39.5 <= iv["ci"][1]
        new_run = 39.5 + rng.normal(0, 1.1) + rng.normal(0, 1.1)
        hits["pi_run"] += iv["pi_run"][0] <= new_run <= iv["pi_run"][1]
    assert all(0.9 <= h / trials for h in hits.values()), hits


def test_no_verdict_or_interval_from_numbers_that_are_not_numbers():
    nan, inf = float("nan"), float("inf")
    for low, high in [(nan, nan), (40.0, inf), (None, 42.0)]:
        with pytest.raises(ValueError, match="no verdict on a non-finite number"):
            verdict(45.3, low, high)
    comp = variance_components({"0": [40, 41], "1": [42, nan]})
    assert comp["method"] == "a WER that is not a finite number: no statistics"
    assert intervals(comp, 2)["ci"] is None and no_interval(comp) == comp["method"]
    good = variance_components({"0": [40, 41], "1": [42, 44]})
    assert no_interval(good) is None
    assert intervals(good | {"se": nan}, 2) == {"ci": None, "pi_run": None,
                                                  "pi_seed_mean": None, "seeds_in_mean": 2}
    out = selected_interval([41.0, nan, 43.0])
    assert out["pi"] is None and out["reason"] == "a WER that is not a finite number"
    runs = {"0": [{"wer": 40.0}], "1": [{"wer": nan}]}
    assert hierarchical_bootstrap(runs, samples=50) is None


def test_selection_orders_learning_rates_as_numbers_and_never_keeps_nan():
    # a tie: 5e-5 is the lower rate, though "1e-4" < "5e-5" as strings
    [chosen] = select_runs([rec(0, 1, 45, lr="1e-4"), rec(0, 1, 45, lr="5e-5")])
    assert (chosen["lr"], chosen["lr_value"]) == ("5e-5", 5e-5)
    for order in (1, -1):  # whatever the input order
        records = [rec(0, 1, float("nan")), rec(0, 2, 47), rec(0, 3, 46)][::order]
        [chosen] = select_runs(records)
        assert (chosen["seed"], chosen["criterion_wer"], chosen["candidates"]) == ("3", 46, 2)
        assert chosen["note"] == "no 4-gram decodes; seed 1 left out: its dev_other WER is " \
            "not a number"


def test_selection_refuses_a_run_twice_and_notes_every_run_left_out():
    with pytest.raises(ValueError, match="recorded twice"):  # lr '' trains at 5e-05 as well
        select_runs([rec(0, 1, 45), rec(0, 1, 46, lr="5e-05")])
    with pytest.raises(ValueError, match="recorded twice"):
        select_runs([rec(0, 1, 45), rec(0, 1, 46)])
    records = [rec(0, 1, 45), rec(0, 2, 40, subset="test_other"), rec(1, 1, 44, "test_other")]
    first, second = select_runs(records)
    assert (first["seed"], first["note"]) == ("1", "no 4-gram decodes; seed 2 left out: no "
                                                   "dev_other decode")
    assert (second["split"], second["seed"], second["candidates"]) == ("1", None, 0)
    assert second["note"] == "seed 1 left out: no dev_other decode"
