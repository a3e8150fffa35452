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
