"""Gather decoded runs into a Table-9-style report: paper, released checkpoint, each split.

Usage: python scripts/compare.py --runs runs --out results

Reads RUNS/<model>-<protocol>/10min-<split>/seed-<seed>/decode/<subset>/wer.json and
RUNS/<model>-released/decode/<subset>/wer.json and writes, each atomically:
  OUT/table9.md   per model: the paper's no-LM row, the released checkpoint's row, each split's
                  WER (mean ± sd over seeds), the spread across splits, and whether the
                  paper's number lies within the splits' range; then every run with its
                  bootstrap 95% interval over utterances
  OUT/table9.csv  one row per run and subset, with the interval
  OUT/wer-<subset>.png  WER per split and seed, paper and released checkpoint as lines
and prints table9.md.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from common import MODEL_TITLES, PAPER_NO_LM, UserError, atomic_path, run_main, \
    write_text_atomic

MAIN_SUBSETS = ["dev_clean", "dev_other", "test_clean", "test_other"]
BOOTSTRAP_SAMPLES = 1000


def bootstrap_interval(errors: list[int], words: list[int], seed: int = 0) -> tuple[float, float]:
    """95% interval of corpus WER, resampling utterances with replacement."""
    errors_a, words_a = np.asarray(errors, float), np.asarray(words, float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(errors_a), size=(BOOTSTRAP_SAMPLES, len(errors_a)))
    wers = 100.0 * errors_a[picks].sum(1) / np.maximum(words_a[picks].sum(1), 1)
    low, high = np.percentile(wers, [2.5, 97.5])
    return float(low), float(high)


def load_records(runs: Path) -> list[dict]:
    paths = sorted(runs.glob("*/10min-*/seed-*/decode/*/wer.json")) + \
        sorted(runs.glob("*-released/decode/*/wer.json"))
    if not paths:
        raise UserError(f"{runs}: no wer.json found; run `make decode` (or decode-original) first")
    records = []
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"{path}: unreadable ({err}); decode it again with `make decode`") \
                from None
        for key in ("subset", "wer", "errors", "words", "model"):
            if key not in record:
                raise UserError(f"{path}: no '{key}'; decode it again with `make decode`")
        record["path"] = str(path)
        if bool(record.get("utterance_errors")) != bool(record.get("utterance_words")):
            raise UserError(f"{path}: utterance_errors and utterance_words must come together; "
                            "decode it again with `make decode`")
        if record.get("utterance_errors"):
            record["ci_low"], record["ci_high"] = bootstrap_interval(
                record["utterance_errors"], record["utterance_words"])
        records.append(record)
    return records


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def model_table(model: str, protocol: str, records: list[dict], subsets: list[str],
                released: list[dict]) -> tuple[str, list[str]]:
    """Markdown rows for one model and protocol, and the plain-language verdicts."""
    paper = PAPER_NO_LM.get(model, {})
    by_split: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_split[str(r.get("split", "?"))][r["subset"]].append(r["wer"])
    split_means = {s: {sub: statistics.mean(v) for sub, v in subs.items()}
                   for s, subs in by_split.items()}
    title = f"{MODEL_TITLES.get(model, model)}, protocol {protocol}"
    lines = [f"### {title}", "", "| row | " + " | ".join(subsets) + " |",
             "|---|" + "---|" * len(subsets)]

    def row(name, cells):
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    row("paper, Table 9, no LM", [f"{paper[s]:.1f}" if s in paper else "—" for s in subsets])
    released_wer = {r["subset"]: r for r in released}
    row("released 10-min checkpoint, Viterbi",
        [f"{released_wer[s]['wer']:.1f}" if s in released_wer else "not decoded" for s in subsets])
    for split in sorted(by_split, key=lambda s: (not s.isdigit(), s)):
        seeds = max(len(v) for v in by_split[split].values())
        row(f"split {split} ({seeds} seed{'s' if seeds > 1 else ''})",
            [fmt(by_split[split].get(s, [])) for s in subsets])
    across = {s: [m[s] for m in split_means.values() if s in m] for s in subsets}
    if len(split_means) > 1:
        row(f"across {len(split_means)} splits: mean ± sd", [fmt(across[s]) for s in subsets])
    row("min – max over splits", [f"{min(v):.1f} – {max(v):.1f}" if v else "—"
                                  for v in across.values()])
    row("mean − paper", [f"{statistics.mean(across[s]) - paper[s]:+.1f}"
                         if across[s] and s in paper else "—" for s in subsets])
    verdicts = []
    for s in subsets:
        if s in paper and across[s]:
            low, high = min(across[s]), max(across[s])
            inside = "lies within" if low <= paper[s] <= high else "lies outside"
            verdicts.append(f"- {title}, {s}: the paper's {paper[s]:.1f} {inside} the range of "
                            f"the {len(across[s])} split(s), {low:.1f} – {high:.1f}.")
    return "\n".join(lines), verdicts


def run_rows(records: list[dict]) -> list[dict]:
    keys = ["model", "protocol", "split", "seed", "subset", "wer", "ci_low", "ci_high", "errors",
            "words", "cer", "utterances", "checkpoint_sha256", "commit", "path"]
    return [{k: r.get(k, "") for k in keys} for r in records]


def plot(records: list[dict], subset: str, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    trained = [r for r in records if r["subset"] == subset and r.get("protocol") != "released"]
    released_only = {r["model"] for r in records if r["subset"] == subset} - \
        {r["model"] for r in trained}
    groups = sorted({(r["model"], r.get("protocol", "")) for r in trained} |
                    {(model, "released") for model in released_only})
    splits = sorted({str(r.get("split")) for r in trained}, key=lambda s: (not s.isdigit(), s))
    for index, (model, protocol) in enumerate(groups):
        colour = f"C{index}"
        points = [(splits.index(str(r.get("split"))), r["wer"]) for r in trained
                  if (r["model"], r.get("protocol", "")) == (model, protocol)]
        if points:
            ax.scatter([x + 0.08 * index for x, _ in points], [y for _, y in points],
                       color=colour, label=f"{MODEL_TITLES.get(model, model)} {protocol}: runs")
        if subset in PAPER_NO_LM.get(model, {}):
            ax.axhline(PAPER_NO_LM[model][subset], color=colour, linestyle="--",
                       label=f"{MODEL_TITLES[model]}: paper")
        for r in records:
            if r["subset"] == subset and r["model"] == model and r.get("protocol") == "released":
                ax.axhline(r["wer"], color=colour, linestyle=":",
                           label=f"{MODEL_TITLES.get(model, model)}: released checkpoint")
    ax.set_xticks(range(len(splits)), [f"split {s}" for s in splits])
    ax.set_ylabel("WER (%)")
    ax.set_title(f"{subset}: 10-minute fine-tuning, Viterbi, no LM")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def report(records: list[dict]) -> str:
    subsets = [s for s in MAIN_SUBSETS if any(r["subset"] == s for r in records)] + \
        sorted({r["subset"] for r in records} - set(MAIN_SUBSETS))
    released = defaultdict(list)
    trained = defaultdict(list)
    for r in records:
        if r.get("protocol") == "released":
            released[r["model"]].append(r)
        else:
            trained[(r["model"], r.get("protocol", "?"))].append(r)
    parts = ["# 10-minute fine-tuning: WER (%) against the paper's Table 9", "",
             "Viterbi decoding, no language model. Split rows: mean ± sd over seeds.", ""]
    verdicts = []
    for (model, protocol), recs in sorted(trained.items()):
        table, said = model_table(model, protocol, recs, subsets, released.get(model, []))
        parts += [table, ""]
        verdicts += said
    for model in sorted(set(released) - {m for m, _ in trained}):
        table, _ = model_table(model, "released only", [], subsets, released[model])
        parts += [table, ""]
    if verdicts:
        parts += ["## Does the paper's number lie within the range of the splits?", "", *verdicts, ""]
    parts += ["## Every run", "", "| model | protocol | split | seed | subset | WER | 95% CI "
              "(bootstrap over utterances) | errors / words |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        ci = f"{r['ci_low']:.1f} – {r['ci_high']:.1f}" if "ci_low" in r else "—"
        parts.append(f"| {r['model']} | {r.get('protocol', '')} | {r.get('split', '')} | "
                     f"{r.get('seed', '')} | {r['subset']} | {r['wer']:.2f} | {ci} | "
                     f"{r['errors']} / {r['words']} |")
    return "\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    records = load_records(args.runs)
    text = report(records)
    write_text_atomic(args.out / "table9.md", text)
    rows = run_rows(records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(args.out / "table9.csv", buffer.getvalue())
    for subset in sorted({r["subset"] for r in records}):
        plot(records, subset, args.out / f"wer-{subset}.png")
    print(text)
    print(f"wrote {args.out}/table9.md, table9.csv and wer-<subset>.png")
    return 0


if __name__ == "__main__":
    run_main(main)
