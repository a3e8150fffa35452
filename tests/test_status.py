"""make status on hand-built run folders: queued, running, decoded, failed, interrupted."""
import json
import re

import pytest

from conftest import REPO, make
from w2v2_10min.status import describe

# fairseq's own lines (log_format simple), as RUN/logs/finetune-*.log holds them
LOG = """\
[2026-12-01 09:40:02,100][train_inner][INFO] - epoch 050:      1 / 1 loss=310.2, ntokens=2140, \
nsentences=8, num_updates=50, lr=2e-05, gnorm=90.1, train_wall=0, wall=12
[2026-12-01 09:40:07,300][fairseq.checkpoint_utils][INFO] - Saved checkpoint \
/r/checkpoints/checkpoint_last.pt (epoch 100 @ 100 updates, score None) (writing took 0.1 seconds)
[2026-12-01 09:40:09,900][train_inner][INFO] - epoch 150:      1 / 1 loss=290.7, ntokens=2140, \
nsentences=8, num_updates=150, lr=4e-05, gnorm=80.3, train_wall=0, wall=19
"""


def run_folder(root, seed, slurm=None, log=LOG, done=False, wer=None):
    run = root / "tiny-tiny" / "10min-0" / f"seed-{seed}"
    (run / "logs").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "config.yaml").write_text("optimization:\n  max_update: 600\n")
    if log:
        (run / "logs" / "finetune-20261201-094000.log").write_text(log)
    if slurm is not None:
        (run / "slurm.json").write_text(json.dumps(slurm))
    if done:
        (run / "done").touch()
    if wer is not None:
        (run / "decode" / "dev_other").mkdir(parents=True)
        (run / "decode" / "dev_other" / "wer.json").write_text(json.dumps({"wer": wer}))
    return run


@pytest.mark.parametrize("state,said", [("PENDING", "queued (job 7, pending)"),
                                        ("REQUEUED", "queued (job 7, requeued)"),
                                        ("RUNNING", "running (job 7): update 150 of 600")])
def test_a_live_job_is_queued_or_running_with_its_update(tmp_path, state, said):
    run = run_folder(tmp_path, 1, slurm={"job_id": "7"})
    assert describe(run, {"7": state}) == said


def test_a_decoded_run_shows_its_dev_other_wer(tmp_path):
    run = run_folder(tmp_path, 1, slurm={"job_id": "7", "state": "finished"}, done=True,
                     wer=97.5)
    assert describe(run, {"7": "COMPLETED"}) == "decoded: WER on dev-other 97.50 (viterbi)"
    assert describe(run, {}) == "decoded: WER on dev-other 97.50 (viterbi)"  # job forgotten


def test_a_failed_run_names_its_log(tmp_path):
    log = tmp_path / "x.log"
    run = run_folder(tmp_path, 1, slurm={"job_id": "8", "state": "failed", "log": str(log),
                                         "error": "make finetune failed"})
    assert describe(run, {"8": "FAILED"}) == \
        f"failed (job 8): make finetune failed; log: {log}"


@pytest.mark.parametrize("states,how", [({"9": "CANCELLED"}, "job 9 cancelled"),
                                        ({}, "job 9 gone")])
def test_a_cancelled_job_leaves_the_run_resumable(tmp_path, states, how):
    run = run_folder(tmp_path, 1, slurm={"job_id": "9"})
    assert describe(run, states) == \
        f"interrupted ({how}), resumable from update 100 of 600: run the same make sweep again"


def test_interrupted_before_a_checkpoint_and_after_training(tmp_path):
    early = run_folder(tmp_path, 1, slurm={"job_id": "9"}, log="")
    assert describe(early, {}) == ("interrupted (job 9 gone), resumable from the start (no "
                                   "checkpoint yet): run the same make sweep again")
    trained = run_folder(tmp_path, 2, slurm={"job_id": "10"}, done=True)
    assert describe(trained, {"10": "TIMEOUT"}).startswith(
        "interrupted (job 10 timeout): trained, not decoded")


def test_make_status_prints_one_line_per_run(tmp_path):
    """Local runs (no slurm.json): no SLURM is asked, so this runs anywhere."""
    run_folder(tmp_path, 1, done=True, wer=12.25)
    run_folder(tmp_path, 2)
    (tmp_path / "tiny-tiny" / "10min-0" / "seed-3").mkdir()  # not a run: no run.json
    lines = make("status", f"RUN_ROOT={tmp_path}").stdout.splitlines()
    assert lines == ["tiny-tiny/10min-0/seed-1: decoded: WER on dev-other 12.25 (viterbi)",
                     "tiny-tiny/10min-0/seed-2: interrupted (no job), resumable from update "
                     "100 of 600: run the same make sweep again"]


# knobs of the fine-tuning and decoding stages that a sweep's SLURM job does not take from the
# sweep's JOB_KNOBS: each run's own (SPLIT, SEED, LR), the sweep's and SLURM's, those of stages a
# job does not run (tune-lm, compare, export-hf), CFG (print only) and wandb's own WANDB_MODE
# (an environment variable, exported to the job as it is)
NOT_A_JOB_KNOB = {"SPLIT", "SEED", "LR", "LAUNCHER", "PARTITION", "TIME_MIN", "REQUEUES", "SEEDS",
                  "LRS", "JOBS", "TRIALS", "TUNE", "TUNE_SET", "RESULTS", "HF_VERIFY", "CFG",
                  "WANDB_MODE", "LADDER"}


def test_a_slurm_sweep_passes_every_knob_of_its_runs_stages_to_the_job():
    """SEEDED, the Transformer LM's and the LM_* knobs reach the job's `make finetune` and
    `make decode` as make arguments, not only through the environment sbatch exports."""
    makefile = (REPO / "Makefile").read_text()
    sections = re.split(r"^##@ ", makefile, flags=re.M)
    stages = [s for s in sections if s.startswith(("Fine-tuning", "Decoding"))]
    knobs = {name for section in stages for name in re.findall(r"^([A-Z0-9_]+) \?=", section, re.M)}
    assert {"SEEDED", "TRANSFORMER_LM", "LM_PARALLEL", "LM_FP16"} <= knobs
    planned = make("-n", "sweep", "LAUNCHER=slurm", "SEEDED=0", "LM_FP16=1", "LM_BATCH=8",
                   "TRANSFORMER_LM=/lm/t.pt").stdout
    passed = dict(re.findall(r'--knob "([A-Z0-9_]+)=([^"]*)"', planned))
    assert knobs - NOT_A_JOB_KNOB <= passed.keys(), knobs - NOT_A_JOB_KNOB - passed.keys()
    assert passed["SEEDED"] == "0" and passed["LM_FP16"] == "1" and passed["LM_BATCH"] == "8"
    assert passed["TRANSFORMER_LM"] == "/lm/t.pt"
    assert passed["TRANSFORMER_LEXICON"] == "/lm/lexicon.ltr.lst"
