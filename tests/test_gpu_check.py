"""`make gpu-check` on the CPU (DEVICE=cpu, the tiny shape): both paths run and agree, the table
has each figure, and its estimates are arithmetic of its measured figures; no GPU and bad
knobs give one line each. The GPU itself is checked by bench/gpu_check_device.sh."""
import json
import math
import os
import re
import subprocess

import pytest

from conftest import PYTHON, REPO, make
from w2v2_10min import gpu_check

NO_GPU = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
          "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
PRICE = 2.5


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """The check on the CPU, as `make gpu-check MODEL=tiny DEVICE=cpu PRICE=2.5` runs it, on a
    30 s split with 2 updates per phase (the make target's: 600 s, 4) to keep the test short."""
    work = tmp_path_factory.mktemp("gpu-check")
    proc = subprocess.run([PYTHON, "scripts/gpu_check.py", "--model", "tiny", "--device", "cpu",
                           "--price", str(PRICE), "--updates", "2", "--seconds", "30",
                           "--work", str(work)], cwd=REPO, env=NO_GPU, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, work


def table(out: str) -> dict[str, tuple[float, float]]:
    """label -> (FAST=0, FAST=1) of the printed table."""
    rows = {}
    for line in out.splitlines():
        found = re.fullmatch(r"(\S.*?)\s{2,}(\S+)\s{2,}(\S+)", line)
        if found and found.group(2) != "FAST=0":
            rows[found.group(1)] = (float(found.group(2)), float(found.group(3)))
    return rows


def close(a: float, b: float, rel: float = 5e-3) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


@pytest.mark.chain  # trains with fairseq: not in `make test-unit`
def test_both_paths_run_and_agree_on_the_cpu_in_fp32(checked):
    out, work = checked
    assert "on the CPU (cpu; fp32, as fp16 is only on CUDA)" in out
    agree = next(line for line in out.splitlines() if line.startswith("losses:"))
    assert re.match(r"losses: agree over 5 updates, largest relative difference \S+ "
                    r"\(tolerance 0\.0001,", agree)
    saved = json.loads((work / "gpu-check-tiny-cpu.json").read_text())
    assert saved["losses"]["agree"] and len(saved["losses_by_update"]["0"]) == 5


@pytest.mark.chain  # trains with fairseq: not in `make test-unit`
def test_the_table_has_each_figure_for_both_paths(checked):
    rows = table(checked[0])
    for phase in ("frozen", "trained"):
        for what in ("s/update", "forward s/update", "backward s/update",
                     "update / (forward + backward)"):
            assert all(v > 0 for v in rows[f"{what}, {phase}"]), (what, phase)
    assert all(v > 0 for v in rows["peak CPU memory (RSS), GiB"])
    for label in ("hours, one 600-update run", f"cost, one run at PRICE={PRICE:g}/h",
                  "hours, the 36-run study", f"cost, the 36-run study at PRICE={PRICE:g}/h"):
        assert all(v > 0 for v in rows[label]), label
    out = checked[0]
    assert "largest MAX_TOKENS: not searched on the CPU" in out
    rtf = re.search(r"decoding real-time factor: (\S+) ", out)
    assert rtf and float(rtf.group(1)) > 0


@pytest.mark.chain  # trains with fairseq: not in `make test-unit`
def test_estimates_are_arithmetic_of_the_measured_figures(checked):
    """hours = s/update x updates / 3600 from the printed numbers; the tiny recipe's 600
    updates are all trained (freeze_finetune_updates 0); cost = hours x PRICE; study = 36 runs."""
    rows = table(checked[0])
    mix = rows["s/update, whole run (0 frozen + 600 trained)"]
    for fast in (0, 1):
        assert close(mix[fast], rows["s/update, trained"][fast])
        hours = rows["hours, one 600-update run"][fast]
        assert close(hours, mix[fast] * 600 / 3600)
        assert close(rows[f"cost, one run at PRICE={PRICE:g}/h"][fast], hours * PRICE)
        assert close(rows["hours, the 36-run study"][fast], 36 * hours)
        assert close(rows[f"cost, the 36-run study at PRICE={PRICE:g}/h"][fast],
                     36 * hours * PRICE)
        for phase in ("frozen", "trained"):
            model = rows[f"forward s/update, {phase}"][fast] + \
                rows[f"backward s/update, {phase}"][fast]
            assert close(rows[f"update / (forward + backward), {phase}"][fast],
                         rows[f"s/update, {phase}"][fast] / model, rel=1e-2)


def test_without_a_gpu_one_line_names_device_cpu(tmp_path):
    proc = make("gpu-check", "MODEL=tiny", f"GPU_CHECK_ROOT={tmp_path / 'work'}", env=NO_GPU,
                check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and "no CUDA GPU" in errors[0] and "DEVICE=cpu" in errors[0]
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("knob,value,accepts", [
    ("PRICE", "abc", "a price per GPU-hour >= 0"), ("MODEL", "huge", "tiny, base, large or vox"),
    ("DEVICE", "tpu", "cuda or cpu"), ("CHECK_UPDATES", "1", "a whole number >= 2"),
])
def test_a_bad_knob_is_one_line(tmp_path, knob, value, accepts):
    proc = make("gpu-check", "DEVICE=cpu", f"{knob}={value}",
                f"GPU_CHECK_ROOT={tmp_path / 'work'}", env=NO_GPU, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and errors[0].startswith(f"error: {knob}={value}: {knob} accepts "
                                                     f"{accepts}")
    assert not (tmp_path / "work").exists()


def test_max_tokens_search_is_a_bounded_bisection():
    """At most MAX_PROBES passes, in steps of 10 s; the largest step that fits, and the next."""
    calls = []

    def fit(limit):
        return lambda n: calls.append(n) or n <= limit

    found = gpu_check.largest(fit(1_000_000), 2 * 3_200_000)
    assert found == {"fits": 960_000, "below": 1_120_000, "probes": len(calls), "capped": False}
    assert len(calls) <= gpu_check.MAX_PROBES and calls[0] == 6_400_000
    calls.clear()
    assert gpu_check.largest(fit(10**9), 2_560_000) == \
        {"fits": 2_560_000, "below": None, "probes": 1, "capped": True}
    calls.clear()
    nothing = gpu_check.largest(fit(0), 2_560_000)
    assert nothing["fits"] == 0 and nothing["below"] == 160_000
    calls.clear()
    short = gpu_check.largest(fit(1_000_000), 2_560_000, probes=3)
    assert len(calls) == 3 and short["fits"] < 1_000_000 < short["below"]


def test_phases_leave_out_warm_up_and_fp16_overflow_steps():
    """Seconds per update run from one step's start to the next's; a step that did not advance
    fairseq's update count (fp16 overflow) is counted apart; each phase's first update is left
    out of its median."""
    def step(start, num_updates, forward=0.1, backward=0.2):
        return {"start": start, "seconds": 0.3, "forward": forward, "backward": backward,
                "num_updates": num_updates}

    steps = [step(0, 0), step(5, 1), step(6, 2), step(7, 3), step(8, 4, 1.0, 2.0),
             step(10, 5, 1.0, 2.0), step(12, 6, 1.0, 2.0), step(14, 7)]
    timed = gpu_check.phases({"steps": steps}, frozen_updates=3)
    assert timed["overflows"] == 1
    assert timed["frozen"]["update"] == 1 and timed["frozen"]["timed"] == 2
    assert timed["trained"]["update"] == 2 and timed["trained"]["timed"] == 2
    assert timed["trained"]["forward"] == 1.0 and timed["trained"]["ratio"] == 2 / 3


@pytest.mark.chain  # trains with fairseq: not in `make test-unit`
def test_the_search_probe_runs_a_real_forward_and_backward(checked):
    """The probe the GPU's MAX_TOKENS search makes, here once on the CPU (no OOM to catch):
    the architecture built from the FAST=0 run's config, a batch of 10 s, gradients made."""
    work = checked[1]
    run = gpu_check.run_folder(work / "runs" / "tiny-cpu-fast0")
    assert (run / "run.json").is_file()
    model, criterion, vocab = gpu_check.build(run, "cpu")
    seen = []
    model.w2v_encoder.proj.weight.register_hook(lambda grad: seen.append(grad.abs().sum()))
    assert gpu_check.fits(model, criterion, vocab, gpu_check.STEP, "cpu")
    assert seen and seen[0] > 0 and all(p.grad is None for p in model.parameters())  # zeroed after the probe


def test_the_search_is_reported_for_this_card_and_a_16_gb_card():
    """What a GPU prints of the search (here from its results, as no GPU is at hand)."""
    found = {"total_gib": 79.2,
             "card": {"fits": 2_560_000, "below": None, "probes": 1, "capped": True},
             "16gb": {"fits": 960_000, "below": 1_120_000, "probes": 5, "capped": False}}
    lines = gpu_check.search_lines(found, {"max_tokens": 1_280_000})
    assert lines == [
        "largest MAX_TOKENS, this card (79 GiB): 2560000 (1 forward+backward passes; 2560000 "
        "fits, the recipe's x2 cap); the recipe's MAX_TOKENS=1280000 fits",
        "largest MAX_TOKENS, a 16 GB card (allocator capped at 15 GiB): 960000 (5 forward+"
        "backward passes; 1120000 out of memory); the recipe's MAX_TOKENS=1280000 does NOT fit"]
    assert gpu_check.search_lines(None, {"max_tokens": 1})[0].startswith(
        "largest MAX_TOKENS: not searched on the CPU")
