"""make compare / scripts/compare.py on fabricated wer.json files, checked against hand-computed
numbers: per-split mean ± sd over seeds, the spread across splits, the difference from the
paper's Table 9, the plain-language verdicts, the released checkpoint's row, the bootstrap
intervals, table9.csv, the plots, and the one-line errors."""
import csv
import json

import pytest

from conftest import make, run_script, squeeze
from w2v2_10min import layout
from w2v2_10min.tables import HELD_OUT_NOTES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHA = "ab" * 32
CSV_COLUMNS = ["model", "protocol", "split", "seed", "lr", "lr_decay", "trainer", "rung", "optim",
               "trained_lr", "decoder", "subset", "wer", "ci_low", "ci_high", "errors", "words",
               "cer", "utterances", "checkpoint_sha256", "commit", "path"]
TRAINED_LR = "5e-05"  # the learning rate the fabricated runs say they were trained with


def varied(wer: int) -> tuple[list[int], list[int]]:
    """Four utterances of 25 words whose errors add up to `wer` (so WER = `wer` %) but differ."""
    spread = [-10, 5, -2, 7]
    errors = [wer // 4 + d for d in spread]
    errors[-1] += wer - sum(errors)
    return errors, [25, 25, 25, 25]


def write_wer(runs, model, protocol, subset, wer, split=None, seed=None, utterances=None,
              drop=(), decoder=None):
    """A wer.json as decode.py writes it, where `make decode` / `make decode-original` put it.

    Without `decoder` it is a Viterbi record as runs made before decoders had folders of their
    own (no `decoder` key); with one, it goes to that decoder's folder and names it.
    """
    if protocol == "released":
        run = runs / f"{model}-released"
        split = seed = "-"
    else:
        run = runs / f"{model}-{protocol}" / f"10min-{split}" / f"seed-{seed}"
    folder = layout.decode_dir(run, decoder or "viterbi") / subset
    errors, words = utterances or varied(wer)
    assert 100 * sum(errors) / sum(words) == wer
    record = {"subset": subset, "wer": float(wer), "errors": sum(errors), "words": sum(words),
              "cer": wer / 2, "char_errors": sum(errors) * 2, "chars": sum(words) * 8,
              "utterances": len(errors), "checkpoint_sha256": SHA, "model": model,
              "protocol": protocol, "split": str(split), "seed": str(seed), "lr": "",
              "lr_decay": "", "commit": "c0ffee", "utterance_errors": errors,
              "utterance_words": words}
    if protocol != "released":
        record["trained_lr"] = TRAINED_LR
    if decoder:
        record["decoder"] = decoder
    for key in drop:
        del record[key]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wer.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return folder / "wer.json"


# LARGE, fairseq protocol, three splits. By hand (sd is the sample standard deviation):
#   dev_clean: split 0 seeds 40, 44 -> 42.0 ± 2.8 (sqrt 8); split 1: 46; split 2 seeds 43, 45 -> 44
#              across the split means 42, 46, 44: 44.0 ± 2.0, 42.0 – 46.0, 44.0 - 43.0 = +1.0,
#              and the paper's 43.0 lies within 42.0 – 46.0
#   dev_other: split 0 seeds 50, 52 -> 51.0 ± 1.4 (sqrt 2); split 1: 54; split 2 seeds 55, 57 -> 56
#              across 51, 54, 56: 53.7 ± 2.5 (sqrt(19/3)), 51.0 – 56.0, 53.67 - 46.3 = +7.4,
#              and the paper's 46.3 lies outside 51.0 – 56.0
TRAINED = {("0", "1"): (40, 50), ("0", "2"): (44, 52), ("1", "1"): (46, 54),
           ("2", "1"): (43, 55), ("2", "2"): (45, 57)}
RELEASED = {"dev_clean": 41, "dev_other": 48}
# BASE has only its released checkpoint decoded: a table of its own, no verdicts.
RELEASED_BASE = {"dev_clean": 47}


def fabricate(runs):
    for (split, seed), wers in TRAINED.items():
        for subset, wer in zip(["dev_clean", "dev_other"], wers):
            write_wer(runs, "large", "fairseq", subset, wer, split, seed)
    for subset, wer in RELEASED.items():
        write_wer(runs, "large", "released", subset, wer)
    for subset, wer in RELEASED_BASE.items():
        write_wer(runs, "base", "released", subset, wer)


def read_md(path) -> str:
    return squeeze(path.read_text())


def one_error(proc) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def table_rows(md: str, heading: str) -> dict[str, list[str]]:
    """{row name: cells} of the markdown table under `### heading`."""
    block = md.split(f"### {heading}\n", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    rows = {}
    for line in block.splitlines()[2:]:
        name, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[name] = cells
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """compare.py run twice on the same runs (the second run for determinism)."""
    root = tmp_path_factory.mktemp("compare")
    runs = root / "runs"
    fabricate(runs)
    first = run_script("compare.py", "--run-root", runs, "--out", root / "out1")
    second = run_script("compare.py", "--run-root", runs, "--out", root / "out2")
    return root, runs, first, second


def test_split_rows_spread_and_difference_from_the_paper(report):
    root, _, proc, _ = report
    md = read_md(root / "out1/table9.md")
    assert squeeze(proc.stdout).startswith(md)  # the report is also printed
    assert "wrote" in proc.stdout.splitlines()[-1]
    rows = table_rows(md, "LARGE (LS-960), protocol fairseq")
    assert md.split("### LARGE (LS-960), protocol fairseq\n\n", 1)[1].startswith(
        "| row | dev_clean | dev_other |\n")
    assert rows == {
        "paper, Table 9, no LM": ["43.0", "46.3"],
        "released 10-min checkpoint, Viterbi": ["41.0", "48.0"],
        "split 0 (2 seeds)": ["42.0 ± 2.8", "51.0 ± 1.4"],
        "split 1 (1 seed)": ["46.0", "54.0"],
        "split 2 (2 seeds)": ["44.0 ± 1.4", "56.0 ± 1.4"],
        "across 3 splits: mean ± sd": ["44.0 ± 2.0", "53.7 ± 2.5"],
        "min – max over splits": ["42.0 – 46.0", "51.0 – 56.0"],
        "mean − paper": ["+1.0", "+7.4"],
    }


def test_verdicts_say_within_below_and_above(report):
    root, _, _, _ = report
    md = read_md(root / "out1/table9.md")
    verdicts = md.split("## Does the paper's number lie within the range of the splits?\n\n",
                        1)[1].split("\n\n", 1)[0].splitlines()
    assert verdicts == [
        "- LARGE (LS-960), protocol fairseq, dev_clean: the paper's 43.0 lies within the range "
        "of the 3 split(s), 42.0 – 46.0.",
        "- LARGE (LS-960), protocol fairseq, dev_other: the paper's 46.3 lies below the range "
        "of the 3 split(s), 51.0 – 56.0.",
    ]


def test_released_only_model_gets_its_own_table(report):
    root, _, _, _ = report
    md = read_md(root / "out1/table9.md")
    rows = table_rows(md, "BASE (LS-960), protocol released only")
    assert rows["paper, Table 9, no LM"] == ["46.1", "51.5"]
    assert rows["released 10-min checkpoint, Viterbi"] == ["47.0", "not decoded"]
    assert rows["min – max over splits"] == ["—", "—"]
    assert rows["mean − paper"] == ["—", "—"]
    assert not any(name.startswith("split ") for name in rows)
    assert "BASE (LS-960), protocol released only, dev_clean" not in md  # no verdict without runs


def test_every_run_has_a_bootstrap_interval_around_its_wer(report):
    root, _, _, _ = report
    md = read_md(root / "out1/table9.md")
    run_lines = md.split("## Every run\n", 1)[1].strip().splitlines()[2:]
    assert len(run_lines) == 2 * len(TRAINED) + len(RELEASED) + len(RELEASED_BASE)
    for line in run_lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        wer, (low, high) = float(cells[5]), map(float, cells[6].split(" – "))
        assert low < wer < high, line  # utterances differ, so the interval has width
        assert cells[7] == f"{round(wer)} / 100"
    assert "| large | fairseq | 0 | 2 | dev_clean | 44.00 |" in md
    assert "| large | released | - | - | dev_other | 48.00 |" in md


def test_bootstrap_is_deterministic(report):
    root, _, first, second = report
    assert (root / "out1/table9.md").read_text() == (root / "out2/table9.md").read_text()
    assert (root / "out1/table9.csv").read_text() == (root / "out2/table9.csv").read_text()
    assert first.stdout == second.stdout.replace("out2", "out1")


def test_table9_csv_has_one_row_per_run_and_subset(report):
    root, runs, _, _ = report
    with open(root / "out1/table9.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert len(rows) == 2 * len(TRAINED) + len(RELEASED) + len(RELEASED_BASE)
    expected = {("large", "fairseq", split, seed, subset): wer
                for (split, seed), wers in TRAINED.items()
                for subset, wer in zip(["dev_clean", "dev_other"], wers)}
    expected |= {("large", "released", "-", "-", s): w for s, w in RELEASED.items()}
    expected |= {("base", "released", "-", "-", s): w for s, w in RELEASED_BASE.items()}
    assert {(r["model"], r["protocol"], r["split"], r["seed"], r["subset"]): float(r["wer"])
            for r in rows} == expected
    for r in rows:
        assert float(r["ci_low"]) < float(r["wer"]) < float(r["ci_high"])
        assert int(r["errors"]) == round(float(r["wer"])) and r["words"] == "100"
        assert r["utterances"] == "4" and r["checkpoint_sha256"] == SHA and r["commit"] == "c0ffee"
        path = runs.joinpath(*_relative(r, runs))
        assert r["path"] == str(path) and path.is_file()


def _relative(r, runs):
    if r["protocol"] == "released":
        return [f"{r['model']}-released", "decode", r["subset"], "wer.json"]
    return [f"{r['model']}-{r['protocol']}", f"10min-{r['split']}", f"seed-{r['seed']}",
            "decode", r["subset"], "wer.json"]


def test_a_png_per_subset(report):
    root, _, _, _ = report
    pngs = sorted(p.name for p in (root / "out1").glob("*.png"))
    assert pngs == ["wer-dev_clean.png", "wer-dev_other.png"]
    for name in pngs:
        data = (root / "out1" / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000
        assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    # nothing half-written is left behind
    assert sorted(p.name for p in (root / "out1").iterdir()) == \
        ["README.md", "statistics.json", "table9.csv", "table9.md", *pngs]


def test_interval_collapses_when_every_utterance_has_the_same_rate(tmp_path):
    runs = tmp_path / "runs"
    # 4/10, 8/20, 12/30, 16/40: every utterance (and every resample) has WER 40 %
    write_wer(runs, "large", "paper", "test_other", 40, "3", "7",
              utterances=([4, 8, 12, 16], [10, 20, 30, 40]))
    run_script("compare.py", "--run-root", runs, "--out", tmp_path / "out")
    md = read_md(tmp_path / "out/table9.md")
    assert "| large | paper | 3 | 7 | test_other | 40.00 | 40.0 – 40.0 | 40 / 100 |" in md
    rows = table_rows(md, "LARGE (LS-960), protocol paper")
    # one split: no across-splits row, and its range is the one value
    assert rows == {"paper, Table 9, no LM": ["45.3"],
                    "released 10-min checkpoint, Viterbi": ["not decoded"],
                    "split 3 (1 seed)": ["40.0"],
                    "min – max over splits": ["40.0 – 40.0"],
                    "mean − paper": ["-5.3"]}
    assert ("the paper's 45.3 lies above the range of the 1 split(s), 40.0 – 40.0." in md)
    row = next(csv.DictReader(open(tmp_path / "out/table9.csv", newline="")))
    assert float(row["ci_low"]) == float(row["ci_high"]) == 40.0


def test_through_make(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    fabricate(runs)
    proc = make("compare", f"RUN_ROOT={runs}", f"RESULTS={out}")
    stdout = squeeze(proc.stdout)
    assert "| split 0 (2 seeds) | 42.0 ± 2.8 | 51.0 ± 1.4 |" in stdout
    assert "| across 3 splits: mean ± sd | 44.0 ± 2.0 | 53.7 ± 2.5 |" in stdout
    assert "| mean − paper | +1.0 | +7.4 |" in stdout
    assert (out / "table9.md").read_text() in proc.stdout
    assert (out / "table9.csv").read_text().count("\n") == 1 + 2 * len(TRAINED) + 3
    assert all((out / f"wer-{s}.png").read_bytes()[:8] == PNG_MAGIC
               for s in ("dev_clean", "dev_other"))


def test_no_wer_json_is_one_line(tmp_path):
    runs = tmp_path / "runs"
    (runs / "large-fairseq/10min-0/seed-1/decode/dev_clean").mkdir(parents=True)  # empty
    line = one_error(run_script("compare.py", "--run-root", runs, "--out", tmp_path / "out",
                                check=False))
    assert line == (f"error: {runs}: no wer.json found; run `make decode` (or decode-original) "
                    "first")
    assert not (tmp_path / "out").exists()
    proc = make("compare", f"RUN_ROOT={tmp_path / 'nowhere'}", f"RESULTS={tmp_path / 'out'}",
                check=False)
    assert proc.returncode != 0
    assert f"error: {tmp_path / 'nowhere'}: no wer.json found" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["subset", "wer", "errors", "words", "model"])
def test_a_wer_json_missing_a_key_is_one_line_naming_it(tmp_path, key):
    runs = tmp_path / "runs"
    write_wer(runs, "large", "fairseq", "dev_clean", 40, "0", "1")
    bad = write_wer(runs, "large", "fairseq", "dev_other", 48, "1", "1", drop=[key])
    line = one_error(run_script("compare.py", "--run-root", runs, "--out", tmp_path / "out",
                                check=False))
    assert line == f"error: {bad}: no '{key}'; decode it again with `make decode`"
    assert not (tmp_path / "out").exists()  # nothing is written from a partial set


def test_missing_utterance_words_is_one_line_naming_the_file(tmp_path):
    runs = tmp_path / "runs"
    bad = write_wer(runs, "large", "fairseq", "dev_clean", 40, "0", "1",
                    drop=["utterance_words"])
    line = one_error(run_script("compare.py", "--run-root", runs, "--out", tmp_path / "out",
                                check=False))
    assert line.startswith(f"error: {bad}: ") and "utterance_words" in line


def test_an_unreadable_wer_json_is_one_line_naming_the_file(tmp_path):
    runs = tmp_path / "runs"
    bad = write_wer(runs, "large", "fairseq", "dev_clean", 40, "0", "1")
    bad.write_text(bad.read_text()[:40])
    line = one_error(run_script("compare.py", "--run-root", runs, "--out", tmp_path / "out",
                                check=False))
    assert line.startswith(f"error: {bad}: ")


def test_decoders_are_kept_apart_in_tables_csv_and_plots(tmp_path):
    """4-gram and Transformer-LM decodes beside the Viterbi one: each its own section, paper
    row, CSV rows and plot; the paper's rule still keeps runs on the 4-gram LM's dev_other."""
    runs = tmp_path / "runs"
    for (split, seed), wers in TRAINED.items():
        for subset, wer in zip(["dev_clean", "dev_other"], wers):
            write_wer(runs, "large", "fairseq", subset, wer, split, seed)
            write_wer(runs, "large", "fairseq", subset, wer // 4, split, seed, decoder="4gram",
                      utterances=([wer // 4, 0, 0, 0], [25, 25, 25, 25]))
            # the Transformer LM ranks the seeds the other way round: it must not choose
            other = wer // 5 + 3 * int(seed)
            write_wer(runs, "large", "fairseq", subset, other, split, seed,
                      decoder="transformer", utterances=([other, 0, 0, 0], [25, 25, 25, 25]))
    write_wer(runs, "large", "released", "dev_other", 48)
    write_wer(runs, "large", "released", "dev_other", 12, decoder="4gram",
              utterances=([12, 0, 0, 0], [25, 25, 25, 25]))
    run_script("compare.py", "--run-root", runs, "--out", tmp_path / "out")
    md = read_md(tmp_path / "out/table9.md")
    viterbi = table_rows(md, "LARGE (LS-960), protocol fairseq")
    lm = table_rows(md, "LARGE (LS-960), protocol fairseq, 4-gram LM")
    assert md.index("## Viterbi, no LM") < md.index("### LARGE (LS-960), protocol fairseq\n") \
        < md.index("## 4-gram LM") < md.index("### LARGE (LS-960), protocol fairseq, 4-gram LM")
    assert viterbi["paper, Table 9, no LM"] == ["43.0", "46.3"]
    assert lm["paper, Table 9, 4-gram LM"] == ["8.6", "12.9"]
    assert viterbi["split 1 (1 seed)"] == ["46.0", "54.0"]
    assert lm["split 1 (1 seed)"] == [f"{46 // 4:.1f}", f"{54 // 4:.1f}"]
    assert viterbi["released 10-min checkpoint, Viterbi"] == ["not decoded", "48.0"]
    assert lm["released 10-min checkpoint, 4-gram LM"] == ["not decoded", "12.0"]
    with open(tmp_path / "out/table9.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    decoders = [r["decoder"] for r in rows]
    assert decoders.count("viterbi") == decoders.count("4gram") == 2 * len(TRAINED) + 1
    for r in rows:
        assert ("decode-4gram" in r["path"]) == (r["decoder"] == "4gram")
    assert {p.name for p in (tmp_path / "out").glob("*.png")} == {
        "wer-dev_clean.png", "wer-dev_other.png", "wer-dev_clean-4gram.png",
        "wer-dev_other-4gram.png", "wer-dev_clean-transformer.png",
        "wer-dev_other-transformer.png"}
    transformer = table_rows(md, "LARGE (LS-960), protocol fairseq, Transformer LM")
    assert md.index("### LARGE (LS-960), protocol fairseq, 4-gram LM") \
        < md.index("## Transformer LM") < md.index("### LARGE (LS-960), protocol fairseq, Tr")
    assert transformer["paper, Table 9, Transformer LM"] == ["6.6", "10.6"]
    assert transformer["split 1 (1 seed)"] == [f"{46 // 5 + 3:.1f}", f"{54 // 5 + 3:.1f}"]
    assert decoders.count("transformer") == 2 * len(TRAINED)
    stats = json.loads((tmp_path / "out/statistics.json").read_text())
    assert {s["decoder"] for s in stats} == {"viterbi", "4gram", "transformer"}
    for setting in stats:
        assert {c["criterion_decoder"] for c in setting["selection"]} == {"4gram"}
    readme = read_md(tmp_path / "out/README.md")
    assert "### LARGE (LS-960), protocol fairseq, Transformer LM (fairseq word LM" in readme


def test_readme_answers_the_replication_question_traceably(report):
    """results/README.md: the paper's rule keeps seed 1 on every split (lowest dev_other), so the
    kept runs are dev_clean 40, 46, 43 and dev_other 50, 54, 55; by hand, their prediction
    interval for a new split is mean ± t(0.975, 2) · sd · sqrt(1 + 1/3)."""
    from scipy.stats import t

    root, runs, _, _ = report
    md = read_md(root / "out1/README.md")
    assert md == read_md(root / "out2/README.md")
    assert md.startswith("# 10-minute fine-tuning: how consistently does it replicate?")
    assert "**LARGE (LS-960), protocol fairseq, Viterbi, no LM.** 3 splits, 1–2 seeds each " \
        "(5 runs)." in md
    rows = table_rows(md, "LARGE (LS-960), protocol fairseq, Viterbi, no LM")
    assert rows["paper, Table 9"] == ["43.0", "46.3"]
    assert rows["released checkpoint"] == ["41.0", "48.0"]
    assert rows["splits · runs"] == ["3 · 5", "3 · 5"]
    assert rows["selected (paper's rule): mean ± sd"] == ["43.0 ± 3.0", "53.0 ± 2.6"]
    half = [t.ppf(0.975, 2) * sd * (4 / 3) ** 0.5 for sd in (3.0, 7 ** 0.5)]
    assert rows["selected (paper's rule): new split, best of n: 95% PI"] == [
        f"{43 - half[0]:.1f} – {43 + half[0]:.1f} (n=1–2)",
        f"{53 - half[1]:.1f} – {53 + half[1]:.1f} (n=1–2)"]
    assert rows["selected (paper's rule): paper vs best-of-n PI"] == ["within", "within"]
    kept = md.split("Runs kept by the paper's rule:\n\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split(" | ")[2] for line in kept.splitlines()[2:]] == ["—, 1"] * 3
    assert f"`{runs}/large-fairseq/10min-2/seed-1/decode/dev_other/wer.json`" in kept
    assert "![wer-dev_other.png](wer-dev_other.png)" in md
    stats = json.loads((root / "out1/statistics.json").read_text())
    level = stats[0]["subsets"]["dev_other"]["seed_level"][""]["all"]
    assert sorted((r["split"], r["seed"], r["wer"]) for r in level["runs"]) == sorted(
        (split, seed, wers[1]) for (split, seed), wers in TRAINED.items())
    for r in level["runs"]:
        assert json.loads(open(r["path"]).read())["wer"] == r["wer"]


def test_training_utterances_are_a_table_apart_never_a_held_out_column(tmp_path):
    """`make demo` decodes the split's own training set too: shown apart, never beside or
    averaged with the held-out sets, with the line that says what the held-out numbers mean."""
    runs, out = tmp_path / "runs", tmp_path / "results"
    write_wer(runs, "tiny", "tiny", "dev_other", 100, split=0, seed=1)
    write_wer(runs, "tiny", "tiny", "train", 1, split=0, seed=1,
              utterances=([1, 0, 0, 0], [25, 25, 25, 25]))
    run_script("compare.py", "--run-root", runs, "--out", out)
    text = read_md(out / "table9.md")
    headers = [line for line in text.splitlines() if line.startswith("| row |")]
    assert headers == ["| row | dev_other |"]
    rows = [line for line in text.splitlines() if "| split 0, seed 1 |" in line]
    assert rows == ["| split 0, seed 1 | 1.0 | 0.5 | 4 |"]
    assert text.index("| split 0 (1 seed) | 100.0 |") < text.index(rows[0])
    assert "not a held-out result, not compared with the paper" in text
    assert HELD_OUT_NOTES["tiny"] in text
    assert sorted(p.name for p in out.glob("*.png")) == ["wer-dev_other.png"]


# --- records that must not be taken at their word (issue 19) --------------------------------

def rewrite(path, change=None, drop=()):
    """Rewrite a wer.json with some of its keys changed or dropped."""
    record = json.loads(path.read_text()) | (change or {})
    for key in drop:
        del record[key]
    path.write_text(json.dumps(record))  # NaN and Infinity as Python's json writes them
    return path


def compare_error(runs, out) -> str:
    """compare's main on RUNS: the one-line UserError it raises, with nothing written."""
    from w2v2_10min import compare
    from w2v2_10min.common import UserError

    with pytest.raises(UserError) as caught:
        compare.main(["--run-root", str(runs), "--out", str(out)])
    assert not out.exists()  # raised before anything is written
    assert "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("change, drop, said", [
    ({"wer": float("nan")}, (), "'wer' is NaN, not a WER (a finite number >= 0)"),
    ({"wer": float("inf")}, (), "'wer' is Infinity, not a WER"),
    ({"wer": None}, (), "'wer' is null, not a WER"),
    ({"wer": "48.0"}, (), "'wer' is \"48.0\", not a WER"),
    ({"wer": -1.0}, (), "'wer' is -1.0, not a WER"),
    ({"words": 0}, (), "'errors' 48 and 'words' 0 must be whole numbers, words > 0"),
    ({"wer": 42.6}, (), "'wer' 42.6 disagrees with 100·errors/words = 48.00"),
    ({"utterance_words": [25, 25, 25, 24]}, (), "are not two equally long lists of counts "
                                                "adding up to errors and words"),
    ({}, ("split",), "no 'split': made before records carried the run's identity"),
    ({}, ("protocol",), "no 'protocol'"),
    ({}, ("seed",), "no 'seed'"),
    ({}, ("lr_decay",), "no 'lr_decay': made before records carried the run's identity"),
    ({}, ("trained_lr",), "no 'trained_lr': made before records carried the run's identity"),
    ({"seed": 1.5}, (), "its 'seed' is 1.5, not a string"),
    ({"trained_lr": "fast"}, (), "'lr' '' and 'trained_lr' 'fast' are not one learning rate"),
])
def test_a_bad_record_is_one_line_naming_the_file_and_the_fix(tmp_path, change, drop, said):
    runs = tmp_path / "runs"
    write_wer(runs, "large", "fairseq", "dev_clean", 40, "0", "1")
    bad = rewrite(write_wer(runs, "large", "fairseq", "dev_other", 48, "1", "1"), change, drop)
    line = compare_error(runs, tmp_path / "out")
    assert line.startswith(f"{bad}: ") and said in line, line
    assert line.endswith("decode it again with `make decode`"), line


def test_a_record_in_another_runs_folder_is_refused(tmp_path):
    """A folder copied to seed-4 whose JSON still says seed 1 (it would count twice), a run in
    10min-3/ labelled split 2 (it would move the ICC), a released record with a split."""
    import shutil

    runs, out = tmp_path / "runs", tmp_path / "out"
    seed1 = write_wer(runs, "large", "fairseq", "dev_other", 48, "0", "1")
    shutil.copytree(seed1.parents[2], runs / "large-fairseq/10min-0/seed-4")
    line = compare_error(runs, out)
    assert line.startswith(f"{runs}/large-fairseq/10min-0/seed-4/decode/dev_other/wer.json: ")
    assert ("its identity (model large, protocol fairseq, lr the recipe’s, split 0, seed 1) "
            "belongs in large-fairseq/10min-0/seed-1/, not large-fairseq/10min-0/seed-4/; move "
            "the folder back, or delete it and decode it again with `make decode`") in line
    shutil.rmtree(runs / "large-fairseq/10min-0/seed-4")
    moved = rewrite(write_wer(runs, "large", "fairseq", "dev_other", 50, "3", "1"),
                    {"split": "2"})
    assert f"{moved}: its identity" in compare_error(runs, out)
    assert "belongs in large-fairseq/10min-2/seed-1/, not large-fairseq/10min-3/seed-1/" in \
        compare_error(runs, out)
    rewrite(moved, {"split": "3"})
    released = rewrite(write_wer(runs, "large", "released", "dev_other", 48), {"split": "3"})
    assert compare_error(runs, out) == (
        f"{released}: a released checkpoint's record must have split and seed '-' and no lr or "
        "lr_decay; decode it again with `make decode-original`")


@pytest.mark.parametrize("subset", ["dev_other", "test_other"])
def test_the_same_run_twice_is_refused(tmp_path, subset):
    """`LR=5e-5` names its own folder, but the recipe's own rate is 5e-5 too: one run twice,
    whichever subsets the two folders decoded."""
    runs = tmp_path / "runs"
    first = write_wer(runs, "large", "fairseq", "dev_other", 48, "0", "1")
    record = json.loads(first.read_text()) | {"lr": "5e-5", "subset": subset}
    again = runs / f"large-fairseq-lr5e-5/10min-0/seed-1/decode/{subset}/wer.json"
    again.parent.mkdir(parents=True)
    again.write_text(json.dumps(record))
    assert compare_error(runs, tmp_path / "out") == (
        f"{runs}/large-fairseq-lr5e-5/10min-0/seed-1: the same run as {runs}/large-fairseq/"
        "10min-0/seed-1 (model, protocol, split, seed and learning rate 5e-05); keep one of "
        "the two folders")


# The unbalanced grid: seeds per split 3, 2, 1, 3, 2, 1, every WER near 39.5 with seed
# sd 1.1. statsmodels' own standard error of the mean is NaN on it; the report said
# "95% interval nan – nan" and that the paper's 45.3 lies "within" it.
UNBALANCED = {"0": [38.3, 38.01, 39.75], "1": [38.28, 40.79], "2": [40.29],
              "3": [37.3, 39.8, 38.29], "4": [39.54, 39.55], "5": [37.31]}


def test_an_unbalanced_grid_gets_finite_intervals_end_to_end(tmp_path, capsys):
    import re

    from scipy import stats as scipy_stats

    from w2v2_10min import compare

    runs, out = tmp_path / "runs", tmp_path / "out"
    for split, wers in UNBALANCED.items():
        for seed, wer in enumerate(wers, start=1):
            for subset, offset in (("test_other", 0), ("dev_other", 300)):
                errors = round(wer * 100) + offset  # of 10,000 words
                utterances = ([errors // 4] * 3 + [errors - 3 * (errors // 4)], [2500] * 4)
                write_wer(runs, "large", "paper", subset, 100 * errors / 10000, split, seed,
                          utterances=utterances)
    assert compare.main(["--run-root", str(runs), "--out", str(out)]) == 0
    capsys.readouterr()
    for name in ("README.md", "table9.md", "table9.csv", "statistics.json"):
        assert not re.search(r"\bnan\b|infinity", (out / name).read_text(), re.I), name
    level = json.loads((out / "statistics.json").read_text())[0]["subsets"]["test_other"][
        "seed_level"][""]["all"]
    assert level["seeds_per_split"] == [1, 3] and level["runs_count"] == 12
    low, high = level["ci"]
    assert low < level["mean"] < high and 0.2 < level["se"] < 1.0
    # the interval is mu ± t(0.975, 5)·se with se the GLS one at the REML variances
    assert high - low == pytest.approx(2 * scipy_stats.t.ppf(0.975, 5) * level["se"], abs=1e-3)
    md = (out / "README.md").read_text()
    assert f"On test_other the mean over splits is {level['mean']:.1f}% (95% interval " \
        f"{low:.1f} – {high:.1f}); one run on a new 10-minute split should land in" in md
    assert level["verdict_seed_mean"] == "above"  # 45.3 is far above runs near 39.5
