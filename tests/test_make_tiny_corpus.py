"""The committed tiny corpus is what scripts/make_tiny_corpus.py writes."""
from pathlib import Path

import pytest
import soundfile

from conftest import TINY, run_script


def inventory(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.needs("espeak-ng", "sox", "pocketsphinx-testdata")
def test_generator_reproduces_the_committed_corpus(tmp_path):
    out = tmp_path / "corpus"
    run_script("tiny/make_tiny_corpus.py", "--out", out)
    ours, committed = inventory(out), inventory(TINY)
    assert sorted(ours) == sorted(committed)
    for name, path in committed.items():
        if name.endswith(".trans.txt"):
            assert ours[name].read_text() == path.read_text()
        else:
            new, old = soundfile.info(str(ours[name])), soundfile.info(str(path))
            assert (new.samplerate, new.channels) == (old.samplerate, old.channels) == (16000, 1)
            assert abs(new.frames - old.frames) <= 0.02 * old.frames


def test_layout_is_libri_light_and_librispeech():
    folds = TINY / "librispeech_finetuning" / "1h"
    assert sorted(p.name for p in folds.iterdir()) == [str(k) for k in range(6)]
    for fold in folds.iterdir():
        for condition in ("clean", "other"):
            speakers = list((fold / condition).iterdir())
            assert len(speakers) == 2  # one female, one male voice, as in Libri-light's folds
    for subset in ("dev-clean", "dev-other", "test-clean", "test-other", "librivox-real"):
        for trans in (TINY / "LibriSpeech" / subset).glob("*/*/*.trans.txt"):
            speaker, chapter = trans.name.removesuffix(".trans.txt").split("-")
            assert trans.parent.name == chapter and trans.parent.parent.name == speaker
            for line in trans.read_text().splitlines():
                utt, text = line.split(" ", 1)
                assert (trans.parent / f"{utt}.flac").is_file() and text == text.upper()
    size = sum(p.stat().st_size for p in TINY.rglob("*") if p.is_file())
    assert size <= 5 * 2**20
