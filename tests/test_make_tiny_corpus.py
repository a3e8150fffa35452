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
            assert len(speakers) == 4  # two female, two male voices
    for subset in ("dev-clean", "dev-other", "test-clean", "test-other", "librivox-real"):
        for trans in (TINY / "LibriSpeech" / subset).glob("*/*/*.trans.txt"):
            speaker, chapter = trans.name.removesuffix(".trans.txt").split("-")
            assert trans.parent.name == chapter and trans.parent.parent.name == speaker
            for line in trans.read_text().splitlines():
                utt, text = line.split(" ", 1)
                assert (trans.parent / f"{utt}.flac").is_file() and text == text.upper()
    size = sum(p.stat().st_size for p in TINY.rglob("*") if p.is_file())
    assert size <= 20 * 10**6


def test_pretraining_never_hears_an_evaluation_speakers_voice(tmp_path, monkeypatch):
    """Every corpus speaker has a voice of its own; the evaluation sets' voices are those
    `evaluation_voices()` names, and the extra pre-training audio has none of them (as
    LibriSpeech's dev and test speakers are not in its 960 hours)."""
    import sys
    sys.path.insert(0, str(TINY.parent))
    import make_tiny_corpus
    import make_tiny_pretrained

    spoken = []
    monkeypatch.setattr(make_tiny_corpus, "write_chapter",
                        lambda root, speaker, chapter, items, voice, **_: spoken.append(
                            (root.relative_to(tmp_path).parts[1], voice)))
    monkeypatch.setattr(make_tiny_corpus, "librivox_items", lambda: [])
    monkeypatch.setattr(make_tiny_corpus, "link_stand_in_pool", lambda out: None)  # links only
    make_tiny_corpus.build(tmp_path / "corpus")
    corpus_voices = [voice for _, voice in spoken if voice]
    assert len(corpus_voices) == len(set(corpus_voices))
    held_out = {voice for part, voice in spoken if part == "LibriSpeech" and voice}
    assert held_out == make_tiny_corpus.evaluation_voices() and len(held_out) == 8
    spoken.clear()
    make_tiny_pretrained.extra_audio(tmp_path / "pretrain" / "extra")
    extra = {voice for _, voice in spoken}
    assert extra and not extra & held_out
    assert len(extra) == len(make_tiny_corpus.VOICES_F + make_tiny_corpus.VOICES_M) - 8
