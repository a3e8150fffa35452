"""Make-level behaviour a user relies on: clear errors before any work is done."""
import os
import re

import pytest

from conftest import REPO, make
from w2v2_10min.knobs import KNOBS


def fake_python(path, version: str, log):
    """A stand-in interpreter: reports `version` (to the version check), logs its arguments and
    fails, so that `make setup` stops at `-m venv` having decided to use it."""
    path.write_text(f'''#!/bin/sh
echo "$*" >> {log}
case "$*" in -c*) echo {version};; *) exit 3;; esac
''')
    path.chmod(0o755)
    return path


def test_setup_without_python_says_how_to_fix(tmp_path):
    proc = make("setup", "PYTHON=/nonexistent/python3.12", f"VENV={tmp_path}/venv", check=False)
    assert proc.returncode != 0
    assert ("error: /nonexistent/python3.12 not found (or does not run); install Python 3.12 or "
            "3.11 (your distribution, pyenv or uv), then: make setup PYTHON=python3.12") in proc.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("version", ["3.13", "3.10"])
def test_setup_refuses_a_python_fairseq_has_no_wheel_for_in_one_line(tmp_path, version):
    python = fake_python(tmp_path / f"python{version}", version, tmp_path / "log")
    proc = make("setup", f"PYTHON={python}", f"VENV={tmp_path}/venv", check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and len(errors) == 1
    assert errors[0] == (f"error: {python} is Python {version}, for which fairseq (ve-fairseq "
                         "0.12.3) has no wheel; install Python 3.12 or 3.11 (your distribution, "
                         "pyenv or uv), then: make setup PYTHON=python3.12")
    assert "-m venv" not in (tmp_path / "log").read_text()
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("version", ["3.11", "3.12"])
def test_setup_accepts_python_311_and_312(tmp_path, version):
    python = fake_python(tmp_path / f"python{version}", version, tmp_path / "log")
    proc = make("setup", f"PYTHON={python}", f"VENV={tmp_path}/venv", check=False)
    assert "error: " not in proc.stderr
    assert f"-m venv {tmp_path}/venv" in (tmp_path / "log").read_text()


def test_setup_without_python_knob_takes_python311_else_python312(tmp_path):
    """PYTHON empty: python3.11 if it runs (here it does not, as a pyenv shim of a version not
    selected), else python3.12."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3.11").write_text("#!/bin/sh\nexit 127\n")
    (bin_dir / "python3.11").chmod(0o755)
    fake_python(bin_dir / "python3.12", "3.12", tmp_path / "log")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = make("setup", "PYTHON=", f"VENV={tmp_path}/venv", check=False, env=env)
    assert "error: " not in proc.stderr
    assert f"-m venv {tmp_path}/venv" in (tmp_path / "log").read_text()


def test_finetune_without_manifests_names_the_missing_file(tmp_path):
    proc = make("finetune", f"MANIFEST_ROOT={tmp_path}", "SPLIT=3", check=False)
    assert proc.returncode != 0
    assert f"error: {tmp_path}/10min-3/train.tsv not found; run: make manifests" in proc.stderr


def test_help_lists_the_pipeline_targets():
    out = make("help").stdout
    for target in ("setup", "test", "demo", "manifests", "finetune", "decode", "compare"):
        assert f"  {target} " in out


def test_help_groups_targets_and_knobs_by_stage():
    out = make("help").stdout
    sections = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert sections[:4] == ["Set-up and tests", "Data: download, verify, manifests",
                            "Fine-tuning: one run is MODEL x PROTOCOL x SPLIT x SEED",
                            "Decoding and report"]
    stage_of = {}
    section = None
    for line in out.splitlines():
        if line and not line.startswith(" "):
            section = line
        elif line.strip():
            stage_of[line.split()[0]] = section
    assert stage_of["manifests"] == stage_of["DATA"] == sections[1]
    assert stage_of["finetune"] == stage_of["SEED"] == stage_of["LR"] == sections[2]
    assert stage_of["decode"] == stage_of["DECODER"] == stage_of["compare"] == sections[3]


# Environment variables the Make targets (or a sweep's SLURM jobs: W2V2_SAVE_SIGNAL) set for
# fairseq themselves, or that describe how a measurement was taken (OMP_NUM_THREADS): no
# user's knob.
SET_BY_THE_TARGETS = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "HYDRA_FULL_ERROR", "OMP_NUM_THREADS",
                      "WANDB_RESUME", "W2V2_SAVE_SIGNAL"}


def test_help_lists_every_target_and_knob_the_docs_mention():
    listed = {line.split()[0] for line in make("help").stdout.splitlines() if line.strip()}
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        code = "\n".join(re.findall(r"```.*?```|`[^`\n]+`", doc.read_text(), re.S))
        targets = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", code))
        knobs = set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", code)) - SET_BY_THE_TARGETS
        assert targets and targets <= listed, f"{doc.name}: {sorted(targets - listed)}"
        assert knobs <= listed, f"{doc.name}: {sorted(knobs - listed)} not in make help"


@pytest.mark.parametrize("target,knob,value,also", [
    ("manifests", "SPLITS", "7", ""), ("manifests", "SAMPLE", "x", ""),
    ("manifests", "MINUTES", "0", "SAMPLE=1"), ("manifests", "EVAL_SETS", "dev_clean", ""),
    ("decode", "SEED", "x", ""), ("decode", "LR", "abc", ""), ("decode", "DECODER", "beam", ""),
    ("decode", "DECODE_TRAIN", "yes", ""), ("decode-original", "SPLIT", "9", ""),
    ("sweep", "JOBS", "0", ""), ("sweep", "SEEDS", "1 b", ""), ("sweep", "LRS", "-1", ""),
    ("manifests", "SPLITS", "c100s42", ""), ("sweep", "SPLITS", "c100", ""),
    ("finetune", "RUNG", "best", ""), ("finetune", "OPTIM", "sgd", ""),
    ("ladder", "LADDER", "seed best", ""),
])
def test_every_stage_checks_its_knobs_before_anything_runs(tmp_path, target, knob, value, also):
    """One line naming the knob and what it accepts; nothing read, downloaded or written."""
    folders = [f"{name}={tmp_path / name}" for name in
               ("DATA", "MANIFEST_ROOT", "RUN_ROOT", "RELEASED_DIR", "RESULTS")]
    proc = make(target, f"{knob}={value}", *also.split(), *folders, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and errors[0].startswith(f"error: {knob}={value}: {knob} accepts ")
    assert list(tmp_path.iterdir()) == []


def test_each_checked_knob_is_a_make_knob():
    makefile = (REPO / "Makefile").read_text()
    for name in KNOBS:
        assert re.search(rf"^{name} \?=.*## ", makefile, re.M), name


def test_a_plain_make_demo_keeps_everything_under_demo_root():
    """`make demo` with no knobs (as the README says it): every stage under runs/demo/, and
    each of the grid's 3 splits x 2 seeds fine-tuned, decoded, LM-tuned and LM-decoded once."""
    planned = make("-n", "demo").stdout
    stages = [line for line in planned.splitlines() if "MANIFEST_ROOT=" in line]
    # manifests, tiny-lm with tiny-transformer-lm, then 6 x (finetune, decode, and for each
    # LM tune-lm and decode), then compare
    assert len(stages) == 2 + 6 * 6 + 1
    assert sum(" DECODER=transformer" in line for line in stages) == 6 * 2
    runs = sorted(re.search(r" SPLIT=(\d) SEED=(\d)", line).groups()
                  for line in stages if " finetune " in line)
    assert runs == [(k, s) for k in "012" for s in "12"]
    assert all("MANIFEST_ROOT=runs/demo/manifests RUN_ROOT=runs/demo RESULTS=runs/demo/results"
               in line for line in stages)
