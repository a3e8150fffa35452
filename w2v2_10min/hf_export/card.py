"""README.md of an exported folder: the model card (huggingface_hub's metadata and a summary)."""
from __future__ import annotations

from w2v2_10min.layout import IDENTITY

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
