"""make export-hf: the tiny run as a transformers model that computes what fairseq computes."""
import json
import shutil
from pathlib import Path

import pytest
from conftest import make, run_script

from w2v2_10min.common import UserError, file_digest
from w2v2_10min.formats import read_tsv

SUBSETS = ["dev_clean", "dev_other", "test_clean", "test_other"]
# Each utterance of these sets is 1.8-2.9 s (28,886-46,462 samples): a batch of 50,000 samples
# holds one, so fairseq decodes each unpadded, as the pipeline sees it.
ONE_PER_BATCH = 50_000


def knobs(env: Path, root: Path) -> list[str]:
    return ["MODEL=tiny", "PROTOCOL=tiny", "SPLIT=0", "SEED=1", f"DATA={env / 'corpus'}",
            f"PRETRAINED_DIR={env / 'pretrained'}", f"MANIFEST_ROOT={env / 'manifests'}",
            f"RUN_ROOT={root}", "EVAL_SETS=" + " ".join(s.replace("_", "-") for s in SUBSETS)]


@pytest.fixture(scope="module")
def run(tiny_env, tmp_path_factory):
    """A fine-tuned tiny run, decoded one utterance per batch, exported."""
    root = tmp_path_factory.mktemp("export-hf")
    make("finetune", *knobs(tiny_env, root), "ARGS=optimization.max_update=300")
    run = root / "tiny-tiny" / "10min-0" / "seed-1"
    run_script("decode.py", "--checkpoint", run / "checkpoints" / "checkpoint_best.pt",
               "--manifests", tiny_env / "manifests" / "10min-0", "--subsets", *SUBSETS, "--run",
               run, "--max-tokens", ONE_PER_BATCH)
    make("export-hf", *knobs(tiny_env, root))
    return run


def audio(manifests: Path, subset: str):
    import soundfile

    root, rows = read_tsv(manifests / f"{subset}.tsv")
    return [soundfile.read(Path(root) / path, dtype="float32")[0] for path, _ in rows]


def test_pipeline_transcribes_as_hyp_wrd(run, tiny_env):
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=str(run / "hf"), device="cpu")
    words = 0
    for subset in SUBSETS:
        hyps = (run / "decode" / subset / "hyp.wrd").read_text().splitlines()
        texts = [asr({"raw": a, "sampling_rate": 16000})["text"]
                 for a in audio(tiny_env / "manifests" / "10min-0", subset)]
        # transformers keeps the run of spaces of a doubled word delimiter; fairseq collapses it
        assert [" ".join(t.split()) for t in texts] == hyps, subset
        words += sum(len(h.split()) for h in hyps)
    assert words > 20  # the model says something, so the comparison means something


def test_logits_equal_fairseqs_on_every_utterance(run, tiny_env):
    import torch
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    from w2v2_10min.loading import load_finetuned

    model, _, _ = load_finetuned(run / "checkpoints" / "checkpoint_best.pt",
                                 tiny_env / "manifests" / "10min-0", "cpu")
    hf = Wav2Vec2ForCTC.from_pretrained(run / "hf").eval()
    processor = Wav2Vec2Processor.from_pretrained(run / "hf")
    for subset in SUBSETS:
        for wav in audio(tiny_env / "manifests" / "10min-0", subset):
            with torch.inference_mode():
                ours = model.get_logits(model(source=torch.from_numpy(wav)[None],
                                              padding_mask=None)).transpose(0, 1)[0]
                theirs = hf(**processor(wav, sampling_rate=16000, return_tensors="pt")).logits[0]
            assert theirs.shape == ours.shape
            assert (theirs - ours).abs().max().item() <= 1e-4
    record = json.loads((run / "hf" / "export.json").read_text())
    assert sorted(record["verification"]) == sorted(SUBSETS)
    assert all(v["transcripts_equal"] == v["utterances"] > 0
               for v in record["verification"].values())


def test_processor_and_config_come_from_the_checkpoint(run, tiny_env):
    from transformers import Wav2Vec2Config, Wav2Vec2Processor

    processor = Wav2Vec2Processor.from_pretrained(run / "hf")
    symbols = ["<s>", "<pad>", "</s>", "<unk>"] + [
        line.split()[0] for line in (tiny_env / "manifests" / "10min-0" / "dict.ltr.txt")
        .read_text().splitlines()]
    assert [processor.tokenizer.convert_ids_to_tokens(i) for i in range(len(symbols))] == symbols
    assert processor.tokenizer.pad_token_id == 0  # fairseq's blank: transformers' CTC blank
    assert processor.tokenizer.word_delimiter_token == "|"
    features = processor.feature_extractor
    assert (features.do_normalize, features.return_attention_mask) == (False, False)  # tiny.yaml
    config = Wav2Vec2Config.from_pretrained(run / "hf")
    assert config.conv_dim == [64] * 7 and config.conv_kernel == [10, 3, 3, 3, 3, 2, 2]
    assert config.conv_stride == [5, 2, 2, 2, 2, 2, 2] and not config.conv_bias
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.intermediate_size) == (64, 2, 2, 128)
    assert (config.feat_extract_norm, config.do_stable_layer_norm) == ("group", False)
    assert (config.num_conv_pos_embeddings, config.num_conv_pos_embedding_groups) == (32, 8)
    assert (config.vocab_size, config.pad_token_id) == (len(symbols), 0)
    assert (run / "hf" / "model.safetensors").is_file()


def test_model_card_names_the_run(run):
    card = (run / "hf" / "README.md").read_text()
    assert "pipeline_tag: automatic-speech-recognition" in card
    assert file_digest(run / "checkpoints" / "checkpoint_best.pt") in card
    assert "| split | `0` |" in card and "| seed | `1` |" in card and "| protocol | `tiny` |" in card
    for subset in SUBSETS:
        record = json.loads((run / "decode" / subset / "wer.json").read_text())
        assert f"| viterbi | {subset} | {record['wer']:.2f} |" in card
    assert "librispeech_asr" not in card  # the tiny sets are not LibriSpeech


def test_rerun_is_a_no_op(run, tiny_env):
    before = (run / "hf" / "export.json").stat().st_mtime_ns
    out = make("export-hf", *knobs(tiny_env, run.parents[2])).stdout
    assert "up to date" in out
    assert (run / "hf" / "export.json").stat().st_mtime_ns == before
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []
    (run / "decode" / "dev_clean" / "wer.json").touch()  # decoded again: the card must follow
    assert "up to date" not in make("export-hf", *knobs(tiny_env, run.parents[2])).stdout


def test_a_wrong_weight_fails_verification(run, tiny_env, tmp_path):
    from safetensors.torch import load_file, save_file

    from w2v2_10min.loading import load_finetuned
    from w2v2_10min.hf_export import verify

    folder = tmp_path / "hf"
    shutil.copytree(run / "hf", folder)
    weights = load_file(folder / "model.safetensors")
    weights["lm_head.bias"][5] += 1e-3  # below any argmax change, above the tolerance
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    model, task, _ = load_finetuned(run / "checkpoints" / "checkpoint_best.pt",
                                    tiny_env / "manifests" / "10min-0", "cpu")
    with pytest.raises(UserError, match="verification failed on dev_clean: max .logit"):
        verify(model, task, folder, tiny_env / "manifests" / "10min-0", ["dev_clean"], 2)


def test_export_before_finetune_says_what_to_do(tiny_env, tmp_path):
    proc = make("export-hf", *knobs(tiny_env, tmp_path), check=False)
    assert proc.returncode != 0
    assert "checkpoint_best.pt: checkpoint not found; run `make finetune` first" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "tiny-tiny").exists()


def test_large_variants_convert(run, tiny_env, tmp_path):
    """LARGE's layer-norm CNN with conv bias and pre-LN transformer, at the tiny model's size."""
    import copy

    import torch
    from fairseq.models.wav2vec.wav2vec2_asr import Wav2VecCtc

    from w2v2_10min.loading import load_finetuned
    from w2v2_10min.hf_export import processor, to_transformers, verify

    manifests = tiny_env / "manifests" / "10min-0"
    model, task, _ = load_finetuned(run / "checkpoints" / "checkpoint_best.pt", manifests, "cpu")
    cfg = copy.deepcopy(model.cfg)
    w2v = cfg.w2v_args.model
    w2v.extractor_mode, w2v.layer_norm_first, w2v.conv_bias = "layer_norm", True, True
    torch.manual_seed(0)
    large = Wav2VecCtc.build_model(cfg, task).eval()  # random weights of that shape
    with torch.no_grad():  # as trained CTC models do, never emit <pad>, </s>, <unk>
        large.w2v_encoder.proj.bias[1:4] = -100.0
    hf = to_transformers(large)
    config = hf.config
    assert (config.feat_extract_norm, config.do_stable_layer_norm, config.conv_bias) == \
        ("layer", True, True)
    folder = tmp_path / "hf"
    folder.mkdir()
    hf.save_pretrained(folder)
    processor(task.target_dictionary, False, config, folder).save_pretrained(folder)
    report = verify(large, task, folder, manifests, ["dev_clean", "dev_other"], 4)
    assert all(v["max_abs_logit_difference_model"] <= 1e-4 and v["transcripts_equal"] == 4
               for v in report.values())


def test_released_checkpoint_exports_beside_its_decodes(run, tiny_env, tmp_path):
    """export-hf-original: the tiny run standing in for BASE's released file (SHA-256 recorded)."""
    from w2v2_10min.checkpoints import record

    released = tmp_path / "released" / "wav2vec_small_10m.pt"
    released.parent.mkdir()
    shutil.copy(run / "checkpoints" / "checkpoint_best.pt", released)
    digest = record(released)
    make("export-hf-original", "MODEL=base", f"RELEASED_DIR={released.parent}",
         f"RUN_ROOT={tmp_path / 'runs'}", f"MANIFEST_ROOT={tiny_env / 'manifests'}", "SPLIT=0",
         "EVAL_SETS=dev-clean", "HF_VERIFY=2")
    folder = tmp_path / "runs" / "base-released" / "hf"
    exported = json.loads((folder / "export.json").read_text())
    assert (exported["checkpoint_sha256"], exported["protocol"]) == (digest, "released")
    assert exported["verification"]["dev_clean"]["utterances"] == 2
    assert "released 10-minute fine-tuned checkpoint" in (folder / "README.md").read_text()


def test_conv_layers_are_read_without_eval():
    from w2v2_10min.hf_export import conv_layers

    assert conv_layers("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2") == \
        [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    with pytest.raises(UserError, match="not a list of"):
        conv_layers("__import__('os').system('true')")


def test_a_pretrained_checkpoint_converts_with_the_callers_head(tiny_env):
    """The headless tiny.pt as fairseq's fine-tuning builds it, and as a Wav2Vec2ForCTC whose
    encoder computes what fairseq's does, with the head the caller gives to both."""
    import torch

    from w2v2_10min.hf_export import from_pretrained_checkpoint, max_logit_difference

    manifests = tiny_env / "manifests" / "10min-0"
    symbols = 4 + len((manifests / "dict.ltr.txt").read_text().splitlines())
    weight = torch.nn.init.xavier_uniform_(torch.empty(symbols, 64))  # fairseq's head init
    bias = torch.zeros(symbols)
    model, task, hf = from_pretrained_checkpoint(tiny_env / "pretrained" / "tiny.pt", manifests,
                                                 head=(weight, bias))
    assert torch.equal(hf.lm_head.weight, weight) and torch.equal(hf.lm_head.bias, bias)
    assert torch.equal(model.w2v_encoder.proj.weight, weight)
    task.load_dataset("dev_other")
    dataset = task.dataset("dev_other")
    assert max_logit_difference(model, hf, [dataset[i]["source"]
                                            for i in range(len(dataset))]) <= 1e-4
    with pytest.raises(UserError, match="head"):
        from_pretrained_checkpoint(tiny_env / "pretrained" / "tiny.pt", manifests,
                                   head=(weight[:-1], bias[:-1]))
