"""Gather decoded runs into a Table-9-style report: paper, released checkpoint, each split.

Usage: python scripts/compare.py --run-root runs --out results

Reads every decoded subset under RUNS (w2v2_10min.layout.wer_json_files): each run's
decode/<subset>/wer.json (Viterbi) and decode-<decoder>/<subset>/wer.json (other decoders, e.g.
4gram), for trained runs RUNS/<model>-<protocol>/10min-<split>/seed-<seed>/ and released
checkpoints RUNS/<model>-released/. Each record is checked first (w2v2_10min.records: counts
that agree, the run's identity naming its folder, no run twice); a bad one stops it with one
line naming the file and the fix, before anything is written. Decoders are kept apart
everywhere. Writes, atomically:
  OUT/table9.md   per model, protocol and decoder: the paper's row for that decoder (no LM for
                  Viterbi, 4-gram for 4gram), the released checkpoint's row, each split's WER
                  (mean ± sd over seeds), the spread across splits, and whether the paper's
                  number lies within the splits' range; then every run with its bootstrap 95%
                  interval over utterances. A run's `train` subset (its own training
                  utterances, `make decode DECODE_TRAIN=1`) is shown in a table of its own
                  below its model's: never a column beside the held-out sets, never compared
                  with the paper
  OUT/table9.csv  one row per run, decoder and subset (with its identity: protocol, lr,
                  lr_decay, trained_lr, split, seed), with the interval
  OUT/wer-<subset>.png (Viterbi), OUT/wer-<subset>-<decoder>.png (others): each split's seeds
                  as points, the run kept by the paper's rule ringed, split means, the
                  prediction band for a new split, paper dashed, released checkpoint dotted
  OUT/README.md   how consistently it replicates: a paragraph per model, protocol and decoder,
                  then the statistics (w2v2_10min.replication, docs/statistics.md) and the plots
  OUT/statistics.json  every statistic with the wer.json files it came from
and prints table9.md.
"""
from __future__ import annotations

import argparse
import csv
import io
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from w2v2_10min import layout, replication
from w2v2_10min.common import stage, write_json_atomic, write_text_atomic
from w2v2_10min.records import load_records as read_records
from w2v2_10min.paper import DECODER_TITLES, LM_TITLES, DECODER_LM, MAIN_SUBSETS, MODEL_TITLES, paper_row

BOOTSTRAP_SAMPLES = 1000
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


def bootstrap_interval(errors: list[int], words: list[int], seed: int = 0) -> tuple[float, float]:
    """95% interval of corpus WER, resampling utterances with replacement."""
    errors_a, words_a = np.asarray(errors, float), np.asarray(words, float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(errors_a), size=(BOOTSTRAP_SAMPLES, len(errors_a)))
    wers = 100.0 * errors_a[picks].sum(1) / np.maximum(words_a[picks].sum(1), 1)
    low, high = np.percentile(wers, [2.5, 97.5])
    return float(low), float(high)


def load_records(runs: Path) -> list[dict]:
    """Every wer.json under RUNS, checked (w2v2_10min.records), with its bootstrap interval."""
    records = read_records(runs)
    for record in records:
        if record.get("utterance_errors"):
            record["ci_low"], record["ci_high"] = bootstrap_interval(
                record["utterance_errors"], record["utterance_words"])
    return records


def setting(record: dict) -> str:
    """A trained run's table: its protocol, lr decay and learning rate as its folder names
    them (`fairseq`, `paper-exponential-lr3e-5`); `released` for a released checkpoint."""
    return layout.run_name(record).removeprefix(f"{record['model']}-")


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def heading(model: str, protocol: str, decoder: str) -> str:
    """`LARGE (LS-960), protocol fairseq`, with the LM named for decoders other than Viterbi."""
    title = f"{MODEL_TITLES.get(model, model)}, protocol {protocol}"
    return title if decoder == layout.VITERBI else f"{title}, {decoder_name(decoder)}"


def decoder_name(decoder: str) -> str:
    """Short name of a decoder in rows and legends: `Viterbi`, `4-gram LM`."""
    return "Viterbi" if decoder == layout.VITERBI else LM_TITLES.get(DECODER_LM.get(decoder),
                                                                      decoder)


def model_table(model: str, protocol: str, decoder: str, records: list[dict],
                subsets: list[str], released: list[dict]) -> tuple[str, list[str]]:
    """Markdown rows for one model, protocol and decoder, and the plain-language verdicts."""
    paper = paper_row(model, decoder)
    by_split: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_split[r["split"]][r["subset"]].append(r["wer"])
    split_means = {s: {sub: statistics.mean(v) for sub, v in subs.items()}
                   for s, subs in by_split.items()}
    title = heading(model, protocol, decoder)
    lines = [f"### {title}", "", "| row | " + " | ".join(subsets) + " |",
             "|---|" + "---|" * len(subsets)]

    def row(name, cells):
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    lm = LM_TITLES.get(DECODER_LM.get(decoder), "no such row")
    row(f"paper, Table 9, {lm}", [f"{paper[s]:.1f}" if s in paper else "—" for s in subsets])
    released_wer = {r["subset"]: r for r in released}
    row(f"released 10-min checkpoint, {decoder_name(decoder)}",
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


def train_table(records: list[dict]) -> str:
    """Each run's WER on the utterances it was fine-tuned on, apart from the held-out sets."""
    lines = ["Training utterances (the split's own, seen in fine-tuning: shows that the model "
             "learned them; not a held-out result, not compared with the paper):", "",
             "| run | WER on its training utterances | CER | utterances |", "|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["split"], r["seed"])):
        cer = f"{r['cer']:.1f}" if "cer" in r else "—"
        lines.append(f"| split {r['split']}, seed {r['seed']} | "
                     f"{r['wer']:.1f} | {cer} | {r.get('utterances', '—')} |")
    return "\n".join(lines)


def run_rows(records: list[dict]) -> list[dict]:
    keys = ["model", "protocol", "lr", "lr_decay", "trained_lr", "split", "seed", "decoder",
            "subset", "wer", "ci_low", "ci_high", "errors", "words", "cer", "utterances",
            "checkpoint_sha256", "commit", "path"]
    return [{k: r.get(k, "") for k in keys} for r in records]


def summary(analysis: list[dict]) -> list[str]:
    """The report's first lines: in plain words, each setting's spread over splits and seeds,
    and what the numbers are (synthetic, for the tiny model)."""
    analysis = sorted(analysis, key=lambda setting: decoder_order(setting["decoder"]))
    parts = [line for setting in analysis for line in (replication.paragraph(setting), "")]
    for model in dict.fromkeys(setting["model"] for setting in analysis):
        if model in HELD_OUT_NOTES:
            parts += [HELD_OUT_NOTES[model], ""]
    return ["## In short", "", *parts] if parts else []


def report(records: list[dict], analysis: list[dict] | None = None) -> str:
    seen = [r for r in records if r["subset"] == TRAIN]
    held_out = [r for r in records if r["subset"] != TRAIN]
    subsets = [s for s in MAIN_SUBSETS if any(r["subset"] == s for r in held_out)] + \
        sorted({r["subset"] for r in held_out} - set(MAIN_SUBSETS))
    parts = ["# 10-minute fine-tuning: WER (%) against the paper's Table 9", "",
             "One section per decoder, compared with the paper's row for the same kind of "
             "decoding. Split rows: mean ± sd over seeds.", ""]
    parts += summary(analysis or [])
    verdicts = []
    for decoder in sorted({r["decoder"] for r in records}, key=decoder_order):
        released = defaultdict(list)
        trained = defaultdict(list)
        for r in held_out:
            if r["decoder"] != decoder:
                continue
            if r["protocol"] == layout.RELEASED:
                released[r["model"]].append(r)
            else:
                trained[(r["model"], setting(r))].append(r)
        parts += [f"## {DECODER_TITLES.get(decoder, decoder)}", ""]
        for (model, protocol), recs in sorted(trained.items()):
            table, said = model_table(model, protocol, decoder, recs, subsets,
                                      released.get(model, []))
            parts += [table, ""]
            verdicts += said
            own = [r for r in seen if (r["model"], setting(r), r["decoder"]) ==
                   (model, protocol, decoder)]
            if own:
                parts += [train_table(own), ""]
        for model in sorted(set(released) - {m for m, _ in trained}):
            table, _ = model_table(model, "released only", decoder, [], subsets, released[model])
            parts += [table, ""]
    if verdicts:
        parts += ["## Does the paper's number lie within the range of the splits?", "", *verdicts, ""]
    parts += ["## Every run", "", "| model | protocol | split | seed | subset | WER | 95% CI "
              "(bootstrap over utterances) | errors / words | decoder |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        ci = f"{r['ci_low']:.1f} – {r['ci_high']:.1f}" if "ci_low" in r else "—"
        parts.append(f"| {r['model']} | {setting(r)} | {r['split']} | "
                     f"{r['seed']} | {r['subset']} | {r['wer']:.2f} | {ci} | "
                     f"{r['errors']} / {r['words']} | {r['decoder']} |")
    return "\n".join(parts) + "\n"


def decoder_order(decoder: str) -> tuple:
    """Viterbi first, then the other decoders by name."""
    return (decoder != layout.VITERBI, decoder)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-root", dest="runs", type=Path, default=Path("runs"),
                        help="the RUN_ROOT whose wer.json files to gather")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    with stage("compare", f"{args.runs} -> {args.out}"):
        text = write_report(args.runs, args.out)
    print(text)
    print(f"wrote {args.out}/table9.md, table9.csv, README.md, statistics.json and "
          "wer-<subset>[-<decoder>].png")
    return 0


def write_report(runs: Path, out: Path) -> str:
    """Every output of `make compare` for the wer.json files under RUNS; table9.md's text.
    Everything is computed before anything is written."""
    records = load_records(runs)
    held_out = [r for r in records if r["subset"] != TRAIN]
    analysis = replication.analyse(held_out)
    text = report(records, analysis)
    rows = run_rows(records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "table9.md", text)
    write_text_atomic(out / "table9.csv", buffer.getvalue())
    write_json_atomic(out / "statistics.json", analysis)
    plots = []
    for subset, decoder in sorted({(r["subset"], r["decoder"]) for r in held_out}):
        name = f"wer-{subset if decoder == layout.VITERBI else f'{subset}-{decoder}'}.png"
        if replication.plot_subset(analysis, held_out, subset, decoder, out / name):
            plots.append(name)
    write_text_atomic(out / "README.md", replication.readme(analysis, plots))
    return text
