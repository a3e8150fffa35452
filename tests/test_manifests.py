import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import REPO, TINY, run_script

FAIRSEQ_EXAMPLES = Path(__import__("fairseq").__file__).parent / "examples" / "wav2vec"
EVAL = ["dev-clean", "dev-other", "test-clean", "test-other"]


def build(data, out, split="0", check=True):
    return run_script("manifests.py", "--data", data, "--split", split, "--out", out,
                      "--eval-sets", *EVAL, check=check)


def fairseq_manifest(root: Path, dest: Path, name: str) -> None:
    """fairseq's own wav2vec_manifest.py + libri_labels.py, rows sorted like ours."""
    subprocess.run([sys.executable, FAIRSEQ_EXAMPLES / "wav2vec_manifest.py", root, "--dest",
                    dest, "--valid-percent", "0"], check=True)
    lines = (dest / "train.tsv").read_text().splitlines()
    (dest / f"{name}.tsv").write_text("\n".join([lines[0]] + sorted(lines[1:])) + "\n")
    subprocess.run([sys.executable, FAIRSEQ_EXAMPLES / "libri_labels.py", dest / f"{name}.tsv",
                    "--output-dir", dest, "--output-name", name], check=True)


def test_formats_match_fairseqs_own_scripts(tmp_path):
    out = tmp_path / "ours"
    build(TINY, out)
    for name, root in [("train", TINY / "librispeech_finetuning/1h/0"),
                       ("dev_other", TINY / "LibriSpeech/dev-other")]:
        theirs = tmp_path / f"fairseq-{name}"
        fairseq_manifest(root, theirs, name)
        for ext in ("tsv", "ltr", "wrd"):
            assert (out / f"{name}.{ext}").read_bytes() == (theirs / f"{name}.{ext}").read_bytes()


def test_split_folder_is_complete_and_deterministic(tmp_path):
    build(TINY, tmp_path / "a")
    build(TINY, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    expected = sorted([f"{s}.{e}" for s in ["train", "dev_clean", "dev_other", "test_clean",
                                            "test_other"] for e in ("tsv", "ltr", "wrd")]
                      + ["dict.ltr.txt", "summary.json"])
    assert names == expected
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    rows = (tmp_path / "a" / "train.tsv").read_text().splitlines()[1:]
    assert rows == sorted(rows) and len(rows) == 8


def test_dict_is_the_released_one(tmp_path):
    build(TINY, tmp_path / "m")
    lines = (tmp_path / "m" / "dict.ltr.txt").read_text().splitlines()
    assert len(lines) == 28
    assert [l.split()[0] for l in lines] == list("|ETAONIHSRDLUMWCFGYPBVK'XJQZ")
    assert lines[0] == "| 94802" and lines[-1] == "Z 213"


def test_summary_counts_the_fold(tmp_path):
    build(TINY, tmp_path / "m")
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["train"]["utterances"] == 8 and summary["train"]["speakers"] == 4
    samples = sum(int(l.split("\t")[1]) for l in
                  (tmp_path / "m" / "train.tsv").read_text().splitlines()[1:])
    assert summary["train"]["minutes"] == pytest.approx(samples / 16000 / 60, abs=1e-3)
    assert 0 < summary["train"]["other_share"] < 1


def first_chapter(corpus: Path) -> Path:
    return sorted((corpus / "librispeech_finetuning/1h/0/clean").glob("*/*"))[0]


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr


def test_missing_folder(corpus, tmp_path):
    proc = build(corpus, tmp_path / "m", split="7", check=False)
    assert_one_line_error(proc, "1h/7/clean", "not found", "make data")
    assert not (tmp_path / "m").exists()


def test_transcript_line_without_audio(corpus, tmp_path):
    chapter = first_chapter(corpus)
    audio = sorted(chapter.glob("*.flac"))[0]
    audio.unlink()
    proc = build(corpus, tmp_path / "m", check=False)
    assert_one_line_error(proc, ".trans.txt", audio.stem, "no audio file")
    assert not (tmp_path / "m").exists()


def test_audio_without_transcript(corpus, tmp_path):
    chapter = first_chapter(corpus)
    trans = next(chapter.glob("*.trans.txt"))
    lines = trans.read_text().splitlines()
    trans.write_text("\n".join(lines[1:]) + "\n")
    proc = build(corpus, tmp_path / "m", check=False)
    assert_one_line_error(proc, lines[0].split()[0] + ".flac", "without a transcript")


@pytest.mark.parametrize("rate,channels", [(8000, 1), (16000, 2)])
def test_wrong_rate_or_channels(corpus, tmp_path, rate, channels):
    audio = sorted(first_chapter(corpus).glob("*.flac"))[0]
    soundfile.write(audio, np.zeros((rate, channels), dtype="int16"), rate)
    proc = build(corpus, tmp_path / "m", check=False)
    assert_one_line_error(proc, str(audio), f"{rate} Hz, {channels} channel", "16 kHz mono")


def test_characters_outside_dictionary(corpus, tmp_path):
    trans = next(first_chapter(corpus).glob("*.trans.txt"))
    lines = trans.read_text().splitlines()
    utt = lines[0].split()[0]
    trans.write_text("\n".join([f"{utt} CAFÉ 42"] + lines[1:]) + "\n")
    proc = build(corpus, tmp_path / "m", check=False)
    assert_one_line_error(proc, str(trans), utt, "outside dict.ltr.txt", "24É")


def test_empty_transcript(corpus, tmp_path):
    trans = next(first_chapter(corpus).glob("*.trans.txt"))
    lines = trans.read_text().splitlines()
    utt = lines[0].split()[0]
    trans.write_text("\n".join([utt] + lines[1:]) + "\n")
    proc = build(corpus, tmp_path / "m", check=False)
    assert_one_line_error(proc, f"{trans}:1", "empty transcript", utt)


def test_unreadable_flac(corpus, tmp_path):
    audio = sorted(first_chapter(corpus).glob("*.flac"))[0]
    audio.write_bytes(b"fLaC" + b"\x00" * 50)
    proc = build(corpus, tmp_path / "m", check=False)
    assert_one_line_error(proc, str(audio), "unreadable audio")


def test_failed_rebuild_keeps_the_previous_manifests(corpus, tmp_path):
    out = tmp_path / "m"
    build(corpus, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    next(first_chapter(corpus).glob("*.trans.txt")).write_text("")  # every audio file orphaned
    assert build(corpus, out, check=False).returncode == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
