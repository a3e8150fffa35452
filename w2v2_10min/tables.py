"""The text of `make compare`: table9.md, table9.csv's rows and results/README.md, written
from the one analysis (w2v2_10min.analysis) and the records it was made from; markdown tables
with tabulate. Nothing here computes a statistic.

Usage:
    table9(records, settings)    # OUT/table9.md: per decoder, model and setting, the paper's
                                 # row, the released checkpoint's, each split, the spread
    csv_rows(records)            # OUT/table9.csv: one row per run, decoder and subset
    readme(settings, plots)      # OUT/README.md: how consistently it replicates
"""
from __future__ import annotations

import statistics
from collections import defaultdict

from tabulate import tabulate

from w2v2_10min import layout
from w2v2_10min.analysis import decoder as decoder_of, subsets_of
from w2v2_10min.layout import RunId, split_kind, split_order
from w2v2_10min.paper import DECODER_LM, DECODER_TITLES, LM_TITLES, MODEL_TITLES, paper_row

KINDS = {"all": "all splits", **layout.SPLIT_KINDS}  # the split kinds: layout.split_kind
# The split's own training utterances (`make decode DECODE_TRAIN=1`): shown apart, as a check
# that fine-tuning learned; never a held-out result, never compared with the paper.
TRAIN = "train"
HELD_OUT_NOTES = {
    "tiny": "The tiny model and corpus are synthetic (espeak-ng voices reading a 25-word "
            "grammar; tiny/SOURCES.md): the spread between splits and seeds shows in miniature "
            "what the study measures, but these numbers say nothing about wav2vec 2.0. "
            "librivox_real is real read speech, foreign to the tiny model: WER near 100% there "
            "is expected.",
}
RESULT_KEYS = ["trained_lr", "decoder", "subset", "wer", "ci_low", "ci_high", "errors", "words",
               "cer", "utterances", "checkpoint_sha256", "commit", "path"]
# what each verdict (stats.verdict) says of the paper's number against the splits' range
PLACES = {"below": "lies below", "within": "lies within", "above": "lies above"}


def markdown(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table, cells as given (no number parsing)."""
    return tabulate(rows, headers=header, tablefmt="github", disable_numparse=True)


def decoder_order(decoder: str) -> tuple:
    """Viterbi first, then the other decoders by name."""
    return (decoder != layout.VITERBI, decoder)


def decoder_name(decoder: str) -> str:
    """Short name of a decoder in rows and legends: `Viterbi`, `4-gram LM`."""
    return "Viterbi" if decoder == layout.VITERBI else LM_TITLES.get(DECODER_LM.get(decoder),
                                                                      decoder)


def heading(model: str, protocol: str, decoder: str) -> str:
    """`LARGE (LS-960), protocol fairseq`, with the LM named for decoders other than Viterbi."""
    title = f"{MODEL_TITLES.get(model, model)}, protocol {protocol}"
    return title if decoder == layout.VITERBI else f"{title}, {decoder_name(decoder)}"


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


# ---- table9.md ---------------------------------------------------------------------------------

def model_table(title: str, model: str, decoder: str, levels: dict[str, dict],
                subsets: list[str], released: dict[str, dict]) -> tuple[str, list[str]]:
    """Markdown rows for one model, setting and decoder (`levels`: each subset's seed-level
    analysis at one learning rate), and the plain-language verdicts."""
    paper = paper_row(model, decoder)
    by_split: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for subset, level in levels.items():
        for run in level["runs"]:
            by_split[run["split"]][subset].append(run["wer"])
    rows = []
    lm = LM_TITLES.get(DECODER_LM.get(decoder), "no such row")
    rows.append([f"paper, Table 9, {lm}", *(f"{paper[s]:.1f}" if s in paper else "—"
                                            for s in subsets)])
    rows.append([f"released 10-min checkpoint, {decoder_name(decoder)}",
                 *(f"{released[s]['wer']:.1f}" if s in released else "not decoded"
                   for s in subsets)])
    for split in sorted(by_split, key=split_order):
        seeds = max(len(v) for v in by_split[split].values())
        rows.append([f"split {split} ({seeds} seed{'s' if seeds > 1 else ''})",
                     *(fmt(by_split[split].get(s, [])) for s in subsets)])
    across = {s: list(levels[s]["split_means"].values()) if s in levels else []
              for s in subsets}
    if len(by_split) > 1:
        rows.append([f"across {len(by_split)} splits: mean ± sd",
                     *(fmt(across[s]) for s in subsets)])
    rows.append(["min – max over splits", *(f"{levels[s]['range'][0]:.1f} – "
                                            f"{levels[s]['range'][1]:.1f}" if s in levels
                                            else "—" for s in subsets)])
    rows.append(["mean − paper", *(f"{statistics.mean(across[s]) - paper[s]:+.1f}"
                                   if across[s] and s in paper else "—" for s in subsets)])
    verdicts = [f"- {title}, {s}: the paper's {paper[s]:.1f} "
                f"{PLACES[levels[s]['verdict_range']]} the range of the "
                f"{len(across[s])} split(s), {levels[s]['range'][0]:.1f} – "
                f"{levels[s]['range'][1]:.1f}."
                for s in subsets if s in levels and levels[s]["verdict_range"]]
    return f"### {title}\n\n" + markdown(["row", *subsets], rows), verdicts


def train_table(records: list[dict]) -> str:
    """Each run's WER on the utterances it was fine-tuned on, apart from the held-out sets."""
    rows = [[f"split {r['split']}, seed {r['seed']}", f"{r['wer']:.1f}",
             f"{r['cer']:.1f}" if "cer" in r else "—", r.get("utterances", "—")]
            for r in sorted(records, key=lambda r: (split_order(r["split"]),
                                                    *layout.seed_order(r["seed"])))]
    return ("Training utterances (the split's own, seen in fine-tuning: shows that the model "
            "learned them; not a held-out result, not compared with the paper):\n\n"
            + markdown(["run", "WER on its training utterances", "CER", "utterances"], rows))


def summary(settings: list[dict]) -> list[str]:
    """The report's first lines: in plain words, each setting's spread over splits and seeds,
    and what the numbers are (synthetic, for the tiny model)."""
    settings = sorted(settings, key=lambda setting: decoder_order(setting["decoder"]))
    parts = [line for setting in settings for line in (paragraph(setting), "")]
    for model in dict.fromkeys(setting["model"] for setting in settings):
        if model in HELD_OUT_NOTES:
            parts += [HELD_OUT_NOTES[model], ""]
    return ["## In short", "", *parts] if parts else []


def table9(records: list[dict], settings: list[dict]) -> str:
    """table9.md: one section per decoder, a table per model and setting (learning rate)."""
    seen = [r for r in records if r["subset"] == TRAIN]
    held_out = [r for r in records if r["subset"] != TRAIN]
    subsets = subsets_of(held_out)
    parts = ["# 10-minute fine-tuning: WER (%) against the paper's Table 9", "",
             "One section per decoder, compared with the paper's row for the same kind of "
             "decoding. Split rows: mean ± sd over seeds.", ""]
    parts += summary(settings)
    verdicts = []
    for decoder in sorted({decoder_of(r) for r in records}, key=decoder_order):
        released = defaultdict(dict)
        for r in held_out:
            if decoder_of(r) == decoder and RunId.of(r).is_released:
                released[r["model"]][r["subset"]] = r
        parts += [f"## {DECODER_TITLES.get(decoder, decoder)}", ""]
        here = [s for s in settings if s["decoder"] == decoder]
        for setting in here:
            for lr in setting["lrs"]:
                protocol = setting["protocol"] + (f"-lr{lr}" if lr else "")
                levels = {subset: entry["seed_level"][lr]["all"]
                          for subset, entry in setting["subsets"].items()
                          if lr in entry["seed_level"]}
                title = heading(setting["model"], protocol, decoder)
                table, said = model_table(title, setting["model"], decoder, levels, subsets,
                                          released.get(setting["model"], {}))
                parts += [table, ""]
                verdicts += said
                own = [r for r in seen if decoder_of(r) == decoder and
                       (r["model"], RunId.of(r).setting) == (setting["model"], protocol)]
                if own:
                    parts += [train_table(own), ""]
        for model in sorted(set(released) - {s["model"] for s in here}):
            title = heading(model, "released only", decoder)
            table, _ = model_table(title, model, decoder, {}, subsets, released[model])
            parts += [table, ""]
    if verdicts:
        parts += ["## Does the paper's number lie within the range of the splits?", "", *verdicts, ""]
    rows = [[r["model"], RunId.of(r).setting, r["split"], r["seed"], r["subset"],
             f"{r['wer']:.2f}", f"{r['ci_low']:.1f} – {r['ci_high']:.1f}" if "ci_low" in r
             else "—", f"{r['errors']} / {r['words']}", decoder_of(r)] for r in records]
    parts += ["## Every run", "", markdown(
        ["model", "protocol", "split", "seed", "subset", "WER",
         "95% CI (bootstrap over utterances)", "errors / words", "decoder"], rows)]
    return "\n".join(parts) + "\n"


def csv_keys() -> list[str]:
    """table9.csv's columns: the run's identity (every key of layout.RunId), then the result."""
    return [*layout.RunId.keys(), *RESULT_KEYS]


def csv_rows(records: list[dict]) -> list[dict]:
    """table9.csv: one row per run, decoder and subset, with the run's identity."""
    return [{k: r.get(k, "") for k in csv_keys()} for r in records]


# ---- README.md -------------------------------------------------------------------------------

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
    rows = []

    def row(name, cell):
        rows.append([name, *(cell(setting["subsets"][s]) for s in subsets)])

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
    return f"### {_title(setting)}\n\n" + markdown(["row", *subsets], rows)


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
    rows = [[c["split"], split_kind(c["split"]),
             "none" if c["seed"] is None else f"{c['lr'] or '—'}, {c['seed']}",
             f"dev_other, {c['criterion_decoder']}", _f(c["criterion_wer"], 2), c["candidates"],
             c["note"] or "—", f"`{c['path']}`" if c["path"] else "—"]
            for c in setting["selection"]]
    return markdown(["split", "kind", "kept: lr, seed", "chosen on", "dev_other WER",
                     "runs compared", "note", layout.WER_JSON], rows)


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
