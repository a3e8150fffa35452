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

The package: convert.py (config, weights, processor; also a pre-trained, headless checkpoint
with a head given by the caller), verify.py (the checks), card.py (README.md); this module is
the stage (export, up_to_date, main). `main` takes the run's identity and run.json settings
from the stage's run (w2v2_10min.stage.Run) and gives them to `export` as arguments.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from w2v2_10min import layout, stage
from w2v2_10min.checkpoints import checkpoint_sha256
from w2v2_10min.common import UserError, atomic_path, git_commit, versions
from w2v2_10min.hf_export.card import RUN_FIELDS, model_card
from w2v2_10min.hf_export.convert import (RENAMES, conv_layers, from_pretrained_checkpoint,
                                          hf_config, processor, state_dict, to_fairseq,
                                          to_transformers)
from w2v2_10min.hf_export.verify import LOGIT_TOLERANCE, max_logit_difference, verify
from w2v2_10min.loading import config_value
from w2v2_10min.records import decoded
from w2v2_10min.stage import Run

__all__ = ["RENAMES", "LOGIT_TOLERANCE", "conv_layers", "export", "from_pretrained_checkpoint",
           "hf_config", "main", "max_logit_difference", "processor", "state_dict",
           "to_transformers", "up_to_date", "verify"]


def export(args, run: Run, identity: dict, settings: dict) -> dict:
    """Convert, write the folder atomically, verify before it is renamed into place.

    `identity`: the run's identity (w2v2_10min.layout.IDENTITY keys; {} for none), written into
    export.json and the card; `settings`: what the card repeats of the run's recipe
    (card.RUN_FIELDS). Both come from the caller (`main`); export reads no run.json."""
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
    config = hf.config
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
        (tmp / "README.md").write_text(model_card(identity, sha256, decoded(run.folder), report,
                                                  config, normalize, settings))
    return record


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def up_to_date(out: Path, checkpoint: Path, run: Path | None) -> bool:
    """An export made from the same file, newer than it and than every wer.json of the run."""
    record = out / "export.json"
    inputs = [checkpoint] + (layout.decoded_files(run) if run else [])
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
    args.out = args.out or layout.hf_dir(run.folder)
    stage.check_manifests(args.manifests, args.verify_subsets, exts=("tsv",))
    if up_to_date(args.out, run.checkpoint, run.folder):
        print(f"{args.out}: up to date with {run.checkpoint}")
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # the one call site: the run's identity and recipe settings, read here, given to export
    identity = run.identity or {}
    settings = {k: run.settings[k] for k in RUN_FIELDS if k in run.settings}
    with stage.fairseq_stage("export-hf", str(args.out), run.folder, "export-hf"):
        record = export(args, run, identity, settings)
    for subset, check in record["verification"].items():
        print(f"{subset}: {check['utterances']} utterances, max |logit difference| "
              f"{check['max_abs_logit_difference_model']:.2g} (from the audio file: "
              f"{check['max_abs_logit_difference_end_to_end']:.2g}), pipeline transcripts equal "
              f"to fairseq's: {check['transcripts_equal']}")
    print(f"wrote {args.out}; to publish it: .venv/bin/hf upload <you>/<model-name> {args.out} .")
    return 0
