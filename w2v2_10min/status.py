"""`make status`: one line per run under a runs folder, saying where it is.

Usage:
  python scripts/status.py --run-root runs

  queued       its SLURM job waits (job id and SLURM's reason)
  running      its job runs: update N of M, from the newest RUN/logs/finetune-*.log, and the
               update each requeue (or rerun) resumed from
  decoded      WER on dev-other of each decoder, from RUN/decode*/dev_other/wer.json
  failed       its job said why (RUN/slurm.json) and which log shows it
  interrupted  no job runs it and it is not finished (scancel, a node lost, REQUEUES spent
               on time limits, a local run stopped): resumable from the update of its
               newest checkpoint_last.pt, by running the same `make sweep` again
A job's state comes from squeue (no accounting database needed); a run folder without
RUN/slurm.json is a local run.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import yaml

from w2v2_10min import layout
from w2v2_10min.cluster import ACTIVE, job_states, read_record

UPDATE = re.compile(r"num_updates[= ](\d+)")
LOADED = re.compile(r"Loaded checkpoint .* @ (\d+) updates")


def max_update(run: Path) -> str:
    path = layout.config_file(run)
    if not path.is_file():
        return "?"
    return str((yaml.safe_load(path.read_text()).get("optimization") or {})
               .get("max_update", "?"))


def last_match(run: Path, pattern: re.Pattern) -> int | None:
    """The last number `pattern` finds in the run's fine-tuning logs, newest log first."""
    for log in sorted(layout.logs_dir(run).glob("finetune-*.log"), reverse=True):
        found = pattern.findall(log.read_text(errors="replace"))
        if found:
            return int(found[-1])
    return None


def resumed_from(run: Path) -> list[int]:
    """The update each resumption of fine-tuning started from (a requeued job's, a rerun's),
    oldest first, from the fine-tuning logs."""
    return [int(n) for log in sorted(layout.logs_dir(run).glob("finetune-*.log"))
            for n in LOADED.findall(log.read_text(errors="replace"))]


def decoded(run: Path) -> str | None:
    """`WER 12.34 on dev-other (viterbi), 9.87 (4gram)`, or None when not decoded."""
    scores = []
    for path in layout.decoded_files(run):
        if path.parent.name == "dev_other":
            wer = json.loads(path.read_text())["wer"]
            scores.append(f"{wer:.2f} ({layout.decoder_of(path.parent.parent.name)})")
    return f"WER on dev-other {', '.join(scores)}" if scores else None


def describe(run: Path, states: dict[str, str] | None) -> str:
    """The run's one line (without its folder)."""
    record = read_record(run)
    job = str(record.get("job_id", ""))
    state = (states or {}).get(job, "")
    of = f"of {max_update(run)}"
    if state in ACTIVE:
        if state in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "CONFIGURING"):
            return f"queued (job {job}, {state.lower()})"
        resumed = resumed_from(run)
        since = f", resumed from update {', '.join(map(str, resumed))}" if resumed else ""
        return f"running (job {job}): update {last_match(run, UPDATE) or 0} {of}{since}"
    wer = decoded(run)
    if wer and layout.done_file(run).exists():
        return f"decoded: {wer}"
    if record.get("state") == "failed":
        return f"failed (job {job}): {record.get('error', '')}; log: {record.get('log', '?')}"
    if job and states is None:
        return f"job {job} submitted; no squeue on PATH here to ask SLURM about it"
    how = f"job {job} {state.lower() or 'gone'}" if job else "no job"
    if layout.done_file(run).exists():
        return f"interrupted ({how}): trained, not decoded; resumable: run the sweep again"
    saved = last_match(run, layout.SAVED)
    where = f"from update {saved} {of}" if saved else "from the start (no checkpoint yet)"
    return f"interrupted ({how}), resumable {where}: run the same make sweep again"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-root", type=Path, default=Path("runs"))
    args = parser.parse_args(argv)
    runs = layout.run_folders(args.run_root)
    states = job_states() if shutil.which("squeue") and any(
        layout.slurm_json(run).is_file() for run in runs) else None
    for run in runs:
        print(f"{run.relative_to(args.run_root)}: {describe(run, states)}")
    if not runs:
        print(f"no runs under {args.run_root}")
    return 0
