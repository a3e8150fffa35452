"""Checkpoints in every layout fairseq released decode like the original, batch-independently.

The stand-ins are the tiny fine-tuned model rewritten by tests/make_legacy_checkpoints.py (the
hydra-era `audio_pretraining` task, a w2v_path on the authors' machines, the argparse era): the
same tensors, so a correct loader gives exactly the original's emissions.
"""
import argparse
import json
import os
import random
import shutil

import numpy as np
import pytest
import torch

from conftest import run_script
from w2v2_10min.common import UserError
from w2v2_10min.emissions import compute as compute_emissions
from w2v2_10min.emissions import to_words
from w2v2_10min.loading import group_norm_features, load_finetuned

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # checkpoints made here
LAYOUTS = ["hydra_old_task", "hydra_lost_w2v", "argparse"]
SUBSET = "dev_other"


@pytest.fixture(scope="module")
def finetuned(tiny_run):
    """checkpoint_last.pt of the tiny model fine-tuned for 20 updates on tiny split 0."""
    return tiny_run / "checkpoints/checkpoint_last.pt"


@pytest.fixture(scope="module")
def legacy(tiny_env, finetuned, tmp_path_factory):
    out = tmp_path_factory.mktemp("legacy")
    run_script("tests/make_legacy_checkpoints.py", "--finetuned", finetuned,
               "--pretrained", tiny_env / "pretrained" / "tiny.pt", "--out", out)
    return out


@pytest.fixture
def data(tiny_env):
    return tiny_env / "manifests" / "10min-0"


def emissions(checkpoint, data, max_tokens=1_600_000):
    model, task, _ = load_finetuned(checkpoint, data)
    frames = compute_emissions(model, task, SUBSET, "cpu", max_tokens)
    dataset = task.dataset(SUBSET)  # the references as the loaded task reads them
    return frames, [to_words(task, dataset[i]["label"].tolist()) for i in range(len(dataset))]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_released_layout_gives_the_original_emissions(legacy, finetuned, data, layout):
    from fairseq import checkpoint_utils

    checkpoint = legacy / f"{layout}.pt"
    with pytest.raises(Exception):  # what fairseq 0.12 alone does with it
        checkpoint_utils.load_model_ensemble_and_task(
            [str(checkpoint)], arg_overrides={"data": str(data)})
    original, original_refs = emissions(finetuned, data)
    loaded, refs = emissions(checkpoint, data)
    assert refs == original_refs
    assert len(loaded) == len(original) > 0
    assert all(np.array_equal(a, b) for a, b in zip(loaded, original))


def test_the_argparse_stand_in_has_the_v0102_layout(legacy):
    state = torch.load(legacy / "argparse.pt", weights_only=False)
    assert sorted(state) == ["args", "extra_state", "last_optimizer_state", "model",
                             "optimizer_history"]
    args = state["args"]
    assert isinstance(args, argparse.Namespace)
    assert (args.task, args.arch, args.labels) == ("audio_pretraining", "wav2vec_ctc", "ltr")
    assert isinstance(args.w2v_args, argparse.Namespace) and args.w2v_args.arch == "wav2vec2"
    assert not os.path.exists(args.w2v_path)
    pretrained = torch.load(legacy / "argparse_pretrained.pt", weights_only=False)
    assert "cfg" not in pretrained and pretrained["args"].criterion == "wav2vec"


def test_decode_writes_the_same_hypotheses_for_a_legacy_file(tmp_path, legacy, finetuned, data):
    for name, checkpoint in (("original", finetuned), ("legacy", legacy / "argparse.pt")):
        run_script("decode.py", "--checkpoint", checkpoint, "--manifests", data, "--subsets", SUBSET,
                   "--run", tmp_path / name, "--device", "cpu")
    hyps = [(tmp_path / name / "decode" / SUBSET / "hyp.wrd").read_text()
            for name in ("original", "legacy")]
    assert hyps[0] == hyps[1]
    record = json.loads((tmp_path / "legacy" / "decode" / SUBSET / "wer.json").read_text())
    assert record["batching"] == {"feature_norm": "group", "max_sentences": 1,
                                  "max_tokens": None, "padded": False}


def error_of(proc) -> str:
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def decode_error(tmp_path, checkpoint, data) -> str:
    return error_of(run_script("decode.py", "--checkpoint", checkpoint, "--manifests", data,
                               "--subsets", SUBSET, "--run", tmp_path / "run", "--device", "cpu",
                               check=False))


def test_an_output_layer_that_does_not_fit_the_dictionary_stops_naming_both(
        tmp_path, finetuned, data):
    manifests = tmp_path / "manifests"
    shutil.copytree(data, manifests)
    dictionary = manifests / "dict.ltr.txt"
    dictionary.write_text("".join(dictionary.read_text().splitlines(True)[:-1]))
    error = decode_error(tmp_path, finetuned, manifests)
    assert str(finetuned) in error and str(dictionary) in error and "32 outputs" in error
    assert not (tmp_path / "run" / "decode").exists()


def test_a_dictionary_in_another_order_stops_naming_both(tmp_path, finetuned, legacy, data):
    manifests = tmp_path / "manifests"
    shutil.copytree(data, manifests)
    dictionary = manifests / "dict.ltr.txt"
    lines = dictionary.read_text().splitlines(True)
    dictionary.write_text("".join([lines[1], lines[0], *lines[2:]]))  # same size, E before |
    error = decode_error(tmp_path, finetuned, manifests)
    assert str(dictionary) in error and str(finetuned) in error
    assert str(data / "dict.ltr.txt") in error  # the one it was trained with, still here
    # a released file, whose training data is elsewhere: fairseq's released dictionary
    error = decode_error(tmp_path, legacy / "hydra_lost_w2v.pt", manifests)
    assert str(dictionary) in error and "fairseq's released dict.ltr.txt" in error


def test_anything_but_a_letter_ctc_model_stops_with_one_line(tmp_path, tiny_env, legacy, data):
    pretrained = tiny_env / "pretrained" / "tiny.pt"
    assert "pre-trained" in decode_error(tmp_path, pretrained, data)
    assert "pre-trained" in decode_error(tmp_path, legacy / "argparse_pretrained.pt", data)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(random.Random(1).randbytes(10_000))
    assert "not a readable fairseq checkpoint" in decode_error(tmp_path, noise, data)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    assert "not a fairseq checkpoint" in decode_error(tmp_path, other, data)
    state = torch.load(legacy / "argparse.pt", weights_only=False)
    state["args"].labels = "wrd"
    torch.save(state, tmp_path / "words.pt")
    assert "not letters" in decode_error(tmp_path, tmp_path / "words.pt", data)
    del state["args"].w2v_args
    state["args"].labels = "ltr"
    torch.save(state, tmp_path / "no_w2v_args.pt")
    assert "w2v_path" in decode_error(tmp_path, tmp_path / "no_w2v_args.pt", data)


def test_group_norm_emissions_do_not_depend_on_batching(finetuned, data):
    model, task, _ = load_finetuned(finetuned, data)
    assert group_norm_features(model)  # like BASE and LARGE (LS-960)
    task.load_dataset(SUBSET)
    dataset = task.dataset(SUBSET)
    with torch.inference_mode():
        alone = [model.get_logits(model(**dataset.collater([dataset[i]])["net_input"]))
                 .transpose(0, 1)[0].float().numpy() for i in range(len(dataset))]
        padded = model(**dataset.collater([dataset[i] for i in range(len(dataset))])["net_input"])
        padded = model.get_logits(padded).transpose(0, 1).float().numpy()
    # zero padding in a batch changes the emissions of a group-norm model...
    assert not all(np.array_equal(a, p[:len(a)]) for a, p in zip(alone, padded))
    # ...so decoding never pads: the same emissions whatever --max-tokens says
    for max_tokens in (1, 60_000, 1_600_000, 10**9):
        batched = compute_emissions(model, task, SUBSET, "cpu", max_tokens)
        assert all(np.array_equal(a, b) for a, b in zip(alone, batched))


def test_a_file_without_pretraining_settings_reads_them_from_the_pretrained_file(
        tmp_path, legacy, finetuned, data):
    """fairseq <= 0.10's public code kept only w2v_path, here on the authors' machines."""
    state = torch.load(legacy / "argparse.pt", weights_only=False)
    del state["args"].w2v_args
    torch.save(state, tmp_path / "no_w2v_args.pt")
    pretrained = tmp_path / "wav2vec_small.pt"
    pretrained.write_bytes((legacy / "argparse_pretrained.pt").read_bytes())
    with pytest.raises(UserError, match="no recorded SHA-256"):  # never unpickled unchecked
        load_finetuned(tmp_path / "no_w2v_args.pt", data, pretrained=pretrained)
    run_script("checkpoints.py", "--record", pretrained)
    model, task, _ = load_finetuned(tmp_path / "no_w2v_args.pt", data, pretrained=pretrained)
    loaded = compute_emissions(model, task, SUBSET, "cpu", 1_600_000)
    original, _ = emissions(finetuned, data)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, original))
