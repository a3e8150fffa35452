"""How consistently does 10-minute fine-tuning replicate? Selection, variance and intervals.

Usage: from w2v2_10min.stats import select_runs, summarise_runs, hierarchical_bootstrap

Pure functions over records: dicts as read from wer.json (the run's identity model, protocol,
lr, lr_decay, split, seed and trained_lr; subset, decoder, wer, utterance_errors,
utterance_words, path). Formulas and their reading are
in docs/statistics.md. In short, for one model, protocol, learning rate, decoder and subset,
with k splits and y_ij the WER of seed j on split i:

    y_ij = mu + a_i + e_ij,   a_i ~ N(0, var_split),   e_ij ~ N(0, var_seed)

with variances fitted by REML (statsmodels MixedLM), and mu and its standard error se the
generalised least squares estimate at those variances (exact for unequal seeds per split).
ICC = var_split / (var_split + var_seed). With t = t(0.975, k - 1):
    mean over splits        mu ± t * se
    one run, new split      mu ± t * sqrt(se² + var_split + var_seed)
    mean of m seeds, new    mu ± t * sqrt(se² + var_split + var_seed / m)
    best-of-n, new split    ybar ± t * s * sqrt(1 + 1/k), from the k selected runs' WERs
k - 1 degrees of freedom is exact for the mean in a balanced design and conservative for the
prediction intervals (the seed part has more). WER cannot be negative: prediction intervals
are clipped at 0. No interval is given from a non-finite number: it is None, with the reason.
"""
from __future__ import annotations

import math
import statistics
import warnings
from collections import defaultdict

import numpy as np
from scipy import stats as scipy_stats

from w2v2_10min import layout
from w2v2_10min.layout import split_order, trained_lr

LEVEL = 0.95
SELECTION_SUBSET = "dev_other"
BOOTSTRAP_SAMPLES = 2000


def lr_label(record: dict) -> str:
    """The learning rate as the run's folder names it ('' for the recipe's)."""
    return layout.RunId.of(record).lr


def _run_order(key: tuple) -> tuple:
    """Numeric learning rate (unknown last), then seed 1, 2, ..., 10."""
    lr, seed = key
    return (lr is None, lr or 0.0, *layout.seed_order(seed))


def finite(*numbers) -> bool:
    """Every number is a real, finite number (not None, NaN or infinite)."""
    return all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
               for x in numbers)


def verdict(paper: float, low: float, high: float) -> str:
    """Where the paper's number lies relative to an interval: 'below', 'within' or 'above'.
    Refuses (ValueError) to place it against a bound that is not a finite number."""
    if not finite(paper, low, high):
        raise ValueError(f"no verdict on a non-finite number: paper {paper}, interval "
                         f"{low} – {high}")
    return "below" if paper < low else "above" if paper > high else "within"


# --- paper-style selection ----------------------------------------------------------------

def select_runs(records: list[dict]) -> list[dict]:
    """The run the paper's rule keeps, for each model, protocol and split.

    The paper trained two learning rates x three seeds and kept the one with the lowest
    dev-other WER decoded with the 4-gram LM. Here: every (lr, seed) of a split competes; the
    criterion is dev_other under the 4-gram decoder when every candidate has it, else Viterbi
    (mixing decoders would compare unlike numbers). Ties go to the lower lr (numerically),
    then seed; a WER that is not a finite number is never chosen. Returns one dict per split
    that has runs: model, protocol (its label, layout.RunId.label), split, lr (its label, '' for the
    recipe's), lr_value, seed, criterion_decoder, criterion_wer, candidates, path (the wer.json
    that decided) and note (every run left out, and why); lr, seed and criterion_wer are None
    when no run could be kept. A run (lr, seed) recorded twice is a ValueError.
    """
    runs, seen = _selection_candidates(records)
    chosen = []
    for key in sorted(seen, key=lambda k: (k[:2], split_order(k[2]))):
        chosen.append(_select_split(*key, runs.get(key, {}), seen[key]))
    return chosen


def _selection_candidates(records: list[dict]) -> tuple[dict, dict]:
    """{(model, protocol, split): {(lr, seed): {decoder: dev_other record}}} and every run seen
    there (any subset) with its lr label; duplicate runs are a ValueError."""
    runs: dict[tuple, dict] = defaultdict(dict)
    seen: dict[tuple, dict] = defaultdict(dict)
    for r in records:
        ident = layout.RunId.of(r)
        if ident.is_released:
            continue
        key = (ident.model, ident.label, ident.split)
        run = (trained_lr(r), ident.seed)
        if seen[key].setdefault(run, lr_label(r)) != lr_label(r):
            raise ValueError(f"{r.get('path', r)}: the same run as lr {seen[key][run]!r}, seed "
                             f"{run[1]} (learning rate {run[0]}) recorded twice")
        if r["subset"] != SELECTION_SUBSET:
            continue
        decoders = runs[key].setdefault(run, {})
        decoder = r.get("decoder", layout.VITERBI)
        if decoder in decoders:
            raise ValueError(f"{decoders[decoder].get('path')} and {r.get('path')}: the same "
                             f"run (lr {run[0]}, seed {run[1]}) and decode recorded twice")
        decoders[decoder] = r
    return runs, seen


def _select_split(model: str, protocol: str, split: str, candidates: dict, seen: dict) -> dict:
    """The kept run of one split (see select_runs)."""
    def name(run):
        return f"seed {run[1]}" + (f" (lr {seen[run]})" if seen[run] else "")

    with_4gram = sum("4gram" in d for d in candidates.values())
    decoder = "4gram" if candidates and with_4gram == len(candidates) else layout.VITERBI
    have = {run: d[decoder] for run, d in candidates.items()
            if decoder in d and finite(d[decoder]["wer"])}
    notes = [] if decoder == "4gram" or not candidates else [
        "no 4-gram decodes" if not with_4gram else
        f"4-gram decode missing for {len(candidates) - with_4gram} of {len(candidates)} runs"]
    for run in sorted(seen, key=_run_order):
        if run not in candidates:
            notes.append(f"{name(run)} left out: no {SELECTION_SUBSET} decode")
        elif run not in have:
            notes.append(f"{name(run)} left out: " + (
                f"no {decoder} {SELECTION_SUBSET} decode" if decoder not in candidates[run]
                else f"its {SELECTION_SUBSET} WER is not a number"))
    out = {"model": model, "protocol": protocol, "split": split, "lr": None, "lr_value": None,
           "seed": None, "criterion_decoder": decoder, "criterion_wer": None,
           "candidates": len(have), "path": "", "note": "; ".join(notes)}
    if have:
        (lr, seed), best = min(have.items(), key=lambda kv: (kv[1]["wer"], _run_order(kv[0])))
        out |= {"lr": seen[(lr, seed)], "lr_value": lr, "seed": seed,
                "criterion_wer": best["wer"], "path": best.get("path", "")}
    return out


# --- variance components --------------------------------------------------------------------

def _reml(values: list[float], groups: list[str]) -> tuple[float, float, bool]:
    """REML fit of the one-way random-effects model: var_split, var_seed, converged.

    Only the variances are taken from statsmodels: its standard error of mu comes from the
    joint observed Hessian, which in unbalanced designs can be NaN or far too small; gls()
    gives the exact one at these variances."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    y = np.asarray(values, float)
    model = MixedLM(y, np.ones((len(y), 1)), groups=np.asarray(groups))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary and convergence notes; `converged` says it
        # Powell (derivative-free) reaches the boundary var_split = 0 where gradients stall.
        fit = model.fit(reml=True, method=["powell", "lbfgs"])
    var_seed = float(fit.scale)
    var_split = float(fit.cov_re[0, 0])
    if var_split < 1e-8 * max(var_seed, 1e-12):
        var_split = 0.0
    return var_split, var_seed, bool(fit.converged)


def gls(by_split: dict[str, list[float]], var_split: float,
        var_seed: float) -> tuple[float, float]:
    """mu and its standard error by generalised least squares at given variance components.

    With V = var_split·blockdiag(J_ni) + var_seed·I, each split's mean has variance
    var_split + var_seed / n_i, so its weight is w_i = n_i / (var_seed + n_i·var_split):
    mu = Σ w_i·ȳ_i / Σ w_i and se = (1'V⁻¹1)^(-1/2) = (Σ w_i)^(-1/2). Balanced: se² = MSB/(k·m).
    Usage: mu, se = gls({"0": [40.1, 41.0], "1": [39.2]}, 1.2, 0.8)
    """
    splits = list(by_split)
    counts = np.array([len(by_split[s]) for s in splits], float)
    means = np.array([statistics.fmean(by_split[s]) for s in splits])
    weights = counts / (var_seed + counts * var_split)
    return float(weights @ means / weights.sum()), float(weights.sum() ** -0.5)


def variance_components(by_split: dict[str, list[float]]) -> dict:
    """Between-split and between-seed variance of WERs grouped by split, with their ICC.

    Returns mean, se (of the mean over splits), var_split, var_seed, icc (None where not
    identifiable), splits, runs, seeds (min, max per split) and method, a few words on how the
    numbers were obtained. Degenerate designs, each with its exact answer:
      one split              var_split and se unknown (None); var_seed from its seeds
      one run per split      split and seed variance not separable: var_total only
      identical seeds        var_seed = 0, var_split = variance of the split values, ICC = 1
      all values equal       everything 0, ICC None
    """
    splits = sorted(by_split, key=split_order)
    by_split = {s: by_split[s] for s in splits}
    values = [v for s in splits for v in by_split[s]]
    counts = [len(by_split[s]) for s in splits]
    out = {"splits": len(splits), "runs": len(values), "seeds": (min(counts), max(counts)),
           "var_split": None, "var_seed": None, "var_total": None, "icc": None, "se": None,
           "converged": True}
    return out | (_exact(by_split, values) or _fitted(by_split, values))


def _exact(by_split: dict[str, list[float]], values: list[float]) -> dict | None:
    """The answer for a design that needs no fit (see variance_components), else None."""
    if not finite(*values):
        return {"mean": None, "converged": False,
                "method": "a WER that is not a finite number: no statistics"}
    if len(by_split) == 1:
        return {"mean": statistics.fmean(values),
                "var_seed": statistics.variance(values) if len(values) > 1 else None,
                "method": "one split: the variance between splits cannot be estimated"}
    split_means = [statistics.fmean(v) for v in by_split.values()]
    if len(values) == len(by_split):
        total = statistics.variance(values)
        return {"mean": statistics.fmean(values), "var_total": total,
                "se": (total / len(values)) ** 0.5,
                "method": "one run per split: split and seed variance are not separable"}
    if max(values) == min(values):
        return {"mean": values[0], "var_split": 0.0, "var_seed": 0.0, "var_total": 0.0,
                "se": 0.0, "method": "every run has the same WER"}
    if all(min(v) == max(v) for v in by_split.values()):
        var_split = statistics.variance(split_means)
        return {"mean": statistics.fmean(split_means), "var_split": var_split, "var_seed": 0.0,
                "var_total": var_split, "icc": 1.0, "se": (var_split / len(by_split)) ** 0.5,
                "method": "seeds of a split agree exactly: all variance is between splits"}
    return None


def _fitted(by_split: dict[str, list[float]], values: list[float]) -> dict:
    """REML variance components, then the GLS mean and its standard error at them."""
    groups = [s for s, v in by_split.items() for _ in v]
    try:
        var_split, var_seed, converged = _reml(values, groups)
        failure = None if finite(var_split, var_seed) and var_seed > 0 else \
            "gave a variance that is not a finite positive number"
    except (ArithmeticError, ValueError, np.linalg.LinAlgError) as err:
        failure = f"failed ({err})"
    if failure:
        return {"mean": statistics.fmean(statistics.fmean(v) for v in by_split.values()),
                "converged": False, "method": f"REML fit {failure}; no variance components"}
    mean, se = gls(by_split, var_split, var_seed)
    total = var_split + var_seed
    return {"mean": mean, "se": se, "var_split": var_split, "var_seed": var_seed,
            "var_total": total, "icc": var_split / total, "converged": converged,
            "method": "REML, one-way random effects (statsmodels MixedLM); mean and its "
                      "standard error by GLS"
                      + ("" if converged else "; the fit did not converge")}


def t_quantile(splits: int) -> float:
    """The two-sided LEVEL quantile of Student's t with splits - 1 degrees of freedom."""
    return float(scipy_stats.t.ppf(0.5 + LEVEL / 2, splits - 1))


def no_interval(components: dict) -> str | None:
    """Why intervals() gives none for these variance components; None when it gives them."""
    k, se, mu = components["splits"], components["se"], components.get("mean")
    if k < 2:
        return "one split: an interval needs two or more"
    if se is None or not finite(se, mu):
        return components.get("method") or "no standard error of the mean"
    variances = [components["var_total"]] if components["var_split"] is None else \
        [components["var_split"], components["var_seed"]]
    return None if finite(*variances) else "a variance is not a finite number"


def intervals(components: dict, seeds: int) -> dict:
    """Interval for the mean over splits and prediction intervals for one new split.

    `seeds` is m for the mean-of-m-seeds interval. Keys: ci, pi_run, pi_seed_mean (each a
    (low, high) pair of finite numbers, None where the design cannot give it: no_interval()
    says why).
    """
    out = {"ci": None, "pi_run": None, "pi_seed_mean": None, "seeds_in_mean": seeds}
    if no_interval(components):
        return out
    k, se, mu = components["splits"], components["se"], components["mean"]
    t = t_quantile(k)
    out["ci"] = (mu - t * se, mu + t * se)
    if components["var_split"] is None:  # one run per split: the total is all we know
        run_var = seed_mean_var = components["var_total"]
        out["seeds_in_mean"] = 1
    else:
        run_var = components["var_split"] + components["var_seed"]
        seed_mean_var = components["var_split"] + components["var_seed"] / seeds
    for key, var in (("pi_run", run_var), ("pi_seed_mean", seed_mean_var)):
        half = t * (se ** 2 + var) ** 0.5
        out[key] = (max(mu - half, 0.0), mu + half)
    return out


def selected_interval(values: list[float]) -> dict:
    """Mean, sd and prediction interval of one new split's selected (best-of-n) run.

    One value per split, treated as a normal sample: ybar ± t(k-1) * s * sqrt(1 + 1/k).
    pi is None with fewer than two values or any that is not a finite number (`reason` says).
    """
    k = len(values)
    out = {"splits": k, "mean": None, "sd": None, "pi": None, "reason": None}
    if not finite(*values):
        return out | {"reason": "a WER that is not a finite number"}
    if k == 0:
        return out | {"reason": "no kept run"}
    out["mean"] = statistics.fmean(values)
    if k < 2:
        return out | {"reason": "one split: an interval needs two or more"}
    sd = statistics.stdev(values)
    half = t_quantile(k) * sd * (1 + 1 / k) ** 0.5
    return out | {"sd": sd, "pi": (max(out["mean"] - half, 0.0), out["mean"] + half)}


def welch_official_vs_seeded(official: list[float], seeded: list[float]) -> dict | None:
    """Difference of split means, seeded minus official, with Welch's t-test (scipy)."""
    if len(official) < 2 or len(seeded) < 2:
        return None
    if statistics.pvariance(official) == statistics.pvariance(seeded) == 0:
        return None
    test = scipy_stats.ttest_ind(seeded, official, equal_var=False)
    return {"difference": statistics.fmean(seeded) - statistics.fmean(official),
            "p": float(test.pvalue)}


# --- hierarchical bootstrap -----------------------------------------------------------------

def hierarchical_bootstrap(runs_by_split: dict[str, list[dict]], samples: int = BOOTSTRAP_SAMPLES,
                           seed: int = 0, utterances: bool = True) -> dict:
    """Percentile interval of the mean over splits (of split means), resampling splits, then
    seeds within each drawn split, then utterances.

    Every run of a subset decodes the same utterances, so one draw of utterance indices is
    shared by all runs of a replicate: it adds the uncertainty of a finite test set, which the
    analytic interval (conditional on the test set) leaves out. Utterances are skipped when a
    run lacks per-utterance counts or the runs disagree on their number. Returns low, high,
    samples and utterances (whether that level was resampled); None when a bound is not a
    finite number (a WER that is not one).
    """
    splits = sorted(runs_by_split, key=split_order)
    runs = [r for s in splits for r in runs_by_split[s]]
    rng = np.random.default_rng(seed)
    lengths = {len(r.get("utterance_errors") or []) for r in runs}
    utterances = utterances and len(lengths) == 1 and 0 not in lengths
    if utterances:
        errors = np.array([r["utterance_errors"] for r in runs], float).T  # utterances x runs
        words = np.array([r["utterance_words"] for r in runs], float).T
        n = errors.shape[0]
        picks = rng.integers(0, n, size=(samples, n)) + n * np.arange(samples)[:, None]
        counts = np.bincount(picks.ravel(), minlength=samples * n).reshape(samples, n)
        counts = counts.astype(float)  # how often each utterance is drawn, per replicate
        wers = 100 * (counts @ errors) / np.maximum(counts @ words, 1)  # samples x runs
    else:
        wers = np.tile(np.array([r["wer"] for r in runs], float), (samples, 1))
    sizes = np.array([len(runs_by_split[s]) for s in splits])
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    picked = rng.integers(0, len(splits), size=(samples, len(splits)))  # splits, with replacement
    n = sizes[picked]  # then seeds within each drawn split, with replacement
    uniform = rng.random((samples, len(splits), sizes.max()))
    draws = np.minimum((uniform * n[..., None]).astype(int), n[..., None] - 1)
    mask = np.arange(sizes.max()) < n[..., None]
    columns = first[picked][..., None] + draws
    chosen = np.take_along_axis(wers, columns.reshape(samples, -1), axis=1).reshape(columns.shape)
    split_means = (chosen * mask).sum(-1) / n
    means = split_means.mean(-1)
    low, high = np.percentile(means, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    if not finite(float(low), float(high)):
        return None
    return {"low": float(low), "high": float(high), "samples": samples, "utterances": utterances}


# --- one group, everything ------------------------------------------------------------------

def summarise_runs(records: list[dict], bootstrap: bool = True) -> dict:
    """Variance components, intervals and bootstrap for runs of one model, protocol, lr,
    decoder and subset. Keys: by_split ({split: [wer, ...]}), components, intervals, bootstrap
    (None with fewer than two splits or when not asked for)."""
    by_split: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (split_order(str(r.get("split"))),
                                            *layout.seed_order(r.get("seed")))):
        by_split[str(r.get("split"))].append(r)
    wers = {s: [r["wer"] for r in rs] for s, rs in by_split.items()}
    components = variance_components(wers)
    seeds = round(statistics.fmean(len(v) for v in wers.values()))
    return {"by_split": wers, "components": components,
            "intervals": intervals(components, max(seeds, 1)),
            "bootstrap": hierarchical_bootstrap(by_split) if bootstrap and len(by_split) > 1
            else None}
