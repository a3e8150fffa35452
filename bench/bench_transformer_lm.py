"""fairseq's W2lFairseqLMDecoder against DECODER=transformer, side by side, on the same emissions.

Usage:
  python bench/bench_transformer_lm.py --run RUN_DIR --manifests MANIFEST_DIR --lexicon LEXICON \
      (--lm LM.pt | --released-shape) [--subsets dev_other ...] [--beam 50] \
      [--lm-batch 1 16 ...] [--lm-parallel 1 16 ...] [--lm-fp16] [--letters] [--join N] \
      [--weights LM_WEIGHT WORD_SCORE]

Decodes RUN_DIR/emissions/<subset>.npz of each subset (written by `make decode DECODER=...`) in
this one process at the same beam and weights (--weights, default fairseq's example 2, -1)
with: fairseq's decoder as installed; fairseq's decoder with the gc.collect() its
FairseqLM.empty_cache() runs after every utterance left out (a fixed cost, unrelated to the LM,
that dominates on a tiny LM); and ours, once per --lm-batch and --lm-parallel (utterances
searched at once, their LM states run in shared batches). It checks that they give the same
words, and prints per-utterance and per-frame speed (CPU seconds of this process), the LM's
forward calls and the word positions they ran, and the ratios. --letters adds noisy letter
emissions of the references (as the tests do). --join N decodes each N consecutive utterances'
emissions as one utterance: LibriSpeech's four dev/test sets have 19 words per utterance on
average (210,269 words in 11,126), the tiny sets about 7, and fairseq's decoder runs a state's
whole word prefix through the LM, so its cost per state grows with the prefix while ours does
not. fairseq's `.cuda()` calls are made no-ops when there is no GPU.

--released-shape decodes with an untrained LM of the released LM's shape instead of --lm: the
options of wav2letter's recipe (20 blocks of 1280, inner 6144, 16 heads, adaptive input and
softmax at 60000,160000, factor 4, tied weights), 0.56 B parameters, over a 200,000-word
vocabulary (the lexicon's words, then fillers), from seed 0, written to a temporary folder (2.2
GB). Its weights are random, so its words are not the released LM's, but each LM call costs what
the released LM's costs on this machine, which the tiny LM cannot show. Its scores are nearly
uniform, about -12.2 per word (ln 200,000): at fairseq's example weight 2 a word costs about
-24, near the beam threshold (25), and the search keeps few words; `make bench-transformer-lm
SHAPE=released` gives it --weights 0.5 0, about -6 per word, so that it keeps them.

Then the ESTIMATE for LibriSpeech's four dev/test sets at the paper's beam 500: frames x seconds
per frame x 500 / beam. It is an estimate, not a measurement: LibriSpeech's lexicon (200k words)
and its longer word prefixes make more LM states per frame than the tiny lexicon does.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import file_digest, run_main  # noqa: E402
from w2v2_10min.transformer_search import BATCH, PARALLEL, TransformerSearch  # noqa: E402
from w2v2_10min.emissions import from_cache  # noqa: E402
from w2v2_10min.lm import BEAM_THRESHOLD, DEFAULT_WEIGHTS, normalised, symbols  # noqa: E402

# LibriSpeech dev-clean, dev-other, test-clean, test-other: 5.4 + 5.3 + 5.4 + 5.1 hours
# (OpenSLR 12); wav2vec 2.0 emits 50 frames per second.
FOUR_SETS_FRAMES = (5.4 + 5.3 + 5.4 + 5.1) * 3600 * 50
PAPER_BEAM = 500
# wav2letter's recipes/sota/2019 LM options (see the tiny LM's tiny/make_tiny_transformer_lm.py)
RELEASED_SHAPE = ["--arch", "transformer_lm_gbw", "--decoder-layers", "20",
                  "--decoder-embed-dim", "1280", "--decoder-ffn-embed-dim", "6144",
                  "--decoder-attention-heads", "16", "--criterion", "adaptive_loss",
                  "--adaptive-input", "--adaptive-input-cutoff", "60000,160000",
                  "--adaptive-input-factor", "4", "--adaptive-softmax-cutoff", "60000,160000",
                  "--adaptive-softmax-factor", "4", "--tie-adaptive-weights"]
RELEASED_WORDS = 200_000


def released_shape_lm(lexicon: Path, folder: Path) -> Path:
    """An untrained fairseq LM of the released LM's shape in `folder` (lm.pt and dict.txt, as
    fairseq's decoder reads them): the lexicon's words first (the frequent end, as real words
    would be), then fillers up to RELEASED_WORDS; its weights drawn from seed 0."""
    import torch
    from fairseq import options, tasks

    words = [line.split()[0] for line in lexicon.read_text().splitlines() if line.strip()]
    vocabulary = words + [f"FILLER{i}" for i in range(RELEASED_WORDS - len(words))]
    (folder / "dict.txt").write_text("".join(f"{w} {RELEASED_WORDS - i}\n"
                                             for i, w in enumerate(vocabulary)))
    namespace = options.parse_args_and_arch(options.get_training_parser(), [
        str(folder), "--task", "language_modeling", *RELEASED_SHAPE])
    torch.manual_seed(0)
    model = tasks.setup_task(namespace).build_model(namespace)
    torch.save({"args": namespace, "model": model.state_dict()}, folder / "lm.pt")
    return folder / "lm.pt"


def noisy_letters(manifests: Path, subset: str, output_symbols: list[str], seed: int = 0):
    """Emissions of a subset's letters (two frames each, then a blank) under Gaussian noise."""
    rng, index = np.random.default_rng(seed), {s: i for i, s in enumerate(output_symbols)}
    out = []
    for line in (manifests / f"{subset}.ltr").read_text().splitlines():
        path = [i for letter in line.split() for i in (index[letter],) * 2 + (0,)]
        frames = rng.normal(0, 1.5, (len(path), len(output_symbols))).astype(np.float32)
        frames[np.arange(len(path)), path] += 4.0
        out.append(frames)
    return out


def fairseq_decoder(manifests: Path, lm: Path, lexicon: Path, beam: int, weights: dict):
    """fairseq's own W2lFairseqLMDecoder, imported as installed (see the tests' note)."""
    import fairseq
    import torch
    from fairseq.data import Dictionary

    sys.path.insert(0, str(Path(fairseq.__file__).parent))
    criterion = types.ModuleType("flashlight.lib.sequence.criterion")
    criterion.CpuViterbiPath = criterion.get_data_ptr_as_bytes = None  # Viterbi only, absent
    sys.modules.setdefault("flashlight.lib.sequence", types.ModuleType("sequence"))
    sys.modules.setdefault("flashlight.lib.sequence.criterion", criterion)
    if not torch.cuda.is_available():
        torch.nn.Module.cuda = lambda self, *a, **k: self
        torch.Tensor.cuda = lambda self, *a, **k: self
    from examples.speech_recognition.w2l_decoder import W2lFairseqLMDecoder

    args = argparse.Namespace(nbest=1, lexicon=str(lexicon), kenlm_model=str(lm), beam=beam,
                              beam_threshold=BEAM_THRESHOLD, unk_weight=-math.inf,
                              sil_weight=0.0, **weights)
    return W2lFairseqLMDecoder(args, Dictionary.load(str(manifests / "dict.ltr.txt")))


class Counter:
    """Forward calls of an LM and the word positions they ran: batch x length, or the batch
    alone for an incremental step (fairseq's decoder then runs the last position only)."""

    def __init__(self, model):
        self.calls = self.positions = 0
        model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module, inputs, kwargs):
        self.calls += 1
        tokens = inputs[0]
        incremental = kwargs.get("incremental_state") is not None
        self.positions += tokens.shape[0] if incremental else tokens.numel()

    def since(self, mark: tuple) -> tuple:
        return self.calls - mark[0], self.positions - mark[1]


def timed(decode_all, utterances, counter: Counter) -> tuple[list, float, tuple]:
    mark = (counter.calls, counter.positions)
    start = time.process_time()
    words = decode_all(utterances)
    return words, time.process_time() - start, counter.since(mark)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--run", "--manifests", "--lexicon"):
        parser.add_argument(name, type=Path, required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--lm", type=Path)
    which.add_argument("--released-shape", action="store_true",
                       help="an untrained LM of the released LM's shape (2.2 GB, temporary)")
    parser.add_argument("--subsets", nargs="+", default=["dev_other"])
    parser.add_argument("--beam", type=int, default=50)
    parser.add_argument("--lm-batch", type=int, nargs="+", default=[1, BATCH])
    parser.add_argument("--lm-parallel", type=int, nargs="+", default=[1, PARALLEL])
    parser.add_argument("--lm-fp16", action="store_true", help="ours in half precision")
    parser.add_argument("--letters", action="store_true")
    parser.add_argument("--join", type=int, default=1,
                        help="N consecutive utterances as one (LibriSpeech: 19 words each)")
    parser.add_argument("--weights", type=float, nargs=2, metavar=("LM_WEIGHT", "WORD_SCORE"),
                        default=[DEFAULT_WEIGHTS["lm_weight"], DEFAULT_WEIGHTS["word_score"]])
    args = parser.parse_args(argv)
    weights = {"lm_weight": args.weights[0], "word_score": args.weights[1]}
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    checkpoint = args.run / "checkpoints" / "checkpoint_best.pt"
    cached = from_cache(args.run / "emissions", file_digest(checkpoint), args.manifests,
                        args.subsets, lambda s: sys.exit(f"error: run `make decode` first: no "
                                                         f"emissions of {s}"))
    output_symbols = symbols(args.manifests)
    utterances = []
    for subset in args.subsets:
        utterances += cached[subset]
        if args.letters:
            utterances += noisy_letters(args.manifests, subset, output_symbols)
    utterances = [np.concatenate(utterances[i:i + args.join])
                  for i in range(0, len(utterances), max(1, args.join))]
    with tempfile.TemporaryDirectory() as tmp:
        lm = released_shape_lm(args.lexicon, Path(tmp)) if args.released_shape else args.lm
        ours = TransformerSearch(lm, args.lexicon, output_symbols, fp16=args.lm_fp16,
                                 parallel=max(args.lm_parallel))
        reference = fairseq_decoder(args.manifests, lm, args.lexicon, args.beam,
                                    weights)
    settings = {"beam": args.beam, "beam_threshold": BEAM_THRESHOLD, "sil_weight": 0.0,
                **weights}
    import torch

    def theirs(utterances):
        return [reference.decode(torch.from_numpy(normalised(u, len(output_symbols)))[None])
                [0][0]["words"] for u in utterances]

    def mine(utterances):
        return [[ours.dictionary[w] for w in best.words if w >= 0]
                for best in ours.decode_all(utterances, settings)]

    theirs_lm, our_lm = Counter(reference.lm.model), Counter(ours.steps.model)
    expected, *fairseq_row = timed(theirs, utterances, theirs_lm)
    collect, gc.collect = gc.collect, lambda *a: 0
    try:
        without_gc, *nogc_row = timed(theirs, utterances, theirs_lm)
    finally:
        gc.collect = collect
    rows = [("fairseq W2lFairseqLMDecoder, as installed", *fairseq_row),
            ("fairseq W2lFairseqLMDecoder, its gc.collect() left out", *nogc_row)]
    same = [a == b for a, b in zip(expected, without_gc)]
    for parallel in args.lm_parallel:
        for batch in args.lm_batch:
            ours.parallel, ours.steps.batch = max(1, parallel), max(1, batch)
            got, *ours_row = timed(mine, utterances, our_lm)
            rows.append((f"transformer (lm-batch {batch}, lm-parallel {parallel}"
                         f"{', fp16' if args.lm_fp16 else ''})", *ours_row))
            same = [s and a == b for s, a, b in zip(same, expected, got)]
    frames = sum(len(u) for u in utterances)
    which = "of the released shape, untrained" if args.released_shape else lm
    joined = f" ({args.join} joined in each)" if args.join > 1 else ""
    print(f"{len(utterances)} utterances{joined} of {' '.join(args.subsets)}"
          f"{' and their noisy letters' if args.letters else ''}, {frames} frames, "
          f"{sum(map(len, expected)) / len(expected):.1f} words each, beam {args.beam}, weights "
          f"{weights}, LM {which}; same words from all {len(rows)}: "
          f"{sum(same)}/{len(utterances)}")
    print("| decoder | s/utterance | ms/frame | LM calls | word positions run | "
          "fairseq as installed / this | fairseq without gc / this |")
    print("|---|---|---|---|---|---|---|")
    for name, seconds, (calls, positions) in rows:
        print(f"| {name} | {seconds / len(utterances):.3f} | {1000 * seconds / frames:.3f} | "
              f"{calls} | {positions} | {fairseq_row[0] / seconds:.1f}x | "
              f"{nogc_row[0] / seconds:.1f}x |")
    for name, seconds, _ in (rows[0], min(rows[2:], key=lambda row: row[1])):
        hours = FOUR_SETS_FRAMES * seconds / frames * PAPER_BEAM / args.beam / 3600
        print(f"ESTIMATE, four LibriSpeech dev/test sets at beam {PAPER_BEAM}, this LM, {name}: "
              f"{hours:.1f} CPU-hours")
    return 0 if all(same) else 1

if __name__ == "__main__":
    run_main(main)
