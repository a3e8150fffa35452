"""A decoded subset's record: RUN/decode*/<subset>/{hyp.wrd, ref.wrd, wer.json}, written in one
atomic step, and whether one is up to date.

Usage:
    record = records.result(subset, hyps, refs, seconds, manifest, checkpoint, sha256,
                            decoder, device, identity, extra)
    records.write_subset(folder, hyps, refs, record)
    records.up_to_date(folder, checkpoint, decoder, settings)

wer.json holds the scores (w2v2_10min.score), per-utterance errors, the run's identity (copied
from RUN/run.json, w2v2_10min.layout.IDENTITY), the checkpoint with its SHA-256, the decoder and
its settings, the commit and versions: `make compare` needs nothing else.
"""
from __future__ import annotations

import json
from pathlib import Path

from w2v2_10min.common import SAMPLE_RATE, atomic_path, git_commit, versions
from w2v2_10min.formats import read_tsv
from w2v2_10min.score import summarise, utterance_errors


def result(subset: str, hyps: list[str], refs: list[str], seconds: float, manifest: Path,
           checkpoint: Path, checkpoint_sha: str, decoder: str, device: str,
           identity: dict | None, extra: dict) -> dict:
    """wer.json of one decoded subset: scores, per-utterance errors, identity, provenance."""
    per_utterance = utterance_errors(refs, hyps)
    _, rows = read_tsv(manifest / f"{subset}.tsv")
    audio_seconds = sum(n for _, n in rows) / SAMPLE_RATE
    record = {"subset": subset, **summarise(per_utterance), "utterances": len(hyps),
              "checkpoint": str(checkpoint.resolve()), "checkpoint_sha256": checkpoint_sha,
              "manifest": str(manifest.resolve()), "decoder": decoder, "device": device,
              "commit": git_commit(), "versions": versions(),
              "decode_seconds": round(seconds, 3),
              "real_time_factor": round(seconds / audio_seconds, 5),
              "utterance_errors": [u[0] for u in per_utterance],
              "utterance_words": [u[1] for u in per_utterance], **(identity or {})}
    versions_extra = extra.pop("versions", {})
    record.update(extra)
    record["versions"].update(versions_extra)
    return record


def write_subset(folder: Path, hyps: list[str], refs: list[str], record: dict) -> None:
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / "hyp.wrd").write_text("".join(h + "\n" for h in hyps))
        (tmp / "ref.wrd").write_text("".join(r + "\n" for r in refs))
        (tmp / "wer.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read(folder: Path) -> dict | None:
    """The subset's wer.json, or None when it is missing or unreadable."""
    try:
        return json.loads((folder / "wer.json").read_text())
    except (OSError, ValueError):
        return None


def up_to_date(folder: Path, checkpoint: Path, decoder: str, settings: dict | None,
               identity: dict | None, needs: tuple = ()) -> bool:
    """A decoded subset newer than the checkpoint, made by the same decoder and settings for
    the same run identity, holding every key in `needs`."""
    path = folder / "wer.json"
    if not path.is_file() or path.stat().st_mtime_ns < checkpoint.stat().st_mtime_ns:
        return False
    record = read(folder)
    if record is None or any(key not in record for key in needs):
        return False
    if any(record.get(key) != value for key, value in (identity or {}).items()):
        return False  # decoded before the run's identity was recorded, or for another run
    return record.get("decoder") == decoder and record.get("decoder_settings") == settings


def decoded(run: Path | None) -> list[dict]:
    """Every wer.json of a run (all decoders), sorted by decoder then subset."""
    if run is None:
        return []
    found = [read(p.parent) for p in sorted(Path(run).glob("decode*/*/wer.json"))]
    return sorted((r for r in found if r), key=lambda r: (r.get("decoder", ""), r["subset"]))
