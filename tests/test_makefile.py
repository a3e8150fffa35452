"""Make-level behaviour a user relies on: clear errors before any work is done."""
import re

from conftest import REPO, make


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


# Environment variables the Make targets set for fairseq themselves: no user's knob.
SET_BY_THE_TARGETS = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "HYDRA_FULL_ERROR"}


def test_help_lists_every_target_and_knob_the_docs_mention():
    listed = {line.split()[0] for line in make("help").stdout.splitlines() if line.strip()}
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        code = "\n".join(re.findall(r"```.*?```|`[^`\n]+`", doc.read_text(), re.S))
        targets = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", code))
        knobs = set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", code)) - SET_BY_THE_TARGETS
        assert targets and targets <= listed, f"{doc.name}: {sorted(targets - listed)}"
        assert knobs <= listed, f"{doc.name}: {sorted(knobs - listed)} not in make help"
