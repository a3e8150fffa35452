"""The `make export-hf` stage: a fine-tuned fairseq checkpoint as a transformers model, verified.

Usage:
  python scripts/hf_export.py --run RUN --manifests MANIFEST_DIR [--out RUN/hf] \
      [--verify-subsets dev_clean ...] [--verify-utterances 10] [--checkpoint CKPT] \
      [--verify-sha256]
  (the run named as in w2v2_10min.stage: --run, its knobs, or --released MODEL)

Writes OUT (in one atomic step) with what `transformers` loads by name:
  config.json, model.safetensors   a `Wav2Vec2ForCTC` whose architecture is read from the
                                   checkpoint's own config (conv layers, widths, norms, ...)
  vocab.json, tokenizer_config.json, processor_config.json
                                   the `Wav2Vec2Processor`: the CTC tokenizer holds the
                                   checkpoint's dict.ltr.txt in fairseq's indices (index 0 `<s>`
                                   is the CTC blank, which transformers calls the pad token;
                                   `|` is the word delimiter); the feature extractor normalises
                                   audio exactly when the checkpoint's task did (`normalize`)
  README.md                        a model card: split, seed, recipe, checkpoint SHA-256, WERs
  export.json                      provenance and the verification below
Before the folder is renamed into place, the written files are loaded back and checked on the
first --verify-utterances utterances of each --verify-subsets subset, each utterance alone:
logits against fairseq's (max abs difference <= 1e-4) and the text of
`pipeline("automatic-speech-recognition")` against fairseq's greedy (Viterbi) words. Nothing is
uploaded; docs/hf-export.md shows how a user uploads the folder.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import re
from pathlib import Path

from w2v2_10min import stage
from w2v2_10min.checkpoints import checkpoint_sha256
from w2v2_10min.common import SAMPLE_RATE, UserError, atomic_path, git_commit, versions
from w2v2_10min.formats import read_tsv
from w2v2_10min.layout import IDENTITY
from w2v2_10min.loading import config_value
from w2v2_10min.records import decoded
from w2v2_10min.stage import Run

LOGIT_TOLERANCE = 1e-4  # fp32, max abs difference per utterance
FAIRSEQ_ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu"}
FEATURE_NORM = {"default": "group", "layer_norm": "layer"}  # fairseq extractor_mode -> transformers

# fairseq parameter names of a fine-tuned Wav2VecCtc -> transformers' Wav2Vec2ForCTC. transformers
# keeps its own table in the conversion script of its source tree, which its wheels leave out
# (checked: 4.57.6 and 5.x), so the correspondence is spelled here, one regular expression per
# module; every parameter on both sides must be matched exactly once (see `state_dict`).
_W2V = r"w2v_encoder\.w2v_model\."
RENAMES = [
    (_W2V + r"mask_emb", "wav2vec2.masked_spec_embed"),
    (_W2V + r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)",
     r"wav2vec2.feature_extractor.conv_layers.\1.conv.\2"),
    # group norm (first layer, extractor_mode=default): Sequential(conv, dropout, norm, gelu)
    (_W2V + r"feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)",
     r"wav2vec2.feature_extractor.conv_layers.\1.layer_norm.\2"),
    # layer norm (every layer, extractor_mode=layer_norm): norm wrapped in TransposeLast()s
    (_W2V + r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)",
     r"wav2vec2.feature_extractor.conv_layers.\1.layer_norm.\2"),
    (_W2V + r"layer_norm\.(weight|bias)", r"wav2vec2.feature_projection.layer_norm.\1"),
    (_W2V + r"post_extract_proj\.(weight|bias)", r"wav2vec2.feature_projection.projection.\1"),
    # weight-normed positional convolution: g and v as torch's weight_norm parametrization
    (_W2V + r"encoder\.pos_conv\.0\.weight_g",
     "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (_W2V + r"encoder\.pos_conv\.0\.weight_v",
     "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (_W2V + r"encoder\.pos_conv\.0\.bias", "wav2vec2.encoder.pos_conv_embed.conv.bias"),
    (_W2V + r"encoder\.layer_norm\.(weight|bias)", r"wav2vec2.encoder.layer_norm.\1"),
    (_W2V + r"encoder\.layers\.(\d+)\.self_attn\.(k|v|q|out)_proj\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.attention.\2_proj.\3"),
    (_W2V + r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.layer_norm.\2"),
    (_W2V + r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (_W2V + r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.feed_forward.output_dense.\2"),
    (_W2V + r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)",
     r"wav2vec2.encoder.layers.\1.final_layer_norm.\2"),
    (r"w2v_encoder\.proj\.(weight|bias)", r"lm_head.\1"),
]


def conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """fairseq's conv_feature_layers, e.g. "[(512, 10, 5)] + [(512, 3, 2)] * 4", as a list.

    Only list and tuple literals joined by + and * are accepted (fairseq itself eval()s it).
    """
    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(n) for n in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = value(node.left), value(node.right)
            return left + right if isinstance(node.op, ast.Add) else left * right
        raise ValueError(ast.dump(node))

    try:
        layers = value(ast.parse(spec, mode="eval").body)
        assert all(len(layer) == 3 for layer in layers)
    except (SyntaxError, ValueError, TypeError, AssertionError):
        raise UserError(f"conv_feature_layers {spec!r}: not a list of (dim, kernel, stride)")
    return layers


def hf_config(model, vocab_size: int):
    """The transformers Wav2Vec2Config of a loaded fairseq Wav2VecCtc, from its own config."""
    from transformers import Wav2Vec2Config

    ft = model.cfg                   # the fine-tuning model config (Wav2Vec2CtcConfig)
    w2v = ft.w2v_args.model          # the pre-training model config embedded in the checkpoint
    unsupported = {"layer_type": ("transformer", config_value(w2v, "layer_type", "transformer")),
                   "pos_conv_depth": (1, config_value(w2v, "pos_conv_depth", 1)),
                   "conv_pos_batch_norm": (False, bool(config_value(w2v, "conv_pos_batch_norm", False))),
                   "quantize_input": (False, bool(config_value(w2v, "quantize_input", False)))}
    for key, (expected, found) in unsupported.items():
        if found != expected:
            raise UserError(f"model.w2v_args.model.{key}={found}: transformers' Wav2Vec2ForCTC "
                            f"has no such variant (it needs {key}={expected})")
    mode = config_value(w2v, "extractor_mode", "default")
    activation = config_value(w2v, "activation_fn", "gelu")
    if mode not in FEATURE_NORM or activation not in FAIRSEQ_ACTIVATIONS:
        raise UserError(f"extractor_mode={mode}, activation_fn={activation}: not supported by "
                        "transformers' Wav2Vec2ForCTC")
    layers = conv_layers(w2v.conv_feature_layers)
    return Wav2Vec2Config(
        vocab_size=vocab_size,
        conv_dim=[d for d, _, _ in layers], conv_kernel=[k for _, k, _ in layers],
        conv_stride=[s for _, _, s in layers], conv_bias=bool(config_value(w2v, "conv_bias", False)),
        feat_extract_norm=FEATURE_NORM[mode], feat_extract_activation="gelu",
        hidden_size=w2v.encoder_embed_dim, num_hidden_layers=w2v.encoder_layers,
        num_attention_heads=w2v.encoder_attention_heads,
        intermediate_size=w2v.encoder_ffn_embed_dim,
        hidden_act=FAIRSEQ_ACTIVATIONS[activation], layer_norm_eps=1e-5,
        num_conv_pos_embeddings=w2v.conv_pos, num_conv_pos_embedding_groups=w2v.conv_pos_groups,
        do_stable_layer_norm=bool(config_value(w2v, "layer_norm_first", False)),
        # what fine-tuning used, for a user who goes on training in transformers
        hidden_dropout=ft.dropout, attention_dropout=ft.attention_dropout,
        activation_dropout=ft.activation_dropout, feat_proj_dropout=ft.dropout_input,
        final_dropout=ft.final_dropout, layerdrop=ft.layerdrop,
        mask_time_prob=ft.mask_prob, mask_time_length=ft.mask_length,
        mask_feature_prob=ft.mask_channel_prob, mask_feature_length=ft.mask_channel_length,
        ctc_loss_reduction="sum", ctc_zero_infinity=True,
        # fairseq's dictionary: <s>=0 (the CTC blank, transformers' pad), <pad>=1, </s>=2
        pad_token_id=0, bos_token_id=0, eos_token_id=2,
    )


def state_dict(fairseq_state: dict, config) -> dict:
    """fairseq's parameters under transformers' names; every one used, none missing."""
    import torch

    out = {}
    for key, tensor in fairseq_state.items():
        names = [re.fullmatch(pattern, key) and re.sub(pattern, repl, key)
                 for pattern, repl in RENAMES]
        names = [n for n in names if n]
        if len(names) != 1:
            raise UserError(f"checkpoint parameter {key}: no place in Wav2Vec2ForCTC")
        out[names[0]] = tensor
    projection = "wav2vec2.feature_projection.projection"
    if f"{projection}.weight" not in out:
        # fairseq has no projection when the CNN's width equals the transformer's (the tiny
        # model); transformers always has one: make it the identity.
        if config.conv_dim[-1] != config.hidden_size:
            raise UserError("the checkpoint has no post_extract_proj but its CNN and transformer "
                            "widths differ")
        out[f"{projection}.weight"] = torch.eye(config.hidden_size)
        out[f"{projection}.bias"] = torch.zeros(config.hidden_size)
    return out


def to_transformers(model, head=None, model_class=None):
    """A Wav2Vec2ForCTC (eval mode) holding the fairseq model's weights.

    `model`: a fairseq Wav2VecCtc, fine-tuned, or just built from a pre-trained (headless)
    checkpoint by fairseq (`task.build_model` with model.w2v_path), whose head is then fairseq's
    fresh one; `head`: (weight, bias) of the output layer instead of the model's own;
    `model_class`: a subclass of Wav2Vec2ForCTC to build."""
    from transformers import Wav2Vec2ForCTC

    config = hf_config(model, model.w2v_encoder.proj.out_features)
    hf = (model_class or Wav2Vec2ForCTC)(config)
    weights = state_dict(model.state_dict(), config)
    if head is not None:
        weight, bias = head
        if tuple(weight.shape) != tuple(weights["lm_head.weight"].shape) or \
                tuple(bias.shape) != tuple(weights["lm_head.bias"].shape):
            raise UserError(f"head {tuple(weight.shape)}: the model needs "
                            f"{tuple(weights['lm_head.weight'].shape)}")
        weights["lm_head.weight"], weights["lm_head.bias"] = weight, bias
    expected = hf.state_dict()
    problems = sorted(set(expected) ^ set(weights)) + \
        [k for k in weights if k in expected and weights[k].shape != expected[k].shape]
    if problems:
        raise UserError(f"the checkpoint does not fit Wav2Vec2ForCTC ({len(problems)} "
                        f"parameters differ, first: {problems[0]})")
    hf.load_state_dict(weights, strict=True)
    return hf.eval()


def processor(dictionary, normalize: bool, config, folder: Path):
    """The Wav2Vec2Processor: fairseq's letters in fairseq's indices, the checkpoint's normalize."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    symbols = list(dictionary.symbols)
    if len(set(symbols)) != len(symbols) or symbols[:4] != ["<s>", "<pad>", "</s>", "<unk>"] \
            or "|" not in symbols:
        raise UserError("the checkpoint's dictionary is not a fairseq letter dictionary "
                        "(<s> <pad> </s> <unk> first, then | and the letters)")
    vocab = folder / "vocab.json"
    vocab.write_text(json.dumps({s: i for i, s in enumerate(symbols)}, ensure_ascii=False,
                                indent=2) + "\n")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab), pad_token="<s>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        word_delimiter_token="|", do_lower_case=False)
    features = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=normalize,
        # as transformers' own conversions do: an attention mask only where fairseq used one
        # (layer-norm feature encoders); with group norm, padding would change the features.
        return_attention_mask=config.feat_extract_norm == "layer")
    return Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer)


def verify(model, task, folder: Path, manifests: Path, subsets: list[str],
           utterances: int) -> dict:
    """Load the written folder back; compare with fairseq utterance by utterance (unpadded).

    Per subset: the largest logit difference of the transformers model given fairseq's own
    input (`model`, the conversion alone), the same through the exported feature extractor from
    the audio file (`end_to_end`, what a user gets), and how many pipeline transcripts equal
    fairseq's greedy words. Raises UserError when the conversion is off by more than
    LOGIT_TOLERANCE, or, where fairseq did not normalise audio (so both inputs are the same
    samples), when the end-to-end logits or any transcript differ.
    """
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor, pipeline

    exported = {"hf": Wav2Vec2ForCTC.from_pretrained(folder).eval(),
                "processor": Wav2Vec2Processor.from_pretrained(folder),
                "asr": pipeline("automatic-speech-recognition", model=str(folder), device="cpu")}
    normalize = bool(task.cfg.normalize)
    report = {}
    for subset in subsets:
        report[subset] = verify_subset(model, task, exported, manifests, subset, utterances)
        check = report[subset]
        strict = check["max_abs_logit_difference_model"] if normalize else \
            max(check["max_abs_logit_difference_model"],
                check["max_abs_logit_difference_end_to_end"])
        if strict > LOGIT_TOLERANCE or \
                (check["transcripts_equal"] != check["utterances"] and not normalize):
            raise UserError(f"verification failed on {subset}: max |logit difference| "
                            f"{strict:.3g} (tolerance {LOGIT_TOLERANCE}), "
                            f"{check['utterances'] - check['transcripts_equal']} of "
                            f"{check['utterances']} pipeline transcripts differ from fairseq's")
    return report


def verify_subset(model, task, exported: dict, manifests: Path, subset: str,
                  utterances: int) -> dict:
    """The first `utterances` of a subset, each alone: logits of fairseq against transformers
    (given fairseq's input, and from the audio file) and the pipeline's text against fairseq's
    greedy words."""
    import soundfile
    import torch

    from w2v2_10min.decoders import viterbi

    root, rows = read_tsv(manifests / f"{subset}.tsv")
    task.load_dataset(subset)
    dataset = task.dataset(subset)
    if len(dataset) != len(rows):
        raise UserError(f"{subset}.tsv: fairseq loaded {len(dataset)} of {len(rows)} "
                        "utterances; fix the manifest")
    normalize = bool(task.cfg.normalize)
    worst = {"model": 0.0, "end_to_end": 0.0}
    texts, frames = [], []
    for index, (path, _) in enumerate(rows[:utterances]):
        audio, rate = soundfile.read(Path(root) / path, dtype="float32")
        with torch.inference_mode():
            source = dataset[index]["source"][None]  # fairseq's own reading (and normalize)
            ours = model.get_logits(model(source=source, padding_mask=None))
            ours = ours.transpose(0, 1)[0].float()
            logits = {"model": exported["hf"](input_values=source).logits[0]}
            logits["end_to_end"] = exported["hf"](**exported["processor"](
                audio, sampling_rate=rate, return_tensors="pt")).logits[0] \
                if normalize else logits["model"]
        for key, theirs in logits.items():
            if theirs.shape != ours.shape:
                raise UserError(f"{subset} {path}: {tuple(theirs.shape)} frames x letters "
                                f"from transformers, {tuple(ours.shape)} from fairseq")
            worst[key] = max(worst[key], (ours - theirs).abs().max().item())
        frames.append(ours.numpy())
        texts.append(exported["asr"]({"raw": audio, "sampling_rate": rate})["text"])
    hyps = viterbi.words(task.target_dictionary, frames)
    # transformers keeps a run of spaces where the model emits "|" twice; fairseq's letter
    # post-processing (and so hyp.wrd and every WER) collapses it.
    same = sum(" ".join(t.split()) == h for t, h in zip(texts, hyps))
    return {"utterances": len(texts), "transcripts_equal": same,
            **{f"max_abs_logit_difference_{k}": v for k, v in worst.items()}}


NORMALIZE_NOTE = """The feature extractor normalises each utterance to zero mean and unit variance,
  as fine-tuning did, but with transformers' variance floor (1e-7) where fairseq's layer norm
  uses 1e-5: inputs differ by about 0.1 % in scale, so logits differ slightly more than the
  conversion alone (see the table above), and a transcript may differ where two letters tie."""

# what the model card repeats from the run's run.json (the recipe and where it started)
RUN_FIELDS = ("pretrained", "pretrained_sha256", "trained_lr", "trained_lr_decay", "overrides",
              "effective_batch_seconds", "split_seconds", "commit", "versions")

GROUP_NORM_NOTE = """The first convolution is normalised over time (group norm) without a padding
  mask, in fairseq as here: zero padding in a batch changes every frame. Transcribe one utterance at
  a time (the pipeline's default) for results that do not depend on batching."""

LIBRISPEECH = {"dev_clean": ("clean", "validation"), "dev_other": ("other", "validation"),
               "test_clean": ("clean", "test"), "test_other": ("other", "test")}


def model_card(identity: dict, sha256: str, wers: list[dict], report: dict, config,
               normalize: bool, run: dict) -> str:
    """README.md of the exported folder: metadata (huggingface_hub's schema) and a summary."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    meta = {k: v for k, v in identity.items() if k in IDENTITY and v != ""}
    model, protocol = meta.get("model", "?"), meta.get("protocol", "?")
    real = model != "tiny"  # the tiny model's sets are synthetic, not LibriSpeech
    data_name = "Libri-light 10 min" if real else "the embedded tiny corpus"
    title = f"wav2vec 2.0 {model}, fine-tuned on {data_name} (split {meta.get('split')}, " \
            f"seed {meta.get('seed')})" if protocol != "released" else \
        f"wav2vec 2.0 {model}, fairseq's released 10-minute fine-tuned checkpoint"
    results = [EvalResult(task_type="automatic-speech-recognition",
                          dataset_type="librispeech_asr", dataset_name=f"LibriSpeech {r['subset']}",
                          dataset_config=LIBRISPEECH[r["subset"]][0],
                          dataset_split=LIBRISPEECH[r["subset"]][1], metric_type="wer",
                          metric_value=round(r["wer"], 2),
                          metric_name=f"WER ({r.get('decoder', 'viterbi')})")
               for r in wers if real and r["subset"] in LIBRISPEECH]
    data = ModelCardData(language="en", license="mit", library_name="transformers",
                         pipeline_tag="automatic-speech-recognition", model_name=title,
                         tags=["wav2vec2", "ctc", "fairseq", "libri-light"],
                         datasets=["librispeech_asr"] if real else None,
                         eval_results=results or None)
    provenance = [(k, v) for k, v in sorted(meta.items())] + \
        [("fairseq checkpoint SHA-256", sha256)] + \
        [(f"{k} (run.json)", run[k]) for k in RUN_FIELDS if k in run] + \
        [("architecture", f"{config.num_hidden_layers} layers x {config.hidden_size}, feature "
                          f"encoder norm {config.feat_extract_norm}, stable layer norm "
                          f"{config.do_stable_layer_norm}")]
    provenance = "\n".join(f"| {k} | `{v}` |" for k, v in provenance)
    rows = "\n".join(f"| {r.get('decoder', 'viterbi')} | {r['subset']} | {r['wer']:.2f} | "
                     f"{r['errors']} / {r['words']} | {r.get('utterances', '')} |"
                     for r in wers) or "| — | not decoded | | | |"
    checks = "\n".join(f"| {s} | {v['utterances']} | {v['max_abs_logit_difference_model']:.2g} | "
                       f"{v['max_abs_logit_difference_end_to_end']:.2g} | "
                       f"{v['transcripts_equal']} |" for s, v in report.items())
    notes = [NORMALIZE_NOTE if normalize else
             "The feature extractor passes audio through unnormalised, as fine-tuning did.",
             GROUP_NORM_NOTE if config.feat_extract_norm == "group" else
             "Batches may be padded: the feature extractor returns an attention mask."]
    body = CARD.format(title=title, provenance=provenance, rows=rows, checks=checks,
                       notes="\n".join(f"- {note}" for note in notes))
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


CARD = """
# {title}

Converted from a fairseq checkpoint by the w2v2-10min recipe repository (`make export-hf`).

```python
from transformers import pipeline
asr = pipeline("automatic-speech-recognition", model="path/to/this/folder")
print(asr("utterance.flac")["text"])  # 16 kHz mono; greedy CTC decoding, upper-case letters
```

## Provenance
| | |
|---|---|
{provenance}

## Word error rates (the run's wer.json files; no language model unless the decoder has one)
| decoder | subset | WER (%) | errors / words | utterances |
|---|---|---|---|---|
{rows}

## Checked at export
Each utterance alone, the exported files loaded back with `transformers`: logits against
fairseq's (fp32) given the same input and given the audio file, and the text of
`pipeline("automatic-speech-recognition")` against fairseq's greedy words.

| subset | utterances | max abs logit difference | from the audio file | transcripts equal |
|---|---|---|---|---|
{checks}

## Notes
- Vocabulary: fairseq's `dict.ltr.txt` in fairseq's indices. Index 0, `<s>`, is the CTC blank;
  transformers calls it the pad token (`pad_token_id` 0). `|` separates words.
- Where the model emits the word delimiter twice with a blank between, the pipeline's text has
  two spaces; fairseq (and the WERs above) collapse them: `" ".join(text.split())`.
{notes}
"""


def export(args, run: Run) -> dict:
    """Convert, write the folder atomically, verify before it is renamed into place."""
    from transformers.utils import logging as transformers_logging

    from w2v2_10min.loading import load_finetuned

    transformers_logging.disable_progress_bar()
    sha256 = checkpoint_sha256(run.checkpoint, args.verify_sha256)
    model, task, _ = load_finetuned(run.checkpoint, args.manifests, "cpu")
    normalize = bool(task.cfg.normalize)
    if normalize != bool(config_value(model.cfg.w2v_args.task, "normalize", normalize)):
        raise UserError(f"{run.checkpoint}: fine-tuned with normalize={normalize} but "
                        "pre-trained without; transformers cannot reproduce that")
    hf = to_transformers(model)
    identity = run.identity or {}
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        hf.save_pretrained(tmp)
        processor(task.target_dictionary, normalize, hf.config, tmp).save_pretrained(tmp)
        del hf
        report = verify(model, task, tmp, args.manifests, args.verify_subsets,
                        args.verify_utterances)
        record = {"checkpoint": str(run.checkpoint.resolve()), "checkpoint_sha256": sha256,
                  "manifest": str(args.manifests.resolve()), "commit": git_commit(),
                  "versions": {**versions(), "transformers": _version("transformers")},
                  "normalize": normalize, "verification": report,
                  "logit_tolerance": LOGIT_TOLERANCE, **identity}
        (tmp / "export.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        settings = json.loads((run.folder / "run.json").read_text()) \
            if (run.folder / "run.json").is_file() else {}
        (tmp / "README.md").write_text(model_card(identity, sha256, decoded(run.folder), report,
                                                  model_config(tmp), normalize, settings))
    return record


def model_config(folder: Path):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config.from_pretrained(folder)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def up_to_date(out: Path, checkpoint: Path, run: Path | None) -> bool:
    """An export made from the same file, newer than it and than every wer.json of the run."""
    record = out / "export.json"
    inputs = [checkpoint] + (sorted(run.glob("decode*/*/wer.json")) if run else [])
    if not record.is_file() or \
            record.stat().st_mtime_ns < max(p.stat().st_mtime_ns for p in inputs):
        return False
    try:
        return json.loads(record.read_text())["checkpoint"] == str(checkpoint.resolve())
    except (ValueError, KeyError):
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stage.add_run_arguments(parser)
    parser.add_argument("--out", type=Path, help="the folder to write (default: RUN/hf)")
    parser.add_argument("--verify-subsets", nargs="+", default=["dev_other"])
    parser.add_argument("--verify-utterances", type=int, default=10,
                        help="utterances of each subset to check (from the top of the manifest)")
    args = parser.parse_args(argv)
    run = stage.resolve_run(args)
    args.out = args.out or run.folder / "hf"
    stage.check_manifests(args.manifests, args.verify_subsets, exts=("tsv",))
    if up_to_date(args.out, run.checkpoint, run.folder):
        print(f"{args.out}: up to date with {run.checkpoint}")
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with stage.fairseq_stage("export-hf", str(args.out), run.folder, "export-hf"):
        record = export(args, run)
    for subset, check in record["verification"].items():
        print(f"{subset}: {check['utterances']} utterances, max |logit difference| "
              f"{check['max_abs_logit_difference_model']:.2g} (from the audio file: "
              f"{check['max_abs_logit_difference_end_to_end']:.2g}), pipeline transcripts equal "
              f"to fairseq's: {check['transcripts_equal']}")
    print(f"wrote {args.out}; to publish it: .venv/bin/hf upload <you>/<model-name> {args.out} .")
    return 0
