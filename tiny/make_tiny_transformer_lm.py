"""Train the tiny corpus's word Transformer LM with fairseq itself, for the tests and the demo.

Usage: python tiny/make_tiny_transformer_lm.py [--corpus tiny/corpus] --out DIR

The released LM (wav2letter's recipes/sota/2019/lm: `lm_librispeech_word_transformer.pt` and
`.dict`) is fairseq's `transformer_lm_gbw` with adaptive input and adaptive softmax (cutoffs
60000,160000, factor 4, tied adaptive weights, untied projections), trained on the lower-cased
LibriSpeech LM corpus. This mirrors it at tiny size on the same text as the 4-gram
(tiny/make_tiny_lm.py: the training pool, never dev or test), lower-cased, and writes
  DIR/tiny_word_transformer.pt    fairseq checkpoint (cfg, model), as the released .pt
  DIR/tiny_word_transformer.dict  its vocabulary, lower case, as the released .dict
  DIR/dict.txt                    the vocabulary upper-cased, beside the .pt, as fairseq's
                                  W2lFairseqLMDecoder reads it (the step users do by hand)
Differences from the released recipe, for a one-core minute: 2 blocks of dimension 32, Adam
instead of NAG, every word kept (the recipe drops words seen under 10 times), no dropout.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min
sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_tiny_lm

from make_tiny_lm import training_sentences  # noqa: E402
from w2v2_10min.common import REPO, UserError, atomic_path, run_main  # noqa: E402
from w2v2_10min.transformer_lm import upper_case_dictionary  # noqa: E402

NAME = "tiny_word_transformer"
# The released recipe's model options, at tiny size (its values in the module docstring).
MODEL = ["--arch", "transformer_lm_gbw", "--decoder-layers", "2",
         "--decoder-attention-heads", "2", "--decoder-ffn-embed-dim", "64",
         "--decoder-input-dim", "32", "--decoder-embed-dim", "32", "--decoder-output-dim", "32",
         "--criterion", "adaptive_loss", "--adaptive-softmax-cutoff", "8,16",
         "--adaptive-input", "--adaptive-input-cutoff", "8,16", "--adaptive-input-factor", "4",
         "--adaptive-softmax-factor", "4", "--adaptive-softmax-dropout", "0",
         "--tie-adaptive-weights", "--dropout", "0", "--attention-dropout", "0",
         "--activation-dropout", "0"]
TRAINING = ["--optimizer", "adam", "--lr", "0.01", "--clip-norm", "0.1",
            "--max-tokens", "2048", "--tokens-per-sample", "256", "--sample-break-mode", "eos",
            "--max-update", "150", "--seed", "1", "--cpu", "--num-workers", "0",
            "--disable-validation", "--no-epoch-checkpoints", "--save-interval", "1000",
            "--log-format", "simple", "--log-interval", "50",
            "--ddp-backend", "legacy_ddp"]  # the recipe's no_c10d, renamed


def fairseq(module: str, args: list, log: Path) -> None:
    """Run a fairseq_cli module; its log's tail as the one-line error on failure."""
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_NUM_THREADS": "1"}
    with log.open("a") as out:
        done = subprocess.run([sys.executable, "-m", f"fairseq_cli.{module}", *map(str, args)],
                              stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        tail = (log.read_text().strip().splitlines() or ["no output"])[-1]
        raise UserError(f"fairseq_cli.{module} failed ({tail}); see {log}")


def train(text: Path, work: Path, log: Path) -> Path:
    """Binarise `text` as the recipe does (fairseq-preprocess --only-source) and train."""
    fairseq("preprocess", ["--only-source", "--trainpref", text, "--validpref", text,
                           "--destdir", work / "data", "--workers", "1"], log)
    fairseq("train", [work / "data", "--task", "language_modeling", *MODEL, *TRAINING,
                      "--save-dir", work / "checkpoints"], log)
    return work / "checkpoints" / "checkpoint_last.pt"


def released_format(checkpoint: Path, target: Path) -> None:
    """The checkpoint as the released one is stored (fairseq of 2019: `args`, a Namespace, and
    no `cfg`), its args parsed by fairseq from the same command line. Byte for byte the same
    from run to run (its SHA-256 keys the tuned LM weights): the data folder is named, not the
    temporary one; the training's timings are left out; fairseq's `_float_tensor` buffers,
    allocated and never written, are zeros."""
    import torch
    from fairseq import options

    parser = options.get_training_parser()
    namespace = options.parse_args_and_arch(parser, [f"{NAME}_data", "--task",
                                                     "language_modeling", *MODEL, *TRAINING])
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state.pop("cfg")
    state["extra_state"].pop("metrics", None)
    state["extra_state"].pop("previous_training_time", None)
    for name, tensor in state["model"].items():
        if name.endswith("_float_tensor"):
            tensor.zero_()
    torch.save({**state, "args": namespace}, target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "tiny" / "corpus")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    sentences = [s.lower() for s in training_sentences(args.corpus)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "text.txt").write_text("".join(s + "\n" for s in sentences))
        args.out.mkdir(parents=True, exist_ok=True)
        log = args.out / f"{NAME}.log"
        log.unlink(missing_ok=True)
        checkpoint = train(work / "text.txt", work, log)
        with atomic_path(args.out / f"{NAME}.dict") as dst:
            shutil.copyfile(work / "data" / "dict.txt", dst)
        with atomic_path(args.out / f"{NAME}.pt") as dst:
            released_format(checkpoint, dst)
    upper_case_dictionary(args.out / f"{NAME}.dict", args.out / "dict.txt")
    print(f"{args.out}/{NAME}.pt: word Transformer LM of {len(sentences)} sentences")
    return 0


if __name__ == "__main__":
    run_main(main)
