"""Load a fine-tuned letter-CTC wav2vec 2.0 checkpoint, in any layout fairseq has released.

Nothing here runs on its own: decode.py calls `load_finetuned`, finetune.py `pretrained_normalize`.
fairseq 0.12 reads its own checkpoints, but not all of those it published in 2020-2021
(docs/checkpoints.md): the `*_new.pt` files name the task `audio_pretraining` (and carry keys
only `audio_finetuning` knows), argparse-era files hold a flat `args` Namespace, and many name a
pre-trained file (model.w2v_path) on the authors' machines. Here every layout becomes one
fairseq 0.12 config with task `audio_finetuning` on the given manifests, then fairseq builds the
model and loads the weights (strictly) as it always does. A file that is not a letter-CTC
wav2vec 2.0 model, or whose output layer does not fit the manifests' dict.ltr.txt, stops with
one line before any decoding. The dictionary's symbols must be those the model was trained
with: the dict.ltr.txt of its training data when that is here, fairseq's released one if not.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from w2v2_10min.checkpoints import verify_checkpoint
from w2v2_10min.common import REPO, UserError
from w2v2_10min.formats import DICT_LTR, dictionary_symbols

CTC_ARCH = "wav2vec_ctc"
PLUGIN = REPO / "w2v2_plugin"  # this project's fairseq user_dir
PROJ = "w2v_encoder.proj.weight"  # the output layer: one row per dictionary symbol


def read_state(path: Path) -> dict:
    """The unpickled checkpoint (only for files this project made or verified)."""
    # fairseq pickles its config into checkpoints; torch >= 2.6 refuses them by default.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle, zip and torch errors all mean the same to a user
        raise UserError(f"{path}: not a readable fairseq checkpoint ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or "model" not in state or \
            (state.get("cfg") is None and state.get("args") is None):
        raise UserError(f"{path}: not a fairseq checkpoint (no model with cfg or args inside)")
    return state


def config_value(node, key, default=None):
    """node[key] for dicts, DictConfigs and Namespaces alike."""
    if node is None:
        return default
    if isinstance(node, dict) or hasattr(node, "keys"):
        return node.get(key, default)
    return getattr(node, key, default)


def describe(state: dict) -> dict:
    """Layout, model name, labels, normalize and w2v facts, read without fairseq."""
    if state.get("cfg") is not None:
        cfg = state["cfg"]
        task, model = config_value(cfg, "task"), config_value(cfg, "model")
        return {"layout": "hydra", "task": config_value(task, "_name"), "arch": config_value(model, "_name"),
                "labels": config_value(task, "labels"), "normalize": config_value(task, "normalize"),
                "w2v_args": config_value(model, "w2v_args"), "w2v_path": config_value(model, "w2v_path"),
                "data": config_value(task, "data")}
    args = state["args"]
    return {"layout": "argparse", "task": config_value(args, "task"), "arch": config_value(args, "arch"),
            "labels": config_value(args, "labels"), "normalize": config_value(args, "normalize"),
            "w2v_args": config_value(args, "w2v_args"), "w2v_path": config_value(args, "w2v_path"),
            "data": config_value(args, "data")}


def pretrained_normalize(path: Path) -> bool:
    """task.normalize of a pre-trained checkpoint, hydra or argparse era."""
    info = describe(read_state(path))
    return bool(info["normalize"])


def check_letter_ctc(path: Path, state: dict, dict_path: Path) -> dict:
    """describe(state), after refusing anything that is not a letter-CTC model for dict_path."""
    info = describe(state)
    if info["arch"] != CTC_ARCH or PROJ not in state["model"]:
        what = "a pre-trained model without an output layer (fine-tune it first)" \
            if info["arch"] in ("wav2vec2", "data2vec_audio") else f"a {info['arch']!r} model"
        raise UserError(f"{path}: {what}, not a fine-tuned letter-CTC wav2vec 2.0 model "
                        f"({CTC_ARCH})")
    if info["labels"] != "ltr":
        raise UserError(f"{path}: fine-tuned on {info['labels']!r} labels, not letters (ltr); "
                        "this recipe decodes letter-CTC models only")
    from fairseq.data import Dictionary

    if not dict_path.is_file():
        raise UserError(f"{dict_path}: not found; run `make manifests` first")
    size, outputs = len(Dictionary.load(str(dict_path))), state["model"][PROJ].shape[0]
    if size != outputs:
        raise UserError(f"{path} has {outputs} outputs but {dict_path} gives {size} symbols: "
                        "the checkpoint was fine-tuned with another dictionary; decode it with "
                        "the dict.ltr.txt it was trained with")
    trained = Path(str(info["data"])) / "dict.ltr.txt" if info["data"] else None
    if trained is not None and trained.is_file():  # a checkpoint made here, its data in place
        expected, source = dictionary_symbols(trained), str(trained)
    else:  # a released file, or one whose data moved: fairseq's released dictionary
        expected, source = [symbol for symbol, _ in DICT_LTR], "fairseq's released dict.ltr.txt"
    if dictionary_symbols(dict_path) != expected:
        raise UserError(f"{dict_path} lists other symbols (or another order) than {path} was "
                        f"fine-tuned with ({source}); decode with that dictionary")
    return info


def finetuning_task_cfg(old_task, data: Path):
    """fairseq 0.12's audio_finetuning config: the old task's known values, our manifests."""
    from omegaconf import OmegaConf
    from fairseq.tasks.audio_finetuning import AudioFinetuningConfig

    cfg = OmegaConf.structured(AudioFinetuningConfig)
    known = set(AudioFinetuningConfig.__dataclass_fields__) - {"_name", "eval_wer_config",
                                                              "eval_wer_tokenizer"}
    for key in known:
        value = config_value(old_task, key)
        if value is not None:
            cfg[key] = value
    cfg._name, cfg.data, cfg.labels = "audio_finetuning", str(data), "ltr"
    cfg.max_sample_size, cfg.min_sample_size = 10**9, 0  # decode every utterance, however long
    cfg.eval_wer = False  # decoding needs no in-training WER (nor its generation settings)
    return cfg


def pretraining_source(path: Path, info: dict, pretrained: Path | None) -> str | None:
    """The pre-trained file fairseq must read for the model's settings, or None if embedded.

    Fine-tuned files normally embed the pre-training settings (w2v_args), and then w2v_path is
    never opened. A file without them names its pre-trained checkpoint in w2v_path, often a path
    on the authors' machines: `pretrained` (SHA-256 verified here) stands in for it. Only its
    settings matter; its weights are replaced by the fine-tuned file's.
    """
    if info["w2v_args"] is not None:
        return None
    if pretrained is not None:
        verify_checkpoint(pretrained)  # before it is unpickled
        return str(Path(pretrained).resolve())
    if info["w2v_path"] and Path(str(info["w2v_path"])).is_file():
        return str(info["w2v_path"])
    raise UserError(f"{path}: holds no pre-training settings (w2v_args) and its w2v_path "
                    f"{info['w2v_path']} is not here; give the pre-trained checkpoint it was "
                    "fine-tuned from (decode.py --pretrained PATH; make decode-original does "
                    "when MODEL's pre-trained file is in PRETRAINED_DIR)")


def load_finetuned(path: Path, data: Path, device: str = "cpu", pretrained: Path | None = None):
    """(model in eval mode on `device`, audio_finetuning task on `data`, describe(...) facts).

    `pretrained`: the pre-trained checkpoint, read only for a file without embedded
    pre-training settings (see pretraining_source), after its SHA-256 is verified.
    """
    path, data = Path(path), Path(data)
    state = read_state(path)
    info = check_letter_ctc(path, state, data / "dict.ltr.txt")
    w2v_path = pretraining_source(path, info, pretrained)
    from fairseq import checkpoint_utils, tasks, utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf, open_dict

    w2v_namespace = None
    if state.get("cfg") is not None:
        state["cfg"] = OmegaConf.create(state["cfg"], flags={"allow_objects": True})
    elif isinstance(info["w2v_args"], argparse.Namespace):
        # fairseq 0.12 turns a nested Namespace into overrides of a key its config lacks
        # ("Could not override 'model.w2v_args.common...'"): convert it on its own.
        state["args"] = argparse.Namespace(**vars(state["args"]))
        w2v_namespace = state["args"].w2v_args
        del state["args"].w2v_args
    state = checkpoint_utils._upgrade_state_dict(state)  # argparse args -> hydra cfg, as fairseq
    state["args"] = None  # load_model_ensemble_and_task would convert them again
    cfg = state["cfg"]
    with open_dict(cfg):
        if w2v_namespace is not None:
            cfg.model.w2v_args = convert_namespace_to_omegaconf(w2v_namespace)
        cfg.task = finetuning_task_cfg(cfg.task, data)
        cfg.model.data = str(data)
        if w2v_path is not None:
            cfg.model.w2v_path = w2v_path
        if cfg.get("common") is not None and cfg.common.get("user_dir"):
            # trained with this project's plugin (or someone's): use ours, from here
            cfg.common.user_dir = str(PLUGIN)
            utils.import_user_module(cfg.common)
    task = tasks.setup_task(cfg.task)
    try:
        models, _, task = checkpoint_utils.load_model_ensemble_and_task(
            [str(path)], task=task, state=state)
    except (RuntimeError, KeyError, AssertionError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: fairseq could not build this wav2vec 2.0 CTC model "
                        f"({first[:200]})") from None
    return models[0].to(device).eval(), task, info


def group_norm_features(model) -> bool:
    """Whether the model's CNN feature encoder normalises over time with group norm.

    BASE and LARGE (LS-960) do (extractor_mode "default"), without a padding mask: zeros padded
    onto a shorter utterance in a batch change its emissions. LV-60k's layer norm does not.
    """
    import torch

    encoder = model.w2v_encoder.w2v_model.feature_extractor
    return any(isinstance(module, torch.nn.GroupNorm) for module in encoder.modules())


def batching(model, max_tokens: int) -> dict:
    """How decoding batches utterances for this model (recorded in wer.json)."""
    if group_norm_features(model):
        return {"feature_norm": "group", "max_sentences": 1, "max_tokens": None,
                "padded": False}
    return {"feature_norm": "layer", "max_sentences": None, "max_tokens": max_tokens,
            "padded": True}
