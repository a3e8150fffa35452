"""Coverage of `make compare`'s 95% intervals on simulated unbalanced grids (docs/statistics.md).

Usage:
  python bench/coverage_stats.py [--grids 400] [--seed 0] [--worst]

For each design (seeds per split) and between-split sd, draws --grids grids of WERs
y_ij = 39.5 + a_i + e_ij (a_i ~ N(0, sd_split²), e_ij ~ N(0, 1.1²)), runs
w2v2_10min.stats.variance_components and intervals on each, and counts how often
  ci            covers the true mean 39.5
  pi_run        covers one run on a new split
  pi_seed_mean  covers the mean of m seeds on a new split (m = the design's mean seeds)
For comparison it fits statsmodels' MixedLM the way stats.py did before (Powell, then L-BFGS)
and reports how often its own standard error of the mean (`bse_fe`) is NaN or below 0.8x the
GLS one, and the coverage of mu ± t·bse_fe (NaN counted as a miss); and, as a check of the
fit itself, the largest difference between its var_split and an independent REML
maximisation (own_reml). Prints a markdown table;
--worst also prints the grid with the smallest bse_fe / GLS ratio. About 0.07 s per grid.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.stats import intervals, t_quantile, variance_components  # noqa: E402

MU, SD_SEED = 39.5, 1.1
DESIGNS = [(3, 2, 1, 3, 2, 1), (3, 3, 3, 3, 3, 1), (1, 1, 1, 1, 2, 3), (3, 3, 3, 3, 3, 3)]
SD_SPLITS = [0.0, 0.55, 1.1, 2.2]


def old_se(by_split: dict[str, list[float]]) -> float:
    """statsmodels' own standard error of the mean, as stats.py took it before (bse_fe)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    y = np.concatenate([by_split[s] for s in by_split])
    groups = np.concatenate([[s] * len(by_split[s]) for s in by_split])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = MixedLM(y, np.ones((len(y), 1)), groups=groups).fit(
            reml=True, method=["powell", "lbfgs"])
        return float(fit.bse_fe[0])


def own_reml(by_split: dict[str, list[float]]) -> float:
    """var_split maximising the one-way model's restricted likelihood, found independently of
    statsmodels: for a ratio g = var_split / var_seed, var_seed = Q(g) / (N - 1) in closed form
    (Q the GLS residual sum of squares), and -2 log L_REML is, up to a constant,
    (N - 1)·log var_seed + Σ log(1 + n_i·g) + log Σ n_i / (1 + n_i·g); scipy minimises that
    over g (bounded Brent, and the boundary g = 0)."""
    from scipy.optimize import minimize_scalar

    n = np.array([len(v) for v in by_split.values()], float)
    means = np.array([np.mean(v) for v in by_split.values()])
    ssw = sum(float(np.sum((np.asarray(v) - np.mean(v)) ** 2)) for v in by_split.values())

    def profile(g):
        w = n / (1 + n * g)
        mu = w @ means / w.sum()
        var_seed = (ssw + w @ (means - mu) ** 2) / (n.sum() - 1)
        return (n.sum() - 1) * np.log(var_seed) + np.sum(np.log(1 + n * g)) + np.log(w.sum()), \
            var_seed

    fit = minimize_scalar(lambda g: profile(g)[0], bounds=(0, 1e4), method="bounded",
                          options={"xatol": 1e-10})
    g = 0.0 if profile(0.0)[0] <= fit.fun else fit.x
    return float(g * profile(g)[1])


def covers(interval, value) -> bool:
    return interval is not None and interval[0] <= value <= interval[1]


def simulate(design: tuple, sd_split: float, grids: int, rng) -> dict:
    """Coverage counts for one design and between-split sd."""
    m = max(1, round(np.mean(design)))
    hits = dict.fromkeys(["ci", "pi_run", "pi_seed_mean", "old_ci"], 0)
    nan = small = none = 0
    off = 0.0  # the largest |var_split - own REML| of the grids
    worst = (np.inf, None)
    for _ in range(grids):
        by_split = {str(i): list(MU + rng.normal(0, sd_split) + rng.normal(0, SD_SEED, n))
                    for i, n in enumerate(design)}
        comp = variance_components(by_split)
        iv = intervals(comp, m)
        new = MU + rng.normal(0, sd_split) + rng.normal(0, SD_SEED, m)
        none += iv["ci"] is None
        hits["ci"] += covers(iv["ci"], MU)
        hits["pi_run"] += covers(iv["pi_run"], new[0])
        hits["pi_seed_mean"] += covers(iv["pi_seed_mean"], new.mean())
        if comp["method"].startswith("REML"):
            off = max(off, abs(comp["var_split"] - own_reml(by_split)))
            se = old_se(by_split)
            nan += not np.isfinite(se)
            small += bool(se < 0.8 * comp["se"])
            half = t_quantile(len(design)) * se
            hits["old_ci"] += bool(abs(comp["mean"] - MU) <= half)
            if se / comp["se"] < worst[0]:
                worst = (se / comp["se"], by_split, se, comp["se"])
        else:  # a degenerate design: the old code gave the same exact answer
            hits["old_ci"] += covers(iv["ci"], MU)
    return {"hits": hits, "nan": nan, "small": small, "none": none, "worst": worst, "m": m,
            "off": off}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worst", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"{args.grids} grids each; seed sd {SD_SEED}, mean {MU}; coverage in %\n")
    print("| seeds per split | sd between splits | mean: GLS se | new split, one run | "
          "new split, mean of m | mean: statsmodels bse_fe | bse_fe NaN | bse_fe < 0.8 GLS | "
          "var_split: max off own REML |")
    print("|---|---|---|---|---|---|---|---|---|")
    for design in DESIGNS:
        for sd_split in SD_SPLITS:
            out = simulate(design, sd_split, args.grids, rng)
            pct = {k: 100 * v / args.grids for k, v in out["hits"].items()}
            print(f"| {','.join(map(str, design))} | {sd_split} | {pct['ci']:.1f} | "
                  f"{pct['pi_run']:.1f} | {pct['pi_seed_mean']:.1f} (m={out['m']}) | "
                  f"{pct['old_ci']:.1f} | {out['nan']} | {out['small']} | {out['off']:.1g} |",
                  flush=True)
            if args.worst and out["worst"][1] is not None:
                ratio, grid, se, gls_se = out["worst"]
                print(f"  worst: bse_fe {se:.4g} vs GLS {gls_se:.4g} (ratio {ratio:.3g}) on "
                      f"{ {s: [round(v, 3) for v in vs] for s, vs in grid.items()} }")
            if out["none"]:
                print(f"  ({out['none']} grids gave no interval)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
