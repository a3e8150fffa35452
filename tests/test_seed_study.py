"""The seed's own study (issue 36): PROTOCOL=seed (the seed's transformers recipe, from
fauxneticien/w2v2-10min-replication f234a66), its one-line refusals, and the departure ladder
(`make ladder`, w2v2_10min/ladder.py), each rung a run that `make compare` lists in order."""
import json
import re

import numpy as np
import pytest
from conftest import make, squeeze

from w2v2_10min import ladder, layout

SEED_KNOBS = ["MODEL=tiny", "PROTOCOL=seed", "TRAINER=transformers", "SEED=1", "GPUS=0"]


def knobs(tiny_env, root) -> list[str]:
    return [*SEED_KNOBS, f"PRETRAINED_DIR={tiny_env / 'pretrained'}",
            f"MANIFEST_ROOT={tiny_env / 'manifests'}", f"RUN_ROOT={root}", "EVAL_SETS=dev-other"]


def one_error(proc) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr, \
        proc.stderr
    return errors[0]


# ---- unit: the seed's mechanics, each against its source ------------------------------------

def test_the_seeds_schedule_is_its_lambda_lr():
    """tri_stage_linear with the seed's settings (init and final scale 0, explicit phases of
    a 12,000-step schedule) gives, at every update, the rate of the seed's own LambdaLR
    (train.py:230-245 get_flat_linear_schedule_with_warmup, written out here from its source)."""
    from omegaconf import OmegaConf

    from fairseq import utils
    from w2v2_10min.trainers.transformers_trainer import fairseq_rate

    utils.import_user_module(OmegaConf.create({"user_dir": "w2v2_plugin"}))
    total, peak = 12000, 1e-4
    cfg = OmegaConf.create({"optimization": {"lr": [peak], "max_update": 2000},
                            "lr_scheduler": {"_name": "tri_stage_linear", "phase_ratio": None,
                                             "warmup_steps": 1200, "hold_steps": 4800,
                                             "decay_steps": 6000, "init_lr_scale": 0.0,
                                             "final_lr_scale": 0.0, "lr": [peak],
                                             "max_update": 2000}})
    rate = fairseq_rate(cfg)

    def seed_lambda(step):  # the seed's lr_lambda, on lr_warmup_pc 0.1, lr_const_pc 0.4
        constant, warmup = int(total * 0.4), int(total * 0.1)
        if step < warmup:
            return step / max(1, warmup)
        if step < warmup + constant:
            return 1
        return max(0.0, (total - step) / max(1, total - (warmup + constant)))

    for step in [*range(0, 1300), *range(5990, 6010), *range(11990, 12100)]:
        assert rate(step) == pytest.approx(peak * seed_lambda(step), abs=1e-12), step


def test_the_seeds_normalisation_is_transformers_feature_extractor():
    """Each utterance of a padded batch normalised as Wav2Vec2FeatureExtractor(do_normalize=
    True, return_attention_mask=True) normalises it (the seed's config.yaml:79), padding 0."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    from w2v2_10min.trainers.transformers_trainer import transformers_normalized

    rng = np.random.default_rng(0)
    waves = [rng.normal(0.01, 0.05, n).astype(np.float32) for n in (16000, 9000, 400)]
    ours_in = torch.zeros(3, 16000)
    mask = torch.zeros(3, 16000, dtype=torch.long)
    for row, wave in enumerate(waves):
        ours_in[row, :len(wave)], mask[row, :len(wave)] = torch.from_numpy(wave), 1
    theirs = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)(
        waves, sampling_rate=16000, padding=True, return_tensors="pt")
    assert torch.equal(theirs["attention_mask"].long(), mask)
    ours = transformers_normalized(ours_in, mask)
    assert torch.allclose(ours, theirs["input_values"], atol=2e-6)
    assert float(ours[2, 400:].abs().max()) == 0.0


def test_without_a_gpu_8bit_adam_and_fp16_are_refused_naming_the_fallback():
    from w2v2_10min.trainers.transformers_trainer import device_refusals

    said = device_refusals({"optimizer._name": "adamw_bnb_8bit", "common.fp16": True,
                            "common.cpu": True})
    assert len(said) == 2
    assert "optimizer._name=adamw_bnb_8bit" in said[1] and "OPTIM=adamw" in said[1]
    assert "common.fp16=True" in said[0] and "FP16=false" in said[0]
    assert device_refusals({"optimizer._name": "adamw", "common.fp16": False}) == []


def test_a_rung_takes_the_papers_values_for_its_departures_and_all_below():
    seed = {"task": {"input_normalization": "transformers", "normalize": False},
            "optimization": {"max_update": 2000, "clip_norm": 1.0, "lr": [1e-4]},
            "model": {"freeze_finetune_updates": 0, "mask_prob": 0.075, "mask_draws":
                      "transformers", "dropout": 0.1, "layerdrop": 0.1},
            "lr_scheduler": {"_name": "tri_stage_linear", "warmup_steps": 1200},
            "optimizer": {"_name": "adamw", "adam_betas": "(0.9,0.999)", "weight_decay": 0.0},
            "criterion": {"loss_divisor": "accumulation", "zero_infinity": False}}
    paper = {"task": {"normalize": False},
             "optimization": {"max_update": 12000, "clip_norm": 0.0, "lr": [2e-5]},
             "model": {"freeze_finetune_updates": 10000, "mask_prob": 0.75, "layerdrop": 0.1},
             "lr_scheduler": {"_name": "tri_stage_linear", "phase_ratio": [0.1, 0.4, 0.5]},
             "optimizer": {"_name": "adam", "adam_betas": "(0.9,0.98)"},
             "criterion": {"zero_infinity": True}}
    assert ladder.climb(seed, paper, "") == seed
    freeze = ladder.climb(seed, paper, "freeze")
    assert freeze["task"]["input_normalization"] == "fairseq"  # fairseq's way: the paper's
    assert freeze["optimization"]["max_update"] == 12000
    assert freeze["model"]["freeze_finetune_updates"] == 10000
    assert freeze["model"]["mask_prob"] == 0.075 and freeze["lr_scheduler"] == \
        seed["lr_scheduler"]
    top = ladder.climb(seed, paper, "optimizer")
    assert top["model"]["mask_draws"] == "fairseq" and "dropout" not in top["model"]
    assert top["lr_scheduler"] == paper["lr_scheduler"]
    assert top["optimizer"] == paper["optimizer"] and top["optimization"]["clip_norm"] == 0.0
    assert top["criterion"] == {"loss_divisor": "update", "zero_infinity": True}
    assert top["optimization"]["lr"] == [1e-4]  # not a departure the ladder returns
    assert seed["model"]["dropout"] == 0.1  # the seed's config is not changed


def test_a_sweep_takes_pool_samples_beside_folds_and_9h_samples():
    from w2v2_10min.knobs import check

    assert check("SPLITS", "0 s3 c100s42 c100s7n96") == "0 s3 c100s42 c100s7n96"


def test_the_report_lists_the_ladder_in_climbing_order():
    labels = ["seed+optimizer-adamw-transformers", "seed-adamw-transformers", "paper",
              "seed+masks-adamw-transformers", "seed+norm-adamw-transformers"]
    assert sorted(labels, key=layout.label_order) == [
        "paper", "seed-adamw-transformers", "seed+norm-adamw-transformers",
        "seed+masks-adamw-transformers", "seed+optimizer-adamw-transformers"]
    run = layout.RunId("tiny", "seed", "c100s42", "1", trainer="transformers", rung="masks",
                       optim="adamw")
    assert run.name == "tiny-seed+masks-adamw-transformers"
    assert layout.RunId.of({**run.record()}) == run
    old = {k: v for k, v in run.record().items() if k not in ("rung", "optim")}
    assert layout.RunId.of(old).rung == "" and layout.RunId.of(old).optim == ""


# ---- chain: make finetune PROTOCOL=seed, refusals, make ladder -------------------------------

def test_the_seed_protocol_and_a_rung_compose_as_the_recipes_say(tiny_env, tmp_path):
    """PROTOCOL=seed is the seed's values; RUNG=schedule has the tiny protocol's (the paper's
    for the tiny model) for every departure up to the schedule, the seed's above it."""
    from omegaconf import OmegaConf

    def composed(*extra):
        text = make("finetune", *knobs(tiny_env, tmp_path), "CFG=1", *extra).stdout
        return OmegaConf.to_container(OmegaConf.create(text))

    seed, rung = composed("OPTIM=adamw"), composed("OPTIM=adamw", "RUNG=schedule")
    paper = composed("PROTOCOL=tiny")
    assert seed["model"]["mask_prob"] == 0.075 and seed["model"]["mask_draws"] == "transformers"
    assert seed["optimizer"]["_name"] == "adamw" and seed["optimization"]["clip_norm"] == 1.0
    assert seed["task"]["input_normalization"] == "transformers"
    assert composed()["optimizer"]["_name"] == "adamw_bnb_8bit"  # the seed's own
    for name in ladder.rungs_up_to("schedule"):
        for key in ladder.DEPARTURES[name]:
            group, _, field = key.partition(".")
            want = paper[group] if not field else paper[group].get(
                field, ladder.TRAINER_DEFAULTS.get(key))
            got = rung[group] if not field else rung[group].get(
                field, ladder.TRAINER_DEFAULTS.get(key))
            assert got == want, key
    for key in ladder.DEPARTURES["optimizer"]:
        group, _, field = key.partition(".")
        assert (rung[group] if not field else rung[group][field]) == \
            (seed[group] if not field else seed[group][field]), key


@pytest.mark.parametrize("extra, says", [
    (["TRAINER=fairseq"], ["TRAINER=fairseq cannot honour", "task.input_normalization="
                           "transformers", "add TRAINER=transformers"]),
    ([], ["optimizer._name=adamw_bnb_8bit", "OPTIM=adamw"]),
    (["OPTIM=adamw", "FP16=true"], ["common.fp16=True", "FP16=false"]),
    (["PROTOCOL=tiny", "RUNG=masks"], ["RUNG=masks", "PROTOCOL=seed"]),
    (["OPTIM=adamw", "RUNG=everything"], ["RUNG=everything: RUNG accepts"]),
    (["TRAINER=fairseq", "PROTOCOL=tiny", "OPTIM=adamw"], ["OPTIM=adamw", "TRAINER=transformers"]),
    (["OPTIM=adamw", "ARGS=dataset.valid_subset=test_noisy"],
     ["dataset.valid_subset=test_noisy", "test_noisy.tsv not found", "EVAL_SETS"]),
])
def test_what_the_seed_study_cannot_do_here_is_one_line_before_anything_is_written(
        tiny_env, tmp_path, extra, says):
    line = one_error(make("finetune", *knobs(tiny_env, tmp_path), *extra, check=False))
    for text in says:
        assert text in line, line
    assert not any(tmp_path.iterdir())


def test_a_short_ladder_end_to_end(tiny_env, tmp_path):
    """`make ladder` on the tiny corpus, three rungs of 24 updates: each rung a run of its own
    identity, its best checkpoint the lowest dev-other WER of its validations (every 20 updates
    and the last), decoded; `make compare` lists the rungs in climbing order."""
    import torch

    run_knobs = [k for k in knobs(tiny_env, tmp_path) if not k.startswith(("PROTOCOL=",
                                                                             "TRAINER="))]
    make("ladder", *run_knobs, "LADDER=seed masks optimizer", "SEEDS=1", "OPTIM=adamw",
         "ARGS=optimization.max_update=24")
    labels = ["seed-adamw-transformers", "seed+masks-adamw-transformers",
              "seed+optimizer-adamw-transformers"]
    for label, rung in zip(labels, ["", "masks", "optimizer"]):
        run = tmp_path / f"tiny-{label}" / "10min-0" / "seed-1"
        record = json.loads((run / "run.json").read_text())
        assert (record["protocol"], record["rung"], record["optim"], record["trainer"]) == \
            ("seed", rung, "adamw", "transformers")
        log = "".join(p.read_text() for p in (run / "logs").glob("finetune-*.log"))
        valid = [(float(w), int(u)) for w, u in
                 re.findall(r"valid on 'dev_other' subset \| wer ([\d.]+) \| num_updates (\d+)",
                            log)]
        assert [u for _, u in valid] == [20, 24]
        best = min(valid, key=lambda pair: (pair[0], -pair[1]))  # the later of equals
        written = torch.load(run / "checkpoints" / "checkpoint_best.pt", weights_only=False)
        assert written["optimizer_history"][-1]["num_updates"] == best[1]
        wer = json.loads((run / "decode" / "dev_other" / "wer.json").read_text())
        assert wer["rung"] == rung and wer["wer"] == pytest.approx(best[0], abs=0.01)
    out = tmp_path / "results"
    text = squeeze(make("compare", f"RUN_ROOT={tmp_path}", f"RESULTS={out}").stdout)
    headings = [line for line in text.splitlines() if line.startswith("### tiny")]
    assert [h.split("protocol ")[1] for h in headings] == labels, headings
