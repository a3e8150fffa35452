"""A test that needs a system tool skips with the install command when the tool is missing,
and fails instead under CI=true, so that it can never silently stop running there."""
import os
import subprocess

from conftest import PYTHON, REPO

TEST = "tests/test_make_tiny_corpus.py::test_generator_reproduces_the_committed_corpus"


def run_without_tools(tmp_path, **env):
    """pytest on the generator test with a PATH that holds no espeak-ng or sox."""
    empty = tmp_path / "bin"
    empty.mkdir()
    environment = {k: v for k, v in os.environ.items() if k != "CI"}
    return subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
                          cwd=REPO, capture_output=True, text=True,
                          env={**environment, "PATH": str(empty), **env})


def test_a_missing_tool_skips_with_the_install_command(tmp_path):
    proc = run_without_tools(tmp_path)
    assert proc.returncode == 0, proc.stdout
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "1 skipped" in proc.stdout
    assert "needs espeak-ng, sox" in skipped[0]
    assert "install: apt-get install espeak-ng sox libsox-fmt-all" in skipped[0]


def test_a_missing_tool_fails_under_ci(tmp_path):
    proc = run_without_tools(tmp_path, CI="true")
    assert proc.returncode == 1 and "1 error" in proc.stdout  # fails in set-up, before it runs
    assert "needs espeak-ng, sox" in proc.stdout and "CI=true" in proc.stdout
