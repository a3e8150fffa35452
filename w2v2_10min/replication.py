"""The replication report of `make compare`: results/README.md, statistics.json, the plots.

Usage: from w2v2_10min.replication import analyse, readme, plot_subset

`analyse(records)` turns the wer.json records into one JSON-serialisable dict per model,
protocol and decoder (selection, variance components, intervals, bootstrap, verdicts, and the
wer.json files each number came from); `readme(...)` writes it up in plain words and tables;
`plot_subset(...)` draws one subset. The statistics are w2v2_10min.stats; docs/statistics.md
explains them.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from w2v2_10min import layout, stats
from w2v2_10min.common import atomic_path
from w2v2_10min.paper import DECODER_TITLES, MODEL_TITLES, paper_row

KINDS = {"all": "all splits", "official": "official folds", "seeded": "seeded samples"}


def _decoder(record: dict) -> str:
    return record.get("decoder") or "viterbi"


def _pair(interval) -> list[float] | None:
    return None if interval is None else [round(interval[0], 4), round(interval[1], 4)]


def _kinds(splits) -> list[str]:
    present = {stats.split_kind(s) for s in splits}
    return ["all"] + (sorted(present, reverse=False) if len(present) > 1 else [])


def _subsets(records: list[dict]) -> list[str]:
    from w2v2_10min.paper import MAIN_SUBSETS
    present = {r["subset"] for r in records}
    return [s for s in MAIN_SUBSETS if s in present] + sorted(present - set(MAIN_SUBSETS))


def analyse(records: list[dict]) -> list[dict]:
    """Everything the report says, per model, protocol and decoder, sorted."""
    trained = [r for r in records if r["protocol"] != layout.RELEASED]
    released = {(r["model"], _decoder(r), r["subset"]): r for r in records
                if r["protocol"] == layout.RELEASED}
    selected = defaultdict(dict)
    for choice in stats.select_runs(trained):
        selected[(choice["model"], choice["protocol"])][choice["split"]] = choice
    settings = defaultdict(list)
    for r in trained:
        settings[(r["model"], layout.protocol_label(r), _decoder(r))].append(r)
    out = []
    for (model, protocol, decoder), runs in sorted(settings.items()):
        paper = paper_row(model, decoder)
        choices = selected.get((model, protocol), {})
        setting = {"model": model, "protocol": protocol, "decoder": decoder,
                   "selection": [choices[s] for s in sorted(choices, key=stats.split_order)],
                   "lrs": _lrs(runs), "subsets": {}}
        splits = sorted({r["split"] for r in runs}, key=stats.split_order)
        for subset in _subsets(runs):
            here = [r for r in runs if r["subset"] == subset]
            entry = {"paper": paper.get(subset),
                     "released": released.get((model, decoder, subset), {}).get("wer"),
                     "released_path": released.get((model, decoder, subset), {}).get("path"),
                     "seed_level": {}, "selected": {}, "notes": []}
            for lr in setting["lrs"]:
                lr_runs = [r for r in here if stats.lr_label(r) == lr]
                if lr_runs:
                    entry["seed_level"][lr] = {
                        kind: _seed_level(lr_runs, kind, entry["paper"])
                        for kind in _kinds({r["split"] for r in lr_runs})}
                entry["notes"] += _missing_splits(splits, lr_runs, subset, lr, setting)
            kept = _kept(choices, here, subset, decoder, entry["notes"])
            for kind in _kinds(kept) if kept else []:
                entry["selected"][kind] = _selected(kept, kind, choices, entry["paper"])
            setting["subsets"][subset] = entry
        out.append(setting)
    return out


def _lrs(runs: list[dict]) -> list[str]:
    """The learning-rate labels of these runs, in numeric order of the rates trained with."""
    value = {stats.lr_label(r): stats.lr_value(r) for r in runs}
    return sorted(value, key=lambda lr: (value[lr] is None, value[lr] or 0.0, lr))


def _missing_splits(splits: list[str], runs: list[dict], subset: str, lr: str,
                    setting: dict) -> list[str]:
    """A note for each split with runs of this setting but none of this subset and lr."""
    have = {r["split"] for r in runs}
    return [f"split {s}: no {subset} decode{' at lr ' + lr if len(setting['lrs']) > 1 else ''}"
            f"; left out of the seed-level statistics" for s in splits if s not in have]


def _kept(choices: dict, here: list[dict], subset: str, decoder: str,
          notes: list[str]) -> dict:
    """{split: the kept run's record of this subset}; a note for each split that has none."""
    kept = {}
    for split in sorted(choices, key=stats.split_order):
        choice = choices[split]
        if choice["seed"] is None:
            notes.append(f"split {split}: no run kept ({choice['note']}); left out of the "
                         "best-of-n interval")
            continue
        match = [r for r in here if r["split"] == split and r["seed"] == choice["seed"]
                 and stats.lr_value(r) == choice["lr_value"]]
        if match:
            kept[split] = match[0]
        else:
            notes.append(f"split {split}: its kept run (seed {choice['seed']}"
                         f"{', lr ' + choice['lr'] if choice['lr'] else ''}) has no {subset} "
                         f"decode ({decoder}); left out of the best-of-n interval")
    return kept


def _selected(kept: dict, kind: str, choices: dict, paper) -> dict:
    """The best-of-n statistics over the kept runs of one kind of split."""
    chosen = [r for s, r in kept.items() if kind in ("all", stats.split_kind(s))]
    summary = stats.selected_interval([r["wer"] for r in chosen])
    return {"runs": [{"split": r["split"], "lr": stats.lr_label(r), "seed": r["seed"],
                      "wer": r["wer"], "path": r.get("path", "")}
                     for r in sorted(chosen, key=lambda r: stats.split_order(r["split"]))],
            "candidates": sorted({choices[r["split"]]["candidates"] for r in chosen}),
            "mean": summary["mean"], "sd": summary["sd"], "pi": _pair(summary["pi"]),
            "reason": summary["reason"], "verdict": _verdict(paper, summary["pi"])}


def _verdict(paper, interval) -> str | None:
    return None if paper is None or interval is None else stats.verdict(paper, *interval)


def _seed_level(runs: list[dict], kind: str, paper) -> dict:
    runs = [r for r in runs if kind in ("all", stats.split_kind(r["split"]))]
    summary = stats.summarise_runs(runs, bootstrap=kind == "all")  # the table shows that one
    comp, iv, boot = summary["components"], summary["intervals"], summary["bootstrap"]
    result = {
        "runs": [{"split": r["split"], "seed": r["seed"], "wer": r["wer"],
                  "path": r.get("path", "")}
                 for r in sorted(runs, key=lambda r: (stats.split_order(r["split"]),
                                                      len(r["seed"]), r["seed"]))],
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
        "verdict_run": _verdict(paper, iv["pi_run"]),
        "verdict_seed_mean": _verdict(paper, iv["pi_seed_mean"])}
    if kind == "all":
        official = [v for s, v in result["split_means"].items()
                    if stats.split_kind(s) == "official"]
        seeded = [v for s, v in result["split_means"].items() if stats.split_kind(s) == "seeded"]
        result["seeded_vs_official"] = stats.welch_official_vs_seeded(official, seeded)
    return result


# --- writing it up --------------------------------------------------------------------------

def _f(value, digits=1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _iv(pair) -> str:
    return "—" if pair is None else f"{pair[0]:.1f} – {pair[1]:.1f}"


def _title(setting: dict) -> str:
    return (f"{MODEL_TITLES.get(setting['model'], setting['model'])}, protocol "
            f"{setting['protocol']}, {DECODER_TITLES.get(setting['decoder'], setting['decoder'])}")


def _lr_label(setting: dict, lr: str) -> str:
    return f"lr {lr}: " if len(setting["lrs"]) > 1 else ""


def paragraph(setting: dict) -> str:
    """A few plain sentences on one model, protocol and decoder."""
    subsets = [s for s in ("test_clean", "test_other") if s in setting["subsets"]] or \
        list(setting["subsets"])[:2]
    lr = next(iter(setting["subsets"][subsets[0]]["seed_level"]))
    first = setting["subsets"][subsets[0]]["seed_level"][lr]["all"]
    seeds = first["seeds_per_split"]
    seeds_text = f"{seeds[0]} seed{'s' if seeds[0] > 1 else ''}" if seeds[0] == seeds[1] else \
        f"{seeds[0]}–{seeds[1]} seeds"
    sentences = [f"**{_title(setting)}.** {_plural(first['splits'], 'split')}, {seeds_text} "
                 f"each ({_plural(first['runs_count'], 'run')}"
                 f"{', learning rate ' + lr if lr else ''})."]
    for subset in subsets:
        entry = setting["subsets"][subset]
        if lr not in entry["seed_level"]:
            continue
        level = entry["seed_level"][lr]["all"]
        sel = entry["selected"].get("all")
        text = f"On {subset} the mean over splits is {_f(level['mean'])}%"
        if level["ci"]:
            text += (f" (95% interval {_iv(level['ci'])}); one run on a new 10-minute split "
                     f"should land in {_iv(level['pi_run'])}")
        else:
            text += f" (no interval: {level['reason']})"
        if sel and sel["pi"]:
            text += f", and the best of {_n(sel)} runs in {_iv(sel['pi'])}"
        sentences.append(text + "." + _verdicts(entry, level, sel))
    last = [s for s in subsets if lr in setting["subsets"][s]["seed_level"]][-1]
    level = setting["subsets"][last]["seed_level"][lr]["all"]
    if level["icc"] is not None:
        share = round(100 * level["icc"])
        sentences.append(
            f"Differences between splits account for {share}% of the run-to-run variance on "
            f"{last} (sd {_f(level['var_split'] ** 0.5)} between splits, "
            f"{_f(level['var_seed'] ** 0.5)} between seeds): "
            + ("which 10 minutes you draw matters more than the seed." if share > 60 else
               "the seed matters more than which 10 minutes you draw." if share < 40 else
               "which 10 minutes and which seed matter about equally."))
    welch = level.get("seeded_vs_official")
    if welch:
        levels = setting["subsets"][last]["seed_level"][lr]
        sentences.append(
            f"On {last} the {levels['seeded']['splits']} seeded samples average "
            f"{abs(welch['difference']):.1f} points "
            f"{'above' if welch['difference'] > 0 else 'below'} the "
            f"{levels['official']['splits']} official folds (Welch's t-test p = "
            f"{welch['p']:.2f}; a small p says the official folds are not typical draws).")
    if level["icc"] is None:
        sentences.append(f"Splits and seeds cannot be told apart here ({level['method']}); "
                         "`make sweep` over more splits and seeds answers it.")
    return " ".join(sentences)


def _verdicts(entry: dict, level: dict, sel: dict | None) -> str:
    """The sentence placing the paper's number, for the intervals there are."""
    said = ([f"{sel['verdict']} the best-of-runs interval"] if sel and sel["verdict"] else []) + \
        ([f"{level['verdict_seed_mean']} the interval for a mean of "
          f"{_plural(level['seeds_in_mean'], 'seed')}"] if level["verdict_seed_mean"] else [])
    if entry["paper"] is None or not said:
        return ""
    return f" The paper's {entry['paper']:.1f} lies {' and '.join(said)}."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _n(selected: dict) -> str:
    n = selected["candidates"]
    return str(n[0]) if len(n) == 1 else f"{n[0]}–{n[-1]}"


def table(setting: dict) -> str:
    """The statistics of one model, protocol and decoder as a markdown table (subsets across)."""
    subsets = list(setting["subsets"])
    lines = [f"### {_title(setting)}", "", "| row | " + " | ".join(subsets) + " |",
             "|---|" + "---|" * len(subsets)]

    def row(name, cell):
        lines.append(f"| {name} | " + " | ".join(cell(setting["subsets"][s]) for s in subsets)
                     + " |")

    row("paper, Table 9", lambda e: _f(e["paper"]))
    row("released checkpoint", lambda e: _f(e["released"]))
    for lr in setting["lrs"]:
        lab = _lr_label(setting, lr)
        kinds = [k for k in KINDS if any(k in e["seed_level"].get(lr, {})
                                         for e in setting["subsets"].values())]
        for kind in kinds:
            get = (lambda e, lr=lr, kind=kind: e["seed_level"].get(lr, {}).get(kind))
            pre = f"{lab}{KINDS[kind]}: " if len(kinds) > 1 else lab
            row(f"{pre}splits · runs", lambda e, g=get: "—" if not g(e) else
                f"{g(e)['splits']} · {g(e)['runs_count']}")
            row(f"{pre}mean over splits [95% CI]", lambda e, g=get: "—" if not g(e) else
                _f(g(e)["mean"]) + (f" [{_iv(g(e)['ci'])}]" if g(e)["ci"] else ""))
            if kind != "all":
                continue
            row(f"{pre}hierarchical bootstrap 95%", lambda e, g=get: "—" if not g(e) or
                not g(e)["bootstrap"] else _iv(g(e)["bootstrap"]["interval"]))
            row(f"{pre}sd between splits / seeds", lambda e, g=get: "—" if not g(e) else
                f"{_sd(g(e)['var_split'])} / {_sd(g(e)['var_seed'])}")
            row(f"{pre}ICC (share between splits)", lambda e, g=get: _f(g(e) and g(e)["icc"], 2))
            row(f"{pre}new split, one run: 95% PI", lambda e, g=get: _iv(g(e) and g(e)["pi_run"]))
            row(f"{pre}new split, mean of m seeds: 95% PI", lambda e, g=get: "—" if not g(e) or
                not g(e)["pi_seed_mean"] else
                f"{_iv(g(e)['pi_seed_mean'])} (m={g(e)['seeds_in_mean']})")
            row(f"{pre}paper vs mean-of-m PI", lambda e, g=get: (g(e) or {}).get(
                "verdict_seed_mean") or "—")
            row(f"{pre}seeded − official (Welch p)", lambda e, g=get: "—" if not g(e) or
                not g(e).get("seeded_vs_official") else
                f"{g(e)['seeded_vs_official']['difference']:+.1f} "
                f"(p={g(e)['seeded_vs_official']['p']:.2f})")
    kinds = [k for k in KINDS if any(k in e["selected"] for e in setting["subsets"].values())]
    for kind in kinds:
        pre = f"selected, {KINDS[kind]}" if len(kinds) > 1 else "selected (paper's rule)"
        get = (lambda e, kind=kind: e["selected"].get(kind))
        row(f"{pre}: mean ± sd", lambda e, g=get: "—" if not g(e) else
            f"{_f(g(e)['mean'])} ± {_f(g(e)['sd'])}" if g(e)["sd"] is not None else
            _f(g(e)["mean"]))
        row(f"{pre}: new split, best of n: 95% PI", lambda e, g=get: "—" if not g(e) or
            not g(e)["pi"] else f"{_iv(g(e)['pi'])} (n={_n(g(e))})")
        row(f"{pre}: paper vs best-of-n PI", lambda e, g=get: (g(e) or {}).get("verdict")
            or "—")
    return "\n".join(lines)


def _sd(var) -> str:
    return "—" if var is None else f"{var ** 0.5:.2f}"


def notes(setting: dict) -> list[str]:
    """Every split or run left out of a statistic, and every interval not given, with why."""
    out = []
    for subset, entry in setting["subsets"].items():
        out += [f"{subset}: {note}" for note in entry["notes"]]
        for lr, levels in entry["seed_level"].items():
            if levels["all"]["reason"]:
                out.append(f"{subset}{', lr ' + lr if len(setting['lrs']) > 1 else ''}: no "
                           f"seed-level interval: {levels['all']['reason']}")
        sel = entry["selected"].get("all")
        if sel and sel["reason"]:
            out.append(f"{subset}: no best-of-n interval: {sel['reason']}")
    return out


def selection_table(setting: dict) -> str:
    lines = ["| split | kind | kept: lr, seed | chosen on | dev_other WER | runs compared | "
             "note | wer.json |", "|---|---|---|---|---|---|---|---|"]
    for c in setting["selection"]:
        kept = "none" if c["seed"] is None else f"{c['lr'] or '—'}, {c['seed']}"
        lines.append(f"| {c['split']} | {stats.split_kind(c['split'])} | {kept} | "
                     f"dev_other, {c['criterion_decoder']} | {_f(c['criterion_wer'], 2)} | "
                     f"{c['candidates']} | {c['note'] or '—'} | "
                     + (f"`{c['path']}` |" if c["path"] else "— |"))
    return "\n".join(lines)


def readme(analysis: list[dict], plots: list[str]) -> str:
    """results/README.md: a paragraph per model, then the tables and the plots."""
    parts = ["# 10-minute fine-tuning: how consistently does it replicate?", "",
             "Written by `make compare` from the `wer.json` files under the run folder; every "
             "number is traceable through `statistics.json` (the files each statistic used) "
             "and `table9.csv` (every run). Method: `docs/statistics.md`. PI: 95% prediction "
             "interval for one new 10-minute split; the paper's number is a best of six runs "
             "(two learning rates × three seeds, kept on dev-other with the 4-gram LM).", ""]
    if not analysis:
        parts += ["No trained runs yet: only released checkpoints were decoded "
                  "(see `table9.md`).", ""]
    parts += [paragraph(s) + "\n" for s in analysis]
    parts += ["## Statistics per model, protocol and decoder", ""]
    for setting in analysis:
        parts += [table(setting), ""]
        said = notes(setting)
        if said:
            parts += ["Left out, and intervals not given:", "", *[f"- {n}" for n in said], ""]
        parts += ["Runs kept by the paper's rule:", "", selection_table(setting), ""]
    if plots:
        parts += ["## Plots", "", "Each split's seeds as points, the kept run ringed, the split "
                  "mean as a bar, the one-run prediction band shaded, the paper dashed, the "
                  "released checkpoint dotted.", ""]
        parts += [f"![{name}]({name})" for name in plots] + [""]
    parts += ["Per-split tables and every run with its bootstrap interval: `table9.md`.", ""]
    return "\n".join(parts)


def plot_subset(analysis: list[dict], records: list[dict], subset: str, decoder: str,
                out: Path) -> bool:
    """One subset and decoder: each split's runs, the kept run ringed, split means, the one-run
    prediction band, the paper dashed, the released checkpoint dotted (also for models with no
    runs of their own). Returns False (and draws nothing) when nothing was decoded there."""
    settings = [s for s in analysis if s["decoder"] == decoder and subset in s["subsets"]]
    released_only = sorted({r["model"] for r in records if r.get("protocol") == "released"
                            and r["subset"] == subset and _decoder(r) == decoder}
                           - {s["model"] for s in settings})
    if not settings and not released_only:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({r["split"] for s in settings
                     for level in s["subsets"][subset]["seed_level"].values()
                     for r in level["all"]["runs"]},
                    key=stats.split_order)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(splits) + 2) + 3.5, 4))
    for index, setting in enumerate(settings):
        _plot_setting(ax, setting, setting["subsets"][subset], f"C{index}", splits,
                      0.3 / max(1, len(settings) * len(setting["lrs"])), index)
    for index, model in enumerate(released_only, start=len(settings)):
        _plot_released_only(ax, records, model, subset, decoder, f"C{index}")
    ax.set_xticks(range(len(splits)), [f"split {s}" for s in splits])
    ax.set_ylabel("WER (%)")
    ax.set_title(f"{subset}: 10-minute fine-tuning, {DECODER_TITLES.get(decoder, decoder)}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


def _plot_setting(ax, setting: dict, entry: dict, colour: str, splits: list, step: float,
                  index: int) -> None:
    """One model and protocol: its runs per lr (offset by `step`), split means, the kept runs,
    the one-run prediction band, the paper's and the released checkpoint's lines."""
    name = f"{MODEL_TITLES.get(setting['model'], setting['model'])} {setting['protocol']}"
    lrs = setting["lrs"]
    for position, lr in enumerate(lrs):
        if lr not in entry["seed_level"]:
            continue
        level = entry["seed_level"][lr]["all"]
        offset = step * (index * len(lrs) + position)
        ax.scatter([splits.index(r["split"]) + offset for r in level["runs"]],
                   [r["wer"] for r in level["runs"]], color=colour, s=18, alpha=0.8,
                   marker="o^sv"[position % 4],
                   label=f"{name}: runs" + (f", lr {lr}" if len(lrs) > 1 else ""))
        for split, mean in level["split_means"].items():
            x = splits.index(split) + offset
            ax.plot([x - 0.12, x + 0.12], [mean, mean], color=colour, linewidth=2)
    first_lr = next(iter(entry["seed_level"]))
    level = entry["seed_level"][first_lr]["all"]
    kept = entry["selected"].get("all")
    if kept:
        ax.scatter([splits.index(r["split"]) + step * (index * len(lrs) + lrs.index(r["lr"]))
                    for r in kept["runs"]],
                   [r["wer"] for r in kept["runs"]], s=110, facecolors="none",
                   edgecolors=colour, linewidths=1.5, label=f"{name}: kept (paper's rule)")
    if level["pi_run"]:
        ax.axhspan(*level["pi_run"], color=colour, alpha=0.12,
                   label=f"{name}: 95% PI, one run on a new split"
                   + (f" (lr {first_lr})" if len(lrs) > 1 else ""))
    if entry["paper"] is not None:
        ax.axhline(entry["paper"], color=colour, linestyle="--", label=f"{name}: paper")
    if entry["released"] is not None:
        ax.axhline(entry["released"], color=colour, linestyle=":",
                   label=f"{name}: released checkpoint")


def _plot_released_only(ax, records: list[dict], model: str, subset: str, decoder: str,
                        colour: str) -> None:
    """A model with no runs of its own: its released checkpoint dotted, the paper dashed."""
    title = MODEL_TITLES.get(model, model)
    for r in records:
        if (r["model"], r.get("protocol"), r["subset"], _decoder(r)) == \
                (model, "released", subset, decoder):
            ax.axhline(r["wer"], color=colour, linestyle=":", label=f"{title}: released checkpoint")
    if subset in paper_row(model, decoder):
        ax.axhline(paper_row(model, decoder)[subset], color=colour, linestyle="--",
                   label=f"{title}: paper")
