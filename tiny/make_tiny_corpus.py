"""Generate the embedded tiny corpus in Libri-light and LibriSpeech layout.

Usage: python tiny/make_tiny_corpus.py [--out tiny/corpus]

Synthesised speech (Debian's espeak-ng, resampled to 16 kHz mono FLAC by sox), one
espeak voice per speaker, seeded so that every run writes the same files:

  librispeech_finetuning/1h/{0..5}/{clean,other}/SPK/CHAP/   six tiny "10-minute" folds
  librispeech_finetuning/9h/{clean,other}/SPK/CHAP/          the pool for new samples
  LibriSpeech/{dev,test}-{clean,other}/SPK/CHAP/             evaluation sets
  LibriSpeech/librivox-real/SPK/CHAP/                        five real LibriVox clips
  LibriSpeech/train-clean-100/SPK -> the clean speakers of 9h and folds 0 and 1 (links)

The last is the stand-in for LibriSpeech's train-clean-100, the pool `make manifests
POOL=train-clean-100` draws samples of N utterances from: relative links to speaker folders
above (76 utterances of 10 speakers, no bytes of their own), so the whole of it runs in tests.

"other" speakers are made harder with reverberation and a telephone-band filter.
The five real clips are public-domain LibriVox recordings ("Sense and Sensibility",
chapter 1) shipped by Debian's pocketsphinx-testdata package.
Needs: apt-get install espeak-ng sox libsox-fmt-all pocketsphinx-testdata
"""
from __future__ import annotations

import argparse
import sys
import random
import shutil
import subprocess
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import REPO, UserError, atomic_path, run_main  # noqa: E402
from w2v2_10min.paper import EVAL_SETS  # noqa: E402

SEED = 10
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")

# A small grammar (about 25 words): sentences share words, so a model fine-tuned on one fold
# hears each word several times, from several voices, and can read new sentences of the others.
SUBJECTS = ["THE OLD MAN", "A YOUNG GIRL", "MY BROTHER", "HER FATHER", "THE CAPTAIN"]
VERBS = ["SAW", "FOUND", "LOST", "CARRIED", "PAINTED"]
OBJECTS = ["THE RED BOX", "A LETTER", "HIS COAT", "THE GREEN DOOR", "SOME BREAD"]
ENDINGS = ["", "", "TODAY", "AT NIGHT", "BY THE RIVER"]

# Each speaker of the corpus gets its own espeak voice: an accent and a voice variant, in an
# order shuffled once (VOICE_SEED) so that every fold hears a mix of accents.
ACCENTS = ["en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-gb-x-gbclan"]
VOICES_F = [f"{accent}+f{v}" for v in range(1, 6) for accent in ACCENTS]
VOICES_M = [f"{accent}+m{v}" for v in range(1, 8) for accent in ACCENTS]
VOICE_SEED = 12

# Speakers per gender and utterances per speaker, in each condition (clean, other) of each fold
# and of the pool, and in each evaluation set. A fold: 8 voices, 64 utterances, 2.3 minutes.
FOLD_SPEAKERS, FOLD_UTTERANCES = 2, 8
POOL_SPEAKERS, POOL_UTTERANCES = 1, 6
EVAL_SPEAKERS, EVAL_UTTERANCES = 1, 5
GROUPS = [(f"1h/{k}", FOLD_SPEAKERS, FOLD_UTTERANCES) for k in range(6)] + \
    [("9h", POOL_SPEAKERS, POOL_UTTERANCES)]


def voice_order() -> dict[str, list[str]]:
    """Every voice of each gender, in the order the corpus's speakers take them."""
    order = {"F": list(VOICES_F), "M": list(VOICES_M)}
    for gender in ("F", "M"):
        random.Random(f"{VOICE_SEED}{gender}").shuffle(order[gender])
    return order


def evaluation_voices() -> set[str]:
    """The voices of the evaluation sets' speakers: the last ones build() hands out."""
    used = 2 * sum(speakers for _, speakers, _ in GROUPS)  # clean and other
    order = voice_order()
    return {v for gender in ("F", "M")
            for v in order[gender][used:used + len(EVAL_SETS) * EVAL_SPEAKERS]}


def sentence(rng: random.Random) -> str:
    words = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(ENDINGS)]
    return " ".join(w for w in words if w)


def synthesise(text: str, voice: str, speed: int, pitch: int, other: bool, out: Path) -> None:
    """Speak `text` with espeak-ng and write 16 kHz mono 16-bit FLAC (no dither)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                        "-w", str(wav), text.lower()], check=True)
        effects = ["gain", "-n", "-6"]
        if other:
            effects += ["reverb", "40", "50", "60", "lowpass", "3400", "gain", "-n", "-3"]
        subprocess.run(["sox", "-D", str(wav), "-r", "16000", "-c", "1", "-b", "16",
                        "-C", "8", str(out), *effects], check=True)


def write_chapter(root: Path, speaker: int, chapter: int, items: list[tuple[str, Path | None]],
                  voice: str, speed: int, pitch: int, other: bool) -> None:
    """Write SPK/CHAP/ with SPK-CHAP-NNNN.flac files and SPK-CHAP.trans.txt."""
    folder = root / str(speaker) / str(chapter)
    folder.mkdir(parents=True)
    lines = []
    for index, (text, source) in enumerate(items):
        utt = f"{speaker}-{chapter}-{index:04d}"
        if source is None:
            synthesise(text, voice, speed, pitch, other, folder / f"{utt}.flac")
        else:
            subprocess.run(["sox", "-D", str(source), "-C", "8", str(folder / f"{utt}.flac")],
                           check=True)
        lines.append(f"{utt} {text}\n")
    (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))


def librivox_items() -> list[tuple[str, Path]]:
    """The five real clips with their transcripts, upper-cased as in LibriSpeech."""
    if not LIBRIVOX.is_dir():
        raise UserError(f"{LIBRIVOX} not found; install it: apt-get install pocketsphinx-testdata")
    items = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        text, _, fileid = line.rpartition("(")
        text = text.replace("<s>", "").replace("</s>", "").strip().upper()
        items.append((text, LIBRIVOX / f"{fileid.strip(' )')}.wav"))
    return items


def require_tools() -> None:
    """One line naming espeak-ng or sox, and how to install it, when either is missing."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} not found; install it: apt-get install espeak-ng sox")


def build(out: Path) -> None:
    rng = random.Random(SEED)
    voices = voice_order()
    speaker_ids = iter(range(100, 10_000, 37))

    def speakers(root: Path, condition: str, per_gender: int, per_speaker: int) -> None:
        """`per_gender` female and as many male speakers, each with one chapter, under root."""
        for gender in ("F", "M"):
            for _ in range(per_gender):
                speaker = next(speaker_ids)
                items = [(sentence(rng), None) for _ in range(per_speaker)]
                write_chapter(root, speaker, speaker * 10 + 1, items, voices[gender].pop(0),
                              speed=rng.randint(150, 185), pitch=rng.randint(30, 70),
                              other=condition == "other")

    finetuning = out / "librispeech_finetuning"
    for pool, per_gender, per_speaker in GROUPS:
        for condition in ("clean", "other"):
            speakers(finetuning / pool / condition, condition, per_gender, per_speaker)
    for subset in EVAL_SETS:
        speakers(out / "LibriSpeech" / subset, subset.split("-")[1], EVAL_SPEAKERS,
                 EVAL_UTTERANCES)
    write_chapter(out / "LibriSpeech" / "librivox-real", 9999, 1, librivox_items(),
                  voice="", speed=0, pitch=0, other=False)
    link_stand_in_pool(out)


STAND_IN_POOL = "train-clean-100"
STAND_IN_SOURCES = ("9h", "1h/0", "1h/1")  # their clean speakers: 12 + 32 + 32 utterances


def link_stand_in_pool(out: Path) -> None:
    """LibriSpeech/train-clean-100/SPK: a relative link to each clean speaker folder of the
    STAND_IN_SOURCES (SPK/CHAP/SPK-CHAP-NNNN.flac, as in LibriSpeech)."""
    pool = out / "LibriSpeech" / STAND_IN_POOL
    pool.mkdir(parents=True)
    for source in STAND_IN_SOURCES:
        clean = out / "librispeech_finetuning" / source / "clean"
        for speaker in sorted(clean.iterdir()):
            up = "../" * (len(pool.relative_to(out).parts))
            (pool / speaker.name).symlink_to(f"{up}{speaker.relative_to(out).as_posix()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tiny" / "corpus")
    args = parser.parse_args()
    require_tools()
    with atomic_path(args.out) as tmp:
        build(tmp)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
