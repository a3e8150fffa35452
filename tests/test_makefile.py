"""Make-level behaviour a user relies on: clear errors before any work is done."""
from conftest import make


def test_setup_without_python311_says_how_to_fix(tmp_path):
    proc = make("setup", "PYTHON=/nonexistent/python3.11", f"VENV={tmp_path}/venv", check=False)
    assert proc.returncode != 0
    assert "error: /nonexistent/python3.11 not found; install Python 3.11" in proc.stderr
    assert not (tmp_path / "venv").exists()


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
