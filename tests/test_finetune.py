"""make finetune: recipes composed value by value, batch arithmetic, normalize, resume, sweep."""
import json
import os
import signal
import subprocess
import time

import pytest
import torch
import yaml

from conftest import REPO, make, run_script
from w2v2_10min.common import UserError
from w2v2_10min.finetune import fit_batch

SEC = 16000


def knobs(env, **extra):
    values = {"PRETRAINED_DIR": env / "pretrained", "MANIFEST_ROOT": env / "manifests",
              "RUN_ROOT": env / "runs", **extra}
    return [f"{k}={v}" for k, v in values.items()]


@pytest.fixture(scope="module")
def fake_released(tiny_env):
    """The tiny model saved under the released names, with normalize as each one was trained.

    Only for composing configs: fine-tuning them would need the real architectures.
    """
    folder = tiny_env / "fake-pretrained"
    folder.mkdir(exist_ok=True)
    state = torch.load(tiny_env / "pretrained/tiny.pt", weights_only=False)
    for name, normalize in [("wav2vec_small.pt", False), ("libri960_big.pt", True),
                            ("wav2vec_vox_new.pt", True), ("tiny.pt", False)]:
        state["cfg"]["task"]["normalize"] = normalize
        torch.save(state, folder / name)
        run_script("checkpoints.py", "--record", folder / name)
    return folder


def composed(env, folder, model, protocol, **extra):
    """The recipe as fairseq runs it (FAST=0: test_fast.py checks what FAST=1 changes)."""
    proc = make("finetune", *knobs(env, PRETRAINED_DIR=folder, MODEL=model, PROTOCOL=protocol,
                                   CFG=1, **{"FAST": 0, **extra}))
    return yaml.safe_load(proc.stdout), proc.stderr


# The reference facts (shared/reference/wav2vec2-10min.md): fairseq's base_10m.yaml and
# vox_10m.yaml, and the paper's Table 6 / appendix B.
FAIRSEQ_COMMON = {"mask_prob": 0.65, "mask_channel_prob": 0.25, "mask_channel_length": 64,
                  "layerdrop": 0.1, "activation_dropout": 0.1, "feature_grad_mult": 0.0,
                  "freeze_finetune_updates": 10000, "max_update": 13000}
FAIRSEQ_SIZE = {"base": (3_200_000, 8, 5e-5, False), "large": (1_280_000, 20, 1e-4, True),
                "vox": (1_280_000, 20, 1e-4, True)}
PAPER_COMMON = {"mask_prob": 0.75, "mask_length": 10, "mask_channel_prob": 0.512,
                "mask_channel_length": 64, "freeze_finetune_updates": 10000,
                "feature_grad_mult": 0.0, "max_update": 12000}
PAPER_SIZE = {"base": (3_200_000, 8, 0.05), "large": (1_280_000, 24, 0.1),
              "vox": (1_280_000, 24, 0.1)}


@pytest.mark.parametrize("model", ["base", "large", "vox"])
def test_fairseq_protocol_reproduces_the_released_configs(tiny_env, fake_released, model):
    cfg, stderr = composed(tiny_env, fake_released, model, "fairseq", GPUS=1)
    tokens, gpu_equivalents, lr, normalize = FAIRSEQ_SIZE[model]
    values = {**cfg["model"], "max_update": cfg["optimization"]["max_update"]}
    assert {k: values[k] for k in FAIRSEQ_COMMON} == FAIRSEQ_COMMON
    assert cfg["optimization"]["lr"] == [lr] and cfg["task"]["normalize"] is normalize
    assert cfg["common"]["fp16"] is True and cfg["task"]["labels"] == "ltr"
    assert cfg["optimization"]["sentence_avg"] is True
    assert cfg["optimizer"]["adam_betas"] == "(0.9,0.98)" and cfg["optimizer"]["adam_eps"] == 1e-8
    assert cfg["lr_scheduler"]["phase_ratio"] == [0.1, 0.4, 0.5]
    assert cfg["lr_scheduler"]["final_lr_scale"] == 0.05
    assert cfg["criterion"] == {**cfg["criterion"], "_name": "ctc", "zero_infinity": True}
    assert cfg["dataset"]["valid_subset"] == "dev_other"
    assert cfg["dataset"]["validate_after_updates"] == 10000
    assert cfg["checkpoint"]["best_checkpoint_metric"] == "wer"
    assert cfg["checkpoint"]["save_interval_updates"] == 50
    assert cfg["distributed_training"]["ddp_backend"] == "legacy_ddp"
    # one GPU: the recipe's GPU-equivalents come back as update_freq
    assert cfg["distributed_training"]["distributed_world_size"] == 1
    assert cfg["optimization"]["update_freq"] == [gpu_equivalents]
    assert cfg["dataset"]["max_tokens"] == tokens
    assert f"= {gpu_equivalents * tokens / SEC:,.0f} s of audio per update" in stderr


@pytest.mark.parametrize("model", ["base", "large", "vox"])
def test_paper_protocol_follows_table_6(tiny_env, fake_released, model):
    cfg, _ = composed(tiny_env, fake_released, model, "paper", GPUS=1)
    tokens, gpus, layerdrop = PAPER_SIZE[model]
    values = {**cfg["model"], "max_update": cfg["optimization"]["max_update"]}
    assert {k: values[k] for k in PAPER_COMMON} == PAPER_COMMON
    assert cfg["model"]["layerdrop"] == layerdrop
    assert cfg["optimization"]["lr"] == [2e-5]
    assert cfg["optimization"]["update_freq"] == [gpus] and cfg["dataset"]["max_tokens"] == tokens
    assert cfg["task"]["normalize"] is (model != "base")
    assert cfg["lr_scheduler"]["_name"] == "tri_stage_linear"  # "linearly decayed"
    assert cfg["common"]["user_dir"].endswith("/w2v2_plugin")  # which registers it


@pytest.mark.parametrize("protocol,lr_decay,scheduler,folder", [
    ("paper", "", "tri_stage_linear", "base-paper"),
    ("paper", "exponential", "tri_stage", "base-paper-exponential"),
    ("fairseq", "", "tri_stage", "base-fairseq"),
    ("fairseq", "linear", "tri_stage_linear", "base-fairseq-linear")])
def test_lr_decay_picks_the_schedule_and_keeps_runs_apart(tiny_env, fake_released, protocol,
                                                          lr_decay, scheduler, folder):
    cfg, _ = composed(tiny_env, fake_released, "base", protocol, LR_DECAY=lr_decay)
    assert cfg["lr_scheduler"]["_name"] == scheduler
    assert cfg["checkpoint"]["save_dir"] == str(tiny_env / "runs" / folder /
                                                "10min-0/seed-1/checkpoints")


def test_unknown_lr_decay_is_refused(tiny_env, fake_released):
    proc = make("finetune", *knobs(tiny_env, PRETRAINED_DIR=fake_released, LR_DECAY="cosine",
                                   CFG=1), check=False)
    assert proc.returncode != 0
    assert "LR_DECAY=cosine: LR_DECAY accepts linear or exponential" in proc.stderr


def test_knobs_reach_the_config(tiny_env, fake_released):
    cfg, stderr = composed(tiny_env, fake_released, "large", "fairseq", GPUS=2,
                           MAX_TOKENS=600000, LR="3e-5", FP16="false",
                           ARGS="model.mask_prob=0.5")
    assert cfg["distributed_training"]["distributed_world_size"] == 2
    uf, tokens = cfg["optimization"]["update_freq"][0], cfg["dataset"]["max_tokens"]
    assert (uf, tokens) == (22, 581818)
    assert cfg["optimization"]["lr"] == [3e-5] and cfg["common"]["fp16"] is False
    assert cfg["model"]["mask_prob"] == 0.5
    assert "here 2 GPU(s) x update_freq 22 x max_tokens 581,818" in stderr


@pytest.mark.parametrize("model,protocol,extra", [
    ("tiny", "tiny", []),  # FAST=1: its overrides come last
    ("base", "fairseq", ["--fast", "0", "--lr-decay", "linear", "--lr", "3e-5"]),
    ("large", "paper", ["--gpus", "2", "--args", "model.mask_prob=0.5 +model.new_key=1"]),
    ("vox", "fairseq", ["--fast", "0", "--seeded", "0", "--args", "plugin=none"])])
def test_the_config_is_composed_as_fairseq_hydra_train_composes_it(tiny_env, fake_released,
                                                                    tmp_path, model, protocol,
                                                                    extra):
    """RUN/config.yaml, composed in make finetune's own process, is what `fairseq-hydra-train
    ... --cfg job` prints for the same command line, byte for byte."""
    from w2v2_10min import finetune

    name = {"base": "wav2vec_small.pt", "large": "libri960_big.pt", "vox": "wav2vec_vox_new.pt",
            "tiny": "tiny.pt"}[model]
    args = finetune.parse(["--model", model, "--protocol", protocol, "--split", "0",
                           "--seed", "1", "--manifests", str(tiny_env / "manifests/10min-0"),
                           "--pretrained", str(fake_released / name), *extra])
    run = tmp_path / "run"
    overrides, _ = finetune.plan(args)
    composed_here = finetune.compose_config(args, run, overrides)
    fast, _ = finetune.fast_overrides(yaml.safe_load(composed_here))
    assert bool(fast) is (args.fast == "1")
    for last in ([], fast) if fast else ([],):
        printed = subprocess.run(
            finetune.fairseq_command(args, run, overrides, last=last) + ["--cfg", "job"],
            cwd=REPO, capture_output=True, text=True, env=finetune.environment(args, run))
        assert printed.returncode == 0, printed.stderr[-2000:]
        assert finetune.compose_config(args, run, overrides, last=last) == printed.stdout


@pytest.mark.parametrize("extra,said", [
    ("model.no_such_key=3", "(Could not override 'model.no_such_key'. To append to your config "
                            "use +model.no_such_key=3); check ARGS and the recipe"),
    ("optimization.lr=[3e-5", "(no viable alternative at input '[3e-5'); check ARGS"),
    ("protocol=nope", "(In '10min': Could not find 'protocol/nope'); check ARGS")])
def test_args_fairseq_cannot_compose_stop_with_one_line(tiny_env, tmp_path, extra, said):
    proc = make("finetune", *knobs(tiny_env, RUN_ROOT=tmp_path), "MODEL=tiny", "PROTOCOL=tiny",
                f"ARGS={extra}", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [errors[0]] and errors[0].startswith(
        "error: fairseq could not compose the config " + said)
    assert not list(tmp_path.rglob("config.yaml")) and not list(tmp_path.rglob("run.json"))


@pytest.mark.parametrize("gpu_eq_ws,uf,tokens,gpus,limit,expect_uf", [
    (2, 4, 3_200_000, 1, None, 8), (2, 4, 3_200_000, 2, None, 4), (2, 4, 3_200_000, 8, None, 1),
    (2, 4, 3_200_000, 1, 1_600_000, 16), (4, 5, 1_280_000, 1, 1_000_000, 26),
    (24, 1, 1_280_000, 1, 640_000, 48), (4, 5, 1_280_000, 3, None, 7)])
def test_update_freq_keeps_the_effective_batch(gpu_eq_ws, uf, tokens, gpus, limit, expect_uf):
    batch = fit_batch(gpu_eq_ws, uf, tokens, gpus, limit)
    assert batch["update_freq"] == expect_uf
    assert batch["max_tokens"] <= (limit or tokens)
    total = gpu_eq_ws * uf * tokens
    assert total - gpus * expect_uf <= gpus * expect_uf * batch["max_tokens"] <= total


def test_normalize_mismatch_is_an_error(tiny_env, fake_released, tmp_path):
    for name in ("wav2vec_vox_new.pt", "wav2vec_vox_new.pt.sha256"):
        # BASE's checkpoint (normalize false) under LV-60k's name (whose recipe says true)
        (tmp_path / name).symlink_to(fake_released / name.replace("vox_new", "small"))
    proc = make("finetune", *knobs(tiny_env, PRETRAINED_DIR=tmp_path, MODEL="vox", CFG=1),
                check=False)
    assert proc.returncode != 0
    assert "pre-trained with normalize=False but recipes/finetune/pretrained/vox.yaml says " \
           "True" in proc.stderr


def test_checkpoint_without_recorded_sha256_is_not_unpickled(tiny_env, fake_released, tmp_path):
    (tmp_path / "wav2vec_small.pt").write_bytes((fake_released / "wav2vec_small.pt").read_bytes())
    proc = make("finetune", *knobs(tiny_env, PRETRAINED_DIR=tmp_path, CFG=1), check=False)
    assert proc.returncode != 0 and "no recorded SHA-256" in proc.stderr
    (tmp_path / "wav2vec_small.pt.sha256").write_text("0" * 64 + "  wav2vec_small.pt\n")
    proc = make("finetune", *knobs(tiny_env, PRETRAINED_DIR=tmp_path, CFG=1), check=False)
    assert proc.returncode != 0 and "differs from the recorded" in proc.stderr


def test_a_finished_run_is_not_made_to_read_its_pretrained_file_again(tmp_path, monkeypatch):
    """Rerunning a finished sweep reads no pre-trained file (1.2 GB a run for LARGE): RUN/done
    and run.json say all there is to say. Training itself is left out (train() only marks the
    run done), so this composes configs and nothing more."""
    from w2v2_10min import finetune

    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    for name in ("tiny.pt", "tiny.pt.sha256"):
        (pretrained / name).write_bytes((REPO / "tiny/pretrained" / name).read_bytes())
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "train.tsv").write_text("/audio\na.flac\t160000\n")
    argv = ["--model", "tiny", "--protocol", "tiny", "--split", "0", "--seed", "1", "--manifests",
            str(manifests), "--pretrained-dir", str(pretrained), "--run-root",
            str(tmp_path / "runs"), "--wandb-project", "", "--fast", "0"]
    monkeypatch.setattr(finetune, "train", lambda args, run, *_: (run / "done").touch())
    assert finetune.main(argv) == 0
    run = run_dir(tmp_path)
    assert (run / "done").exists()
    assert json.loads((run / "run.json").read_text())["pretrained_sha256"]

    (pretrained / "tiny.pt").unlink()
    def no_reading(path, *_):
        raise AssertionError(f"{path} read for a finished run")
    monkeypatch.setattr(finetune, "verify_checkpoint", no_reading)
    monkeypatch.setattr(finetune, "pretrained_normalize", no_reading)
    monkeypatch.setattr(finetune, "train", no_reading)
    config = (run / "config.yaml").read_text()
    assert finetune.main(argv) == 0
    assert (run / "config.yaml").read_text() == config
    # other settings are still refused, still without the file
    with pytest.raises(UserError, match="was made with other settings"):
        finetune.main([*argv, "--args", "optimization.max_update=7"])


def test_unknown_combination_lists_the_recipes(tiny_env, fake_released):
    proc = make("finetune", *knobs(tiny_env, PRETRAINED_DIR=fake_released, MODEL="tiny",
                                   PROTOCOL="paper", CFG=1), check=False)
    assert proc.returncode != 0 and "no recipe for MODEL=tiny PROTOCOL=paper" in proc.stderr


def run_dir(env, root="runs", seed=1):
    return env / root / "tiny-tiny" / "10min-0" / f"seed-{seed}"


def test_resume_after_kill_continues_from_the_last_checkpoint(tiny_env):
    # the tiny recipe offers a save every 100 updates (a few seconds): a budget of 0.6 s takes
    # them, so the checkpoint written on the budget is what the run resumes from
    args = ["make", "--no-print-directory", "finetune", "MODEL=tiny", "PROTOCOL=tiny",
            "CHECKPOINT_MINUTES=0.01", "WANDB_PROJECT=w2v2-10min",  # the default, named
            *knobs(tiny_env, RUN_ROOT=tiny_env / "resume")]
    run = run_dir(tiny_env, "resume")
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while not (run / "checkpoints" / "checkpoint_last.pt").exists():
        assert time.time() < deadline and proc.poll() is None, "no checkpoint was saved"
        time.sleep(0.5)
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "done").exists()
    saved = torch.load(run / "checkpoints/checkpoint_last.pt", weights_only=False)
    updates_at_kill = saved["optimizer_history"][-1]["num_updates"]
    assert 0 < updates_at_kill < 600
    make(*args[2:])
    log = sorted((run / "logs").glob("finetune-*.log"))[-1].read_text()
    assert f"@ {updates_at_kill} updates" in log  # fairseq: "Loaded checkpoint ... (epoch N @ M updates)"
    assert (run / "done").exists()
    final = torch.load(run / "checkpoints/checkpoint_last.pt", weights_only=False)
    assert final["optimizer_history"][-1]["num_updates"] == 600
    record = json.loads((run / "run.json").read_text())
    assert record["seed"] == "1" and record["pretrained_sha256"] and record["commit"]
    assert record["versions"]["fairseq"] == "0.12.3"
    assert (run / "config.yaml").is_file() and list((run / "tensorboard").iterdir())
    # wandb (on by default, offline): one run, logged by both processes under the run's own id
    wandb_runs = sorted((run / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 2
    assert {path.name.rsplit("-", 1)[1] for path in wandb_runs} == \
        {(run / "wandb-id").read_text().strip()}


def test_changed_settings_do_not_reuse_a_run(tiny_env):
    make("finetune", "MODEL=tiny", "PROTOCOL=tiny", *knobs(tiny_env, RUN_ROOT=tiny_env / "settings"),
         "ARGS=optimization.max_update=10", "WANDB_PROJECT=w2v2-10min")
    proc = make("finetune", "MODEL=tiny", "PROTOCOL=tiny",
                *knobs(tiny_env, RUN_ROOT=tiny_env / "settings"), "ARGS=optimization.max_update=20",
                check=False)
    assert proc.returncode != 0 and "was made with other settings" in proc.stderr
    # when checkpoints are written, or where wandb logs, is not a training setting: the run is
    # the same run
    same = make("finetune", "MODEL=tiny", "PROTOCOL=tiny", "CHECKPOINT_MINUTES=3",
                "WANDB_PROJECT=",
                *knobs(tiny_env, RUN_ROOT=tiny_env / "settings"), "ARGS=optimization.max_update=10")
    assert "is finished" in same.stdout


def test_sweep_through_submitit_local_launcher(tiny_env):
    make("sweep", "MODEL=tiny", "PROTOCOL=tiny", "SPLITS=0", "SEEDS=1 2",
         "LAUNCHER=submitit_local", "EVAL_SETS=dev-other", "ARGS=optimization.max_update=20",
         *knobs(tiny_env, RUN_ROOT=tiny_env / "sweep"))
    for seed in (1, 2):
        run = run_dir(tiny_env, "sweep", seed)
        assert (run / "done").exists() and list((run / "hydra/.submitit").glob("*/*_log.out"))
        record = json.loads((run / "decode/dev_other/wer.json").read_text())
        assert record["seed"] == str(seed) and record["utterances"] == 4
        saved = torch.load(run / "checkpoints/checkpoint_last.pt", weights_only=False)
        assert saved["optimizer_history"][-1]["num_updates"] == 20


@pytest.mark.parametrize("knob,value,accepts", [
    ("LR", "abc", "LR accepts a learning rate > 0"), ("LR", "-1", "LR accepts a learning rate > 0"),
    ("SEED", "x", "SEED accepts a whole number >= 0"), ("GPUS", "x", "GPUS accepts a whole number >= 0"),
    ("MAX_TOKENS", "1.5", "MAX_TOKENS accepts a whole number"), ("FP16", "yes", "FP16 accepts true or false"),
    ("SPLIT", "7", "SPLIT accepts a fold 0..5 or sSEED"), ("LAUNCHER", "pbs", "LAUNCHER accepts local"),
    ("SEEDED", "yes", "SEEDED accepts 1 (masks and LayerDrop drawn from SEED"),
])
def test_bad_knob_values_stop_before_anything_runs(tmp_path, knob, value, accepts):
    proc = make("finetune", f"{knob}={value}", f"MANIFEST_ROOT={tmp_path}", f"RUN_ROOT={tmp_path}",
                check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and errors[0].startswith(f"error: {knob}={value}: ")
    assert accepts in errors[0]
    assert list(tmp_path.iterdir()) == []  # nothing composed, nothing written


def test_a_finished_run_prints_timestamped_stage_lines(tiny_env):
    """One start and one end line, with the time, in the terminal and in the run's log."""
    proc = make("finetune", "MODEL=tiny", "PROTOCOL=tiny",
                *knobs(tiny_env, RUN_ROOT=tiny_env / "stage-lines"), "ARGS=optimization.max_update=2")
    lines = [line for line in proc.stderr.splitlines() if "] finetune: " in line]
    assert len(lines) == 2 and lines[0].split("] finetune: ")[1].startswith("start (")
    assert lines[1].split("] finetune: ")[1].startswith("done in ")
    assert all(line[0] == "[" and line[5] == "-" and line[14] == ":" for line in lines)
    log = sorted((run_dir(tiny_env, "stage-lines") / "logs").glob("finetune-*.log"))[-1]
    assert [l for l in log.read_text().splitlines() if "] finetune: " in l] == lines


def test_finetunes_from_an_argparse_era_pretrained_checkpoint(tiny_env, tmp_path):
    """wav2vec_small.pt and libri960_big.pt hold fairseq <= 0.10's `args`, not `cfg`: the
    stand-in is tiny.pt rewritten by tests/make_legacy_checkpoints.py."""
    legacy = tmp_path / "legacy"
    run_script("tests/make_legacy_checkpoints.py", "--pretrained", tiny_env / "pretrained/tiny.pt",
               "--out", legacy)
    state = torch.load(legacy / "argparse_pretrained.pt", weights_only=False)
    assert "cfg" not in state and state["args"].normalize is False
    folder = tmp_path / "pretrained"
    folder.mkdir()
    (folder / "tiny.pt").write_bytes((legacy / "argparse_pretrained.pt").read_bytes())
    run_script("checkpoints.py", "--record", folder / "tiny.pt")
    make("finetune", "MODEL=tiny", "PROTOCOL=tiny",
         *knobs(tiny_env, PRETRAINED_DIR=folder, RUN_ROOT=tmp_path / "runs"),
         "ARGS=optimization.max_update=3")
    run = tmp_path / "runs" / "tiny-tiny" / "10min-0" / "seed-1"
    assert json.loads((run / "run.json").read_text())["normalize"] is False
    tuned = torch.load(run / "checkpoints" / "checkpoint_last.pt", weights_only=False)["model"]
    # feature_grad_mult 0: the CNN is not trained, so it is the pre-trained file's, as it was
    cnn = [k for k in state["model"] if k.startswith("feature_extractor.")]
    assert cnn and all(torch.equal(state["model"][k], tuned[f"w2v_encoder.w2v_model.{k}"])
                       for k in cnn)
    # normalize comes from args.normalize: the tiny recipe (normalize false) refuses true
    state["args"].normalize = True
    torch.save(state, folder / "tiny.pt")
    run_script("checkpoints.py", "--record", folder / "tiny.pt")
    proc = make("finetune", "MODEL=tiny", "PROTOCOL=tiny", "CFG=1",
                *knobs(tiny_env, PRETRAINED_DIR=folder), check=False)
    assert proc.returncode != 0 and "pre-trained with normalize=True" in proc.stderr
