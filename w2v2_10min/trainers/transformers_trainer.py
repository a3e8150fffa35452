"""The fine-tuning recipe trained with transformers' `Trainer` on `Wav2Vec2ForCTC` (issue 35).

    from w2v2_10min.trainers.transformers_trainer import train
    record = train(cfg, manifests, run_folder)

`cfg` is the composed config fairseq-hydra-train runs (RUN/config.yaml, as
`w2v2_10min.finetune.compose_config` writes it: the recipe's groups plus the run's overrides);
`manifests` the split's manifest folder (it replaces task.data). Every recipe key is either
mapped to transformers (`HONOURED`: `Wav2Vec2Config` fields, `TrainingArguments`, or the trainer
below) or, when transformers cannot honour its value, refused in one line by name
(`refusals`), before anything is built. The run writes, under `run_folder`:
  transformers/            the trained `Wav2Vec2ForCTC` and its `Wav2Vec2Processor`
  transformers/updates.jsonl  per update: loss (fairseq's: CTC summed over the update, divided
                           by its utterances (sentence_avg) or letters, in bits), lr, utterances
  transformers/trainer.json   the mapping used (recipe key -> transformers) and the versions

How each difference between the two trainers is bridged (docs: transformers-vs-fairseq.md):
- weights and head: fairseq builds its `Wav2VecCtc` from the pre-trained checkpoint exactly as
  fairseq-hydra-train does (torch seeded with common.seed first, so the head, xavier-uniform
  with zero bias, is fairseq's own draw), and `hf_export` converts it (or a head given by the
  caller replaces it);
- batches: fairseq's own dataset (`.ltr` targets with their trailing `|`, normalisation per
  task.normalize, zero padding with its mask) and its batch iterator (max_tokens, seed + epoch
  shuffling, an update's micro-batches grouped as fairseq's GroupedIterator, a smaller last
  group at the end of an epoch), fed to the Trainer as its train dataloader, one epoch per pass;
  the attention mask is always passed, as fairseq passes its padding mask;
- masks and LayerDrop: drawn with `w2v2_plugin.seeded_draws` (`seeded_mask_indices`, the
  LayerDrop stream) from (common.seed, update, utterance ids), in fairseq's order, instead of
  transformers' own draws;
- loss: CTC summed (`ctc_loss_reduction="sum"`, `ctc_zero_infinity` from the criterion), the
  gradients of the update's micro-batches summed, then multiplied by 1 / (utterances of the whole
  update) before clipping, as fairseq's Trainer does (`multiply_grads`); transformers 5's
  gradient-accumulation scaling is switched off (`loss_is_scaled_for_ga`);
- optimizer: fairseq's own `fairseq.optim.adam.Adam` (eps on the uncorrected sqrt(v)), betas,
  eps and weight decay from the recipe; `max_grad_norm` = optimization.clip_norm (0: none);
- schedule: a `LambdaLR` whose factor is fairseq's own scheduler's rate (`tri_stage`, or the
  plugin's `tri_stage_linear`) on a base rate of 1, so update k uses fairseq's lr(k) exactly;
- freeze_finetune_updates: the whole wav2vec2 module under `torch.no_grad()` until update N, the
  head trained from update 0 (parameters without gradients are skipped by Adam, as in fairseq's
  fp32 runs); feature_grad_mult 0: the CNN frozen (`freeze_feature_encoder`);
- torch re-seeded with common.seed + update before each update, as fairseq's Trainer does;
- several processes (GPUS, under torchrun): fairseq's shards of the batches, a dummy batch x 0
  for a shard a batch short, gradients summed over processes / the update's utterances;
- validation on dataset.valid_subset when fairseq validates, the best kept as checkpoint_best.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
from pathlib import Path

import numpy as np

from w2v2_10min.common import REPO, UserError, versions

PLUGIN = REPO / "w2v2_plugin"

# Recipe keys this trainer honours -> where (Wav2Vec2Config field, TrainingArguments field, or
# how the trainer does it). Keys of the training groups not named here are refused (`refusals`).
HONOURED = {
    "common.seed": "TrainingArguments.seed; torch re-seeded with seed + update per update; "
                   "masks and LayerDrop from (seed, update, utterance ids)",
    "common.cpu": "TrainingArguments.use_cpu",
    "optimization.max_update": "TrainingArguments.max_steps",
    "optimization.update_freq": "TrainingArguments.gradient_accumulation_steps",
    "optimization.lr": "fairseq Adam's peak rate (TrainingArguments.learning_rate)",
    "optimization.clip_norm": "TrainingArguments.max_grad_norm (0: no clipping)",
    "optimization.sentence_avg": "gradients / utterances (true) or target letters of the update",
    "optimizer.adam_betas": "fairseq Adam betas (TrainingArguments.adam_beta1/2)",
    "optimizer.adam_eps": "fairseq Adam eps (TrainingArguments.adam_epsilon)",
    "optimizer.weight_decay": "fairseq Adam weight_decay (TrainingArguments.weight_decay)",
    "lr_scheduler.phase_ratio": "LambdaLR of fairseq's scheduler",
    "lr_scheduler.warmup_steps": "LambdaLR of fairseq's scheduler",
    "lr_scheduler.hold_steps": "LambdaLR of fairseq's scheduler",
    "lr_scheduler.decay_steps": "LambdaLR of fairseq's scheduler",
    "lr_scheduler.init_lr_scale": "LambdaLR of fairseq's scheduler",
    "lr_scheduler.final_lr_scale": "LambdaLR of fairseq's scheduler",
    "criterion.zero_infinity": "Wav2Vec2Config.ctc_zero_infinity",
    "criterion.post_process": "(validation WER only; not used in training)",
    "model.w2v_path": "the pre-trained weights, converted (hf_export)",
    "model.apply_mask": "masks drawn (seeded, fairseq's compute_mask_indices) or not",
    "model.mask_prob": "Wav2Vec2Config.mask_time_prob",
    "model.mask_length": "Wav2Vec2Config.mask_time_length",
    "model.mask_channel_prob": "Wav2Vec2Config.mask_feature_prob",
    "model.mask_channel_length": "Wav2Vec2Config.mask_feature_length",
    **{f"model.{k}": "Wav2Vec2Config.fairseq_masks (fairseq's compute_mask_indices)" for k in (
        "mask_selection", "mask_other", "no_mask_overlap", "mask_min_space",
        "require_same_masks", "mask_dropout", "mask_channel_selection", "mask_channel_other",
        "no_mask_channel_overlap", "mask_channel_min_space", "mask_channel_before")},
    "model.layerdrop": "Wav2Vec2Config.layerdrop (drawn as fairseq's seeded LayerDrop)",
    "model.dropout": "Wav2Vec2Config.hidden_dropout",
    "model.attention_dropout": "Wav2Vec2Config.attention_dropout",
    "model.activation_dropout": "Wav2Vec2Config.activation_dropout",
    "model.dropout_input": "Wav2Vec2Config.feat_proj_dropout",
    "model.final_dropout": "Wav2Vec2Config.final_dropout",
    "model.feature_grad_mult": "0: freeze_feature_encoder(); 1: trained",
    "model.freeze_finetune_updates": "wav2vec2 under no_grad until update N, head from 0",
    "model.normalize": "fairseq's dataset normalises (task.normalize)",
    "model.data": "task.data",
    "task.data": "the manifests given",
    "task.normalize": "fairseq's dataset (F.layer_norm per utterance)",
    "task.labels": "fairseq's dataset (.ltr targets, trailing |)",
    "task.seeded_draws": "true: masks and LayerDrop from w2v2_plugin.seeded_draws",
    "task.max_sample_size": "fairseq's dataset", "task.min_sample_size": "fairseq's dataset",
    "task.enable_padding": "fairseq's dataset", "task.sample_rate": "fairseq's dataset",
    "task.autoregressive": "fairseq's dataset (false)", "task.eval_wer": "validation only",
    # the seed's ways (recipes/finetune/protocol/seed.yaml), each with fairseq's as its default
    "task.input_normalization": "fairseq: task.normalize (F.layer_norm); transformers: "
                                "Wav2Vec2FeatureExtractor's do_normalize (eps 1e-7)",
    "model.mask_draws": "fairseq: compute_mask_indices; transformers: "
                        "Wav2Vec2Model._mask_hidden_states (both seeded per update and batch)",
    "criterion.loss_divisor": "update: the update's utterances or letters (fairseq); "
                              "accumulation: gradient_accumulation_steps (transformers 4)",
    "optimizer._name": "adam: fairseq's Adam; adamw: torch.optim.AdamW; adamw_bnb_8bit: "
                       "bitsandbytes.optim.Adam8bit (transformers' adamw_bnb_8bit)",
}
# fairseq's value of each of the seed's keys (the paper's, for w2v2_10min.ladder)
TRAINER_ONLY = {"task.input_normalization": "fairseq", "model.mask_draws": "fairseq",
                "criterion.loss_divisor": "update"}
OPTIMIZERS = ("adam", "adamw", "adamw_bnb_8bit")
TRANSFORMERS_MASK_STREAM = 3  # seeded_draws' streams: masks 0, 1, LayerDrop 2
TRAINING_GROUPS = ("model", "task", "criterion", "optimizer", "lr_scheduler")
# Keys outside those groups that change training, with the only values honoured here.
REQUIRED = {
    "common.bf16": False, "common.memory_efficient_fp16": False,
    "common.memory_efficient_bf16": False, "common.amp": False,
    "optimization.max_epoch": 0,
    "optimization.stop_time_hours": 0, "optimization.use_bmuf": False,
    "optimization.skip_remainder_batch": False, "ema.store_ema": False,
    "model._name": "wav2vec_ctc", "criterion._name": "ctc",
    "task.seeded_draws": True, "model.blank_weight": 0, "model.checkpoint_activations": False,
}
SCHEDULERS = ("tri_stage", "tri_stage_linear")
# transformers versions whose Trainer and Wav2Vec2ForCTC tests/test_transformers_trainer.py
# showed equal to fairseq (its gradient-accumulation scaling, loss and attention changed
# between releases: docs/transformers-trainer.md)
PROVEN = ("5.24.0",)
TASKS = ("audio_finetuning_seeded",)


def flat(node, prefix="") -> dict:
    """{"group.key": value} of a (resolved) config."""
    from omegaconf import DictConfig, OmegaConf

    out = {}
    for key in node.keys():
        value = node[key] if not isinstance(node, DictConfig) else OmegaConf.select(
            node, str(key), throw_on_missing=False)
        if isinstance(value, DictConfig):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = OmegaConf.to_container(value) \
                if OmegaConf.is_config(value) else value
    return out


def resolve(cfg, manifests: Path):
    """The config as fairseq-hydra-train resolves it: this repository's plugin as user_dir, the
    manifests as task.data, every interpolation resolved."""
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=False)
    if plain.get("common", {}).get("user_dir"):
        plain["common"]["user_dir"] = str(PLUGIN)  # ${hydra:runtime.cwd}/w2v2_plugin
    plain.setdefault("task", {})["data"] = str(Path(manifests).resolve())
    plain.pop("hydra", None)
    return OmegaConf.create(OmegaConf.to_container(OmegaConf.create(plain), resolve=True,
                                                   enum_to_str=True))


def refusals(cfg) -> list[str]:
    """`key=value` of every recipe setting transformers' side cannot honour (empty: none)."""
    values = flat(cfg)
    refused = []
    for key, value in values.items():
        group = key.split(".")[0]
        if group in TRAINING_GROUPS and key not in HONOURED and key not in REQUIRED and \
                key not in ("task._name", "lr_scheduler._name"):
            refused.append(f"{key}={value}")
    for key, needed in REQUIRED.items():
        if key in values and values[key] is not None and values[key] != needed:
            refused.append(f"{key}={values[key]}")
    if values.get("task._name") not in TASKS:
        refused.append(f"task._name={values.get('task._name')} (needs {' or '.join(TASKS)}: "
                       "FAST=0, SEEDED=1)")
    if values.get("lr_scheduler._name") not in SCHEDULERS:
        refused.append(f"lr_scheduler._name={values.get('lr_scheduler._name')}")
    if len(values.get("optimization.update_freq") or [1]) != 1:
        refused.append(f"optimization.update_freq={values['optimization.update_freq']}")
    if values.get("model.feature_grad_mult", 0.0) not in (0.0, 1.0):
        refused.append(f"model.feature_grad_mult={values['model.feature_grad_mult']}")
    for key, allowed in (("task.input_normalization", ("fairseq", "transformers")),
                         ("model.mask_draws", ("fairseq", "transformers")),
                         ("criterion.loss_divisor", ("update", "accumulation")),
                         ("optimizer._name", OPTIMIZERS)):
        if values.get(key, allowed[0]) not in allowed:
            refused.append(f"{key}={values[key]} (one of {', '.join(allowed)})")
    subset = str(values.get("dataset.valid_subset") or "valid").split(",")[0]
    manifest = Path(str(values.get("task.data"))) / f"{subset}.tsv"
    if not values.get("dataset.disable_validation") and not manifest.is_file():
        refused.append(f"dataset.valid_subset={subset} ({manifest} not found: make manifests "
                       f"with EVAL_SETS holding {subset.replace('_', '-')})")
    return refused + device_refusals(values)


def world() -> tuple[int, int]:
    """(rank, processes) of this training process: torchrun's, or (0, 1)."""
    import os

    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def device_refusals(values: dict) -> list[str]:
    """What needs a CUDA GPU (or a package) this machine does not have, with the fix."""
    import torch

    gpu = torch.cuda.is_available() and not values.get("common.cpu")
    refused = []
    processes = int(values.get("distributed_training.distributed_world_size") or 1)
    if processes > 1 and not values.get("common.cpu") and torch.cuda.device_count() < processes:
        found = torch.cuda.device_count()
        refused.append(f"distributed_training.distributed_world_size={processes} ({found} "
                       f"CUDA devices here: give GPUS={max(found, 1)})")
    if values.get("common.fp16") and not gpu:
        refused.append(f"common.fp16={values['common.fp16']} (transformers' fp16 autocast "
                       "needs a CUDA GPU: give FP16=false)")
    if values.get("optimizer._name") == "adamw_bnb_8bit":
        try:
            import bitsandbytes  # noqa: F401
            found = True
        except ImportError:
            found = False
        if not (gpu and found):
            missing = " and ".join(w for w, ok in (
                ("bitsandbytes (.venv/bin/pip install bitsandbytes)", found),
                ("a CUDA GPU", gpu)) if not ok)
            refused.append(f"optimizer._name=adamw_bnb_8bit (8-bit Adam needs {missing}: "
                           "give OPTIM=adamw, torch's AdamW with 32-bit states)")
    return refused


def fairseq_view(cfg):
    """The config without the keys only this trainer reads, as fairseq's task and model take it."""
    from omegaconf import OmegaConf, open_dict

    out = OmegaConf.create(OmegaConf.to_container(cfg))
    with open_dict(out):
        for key in TRAINER_ONLY:
            group, _, field = key.partition(".")
            if out.get(group) is not None and field in out[group]:
                del out[group][field]
    return out


def setting(cfg, key: str):
    """The value of one of TRAINER_ONLY's keys in the config (fairseq's where it is not set)."""
    group, _, field = key.partition(".")
    return (cfg.get(group) or {}).get(field, TRAINER_ONLY[key])


def unproven_version() -> str | None:
    """The installed transformers' version when the equality was not shown for it."""
    from importlib.metadata import version

    installed = version("transformers")
    return None if installed in PROVEN else installed


def check(cfg) -> None:
    refused = refusals(cfg)
    if refused:
        raise UserError("the transformers trainer cannot honour: " + ", ".join(refused))


class DrawKey:
    """(update, utterance ids) of the batch being trained, as w2v2_plugin.seeded_draws keys it."""

    def __init__(self, seed: int):
        self.seed, self.key = int(seed), None

    @contextlib.contextmanager
    def batch(self, update: int, ids):
        self.key = (int(update), np.asarray(ids.tolist(), dtype=np.int64))
        try:
            yield
        finally:
            self.key = None

    def current(self):
        if self.key is None:
            raise RuntimeError("transformers trainer: a training forward outside a batch")
        return self.key


def seeded_model_class():
    """`Wav2Vec2ForCTC` trained as fairseq's `Wav2VecCtc` (defined on first use: transformers is
    imported only here)."""
    import torch
    from transformers import Wav2Vec2ForCTC
    from transformers.modeling_outputs import CausalLMOutput

    from fairseq.data import data_utils
    from fairseq.utils import index_put
    from w2v2_plugin.seeded_draws import LAYERDROP_STREAM, seeded_mask_indices

    class SeededWav2Vec2ForCTC(Wav2Vec2ForCTC):
        """Masks and LayerDrop from w2v2_plugin.seeded_draws, freeze_finetune_updates, the loss
        as fairseq's CTC criterion sums it. The parameters are Wav2Vec2ForCTC's."""

        def fairseq_training(self, seed: int, freeze_updates: int, apply_mask: bool):
            self.draws, self.freeze_updates, self.apply_mask = DrawKey(seed), freeze_updates, \
                apply_mask
            self.num_updates = 0
            self.wav2vec2._mask_hidden_states = self.fairseq_masks  # this instance only
            return self

        def fairseq_masks(self, hidden_states, mask_time_indices=None, attention_mask=None):
            """fairseq's apply_mask (wav2vec2.py), its masks from seeded_mask_indices."""
            if not (self.training and self.apply_mask):
                return hidden_states
            update, ids = self.draws.current()
            if self.config.fairseq_masks["draws"] == "transformers":  # the seed's masks
                with data_utils.numpy_seed(self.draws.seed, TRANSFORMERS_MASK_STREAM, update,
                                           *sorted(ids.tolist())):
                    return type(self.wav2vec2)._mask_hidden_states(
                        self.wav2vec2, hidden_states, attention_mask=attention_mask)
            m, c = self.config.fairseq_masks, self.config
            x = hidden_states
            B, T, C = x.shape
            padding = None if attention_mask is None or bool(attention_mask.all()) else \
                ~attention_mask.bool()
            streams = itertools.count()  # fairseq's calls, in order: seeded_draws' streams

            def channel_mask():
                mask = seeded_mask_indices(
                    (self.draws.seed, next(streams)), update, ids, (B, C), None,
                    c.mask_feature_prob, c.mask_feature_length, m["mask_channel_selection"],
                    m["mask_channel_other"], no_overlap=m["no_mask_channel_overlap"],
                    min_space=m["mask_channel_min_space"])
                return torch.from_numpy(mask).to(x.device).unsqueeze(1).expand(-1, T, -1)

            if c.mask_feature_prob > 0 and m["mask_channel_before"]:
                x[channel_mask()] = 0
            if c.mask_time_prob > 0:
                mask = seeded_mask_indices(
                    (self.draws.seed, next(streams)), update, ids, (B, T), padding,
                    c.mask_time_prob, c.mask_time_length, m["mask_selection"], m["mask_other"],
                    min_masks=2, no_overlap=m["no_mask_overlap"], min_space=m["mask_min_space"],
                    require_same_masks=m["require_same_masks"], mask_dropout=m["mask_dropout"])
                x = index_put(x, torch.from_numpy(mask).to(x.device), self.wav2vec2.masked_spec_embed)
            if c.mask_feature_prob > 0 and not m["mask_channel_before"]:
                x = index_put(x, channel_mask(), 0)
            return x

        @contextlib.contextmanager
        def layerdrop(self):
            """Only the layers fairseq's seeded LayerDrop keeps, for this forward."""
            encoder = self.wav2vec2.encoder
            if not (self.training and self.config.layerdrop > 0):
                yield
                return
            update, ids = self.draws.current()
            with data_utils.numpy_seed(self.draws.seed, LAYERDROP_STREAM, update,
                                       *sorted(ids.tolist())):
                # fairseq's TransformerEncoder: one draw per layer, kept if above layerdrop
                keep = [np.random.random() > self.config.layerdrop for _ in encoder.layers]
            layers, rate = encoder.layers, self.config.layerdrop
            encoder.layers = torch.nn.ModuleList([l for l, k in zip(layers, keep) if k])
            self.config.layerdrop = 0.0  # transformers' encoder must not draw its own
            try:
                yield
            finally:
                encoder.layers, self.config.layerdrop = layers, rate

        def forward(self, input_values, attention_mask=None, labels=None, **kwargs):
            frozen = self.training and self.num_updates < self.freeze_updates
            with torch.no_grad() if frozen else contextlib.nullcontext(), self.layerdrop():
                hidden = self.wav2vec2(input_values, attention_mask=attention_mask)
            logits = self.lm_head(self.dropout(hidden.last_hidden_state))
            loss = None
            if labels is not None:
                mask = attention_mask if attention_mask is not None else \
                    torch.ones_like(input_values, dtype=torch.long)
                lengths = self._get_feat_extract_output_lengths(mask.sum(-1)).to(torch.long)
                loss = self.loss_function(
                    logits=logits, labels=labels, logit_lengths=lengths,
                    blank_token_id=self.config.pad_token_id, reduction="sum",
                    zero_infinity=self.config.ctc_zero_infinity)
            return CausalLMOutput(loss=loss, logits=logits)

    return SeededWav2Vec2ForCTC


class FairseqBatches:
    """fairseq's training batches as fairseq_cli/train.py draws them, one epoch per iteration,
    as transformers inputs (input_values, attention_mask, labels, id)."""

    def __init__(self, cfg, task, model):
        from fairseq import utils

        self.cfg, self.task = cfg, task
        self.normalize = setting(cfg, "task.input_normalization") == "transformers"
        self.max_positions = utils.resolve_max_positions(
            task.max_positions(), model.max_positions(), cfg.dataset.max_tokens)
        task.load_dataset(cfg.dataset.train_subset, epoch=1, combine=True)
        self.itr = self.iterator(1)
        self.started = False

    def iterator(self, epoch: int):
        """fairseq's Trainer.get_train_iterator, one process."""
        d, cfg = self.cfg.dataset, self.cfg
        return self.task.get_batch_iterator(
            dataset=self.task.dataset(d.train_subset), max_tokens=d.max_tokens,
            max_sentences=d.batch_size, max_positions=self.max_positions,
            ignore_invalid_inputs=True,
            required_batch_size_multiple=d.required_batch_size_multiple,
            seed=(cfg.common.seed + epoch) if d.update_ordered_indices_seed else cfg.common.seed,
            num_shards=world()[1], shard_id=world()[0], num_workers=d.num_workers, epoch=epoch,
            data_buffer_size=d.data_buffer_size, disable_iterator_cache=False,
            skip_remainder_batch=cfg.optimization.skip_remainder_batch,
            grouped_shuffling=d.grouped_shuffling, update_epoch_batch_itr=d.update_epoch_batch_itr)

    def __len__(self) -> int:
        return len(self.itr)

    def set_epoch(self, epoch: int) -> None:
        """transformers' epoch (from 0; it calls this before each pass, and a resumed run's
        first pass is the epoch it stopped before) as fairseq's (from 1): the next pass is
        fairseq's epoch `epoch + 1`, shuffled as fairseq shuffles it (seed + epoch)."""
        if self.started:  # fairseq_cli/train.py: the next epoch's iterator after each epoch
            self.itr = self.iterator(self.itr.next_epoch_idx)
        if self.itr.next_epoch_idx != epoch + 1:  # a resumed run: on at its epoch (fairseq's
            # get_batch_iterator may hand back its cached iterator, so position that one)
            self.itr.load_state_dict({"epoch": epoch + 1, "iterations_in_epoch": 0,
                                      "version": 2})
        self.started = False

    def __iter__(self):
        if self.started:  # fairseq_cli/train.py: the next epoch's iterator after each epoch
            self.itr = self.iterator(self.itr.next_epoch_idx)
        self.started = True
        itr = self.itr.next_epoch_itr(
            fix_batches_to_gpus=self.cfg.distributed_training.fix_batches_to_gpus,
            shuffle=self.itr.next_epoch_idx > self.cfg.dataset.curriculum)
        return (self.inputs(sample) for sample in itr)

    def dummy(self) -> dict:
        """fairseq's dummy batch: where one process's shard of an epoch has a batch fewer than
        another's, it trains on the last batch it saw with its loss x 0, so that every process
        takes part in each update's gradient exchange."""
        return {**self.last, "dummy": True}

    def inputs(self, sample, training: bool = True) -> dict:
        """The transformers inputs of a fairseq sample (`training`: remembered for a dummy)."""
        import torch

        if not sample:  # an empty shard batch (fairseq's ShardedIterator fills with [])
            return self.dummy()
        net, target = sample["net_input"], sample["target"]
        dictionary = self.task.target_dictionary
        padding = net.get("padding_mask")
        mask = (~padding).long() if padding is not None else \
            torch.ones_like(net["source"], dtype=torch.long)
        out = {"input_values": transformers_normalized(net["source"], mask)
               if self.normalize else net["source"],
               "attention_mask": mask,
               # fairseq's CTC targets: neither pad nor eos (the trailing | kept)
               "labels": target.masked_fill((target == dictionary.pad()) |
                                            (target == dictionary.eos()), -100),
               "id": sample["id"], "dummy": False}
        if training:
            self.last = out
        return out


def transformers_normalized(audio, mask):
    """Each utterance as Wav2Vec2FeatureExtractor(do_normalize=True) gives it: zero mean and unit
    variance over its own samples (biased variance, eps 1e-7), padding left 0."""
    import torch

    out = torch.zeros_like(audio)
    for row, length in enumerate(mask.sum(-1).tolist()):
        x = audio[row, :length]
        out[row, :length] = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-7)
    return out


def fairseq_rate(cfg):
    """lr(update) of fairseq's own scheduler class for the recipe (tri_stage, tri_stage_linear)."""
    from fairseq.optim import FairseqOptimizer
    from fairseq.optim.lr_scheduler import build_lr_scheduler

    class Rate(FairseqOptimizer):  # the little of an optimizer a scheduler touches
        def __init__(self):
            self.lr = None

        def set_lr(self, lr):
            self.lr = lr

        def get_lr(self):
            return self.lr

    scheduler = build_lr_scheduler(cfg.lr_scheduler, Rate())
    scheduler.step_update(0)
    return lambda update: float(scheduler.step_update(update))


def fairseq_setup(cfg):
    """fairseq's task and its Wav2VecCtc as fairseq_cli/train.py builds them (same seeds)."""
    from fairseq import tasks, utils
    from fairseq.dataclass.initialize import add_defaults

    cfg = fairseq_view(cfg)
    utils.import_user_module(cfg.common)
    add_defaults(cfg)
    np.random.seed(cfg.common.seed)
    utils.set_torch_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    model.fairseq_cfg = cfg  # with the pre-training's w2v_args, as the checkpoint keeps it
    return task, model


def hf_model(fairseq_model, cfg, head=None):
    """The fairseq model (pre-trained encoder, head) as a SeededWav2Vec2ForCTC for the recipe."""
    from w2v2_10min.hf_export import to_transformers

    model = to_transformers(fairseq_model, head=head, model_class=seeded_model_class())
    m, w2v = cfg.model, fairseq_model.w2v_encoder.w2v_model
    config = model.config  # dropouts and layerdrop: the recipe's (hf_export.hf_config)
    config.mask_time_prob, config.mask_time_length = w2v.mask_prob, w2v.mask_length
    config.mask_time_min_masks = 2
    config.mask_feature_prob, config.mask_feature_length = w2v.mask_channel_prob, \
        w2v.mask_channel_length
    config.mask_feature_min_masks = 0
    config.ctc_loss_reduction, config.ctc_zero_infinity = "sum", bool(cfg.criterion.zero_infinity)
    # what fairseq's compute_mask_indices takes beyond transformers' fields, as the fairseq
    # model holds them (the recipe's values, or the pre-training config's where the recipe has none)
    config.fairseq_masks = {k: getattr(v, "value", v) for k, v in {
        "mask_selection": w2v.mask_selection, "mask_other": w2v.mask_other,
        "no_mask_overlap": w2v.no_mask_overlap, "mask_min_space": w2v.mask_min_space,
        "require_same_masks": w2v.cfg.require_same_masks, "mask_dropout": w2v.cfg.mask_dropout,
        "mask_channel_selection": w2v.mask_channel_selection,
        "mask_channel_other": w2v.mask_channel_other,
        "no_mask_channel_overlap": w2v.no_mask_channel_overlap,
        "mask_channel_min_space": w2v.mask_channel_min_space,
        "mask_channel_before": w2v.mask_channel_before}.items()}  # enums as their strings
    config.fairseq_masks["draws"] = setting(cfg, "model.mask_draws")
    # torch's scaled_dot_product_attention, as fairseq's attention uses on CPU: measured on the
    # tiny recipe with update_freq 3, "eager" attention drifts from fairseq 15 times as far
    model.set_attn_implementation("sdpa")
    if m.feature_grad_mult == 0:
        model.freeze_feature_encoder()
    if w2v.post_extract_proj is None:
        # fairseq has no projection where the CNN is as wide as the transformer (the tiny
        # model); transformers' is the identity then (hf_export), and must stay so
        model.wav2vec2.feature_projection.projection.requires_grad_(False)
    return model.fairseq_training(cfg.common.seed, m.freeze_finetune_updates, m.apply_mask).train()


def training_arguments(cfg, out: Path):
    """TrainingArguments for the recipe (the optimizer and schedule are passed separately)."""
    import os

    from transformers import TrainingArguments

    if cfg.common.get("wandb_project"):  # transformers' WandbCallback reads the variable
        os.environ["WANDB_PROJECT"] = str(cfg.common.wandb_project)
    settings = optimizer_config(cfg)
    betas = settings["betas"]
    return TrainingArguments(
        output_dir=str(out / "trainer"), max_steps=int(cfg.optimization.max_update),
        gradient_accumulation_steps=int(cfg.optimization.update_freq[0]),
        per_device_train_batch_size=1,  # the batches are fairseq's (max_tokens)
        learning_rate=float(cfg.optimization.lr[0]), adam_beta1=betas[0], adam_beta2=betas[1],
        adam_epsilon=settings["eps"], weight_decay=settings["weight_decay"],
        max_grad_norm=float(cfg.optimization.clip_norm), seed=int(cfg.common.seed),
        use_cpu=bool(cfg.common.cpu), save_strategy="no", eval_strategy="no",
        # wandb as fairseq's runs have it (common.wandb_project, WANDB_PROJECT): one run per
        # training run in RUN/wandb/, offline unless WANDB_MODE=online, resumed on its id
        report_to=["wandb"] if cfg.common.get("wandb_project") else [],
        run_name=os.environ.get("WANDB_NAME"),
        logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False, fp16=bool(cfg.common.fp16), bf16=False,
        # GPUS: one process per device under torchrun (gloo on CPU); frozen or dropped layers
        # leave parameters without gradients in some updates
        ddp_backend="gloo" if cfg.common.cpu and world()[1] > 1 else None,
        ddp_find_unused_parameters=True,
        average_tokens_across_devices=False)


def optimizer_config(cfg) -> dict:
    """fairseq's FairseqAdam.optimizer_config for the recipe (FairseqAdamConfig's defaults for
    what it leaves out)."""
    from fairseq.optim.adam import FairseqAdamConfig

    defaults = FairseqAdamConfig()
    betas = cfg.optimizer.get("adam_betas", defaults.adam_betas)
    betas = eval(betas) if isinstance(betas, str) else list(betas)  # as fairseq does
    return {"lr": float(cfg.optimization.lr[0]), "betas": tuple(betas),
            "eps": float(cfg.optimizer.get("adam_eps", defaults.adam_eps)),
            "weight_decay": float(cfg.optimizer.get("weight_decay", defaults.weight_decay))}


COMPLETE = "complete"  # written last into a transformers checkpoint-N folder: the save finished


def last_saved(folder: Path) -> Path | None:
    """The newest complete checkpoint-N folder of the Trainer (None: none); one a kill cut
    short has no COMPLETE and is never resumed from."""
    found = [p for p in Path(folder).glob("checkpoint-*") if (p / COMPLETE).is_file()]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


SAVE_SIGNALLED = {"signalled": False}  # set by the save signal (save_on_signal)


def save_on_signal() -> None:
    """The save signal of w2v2_plugin.no_work_lost (USR2, or the one W2V2_SAVE_SIGNAL names: a
    SLURM job's USR1 before its time limit) asks for a save at the end of the current epoch
    (an update or a few with 10 minutes of audio), then a stop with status STOPPED (main)."""
    import signal

    from w2v2_plugin.no_work_lost import save_signal

    signal.signal(save_signal(), lambda *_: SAVE_SIGNALLED.update(signalled=True))


def epoch_end_saves(every: int):
    """A callback: save at the end of an epoch once `every` updates (the recipe's
    checkpoint.save_interval_updates) have passed since the last save, or the save signal came
    (then stop). At an epoch's end a resumed run needs no position inside fairseq's epoch, only
    the epoch (set_epoch)."""
    from transformers import TrainerCallback

    class EpochEndSaves(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.last = state.global_step  # a resumed run counts from its checkpoint

        def on_epoch_end(self, args, state, control, **kwargs):
            if state.global_step >= state.max_steps:
                return control
            if all_summed(SAVE_SIGNALLED["signalled"])[0]:  # any process's: all stop there
                SAVE_SIGNALLED["signalled"] = True
                control.should_save = control.should_training_stop = True
            elif every > 0 and state.global_step - self.last >= every:
                control.should_save, self.last = True, state.global_step
            return control

    return EpochEndSaves()


def all_summed(*values: float) -> list[float]:
    """The values summed over the training processes (themselves with one)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [float(v) for v in values]
    total = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(total)
    return total.tolist()


def optimizer_class_for(cfg):
    """The optimizer class optimizer._name names (refusals has checked it can be built here)."""
    import torch
    from fairseq.optim.adam import Adam

    name = cfg.optimizer._name
    if name == "adamw":
        return torch.optim.AdamW
    if name == "adamw_bnb_8bit":
        # transformers 4.19's adamw_bnb_8bit; weight decay 0 in the seed, so Adam = AdamW here
        from bitsandbytes.optim import Adam8bit
        return Adam8bit
    return Adam


class Validation:
    """fairseq's validation on dataset.valid_subset as its CTC criterion scores it (greedy CTC
    output, letters post-processed to words, word errors / reference words), at the updates
    fairseq's train loop validates at; the best so far (lowest WER, the later of equals, as
    fairseq's checkpoint_best) kept in transformers/best/ with its WER."""

    def __init__(self, cfg, task, batches, out: Path):
        d = cfg.dataset
        self.cfg, self.task, self.batches = cfg, task, batches
        self.subset = str(d.valid_subset).split(",")[0]
        self.folder = out / "best"
        task.load_dataset(self.subset, combine=False, epoch=1)
        self.best = json.loads((self.folder / "wer.json").read_text())["wer"] \
            if (self.folder / COMPLETE).is_file() else None
        self.log = None  # the Trainer's log (wandb), when it reports

    def due(self, update: int, max_update: int, epoch_end: int | None = None) -> bool:
        """fairseq_cli/train.py's validate_and_save: at the end, every validate_interval_updates
        and every validate_interval epochs; none before validate_after_updates, none with
        disable_validation."""
        d = self.cfg.dataset
        if d.get("disable_validation") or update < int(d.validate_after_updates or 0):
            return False
        if update >= max_update:
            return True
        every = int(d.validate_interval_updates or 0)
        return (every > 0 and update % every == 0) or \
            (epoch_end is not None and epoch_end % max(int(d.validate_interval), 1) == 0)

    def wer(self, model) -> float:
        """Greedy CTC on the subset, decoded and scored as `make decode`'s Viterbi rows are
        (decoders.viterbi.words, score.corpus_scores): fairseq's WER."""
        import torch

        from w2v2_10min.decoders import viterbi
        from w2v2_10min.formats import words_of
        from w2v2_10min.score import corpus_scores

        d, dictionary = self.cfg.dataset, self.task.target_dictionary
        itr = self.task.get_batch_iterator(
            dataset=self.task.dataset(self.subset), max_tokens=d.max_tokens_valid,
            max_sentences=d.batch_size_valid, max_positions=self.batches.max_positions,
            ignore_invalid_inputs=d.skip_invalid_size_inputs_valid_test,
            required_batch_size_multiple=d.required_batch_size_multiple,
            seed=self.cfg.common.seed, num_workers=0).next_epoch_itr(shuffle=False)
        refs, hyps = [], []
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            for sample in itr:
                inputs = self.batches.inputs(sample, training=False)
                logits = model(input_values=inputs["input_values"].to(device),
                               attention_mask=inputs["attention_mask"].to(device)).logits
                frames = model._get_feat_extract_output_lengths(inputs["attention_mask"].sum(-1))
                hyps += viterbi.words(dictionary, [row[:n].float().cpu().numpy() for row, n in
                                                   zip(logits, frames.tolist())])
                refs += [words_of(dictionary.string(target[target >= 0]))
                         for target in inputs["labels"]]
        model.train(was_training)
        return corpus_scores(refs, hyps)["wer"]

    def __call__(self, model, update: int) -> float:
        """Validate; keep the model as the best when it is."""
        wer = self.wer(model)
        print(f"[{self.subset}] valid on '{self.subset}' subset | wer {wer:.3f} | "
              f"num_updates {update}", flush=True)
        if self.log is not None:
            self.log({f"{self.subset}_wer": wer})
        if self.best is None or wer <= self.best:
            self.keep(model, update, wer)
        return wer

    def keep(self, model, update: int, wer: float | None) -> None:
        """The model as the best (wer None: not validated), written whole before it replaces
        the one before."""
        import shutil

        self.best = wer
        partial = self.folder.with_name(self.folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        plain_copy(model).save_pretrained(partial)
        (partial / "wer.json").write_text(json.dumps({"wer": wer, "update": update}) + "\n")
        (partial / COMPLETE).write_text(f"{update}\n")
        shutil.rmtree(self.folder, ignore_errors=True)
        partial.rename(self.folder)


def plain_copy(model):
    """The model as a plain Wav2Vec2ForCTC (what save_pretrained writes and others load)."""
    import transformers

    plain = transformers.Wav2Vec2ForCTC(model.config)
    plain.load_state_dict(model.state_dict())
    return plain.eval()


def validations(validation: Validation):
    """A callback: validate after the updates (and epochs) fairseq validates at."""
    from transformers import TrainerCallback

    class Validations(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if world()[0] == 0 and validation.due(state.global_step, state.max_steps):
                validation(model, state.global_step)

        def on_epoch_end(self, args, state, control, model=None, **kwargs):
            epoch = round(state.epoch or 0)
            if world()[0] == 0 and not validation.due(state.global_step, state.max_steps) and \
                    validation.due(state.global_step, state.max_steps, epoch_end=epoch):
                validation(model, state.global_step)

    return Validations()


def make_trainer(cfg, model, batches, out: Path, optimizer_class=None, validation=None):
    """transformers' Trainer on the model with fairseq's Adam, schedule and batches."""
    import torch
    from fairseq import utils
    from transformers import Trainer

    sentence_avg = bool(cfg.optimization.sentence_avg)
    rank, processes = world()
    # transformers 4's Trainer divides each batch's loss by the accumulation steps (the seed's)
    per_accumulation = setting(cfg, "criterion.loss_divisor") == "accumulation"
    seed = int(cfg.common.seed)
    log_interval = int(cfg.common.log_interval)

    class FairseqStepTrainer(Trainer):
        """An update = fairseq's: micro-batch gradients summed, then x 1/utterances."""

        loss_is_scaled_for_ga = True  # the update's gradients are scaled below, not per batch

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.micro, self.sums, self.updates = 0, 0.0, []

        def get_train_dataloader(self):
            return batches

        def _save_checkpoint(self, model, trial):
            """transformers' checkpoint, the updates so far, then COMPLETE; older ones go."""
            import shutil

            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()  # each process's RNG state saved
            if rank != 0:
                return
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            (folder / "updates.json").write_text(json.dumps(self.updates))
            (folder / COMPLETE).write_text(f"{self.state.global_step}\n")
            for old in folder.parent.glob("checkpoint-*"):
                if old != folder:
                    shutil.rmtree(old)
            # as fairseq says it (`make status` reads the update a run resumes from)
            print(f"Saved checkpoint {folder} @ {self.state.global_step} updates", flush=True)

        def _get_num_items_in_batch(self, batch_samples, device):
            real = [b for b in batch_samples if not b["dummy"]]
            if sentence_avg:  # fairseq's sample_size
                return sum(len(b["id"]) for b in real)
            return sum(int((b["labels"] != -100).sum()) for b in real)

        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.micro == 0:
                utils.set_torch_seed(seed + self.state.global_step)  # fairseq's _set_seed
            loss = super().training_step(model, inputs, num_items_in_batch)
            self.micro += 1
            if self.micro == self.current_gradient_accumulation_steps:  # the update's last
                # over processes (GPUS): the update's utterances and losses, as fairseq's
                # all-reduce; DDP has averaged the gradients, fairseq sums them: x processes
                num_items_in_batch, self.sums = all_summed(num_items_in_batch, self.sums)
                divisor = float(self.micro if per_accumulation else num_items_in_batch) / \
                    (1 if per_accumulation else processes)
                for p in model.parameters():  # fairseq's optimizer.multiply_grads
                    if p.grad is not None:
                        p.grad.mul_(1.0 / divisor)
                self.updates.append({
                    "update": self.state.global_step + 1,
                    "loss": self.sums / float(num_items_in_batch) / math.log(2),
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "sample_size": int(num_items_in_batch)})
                if rank == 0 and progress(self.updates[-1], self.args.max_steps,
                                          log_interval) and self.args.report_to:
                    self.log({k: self.updates[-1][k] for k in ("loss", "lr", "sample_size")})
                self.micro, self.sums = 0, 0.0
            return loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            core = self.accelerator.unwrap_model(model)
            core.num_updates = self.state.global_step
            with core.draws.batch(self.state.global_step, inputs["id"]):
                outputs = model(input_values=inputs["input_values"],
                                attention_mask=inputs["attention_mask"], labels=inputs["labels"])
            loss = outputs.loss * 0.0 if inputs["dummy"] else outputs.loss  # fairseq's ignore_grad
            self.sums += loss.item()  # fairseq logs the criterion's sums
            return (loss, outputs) if return_outputs else loss

    params = [p for p in model.parameters() if p.requires_grad]
    settings = optimizer_config(cfg)
    optimizer = (optimizer_class or optimizer_class_for(cfg))(params, **{**settings, "lr": 1.0})
    rate = fairseq_rate(cfg)
    # base rate 1: the factor is fairseq's rate itself, so update k runs at lr(k) exactly
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    from transformers.trainer_callback import PrinterCallback

    trainer = FairseqStepTrainer(model=model, args=training_arguments(cfg, out),
                                 optimizers=(optimizer, schedule),
                                 callbacks=[epoch_end_saves(
                                     int(cfg.checkpoint.save_interval_updates or 0)),
                                     *([validations(validation)] if validation else [])])
    trainer.remove_callback(PrinterCallback)  # its dicts: the progress lines say it already
    if validation is not None and trainer.args.report_to:
        validation.log = trainer.log
    return trainer


def train(cfg, manifests: Path, run_folder: Path, head=None, optimizer_class=None) -> dict:
    """Train the recipe `cfg` (fairseq-hydra-train's composed config) on `manifests` with
    transformers; write RUN_FOLDER/transformers/. `head`: (weight, bias) of the output layer to
    start from (default: fairseq's own initialisation under common.seed). `optimizer_class`:
    another torch optimizer instead of fairseq's Adam (to show what that changes).
    Returns the record written to transformers/trainer.json, with the updates."""
    import os

    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    cfg = resolve(cfg, manifests)
    check(cfg)  # before anything is built

    import transformers

    from w2v2_10min.hf_export import max_logit_difference, processor

    out = Path(run_folder) / "transformers"
    task, fairseq_model = fairseq_setup(cfg)
    if head is not None:  # both trainers from the same head: fairseq's model gets it too
        import torch

        with torch.no_grad():
            fairseq_model.w2v_encoder.proj.weight.copy_(head[0])
            fairseq_model.w2v_encoder.proj.bias.copy_(head[1])
    model = hf_model(fairseq_model, cfg, head)
    batches = FairseqBatches(cfg, task, fairseq_model)
    train_set = task.dataset(cfg.dataset.train_subset)
    # the starting point is fairseq's: logits of both models on two training utterances
    start = max_logit_difference(fairseq_model, model,
                                 [train_set[i]["source"] for i in range(min(2, len(train_set)))])
    del fairseq_model
    validation = Validation(cfg, task, batches, out)
    trainer = make_trainer(cfg, model, batches, out, optimizer_class, validation)
    resume = last_saved(Path(trainer.args.output_dir))
    if resume is not None:  # an interrupted run: on from its last complete checkpoint
        trainer.updates = json.loads((resume / "updates.json").read_text())
        print(f"resuming from {resume} ({len(trainer.updates)} updates done)", flush=True)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if trainer.state.global_step < trainer.args.max_steps:  # stopped on the save signal
        return {"updates": trainer.updates, "stopped": True}
    if world()[0] != 0:  # the first process writes what the run keeps
        return {"updates": trainer.updates, "worker": True}
    if validation.best is None:  # never validated (validate_after_updates beyond the end)
        print("no validation ran: checkpoint_best.pt is the last update's", flush=True)
        validation.keep(model, len(trainer.updates), None)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    plain_copy(model).save_pretrained(out)
    processor(task.target_dictionary, normalized_input(cfg), model.config, out) \
        .save_pretrained(out)
    with open(out / "updates.jsonl", "w") as f:
        for row in trainer.updates:
            f.write(json.dumps(row) + "\n")
    arguments = trainer.args
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate's wrapper
    record = {"start_max_abs_logit_difference": start,
              "mapping": {k: v for k, v in HONOURED.items() if k in flat(cfg)},
              "training_arguments": {k: getattr(arguments, k) for k in (
                  "max_steps", "gradient_accumulation_steps", "learning_rate", "adam_beta1",
                  "adam_beta2", "adam_epsilon", "weight_decay", "max_grad_norm", "seed")},
              "optimizer": f"{type(optimizer).__module__}.{type(optimizer).__name__}",
              "versions": {**versions(), "transformers": transformers.__version__},
              "updates": len(trainer.updates),
              "best": json.loads((validation.folder / "wer.json").read_text())}
    (out / "trainer.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return {**record, "updates": trainer.updates, "model": model, "task": task}


def progress(update: dict, max_update: int, every: int) -> bool:
    """A line per `every` updates (and the last) in the run's log, as fairseq's train_inner
    lines say it (`make status` reads num_updates from them); whether it was one."""
    if update["update"] % max(every, 1) == 0 or update["update"] == max_update:
        print(f"[train_inner] loss {update['loss']:.3f} | lr {update['lr']:.4g} | "
              f"sample_size {update['sample_size']} | num_updates {update['update']} "
              f"of {max_update}", flush=True)
        return True
    return False


def normalized_input(cfg) -> bool:
    """Whether the model was trained on normalised audio (fairseq's task.normalize, or the
    seed's transformers normalisation)."""
    return bool(cfg.task.normalize) or \
        setting(cfg, "task.input_normalization") == "transformers"


def write_fairseq_checkpoints(cfg, saves: list) -> None:
    """Each trained Wav2Vec2ForCTC of `saves` ((model, updates, paths) each) as a fairseq
    checkpoint of the recipe's Wav2VecCtc (the state fairseq's Trainer saves: cfg, model,
    optimizer history), written atomically to its paths, so that decode, tune-lm, export-hf
    and compare read a transformers run as they read fairseq's. fairseq's model is built once
    for all. A model trained on transformers-normalised audio (the seed's) says task.normalize
    true, so that fairseq normalises its input too (F.layer_norm: eps 1e-5 where transformers
    has 1e-7; docs/seed-study.md)."""
    import torch
    from omegaconf import OmegaConf

    from w2v2_10min.common import atomic_path
    from w2v2_10min.hf_export import to_fairseq

    _, fairseq_model = fairseq_setup(cfg)
    saved = OmegaConf.to_container(fairseq_model.fairseq_cfg, resolve=True, enum_to_str=True)
    if normalized_input(cfg) and not cfg.task.normalize:
        saved["task"]["normalize"] = saved["model"]["normalize"] = True
        saved["model"]["w2v_args"]["task"]["normalize"] = True  # fairseq asserts they agree
    for model, updates, paths in saves:
        to_fairseq(model, fairseq_model)
        state = {"args": None,
                 "cfg": saved,
                 "model": fairseq_model.state_dict(), "criterion": None,
                 "optimizer_history": [{"criterion_name": "CtcCriterion",
                                        "optimizer_name": "transformers.Trainer (fairseq Adam)",
                                        "lr_scheduler_state": {}, "num_updates": updates}],
                 "task_state": {}, "extra_state": {"trainer": "transformers"},
                 "last_optimizer_state": None}
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                torch.save(state, tmp)


def main(argv=None) -> int:
    """Usage: python -m w2v2_10min.trainers.transformers_trainer --config RUN/config.yaml
    --manifests MANIFESTS --run-dir RUN   (make finetune TRAINER=transformers runs it)

    Trains the composed recipe, then writes RUN/checkpoints/checkpoint_last.pt and
    checkpoint_best.pt (the model of the lowest WER on dataset.valid_subset, validated when
    fairseq validates, as fairseq's checkpoint_best)."""
    import argparse

    from omegaconf import OmegaConf

    from w2v2_10min import layout
    from w2v2_10min.common import out_of_space, write_text_atomic
    from w2v2_plugin.no_work_lost import NO_SPACE, STOPPED

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--manifests", type=Path, required=True)
    # not --run: torchrun would take it for an abbreviation of its own --run-path
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    cfg = resolve(OmegaConf.load(args.config), args.manifests)
    save_on_signal()
    try:
        status = train_and_write(cfg, args.manifests, args.run_dir)
    except OSError as err:  # a save with no space left: the complete saves stay as they were
        if not out_of_space(err):
            raise
        print(f"no space left on device while saving in {args.run_dir}: {err}", flush=True)
        status = NO_SPACE
    if status in (STOPPED, NO_SPACE):  # said in a file too: torchrun's status says "failed"
        try:
            write_text_atomic(layout.stop_status_file(args.run_dir), f"{status}\n")
        except OSError:  # no space for it either: the exit status and the log say it
            pass
    return status


def train_and_write(cfg, manifests: Path, run: Path) -> int:
    """Train; then write RUN/checkpoints/ as fairseq would (the first process); the status."""
    from transformers import Wav2Vec2ForCTC

    from w2v2_10min import layout
    from w2v2_plugin.no_work_lost import STOPPED

    record = train(cfg, manifests, run)
    if record.get("worker"):
        return 0
    if record.get("stopped"):
        print(f"stopped on the save signal after saving update {len(record['updates'])}",
              flush=True)
        return STOPPED
    updates, best = len(record["updates"]), record["best"]
    last = (record["model"], updates, [layout.last_checkpoint(run)])
    if best["update"] == updates:  # the last is the best
        last[2].append(layout.best_checkpoint(run))
        write_fairseq_checkpoints(cfg, [last])
    else:
        write_fairseq_checkpoints(cfg, [last, (
            Wav2Vec2ForCTC.from_pretrained(run / "transformers" / "best"),
            best["update"], [layout.best_checkpoint(run)])])
    said = "" if best["wer"] is None else \
        f", the best on {cfg.dataset.valid_subset} at update {best['update']} " \
        f"(WER {best['wer']:.2f})"
    print(f"transformers trainer: {updates} updates{said}; wrote {layout.checkpoint_dir(run)}",
          flush=True)
    return 0

if __name__ == "__main__":
    from w2v2_10min.common import run_main

    run_main(main)
