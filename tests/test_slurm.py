"""make sweep LAUNCHER=slurm against a live single-node SLURM cluster (tests/slurm_cluster.py):
one job per run that fine-tunes and decodes on the node, requeued on its time limit or by
the scheduler and resumed from checkpoint_last.pt; make status; one-line refusals.

The module's sweeps are submitted together (fixture `sweeps`), so their tiny jobs run side by
side on the node while each test waits for its own.
"""
import json
import os
import re
import shutil
import time

import pytest
import torch

from conftest import make
from w2v2_10min.cluster import job_states
from w2v2_10min.status import describe

TINY = ["MODEL=tiny", "PROTOCOL=tiny", "SPLITS=0", "LAUNCHER=slurm", "GPUS=0",
        "EVAL_SETS=dev-other"]
LOADED = re.compile(r"Loaded checkpoint .* @ (\d+) updates")


def sweep(env, root, *extra, check=True):
    return make("sweep", *TINY, f"PRETRAINED_DIR={env / 'pretrained'}",
                f"MANIFEST_ROOT={env / 'manifests'}", f"RUN_ROOT={root}", *extra, check=check,
                # the jobs inherit it: one thread each, so that a seeded run is bit for bit the
                # same in every process (tests/test_seeded_runs.py)
                env={**os.environ, "OMP_NUM_THREADS": "1"})


def run_of(root, seed=1):
    return root / "tiny-tiny" / "10min-0" / f"seed-{seed}"


def job_of(run) -> str:
    return json.loads((run / "slurm.json").read_text())["job_id"]


def wait_for(run, test, timeout=200, what="the run"):
    """Poll the run's `make status` line until `test(line)`; the line."""
    deadline = time.monotonic() + timeout
    while True:
        line = describe(run, job_states())
        if test(line):
            return line
        assert time.monotonic() < deadline, f"{what}: still `{line}` after {timeout} s"
        time.sleep(1)


def saved_updates(run) -> int:
    logs = sorted((run / "logs").glob("finetune-*.log"))
    found = re.findall(r"Saved checkpoint .* @ (\d+) updates",
                       "".join(log.read_text() for log in logs))
    return int(found[-1]) if found else 0


def updates(run) -> int:
    saved = torch.load(run / "checkpoints/checkpoint_last.pt", weights_only=False)
    return saved["optimizer_history"][-1]["num_updates"]


SWEEPS = {
    "two": ["SEEDS=1 2", "ARGS=optimization.max_update=20"],
    "requeue": ["SEEDS=1", "CHECKPOINT_MINUTES=0.05"],
    "uninterrupted": ["SEEDS=1", "CHECKPOINT_MINUTES=0.05"],  # the requeued run, left alone
    # the same run in 1-minute jobs, with the tiny recipe's own save interval (100 updates)
    "limited": ["SEEDS=1", "CHECKPOINT_MINUTES=0.05", "TIME_MIN=1", "REQUEUES=30"],
    # the same in 1-minute jobs, trained by the transformers trainer
    "transformers": ["SEEDS=1", "TRAINER=transformers", "CHECKPOINT_MINUTES=0.05", "TIME_MIN=1",
                     "REQUEUES=30"],
}


@pytest.fixture(scope="module")
def sweeps(tiny_env, slurm, tmp_path_factory):
    """These sweeps of the module, submitted at once: root, `make sweep`'s output and time, each;
    and what the same sweep of two runs said when submitted again at once."""
    base = tmp_path_factory.mktemp("slurm-runs")
    done = {}
    for name, extra in SWEEPS.items():
        started = time.monotonic()
        proc = sweep(tiny_env, base / name, *extra)
        done[name] = (base / name, proc.stdout, time.monotonic() - started, extra)
    # at once, while they are queued or running: the same sweep again
    done["two-again"] = sweep(tiny_env, base / "two", *SWEEPS["two"], check=False)
    return done


def ends_as_the_uninterrupted_run(run, sweeps) -> None:
    """A seed is a run: `run` ends with the weights of the same run left alone."""
    alone = run_of(sweeps["uninterrupted"][0])
    wait_for(alone, lambda s: not s.startswith(("queued", "running")), what="the uninterrupted run")
    weights = [torch.load(r / "checkpoints/checkpoint_last.pt", weights_only=False)["model"]
               for r in (run, alone)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.needs("slurm")
def test_requeue_mid_run_resumes_and_scancel_leaves_it_resumable(sweeps, tiny_env, slurm):
    """scontrol requeue (what a scheduler does to a preempted job): the same job comes back
    and resumes; scancel: the run is interrupted, resumable, and the next sweep submits it
    again, and it finishes."""
    root, _, _, extra = sweeps["requeue"]
    run = run_of(root)
    job = job_of(run)
    wait_for(run, lambda s: s.startswith("running") and saved_updates(run) > 0)
    slurm.run("scontrol", "requeue", job)
    first = saved_updates(run)
    wait_for(run, lambda s: s.startswith("running") and saved_updates(run) > first)
    assert job_of(run) == job and "restart 1" in (run / "slurm" / f"{job}_0_log.out").read_text()
    slurm.run("scancel", job)
    line = wait_for(run, lambda s: s.startswith("interrupted"))
    assert re.fullmatch(rf"interrupted \(job {job} (cancelled|gone)\), resumable from update "
                        r"\d+ of 600: run the same make sweep again", line), line
    assert make("status", f"RUN_ROOT={root}").stdout == f"tiny-tiny/10min-0/seed-1: {line}\n"
    again = sweep(tiny_env, root, *extra)
    new = job_of(run)
    assert new != job and again.stdout == f"{run}: submitted as job {new}\n"
    line = wait_for(run, lambda s: not s.startswith(("queued", "running")))
    assert line.startswith("decoded: "), line
    assert updates(run) == 600
    logs = "".join(p.read_text() for p in sorted((run / "logs").glob("finetune-*.log")))
    resumed = [int(n) for n in LOADED.findall(logs)]
    assert len(resumed) == 2 and 0 < resumed[0] <= resumed[1] < 600  # after each stop
    # a seed is a run: requeued, cancelled and resumed, it ends where the same run left alone did
    ends_as_the_uninterrupted_run(run, sweeps)


@pytest.mark.needs("slurm")
def test_each_warned_job_saves_and_is_requeued_at_once_and_the_run_ends_the_same(sweeps):
    """TIME_MIN=1: SLURM warns each job (USR2) well before its 100-update save interval comes
    round; fine-tuning saves after its current update and stops, the job is requeued at once,
    and the next one resumes from that update (make status says which): every job moves the
    run on, and it ends bit for bit as the same run left alone."""
    run = run_of(sweeps["limited"][0])
    seen = set()

    def watch(line):
        seen.add(line.partition(", resumed from update ")[2])
        return not line.startswith(("queued", "running"))

    line = wait_for(run, watch, timeout=900)
    assert line.startswith("decoded: "), line
    assert updates(run) == 600
    logs = [p.read_text() for p in sorted((run / "logs").glob("finetune-*.log"))]
    resumed = [int(n) for log in logs for n in LOADED.findall(log)]
    stopped = [int(n) for log in logs for n in re.findall(r"saved at update (\d+) on signal "
                                                          r"SIGUSR1", log)]
    assert len(resumed) >= 1 and resumed == sorted(set(resumed)), resumed  # always onwards
    assert stopped and set(stopped) <= set(resumed), (stopped, resumed)
    assert any(u % 100 for u in stopped)  # saved on the warning, not at the save interval
    job_log = (run / "slurm" / f"{job_of(run)}_0_log.out").read_text()
    assert "fine-tuning stopped; requeued now" in job_log
    shown = {n for text in seen for n in text.split(", ") if n}
    assert shown and shown <= {str(u) for u in resumed}, (seen, resumed)
    ends_as_the_uninterrupted_run(run, sweeps)


@pytest.mark.needs("slurm")
def test_a_transformers_sweep_is_warned_saves_requeues_and_finishes(sweeps):
    """make sweep TRAINER=transformers LAUNCHER=slurm: one job per run; each job warned before
    its 1-minute limit sends the trainer the save signal, it saves at the end of its epoch (an
    update here) and stops, the job is requeued at once and the next resumes there, until the
    run is trained (600 updates) and decoded."""
    root = sweeps["transformers"][0]
    run = root / "tiny-tiny-transformers" / "10min-0" / "seed-1"
    line = wait_for(run, lambda s: not s.startswith(("queued", "running")), timeout=900)
    assert line.startswith("decoded: "), line
    assert json.loads((run / "run.json").read_text())["trainer"] == "transformers"
    assert updates(run) == 600
    logs = "".join(p.read_text() for p in sorted((run / "logs").glob("finetune-*.log")))
    stopped = [int(n) for n in re.findall(r"stopped on the save signal after saving update "
                                          r"(\d+)", logs)]
    resumed = [int(n) for n in re.findall(r"resuming from \S+ \((\d+) updates done\)", logs)]
    # every stop resumed from; a job ended otherwise (its limit while it wrote the final
    # checkpoints) resumes from the last complete save: always onwards
    assert stopped and set(stopped) <= set(resumed), (stopped, resumed)
    assert resumed == sorted(set(resumed)), resumed
    assert "fine-tuning stopped; requeued now" in \
        (run / "slurm" / f"{job_of(run)}_0_log.out").read_text()


@pytest.mark.needs("slurm")
def test_a_sweep_of_two_runs_is_queued_then_finishes_and_decodes(sweeps, tiny_env, slurm):
    root, out, seconds, extra = sweeps["two"]
    assert seconds < 60  # it returns once the jobs are queued, long before they end
    jobs = [job_of(run_of(root, seed)) for seed in (1, 2)]
    assert out.splitlines() == [f"{run_of(root, seed)}: submitted as job {job}"
                                for seed, job in zip((1, 2), jobs)]
    # while they were queued or running, the same sweep was refused in one line
    again = sweeps["two-again"]
    assert again.returncode != 0 and again.stderr.splitlines()[0].startswith(
        f"error: this sweep is running already: its 2 runs are queued or running (jobs "
        f"{' '.join(jobs)})")
    for seed in (1, 2):
        run = run_of(root, seed)
        line = wait_for(run, lambda s: not s.startswith(("queued", "running")))
        assert line.startswith("decoded: WER on dev-other ")
        record = json.loads((run / "decode/dev_other/wer.json").read_text())
        assert record["seed"] == str(seed) and record["utterances"] == 4
        assert updates(run) == 20
        assert json.loads((run / "slurm.json").read_text())["state"] == "finished"
        assert f"{run}: make decode" in (run / "slurm" / f"{job_of(run)}_0_log.out").read_text()
    # finished: a second sweep submits nothing, and make status says so for each run
    before = set(job_states())
    third = sweep(tiny_env, root, *extra)
    assert third.stdout.splitlines() == [f"{run_of(root, s)}: finished and decoded; not submitted"
                                         for s in (1, 2)]
    assert set(job_states()) == before
    status = make("status", f"RUN_ROOT={root}").stdout.splitlines()
    assert [line.split(": ", 1)[0] for line in status] == \
        ["tiny-tiny/10min-0/seed-1", "tiny-tiny/10min-0/seed-2"]
    assert all(": decoded: WER on dev-other " in line for line in status)


@pytest.mark.needs("slurm")
def test_a_run_longer_than_its_time_limit_is_requeued_and_finishes(tiny_env, slurm, tmp_path):
    """1-minute jobs, each warned by SLURM and requeued 10 s before its limit: 1200 updates
    take more than one (about 25 s of each trains on an idle 2-core machine). Once one has
    been requeued after a checkpoint, the test lifts the queued job's limit (as an admin can)
    so that the next one resumes and finishes however loaded the machine is."""
    sweep(tiny_env, tmp_path, "SEEDS=1", "TIME_MIN=1", "CHECKPOINT_MINUTES=0.05",
          "REQUEUES=10", "ARGS=optimization.max_update=1200 dataset.validate_interval_updates=1200"
          " checkpoint.save_interval_updates=20")
    run = run_of(tmp_path)
    job = job_of(run)
    wait_for(run, lambda s: s.startswith("queued") and saved_updates(run) > 0, timeout=600)
    saved = saved_updates(run)
    log = (run / "slurm" / f"{job}_0_log.out").read_text()
    assert "this job is timed-out" in log and f"Requeued job {job}" in log  # submitit
    slurm.run("scontrol", "update", f"JobId={job}", "TimeLimit=15")
    line = wait_for(run, lambda s: not s.startswith(("queued", "running")), timeout=600)
    assert line.startswith("decoded: "), line
    assert updates(run) == 1200 and job_of(run) == job
    resumed = [int(n) for path in sorted((run / "logs").glob("finetune-*.log"))
               for n in LOADED.findall(path.read_text())]
    assert resumed[-1] >= saved > 0  # the last job went on from a checkpoint of an earlier one


@pytest.mark.needs("slurm")
@pytest.mark.parametrize("extra,said", [
    (["PARTITION=gpu-a100"], "error: PARTITION=gpu-a100: SLURM has no such partition; "
                             "sinfo lists: debug"),
    (["TIME_MIN=10"], "error: TIME_MIN=10 is shorter than one checkpoint interval "
                      "(CHECKPOINT_MINUTES=10; a job is requeued 10 s before its limit)"),
    (["GPUS=1"], "error: sbatch refused "),  # the node has no GPU: the request reached SLURM
])
def test_bad_input_is_one_line(tiny_env, slurm, tmp_path, extra, said):
    proc = sweep(tiny_env, tmp_path, "SEEDS=1", *extra, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and errors[0].startswith(said), proc.stderr
    assert not list(tmp_path.glob("*/*/*/slurm.json"))


def test_without_sbatch_on_path_the_sweep_says_so(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").symlink_to(shutil.which("make"))
    proc = make("sweep", *TINY, "SEEDS=1", f"RUN_ROOT={tmp_path}", check=False,
                env={**os.environ, "PATH": str(bin_dir)})
    assert proc.returncode != 0
    assert proc.stderr.splitlines()[0] == ("error: LAUNCHER=slurm needs SLURM's `sbatch` on "
                                           "PATH; run on the cluster's login node, or use "
                                           "LAUNCHER=local")


def test_a_failing_squeue_in_the_warning_still_requeues(monkeypatch, tmp_path):
    """The intermittent failure of issue 39: on a loaded machine squeue times out in the
    warning's handler; its UserError used to escape into the job, which ended FAILED with
    nothing in RUN/slurm.json. Now the job is requeued at once."""
    from w2v2_10min import cluster
    from w2v2_10min.common import UserError

    def timed_out():
        raise UserError("squeue -h -j 7 -o %e failed: slurm_load_jobs error: Socket timed out")

    monkeypatch.setattr(cluster, "seconds_left", timed_out)
    waited = []  # no fine-tuning running: the job waits for its requeue margin, then requeues
    monkeypatch.setattr(cluster.time, "sleep", waited.append)
    job = cluster.RunJob(tmp_path, [], 3)
    again = job.checkpoint()
    assert again.function is job
    # as if the warning came save_before (60 s) early: requeued REQUEUE_MARGIN before the limit
    assert len(waited) == 1 and 0 < waited[0] <= 60 - cluster.REQUEUE_MARGIN


@pytest.mark.parametrize("how", ["error", "exception", "terminated"])
def test_a_failed_job_records_why_and_its_log(monkeypatch, tmp_path, how):
    """A `make` that fails records its error line, its log and the log's last lines in
    RUN/slurm.json (kept whatever later removes the log); an exception of the job's own too;
    a `make` whose processes SLURM's SIGTERM ended is no failure."""
    from w2v2_10min import cluster

    log = tmp_path / "logs" / "finetune-1.log"
    log.parent.mkdir()
    log.write_text("".join(f"line {i}\n" for i in range(50)))

    def make_fails(self, target):
        if how == "exception":
            raise OSError("the job's own failure")
        if how == "terminated":
            cluster._RUNNING["terminated"] = True
        return 2, "fine-tuning failed; full log: x"

    monkeypatch.setattr(cluster.RunJob, "make", make_fails)
    monkeypatch.setattr(cluster, "_RUNNING", {})
    with pytest.raises(RuntimeError):
        cluster.RunJob(tmp_path, [], 3)()
    record = json.loads((tmp_path / "slurm.json").read_text()) \
        if (tmp_path / "slurm.json").is_file() else {}
    if how == "terminated":
        assert record.get("state") != "failed"
        return
    assert record["state"] == "failed"
    if how == "error":
        assert record["error"] == "fine-tuning failed; full log: x"
        assert record["log"] == str(log)
        assert record["log_tail"] == [f"line {i}" for i in range(20, 50)]
    else:
        assert record["error"] == "OSError: the job's own failure"
