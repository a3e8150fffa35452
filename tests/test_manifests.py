import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import TINY, run_script

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
    assert rows == sorted(rows) and len(rows) == 64


def test_dict_is_the_released_one(tmp_path):
    build(TINY, tmp_path / "m")
    lines = (tmp_path / "m" / "dict.ltr.txt").read_text().splitlines()
    assert len(lines) == 28
    assert [l.split()[0] for l in lines] == list("|ETAONIHSRDLUMWCFGYPBVK'XJQZ")
    assert lines[0] == "| 94802" and lines[-1] == "Z 213"


def test_summary_counts_the_fold(tmp_path):
    build(TINY, tmp_path / "m")
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["train"]["utterances"] == 64 and summary["train"]["speakers"] == 8
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
    shutil.rmtree(corpus / "librispeech_finetuning/1h/3/clean")
    proc = build(corpus, tmp_path / "m", split="3", check=False)
    assert_one_line_error(proc, "1h/3/clean", "not found", "make data")
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


# ---- several splits, the summary table, reading the eval sets once ---------------------------

from w2v2_10min import manifests  # noqa: E402
from w2v2_10min.common import cpu_cores  # noqa: E402


def build_many(data, root, *args, check=True):
    return run_script("manifests.py", "--data", data, "--out-root", root, "--eval-sets", *EVAL,
                      *args, check=check)


def table_rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["split"])
    assert lines[header].split() == ["split", "utterances", "minutes", "speakers", "clean", "other"]
    return {line.split()[0]: line.split()[1:] for line in lines[header + 1:]}


def test_several_splits_in_one_run_with_a_summary_table(tmp_path):
    proc = build_many(TINY, tmp_path / "m", "--split", *"012345")
    build(TINY, tmp_path / "single", split="4")
    rows = table_rows(proc.stdout)
    assert list(rows) == list("012345")
    for k in "012345":
        folder = tmp_path / "m" / f"10min-{k}"
        assert f"wrote {folder}" in proc.stdout
        info = json.loads((folder / "summary.json").read_text())["train"]
        utts, minutes, speakers, clean, other = rows[k]
        assert (int(utts), int(speakers)) == (info["utterances"], info["speakers"]) == (64, 8)
        assert float(minutes) == pytest.approx(info["minutes"], abs=0.006)
        assert float(clean.rstrip("%")) + float(other.rstrip("%")) == pytest.approx(100, abs=0.2)
        assert float(other.rstrip("%")) == pytest.approx(100 * info["other_share"], abs=0.05)
    for name in sorted(p.name for p in (tmp_path / "single").iterdir()):
        assert ((tmp_path / "m/10min-4" / name).read_bytes()
                == (tmp_path / "single" / name).read_bytes())


def test_out_takes_a_single_split(tmp_path):
    proc = run_script("manifests.py", "--data", TINY, "--split", "0", "1", "--out", tmp_path / "m",
                      check=False)
    assert proc.returncode == 2 and "--out takes one split" in proc.stderr
    assert not (tmp_path / "m").exists()


def test_each_input_is_read_once(tmp_path, monkeypatch, capsys):
    calls = []
    real_scan = manifests.scan
    monkeypatch.setattr(manifests, "scan", lambda root, *a, **k: calls.append(
        Path(root).relative_to(TINY).as_posix()) or real_scan(root, *a, **k))
    monkeypatch.setattr(sys, "argv", ["manifests.py", "--data", str(TINY), "--split", "0", "1", "2",
                                      "--sample", "1", "2", "--minutes", "0.1",
                                      "--out-root", str(tmp_path), "--eval-sets", *EVAL])
    assert manifests.main() == 0
    assert sorted(calls) == sorted([f"LibriSpeech/{s}" for s in EVAL]
                                   + [f"librispeech_finetuning/1h/{k}/{c}" for k in "012"
                                      for c in ("clean", "other")]
                                   + [f"librispeech_finetuning/9h/{c}" for c in ("clean", "other")])
    assert list(table_rows(capsys.readouterr().out)) == ["0", "1", "2", "s1", "s2"]


def test_a_bad_file_in_any_split_writes_nothing(corpus, tmp_path):
    chapter = sorted((corpus / "librispeech_finetuning/1h/3/other").glob("*/*"))[0]
    next(chapter.glob("*.trans.txt")).write_text("")
    proc = build_many(corpus, tmp_path / "m", "--split", "0", "3", check=False)
    assert_one_line_error(proc, "1h/3/other", "without a transcript")
    assert not (tmp_path / "m").exists()


# ---- new seeded samples from the 9h pool -----------------------------------------------------

POOL = TINY / "librispeech_finetuning/9h"


def tsv_rows(folder: Path) -> list[tuple[str, int]]:
    return [(rel, int(n)) for rel, n in
            (line.split("\t") for line in (folder / "train.tsv").read_text().splitlines()[1:])]


def test_sample_folder_is_a_balanced_fold_of_the_target_length(tmp_path):
    proc = build_many(TINY, tmp_path, "--sample", "7", "--minutes", "0.1")
    folder = tmp_path / "10min-s7"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in (build(TINY, tmp_path / "fold") and tmp_path / "fold").iterdir())
    info = json.loads((folder / "summary.json").read_text())
    sample = info["sample"]
    assert info["split"] == "s7" and list(table_rows(proc.stdout)) == ["s7"]
    assert (sample["seed"], sample["target_minutes"], sample["gender_balanced"]) == (7, 0.1, False)
    rows = tsv_rows(folder)
    assert (folder / "train.tsv").read_text().splitlines()[0] == str(POOL.resolve())
    assert [r for r, _ in rows] == sorted(r for r, _ in rows)
    assert (sample["utterances"] == len(rows) == len(sample["utterance_ids"])
            == info["train"]["utterances"])
    assert sorted(sample["utterance_ids"]) == sorted(Path(r).stem for r, _ in rows)
    for condition in ("clean", "other"):
        mine = [(r, n) for r, n in rows if r.startswith(condition + "/")]
        assert sum(n for _, n in mine) >= 0.1 * 60 * 16000 / 2  # half of the target from each
        assert sorted({r.split("/")[1] for r, _ in mine}) == sorted(sample["speakers"][condition])
        assert len(sample["speakers"][condition]) == 2
    assert info["train"]["minutes"] >= 0.1
    # the words are the pool's transcript lines, in fairseq's formats
    for (rel, _), wrd, ltr in zip(rows, (folder / "train.wrd").read_text().splitlines(),
                                  (folder / "train.ltr").read_text().splitlines()):
        trans = next((POOL / rel).parent.glob("*.trans.txt")).read_text()
        assert f"{Path(rel).stem} {wrd}\n" in trans
        assert ltr == " ".join(" ".join(w) + " |" for w in wrd.split())


def test_sample_is_deterministic_and_the_seed_matters(tmp_path):
    build_many(TINY, tmp_path / "a", "--sample", *map(str, range(8)), "--minutes", "0.1")
    build_many(TINY, tmp_path / "b", "--sample", "3", "--minutes", "0.1")
    for p in (tmp_path / "b/10min-s3").iterdir():
        assert p.read_bytes() == (tmp_path / "a/10min-s3" / p.name).read_bytes()
    draws = {(tmp_path / f"a/10min-s{s}/train.tsv").read_text() for s in range(8)}
    assert len(draws) > 1
    # the draw depends on the pool, not on the order the files were listed in
    pool = [u for c in ("clean", "other") for u in manifests.scan(POOL / c, prefix=c + "/")]
    first = manifests.draw_sample(pool, 5, 0.1, None, POOL)
    assert manifests.draw_sample(list(reversed(pool)), 5, 0.1, None, POOL) == first
    assert manifests.draw_sample(pool, 6, 0.1, None, POOL)[1]["seed"] == 6


def test_minutes_sets_how_much_is_drawn(tmp_path):
    build_many(TINY, tmp_path, "--sample", "1", "--minutes", "0.2")
    info = json.loads((tmp_path / "10min-s1/summary.json").read_text())
    assert info["sample"]["target_minutes"] == 0.2 and info["train"]["minutes"] >= 0.2
    for condition in ("clean", "other"):
        per_speaker = {}
        for rel, n in tsv_rows(tmp_path / "10min-s1"):
            if rel.startswith(condition):
                per_speaker[rel.split("/")[1]] = per_speaker.get(rel.split("/")[1], 0) + n
        assert len(per_speaker) == 2 and min(per_speaker.values()) >= 0.2 * 60 * 16000 / 4


def test_pool_too_small_for_the_target(tmp_path):
    proc = build_many(TINY, tmp_path, "--sample", "1", check=False)  # 10 minutes from ~20 s
    assert_one_line_error(proc, str(POOL / "clean"), "pool too small", "10-minute", "--minutes")
    assert not (tmp_path / "10min-s1").exists()


def test_missing_pool(corpus, tmp_path):
    shutil.rmtree(corpus / "librispeech_finetuning/9h")
    proc = build_many(corpus, tmp_path, "--sample", "1", "--minutes", "0.1", check=False)
    assert_one_line_error(proc, "9h/clean", "not found")


def clone_speaker(corpus: Path, condition: str, source: str, new: str) -> None:
    """Copy a pool speaker's chapters under a new speaker id (files, transcript lines renamed)."""
    for chapter in (corpus / "librispeech_finetuning/9h" / condition / source).iterdir():
        dest = corpus / "librispeech_finetuning/9h" / condition / new / chapter.name
        dest.mkdir(parents=True)
        for f in chapter.iterdir():
            target = dest / f.name.replace(f"{source}-", f"{new}-", 1)
            if f.name.endswith(".trans.txt"):
                target.write_text(f.read_text().replace(f"{source}-", f"{new}-"))
            else:
                shutil.copy(f, target)


GENDERS = {"1876": "F", "1913": "M", "3001": "F", "3002": "F", "3003": "F",
           "1950": "F", "1987": "M", "3004": "F", "3005": "F"}


def speakers_txt(genders: dict[str, str]) -> str:
    return (";ID  |SEX| SUBSET           |MINUTES| NAME\n; a comment line\n\n"
            + "".join(f"{s:<5}| {g} | train-clean-100  | 25.03 | Reader |{s}| name\n"
                      for s, g in genders.items()))


@pytest.fixture
def gendered_pool(corpus):
    """Three more female speakers in clean and two more in other: 4 F + 1 M per condition."""
    for new in ("3001", "3002", "3003"):
        clone_speaker(corpus, "clean", "1876", new)
    for new in ("3004", "3005"):
        clone_speaker(corpus, "other", "1950", new)
    return corpus


def drawn_genders(root: Path, seeds) -> list[dict[str, list[str]]]:
    out = []
    for s in seeds:
        sample = json.loads((root / f"10min-s{s}/summary.json").read_text())["sample"]
        out.append({c: sorted(GENDERS[spk] for spk in sample["speakers"][c])
                    for c in ("clean", "other")})
    return out


def test_speakers_txt_gives_one_female_and_one_male_per_condition(gendered_pool, tmp_path):
    seeds = [str(s) for s in range(10)]
    build_many(gendered_pool, tmp_path / "blind", "--sample", *seeds, "--minutes", "0.1")
    assert any(d["clean"] == ["F", "F"] or d["other"] == ["F", "F"]
               for d in drawn_genders(tmp_path / "blind", seeds))
    (gendered_pool / "LibriSpeech/SPEAKERS.TXT").write_text(speakers_txt(GENDERS))
    build_many(gendered_pool, tmp_path / "seen", "--sample", *seeds, "--minutes", "0.1")
    assert all(d == {"clean": ["F", "M"], "other": ["F", "M"]}
               for d in drawn_genders(tmp_path / "seen", seeds))
    sample = json.loads((tmp_path / "seen/10min-s0/summary.json").read_text())["sample"]
    assert sample["gender_balanced"] is True
    assert sample["genders"] == {s: GENDERS[s] for c in ("clean", "other")
                                 for s in sample["speakers"][c]}
    blind = json.loads((tmp_path / "blind/10min-s0/summary.json").read_text())["sample"]
    assert blind["gender_balanced"] is False and "SPEAKERS.TXT" in blind["gender_note"]


def test_speakers_txt_without_a_pool_speaker(gendered_pool, tmp_path):
    (gendered_pool / "LibriSpeech/SPEAKERS.TXT").write_text(
        speakers_txt({s: g for s, g in GENDERS.items() if s != "3002"}))
    proc = build_many(gendered_pool, tmp_path, "--sample", "1", "--minutes", "0.1", check=False)
    assert_one_line_error(proc, "SPEAKERS.TXT", "speaker 3002", "9h/clean")


def test_speakers_txt_with_a_bad_line(corpus, tmp_path):
    (corpus / "LibriSpeech/SPEAKERS.TXT").write_text(speakers_txt(GENDERS) + "1876 | X | oops\n")
    proc = build_many(corpus, tmp_path, "--sample", "1", "--minutes", "0.1", check=False)
    assert_one_line_error(proc, "SPEAKERS.TXT:13", "F or M")


def test_speakers_txt_without_a_male_speaker(corpus, tmp_path):
    (corpus / "LibriSpeech/SPEAKERS.TXT").write_text(speakers_txt({**GENDERS, "1913": "F"}))
    proc = build_many(corpus, tmp_path, "--sample", "1", "--minutes", "0.1", check=False)
    assert_one_line_error(proc, str(corpus / "librispeech_finetuning/9h/clean"),
                          "a female and a male speaker")


# ---- the scan itself -------------------------------------------------------------------------

@pytest.mark.parametrize("subtype,channels,rate", [("PCM_16", 1, 16000), ("PCM_24", 2, 22050),
                                                   ("PCM_S8", 1, 8000)])
def test_header_reader_agrees_with_soundfile(tmp_path, subtype, channels, rate):
    path = tmp_path / "x.flac"
    soundfile.write(path, np.zeros((1234, channels), dtype="int16"), rate, subtype=subtype)
    info = soundfile.info(str(path))
    assert manifests.flac_streaminfo(str(path)) == (info.frames, info.samplerate, info.channels)
    assert manifests.audio_samples(str(path)) == (1234, rate, channels)
    for flac in sorted(TINY.rglob("*.flac"))[:10]:
        info = soundfile.info(str(flac))
        assert manifests.audio_samples(str(flac)) == (info.frames, info.samplerate, info.channels)


def test_unusual_headers_are_left_to_soundfile(tmp_path):
    path = tmp_path / "x.flac"
    path.write_bytes(b"fLaC" + b"\x00" * 50)
    assert manifests.flac_streaminfo(str(path)) is None
    assert isinstance(manifests.audio_samples(str(path)), str)  # soundfile's error message


def test_hidden_files_are_skipped_like_fairseqs_glob(corpus, tmp_path):
    chapter = first_chapter(corpus)
    (chapter / "._junk.flac").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble file
    (chapter / ".hidden").mkdir()
    (chapter / ".hidden/x.flac").write_bytes(b"junk")
    build(corpus, tmp_path / "m")
    assert len(tsv_rows(tmp_path / "m")) == 64


def test_duplicate_utterance_ids(corpus, tmp_path):
    audio = sorted(first_chapter(corpus).glob("*.flac"))[0]
    other = sorted((corpus / "librispeech_finetuning/1h/0/clean").glob("*/*"))[1]
    shutil.copy(audio, other / audio.name)
    proc = build(corpus, tmp_path / "m", check=False)
    assert_one_line_error(proc, audio.name, "also at", "remove one")


def test_transcript_line_must_be_beside_its_audio(corpus, tmp_path):
    chapters = sorted((corpus / "librispeech_finetuning/1h/0/clean").glob("*/*"))
    audio = sorted(chapters[0].glob("*.flac"))[0]
    audio.rename(chapters[1] / audio.name)
    proc = build(corpus, tmp_path / "m", check=False)
    assert_one_line_error(proc, audio.stem, "no audio file", "beside it")


def test_a_big_tree_uses_the_process_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(manifests, "POOL_MIN_FILES", 1)
    try:
        utts = manifests.scan(TINY / "LibriSpeech/dev-clean")
        assert manifests._POOL is not None or cpu_cores() == 1
    finally:
        manifests.shutdown_pool()
    root = TINY / "LibriSpeech/dev-clean"
    assert [u.samples for u in utts] == [soundfile.info(str(root / u.rel)).frames for u in utts]


# ---- samples of N utterances from a pool (LibriSpeech train-clean-100) -------------------------
# The tiny corpus's stand-in pool: LibriSpeech/train-clean-100/SPK, links to 10 clean speakers
# of its Libri-light part (76 utterances), made by tiny/make_tiny_corpus.py.

import hashlib  # noqa: E402

from conftest import make  # noqa: E402
from w2v2_10min import layout, tables  # noqa: E402
from w2v2_10min.knobs import check as check_knob  # noqa: E402
from w2v2_10min.common import UserError  # noqa: E402

C100 = TINY / "LibriSpeech/train-clean-100"


def make_manifests(root, *knobs, data=TINY, check=True):
    return make("manifests", f"DATA={data}", f"MANIFEST_ROOT={root}", "SPLITS=",
                f"EVAL_SETS={' '.join(EVAL)}", *knobs, check=check)


def one_error(proc) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and len(errors) == 1, \
        proc.stderr
    return errors[0]


def test_make_manifests_pool_draws_the_seeds_48_utterances_by_default(tmp_path):
    proc = make_manifests(tmp_path, "POOL=train-clean-100", "SAMPLE=42")
    folder = tmp_path / "10min-c100s42"
    assert f"wrote {folder}" in proc.stdout and list(table_rows(proc.stdout)) == ["c100s42"]
    info = json.loads((folder / "summary.json").read_text())
    sample, rows = info["sample"], tsv_rows(folder)
    assert info["split"] == "c100s42" and len(rows) == 48 == info["train"]["utterances"]
    assert (sample["pool"], sample["pool_folder"], sample["seed"], sample["utterances"],
            sample["pool_utterances"]) == ("train-clean-100", "LibriSpeech/train-clean-100",
                                           42, 48, 76)
    assert "SHA-256" in sample["draw"]
    assert (folder / "train.tsv").read_text().splitlines()[0] == str(C100.resolve())
    assert [r for r, _ in rows] == sorted(r for r, _ in rows)
    assert sample["utterance_ids"] == [Path(r).stem for r, _ in rows]
    assert sorted(sample["speakers"]) == sorted({r.split("/")[0] for r, _ in rows})
    assert (info["train"]["clean_share"], info["train"]["other_share"]) == (1.0, 0.0)
    for (rel, _), wrd in zip(rows, (folder / "train.wrd").read_text().splitlines()):
        assert f"{Path(rel).stem} {wrd}\n" in next((C100 / rel).parent.glob("*.trans.txt")
                                                   ).read_text()
    # SAMPLE left out: the seed's own sample seed, 42; the same folder, byte for byte
    make_manifests(tmp_path / "default", "POOL=train-clean-100")
    for p in folder.iterdir():
        assert p.read_bytes() == (tmp_path / "default/10min-c100s42" / p.name).read_bytes()


def test_the_draw_is_documented_deterministic_and_sorted():
    pool = manifests.scan(C100)
    drawn, record = manifests.draw_utterances(pool, 42, 48, C100, "train-clean-100")
    # the draw as docs/data.md states it, computed here without the module
    ranked = sorted(pool, key=lambda u: hashlib.sha256(f"42 {u.utt}".encode()).hexdigest())
    assert sorted(u.utt for u in ranked[:48]) == sorted(u.utt for u in drawn)
    assert [u.rel for u in drawn] == sorted(u.rel for u in drawn)
    # the same seed gives the same utterances whatever order the pool was read in
    again, _ = manifests.draw_utterances(list(reversed(pool)), 42, 48, C100, "train-clean-100")
    assert again == drawn
    others = {tuple(u.utt for u in manifests.draw_utterances(pool, s, 48, C100, "p")[0])
              for s in range(5)}
    assert len(others) == 5  # the seed matters
    # N is respected; a smaller N of the same seed keeps the head of the same ranking
    for n in (1, 20, 76):
        few, rec = manifests.draw_utterances(pool, 42, n, C100, "train-clean-100")
        assert len(few) == rec["utterances"] == len(rec["utterance_ids"]) == n
        assert {u.utt for u in few} <= {u.utt for u in drawn} or n > 48


def test_utterances_sets_n_and_names_the_split(tmp_path):
    proc = make_manifests(tmp_path, "POOL=train-clean-100", "SAMPLE=42 7", "UTTERANCES=20")
    assert list(table_rows(proc.stdout)) == ["c100s42n20", "c100s7n20"]
    for split in ("c100s42n20", "c100s7n20"):
        info = json.loads((tmp_path / f"10min-{split}/summary.json").read_text())
        assert info["split"] == split and info["train"]["utterances"] == 20
        assert layout.parse_pool_split(split) == ("train-clean-100", info["sample"]["seed"], 20)


def test_a_pool_not_downloaded_is_one_line(corpus, tmp_path):
    shutil.rmtree(corpus / "LibriSpeech/train-clean-100")
    line = one_error(make_manifests(tmp_path / "m", "POOL=train-clean-100", data=corpus,
                                    check=False))
    assert line == (f"error: {corpus}/LibriSpeech/train-clean-100: pool train-clean-100 not "
                    f"downloaded; run `make data POOL=train-clean-100 DATA={corpus}` (or point "
                    "DATA= at the folder that holds LibriSpeech/)")
    assert not (tmp_path / "m").exists()


def test_a_sample_larger_than_the_pool_is_one_line(tmp_path):
    line = one_error(make_manifests(tmp_path, "POOL=train-clean-100", "UTTERANCES=77",
                                    check=False))
    assert line == (f"error: {C100}: the pool holds 76 utterances, fewer than the 77 asked for; "
                    "lower UTTERANCES= (--utterances) to 76 or less")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("knob,value", [("POOL", "train-clean-360"), ("UTTERANCES", "0"),
                                        ("SAMPLE", "x")])
def test_pool_knobs_are_checked_before_anything_runs(tmp_path, knob, value):
    line = one_error(make_manifests(tmp_path, "POOL=train-clean-100", f"{knob}={value}",
                                    check=False))
    assert line.startswith(f"error: {knob}={value}: {knob} accepts ")
    assert list(tmp_path.iterdir()) == []


def test_the_split_name_is_one_identity_through_knobs_layout_and_report():
    for split in ("c100s42", "c100s0", "c100s42n96"):
        assert check_knob("SPLIT", split) == split
        assert layout.split_kind(split) == "train-clean-100"
        ident = layout.RunId("large", "paper", split, "1")
        assert ident.folder(Path("runs")) == Path(f"runs/large-paper/10min-{split}/seed-1")
        assert layout.RunId.of(json.loads(json.dumps(ident.record()))) == ident
    for bad in ("c100s42n48", "c100s042", "c100s", "c100", "c360s42", "x100s42", "c100s4 2"):
        with pytest.raises(UserError, match=f"SPLIT={bad}: SPLIT accepts a fold 0..5 or sSEED"):
            check_knob("SPLIT", bad)
    assert layout.pool_split("train-clean-100", 42, 48) == "c100s42"
    assert sorted(["c100s42", "s10", "c100s7n96", "3", "c100s7", "s2", "0"],
                  key=layout.split_order) == ["0", "3", "s2", "s10", "c100s7", "c100s7n96",
                                              "c100s42"]
    # the report knows the kind: its tables list every kind layout has
    assert set(layout.SPLIT_KINDS) | {"all"} == set(tables.KINDS)
    assert [layout.split_kind(s) for s in ("0", "s1", "c100s1")] == \
        ["official", "seeded", "train-clean-100"]


def test_finetune_reads_the_pool_samples_manifests(tmp_path):
    """`make finetune SPLIT=c100s42` names the run by the split and trains on its folder."""
    make_manifests(tmp_path / "m", "POOL=train-clean-100")
    proc = make("finetune", "MODEL=tiny", "PROTOCOL=tiny", "SPLIT=c100s42",
                f"MANIFEST_ROOT={tmp_path / 'm'}", f"RUN_ROOT={tmp_path / 'runs'}",
                "PRETRAINED_DIR=tiny/pretrained", "CFG=1")
    assert f"data: {tmp_path / 'm/10min-c100s42'}\n" in proc.stdout
    assert f"save_dir: {tmp_path / 'runs/tiny-tiny/10min-c100s42/seed-1/checkpoints'}" in \
        proc.stdout


def test_the_stand_in_pool_is_what_the_generator_links(tmp_path):
    """tiny/make_tiny_corpus.py links the committed stand-in pool: the same relative links."""
    sys.path.insert(0, str(TINY.parent))
    import make_tiny_corpus
    for source in make_tiny_corpus.STAND_IN_SOURCES:  # the speaker folders it links to
        shutil.copytree(TINY / "librispeech_finetuning" / source / "clean",
                        tmp_path / "librispeech_finetuning" / source / "clean")
    make_tiny_corpus.link_stand_in_pool(tmp_path)
    made = tmp_path / "LibriSpeech/train-clean-100"
    assert {p.name: os.readlink(p) for p in made.iterdir()} == \
        {p.name: os.readlink(p) for p in C100.iterdir()}
    assert len(manifests.scan(made)) == len(manifests.scan(C100)) == 76
