"""fairseq's W2lFairseqLMDecoder against DECODER=transformer, side by side, on the same emissions.

Usage:
  python bench/bench_transformer_lm.py --run RUN_DIR --manifests MANIFEST_DIR --lm LM.pt \
      --lexicon LEXICON [--subset dev_other] [--beam 50] [--lm-batch 1] [--lm-fp16] [--letters]

Decodes RUN_DIR/emissions/<subset>.npz (written by `make decode DECODER=...`) in this one
process at the same beam and weights (fairseq's example 2, -1) with: fairseq's decoder as
installed; fairseq's decoder with the gc.collect() its FairseqLM.empty_cache() runs after every
utterance left out (a fixed cost, unrelated to the LM, that dominates on a tiny LM); and ours.
It checks that they give the same words, and prints per-utterance and per-frame speed (CPU
seconds of this process), the LM's forward calls and the word positions they ran, and the
ratios. --letters adds noisy letter emissions of the references (as the tests do). fairseq's
`.cuda()` calls are made no-ops when there is no GPU. Then the ESTIMATE for LibriSpeech's four
dev/test sets at the paper's beam 500: frames x seconds per frame x 500 / beam. It is an
estimate, not a measurement: the released LM's 20 blocks of 1280 cost far more per step than the
tiny LM's, and LibriSpeech's word prefixes are longer.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: w2v2_10min

from w2v2_10min.common import file_digest, run_main  # noqa: E402
from w2v2_10min.decoders.transformer import TransformerSearch  # noqa: E402
from w2v2_10min.emissions import from_cache  # noqa: E402
from w2v2_10min.lm import BEAM_THRESHOLD, DEFAULT_WEIGHTS, normalised, symbols  # noqa: E402

# LibriSpeech dev-clean, dev-other, test-clean, test-other: 5.4 + 5.3 + 5.4 + 5.1 hours
# (OpenSLR 12); wav2vec 2.0 emits 50 frames per second.
FOUR_SETS_FRAMES = (5.4 + 5.3 + 5.4 + 5.1) * 3600 * 50
PAPER_BEAM = 500


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


def timed(decode, utterances, counter: Counter) -> tuple[list, float, tuple]:
    mark = (counter.calls, counter.positions)
    start = time.process_time()
    words = [decode(u) for u in utterances]
    return words, time.process_time() - start, counter.since(mark)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--run", "--manifests", "--lm", "--lexicon"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--subset", default="dev_other")
    parser.add_argument("--beam", type=int, default=50)
    parser.add_argument("--lm-batch", type=int, default=1)
    parser.add_argument("--lm-fp16", action="store_true", help="ours in half precision")
    parser.add_argument("--letters", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    checkpoint = args.run / "checkpoints" / "checkpoint_best.pt"
    utterances = from_cache(args.run / "emissions", file_digest(checkpoint), args.manifests,
                            [args.subset], lambda s: sys.exit(f"error: run `make decode` "
                                                              f"first: no emissions of {s}"))
    utterances = utterances[args.subset]
    output_symbols = symbols(args.manifests)
    if args.letters:
        utterances = utterances + noisy_letters(args.manifests, args.subset, output_symbols)
    ours = TransformerSearch(args.lm, args.lexicon, output_symbols, args.lm_batch,
                             fp16=args.lm_fp16)
    decoder = ours.decoder({"beam": args.beam, "beam_threshold": BEAM_THRESHOLD,
                            "sil_weight": 0.0, **DEFAULT_WEIGHTS})
    reference = fairseq_decoder(args.manifests, args.lm, args.lexicon, args.beam,
                                DEFAULT_WEIGHTS)
    import torch

    def theirs(u):
        frames = torch.from_numpy(normalised(u, len(output_symbols)))[None]
        return reference.decode(frames)[0][0]["words"]

    def mine(u):
        return [ours.dictionary[w] for w in ours.best(decoder, u).words if w >= 0]

    theirs_lm, our_lm = Counter(reference.lm.model), Counter(ours.lm.model)
    expected, fairseq_s, fairseq_lm = timed(theirs, utterances, theirs_lm)
    collect, gc.collect = gc.collect, lambda *a: 0
    try:
        without_gc, nogc_s, nogc_lm = timed(theirs, utterances, theirs_lm)
    finally:
        gc.collect = collect
    got, our_s, ours_lm = timed(mine, utterances, our_lm)
    frames = sum(len(u) for u in utterances)
    same = sum(a == b == c for a, b, c in zip(expected, without_gc, got))
    print(f"{len(utterances)} utterances, {frames} frames, beam {args.beam}, weights "
          f"{DEFAULT_WEIGHTS}; same words from all three: {same}/{len(utterances)}")
    print("| decoder | s/utterance | ms/frame | LM calls | word positions run |")
    print("|---|---|---|---|---|")
    rows = (("fairseq W2lFairseqLMDecoder, as installed", fairseq_s, fairseq_lm),
            ("fairseq W2lFairseqLMDecoder, its gc.collect() left out", nogc_s, nogc_lm),
            (f"transformer (lm-batch {args.lm_batch}{', fp16' if args.lm_fp16 else ''})",
             our_s, ours_lm))
    for name, seconds, (calls, positions) in rows:
        print(f"| {name} | {seconds / len(utterances):.3f} | {1000 * seconds / frames:.3f} | "
              f"{calls} | {positions} |")
    print(f"ratio, fairseq as installed / ours: {fairseq_s / our_s:.1f}x; without its "
          f"gc.collect(): {nogc_s / our_s:.1f}x; word positions: "
          f"{fairseq_lm[1] / max(ours_lm[1], 1):.1f}x")
    for name, seconds in (("fairseq", fairseq_s), ("ours", our_s)):
        hours = FOUR_SETS_FRAMES * seconds / frames * PAPER_BEAM / args.beam / 3600
        print(f"ESTIMATE, four LibriSpeech dev/test sets at beam {PAPER_BEAM}, this LM, {name}: "
              f"{hours:.1f} CPU-hours")
    return 0 if same == len(utterances) else 1


if __name__ == "__main__":
    run_main(main)
