"""A decoded subset's record: RUN/decode*/<subset>/{hyp.wrd, ref.wrd, wer.json}, written in one
atomic step by `make decode`; whether one is up to date; and every one under a runs folder,
read back and checked for `make compare`.

Usage:
    record = records.result(subset, hyps, refs, seconds, manifest, checkpoint, sha256,
                            decoder, device, identity, extra)
    records.write_subset(folder, hyps, refs, record)
    records.up_to_date(folder, checkpoint, decoder, settings, identity, needs)
    records.load_records(Path("runs"))          # what `make compare` reads

wer.json holds the scores (w2v2_10min.score), per-utterance errors, the run's identity (copied
from RUN/run.json, w2v2_10min.layout.RunId), the checkpoint with its SHA-256, the decoder and
its settings, the commit and versions: `make compare` needs nothing else.

`load_records` takes a record only if it is what `make decode` (or `decode-original`) writes
and agrees with itself and with where it lies: a finite `wer` >= 0 equal to 100·errors/words,
`words` > 0, per-utterance counts that add up to those totals, and the run's identity (plus
`trained_lr` for a trained run) naming the very folder it is in. The same run in two folders
(the same identity and learning rate trained with) is refused too. Each problem is one line
naming the file and the fix (common.UserError), raised before `make compare` writes anything.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from w2v2_10min import layout
from w2v2_10min.common import SAMPLE_RATE, UserError, atomic_path, git_commit, versions
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
        (tmp / layout.WER_JSON).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def read(folder: Path) -> dict | None:
    """The subset's wer.json, or None when it is missing or unreadable."""
    try:
        return json.loads((folder / layout.WER_JSON).read_text())
    except (OSError, ValueError):
        return None


def up_to_date(folder: Path, checkpoint: Path, decoder: str, settings: dict | None,
               identity: dict | None, needs: tuple = ()) -> bool:
    """A decoded subset newer than the checkpoint, made by the same decoder and settings for
    the same run identity, holding every key in `needs`."""
    path = folder / layout.WER_JSON
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
    found = [read(p.parent) for p in layout.decoded_files(run)]
    return sorted((r for r in found if r), key=lambda r: (r.get("decoder", ""), r["subset"]))


# ---- reading them back for `make compare` ----------------------------------------------------
REQUIRED = ("subset", "wer", "errors", "words", "model")
WER_TOLERANCE = 0.005  # a wer rounded to two decimals still agrees with errors / words


def load_records(runs: Path) -> list[dict]:
    """Every wer.json under RUNS (layout.wer_json_files), checked, with `path` and `decoder`."""
    paths = layout.wer_json_files(runs)
    if not paths:
        raise UserError(f"{runs}: no wer.json found; run `make decode` (or decode-original) first")
    records = [read_record(Path(runs), path) for path in paths]
    check_unique(records)
    return records


def read_record(root: Path, path: Path) -> dict:
    """One wer.json, checked (see the module's docstring); its identity values as strings."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable ({err}); {redo(path)}") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: not a JSON object; {redo(path)}")
    for key in REQUIRED:
        if key not in record:
            raise UserError(f"{path}: no '{key}'; {redo(path)}")
    check_counts(path, record)
    check_identity(root, path, record)
    record["path"] = str(path)
    record["decoder"] = record.get("decoder") or layout.decoder_of(path.parent.parent.name)
    return record


def redo(path: Path) -> str:
    """The fix for a bad record: decode that run (or the released checkpoint) again."""
    target = "decode-original" if released_folder(path) else "decode"
    return f"decode it again with `make {target}`"


def released_folder(path: Path) -> bool:
    """Whether a wer.json lies in a released checkpoint's folder, `<model>-released/`."""
    return layout.record_run(path).name.endswith(f"-{layout.RELEASED}")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_counts(path: Path, record: dict) -> None:
    """wer, errors, words and the per-utterance counts: numbers that agree with each other."""
    wer, errors, words = record["wer"], record["errors"], record["words"]
    if isinstance(wer, bool) or not isinstance(wer, (int, float)) or not math.isfinite(wer) \
            or wer < 0:
        raise UserError(f"{path}: 'wer' is {json.dumps(wer)}, not a WER (a finite number >= 0); "
                        f"{redo(path)}")
    if not _count(errors) or not _count(words) or words == 0:
        raise UserError(f"{path}: 'errors' {json.dumps(errors)} and 'words' {json.dumps(words)} "
                        f"must be whole numbers, words > 0 (nothing scored?); check the "
                        f"subset's manifest and {redo(path)}")
    if abs(wer - 100 * errors / words) > WER_TOLERANCE:
        raise UserError(f"{path}: 'wer' {wer} disagrees with 100·errors/words = "
                        f"{100 * errors / words:.2f}; {redo(path)}")
    by_utt = record.get("utterance_errors"), record.get("utterance_words")
    if bool(by_utt[0]) != bool(by_utt[1]):
        raise UserError(f"{path}: utterance_errors and utterance_words must come together; "
                        f"{redo(path)}")
    if by_utt[0] and not (isinstance(by_utt[0], list) and isinstance(by_utt[1], list)
                          and len(by_utt[0]) == len(by_utt[1])
                          and all(map(_count, by_utt[0] + by_utt[1]))
                          and (sum(by_utt[0]), sum(by_utt[1])) == (errors, words)):
        raise UserError(f"{path}: utterance_errors and utterance_words are not two equally long "
                        f"lists of counts adding up to errors and words; {redo(path)}")


def check_identity(root: Path, path: Path, record: dict) -> None:
    """The run's identity is recorded in full and names the folder the record lies in."""
    try:
        ident = layout.RunId.of(record)
    except KeyError as err:
        raise UserError(f"{path}: no '{err.args[0]}': made before records carried the run's "
                        f"identity; delete {path.parent} and {redo(path)}") from None
    except TypeError as err:
        raise UserError(f"{path}: its '{err.args[0]}' is {json.dumps(record[err.args[0]])}, "
                        f"not a string; {redo(path)}") from None
    record.update(ident.record())
    if not ident.is_released:
        value = record.get("trained_lr")
        if value is None:
            raise UserError(f"{path}: no 'trained_lr': made before records carried the run's "
                            f"identity; delete {path.parent} and {redo(path)}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise UserError(f"{path}: its 'trained_lr' is {json.dumps(value)}, not a string; "
                            f"{redo(path)}")
        record["trained_lr"] = str(value)
    for key in layout.RunId.required():
        if not record[key]:
            raise UserError(f"{path}: its '{key}' is empty; {redo(path)}")
    if not ident.is_released:
        check_learning_rate(path, record)
    elif ident != layout.RunId.released(ident.model):
        raise UserError(f"{path}: a released checkpoint's record must have split and seed "
                        f"'{layout.NO_SPLIT}' and no lr or lr_decay; {redo(path)}")
    expected = ident.folder(root).relative_to(root)
    actual = layout.record_run(path).relative_to(root)
    if expected != actual:
        raise UserError(f"{path}: its identity ({ident.describe()}) belongs in {expected}/, "
                        f"not {actual}/; move the folder back, or delete it and {redo(path)}")
    folder_decoder = layout.decoder_of(path.parent.parent.name)
    if record["subset"] != path.parent.name or \
            (record.get("decoder") or folder_decoder) != folder_decoder:
        raise UserError(f"{path}: its subset {record['subset']!r} and decoder "
                        f"{record.get('decoder')!r} do not match its folder; {redo(path)}")


def check_learning_rate(path: Path, record: dict) -> None:
    """`trained_lr` is a learning rate, and the one `lr` asked for when it asked."""
    trained = layout.learning_rate(record["trained_lr"])
    if trained is None or (record["lr"] and layout.learning_rate(record["lr"]) != trained):
        raise UserError(f"{path}: 'lr' {record['lr']!r} and 'trained_lr' "
                        f"{record['trained_lr']!r} are not one learning rate (a number > 0); "
                        f"{redo(path)}")


def run_key(record: dict) -> tuple:
    """What makes two records decodes of the same run: every key of its identity but the
    learning rate's label, and the learning rate trained with (numerically)."""
    ident = layout.RunId.of(record)
    return (*(getattr(ident, key) for key in ident.keys() if key != "lr"),
            layout.trained_lr(record))


def check_unique(records: list[dict]) -> None:
    """No run in two folders, e.g. under `LR=5e-5` and as the recipe's own 5e-5."""
    folders: dict[tuple, Path] = {}
    for record in records:
        folder = layout.record_run(Path(record["path"]))
        other = folders.setdefault(run_key(record), folder)
        if other != folder:
            raise UserError(f"{folder}: the same run as {other} (model, protocol, split, seed and "
                            f"learning rate {record.get('trained_lr')}); keep one of the two "
                            "folders")
