"""Gather decoded runs into a Table-9-style report: paper, released checkpoint, each split.

Usage: python scripts/compare.py --run-root runs --out results

Reads every decoded subset under RUNS (w2v2_10min.layout.wer_json_files): each run's
decode/<subset>/wer.json (Viterbi) and decode-<decoder>/<subset>/wer.json (other decoders, e.g.
4gram), for trained runs RUNS/<model>-<setting>/10min-<split>/seed-<seed>/ and released
checkpoints RUNS/<model>-released/ (w2v2_10min.layout). Each record is checked first (w2v2_10min.records: counts
that agree, the run's identity naming its folder, no run twice); a bad one stops it with one
line naming the file and the fix, before anything is written. Decoders are kept apart
everywhere. Writes, atomically:
  OUT/table9.md   per model, protocol and decoder: the paper's row for that decoder (no LM for
                  Viterbi, 4-gram for 4gram), the released checkpoint's row, each split's WER
                  (mean ± sd over seeds), the spread across splits, and whether the paper's
                  number lies below, within or above the splits' range; then every run
                  with its bootstrap 95% interval over utterances. A run's `train` subset
                  (its own training utterances, `make decode DECODE_TRAIN=1`) is shown in a table of its own
                  below its model's: never a column beside the held-out sets, never compared
                  with the paper
  OUT/table9.csv  one row per run, decoder and subset (with its identity, every key of
                  w2v2_10min.layout.RunId, and trained_lr), with the interval
  OUT/wer-<subset>.png (Viterbi), OUT/wer-<subset>-<decoder>.png (others): each split's seeds
                  as points, the run kept by the paper's rule ringed, split means, the
                  prediction band for a new split, paper dashed, released checkpoint dotted
  OUT/README.md   how consistently it replicates: a paragraph per model, protocol and decoder,
                  then the statistics (docs/statistics.md) and the plots
  OUT/statistics.json  every statistic with the wer.json files it came from
and prints table9.md. Every output is written from one analysis (w2v2_10min.analysis): the
text by w2v2_10min.tables, the plots by w2v2_10min.plots.
"""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from w2v2_10min import analysis, plots, tables
from w2v2_10min.common import stage, write_json_atomic, write_text_atomic
from w2v2_10min.records import load_records


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
    """Every output of `make compare` for the wer.json files under RUNS, from one analysis;
    table9.md's text. Everything is computed before anything is written."""
    records = analysis.run_intervals(load_records(runs))
    held_out = [r for r in records if r["subset"] != tables.TRAIN]
    settings = analysis.analyse(held_out)
    text = tables.table9(records, settings)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=tables.csv_keys(), lineterminator="\n")
    writer.writeheader()
    writer.writerows(tables.csv_rows(records))
    write_text_atomic(out / "table9.md", text)
    write_text_atomic(out / "table9.csv", buffer.getvalue())
    write_json_atomic(out / "statistics.json", settings)
    drawn = []
    for subset, decoder in sorted({(r["subset"], analysis.decoder(r)) for r in held_out}):
        name = plots.file_name(subset, decoder)
        if plots.plot_subset(settings, held_out, subset, decoder, out / name):
            drawn.append(name)
    write_text_atomic(out / "README.md", tables.readme(settings, drawn))
    return text
