"""w2v2_plugin.seeded_draws: masks and LayerDrop are functions of (seed, update, utterance ids),
drawn with fairseq's own arithmetic (same mask fraction, spans and LayerDrop rate)."""
import numpy as np
import pytest
import torch

from fairseq.data.data_utils import compute_mask_indices, numpy_seed
from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Config, Wav2Vec2Model

from w2v2_plugin.seeded_draws import SeededDraws, seeded_mask_indices

DIM, LAYERS = 16, 6


def tiny_w2v(**changes) -> Wav2Vec2Model:
    """A small wav2vec 2.0 model with the tiny recipe's masks (no dropout, so LayerDrop alone
    decides the encoder's output)."""
    cfg = Wav2Vec2Config(**{
        "conv_feature_layers": "[(16, 10, 5)]", "encoder_layers": LAYERS,
        "encoder_embed_dim": DIM, "encoder_ffn_embed_dim": 32, "encoder_attention_heads": 2,
        "conv_pos": 4, "conv_pos_groups": 2, "final_dim": 8, "mask_prob": 0.3, "mask_length": 5,
        "mask_channel_prob": 0.25, "mask_channel_length": 4, "dropout": 0.0,
        "attention_dropout": 0.0, "activation_dropout": 0.0, "encoder_layerdrop": 0.0,
        **changes})
    return Wav2Vec2Model(cfg).train()


def batch(lengths, frames=60):
    """Features (B, T, C) of utterances of `lengths` frames each, padded to `frames`."""
    x = torch.randn(len(lengths), frames, DIM, generator=torch.Generator().manual_seed(0)) + 3
    padding = torch.arange(frames)[None, :] >= torch.tensor(lengths)[:, None]
    return x, padding


def masks(draws, ids, lengths, update=5):
    """{utterance id: (time mask, channel mask)} that apply_mask gives the batch `ids`."""
    x, padding = batch(lengths)
    with draws.batch(update, torch.tensor(ids)):
        out, time = draws.model.apply_mask(x.clone(), padding)
    channel = (out == 0).all(dim=1)  # channel masks zero a channel at every frame
    return {i: (time[row].tolist(), channel[row].tolist()) for row, i in enumerate(ids)}


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors this small run faster on one thread than on two sharing a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


LENGTHS = {3: 60, 7: 50, 11: 40, 20: 60}


def test_masks_do_not_depend_on_batch_order():
    draws = SeededDraws(tiny_w2v(), seed=1)
    ids = [3, 7, 11, 20]
    forward = masks(draws, ids, [LENGTHS[i] for i in ids])
    backward = masks(draws, ids[::-1], [LENGTHS[i] for i in ids[::-1]])
    assert forward == backward
    assert any(any(t) for t, _ in forward.values()) and any(any(c) for _, c in forward.values())


def test_masks_depend_on_batch_mates_only_through_the_batch_count():
    """fairseq's require_same_masks keeps as many masked frames in every utterance as in the
    batch's least masked one: an utterance keeps a subset of its own mask, nothing else."""
    model = tiny_w2v()
    draws = SeededDraws(model, seed=1)
    alone = masks(draws, [7], [LENGTHS[7]])[7]
    together = masks(draws, [3, 7, 11], [LENGTHS[i] for i in (3, 7, 11)])
    for kept, own in zip(together[7], alone):
        assert set(np.flatnonzero(kept)) <= set(np.flatnonzero(own))
    assert len({sum(time) for time, _ in together.values()}) == 1  # the batch's one count
    model.cfg.require_same_masks = False  # time masks then do not depend on batch-mates
    assert masks(draws, [3, 7, 11], [60, 50, 40])[7][0] == masks(draws, [7], [50])[7][0]


def test_masks_are_a_function_of_seed_and_update():
    ids, lengths = [3, 7], [60, 50]
    first = masks(SeededDraws(tiny_w2v(), seed=1), ids, lengths)
    assert masks(SeededDraws(tiny_w2v(), seed=1), ids, lengths) == first
    assert masks(SeededDraws(tiny_w2v(), seed=2), ids, lengths) != first
    assert masks(SeededDraws(tiny_w2v(), seed=1), ids, lengths, update=6) != first


def test_training_outside_a_batch_is_refused():
    draws = SeededDraws(tiny_w2v(), seed=1)
    with pytest.raises(RuntimeError, match="outside the task's train_step"):
        draws.model.apply_mask(*batch([60]))


def runs(mask):
    """Lengths of the runs of True in each row of a boolean mask."""
    lengths = []
    for row in mask:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
        lengths += list(edges[1::2] - edges[::2])
    return lengths


@pytest.mark.parametrize("shape, lengths, prob, span, min_masks", [
    ((4, 300), [300, 260, 200, 150], 0.65, 10, 2),   # fairseq's time masks, padded batch
    ((4, 64), None, 0.25, 8, 0),                      # the tiny recipe's channel masks
])
def test_mask_statistics_are_fairseqs(shape, lengths, prob, span, min_masks):
    """Fraction masked and span lengths match fairseq's own draws in distribution (means
    within 5 standard errors over 400 batches each). fairseq draws from numpy's global state,
    seeded here: unseeded, its draws differed from run to run, and a rare one failed the test
    (7 Dec 2026; the rows of a batch are not independent, so the standard errors are too
    small: over 300 seeds |z| reached 4.4, and in one run of the tests 5.4)."""
    padding = None if lengths is None else \
        torch.arange(shape[1])[None, :] >= torch.tensor(lengths)[:, None]
    ids = np.arange(shape[0])
    seeded = [seeded_mask_indices((1, 0), update, ids, shape, padding, prob, span,
                                  min_masks=min_masks) for update in range(400)]
    with numpy_seed(0):
        fairseq = [compute_mask_indices(shape, padding, prob, span, min_masks=min_masks)
                   for _ in range(400)]
    for statistic in (lambda m: m.sum(axis=1) / shape[1], runs):
        a = np.concatenate([statistic(m) for m in seeded]).astype(float)
        b = np.concatenate([statistic(m) for m in fairseq]).astype(float)
        error = np.sqrt(a.var() / len(a) + b.var() / len(b))
        assert abs(a.mean() - b.mean()) < 5 * error, (a.mean(), b.mean())
    assert all(len(set(m.sum(axis=1))) == 1 for m in seeded)  # require_same_masks, as fairseq


def test_layerdrop_is_seeded_keeps_its_rate_and_leaves_numpy_alone():
    model = tiny_w2v(encoder_layerdrop=0.5)
    draws = SeededDraws(model, seed=1)
    calls = []
    for layer in model.encoder.layers:
        layer.register_forward_hook(lambda *_: calls.append(1))
    x, padding = batch([12, 10], frames=12)
    state = np.random.get_state()

    def encode(update, ids=(3, 7)):
        with draws.batch(update, torch.tensor(ids)), torch.no_grad():
            return model.encoder(x, padding)[0]

    assert torch.equal(encode(0), encode(0)) and torch.equal(encode(0), encode(0, (7, 3)))
    outputs = [encode(update) for update in range(100)]
    assert any(not torch.equal(outputs[0], out) for out in outputs)
    draws_made = LAYERS * (100 + 4)
    assert abs(len(calls) / draws_made - 0.5) < 5 * np.sqrt(0.25 / draws_made)  # the rate
    assert all(np.array_equal(a, b) for a, b in zip(state[1:], np.random.get_state()[1:]))
    model.eval()  # validation: every layer, no draw needed
    calls.clear()
    model.encoder(x, padding)
    assert len(calls) == LAYERS


@pytest.mark.parametrize("seeded", [True, False])
def test_the_task_option_seeds_the_model_or_leaves_it_fairseqs(tiny_env, monkeypatch, seeded):
    """task.seeded_draws=false (SEEDED=0) builds the model exactly as fairseq's task does."""
    from fairseq.dataclass.configs import FairseqConfig
    from fairseq.models.wav2vec.wav2vec2_asr import Wav2Vec2CtcConfig
    from omegaconf import OmegaConf

    from w2v2_plugin.seeded_draws import SeededAudioFinetuningConfig, SeededAudioFinetuningTask

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # as make finetune sets it
    config = SeededAudioFinetuningConfig(data=str(tiny_env / "manifests" / "10min-0"),
                                         labels="ltr", seeded_draws=seeded)
    model = Wav2Vec2CtcConfig(w2v_path=str(tiny_env / "pretrained" / "tiny.pt"))
    model._name = "wav2vec_ctc"
    root = OmegaConf.structured(FairseqConfig(model=model, task=config))
    root.common.seed = 4
    task = SeededAudioFinetuningTask.setup_task(root.task)
    w2v_model = task.build_model(root.model).w2v_encoder.w2v_model
    replaced = {"apply_mask"} & set(vars(w2v_model)), \
        {"extract_features"} & set(vars(w2v_model.encoder))
    if seeded:
        assert task.draws.seed == 4 and replaced == ({"apply_mask"}, {"extract_features"})
    else:
        assert task.draws is None and replaced == (set(), set())  # the classes' own methods
