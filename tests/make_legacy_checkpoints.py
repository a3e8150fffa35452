"""Rewrite checkpoints made by this project's fairseq 0.12 in the older layouts fairseq released.

Usage:
  python tests/make_legacy_checkpoints.py [--finetuned CKPT] --pretrained CKPT --out DIR

Writes, from a fine-tuned and a pre-trained checkpoint of the same model (the tiny one in the
tests), the same weights in four layouts that the released files may have (docs/checkpoints.md):
  hydra_old_task.pt     hydra-era `cfg` whose task is `audio_pretraining` with labels, carrying
                        task keys only `audio_finetuning` knows (eval_wer, eval_wer_config, ...):
                        the `*_new.pt` files, trained before fairseq split the task in two
  hydra_lost_w2v.pt     the same, with model.w2v_path naming a file on the authors' machines
  argparse.pt           fairseq <= 0.10 (argparse era): a flat `args` Namespace, no `cfg`,
                        task audio_pretraining, arch wav2vec_ctc, labels ltr, the pre-training
                        Namespace embedded as args.w2v_args, w2v_path on the authors' machines
  argparse_pretrained.pt  a pre-trained file of that era (wav2vec_small.pt, libri960_big.pt):
                        `args` with task audio_pretraining, arch wav2vec2, criterion wav2vec
The argparse layout follows fairseq v0.10.2: checkpoint_utils.save_state writes the keys
args, model, optimizer_history (criterion_name, optimizer_name, lr_scheduler_state,
num_updates), extra_state and last_optimizer_state; the model, task, criterion and lr_scheduler
keys of `args` are the options that v0.10.2's wav2vec2.py, wav2vec2_asr.py, audio_pretraining.py,
ctc.py and tri_stage_lr_scheduler.py declare (lists below), the shared ones (common, dataset,
optimization, checkpoint, distributed) come from the 0.12 config groups of the same names,
which fairseq generated from those options. Only the layout changes: tensors are copied as
they are, so a correct loader gives exactly the original emissions. Each file gets a
`.sha256` record beside it, as `make decode-original` wants.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import os
from pathlib import Path

import torch

LOST = "/private/home/someone/wav2vec2/{}"  # a path on the machine where the file was trained
# (the fine-tuned stand-ins name their training data and w2v_path there, as released files do)

# Options each v0.10.2 component declares (add_args and base_architecture), by destination name.
V0102_CTC = ["w2v_path", "no_pretrained_weights", "dropout_input", "final_dropout", "apply_mask",
             "dropout", "attention_dropout", "activation_dropout", "mask_length", "mask_prob",
             "mask_selection", "mask_other", "no_mask_overlap", "mask_channel_length",
             "mask_channel_prob", "mask_channel_selection", "mask_channel_other",
             "no_mask_channel_overlap", "freeze_finetune_updates", "feature_grad_mult",
             "layerdrop"]
V0102_WAV2VEC2 = [
    "activation_dropout", "activation_fn", "attention_dropout", "codebook_negatives",
    "conv_bias", "conv_feature_layers", "conv_pos", "conv_pos_groups", "cross_sample_negatives",
    "dropout", "dropout_features", "dropout_input", "encoder_attention_heads",
    "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_layerdrop", "encoder_layers",
    "extractor_mode", "feature_grad_mult", "final_dim", "latent_dim", "latent_groups",
    "latent_temp", "latent_vars", "layer_norm_first", "logit_temp", "mask_channel_length",
    "mask_channel_min_space", "mask_channel_other", "mask_channel_prob",
    "mask_channel_selection", "mask_length", "mask_min_space", "mask_other", "mask_prob",
    "mask_selection", "negatives_from_everywhere", "no_mask_channel_overlap", "no_mask_overlap",
    "num_negatives", "quantize_input", "quantize_targets", "same_quantizer", "target_glu"]
V0102_TASK = ["data", "sample_rate", "normalize", "max_sample_size", "min_sample_size",
              "enable_padding", "labels"]
V0102_CTC_CRITERION = ["zero_infinity", "post_process", "wer_args"]
V0102_WAV2VEC_CRITERION = ["infonce", "loss_weights", "log_keys"]
V0102_TRI_STAGE = ["warmup_steps", "hold_steps", "decay_steps", "init_lr_scale",
                   "final_lr_scale"]
SHARED_GROUPS = ["common", "dataset", "optimization", "checkpoint", "distributed_training",
                 "optimizer"]
# Finetuning-only task keys of the hydra era that fairseq 0.12's AudioPretrainingConfig lacks.
FINETUNING_TASK_KEYS = {"eval_wer": False, "eval_wer_config": {"beam": 5, "print_alignment": False},
                        "eval_wer_tokenizer": None, "eval_wer_post_process": "letter",
                        "autoregressive": False}


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def save(state: dict, path: Path) -> None:
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")


def plain(cfg) -> dict:
    """A checkpoint's cfg (DictConfig or dict) as plain nested dicts."""
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(cfg) if isinstance(cfg, DictConfig) else copy.deepcopy(cfg)


def old_value(key: str, value):
    """Values the argparse era stored as strings: tuples and lists of tuples."""
    if key in ("latent_temp", "adam_betas") and isinstance(value, (list, tuple)):
        return "(" + ",".join(str(v) for v in value) + ")"
    return value


def flat_args(cfg: dict, model_keys: list[str], task: str, arch: str, criterion: str,
              criterion_keys: list[str]) -> argparse.Namespace:
    """A v0.10.2-style flat Namespace from a 0.12 cfg: shared groups whole, components by list."""
    args = {}
    for group in SHARED_GROUPS:
        for key, value in (cfg.get(group) or {}).items():
            if key != "_name":
                args[key] = old_value(key, value)
    for group, keys in (("task", V0102_TASK), ("model", model_keys),
                        ("criterion", criterion_keys), ("lr_scheduler", V0102_TRI_STAGE)):
        for key in keys:
            if key in (cfg.get(group) or {}):
                args[key] = old_value(key, cfg[group][key])
    args.update(task=task, arch=arch, criterion=criterion,
                optimizer=cfg["optimizer"]["_name"], lr_scheduler=cfg["lr_scheduler"]["_name"])
    return argparse.Namespace(**args)


def v0102_state(args, state: dict) -> dict:
    """The keys v0.10.2's save_state writes, around `args` and the original tensors."""
    last = state["optimizer_history"][-1]
    return {"args": args, "model": state["model"],
            "optimizer_history": [{key: last[key] for key in (
                "criterion_name", "optimizer_name", "lr_scheduler_state", "num_updates")}],
            "extra_state": {k: v for k, v in state["extra_state"].items()
                            if k in ("train_iterator", "val_loss", "best")},
            "last_optimizer_state": state["last_optimizer_state"]}


def hydra_old_task(finetuned: dict, lost_w2v: bool) -> dict:
    state = copy.copy(finetuned)
    cfg = plain(finetuned["cfg"])
    cfg["task"]["_name"] = "audio_pretraining"
    cfg["task"]["data"] = LOST.format("manifests")
    cfg["task"].update(copy.deepcopy(FINETUNING_TASK_KEYS))
    if lost_w2v:
        cfg["model"]["w2v_path"] = LOST.format("wav2vec_vox_new.pt")
    state["cfg"] = cfg
    return state


def argparse_pretrained(pretrained: dict) -> dict:
    cfg = plain(pretrained["cfg"])
    args = flat_args(cfg, V0102_WAV2VEC2, "audio_pretraining", "wav2vec2", "wav2vec",
                     V0102_WAV2VEC_CRITERION)
    return v0102_state(args, pretrained)


def argparse_finetuned(finetuned: dict, pretrained: dict) -> dict:
    cfg = plain(finetuned["cfg"])
    args = flat_args(cfg, V0102_CTC, "audio_pretraining", "wav2vec_ctc", "ctc",
                     V0102_CTC_CRITERION)
    args.w2v_path, args.data = LOST.format("wav2vec_small.pt"), LOST.format("manifests")
    args.w2v_args = argparse_pretrained(pretrained)["args"]
    return v0102_state(args, finetuned)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetuned", type=Path, help="without it, only the pre-trained file")
    parser.add_argument("--pretrained", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    pretrained = load(args.pretrained)
    args.out.mkdir(parents=True, exist_ok=True)
    save(argparse_pretrained(pretrained), args.out / "argparse_pretrained.pt")
    if args.finetuned:
        finetuned = load(args.finetuned)
        save(hydra_old_task(finetuned, lost_w2v=False), args.out / "hydra_old_task.pt")
        save(hydra_old_task(finetuned, lost_w2v=True), args.out / "hydra_lost_w2v.pt")
        save(argparse_finetuned(finetuned, pretrained), args.out / "argparse.pt")
    print(f"wrote the stand-ins into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
