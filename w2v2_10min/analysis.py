"""The one analysis behind every output of `make compare` (statistics.json, table9.md and .csv,
README.md, the plots): what the tables (w2v2_10min.tables) and plots (w2v2_10min.plots) show
is read from it, never computed again.

Usage:
    records = run_intervals(records)     # each wer.json record with its bootstrap interval
    settings = analyse(held_out)         # one JSON-serialisable dict per model, protocol
                                         # label (layout.RunId.label) and decoder

A setting holds the paper-style selection, and per subset and learning rate the runs, split
means, their range with the paper's place in it, variance components, intervals, the
hierarchical bootstrap and verdicts (stats.verdict, the one verdict), each with the wer.json
files it came from. The statistics are w2v2_10min.stats; docs/statistics.md explains them.
"""
from __future__ import annotations

from collections import defaultdict

from w2v2_10min import layout, stats
from w2v2_10min.layout import split_kind, split_order, trained_lr
from w2v2_10min.paper import MAIN_SUBSETS, paper_row

KINDS = {"all": "all splits", **layout.SPLIT_KINDS}  # the split kinds: layout.split_kind


def decoder(record: dict) -> str:
    return record.get("decoder") or layout.VITERBI


def _pair(interval) -> list[float] | None:
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]


def _kinds(splits) -> list[str]:
    present = {split_kind(s) for s in splits}
    return ["all"] + (sorted(present, reverse=False) if len(present) > 1 else [])


def subsets_of(records: list[dict]) -> list[str]:
    """The subsets decoded, LibriSpeech's four first."""
    present = {r["subset"] for r in records}
    return [s for s in MAIN_SUBSETS if s in present] + sorted(present - set(MAIN_SUBSETS))


def analyse(records: list[dict]) -> list[dict]:
    """Everything the report says, per model, protocol and decoder, sorted."""
    trained = [r for r in records if not layout.RunId.of(r).is_released]
    released = {(r["model"], decoder(r), r["subset"]): r for r in records
                if layout.RunId.of(r).is_released}
    selected = defaultdict(dict)
    for choice in stats.select_runs(trained):
        selected[(choice["model"], choice["protocol"])][choice["split"]] = choice
    settings = defaultdict(list)
    for r in trained:
        settings[(r["model"], layout.RunId.of(r).label, decoder(r))].append(r)
    out = []
    for (model, protocol, name), runs in sorted(
            settings.items(), key=lambda item: (item[0][0], layout.label_order(item[0][1]),
                                                item[0][2])):
        paper = paper_row(model, name)
        choices = selected.get((model, protocol), {})
        setting = {"model": model, "protocol": protocol, "decoder": name,
                   "selection": [choices[s] for s in sorted(choices, key=split_order)],
                   "lrs": _lrs(runs), "subsets": {}}
        splits = sorted({r["split"] for r in runs}, key=split_order)
        for subset in subsets_of(runs):
            here = [r for r in runs if r["subset"] == subset]
            entry = {"paper": paper.get(subset),
                     "released": released.get((model, name, subset), {}).get("wer"),
                     "released_path": released.get((model, name, subset), {}).get("path"),
                     "seed_level": {}, "selected": {}, "notes": []}
            for lr in setting["lrs"]:
                lr_runs = [r for r in here if stats.lr_label(r) == lr]
                if lr_runs:
                    entry["seed_level"][lr] = {
                        kind: _seed_level(lr_runs, kind, entry["paper"])
                        for kind in _kinds({r["split"] for r in lr_runs})}
                entry["notes"] += _missing_splits(splits, lr_runs, subset, lr, setting)
            kept = _kept(choices, here, subset, name, entry["notes"])
            for kind in _kinds(kept) if kept else []:
                entry["selected"][kind] = _selected(kept, kind, choices, entry["paper"])
            setting["subsets"][subset] = entry
        out.append(setting)
    return out


def _lrs(runs: list[dict]) -> list[str]:
    """The learning-rate labels of these runs, in numeric order of the rates trained with."""
    value = {stats.lr_label(r): trained_lr(r) for r in runs}
    return sorted(value, key=lambda lr: (value[lr] is None, value[lr] or 0.0, lr))


def _missing_splits(splits: list[str], runs: list[dict], subset: str, lr: str,
                    setting: dict) -> list[str]:
    """A note for each split with runs of this setting but none of this subset and lr."""
    have = {r["split"] for r in runs}
    return [f"split {s}: no {subset} decode{' at lr ' + lr if len(setting['lrs']) > 1 else ''}"
            f"; left out of the seed-level statistics" for s in splits if s not in have]


def _kept(choices: dict, here: list[dict], subset: str, name: str,
          notes: list[str]) -> dict:
    """{split: the kept run's record of this subset}; a note for each split that has none."""
    kept = {}
    for split in sorted(choices, key=split_order):
        choice = choices[split]
        if choice["seed"] is None:
            notes.append(f"split {split}: no run kept ({choice['note']}); left out of the "
                         "best-of-n interval")
            continue
        match = [r for r in here if r["split"] == split and r["seed"] == choice["seed"]
                 and trained_lr(r) == choice["lr_value"]]
        if match:
            kept[split] = match[0]
        else:
            notes.append(f"split {split}: its kept run (seed {choice['seed']}"
                         f"{', lr ' + choice['lr'] if choice['lr'] else ''}) has no {subset} "
                         f"decode ({name}); left out of the best-of-n interval")
    return kept


def _selected(kept: dict, kind: str, choices: dict, paper) -> dict:
    """The best-of-n statistics over the kept runs of one kind of split."""
    chosen = [r for s, r in kept.items() if kind in ("all", split_kind(s))]
    summary = stats.selected_interval([r["wer"] for r in chosen])
    return {"runs": [{"split": r["split"], "lr": stats.lr_label(r), "seed": r["seed"],
                      "wer": r["wer"], "path": r.get("path", "")}
                     for r in sorted(chosen, key=lambda r: split_order(r["split"]))],
            "candidates": sorted({choices[r["split"]]["candidates"] for r in chosen}),
            "mean": summary["mean"], "sd": summary["sd"], "pi": _pair(summary["pi"]),
            "reason": summary["reason"], "verdict": _verdict(paper, summary["pi"])}


def _verdict(paper, interval) -> str | None:
    return None if paper is None or interval is None else stats.verdict(paper, *interval)


def _seed_level(runs: list[dict], kind: str, paper) -> dict:
    runs = [r for r in runs if kind in ("all", split_kind(r["split"]))]
    summary = stats.summarise_runs(runs, bootstrap=kind == "all")  # the table shows that one
    comp, iv, boot = summary["components"], summary["intervals"], summary["bootstrap"]
    result = {
        "runs": [{"split": r["split"], "seed": r["seed"], "wer": r["wer"],
                  "path": r.get("path", "")}
                 for r in sorted(runs, key=lambda r: (split_order(r["split"]),
                                                      *layout.seed_order(r["seed"])))],
        "split_means": {s: sum(v) / len(v) for s, v in summary["by_split"].items()},
        **{key: comp[key] for key in ("splits", "mean", "se", "var_split",
                                      "var_seed", "var_total", "icc", "method")
           if key in comp},
        "runs_count": comp["runs"], "seeds_per_split": list(comp["seeds"]),
        "ci": _pair(iv["ci"]), "pi_run": _pair(iv["pi_run"]),
        "pi_seed_mean": _pair(iv["pi_seed_mean"]), "seeds_in_mean": iv["seeds_in_mean"],
        "reason": stats.no_interval(comp),
        "bootstrap": None if boot is None else {**boot, "interval": [round(boot["low"], 4),
                                                                     round(boot["high"], 4)]},
        "range": _pair(split_range(summary["by_split"])),
        "verdict_range": _verdict(paper, split_range(summary["by_split"])),
        "verdict_run": _verdict(paper, iv["pi_run"]),
        "verdict_seed_mean": _verdict(paper, iv["pi_seed_mean"])}
    if kind == "all":
        official = [v for s, v in result["split_means"].items()
                    if split_kind(s) == "official"]
        seeded = [v for s, v in result["split_means"].items() if split_kind(s) == "seeded"]
        result["seeded_vs_official"] = stats.welch_official_vs_seeded(official, seeded)
    return result


def split_range(by_split: dict[str, list[float]]) -> tuple[float, float]:
    """The lowest and highest split mean (each split's mean over its seeds)."""
    means = [sum(v) / len(v) for v in by_split.values()]
    return min(means), max(means)


def run_intervals(records: list[dict]) -> list[dict]:
    """Each record with `ci_low`, `ci_high`: its WER's 95% interval over its utterances, the
    hierarchical bootstrap of one run (stats.BOOTSTRAP_SAMPLES, as every interval)."""
    for record in records:
        if record.get("utterance_errors"):
            interval = stats.hierarchical_bootstrap({record["split"]: [record]})
            record["ci_low"], record["ci_high"] = interval["low"], interval["high"]
    return records
