"""Build fairseq manifests for one Libri-light 10-minute split and the LibriSpeech eval sets.

Usage:
  python scripts/manifests.py --data DATA --split K [--out manifests/10min-K]
  python scripts/manifests.py --data DATA --pretrain --out DIR   # audio-only, for pre-training

Reads DATA/librispeech_finetuning/1h/K/{clean,other}/SPK/CHAP/ (the training fold) and
DATA/LibriSpeech/<set>/SPK/CHAP/ for each evaluation set, and writes into the output folder,
in one atomic step, what fairseq's audio_finetuning task reads as `task.data`:
  train.{tsv,ltr,wrd}, dev_clean.*, dev_other.*, test_clean.*, test_other.*, dict.ltr.txt,
  summary.json
in the formats of fairseq's wav2vec_manifest.py and libri_labels.py: a tsv starts with the
root folder, then `relative/path.flac<TAB>samples`; rows are sorted by path.
Every audio file is checked (16 kHz, mono, readable) and matched to its transcript line.
"""
from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile

from common import (DICT_LTR, EVAL_SETS, LETTERS, REPO, UserError, atomic_path, letters,
                    read_transcripts, run_main, subset_name, write_json_atomic)

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Utterance:
    path: Path  # absolute
    samples: int
    words: str  # "" for audio-only manifests
    speaker: str


def audio_samples(path: Path) -> tuple[int, int, int] | str:
    """(samples, sample rate, channels) from the file's header, or the reader's error."""
    try:
        info = soundfile.info(str(path))
    except Exception as err:  # soundfile raises several types for broken files
        return str(err).splitlines()[0]
    return info.frames, info.samplerate, info.channels


def check_audio(paths: list[Path]) -> list[int]:
    """Read every header on all cores; return sample counts or raise on the first bad file."""
    workers = min(len(paths) // 500 + 1, os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            infos = list(pool.map(audio_samples, paths, chunksize=256))
    else:
        infos = [audio_samples(p) for p in paths]
    samples = []
    for path, info in zip(paths, infos):
        if isinstance(info, str):
            raise UserError(f"{path}: unreadable audio ({info}); re-extract it from its archive")
        frames, rate, channels = info
        if rate != SAMPLE_RATE or channels != 1:
            raise UserError(f"{path}: {rate} Hz, {channels} channel(s); wav2vec 2.0 needs 16 kHz "
                            f"mono: convert it, e.g. sox IN -r 16000 -c 1 OUT.flac")
        samples.append(frames)
    return samples


def scan(root: Path, with_text: bool = True) -> list[Utterance]:
    """All utterances under a LibriSpeech-layout folder (SPK/CHAP/SPK-CHAP-UTT.flac)."""
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; download the data with `make data DATA=...` "
                        "or point DATA= at the folder that holds it")
    audio = {p.stem: p for p in root.rglob("*.flac")}
    transcripts: dict[str, tuple[str, Path]] = {}
    for trans in sorted(root.rglob("*.trans.txt")):
        for utt, words in read_transcripts(trans).items():
            if utt not in audio:
                raise UserError(f"{trans}: transcript line {utt} has no audio file {utt}.flac "
                                "beside it; restore the file or remove the line")
            bad = sorted(set(words.replace(" ", "")) - LETTERS)
            if bad:
                raise UserError(f"{trans}: {utt} has characters outside dict.ltr.txt "
                                f"({''.join(bad)}); write them as letters A-Z or '")
            transcripts[utt] = (words, trans)
    if with_text:
        for utt, path in sorted(audio.items()):
            if utt not in transcripts:
                raise UserError(f"{path}: audio without a transcript line in "
                                f"{path.parent}/{'-'.join(utt.split('-')[:2])}.trans.txt; "
                                "add its line or remove the file")
    paths = sorted(audio.values(), key=lambda p: p.relative_to(root).as_posix())
    if not paths:
        raise UserError(f"{root}: no .flac files; is this the right folder?")
    samples = check_audio(paths)
    return [Utterance(p, n, transcripts.get(p.stem, ("", None))[0] if with_text else "",
                      p.relative_to(root).parts[-3] if len(p.relative_to(root).parts) >= 3 else "")
            for p, n in zip(paths, samples)]


def write_subset(out: Path, name: str, root: Path, utts: list[Utterance], with_text=True):
    root = root.resolve()
    rows = [f"{u.path.resolve().relative_to(root).as_posix()}\t{u.samples}" for u in utts]
    (out / f"{name}.tsv").write_text("\n".join([str(root)] + rows) + "\n")
    if with_text:
        (out / f"{name}.wrd").write_text("".join(u.words + "\n" for u in utts))
        (out / f"{name}.ltr").write_text("".join(letters(u.words) + "\n" for u in utts))


def summary(utts: list[Utterance], root: Path) -> dict:
    seconds = sum(u.samples for u in utts) / SAMPLE_RATE
    other = [u for u in utts if u.path.resolve().relative_to(root.resolve()).parts[0] == "other"]
    return {
        "utterances": len(utts),
        "minutes": round(seconds / 60, 3),
        "speakers": len({u.speaker for u in utts}),
        "other_share": round(sum(u.samples for u in other) / max(sum(u.samples for u in utts), 1), 3),
    }


def dict_text() -> str:
    return "".join(f"{symbol} {count}\n" for symbol, count in DICT_LTR)


def build_split(data: Path, split: str, out: Path, eval_sets: list[str]) -> dict:
    train_root = data / "librispeech_finetuning" / "1h" / split
    train = scan(train_root / "clean") + scan(train_root / "other")
    train.sort(key=lambda u: u.path.resolve().relative_to(train_root.resolve()).as_posix())
    evals = {name: scan(data / "LibriSpeech" / name) for name in eval_sets}
    info = {"split": split, "train": summary(train, train_root),
            **{subset_name(n): {"utterances": len(u), "minutes": round(
                sum(x.samples for x in u) / SAMPLE_RATE / 60, 3)} for n, u in evals.items()}}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_subset(tmp, "train", train_root, train)
        for name, utts in evals.items():
            write_subset(tmp, subset_name(name), data / "LibriSpeech" / name, utts)
        (tmp / "dict.ltr.txt").write_text(dict_text())
        write_json_atomic(tmp / "summary.json", info)
    return info


def build_pretrain(data: Path, out: Path) -> None:
    """Audio-only manifests: every file of librispeech_finetuning for training, dev-* for valid."""
    train_root = data / "librispeech_finetuning"
    train = scan(train_root, with_text=False)
    valid_root = data / "LibriSpeech"
    valid = scan(valid_root / "dev-clean", with_text=False)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_subset(tmp, "train", train_root, train, with_text=False)
        write_subset(tmp, "valid", valid_root / "dev-clean", valid, with_text=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding "
                        "librispeech_finetuning/ and LibriSpeech/")
    parser.add_argument("--split", help="Libri-light fold 0..5 (1h/K is one 10-minute split)")
    parser.add_argument("--pretrain", action="store_true", help="audio-only pre-training manifests")
    parser.add_argument("--eval-sets", nargs="+", default=list(EVAL_SETS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.pretrain:
        if args.out is None:
            parser.error("--pretrain needs --out")
        build_pretrain(args.data, args.out)
        print(f"wrote {args.out}")
        return 0
    if args.split is None:
        parser.error("give --split K (0..5) or --pretrain")
    out = args.out or REPO / "manifests" / f"10min-{args.split}"
    info = build_split(args.data, args.split, out, args.eval_sets)
    train = info["train"]
    print(f"wrote {out}: train {train['utterances']} utterances, {train['minutes']:.2f} min, "
          f"{train['speakers']} speakers, other {train['other_share']:.0%}")
    return 0


if __name__ == "__main__":
    run_main(main)
