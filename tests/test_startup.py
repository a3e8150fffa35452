"""sitecustomize.py and w2v2_10min/startup.py: fairseq starts without scikit-learn and wandb,
and everything it takes from them still works, on first use."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from w2v2_10min import startup

REPO = Path(__file__).resolve().parents[1]


def python(code: str, repo_on_path: bool = True) -> dict:
    """Run `code` in a new process (as `make` starts one: the repository on PYTHONPATH, so
    its sitecustomize.py runs first); it prints one JSON object."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if repo_on_path:
        env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


LOADED = "[m for m in ('sklearn', 'sklearn.metrics', 'scipy.stats', 'wandb') if m in sys.modules]"


def test_fairseq_starts_without_them_and_registers_the_same():
    code = ("import sys, json, fairseq\n"
            "from fairseq.tasks import TASK_REGISTRY\n"
            "from fairseq.criterions import CRITERION_REGISTRY\n"
            f"print(json.dumps({{'loaded': {LOADED}, 'tasks': sorted(TASK_REGISTRY), "
            "'criterions': sorted(CRITERION_REGISTRY)}))")
    deferred, own = python(code), python(code, repo_on_path=False)
    assert deferred["loaded"] == []
    assert own["loaded"] == ["sklearn", "sklearn.metrics", "scipy.stats", "wandb"]
    assert deferred["tasks"] == own["tasks"] and "audio_classification" in own["tasks"]
    assert deferred["criterions"] == own["criterions"]


def test_what_fairseq_took_from_them_works_on_first_use_and_is_the_real_thing():
    code = ("import sys, json, fairseq\n"
            "from fairseq.criterions import sentence_prediction as sp\n"
            "from fairseq.tasks import audio_classification as ac\n"
            "from fairseq.logging import progress_bar as pb\n"
            "f1 = sp.f1_score([0, 1, 1, 0], [0, 1, 0, 0])\n"
            "mcc = sp._matthews_corrcoef([0, 1, 1, 0], [0, 1, 0, 0])\n"
            "acc = ac.sklearn_metrics.accuracy_score([1, 0], [1, 1])\n"
            f"after_use = {LOADED}\n"
            "r = sp.pearsonr([1, 2, 3], [1, 2, 4])[0], sp.spearmanr([1, 2, 3], [3, 1, 2])[0]\n"
            "init = pb.wandb.init\n"
            "import sklearn.metrics, scipy.stats, wandb\n"
            "stand_ins = [n for n, m in sys.modules.items() if type(m).__name__ == 'Deferred']\n"
            "print(json.dumps({'f1': f1, 'mcc': mcc, 'acc': acc, 'after_use': after_use,\n"
            "    'init_is_wandbs': init is wandb.init, 'stand_ins': stand_ins, 'r': r,\n"
            "    'real_r': [scipy.stats.pearsonr([1, 2, 3], [1, 2, 4])[0],\n"
            "               scipy.stats.spearmanr([1, 2, 3], [3, 1, 2])[0]],\n"
            "    'real_f1': sklearn.metrics.f1_score([0, 1, 1, 0], [0, 1, 0, 0]),\n"
            "    'real_mcc': sklearn.metrics.matthews_corrcoef([0, 1, 1, 0], [0, 1, 0, 0])}))")
    out = python(code)
    assert out["f1"] == out["real_f1"] and out["mcc"] == out["real_mcc"] and out["acc"] == 0.5
    assert {"sklearn", "sklearn.metrics"} <= set(out["after_use"])  # imported by the first call
    assert out["r"] == out["real_r"]
    assert out["init_is_wandbs"] and out["stand_ins"] == []


def test_a_package_imported_before_fairseq_is_left_as_it_is():
    code = ("import sys, json, sklearn.metrics, fairseq\n"
            "from fairseq.tasks import audio_classification as ac\n"
            "print(json.dumps({'same': ac.sklearn_metrics is sklearn.metrics}))")
    assert python(code)["same"]


def test_no_stand_in_for_a_package_that_is_not_installed():
    assert startup.stand_ins({"no_such_package_here.metrics": ("f1_score",)}) == {}
    made = startup.stand_ins({"json.decoder": ()})  # installed, but imported already
    assert made == {}


def test_a_deferred_name_used_while_its_module_runs_imports_the_real_one(tmp_path, monkeypatch):
    """The mechanism on a package of its own: a module that uses the name at once gets the real
    function; one that only takes it leaves the package unimported until the call."""
    (tmp_path / "fakepkg").mkdir()
    (tmp_path / "fakepkg" / "__init__.py").write_text("")
    (tmp_path / "fakepkg" / "metrics.py").write_text("def f(x):\n    return x + 1\n")
    (tmp_path / "eager.py").write_text("from fakepkg.metrics import f\nVALUE = f(1)\n")
    (tmp_path / "lazy.py").write_text("from fakepkg.metrics import f\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(startup, "UNUSED", {name: {"fakepkg.metrics": ("f",)}
                                            for name in ("eager", "lazy")})
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    for name in ("eager", "lazy", "fakepkg", "fakepkg.metrics"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    startup.defer_unused_imports()
    import lazy
    assert "fakepkg" not in sys.modules and lazy.f(2) == 3 and "fakepkg.metrics" in sys.modules
    for name in ("fakepkg", "fakepkg.metrics"):
        del sys.modules[name]
    import eager
    assert eager.VALUE == 2 and type(sys.modules["fakepkg.metrics"]).__name__ == "module"
    for name in ("eager", "lazy", "fakepkg", "fakepkg.metrics"):
        sys.modules.pop(name, None)


def test_the_sitecustomize_it_shadows_still_runs(tmp_path):
    """A sitecustomize further on the path (a cluster's or a distribution's) runs after ours,
    once, also with the repository on the path twice under two names."""
    (tmp_path / "sitecustomize.py").write_text(
        "import os\nos.environ['SHADOWED_RAN'] = os.environ.get('SHADOWED_RAN', '') + 'yes'\n")
    (tmp_path / "repo").symlink_to(REPO)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (tmp_path / "repo", REPO,
                                                                  tmp_path)))}
    code = ("import os, sys, json\n"
            "finders = [type(f).__name__ for f in sys.meta_path]\n"
            "print(json.dumps([os.environ.get('SHADOWED_RAN'), 'DeferringFinder' in finders]))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd="/", check=True)
    assert json.loads(done.stdout) == ["yes", True]
