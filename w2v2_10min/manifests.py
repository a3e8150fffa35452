"""Build fairseq manifests for Libri-light 10-minute splits (official folds or new seeded samples).

Usage:
  python scripts/manifests.py --data DATA --split K [--out manifests/10min-K]
  python scripts/manifests.py --data DATA --split 0 1 2 3 4 5 [--out-root manifests]
  python scripts/manifests.py --data DATA --sample SEED [SEED ...] [--minutes 10] [--out-root DIR]
  python scripts/manifests.py --data DATA --pool train-clean-100 [--sample 42 ...] [--utterances 48]
  python scripts/manifests.py --data DATA --pretrain --out DIR   # audio-only, for pre-training

A fold K is DATA/librispeech_finetuning/1h/K/{clean,other}/SPK/CHAP/ and is written to
OUT_ROOT/10min-K/. A sample is drawn with random.Random(SEED) from the 9-hour pool
DATA/librispeech_finetuning/9h/{clean,other}/ and written to OUT_ROOT/10min-sSEED/: whole
utterances, half of the audio from clean and half from other, two speakers per condition with a
quarter of the audio each (one female and one male when DATA/LibriSpeech/SPEAKERS.TXT gives
genders; otherwise speakers only, and summary.json says "gender_balanced": false). Each speaker's
utterances are drawn until its quarter is reached, so a sample overshoots the target by less than
one utterance per speaker; summary.json records the seed, target and drawn utterance ids.

With --pool NAME (w2v2_10min.layout.POOLS: train-clean-100), each seed draws N utterances
(--utterances, default 48, as the seed's `.shuffle(seed).take(48)`) from DATA/LibriSpeech/NAME/
(`make data POOL=NAME`), written to OUT_ROOT/10min-c100sSEED/ (layout.pool_split names it;
`c100sSEEDnN` when N is not 48); --sample defaults to the seed's sample seed 42. The draw ranks
every utterance of the pool by the SHA-256 of `<seed> <utterance id>` and keeps the N lowest:
the same seed gives the same utterances on any machine and Python, whatever order the files are
read in (it is not the `datasets` shuffle the seed used, whose order cannot be rebuilt here).

Each output folder is written in one atomic step and holds what fairseq's audio_finetuning task
reads as `task.data`:
  train.{tsv,ltr,wrd}, dev_clean.*, dev_other.*, test_clean.*, test_other.*, dict.ltr.txt,
  summary.json
in the formats of fairseq's wav2vec_manifest.py and libri_labels.py: a tsv starts with the
root folder, then `relative/path.flac<TAB>samples`; rows are sorted by path. Every input is read
before anything is written, and the evaluation sets are read once however many splits are built.
Every audio file's header is read on all cores and checked (16 kHz, mono, readable: FLAC's
STREAMINFO block is read directly, giving the numbers libsndfile gives; anything unusual goes
to soundfile.info), and every file is matched to its line in the SPK-CHAP.trans.txt beside it.
Files and folders whose names start with a dot are skipped, as fairseq's glob does. A table of
the splits (utterances, minutes, speakers, clean and other share of the audio) is printed last.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from w2v2_10min.common import (REPO, SAMPLE_RATE, UserError, atomic_path, cpu_cores,
                               write_json_atomic)
from w2v2_10min.formats import LETTERS, dict_text, letters, read_transcripts, subset_name
from w2v2_10min.knobs import check, knob
from w2v2_10min.layout import POOL_SAMPLE_SEED, POOL_UTTERANCES, pool_split
from w2v2_10min.paper import EVAL_SETS

CONDITIONS = ("clean", "other")
POOL_MIN_FILES = 2_000  # below this, starting worker processes costs more than it saves


@dataclass(frozen=True)
class Utterance:
    rel: str  # path relative to the manifest's root folder, with `/`
    samples: int
    words: str  # "" for audio-only manifests
    speaker: str

    @property
    def utt(self) -> str:
        return self.rel.rsplit("/", 1)[-1][: -len(".flac")]

    @property
    def condition(self) -> str:
        return self.rel.split("/", 1)[0]


# ---- reading a tree ----------------------------------------------------------------------------

def walk(root: str) -> tuple[list[str], list[str]]:
    """Relative paths of every *.flac and *.trans.txt under root, in one os.scandir pass."""
    audio, trans = [], []
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith("."):
                    continue
                if name.endswith(".flac"):
                    if entry.is_file():
                        audio.append(prefix + name)
                elif name.endswith(".trans.txt"):
                    if entry.is_file():
                        trans.append(prefix + name)
                elif entry.is_dir():
                    stack.append((prefix + name + "/", entry.path))
    audio.sort()
    trans.sort()
    return audio, trans


def flac_streaminfo(path: str) -> tuple[int, int, int] | None:
    """(samples, sample rate, channels) from a plain FLAC file's STREAMINFO block, else None.

    The numbers libsndfile reports, read from the file's first 42 bytes; None for anything
    unusual (an ID3 tag first, unknown length, odd block sizes or sample width, a short file),
    which is then left to libsndfile.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(42)
    except OSError:
        return None
    if len(head) != 42 or head[:4] != b"fLaC" or head[4] & 0x7F or head[5:8] != b"\0\0\x22":
        return None
    min_block, max_block = int.from_bytes(head[8:10], "big"), int.from_bytes(head[10:12], "big")
    fields = int.from_bytes(head[18:26], "big")
    rate, channels = fields >> 44, (fields >> 41 & 0x7) + 1
    bits, samples = (fields >> 36 & 0x1F) + 1, fields & 0xFFFFFFFFF
    if not (16 <= min_block <= max_block and rate and samples and bits in (8, 16, 24)):
        return None
    return samples, rate, channels


def audio_samples(path: str) -> tuple[int, int, int] | str:
    """(samples, sample rate, channels) from the file's header, or the reader's error."""
    fast = flac_streaminfo(path)
    if fast is not None:
        return fast
    import soundfile  # here, not at the top: importing it (and numpy) costs more than most scans
    try:
        info = soundfile.info(path)
    except Exception as err:  # soundfile raises several types for broken files
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    return info.frames, info.samplerate, info.channels


def _headers(paths: list[str]) -> list:
    return [audio_samples(p) for p in paths]


_POOL: ProcessPoolExecutor | None = None


def start_headers(paths: list[str]):
    """Start reading the headers on all cores; return a function that waits for the results."""
    workers = cpu_cores()
    if workers == 1 or len(paths) < POOL_MIN_FILES:
        return lambda: _headers(paths)
    global _POOL
    if _POOL is None:
        _POOL = ProcessPoolExecutor(workers)
    size = -(-len(paths) // (workers * 4))  # four big chunks per core
    futures = [_POOL.submit(_headers, paths[i:i + size]) for i in range(0, len(paths), size)]
    return lambda: [info for future in futures for info in future.result()]


def shutdown_pool() -> None:
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(cancel_futures=True)
        _POOL = None


def check_audio(paths: list[str], infos: list) -> list[int]:
    """Sample counts from the headers; raise on the first bad file (in path order)."""
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


def scan(root: Path, with_text: bool = True, prefix: str = "") -> list[Utterance]:
    """All utterances under a LibriSpeech-layout folder (SPK/CHAP/SPK-CHAP-UTT.flac).

    Each utterance's `rel` is `prefix` + its path relative to root.
    """
    if not root.is_dir():
        raise UserError(f"{root}: folder not found; download the data with `make data DATA=...` "
                        "or point DATA= at the folder that holds it")
    top = str(root)
    audio_rel, trans_rel = walk(top)
    paths = [os.path.join(top, rel) for rel in audio_rel]
    headers = start_headers(paths)  # runs on the other cores while the transcripts are read
    words_of: dict[str, str] = {}
    if with_text:
        audio_at: dict[str, str] = {}
        for rel in audio_rel:
            utt = rel.rsplit("/", 1)[-1][: -len(".flac")]
            if utt in audio_at:
                raise UserError(f"{os.path.join(top, rel)}: utterance {utt} is also at "
                                f"{os.path.join(top, audio_at[utt])}; remove one of them")
            audio_at[utt] = rel
        for rel in trans_rel:
            trans = os.path.join(top, rel)
            folder = rel.rpartition("/")[0]
            for utt, words in read_transcripts(Path(trans)).items():
                if utt not in audio_at or audio_at[utt].rpartition("/")[0] != folder:
                    raise UserError(f"{trans}: transcript line {utt} has no audio file {utt}.flac "
                                    "beside it; restore the file or remove the line")
                bad = sorted(set(words.replace(" ", "")) - LETTERS)
                if bad:
                    raise UserError(f"{trans}: {utt} has characters outside dict.ltr.txt "
                                    f"({''.join(bad)}); write them as letters A-Z or '")
                words_of[utt] = words
        for path, rel in zip(paths, audio_rel):
            utt = rel.rsplit("/", 1)[-1][: -len(".flac")]
            if utt not in words_of:
                folder = os.path.dirname(path)
                raise UserError(f"{path}: audio without a transcript line in "
                                f"{folder}/{'-'.join(utt.split('-')[:2])}.trans.txt; "
                                "add its line or remove the file")
    if not paths:
        raise UserError(f"{root}: no .flac files; is this the right folder?")
    samples = check_audio(paths, headers())
    out = []
    for rel, n in zip(audio_rel, samples):
        parts = rel.split("/")
        out.append(Utterance(prefix + rel, n, words_of.get(parts[-1][:-5], ""),
                             parts[-3] if len(parts) >= 3 else ""))
    return out


def read_genders(path: Path) -> dict[str, str] | None:
    """Speaker id -> "F" or "M" from LibriSpeech's SPEAKERS.TXT; None when the file is absent."""
    if not path.is_file():
        return None
    genders = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = line.split("|", 2)
        speaker = fields[0].strip()
        sex = fields[1].strip() if len(fields) > 1 else ""
        if not speaker.isdigit() or sex not in ("F", "M"):
            raise UserError(f"{path}:{lineno}: expected `ID | F or M | ...`, got {line.strip()!r}; "
                            "fix the line (comments start with ;) or remove the file")
        genders[speaker] = sex
    return genders


# ---- new seeded samples ------------------------------------------------------------------------

def draw_sample(pool: list[Utterance], seed: int, minutes: float,
                genders: dict[str, str] | None, pool_root: Path,
                speakers_file: Path | None = None) -> tuple[list[Utterance], dict]:
    """Draw whole utterances from the pool like a Libri-light fold; return them and their record.

    Per condition (clean, other): two speakers (one female, one male when genders are known),
    each drawn utterance by utterance until it has a quarter of the target audio.
    Deterministic given seed and pool: speakers and utterances are sorted before drawing.
    """
    rng = random.Random(seed)
    quarter = minutes * 60 * SAMPLE_RATE / 4
    drawn: list[Utterance] = []
    chosen: dict[str, list[str]] = {}
    for condition in CONDITIONS:
        by_speaker: dict[str, list[Utterance]] = {}
        for u in pool:
            if u.condition == condition:
                by_speaker.setdefault(u.speaker, []).append(u)
        groups = speaker_groups(by_speaker, quarter, genders, pool_root / condition,
                                speakers_file, minutes)
        picks = rng.sample(groups[0], 2) if genders is None else [rng.choice(g) for g in groups]
        chosen[condition] = sorted(picks)
        for speaker in picks:
            drawn += first_utterances(rng, by_speaker[speaker], quarter)
    drawn.sort(key=lambda u: u.rel)
    record = {
        "seed": seed,
        "target_minutes": minutes,
        "pool": pool_root.relative_to(pool_root.parent.parent).as_posix(),
        "gender_balanced": genders is not None,
        "speakers": chosen,
        "utterances": len(drawn),
        "utterance_ids": [u.utt for u in drawn],
    }
    if genders is None:
        record["gender_note"] = ("LibriSpeech/SPEAKERS.TXT not found: two speakers per condition, "
                                 "genders unknown")
    else:
        record["genders"] = {s: genders[s] for picks in chosen.values() for s in picks}
    return drawn, record


def speaker_groups(by_speaker: dict[str, list[Utterance]], quarter: float,
                   genders: dict[str, str] | None, folder: Path, speakers_file: Path | None,
                   minutes: float) -> list[list[str]]:
    """The speakers with a quarter of the sample's audio: one group, or [female, male]."""
    if genders is not None:
        for speaker in sorted(by_speaker):
            if speaker not in genders:
                raise UserError(f"{speakers_file}: no line for speaker {speaker} of {folder}; "
                                f"add `{speaker} | F or M | ...` "
                                "or remove the file to balance speakers only")
    eligible = sorted(s for s, utts in by_speaker.items()
                      if sum(u.samples for u in utts) >= quarter)
    if genders is None:
        need, groups = "2 speakers", [eligible]
    else:
        need = "a female and a male speaker"
        groups = [[s for s in eligible if genders[s] == sex] for sex in ("F", "M")]
    if any(not group for group in groups) or len(eligible) < 2:
        raise UserError(
            f"{folder}: pool too small for a {minutes:g}-minute sample: it "
            f"needs {need} with at least {quarter / SAMPLE_RATE / 60:.2f} min of audio each "
            f"and has {len(eligible)} such speaker(s); lower --minutes or use the full "
            "Libri-light 9h set")
    return groups


def first_utterances(rng: random.Random, utts: list[Utterance], quarter: float) -> list:
    """A speaker's utterances in a seeded order, until they hold `quarter` samples."""
    utts = sorted(utts, key=lambda u: u.rel)
    rng.shuffle(utts)
    out, total = [], 0
    for u in utts:
        if total >= quarter:
            break
        out.append(u)
        total += u.samples
    return out


# ---- samples of N utterances from a pool (train-clean-100) ------------------------------------

DRAW = "the N utterances with the lowest SHA-256 of '<seed> <utterance id>'"


def draw_key(seed: int, utt: str) -> str:
    """An utterance's rank in seed's draw: the hex SHA-256 of `<seed> <utterance id>`."""
    return hashlib.sha256(f"{seed} {utt}".encode("utf-8")).hexdigest()


def draw_utterances(pool: list[Utterance], seed: int, n: int, pool_root: Path,
                    pool_name: str) -> tuple[list[Utterance], dict]:
    """N utterances of the pool drawn with `seed` (DRAW), sorted by path, and their record."""
    if n > len(pool):
        raise UserError(f"{pool_root}: the pool holds {len(pool)} utterances, fewer than the "
                        f"{n} asked for; lower UTTERANCES= (--utterances) to {len(pool)} or less")
    drawn = sorted(sorted(pool, key=lambda u: (draw_key(seed, u.utt), u.utt))[:n],
                   key=lambda u: u.rel)
    record = {
        "pool": pool_name,
        "pool_folder": pool_root.relative_to(pool_root.parent.parent).as_posix(),
        "pool_utterances": len(pool),
        "seed": seed,
        "utterances": n,
        "draw": DRAW,
        "speakers": sorted({u.speaker for u in drawn}, key=lambda s: (len(s), s)),
        "utterance_ids": [u.utt for u in drawn],
    }
    return drawn, record


def scan_pool(data: Path, pool: str) -> tuple[Path, list[Utterance]]:
    """Every utterance of DATA/LibriSpeech/<pool>/, or one line saying how to download it."""
    root = data / "LibriSpeech" / pool
    if not root.is_dir():
        raise UserError(f"{root}: pool {pool} not downloaded; run `make data POOL={pool} "
                        f"DATA={data}` (or point DATA= at the folder that holds LibriSpeech/)")
    return root, scan(root)


# ---- writing -----------------------------------------------------------------------------------

def write_subset(out: Path, name: str, root: Path, utts: list[Utterance], with_text=True):
    rows = [f"{u.rel}\t{u.samples}" for u in utts]
    (out / f"{name}.tsv").write_text("\n".join([str(root.resolve())] + rows) + "\n")
    if with_text:
        (out / f"{name}.wrd").write_text("".join(u.words + "\n" for u in utts))
        (out / f"{name}.ltr").write_text("".join(letters(u.words) + "\n" for u in utts))


def summary(utts: list[Utterance], condition: str | None = None) -> dict:
    """Size and make-up of a training set; `condition`: that of all of it (a pool's), else each
    utterance's own (the Libri-light folder it lies in)."""
    total = sum(u.samples for u in utts)
    other = sum(u.samples for u in utts if (condition or u.condition) == "other")
    clean = sum(u.samples for u in utts if (condition or u.condition) == "clean")
    return {
        "utterances": len(utts),
        "minutes": round(total / SAMPLE_RATE / 60, 3),
        "speakers": len({u.speaker for u in utts}),
        "clean_share": round(clean / max(total, 1), 3),
        "other_share": round(other / max(total, 1), 3),
    }


def write_split(out: Path, label: str, train_root: Path, train: list[Utterance],
                evals: dict[str, tuple[Path, list[Utterance]]], extra: dict | None = None,
                condition: str | None = None) -> dict:
    info = {"split": label, "train": summary(train, condition), **(extra or {}),
            **{subset_name(n): {"utterances": len(u), "minutes": round(
                sum(x.samples for x in u) / SAMPLE_RATE / 60, 3)} for n, (_, u) in evals.items()}}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_subset(tmp, "train", train_root, train)
        for name, (root, utts) in evals.items():
            write_subset(tmp, subset_name(name), root, utts)
        (tmp / "dict.ltr.txt").write_text(dict_text())
        write_json_atomic(tmp / "summary.json", info)
    return info


def scan_fold(data: Path, split: str) -> tuple[Path, list[Utterance]]:
    train_root = data / "librispeech_finetuning" / "1h" / split
    train = [u for c in CONDITIONS for u in scan(train_root / c, prefix=c + "/")]
    train.sort(key=lambda u: u.rel)
    return train_root, train


def scan_evals(data: Path, eval_sets: list[str]) -> dict[str, tuple[Path, list[Utterance]]]:
    return {name: (data / "LibriSpeech" / name, scan(data / "LibriSpeech" / name))
            for name in dict.fromkeys(eval_sets)}


def build(data: Path, eval_sets: list[str], folds: dict[str, Path],
          samples: dict[int, Path], minutes: float, pool: str | None = None,
          utterances: int = POOL_UTTERANCES) -> list[dict]:
    """Read every input first (each eval set once), then write each split's folder."""
    todo = [(split, *scan_fold(data, split), None, out) for split, out in folds.items()]
    if samples and pool:
        pool_root, utts = scan_pool(data, pool)
        for seed, out in samples.items():
            train, record = draw_utterances(utts, seed, utterances, pool_root, pool)
            todo.append((pool_split(pool, seed, utterances), pool_root, train,
                         {"sample": record}, out))
    elif samples:
        pool_root = data / "librispeech_finetuning" / "9h"
        pool = [u for c in CONDITIONS for u in scan(pool_root / c, prefix=c + "/")]
        speakers_file = data / "LibriSpeech" / "SPEAKERS.TXT"
        genders = read_genders(speakers_file)
        for seed, out in samples.items():
            train, record = draw_sample(pool, seed, minutes, genders, pool_root, speakers_file)
            todo.append((f"s{seed}", pool_root, train, {"sample": record}, out))
    evals = scan_evals(data, eval_sets)
    return [write_split(out, label, root, train, evals, extra,
                        pool_condition(extra["sample"]["pool"]) if pool and extra else None)
            for label, root, train, extra, out in todo]


def pool_condition(pool: str) -> str | None:
    """`clean` or `other` as LibriSpeech names its training sets (train-clean-100), else None."""
    parts = pool.split("-")
    return parts[1] if len(parts) == 3 and parts[1] in CONDITIONS else None


def table(infos: list[dict]) -> str:
    """The per-split summary table printed after writing."""
    width = max([8, *(len(info["split"]) for info in infos)])
    lines = [f"{'split':<{width}} {'utterances':>10} {'minutes':>8} {'speakers':>8} "
             f"{'clean':>6} {'other':>6}"]
    for info in infos:
        t = info["train"]
        lines.append(f"{info['split']:<{width}} {t['utterances']:>10} {t['minutes']:>8.2f} "
                     f"{t['speakers']:>8} {t['clean_share']:>6.1%} {t['other_share']:>6.1%}")
    return "\n".join(lines)


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding "
                        "librispeech_finetuning/ and LibriSpeech/")
    parser.add_argument("--split", nargs="+", default=[], metavar="K", type=lambda v: check(
                            "SPLITS", v, "Libri-light folds 0..5 here (a sample: SAMPLE=S, "
                            "with POOL=train-clean-100 for the seed's pool)",
                            re.fullmatch("[0-5]", v) is not None),
                        help="Libri-light folds 0..5 (1h/K is one 10-minute split)")
    parser.add_argument("--sample", nargs="+", default=[], metavar="SEED",
                        type=lambda v: int(knob("SAMPLE")(v)),
                        help="draw a new 10-minute split from the 9h pool (or --pool) with "
                        f"this seed (with --pool: default {POOL_SAMPLE_SEED})")
    parser.add_argument("--minutes", type=lambda v: float(knob("MINUTES")(v)), default=10.0,
                        help="target audio of a drawn sample, in minutes (default 10)")
    parser.add_argument("--pool", type=knob("POOL", optional=True), default="",
                        help="draw --utterances utterances per seed from DATA/LibriSpeech/POOL "
                        "(train-clean-100) instead of minutes from the 9h pool")
    parser.add_argument("--utterances", type=lambda v: int(knob("UTTERANCES")(v)),
                        default=POOL_UTTERANCES, help="utterances per sample drawn from --pool "
                        f"(default {POOL_UTTERANCES}, the seed's)")
    parser.add_argument("--pretrain", action="store_true", help="audio-only pre-training manifests")
    parser.add_argument("--eval-sets", nargs="+", default=list(EVAL_SETS), type=knob("EVAL_SETS"))
    parser.add_argument("--out", type=Path, help="output folder (one split only)")
    parser.add_argument("--out-root", type=Path, default=REPO / "manifests",
                        help="where 10min-K/ and 10min-sSEED/ are written (default manifests/)")
    args = parser.parse_args(argv)
    try:
        if args.pretrain:
            if args.out is None:
                parser.error("--pretrain needs --out")
            build_pretrain(args.data, args.out)
            print(f"wrote {args.out}")
            return 0
        splits = list(dict.fromkeys(args.split))
        seeds = list(dict.fromkeys(args.sample)) or ([POOL_SAMPLE_SEED] if args.pool else [])
        if not splits and not seeds:
            parser.error("give --split K [K ...] (0..5), --sample SEED [SEED ...] or --pretrain")
        if args.out is not None and len(splits) + len(seeds) != 1:
            parser.error("--out takes one split; use --out-root for several")
        folds = {k: args.out or args.out_root / f"10min-{k}" for k in splits}
        name = (lambda s: pool_split(args.pool, s, args.utterances)) if args.pool else \
            (lambda s: f"s{s}")
        samples = {s: args.out or args.out_root / f"10min-{name(s)}" for s in seeds}
        infos = build(args.data, args.eval_sets, folds, samples, args.minutes, args.pool,
                      args.utterances)
    finally:
        shutdown_pool()
    for out in [*folds.values(), *samples.values()]:
        print(f"wrote {out}")
    print(table(infos))
    return 0

