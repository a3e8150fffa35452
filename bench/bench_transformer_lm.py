"""fairseq's W2lFairseqLMDecoder against DECODER=transformer, side by side, on the same emissions.

Usage:
  python bench/bench_transformer_lm.py --run RUN_DIR --manifests MANIFEST_DIR --lm LM.pt \
      --lexicon LEXICON [--subset dev_other] [--beam 50] [--lm-batch 1] [--letters]

Decodes RUN_DIR/emissions/<subset>.npz (written by `make decode DECODER=...`) once with each
decoder in this one process at the same beam and weights (fairseq's example 2, -1), checks they
give the same words, and prints per-utterance and per-frame speed (CPU seconds of this process)
and the ratio. --letters adds noisy letter emissions of the references (as the tests do), where
the search places words even for the tiny model, which emits blanks only. fairseq's `.cuda()`
calls are made no-ops when there is no GPU. Then the ESTIMATE for LibriSpeech's four dev/test
sets at the paper's beam 500: frames x seconds per frame x 500 / beam. It is an estimate, not a
measurement: the released LM's 20 blocks of 1280 cost far more per step than the tiny LM's.
"""
from __future__ import annotations

import argparse
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


def timed(decode, utterances) -> tuple[list, float]:
    start = time.process_time()
    words = [decode(u) for u in utterances]
    return words, time.process_time() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--run", "--manifests", "--lm", "--lexicon"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--subset", default="dev_other")
    parser.add_argument("--beam", type=int, default=50)
    parser.add_argument("--lm-batch", type=int, default=1)
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
    ours = TransformerSearch(args.lm, args.lexicon, output_symbols, args.lm_batch)
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

    expected, fairseq_s = timed(theirs, utterances)
    got, our_s = timed(mine, utterances)
    frames = sum(len(u) for u in utterances)
    same = sum(a == b for a, b in zip(expected, got))
    print(f"{len(utterances)} utterances, {frames} frames, beam {args.beam}, weights "
          f"{DEFAULT_WEIGHTS}; same words: {same}/{len(utterances)}")
    print("| decoder | s/utterance | ms/frame |\n|---|---|---|")
    for name, seconds in (("fairseq W2lFairseqLMDecoder", fairseq_s),
                          (f"transformer (lm-batch {args.lm_batch})", our_s)):
        print(f"| {name} | {seconds / len(utterances):.3f} | {1000 * seconds / frames:.3f} |")
    print(f"ratio (fairseq / ours): {fairseq_s / our_s:.1f}x")
    for name, seconds in (("fairseq", fairseq_s), ("ours", our_s)):
        hours = FOUR_SETS_FRAMES * seconds / frames * PAPER_BEAM / args.beam / 3600
        print(f"ESTIMATE, four LibriSpeech dev/test sets at beam {PAPER_BEAM}, this LM, {name}: "
              f"{hours:.1f} CPU-hours")
    return 0 if same == len(utterances) else 1


if __name__ == "__main__":
    run_main(main)
