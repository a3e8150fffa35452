"""`make sweep LAUNCHER=slurm`: one SLURM job per run, which fine-tunes and then decodes on its
node; submitted through submitit and queued, not waited for.

Usage:
  python scripts/cluster.py --splits "0 1" --seeds "1 2" [--lrs "2e-5 3e-5"] [--partition P] \
      [--time-min 1440] [--requeues 3] --knob MODEL=base --knob PROTOCOL=paper --knob ...

Each run's folder RUN (w2v2_10min.layout) gets RUN/slurm.json (the job id, written atomically
once sbatch has queued it; the job adds its outcome) and RUN/slurm/ (submitit's sbatch script,
pickled call and the job's log, <id>_0_log.out). A run is submitted only when it is neither
finished (RUN/done and a wer.json for every EVAL_SET with DECODER) nor queued or running
(its job id in squeue), so a second sweep never submits a run twice.

On the node the job runs `make finetune` and then `make decode` with the sweep's knobs
(LAUNCHER=local). It asks SLURM for GPUS GPUs (none for GPUS=0: a CPU job) and TIME_MIN
minutes, with SLURM's warning signal (USR2) `warning_seconds` before the limit (up to 30 s
earlier): at `warning_seconds` before the limit the job sends fine-tuning SAVE_SIGNAL, on which
it finishes its current update, writes checkpoint_last.pt and stops
(w2v2_plugin/no_work_lost.py), and submitit requeues the job at once (`scontrol requeue`); the
next one resumes from that update, so every job that trained an update leaves it saved.
(Decoding, or fine-tuning that has not stopped REQUEUE_MARGIN seconds before the limit, is
requeued then, from its last checkpoint.) A job requeued by the scheduler (preemption) resumes the same way. Either way a
run comes back at most REQUEUES times; after that its job fails with a line in RUN/slurm.json.
A `make` that SLURM's signals ended (a time limit, a requeue, scancel) is not the run's
failure; any other failure records its last error line and its log in RUN/slurm.json.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import getpass
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import submitit

from w2v2_10min import layout
from w2v2_10min.common import REPO, UserError, write_json_atomic
from w2v2_10min.knobs import check, knob

# SLURM states of a job that will still run (squeue --states=all shows ended ones too)
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}
# make's own variables: a job's `make` must see only the knobs it is given
MAKE_ENV = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


# slurmctld looks at time limits every 30 s: it sends the warning up to 30 s before the asked
# time, and ends a job up to 30 s after its limit. A warned job's fine-tuning saves and stops
# after its current update; a job still going REQUEUE_MARGIN seconds before its limit is
# requeued then.
REQUEUE_MARGIN = 10
SAVE_SIGNAL = signal.SIGUSR1  # what the job sends fine-tuning, save_before s before its limit
FAILED_LINES = 30  # of a failed job's log, kept in RUN/slurm.json
RESEND_SECONDS = 5  # the warning again, to fine-tuning that had no handler yet when it came
# the `make` a job runs now (a Popen is no part of the pickled RunJob that submitit requeues)
_RUNNING: dict = {}


def ignore_warnings() -> None:
    """In a job's `make` (and inherited by what it runs): SLURM's warning and SAVE_SIGNAL
    ignored, but where a handler is set (fairseq's, for SAVE_SIGNAL)."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(SAVE_SIGNAL, signal.SIG_IGN)


def warning_seconds(time_min: int) -> int:
    """`--signal=USR2@N`: seconds before the limit that SLURM warns a job (60; 15 a minute
    for shorter limits, so that the warning never comes before the job has started)."""
    return min(60, 15 * time_min)


def check_time_limit(time_min: int, checkpoint_minutes: float, fast: str) -> None:
    """Refuse a limit that ends every job before its first checkpoint on the time budget."""
    if fast != "1" or checkpoint_minutes <= 0:
        return
    if 60 * time_min - REQUEUE_MARGIN <= 60 * checkpoint_minutes:
        raise UserError(f"TIME_MIN={time_min} is shorter than one checkpoint interval "
                        f"(CHECKPOINT_MINUTES={checkpoint_minutes:g}; a job is requeued "
                        f"{REQUEUE_MARGIN} s before its limit): each job would end before "
                        "writing a checkpoint; raise TIME_MIN or lower CHECKPOINT_MINUTES")


def seconds_left() -> float:
    """Seconds until this job's time limit (squeue's end time), inside a SLURM job."""
    end = slurm_command("squeue", "-h", "-j", os.environ["SLURM_JOB_ID"], "-o", "%e").strip()
    try:
        return (datetime.fromisoformat(end) - datetime.now()).total_seconds()
    except ValueError:  # no end time (e.g. an unlimited partition): requeue now
        return 0.0


def slurm_command(name: str, *args: str) -> str:
    """The output of a SLURM client command (one-line UserError when it is missing or fails)."""
    if shutil.which(name) is None:
        raise UserError(f"LAUNCHER=slurm needs SLURM's `{name}` on PATH; run on the cluster's "
                        "login node, or use LAUNCHER=local")
    proc = subprocess.run([name, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"{name} {' '.join(args)} failed: {said}")
    return proc.stdout


def check_partition(partition: str) -> None:
    """An unknown PARTITION stops before anything is submitted."""
    known = slurm_command("sinfo", "-h", "-o", "%R").split()
    if partition and partition not in known:
        raise UserError(f"PARTITION={partition}: SLURM has no such partition; sinfo lists: "
                        f"{' '.join(sorted(set(known))) or 'none'}")


def job_states() -> dict[str, str]:
    """Job id -> SLURM state for this user's jobs that squeue knows (ended ones included)."""
    out = slurm_command("squeue", "-h", "--states=all", "-u", getpass.getuser(), "-o", "%i|%T")
    return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)


def read_record(run: Path) -> dict:
    """RUN/slurm.json, or {} for a run never submitted."""
    path = layout.slurm_json(run)
    return json.loads(path.read_text()) if path.is_file() else {}


def update_record(run: Path, **fields) -> None:
    write_json_atomic(layout.slurm_json(run), {**read_record(run), **fields})


def finished(run: Path, decoder: str, eval_sets: list[str]) -> bool:
    """Trained (RUN/done) and decoded on every EVAL_SET with `decoder`."""
    return layout.done_file(run).exists() and all(
        layout.wer_json(run, decoder, name.replace("-", "_")).is_file() for name in eval_sets)


class RunJob(submitit.helpers.Checkpointable):
    """What a run's SLURM job calls on its node: `make finetune`, then `make decode`.

    submitit pickles it (RUN/slurm/<id>_submitted.pkl) and calls it again each time the job
    comes back. Being Checkpointable, it is requeued when SLURM's warning signal arrives;
    its checkpoint is the same call, since fine-tuning resumes from checkpoint_last.pt.
    """

    def __init__(self, run: Path, make_args: list[str], requeues: int, save_before: int = 60):
        self.run, self.make_args, self.requeues = Path(run), list(make_args), requeues
        self.save_before = save_before  # seconds before the limit that fine-tuning saves

    def __call__(self) -> str:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        if restarts > self.requeues:
            self.fail(f"came back {restarts} times, more than REQUEUES={self.requeues}",
                      self.job_log())
        previous = signal.getsignal(signal.SIGTERM)  # submitit's: SLURM's SIGTERM is let pass

        def terminated(signum, frame):
            _RUNNING["terminated"] = True
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:  # not under submitit: end as before
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, terminated)
        try:
            for target in ("finetune", "decode"):
                print(f"{self.run}: make {target} (restart {restarts})", flush=True)
                code, said = self.make(target)
                if code != 0 and self.ended_by_slurm(code):
                    # a time limit, a requeue or scancel: SIGTERM to every process of the job,
                    # so `make` may end with its child's failure before its own signal
                    raise RuntimeError(f"make {target} stopped by SLURM (status {code})")
                if code != 0:
                    self.fail(said or f"make {target} failed", self.stage_log(target))
        except Exception as err:
            if not isinstance(err, (RuntimeError, submitit.core.utils.UncompletedJobError)):
                self.fail(f"{type(err).__name__}: {err}", self.job_log())  # this job's own
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        update_record(self.run, state="finished",
                      ended=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return "finished"

    @staticmethod
    def ended_by_slurm(code: int, grace: float = 2.0) -> bool:
        """`make` ended by a signal, or SLURM's SIGTERM reached this job (within `grace`
        seconds: SLURM signals the job's processes one after another)."""
        deadline = time.monotonic() + grace
        while code > 0 and not _RUNNING.get("terminated") and time.monotonic() < deadline:
            time.sleep(0.1)
        return code < 0 or bool(_RUNNING.get("terminated"))

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """SLURM's warning (USR2) arrived, up to 30 s earlier than asked: fine-tuning trains on
        until `save_before` seconds before the limit, when the job sends it SAVE_SIGNAL (again
        every RESEND_SECONDS, in case fairseq had no handler yet): it saves after its current
        update and stops. Once it has, or REQUEUE_MARGIN seconds before the limit at the
        latest, hand submitit the same call to requeue."""
        try:
            left = seconds_left()
        except UserError as err:  # squeue failed (a loaded controller): as asked, the
            print(f"warned by SLURM; {err}", flush=True)  # warning came save_before s early
            left = getattr(self, "save_before", 60)
        now = time.monotonic()
        deadline = now + left - REQUEUE_MARGIN
        save_at = now + left - getattr(self, "save_before", 60)
        proc = _RUNNING.get("proc")
        if proc is not None and _RUNNING.get("target") == "finetune" and proc.poll() is None:
            print(f"warned by SLURM; fine-tuning saves in {max(save_at - now, 0):.0f} s, after "
                  "its update then, and the job is requeued once it has stopped (in "
                  f"{max(deadline - now, 0):.0f} s at the latest)", flush=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(save_at - time.monotonic(), 0))
            while proc.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(proc.pid, SAVE_SIGNAL)
                    proc.wait(timeout=max(min(RESEND_SECONDS, deadline - time.monotonic()), 0))
            if proc.poll() is not None:
                self.echo_rest(proc)
                print("fine-tuning stopped; requeued now", flush=True)
        else:
            wait = deadline - time.monotonic()
            print(f"warned by SLURM; requeued in {max(wait, 0):.0f} s", flush=True)
            if wait > 0:
                time.sleep(wait)
        return super().checkpoint(*args, **kwargs)

    @staticmethod
    def echo_rest(proc) -> None:
        """What a stopped `make` wrote that the job's log has not shown yet (read from the pipe
        itself: the main thread, interrupted by the signal, holds the text reader)."""
        fd = proc.stdout.fileno()
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        if chunks:
            print(b"".join(chunks).decode(errors="replace"), end="", flush=True)

    def make(self, target: str) -> tuple[int, str]:
        """Run `make target` with the run's knobs, its output into the job's log: the exit
        status and the last `error: ` line it printed. SLURM's warning (sent to every process
        of the job) is not for it, and SAVE_SIGNAL only for fine-tuning's fairseq process,
        which has a handler for it (W2V2_SAVE_SIGNAL names it: w2v2_plugin/no_work_lost.py)."""
        env = {**{k: v for k, v in os.environ.items() if k not in MAKE_ENV},
               "W2V2_SAVE_SIGNAL": SAVE_SIGNAL.name.removeprefix("SIG")}
        said = ""
        # its own process group, so that checkpoint() can signal it alone
        with subprocess.Popen(["make", "--no-print-directory", target, *self.make_args,
                               "LAUNCHER=local"], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True, preexec_fn=ignore_warnings) as proc:
            _RUNNING.update(proc=proc, target=target)
            for line in proc.stdout:
                print(line, end="", flush=True)
                if line.startswith("error: "):
                    said = line.strip().removeprefix("error: ")
        _RUNNING.pop("proc", None)
        return proc.returncode, said

    def job_log(self) -> Path:
        return self.run / "slurm" / f"{os.environ.get('SLURM_JOB_ID', '%j')}_0_log.out"

    def stage_log(self, target: str) -> Path:
        """The log that says why `target` failed: fine-tuning's own, else the job's."""
        logs = sorted(layout.logs_dir(self.run).glob("finetune-*.log"))
        return logs[-1] if target == "finetune" and logs else self.job_log()

    def fail(self, why: str, log: Path) -> None:
        """Record the failure in RUN/slurm.json, with the last lines of its log (kept there
        whatever later removes or overwrites the log), then end the job."""
        try:
            tail = Path(log).read_text(errors="replace").splitlines()[-FAILED_LINES:]
        except OSError:
            tail = []
        update_record(self.run, state="failed", error=why, log=str(log), log_tail=tail,
                      job=os.environ.get("SLURM_JOB_ID", ""),
                      ended=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        raise RuntimeError(f"{why}; log: {log}")


def executor(run: Path, args) -> submitit.SlurmExecutor:
    """A submitit SlurmExecutor for one run's job (RUN/slurm/ holds its files)."""
    ex = submitit.SlurmExecutor(folder=run / "slurm", max_num_timeout=args.requeues)
    gpus = int(args.knobs["GPUS"])
    ex.update_parameters(
        job_name="-".join(run.parts[-3:]),
        time=int(args.time_min), ntasks_per_node=1, stderr_to_stdout=True,
        signal_delay_s=warning_seconds(int(args.time_min)),
        **({"partition": args.partition} if args.partition else {}),
        **({"gpus_per_node": gpus} if gpus else {}),
        additional_parameters={"requeue": True})
    return ex


def submit(run: Path, make_args: list[str], args) -> str:
    """Queue the run's job; RUN/slurm.json records its id. sbatch's refusal: one line."""
    job = None
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            job = executor(run, args).submit(RunJob(run, make_args, args.requeues,
                                                    warning_seconds(int(args.time_min))))
    except Exception as err:  # submitit's FailedJobError carries sbatch's stderr
        lines = [line.strip() for line in (str(err) + "\n" + said.getvalue()).splitlines()
                 if line.strip()]
        raise UserError(f"sbatch refused {run}: {lines[-1] if lines else err}") from None
    before = read_record(run)
    earlier = before.get("earlier_failures", []) + \
        ([{k: v for k, v in before.items() if k != "earlier_failures"}]
         if before.get("state") == "failed" else [])
    write_json_atomic(layout.slurm_json(run), {
        **({"earlier_failures": earlier} if earlier else {}), "job_id": job.job_id,
        "log": str(run / "slurm" / f"{job.job_id}_0_log.out"),
        "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "partition": args.partition, "time_min": int(args.time_min),
        "gpus": int(args.knobs["GPUS"]), "requeues": args.requeues, "make_args": make_args})
    return job.job_id


@contextlib.contextmanager
def sweep_lock(root: Path):
    """One submitting sweep per RUN_ROOT at a time (a second one stops with one line)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".sweep.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another `make sweep` is submitting into {root} right now; wait "
                            f"for it, then: make status RUN_ROOT={root}") from None
        yield


def sweep_runs(args) -> list[tuple[Path, list[str]]]:
    """Each run of SPLITS x SEEDS x LRS: its folder and the make arguments of its job."""
    k = args.knobs
    common = [f"{name}={value}" for name, value in k.items()]
    runs = []
    for split, seed, lr in itertools.product(args.splits.split(), args.seeds.split(),
                                             args.lrs.split() or [""]):
        given = {**k, "SPLIT": split, "SEED": seed, "LR": lr}
        ident = layout.RunId(**{name: given[knob] for name, knob in
                                layout.RunId.knobs().items() if given.get(knob)})
        runs.append((ident.folder(Path(k["RUN_ROOT"])),
                     [*common, f"SPLIT={split}", f"SEED={seed}", f"LR={lr}"]))
    return runs


def sweep(args) -> int:
    """Submit every run that is neither finished nor queued or running; say what each is."""
    check_time_limit(int(args.time_min), float(args.knobs["CHECKPOINT_MINUTES"]),
                     args.knobs["FAST"])
    slurm_command("sbatch", "--version")
    check_partition(args.partition)
    runs = sweep_runs(args)
    with sweep_lock(Path(args.knobs["RUN_ROOT"])):
        states = job_states()
        active = {run: read_record(run).get("job_id") for run, _ in runs
                  if states.get(str(read_record(run).get("job_id"))) in ACTIVE}
        if len(active) == len(runs):
            raise UserError(f"this sweep is running already: its {len(runs)} runs are queued or "
                            f"running (jobs {' '.join(map(str, active.values()))}); see: "
                            f"make status RUN_ROOT={args.knobs['RUN_ROOT']}")
        decoder, eval_sets = args.knobs["DECODER"], args.knobs["EVAL_SETS"].split()
        for run, make_args in runs:
            if run in active:
                print(f"{run}: job {active[run]} is {states[active[run]].lower()}; "
                      "not submitted again")
            elif finished(run, decoder, eval_sets):
                print(f"{run}: finished and decoded; not submitted")
            else:
                print(f"{run}: submitted as job {submit(run, make_args, args)}", flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", required=True, type=knob("SPLITS"))
    parser.add_argument("--seeds", required=True, type=knob("SEEDS"))
    parser.add_argument("--lrs", default="", type=knob("LRS"))
    parser.add_argument("--partition", default="", type=knob("PARTITION", optional=True))
    parser.add_argument("--time-min", default="1440", type=knob("TIME_MIN"))
    parser.add_argument("--requeues", default="3", type=knob("REQUEUES"))
    parser.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                        help="a knob of the runs' make finetune and make decode")
    args = parser.parse_args(argv)
    args.requeues = int(args.requeues)
    args.knobs = dict(item.partition("=")[::2] for item in args.knob)
    for name in ("GPUS", "CHECKPOINT_MINUTES", "FAST"):
        check(name, args.knobs.get(name, ""))
    return sweep(args)
