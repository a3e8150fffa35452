"""No work lost (issue 39): a full disk stops fine-tuning and decoding with one line, keeps the
last checkpoint and leaves no temporary file, and the same command ends, once space is freed,
with the weights of a run never interrupted; SLURM's warning signal (USR2) saves after the
current update and stops, and the rerun ends the same; kill -9 at seeded random moments
(in checkpoint writes and validation too) changes nothing either.

The runs are the tiny recipe on the chain tests' small corpus with 4 batches per update
(MAX_TOKENS), a save and a validation every EVERY updates; `whole` is the run never
interrupted that every other one must end bit for bit equal to."""
import contextlib
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, make, one_error, under_ci

UPDATES, EVERY = 40, 8  # a save and a validation every 8 updates
KNOBS = ["MODEL=tiny", "PROTOCOL=tiny", "MAX_TOKENS=100000", "CHECKPOINT_MINUTES=0",
         "WANDB_PROJECT=",
         f"ARGS=optimization.max_update={UPDATES} common.log_interval=1 "
         f"checkpoint.save_interval_updates={EVERY} dataset.validate_interval_updates={EVERY}"]
# one thread each, so that every run sums in the same order; logs written as they happen
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
LOADED = re.compile(r"Loaded checkpoint .* @ (\d+) updates")
CHECKPOINT_MB = 1.4  # the tiny run's checkpoint_last.pt


def finetune_args(env, root) -> list[str]:
    return ["finetune", *KNOBS, f"PRETRAINED_DIR={env / 'pretrained'}",
            f"MANIFEST_ROOT={env / 'manifests'}", f"RUN_ROOT={root}"]


def finetune(env, root, check=True):
    return make(*finetune_args(env, root), check=check, env=ENV)


def start(env, root, **popen) -> subprocess.Popen:
    return subprocess.Popen(["make", "--no-print-directory", *finetune_args(env, root)],
                            cwd=REPO, env=ENV, text=True, **popen)


def run_of(root) -> Path:
    return Path(root) / "tiny-tiny" / "10min-0" / "seed-1"


def logs(run) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted((run / "logs").glob("*.log")))


def weights(run):
    return torch.load(run / "checkpoints" / "checkpoint_last.pt", weights_only=False)["model"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def updates(run) -> int:
    saved = torch.load(run / "checkpoints" / "checkpoint_last.pt", weights_only=False)
    return saved["optimizer_history"][-1]["num_updates"]


def temporary(run) -> list[Path]:
    return sorted(p for p in run.rglob("*") if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def whole(tiny_env, tmp_path_factory):
    """The run never interrupted."""
    root = tmp_path_factory.mktemp("whole")
    finetune(tiny_env, root)
    return run_of(root)


@contextlib.contextmanager
def tmpfs(folder: Path, megabytes: float):
    """A tmpfs of that size mounted on `folder` (root only); skipped where it cannot be mounted,
    failed under CI=true."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(megabytes * 1024)}k",
                           "tmpfs", str(folder)], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root): {proc.stderr.strip()}"
        if under_ci():
            pytest.fail(f"{reason} (CI=true: fails instead of skipping)", pytrace=False)
        pytest.skip(reason)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def resize(folder: Path, megabytes: float) -> None:
    subprocess.run(["mount", "-o", f"remount,size={int(megabytes * 1024)}k", str(folder)],
                   check=True)


def test_a_full_disk_stops_with_one_line_and_the_rerun_ends_the_same(tiny_env, whole,
                                                                      tmp_path):
    """The disk fills after the first checkpoints: one line names the folder, the space needed
    and what is free; checkpoint_last.pt is whole, no *.tmp is left; with space freed, the
    same command resumes from it and ends with the uninterrupted run's weights. Decoding on
    the full disk: one line too, and nothing half-written."""
    with tmpfs(tmp_path / "disk", 2.5 * CHECKPOINT_MB) as disk:
        run = run_of(disk)
        proc = finetune(tiny_env, disk, check=False)
        assert proc.returncode != 0
        line = one_error(subprocess.CompletedProcess([], 1, "", proc.stderr))
        assert re.fullmatch(
            rf"error: no space left on device in {run / 'checkpoints'} \(about 2\.\d MB needed, "
            r"[\d.]+ [kM]?B free\); checkpoint_last\.pt is kept as it was; free space there, "
            r"then run the same command to resume", line), line
        assert "[fairseq" not in proc.stderr and "no_work_lost" not in proc.stderr  # no log
        kept = updates(run)
        assert 0 < kept < UPDATES and kept % EVERY == 0
        assert temporary(run) == [] and not (run / "done").exists()
        resize(disk, 40)
        finetune(tiny_env, disk)
        assert [int(n) for n in LOADED.findall(logs(run))] == [kept]
        assert same_weights(weights(run), weights(whole))
        assert temporary(run) == []

        # decoding into a full disk: one line naming the folder; rerun with space: decoded
        filler = disk / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        decode = ["decode", *KNOBS, f"PRETRAINED_DIR={tiny_env / 'pretrained'}",
                  f"MANIFEST_ROOT={tiny_env / 'manifests'}", f"RUN_ROOT={disk}",
                  "EVAL_SETS=dev-other"]
        proc = make(*decode, check=False, env=ENV)
        line = one_error(subprocess.CompletedProcess([], 1, "", proc.stderr))
        assert line.startswith(f"error: no space left on device in {run}"), line
        assert line.endswith("free space there, then run the same command to continue"), line
        assert temporary(run) == [] and not list(run.glob("decode*/*/wer.json"))
        filler.unlink()
        make(*decode, env=ENV)
        assert (run / "decode" / "dev_other" / "wer.json").is_file()
        assert temporary(run) == []


def wait_for_log(run, pattern, count, proc, timeout=300) -> None:
    """Until the run's logs hold `pattern` more than `count` times."""
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, logs(run) if (run / "logs").is_dir() else "")) <= count:
        assert proc.poll() is None, "the run ended first"
        assert time.monotonic() < deadline, f"no {pattern} after {timeout} s"
        time.sleep(0.01)


def test_the_warning_signal_saves_after_the_update_and_the_rerun_ends_the_same(
        tiny_env, whole, tmp_path):
    """USR2 to the job's processes (as SLURM's warning reaches them; make and the stage
    ignore it, as under a SLURM job): fine-tuning saves after its current update, which is no
    multiple of the save interval, and stops with one line; the same command resumes from
    that update and ends with the uninterrupted run's weights."""
    run = run_of(tmp_path)
    proc = start(tiny_env, tmp_path, start_new_session=True, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE,
                 preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN))
    wait_for_log(run, r"num_updates=(?:1[0-5]|9)\b", 0, proc)  # past the save at update 8
    os.killpg(proc.pid, signal.SIGUSR2)
    _, err = proc.communicate(timeout=300)
    line = one_error(subprocess.CompletedProcess([], 1, "", err))
    saved = updates(run)
    assert line == (f"error: stopped on signal SIGUSR2 after saving update {saved} in "
                    f"{run / 'checkpoints'}; run the same command to resume from it"), err
    assert EVERY < saved < UPDATES and saved % EVERY != 0, saved
    assert not (run / "done").exists() and temporary(run) == []
    finetune(tiny_env, tmp_path)
    assert [int(n) for n in LOADED.findall(logs(run))] == [saved]
    assert same_weights(weights(run), weights(whole))


# What the kills aim at: (pattern in the log, more than how many times, then a delay of up to
# these seconds): a checkpoint write, validation, the middle of an update, the start up
AIMS = [(r"Preparing to save checkpoint", 0.02), (r"begin validation on", 0.3),
        (r"num_updates=\d+", 0.2), (r"\[fairseq.trainer\]\[INFO\] - Preparing to load", 0.5)]


def test_killed_after_its_last_save_it_is_done_without_another_update(whole, tiny_env,
                                                                       tmp_path):
    """A kill after the save of the last update and before `done` (the case the kill test
    below once hit: fairseq resumed from that checkpoint trains one update more, 41 of 40):
    the same command sees the last save at max_update in the logs, marks the run done, and
    the checkpoint stays the uninterrupted run's."""
    import shutil

    run = run_of(tmp_path)
    shutil.copytree(whole, run)
    config = run / "config.yaml"  # the same run, moved: its paths say where it is now
    config.write_text(config.read_text().replace(str(whole), str(run)))
    (run / "done").unlink()
    said = finetune(tiny_env, tmp_path).stdout
    assert f"was saved at its last update ({UPDATES}) before it was stopped; done" in said
    assert (run / "done").exists() and updates(run) == UPDATES
    assert same_weights(weights(run), weights(whole))


def test_killed_anywhere_it_ends_the_same(tiny_env, whole, tmp_path):
    """kill -9 of the whole run at seeded random moments, each aimed at a checkpoint write,
    validation, an update or the start; after each the same command goes on; it ends bit for
    bit as the uninterrupted run, with no temporary file left."""
    rng = random.Random(39)
    run = run_of(tmp_path)
    kills = []
    for attempt in range(8):
        pattern, delay = AIMS[attempt % len(AIMS)]
        before = len(re.findall(pattern, logs(run))) if (run / "logs").is_dir() else 0
        proc = start(tiny_env, tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
        try:
            wait_for_log(run, pattern, before + rng.randrange(2), proc)
        except AssertionError:  # the run ended before getting there: it is finished
            proc.wait()
            break
        time.sleep(rng.uniform(0, delay))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills.append(pattern)
    finetune(tiny_env, tmp_path)
    print(f"kill -9: {len(kills)} survived ({', '.join(kills)})")  # for docs/finetuning.md
    assert len(kills) >= 6, kills
    assert (run / "done").exists() and updates(run) == UPDATES
    assert same_weights(weights(run), weights(whole))
    assert temporary(run) == []
