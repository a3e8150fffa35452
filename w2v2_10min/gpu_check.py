"""`make gpu-check`: does MODEL's recipe run on this machine's GPU, does it fit, what will a run cost?

Usage: python scripts/gpu_check.py --model tiny|base|large|vox [--device cuda|cpu]
           [--price 2.00] [--updates 4] [--seconds 600] [--work .bench/gpu-check]

Before a day of training, in minutes (meant to take about two for BASE; not yet timed on a
GPU, see docs/speed.md):
1. MODEL's architecture with random weights (w2v2_10min/synthetic.py: fairseq's pre-training
   for one update; tiny: the committed tiny model) on a synthetic split of SECONDS of noise
   (600: a 10-minute fold), fine-tuned by the real `make finetune` with MODEL's recipe (PROTOCOL
   fairseq; tiny: tiny) at the recipe's batch on one device, fp16 on CUDA (fp32 on the CPU: fp16
   is CUDA's), once on fairseq's own path (FAST=0) and once on the default path (FAST=1: audio
   in memory, the frozen CNN's features cached, checkpoints on a time budget, seeded draws):
   UPDATES updates with the transformer frozen, then UPDATES + 1 after unfreezing.
   w2v2_10min/profile_hooks.py times each update from inside fairseq (nothing of fairseq changed).
2. Checks both paths ran and agree: every update's logged loss within LOSS_TOLERANCE (relative).
3. Prints, FAST=0 beside FAST=1: seconds per update in each phase (the median over the phase's
   updates after its first, which pays for warm-up), the model's own forward and backward
   seconds and the update's ratio to them, peak memory (CUDA: reserved by PyTorch; CPU: the
   process's peak RSS), and a whole run (the recipe's max_update, frozen for its
   freeze_finetune_updates) in hours and at PRICE per hour, one run and the 36-run study
   (6 splits x 3 seeds x 2 protocols); hours = (frozen updates x frozen s/update + trained
   updates x trained s/update) / 3600, validations and checkpoint writes not included.
4. In this process, the same architecture built from the FAST=0 run's config: the largest
   MAX_TOKENS whose forward and backward fit (transformer trained, LayerDrop off, masks from
   fairseq's own draws, as few utterances of up to 35 s as make up MAX_TOKENS, and fp32 master
   weights, gradients and Adam's moments held as fairseq's fp16 optimizer holds them), by a
   bounded bisection (at most MAX_PROBES passes, in steps of 10 s of audio, up to twice the
   recipe's MAX_TOKENS) catching torch.cuda.OutOfMemoryError (and cuBLAS's and cuDNN's
   out-of-memory errors), on this card and on a 16 GB card (PyTorch's allocator capped at
   CARD_GIB with torch.cuda.set_per_process_memory_fraction); whether the recipe's MAX_TOKENS
   fits each; on the CPU the search is skipped (one line).
   And decoding speed: the real-time factor of the model's forward and argmax (Viterbi without
   LM) on 15 s utterances one at a time.
No GPU and no --device: one line naming DEVICE=cpu, exit status 1.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from w2v2_10min.common import REPO, SAMPLE_RATE, UserError
from w2v2_10min.knobs import check

MODELS = ("tiny", "base", "large", "vox")
PROTOCOL = {"tiny": "tiny", "base": "fairseq", "large": "fairseq", "vox": "fairseq"}
DEVICES = ("cuda", "cpu")
STUDY_RUNS = 36  # 6 splits x 3 seeds x 2 protocols
# losses of FAST=0 and FAST=1 at the same update, relative difference at most: fp32 on the CPU
# they are equal (tests/test_fast.py) up to the log's rounding; fp16 on CUDA they differ by
# fp16 rounding and CUDA's non-deterministic reductions
LOSS_TOLERANCE = {"cpu": 1e-4, "cuda": 2e-2}
STEP = 10 * SAMPLE_RATE  # MAX_TOKENS search resolution: 10 s of audio
LONGEST = 35 * SAMPLE_RATE  # Libri-light's longest utterances
MAX_PROBES = 8
CARD_GIB = 15.0  # a 16 GB card: 16 GiB less the CUDA context's and driver's share
DECODE_SECONDS = 15.0
OUT_OF_MEMORY = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
                 "CUDNN_STATUS_ALLOC_FAILED")
SITECUSTOMIZE = """
import os, sys
from w2v2_10min import startup  # what the repository's sitecustomize.py, shadowed, does
startup.defer_unused_imports()
if sys.argv and sys.argv[0].endswith("fairseq-hydra-train"):
    import atexit, json, resource
    from w2v2_10min import profile_hooks
    profile_hooks.install()
    def _memory():
        import torch
        peak = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            peak.update(peak_reserved_gib=torch.cuda.max_memory_reserved() / 2**30,
                        peak_allocated_gib=torch.cuda.max_memory_allocated() / 2**30)
        with open(os.environ["GPU_CHECK_MEMORY"], "w") as f:
            json.dump(peak, f)
    atexit.register(_memory)
"""


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--device", default="", help="cuda (default) or cpu (fp32)")
    parser.add_argument("--price", default="2.00", help="price of one GPU-hour")
    parser.add_argument("--updates", default="4", help="updates timed in each phase")
    parser.add_argument("--seconds", default="600", help="seconds of audio in the split")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "gpu-check")
    args = parser.parse_args(argv)
    check("MODEL", args.model, "tiny, base, large or vox", args.model in MODELS)
    check("DEVICE", args.device, "cuda or cpu (empty: cuda)", args.device in ("", *DEVICES))
    check("PRICE", args.price, "a price per GPU-hour >= 0, e.g. PRICE=2.50",
          re.fullmatch(r"\d+(\.\d*)?|\.\d+", args.price) is not None)
    check("CHECK_UPDATES", args.updates, "a whole number >= 2 of updates per phase",
          args.updates.isdigit() and int(args.updates) >= 2)
    check("--seconds", args.seconds, "seconds of audio >= 10",
          re.fullmatch(r"\d+(\.\d*)?", args.seconds) is not None and float(args.seconds) >= 10)
    args.price, args.updates, args.seconds = float(args.price), int(args.updates), \
        float(args.seconds)
    return args


def pick_device(asked: str) -> str:
    import torch

    if asked == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU on this machine (torch.cuda.is_available() is False); "
                        "`make gpu-check DEVICE=cpu` runs the same check on the CPU in fp32")
    return "cuda"


def make(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)


def prepare(args, work: Path, device: str) -> list[str]:
    """The synthetic split's manifests and the pre-trained model; the make variables."""
    from w2v2_10min.synthetic import random_pretrained, synthetic_split

    data, manifests = work / f"data-{args.seconds:g}s", work / f"manifests-{args.seconds:g}s"
    if not data.is_dir():
        synthetic_split(data, count=max(2, round(48 * args.seconds / 600)), total=args.seconds)
    made = make("manifests", f"DATA={data}", "SPLITS=0", f"MANIFEST_ROOT={manifests}")
    if made.returncode:
        raise UserError(f"make manifests failed: {made.stderr[-2000:]}")
    pretrained = work / "pretrained"
    if args.model == "tiny":
        made = make("pretrain-tiny", f"PRETRAINED_DIR={pretrained}")
        if made.returncode:
            raise UserError(f"make pretrain-tiny failed: {made.stderr[-2000:]}")
    else:
        random_pretrained(args.model, work / args.model, sys.executable, data=data,
                          cpu=device == "cpu")
        pretrained = work / args.model / "pretrained"
    return [f"MODEL={args.model}", f"PROTOCOL={PROTOCOL[args.model]}", "SPLIT=0", "SEED=1",
            f"PRETRAINED_DIR={pretrained}", f"MANIFEST_ROOT={manifests}",
            f"GPUS={0 if device == 'cpu' else 1}", f"FP16={str(device == 'cuda').lower()}",
            "WANDB_PROJECT="]


def finetune(args, work: Path, device: str, make_vars: list[str], fast: str) -> dict:
    """One short `make finetune`: its steps (profile_hooks), losses, peak memory, run folder."""
    shim = work / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(SITECUSTOMIZE)
    name = f"{args.model}-{device}-fast{fast}"
    profile, memory, runs = (work / f"{name}-profile.json", work / f"{name}-memory.json",
                             work / "runs" / name)
    for path in (profile, memory):
        path.unlink(missing_ok=True)
    subprocess.run(["rm", "-rf", str(runs)], check=True)
    env = {**os.environ, "BENCH_PROFILE": str(profile), "GPU_CHECK_MEMORY": str(memory),
           "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    n = args.updates
    overrides = [f"optimization.max_update={2 * n + 1}", f"model.freeze_finetune_updates={n}",
                 "common.log_interval=1", f"common.cpu={str(device == 'cpu').lower()}",
                 "dataset.validate_after_updates=1000000",  # no validation on the way
                 "checkpoint.save_interval_updates=1000000", "checkpoint.save_interval=1000000",
                 "dataset.required_batch_size_multiple=1"]  # the 1-utterance dev sets
    proc = make("finetune", *make_vars, f"FAST={fast}", f"RUN_ROOT={runs}",
                f"PYTHONPATH={shim}:{REPO}", f"ARGS={' '.join(overrides)}", env=env)
    logs = sorted(runs.rglob("finetune-*.log"))
    log = logs[-1].read_text(errors="replace") if logs else ""
    if proc.returncode or not profile.is_file():
        said = "out of memory" if "out of memory" in log.lower() else "failed"
        tail = "\n".join((log or proc.stderr).splitlines()[-15:])
        raise UserError(f"make finetune FAST={fast} {said} on {device} (log: "
                        f"{logs[-1] if logs else 'none'}):\n{tail}")
    return {"profile": json.loads(profile.read_text()),
            "memory": json.loads(memory.read_text()) if memory.is_file() else {},
            "losses": losses(log), "run": run_folder(runs)}


def run_folder(runs: Path) -> Path:
    """The run under RUN_ROOT: the folder of its config.yaml (not Hydra's, deeper)."""
    return min(runs.rglob("config.yaml"), key=lambda path: len(path.parts)).parent


def losses(log: str) -> dict[int, float]:
    """update -> loss, as fairseq logged them (log_interval 1)."""
    return {int(u): float(loss) for loss, u in
            re.findall(r"\[train_inner\].*?loss=([\d.]+).*?num_updates=(\d+)", log)}


def phases(profile: dict, frozen_updates: int) -> dict[str, dict]:
    """Per phase (frozen, trained): seconds per update (from one train_step's start to the
    next's, so data loading and fairseq's loop count), forward, backward; the median over
    the phase's updates after its first. fp16 steps that overflowed (no update) are left out."""
    steps = profile["steps"]
    rows = {"frozen": [], "trained": []}
    previous = 0
    for step, following in zip(steps, steps[1:]):
        updated = step["num_updates"] > previous
        previous = step["num_updates"]
        if updated:
            phase = "frozen" if step["num_updates"] <= frozen_updates else "trained"
            rows[phase].append({"update": following["start"] - step["start"],
                                "forward": step["forward"], "backward": step["backward"]})
    overflows = sum(1 for a, b in zip([{"num_updates": 0}] + steps, steps)
                    if b["num_updates"] == a["num_updates"])
    out = {}
    for phase, items in rows.items():
        items = items[1:] or items  # the phase's first update pays for warm-up
        if not items:
            raise UserError(f"no {phase} update was timed; raise CHECK_UPDATES")
        out[phase] = {key: statistics.median(item[key] for item in items)
                      for key in ("update", "forward", "backward")}
        out[phase]["ratio"] = out[phase]["update"] / max(
            out[phase]["forward"] + out[phase]["backward"], 1e-9)
        out[phase]["timed"] = len(items)
    out["overflows"] = overflows
    return out


def compare_losses(plain: dict[int, float], fast: dict[int, float], device: str) -> dict:
    common = sorted(set(plain) & set(fast))
    if not common:
        raise UserError("no update's loss was logged by both paths")
    worst = max(abs(plain[u] - fast[u]) / max(abs(plain[u]), abs(fast[u]), 1e-9) for u in common)
    return {"updates": len(common), "max_relative": worst, "tolerance": LOSS_TOLERANCE[device],
            "agree": worst <= LOSS_TOLERANCE[device]
            and set(plain) == set(fast)}


def whole_run(phase: dict, schedule: dict, price: float) -> dict:
    """A run of the recipe's max_update, frozen for its freeze_finetune_updates, and the study."""
    frozen = min(schedule["freeze"], schedule["max_update"])
    trained = schedule["max_update"] - frozen
    seconds = frozen * phase["frozen"]["update"] + trained * phase["trained"]["update"]
    hours = seconds / 3600
    return {"mix": seconds / schedule["max_update"], "hours": hours, "cost": hours * price,
            "study_hours": STUDY_RUNS * hours, "study_cost": STUDY_RUNS * hours * price}


def recipe_schedule(model: str) -> dict:
    from w2v2_10min.finetune import compose

    with warnings.catch_warnings():  # Hydra's on version_base, as finetune.py composes
        warnings.simplefilter("ignore")
        recipe = compose(model, PROTOCOL[model])
    return {"max_update": int(recipe.optimization.max_update),
            "freeze": int(recipe.model.get("freeze_finetune_updates", 0) or 0),
            "max_tokens": int(recipe.dataset.max_tokens)}


def build(run: Path, device: str):
    """The run's model and criterion, built as fairseq builds them from its config.yaml."""
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import logging

    from fairseq import tasks, utils
    from omegaconf import OmegaConf

    # fairseq-hydra-train ran in the repository (`make finetune`): its ${hydra:runtime.cwd}
    cfg = OmegaConf.create((run / "config.yaml").read_text().replace(
        "${hydra:runtime.cwd}", str(REPO)))
    if "seeded_draws" in cfg.task:  # seeded masks need the task's train_step: the same
        cfg.task.seeded_draws = False  # arithmetic from fairseq's own draws here
    logging.disable(logging.INFO)
    try:  # the plugin prints the model it built, torch and fairseq warn: not here
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            utils.import_user_module(cfg.common)
            task = tasks.setup_task(cfg.task)
            model = task.build_model(cfg.model)
            criterion = task.build_criterion(cfg.criterion)
    finally:
        logging.disable(logging.NOTSET)
    model.to(device)
    if device == "cuda":
        model.half()
    encoder = model.w2v_encoder
    encoder.num_updates = 10 ** 9  # the transformer trained: the phase that needs memory
    encoder.w2v_model.encoder.layerdrop = 0.0  # every layer, as an update without drops
    return model, criterion, len(task.target_dictionary)


def fits(model, criterion, vocab: int, max_tokens: int, device: str) -> bool:
    """One forward and backward of a batch of MAX_TOKENS samples (as few utterances of equal
    length, at most 35 s, as make up MAX_TOKENS), with the optimizer's state beside it; False
    on torch.cuda.OutOfMemoryError."""
    import torch

    ok = _probe(model, criterion, vocab, max_tokens, device)
    model.zero_grad(set_to_none=True)
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return ok


def _probe(model, criterion, vocab, max_tokens, device) -> bool:
    import torch

    batch = -(-max_tokens // LONGEST)  # utterances of up to 35 s making MAX_TOKENS in all
    length = max_tokens // batch
    dtype = torch.float16 if device == "cuda" else torch.float32
    params = sum(p.numel() for p in model.parameters())
    letters = max(1, int(length / SAMPLE_RATE * 15))
    try:
        # fairseq's FP16Optimizer: fp32 master weights and gradients, Adam's two moments
        state = torch.empty(4 * params if device == "cuda" else 2 * params,
                            dtype=torch.float32, device=device)
        sample = {"id": torch.arange(batch, device=device),
                  "net_input": {"source": 0.1 * torch.randn(batch, length, device=device,
                                                            dtype=dtype),
                                "padding_mask": None},
                  "target": torch.randint(4, vocab, (batch, letters), device=device),
                  "target_lengths": torch.full((batch,), letters, device=device),
                  "ntokens": batch * letters}
        model.train()
        loss, _, _ = criterion(model, sample)
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        del state, sample, loss
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    except RuntimeError as err:  # cuBLAS and cuDNN say it in their own words
        if any(words in str(err) for words in OUT_OF_MEMORY):
            return False
        raise


def largest(fit, high: int, step: int = STEP, probes: int = MAX_PROBES) -> dict:
    """Largest multiple of STEP up to HIGH for which fit(n) holds (fit: monotone), by a
    bisection of at most PROBES calls; `below` is the smallest that did not fit (None: HIGH
    fitted, or the probes ran out before one failed)."""
    calls = [high]
    if fit(high):
        return {"fits": high, "below": None, "probes": 1, "capped": True}
    low, top = 0, -(-high // step)  # fit(low * step) (0: nothing); not fit(top * step) >= high
    while top - low > 1 and len(calls) < probes:
        middle = (low + top) // 2
        calls.append(middle * step)
        if fit(middle * step):
            low = middle
        else:
            top = middle
    return {"fits": low * step, "below": min(top * step, high), "probes": len(calls),
            "capped": False}


def search(run: Path, device: str, schedule: dict) -> dict:
    """The largest MAX_TOKENS on this card and on a 16 GB one (CUDA only)."""
    import torch

    model, criterion, vocab = build(run, device)
    high = 2 * schedule["max_tokens"]
    out = {"card": largest(lambda n: fits(model, criterion, vocab, n, device), high)}
    total = torch.cuda.get_device_properties(0).total_memory
    out["total_gib"] = total / 2**30
    if total > CARD_GIB * 2**30:
        torch.cuda.set_per_process_memory_fraction(CARD_GIB * 2**30 / total)
        try:
            out["16gb"] = largest(lambda n: fits(model, criterion, vocab, n, device), high)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
    else:
        out["16gb"] = out["card"]
    del model, criterion
    gc.collect()
    torch.cuda.empty_cache()
    return out


def decoding_rtf(run: Path, device: str, repeats: int = 5) -> float:
    """Seconds of forward and argmax per second of audio, 15 s utterances one at a time."""
    import torch

    model, _, _ = build(run, device)
    model.eval()
    dtype = torch.float16 if device == "cuda" else torch.float32
    source = 0.1 * torch.randn(1, int(DECODE_SECONDS * SAMPLE_RATE), device=device, dtype=dtype)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):  # the first: warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(source=source, padding_mask=None)["encoder_out"].argmax(-1).cpu()
            times.append(time.perf_counter() - start)
    del model
    gc.collect()
    return statistics.median(times[1:]) / DECODE_SECONDS


def say(line: str) -> None:
    """Progress, on stderr: the check takes minutes."""
    print(line, file=sys.stderr, flush=True)


def fmt(value: float) -> str:
    return f"{value:.4g}"


def search_lines(memory_search: dict | None, schedule: dict) -> list[str]:
    """What the MAX_TOKENS search found (None: on the CPU, not searched)."""
    lines = []
    if memory_search is None:
        lines.append("largest MAX_TOKENS: not searched on the CPU (memory is the GPU's question; "
                     "run on a GPU)")
    else:
        for key, title in (("card", f"this card ({memory_search['total_gib']:.0f} GiB)"),
                           ("16gb", f"a 16 GB card (allocator capped at {CARD_GIB:g} GiB)")):
            found = memory_search[key]
            how = (f"{found['probes']} forward+backward passes; "
                   + (f"{found['fits']} fits, the recipe's x2 cap" if found["capped"] else
                      f"{found['below']} out of memory"))
            lines.append(f"largest MAX_TOKENS, {title}: {found['fits']} ({how}); the recipe's "
                         f"MAX_TOKENS={schedule['max_tokens']} "
                         f"{'fits' if found['fits'] >= schedule['max_tokens'] else 'does NOT fit'}")
    return lines


def report(args, device: str, name: str, runs: dict, schedule: dict, agreement: dict,
           memory_search: dict | None, rtf: float) -> tuple[list[str], dict]:
    lines = []
    precision = "fp16" if device == "cuda" else "fp32, as fp16 is only on CUDA"
    record = json.loads((runs["0"]["run"] / "run.json").read_text())
    lines.append(f"gpu-check MODEL={args.model} on {name} ({device}; {precision}): the "
                 f"architecture with random weights, a synthetic {args.seconds:g} s split, "
                 f"PROTOCOL={PROTOCOL[args.model]}'s batch on one device (update_freq "
                 f"{record['update_freq']} x MAX_TOKENS {record['max_tokens']}); "
                 f"{args.updates} updates frozen, {args.updates + 1} trained, per path")
    timing = {fast: phases(runs[fast]["profile"], args.updates) for fast in ("0", "1")}
    estimate = {fast: whole_run(timing[fast], schedule, args.price) for fast in ("0", "1")}
    memory_kind = "GPU memory reserved" if device == "cuda" else "CPU memory (RSS)"
    memory_key = "peak_reserved_gib" if device == "cuda" else "peak_rss_gib"
    frozen, trained = schedule["freeze"], schedule["max_update"] - min(schedule["freeze"],
                                                                        schedule["max_update"])
    rows = []
    for phase in ("frozen", "trained"):
        rows += [(f"s/update, {phase}", lambda f, p=phase: timing[f][p]["update"]),
                 (f"forward s/update, {phase}", lambda f, p=phase: timing[f][p]["forward"]),
                 (f"backward s/update, {phase}", lambda f, p=phase: timing[f][p]["backward"]),
                 (f"update / (forward + backward), {phase}",
                  lambda f, p=phase: timing[f][p]["ratio"])]
    rows += [(f"peak {memory_kind}, GiB",
              lambda f: runs[f]["memory"].get(memory_key, float("nan"))),
             (f"s/update, whole run ({frozen} frozen + {trained} trained)",
              lambda f: estimate[f]["mix"]),
             (f"hours, one {schedule['max_update']}-update run",
              lambda f: estimate[f]["hours"]),
             (f"cost, one run at PRICE={args.price:g}/h", lambda f: estimate[f]["cost"]),
             (f"hours, the {STUDY_RUNS}-run study", lambda f: estimate[f]["study_hours"]),
             (f"cost, the {STUDY_RUNS}-run study at PRICE={args.price:g}/h",
              lambda f: estimate[f]["study_cost"])]
    width = max(len(label) for label, _ in rows)
    lines.append(f"{'':<{width}}  {'FAST=0':>10}  {'FAST=1':>10}")
    for label, value in rows:
        lines.append(f"{label:<{width}}  {fmt(value('0')):>10}  {fmt(value('1')):>10}")
    lines.append(f"hours = s/update, whole run x {schedule['max_update']} / 3600 (validations "
                 "and checkpoint writes not included); study = 36 runs (6 splits x 3 seeds x "
                 "2 protocols)")
    overflows = {f: timing[f]["overflows"] for f in ("0", "1")}
    if any(overflows.values()):
        lines.append(f"fp16 steps skipped for gradient overflow (the loss scaler's start): "
                     f"FAST=0 {overflows['0']}, FAST=1 {overflows['1']}")
    lines.append(f"losses: {'agree' if agreement['agree'] else 'DIFFER'} over "
                 f"{agreement['updates']} updates, largest relative difference "
                 f"{agreement['max_relative']:.2g} (tolerance {agreement['tolerance']:g}, {precision})")
    lines += search_lines(memory_search, schedule)
    lines.append(f"decoding real-time factor: {rtf:.4g} (forward and argmax, {DECODE_SECONDS:g} s "
                 f"utterances one at a time; {1 / rtf:.0f}x faster than real time)")
    return lines, {"timing": timing, "estimate": estimate, "losses": agreement,
                   "memory": {f: runs[f]["memory"] for f in runs}, "search": memory_search,
                   "rtf": rtf, "schedule": schedule}


def main(argv=None) -> int:
    args = parse(argv)
    device = pick_device(args.device)
    import torch

    work = args.work.resolve()
    schedule = recipe_schedule(args.model)
    say(f"gpu-check: the synthetic split and MODEL={args.model}'s random weights, in {work}")
    make_vars = prepare(args, work, device)
    runs = {}
    for fast in ("0", "1"):
        say(f"gpu-check: make finetune FAST={fast}, {2 * args.updates + 1} updates")
        runs[fast] = finetune(args, work, device, make_vars, fast)
    # only now: naming the GPU starts CUDA here, whose context the runs would have lost
    name = torch.cuda.get_device_name(0) if device == "cuda" else "the CPU"
    agreement = compare_losses(runs["0"]["losses"], runs["1"]["losses"], device)
    memory_search = None
    if device == "cuda":
        say("gpu-check: the largest MAX_TOKENS, this card and a 16 GB card")
        memory_search = search(runs["0"]["run"], device, schedule)
    say("gpu-check: decoding speed")
    rtf = decoding_rtf(runs["0"]["run"], device)
    lines, results = report(args, device, name, runs, schedule, agreement, memory_search, rtf)
    print("\n".join(lines))
    (work / f"gpu-check-{args.model}-{device}.json").write_text(json.dumps(
        {"model": args.model, "device": device, "name": name, "price": args.price,
         "updates": args.updates, "seconds": args.seconds, **results,
         "losses_by_update": {f: runs[f]["losses"] for f in runs}}, indent=2, default=str))
    if not agreement["agree"]:
        raise UserError(f"FAST=0 and FAST=1 losses differ by {agreement['max_relative']:.2g} "
                        f"(relative), more than {agreement['tolerance']:g}")
    return 0
