"""The plots of `make compare`: one PNG per subset and decoder, drawn from the analysis
(w2v2_10min.analysis) and the records, nothing computed again.

Usage: from w2v2_10min.plots import plot_subset; plot_subset(settings, records, "dev_other",
       "viterbi", Path("results/wer-dev_other.png"))
"""
from __future__ import annotations

from pathlib import Path

from w2v2_10min import layout
from w2v2_10min.analysis import decoder as decoder_of
from w2v2_10min.common import atomic_path
from w2v2_10min.layout import split_order
from w2v2_10min.paper import DECODER_TITLES, MODEL_TITLES, paper_row


def file_name(subset: str, decoder: str) -> str:
    """`wer-<subset>.png` (Viterbi), `wer-<subset>-<decoder>.png` (the others)."""
    return f"wer-{subset if decoder == layout.VITERBI else f'{subset}-{decoder}'}.png"


def plot_subset(analysis: list[dict], records: list[dict], subset: str, decoder: str,
                out: Path) -> bool:
    """One subset and decoder: each split's runs, the kept run ringed, split means, the one-run
    prediction band, the paper dashed, the released checkpoint dotted (also for models with no
    runs of their own). Returns False (and draws nothing) when nothing was decoded there."""
    settings = [s for s in analysis if s["decoder"] == decoder and subset in s["subsets"]]
    released_only = sorted({r["model"] for r in records if r.get("protocol") == layout.RELEASED
                            and r["subset"] == subset and decoder_of(r) == decoder}
                           - {s["model"] for s in settings})
    if not settings and not released_only:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({r["split"] for s in settings
                     for level in s["subsets"][subset]["seed_level"].values()
                     for r in level["all"]["runs"]},
                    key=split_order)
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(splits) + 2) + 3.5, 4))
    for index, setting in enumerate(settings):
        _plot_setting(ax, setting, setting["subsets"][subset], f"C{index}", splits,
                      0.3 / max(1, len(settings) * len(setting["lrs"])), index)
    for index, model in enumerate(released_only, start=len(settings)):
        _plot_released_only(ax, records, model, subset, decoder, f"C{index}")
    ax.set_xticks(range(len(splits)), [f"split {s}" for s in splits])
    ax.set_ylabel("WER (%)")
    ax.set_title(f"{subset}: 10-minute fine-tuning, {DECODER_TITLES.get(decoder, decoder)}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


def _plot_setting(ax, setting: dict, entry: dict, colour: str, splits: list, step: float,
                  index: int) -> None:
    """One model and protocol: its runs per lr (offset by `step`), split means, the kept runs,
    the one-run prediction band, the paper's and the released checkpoint's lines."""
    name = f"{MODEL_TITLES.get(setting['model'], setting['model'])} {setting['protocol']}"
    lrs = setting["lrs"]
    for position, lr in enumerate(lrs):
        if lr not in entry["seed_level"]:
            continue
        level = entry["seed_level"][lr]["all"]
        offset = step * (index * len(lrs) + position)
        ax.scatter([splits.index(r["split"]) + offset for r in level["runs"]],
                   [r["wer"] for r in level["runs"]], color=colour, s=18, alpha=0.8,
                   marker="o^sv"[position % 4],
                   label=f"{name}: runs" + (f", lr {lr}" if len(lrs) > 1 else ""))
        for split, mean in level["split_means"].items():
            x = splits.index(split) + offset
            ax.plot([x - 0.12, x + 0.12], [mean, mean], color=colour, linewidth=2)
    first_lr = next(iter(entry["seed_level"]))
    level = entry["seed_level"][first_lr]["all"]
    kept = entry["selected"].get("all")
    if kept:
        ax.scatter([splits.index(r["split"]) + step * (index * len(lrs) + lrs.index(r["lr"]))
                    for r in kept["runs"]],
                   [r["wer"] for r in kept["runs"]], s=110, facecolors="none",
                   edgecolors=colour, linewidths=1.5, label=f"{name}: kept (paper's rule)")
    if level["pi_run"]:
        ax.axhspan(*level["pi_run"], color=colour, alpha=0.12,
                   label=f"{name}: 95% PI, one run on a new split"
                   + (f" (lr {first_lr})" if len(lrs) > 1 else ""))
    if entry["paper"] is not None:
        ax.axhline(entry["paper"], color=colour, linestyle="--", label=f"{name}: paper")
    if entry["released"] is not None:
        ax.axhline(entry["released"], color=colour, linestyle=":",
                   label=f"{name}: released checkpoint")


def _plot_released_only(ax, records: list[dict], model: str, subset: str, decoder: str,
                        colour: str) -> None:
    """A model with no runs of its own: its released checkpoint dotted, the paper dashed."""
    title = MODEL_TITLES.get(model, model)
    for r in records:
        if (r["model"], r.get("protocol"), r["subset"], decoder_of(r)) == \
                (model, layout.RELEASED, subset, decoder):
            ax.axhline(r["wer"], color=colour, linestyle=":", label=f"{title}: released checkpoint")
    if subset in paper_row(model, decoder):
        ax.axhline(paper_row(model, decoder)[subset], color=colour, linestyle="--",
                   label=f"{title}: paper")
