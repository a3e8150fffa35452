"""The exported folder loaded back and checked against fairseq, utterance by utterance."""
from __future__ import annotations

from pathlib import Path

from w2v2_10min.common import UserError
from w2v2_10min.formats import read_tsv

LOGIT_TOLERANCE = 1e-4  # fp32, max abs difference per utterance


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


def max_logit_difference(model, hf, sources) -> float:
    """The largest |logit difference| of the transformers model against the fairseq model, each
    source (a 1-D waveform tensor, as fairseq's dataset gives it) alone, both in eval mode (no
    masks, no LayerDrop); a UserError above LOGIT_TOLERANCE. The models' modes are restored."""
    import torch

    modes = model.training, hf.training
    model.eval()
    hf.eval()
    worst = 0.0
    try:
        with torch.inference_mode():
            for source in sources:
                ours = model.get_logits(model(source=source[None], padding_mask=None))
                ours = ours.transpose(0, 1)[0].float()
                theirs = hf(input_values=source[None]).logits[0]
                if theirs.shape != ours.shape:
                    raise UserError(f"{tuple(theirs.shape)} frames x letters from transformers, "
                                    f"{tuple(ours.shape)} from fairseq")
                worst = max(worst, (ours - theirs).abs().max().item())
    finally:
        model.train(modes[0])
        hf.train(modes[1])
    if worst > LOGIT_TOLERANCE:
        raise UserError(f"the converted model's logits differ from fairseq's by {worst:.3g} "
                        f"(tolerance {LOGIT_TOLERANCE})")
    return worst
