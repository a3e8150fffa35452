"""fairseq wav2vec 2.0 CTC models as transformers' Wav2Vec2ForCTC: config, weights, processor.

`to_transformers(model)` converts a fairseq `Wav2VecCtc`: fine-tuned (`make export-hf`), or
freshly built by fairseq from a pre-trained, headless checkpoint with its head given by the
caller (`from_pretrained_checkpoint`, the transformers trainer's starting point).
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from w2v2_10min.common import SAMPLE_RATE, UserError
from w2v2_10min.loading import config_value

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

    out = {name: fairseq_state[key] for key, name in transformers_names(fairseq_state).items()}
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


def transformers_names(fairseq_state: dict) -> dict[str, str]:
    """{fairseq parameter name: transformers' name}, every parameter matched exactly once."""
    names = {}
    for key in fairseq_state:
        found = [re.sub(pattern, repl, key) for pattern, repl in RENAMES
                 if re.fullmatch(pattern, key)]
        if len(found) != 1:
            raise UserError(f"checkpoint parameter {key}: no place in Wav2Vec2ForCTC")
        names[key] = found[0]
    return names


def to_fairseq(hf, model):
    """Load a Wav2Vec2ForCTC's weights into the fairseq Wav2VecCtc `model` of the same
    architecture (the inverse of to_transformers), e.g. to write the transformers trainer's
    result as a fairseq checkpoint that every later stage reads as it reads fairseq's own.
    transformers' stand-in projection (where fairseq has none) must still be the identity."""
    import torch

    weights = hf.state_dict()
    state = model.state_dict()
    names = transformers_names(state)
    projection = "wav2vec2.feature_projection.projection"
    if f"{projection}.weight" not in names.values() and f"{projection}.weight" in weights:
        eye = torch.eye(weights[f"{projection}.weight"].shape[0])
        if not (torch.equal(weights[f"{projection}.weight"].cpu(), eye)
                and not weights[f"{projection}.bias"].any()):
            raise UserError("the transformers model's feature projection was trained, and the "
                            "fairseq model has none to hold it")
    model.load_state_dict({key: weights[name].detach().clone() for key, name in names.items()},
                          strict=True)
    return model


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


def from_pretrained_checkpoint(pretrained: Path, manifests: Path, head=None, model_class=None,
                               **model_settings):
    """A pre-trained, headless fairseq checkpoint (a Wav2Vec2Model, e.g. tiny/pretrained/tiny.pt)
    as fairseq's fine-tuning builds it, and as a transformers model.

    fairseq builds its `Wav2VecCtc` (task audio_finetuning on the manifests' dict.ltr.txt,
    normalize as the checkpoint was pre-trained, `model_settings` as the recipe's model keys);
    its head, Linear(d, len(dict)), is xavier-uniform with zero bias, drawn from torch's
    generator as it stands. `head`: (weight, bias) to use instead, in both models, so that two
    trainers start from the same head. Returns (fairseq model, its task, Wav2Vec2ForCTC), both
    in eval mode; check them with verify.max_logit_difference."""
    import torch
    from omegaconf import OmegaConf

    from fairseq import tasks
    from fairseq.dataclass.configs import FairseqConfig
    from fairseq.dataclass.initialize import add_defaults
    from w2v2_10min.loading import pretrained_normalize

    normalize = pretrained_normalize(pretrained)
    cfg = OmegaConf.structured(FairseqConfig)  # the root the model's interpolations name
    cfg.task = {"_name": "audio_finetuning", "data": str(manifests), "labels": "ltr",
                "normalize": normalize}
    cfg.model = {"_name": "wav2vec_ctc", "w2v_path": str(pretrained), **model_settings}
    add_defaults(cfg)
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    if head is not None:
        weight, bias = head
        proj = model.w2v_encoder.proj
        if tuple(weight.shape) != tuple(proj.weight.shape) or \
                tuple(bias.shape) != tuple(proj.bias.shape):
            raise UserError(f"head {tuple(weight.shape)}: the model needs "
                            f"{tuple(proj.weight.shape)} ({len(task.target_dictionary)} symbols)")
        with torch.no_grad():
            proj.weight.copy_(weight)
            proj.bias.copy_(bias)
    return model.eval(), task, to_transformers(model, model_class=model_class)
