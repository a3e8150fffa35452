"""Time scripts/manifests.py against fairseq's wav2vec_manifest.py + libri_labels.py on one tree.

Usage:
  python bench/bench_manifests.py [--tree .bench/tree] [--files 20000] [--runs 3]

Builds (once, cached under --tree) a LibriSpeech-sized synthetic corpus in the layout
manifests.py reads: a 48-utterance fold librispeech_finetuning/1h/0/{clean,other}/SPK/CHAP/ and
the rest split over LibriSpeech/{dev-clean,dev-other,test-clean,test-other}/SPK/CHAP/, 20
utterances a chapter, each a 0.1-0.5 s FLAC of low-amplitude noise with a transcript line.
Then times, best of --runs, each as a fresh process with this Python:
  ours:    manifests.py --data TREE --split 0 (train + the four eval sets in one run)
  fairseq: wav2vec_manifest.py ROOT --valid-percent 0, then libri_labels.py, for each of the
           same five folders (the fold's clean and other together, as its 1h/0 folder)
and prints files, seconds and files/s for each, what fairseq's ten process start-ups cost, the
ratio, and whether the outputs are identical (fairseq's rows sorted by path, as ours are).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import REPO, UserError, atomic_path, run_main  # noqa: E402
from w2v2_10min.formats import subset_name  # noqa: E402
from w2v2_10min.paper import EVAL_SETS  # noqa: E402
from w2v2_10min.common import cpu_cores  # noqa: E402

TREE_VERSION = 1
CHAPTER = 20  # utterances per chapter
WORDS = ("THE CAPTAIN SAW A JAR OF WAX BY RIVER OUR NEIGHBOUR FOUND QUIET SHIP "
         "IT WAS NOT HIS MOTHER'S HOUSE AND SHE KNEW").split()


def write_chapter(job: tuple[str, str, str, int, int]) -> None:
    """Write one chapter folder: `count` FLAC files and their SPK-CHAP.trans.txt."""
    import numpy as np
    import soundfile
    folder, speaker, chapter, count, seed = job
    rng = np.random.default_rng(seed)
    words = random.Random(seed)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        utt = f"{speaker}-{chapter}-{i:04d}"
        noise = rng.normal(0, 30, int(16000 * rng.uniform(0.1, 0.5))).astype("int16")
        soundfile.write(out / f"{utt}.flac", noise, 16000, format="FLAC", subtype="PCM_16")
        lines.append(f"{utt} {' '.join(words.choices(WORDS, k=words.randint(3, 12)))}\n")
    (out / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))


def roots(tree: Path) -> dict[str, Path]:
    """The five folders a split's manifests come from: manifest name -> folder."""
    return {"train": tree / "librispeech_finetuning/1h/0",
            **{subset_name(s): tree / "LibriSpeech" / s for s in EVAL_SETS}}


def build_tree(tree: Path, files: int) -> int:
    """Create the synthetic corpus unless one of this size is cached; return its file count."""
    stamp = {"version": TREE_VERSION, "files": files}
    if (tree / "bench.json").is_file() and json.loads((tree / "bench.json").read_text()) == stamp:
        return files
    if files < 48 + 4 * CHAPTER:
        raise UserError(f"--files {files}: too few for a fold and four eval sets; give at least "
                        f"{48 + 4 * CHAPTER}")
    print(f"building {files} FLAC files under {tree} (once) ...", file=sys.stderr)
    started = time.perf_counter()
    with atomic_path(tree) as tmp:
        jobs, speaker = [], 1000
        fold = tmp / "librispeech_finetuning/1h/0"
        for condition in ("clean", "other"):
            for _ in range(2):  # two speakers, 12 utterances each, per condition: 48 in all
                jobs.append((str(fold / condition / str(speaker) / f"{speaker}1"), str(speaker),
                             f"{speaker}1", 12, speaker))
                speaker += 1
        rest = files - 48
        for k, name in enumerate(EVAL_SETS):
            left = rest // 4 + (k < rest % 4)
            while left:
                for c in range(2):  # two chapters a speaker
                    count = min(CHAPTER, left)
                    if count:
                        chapter = f"{speaker}{c}"
                        jobs.append((str(tmp / "LibriSpeech" / name / str(speaker) / chapter),
                                     str(speaker), chapter, count, speaker * 10 + c))
                        left -= count
                speaker += 1
        with ProcessPoolExecutor() as pool:
            list(pool.map(write_chapter, jobs, chunksize=16))
        (tmp / "bench.json").write_text(json.dumps(stamp) + "\n")
    print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return files


def run(cmd: list) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"{cmd[1]}: failed ({proc.stderr.strip().splitlines()[-1:]}); "
                        "run it by hand to see why")


def time_ours(tree: Path, dest: Path) -> float:
    started = time.perf_counter()
    run([sys.executable, REPO / "scripts/manifests.py", "--data", tree, "--split", "0",
         "--out", dest, "--eval-sets", *EVAL_SETS])
    return time.perf_counter() - started


def time_fairseq(tree: Path, dest: Path, scripts: Path) -> float:
    started = time.perf_counter()
    for name, root in roots(tree).items():
        out = dest / name
        run([sys.executable, scripts / "wav2vec_manifest.py", root, "--dest", out,
             "--valid-percent", "0"])
        run([sys.executable, scripts / "libri_labels.py", out / "train.tsv",
             "--output-dir", out, "--output-name", name])
    return time.perf_counter() - started


def time_startup() -> float:
    """What fairseq's ten processes spend starting: 5 x (Python + soundfile) + 5 x bare Python."""
    started = time.perf_counter()
    for _ in range(5):
        run([sys.executable, "-c", "import argparse, glob, random, soundfile"])
        run([sys.executable, "-c", "import argparse"])
    return time.perf_counter() - started


def same_outputs(ours: Path, theirs: Path) -> bool:
    """Ours equal fairseq's byte for byte once fairseq's rows are in path order."""
    for name in roots(Path(".")):
        tsv = (theirs / name / "train.tsv").read_text().splitlines()
        order = sorted(range(len(tsv) - 1), key=lambda i: tsv[i + 1])
        expected = {"tsv": "\n".join([tsv[0]] + [tsv[i + 1] for i in order]) + "\n"}
        for ext in ("ltr", "wrd"):
            lines = (theirs / name / f"{name}.{ext}").read_text().splitlines()
            expected[ext] = "".join(lines[i] + "\n" for i in order)
        for ext, text in expected.items():
            if (ours / f"{name}.{ext}").read_text() != text:
                return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=REPO / ".bench" / "tree",
                        help="where the synthetic corpus is cached (default .bench/tree)")
    parser.add_argument("--files", type=int, default=20_000, help="FLAC files in the corpus")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each; the best counts")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    spec = importlib.util.find_spec("fairseq")
    if spec is None or spec.origin is None:
        raise UserError("fairseq: not installed in this Python; run `make setup` and use "
                        ".venv/bin/python")
    scripts = Path(spec.origin).parent / "examples" / "wav2vec"
    if not (scripts / "wav2vec_manifest.py").is_file():
        raise UserError(f"{scripts}/wav2vec_manifest.py: not found; reinstall fairseq with "
                        "`make setup`")
    files = build_tree(args.tree, args.files)
    ours, theirs, startup = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-manifests-") as tmp:
        tmp = Path(tmp)
        for i in range(args.runs):  # interleaved, so both see the same cache and machine state
            shutil.rmtree(tmp / "ours", ignore_errors=True)
            shutil.rmtree(tmp / "fairseq", ignore_errors=True)
            ours.append(time_ours(args.tree, tmp / "ours"))
            theirs.append(time_fairseq(args.tree, tmp / "fairseq", scripts))
            startup.append(time_startup())
        identical = same_outputs(tmp / "ours", tmp / "fairseq")
    best_ours, best_theirs = min(ours), min(theirs)
    print(f"{files} FLAC files in 5 folders, best of {args.runs} runs, {cpu_cores()} cores")
    print(f"{'builder':<44} {'files':>7} {'seconds':>8} {'files/s':>8}")
    print(f"{'manifests.py (1 process, all cores)':<44} {files:>7} {best_ours:>8.2f} "
          f"{files / best_ours:>8.0f}")
    print(f"{'fairseq wav2vec_manifest + libri_labels (10)':<44} {files:>7} {best_theirs:>8.2f} "
          f"{files / best_theirs:>8.0f}")
    print(f"(of fairseq's {best_theirs:.2f} s, about {min(startup):.2f} s is starting its 10 "
          f"processes; without it: {files / (best_theirs - min(startup)):.0f} files/s)")
    print(f"ratio: manifests.py is {best_theirs / best_ours:.1f}x fairseq's speed; "
          f"outputs identical: {'yes' if identical else 'NO'}")
    return 0 if identical else 1


if __name__ == "__main__":
    run_main(main)
