"""A model's emissions for a manifest subset, and its reference words: what every decoder and
the export start from.

Usage:
    refs = emissions.references(manifest, "dev_other")
    frames = emissions.compute(model, task, "dev_other", device, max_tokens)   # float32
    cached = emissions.cached(run, checkpoint, sha256, manifest, subsets, device, max_tokens)

`compute` runs the model (fairseq's own task reads MANIFEST/<subset>.{tsv,ltr}); `cached` keeps
each subset's emissions as float16 in RUN/emissions/<subset>.npz, keyed by the checkpoint's and
the manifest's bytes, so LM decoding and tuning run the model once however often they search.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np

from w2v2_10min import layout
from w2v2_10min.common import UserError, atomic_path, file_digest
from w2v2_10min.formats import read_tsv, words_of

CACHE_FORMAT = 1


def references(manifest: Path, subset: str) -> list[str]:
    """Reference words from the manifest's letter targets (`H I | T H E R E |`)."""
    return [words_of(line)
            for line in (manifest / f"{subset}.ltr").read_text(encoding="utf-8").splitlines()]


def to_words(task, tokens: list[int]) -> str:
    """Letters to words exactly as fairseq's `letter` post-processing does."""
    import torch

    letters = task.target_dictionary.string(torch.tensor(tokens, dtype=torch.long))
    return words_of(letters)


def _iterator(task, subset: str, plan: dict):
    task.load_dataset(subset)
    dataset = task.dataset(subset)
    _, rows = read_tsv(Path(task.cfg.data) / f"{subset}.tsv")
    if len(dataset) != len(rows):
        raise UserError(f"{subset}.tsv: fairseq loaded {len(dataset)} of {len(rows)} utterances "
                        "(too short or too long for the task's limits); fix the manifest")
    iterator = task.get_batch_iterator(
        dataset=dataset, max_tokens=plan["max_tokens"], max_sentences=plan["max_sentences"],
        max_positions=None, ignore_invalid_inputs=False, required_batch_size_multiple=1,
        num_workers=0).next_epoch_itr(shuffle=False)
    return iterator, rows


def compute(model, task, subset: str, device: str, max_tokens: int, *, plan=None):
    """The model's emissions for every utterance of a subset, in manifest order: one float32
    array (frames x vocabulary) per utterance.

    A model whose feature encoder uses group norm (BASE, LARGE LS-960) sees one utterance per
    batch, so its emissions do not depend on `max_tokens` or on its neighbours in a batch
    (loading.batching); other models are batched up to `max_tokens` samples. `plan` replaces
    that choice (bench/bench_decode.py measures padded batches with it).
    """
    import torch

    from w2v2_10min.common import progress
    from w2v2_10min.loading import batching

    iterator, rows = _iterator(task, subset, plan or batching(model, max_tokens))
    out: dict[int, np.ndarray] = {}
    with torch.inference_mode(), progress(f"decoding {subset}", len(rows), unit="utt") as bar:
        for sample in iterator:
            net_input = {k: v.to(device) if torch.is_tensor(v) else v
                         for k, v in sample["net_input"].items()}
            net_output = model(**net_input)
            batch = model.get_logits(net_output).transpose(0, 1).float().cpu()  # B x T x V
            padding = net_output["padding_mask"]
            lengths = [batch.size(1)] * batch.size(0) if padding is None else \
                (~padding).sum(-1).tolist()
            for uid, frames, length in zip(sample["id"].tolist(), batch, lengths):
                out[uid] = frames[:length].numpy()
            bar.update(len(sample["id"]))
    missing = sorted(set(range(len(rows))) - set(out))
    if missing:
        raise UserError(f"{subset}: {len(missing)} utterances were not decoded "
                        f"(first: {rows[missing[0]][0]})")
    return [out[i] for i in range(len(rows))]


# ---- the cache of RUN/emissions/ ------------------------------------------------------------
def cache_key(checkpoint_sha256: str, manifest: Path, subset: str) -> dict:
    """What the emissions of a subset depend on: the checkpoint's and the manifest's bytes."""
    tsv = manifest / f"{subset}.tsv"
    return {"format": CACHE_FORMAT, "checkpoint_sha256": checkpoint_sha256, "subset": subset,
            "manifest_sha256": file_digest(tsv)}


def load_cached(path: Path, key: dict) -> list[np.ndarray] | None:
    """The cached emissions when `path` holds them for exactly `key`, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            if json.loads(saved["key"].item()) != key:
                return None
            return [saved[f"u{i}"] for i in range(int(saved["count"]))]
    except (OSError, ValueError, KeyError):  # a damaged file: compute again
        return None


def save_cached(path: Path, key: dict, emissions: list[np.ndarray]) -> None:
    arrays = {f"u{i}": np.asarray(e, dtype=np.float16) for i, e in enumerate(emissions)}
    # zipped in memory, then written: numpy's zip writer, failing on a full disk, would
    # print a traceback of its own when collected
    data = io.BytesIO()
    np.savez(data, key=np.array(json.dumps(key, sort_keys=True)),
             count=np.array(len(emissions)), **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.getbuffer())


def from_cache(cache_dir: Path, checkpoint_sha256: str, manifest: Path, subsets: list[str],
               compute_missing) -> dict[str, list[np.ndarray]]:
    """Emissions (T x V float16, manifest order) per subset, from `cache_dir/<subset>.npz`.

    Subsets missing there, or cached for another checkpoint or manifest, are computed by
    `compute_missing(subsets)` (one call, which may load the model) and saved for next time.
    """
    out, keys = {}, {}
    for subset in subsets:
        keys[subset] = cache_key(checkpoint_sha256, manifest, subset)
        hit = load_cached(cache_dir / f"{subset}.npz", keys[subset])
        if hit is not None:
            out[subset] = hit
    missing = [s for s in subsets if s not in out]
    if missing:
        for subset, frames in zip(missing, compute_missing(missing)):
            frames = [np.asarray(e, dtype=np.float16) for e in frames]
            save_cached(cache_dir / f"{subset}.npz", keys[subset], frames)
            out[subset] = frames
    return out


def keep(run: Path, checkpoint_sha256: str, manifest: Path, subset: str,
         emissions: list[np.ndarray]) -> None:
    """Save emissions computed elsewhere (the Viterbi decode's float32 ones) into RUN/emissions/
    as `cached` would have computed them, unless they are there already, so that the LM
    decoders and tune-lm that follow do not run the model again."""
    path, key = layout.emissions_dir(run) / f"{subset}.npz", \
        cache_key(checkpoint_sha256, manifest, subset)
    if load_cached(path, key) is None:
        save_cached(path, key, emissions)


def cached(run: Path, checkpoint: Path, checkpoint_sha256: str, manifest: Path,
           subsets: list[str], device: str, max_tokens: int, pretrained: Path | None = None):
    """Emissions per subset, from RUN/emissions/ or, for missing ones, from the model (as
    `compute` makes them); `pretrained` as in loading.load_finetuned."""
    def compute_missing(missing: list[str]):
        from w2v2_10min.loading import load_finetuned

        print(f"computing emissions of {' '.join(missing)} on {device} "
              f"(kept in {layout.emissions_dir(run)})", file=sys.stderr, flush=True)
        model, task, _ = load_finetuned(checkpoint, manifest, device, pretrained)
        return [compute(model, task, s, device, max_tokens) for s in missing]

    out = from_cache(layout.emissions_dir(run), checkpoint_sha256, manifest, subsets,
                     compute_missing)
    for subset in subsets:
        lines = len(references(manifest, subset))
        if lines != len(out[subset]):
            raise UserError(f"{manifest / subset}.ltr: {lines} lines for {len(out[subset])} "
                            "utterances; rebuild it with `make manifests`")
    return out
