"""Tune an LM decoder's weights by rescoring its beam's hypotheses (`make tune-lm`, TUNE=rescore).

Usage:
  record = rescore.tune(hypotheses, utterances, refs, beam, out, key, space)
  (hypotheses: a decoder's `hypotheses(args)`, w2v2_10min.decoders)

flashlight returns every hypothesis of the final beam with its acoustic score and LM score
(w2v2_10min.lm.hypothesis), and scores each as

    acoustic + lm_weight * LM + word_score * words

(silence and unknown-word scores are 0 and -inf in both decoders), so one decode's beams tell
which of their hypotheses any other (lm_weight, word_score) pair would choose, without searching
again. The rounds:

  1. decode the set at a point (first: fairseq's example weights, lm_weight 2, word_score -1),
     keep each utterance's beam and merge it into the lists kept so far (per utterance, a
     word string once, with its best acoustic score);
  2. search the pairs for the lowest WER, all of them: the pairs decoded, and every pair of a
     GRID x GRID grid over the space (exhaustive and deterministic; Lists.grid_errors rescores
     all of it at the cost of a few rescorings per LM weight): a grid pair's WER is its WER
     by rescoring the lists plus the gap measured at the decoded pair nearest to it (that
     decode's WER less its own WER on the lists); a decoded pair takes its decode's WER.
     (Rescoring alone is optimistic where the search prunes: at high LM weights a decode
     loses, mid-search, hypotheses whose final score the lists know is best, and the pairs
     around it lose them too; a decode measures how much.)
  3. stop (but see 4) when that search's best pair is near one already decoded (NEAR: no
     pair, rescored and corrected, beats what the decodes measured: the weights stopped
     moving), or after MAX_ROUNDS decodes; else decode at the new pair (1). Never after the
     first decode alone: its beam holds only what its own pair kept (a few hypotheses an
     utterance where the LM leads it astray), so no other pair can look better on it; the
     second decode is then at the LM's least weight (least_lm_point), whose beam holds what
     the acoustics favour.
  4. once the weights stop moving (3), decode the search's best pair that is near no decoded
     pair, at most CONFIRM times (each such decode is a round: its beams are merged and the
     search runs again, so it can move the weights on): the lists promise these pairs almost
     as much, and only a decode tells which of them the search's pruning spares.

The weights chosen are the decoded pair whose own full decode has the lowest WER (on a tie,
one the rounds moved to rather than a step-4 decode, then the latest): every figure in
weights.json is a decode's, not a rescoring's estimate. After each round the lists
(OUT/hypotheses.npz) and the rounds (OUT/rounds.json) are written atomically, with the tuning
key (checkpoint, LM, lexicon, set, beam...): an interrupted tuning resumes at its next round,
and lists made for another key are never reused (started afresh, with a note; so are
lists or rounds that cannot be read).
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import editdistance
import numpy as np

from w2v2_10min.common import UserError, atomic_path, write_json_atomic
from w2v2_10min.lm import BEAM_THRESHOLD, DEFAULT_WEIGHTS
from w2v2_10min.score import utterance_errors

MAX_ROUNDS = 10  # decodes at most (a tenth of the paper's 128, less rescoring's own search)
CONFIRM = 3  # decodes, once the weights stop moving, of the best pairs not yet decoded
GRID = 101  # values of each weight rescored: a grid of pairs 0.05 apart in LM weight and 0.1
# in word score over the paper's ranges
NEAR = 0.05  # a best pair this close (a share of each weight's range) to a decoded one: stop
WEIGHTS = ("lm_weight", "word_score")  # what rescoring can change (the score's two terms)


class Lists:
    """Each utterance's kept hypotheses: a word string once, with its acoustic score, LM score
    and word count (the best acoustic score of its copies with the same LM score: the one any
    pair ranks first), and its word errors against the reference."""

    def __init__(self, refs: list[str]):
        self.refs = refs
        self.kept: list[dict] = [{} for _ in refs]  # (words, lm, n) -> (acoustic, errors)
        self._arrays = None

    def merge(self, beams: list[list[tuple]]) -> int:
        """Add each utterance's beam (w2v2_10min.lm.hypothesis tuples); the number new."""
        if len(beams) != len(self.kept):
            raise ValueError(f"{len(beams)} beams for {len(self.kept)} utterances")
        new = 0
        for ref, kept, beam in zip(self.refs, self.kept, beams):
            for acoustic, lm, n, words in beam:
                if not (np.isfinite(acoustic) and np.isfinite(lm)):
                    continue  # no finite pair of weights chooses it
                key = (words, round(lm, 4), n)
                if key in kept:
                    if acoustic > kept[key][0]:
                        kept[key] = (acoustic, kept[key][1])
                    continue
                errors = editdistance.eval(ref.split(), words.split())
                kept[key] = (acoustic, errors)
                new += 1
        self._arrays = None
        return new

    def __len__(self) -> int:
        return sum(len(kept) for kept in self.kept)

    def arrays(self):
        """acoustic, LM, words, errors and utterance of every kept hypothesis, as arrays, and
        their word strings."""
        if self._arrays is None:
            rows = [(a, lm, n, e, u, w) for u, kept in enumerate(self.kept)
                    for (w, lm, n), (a, e) in kept.items()]
            columns = list(zip(*rows)) if rows else [[]] * 6
            self._arrays = tuple(np.asarray(c, dtype=t) for c, t in
                                 zip(columns, (float, float, float, np.int64, np.int64))) \
                + (list(columns[5]),)
        return self._arrays

    def chosen(self, lm_weight: float, word_score: float) -> np.ndarray:
        """The row (of `arrays`) of each utterance's best hypothesis at these weights: the
        highest acoustic + lm_weight * LM + word_score * words; one per utterance with any."""
        acoustic, lm, n, _, utterance, _ = self.arrays()
        score = acoustic + lm_weight * lm + word_score * n
        best = np.full(len(self.kept), -np.inf)
        np.maximum.at(best, utterance, score)
        top = np.flatnonzero(score >= best[utterance])
        _, first = np.unique(utterance[top], return_index=True)
        return top[first]

    def errors(self, lm_weight: float, word_score: float) -> int:
        """Word errors of each utterance's best hypothesis at these weights, summed (an
        utterance with none kept: all its words)."""
        return int(self.arrays()[3][self.chosen(lm_weight, word_score)].sum()) + self.lost()

    def lost(self) -> int:
        """The reference words of the utterances with no hypothesis kept (all wrong)."""
        return sum(len(ref.split()) for ref, kept in zip(self.refs, self.kept) if not kept)

    def grid_errors(self, lm_weights: np.ndarray, word_scores: np.ndarray) -> np.ndarray:
        """`errors` at every pair of a grid: [i, j] at lm_weights[i], word_scores[j] (the same
        hypotheses chosen, ties included). Per LM weight, each utterance's hypotheses with the
        same word count keep only their best (the word score adds the same to each), so the
        word scores are tried on a few hypotheses an utterance, not the whole beam."""
        acoustic, lm, n, errors, utterance, _ = self.arrays()
        out = np.full((len(lm_weights), len(word_scores)), self.lost(), dtype=np.int64)
        if not len(acoustic):
            return out
        rows = np.lexsort((n, utterance))  # by utterance, then word count; else as arrays'
        u, c, acoustic, lm = utterance[rows], n[rows], acoustic[rows], lm[rows]
        group_start = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (c[1:] != c[:-1])])
        group_of_row = np.repeat(np.arange(len(group_start)), np.diff(np.r_[group_start, len(u)]))
        words = c[group_start]
        utterance_start = np.flatnonzero(np.r_[True, np.diff(u[group_start]) != 0])
        utterance_of_group = np.repeat(np.arange(len(utterance_start)),
                                       np.diff(np.r_[utterance_start, len(group_start)]))
        for i, lm_weight in enumerate(lm_weights):
            score = acoustic + lm_weight * lm
            top = np.maximum.reduceat(score, group_start)
            # each group's first row (of arrays') at its top: `chosen` takes the first at a tie
            first = np.minimum.reduceat(np.where(score >= top[group_of_row], rows, len(rows)),
                                        group_start)
            total = top[:, None] + word_scores[None, :] * words[:, None]
            best = np.maximum.reduceat(total, utterance_start, axis=0)
            chosen = np.minimum.reduceat(np.where(total >= best[utterance_of_group],
                                                  first[:, None], len(rows)),
                                         utterance_start, axis=0)
            out[i] += errors[chosen].sum(axis=0)
        return out

    def best(self, lm_weight: float, word_score: float) -> list[str]:
        """Each utterance's best word string at these weights ("" where none is kept)."""
        out = [""] * len(self.kept)
        words, utterance = self.arrays()[5], self.arrays()[4]
        for row in self.chosen(lm_weight, word_score):
            out[utterance[row]] = words[row]
        return out

    def save(self, path: Path, key: dict) -> None:
        words, lm, n, acoustic, errors, utterance = [], [], [], [], [], []
        for u, kept in enumerate(self.kept):
            for (w, l, c), (a, e) in kept.items():
                words.append(w)
                lm.append(l)
                n.append(c)
                acoustic.append(a)
                errors.append(e)
                utterance.append(u)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, key=json.dumps(key, sort_keys=True), words=np.array(words, dtype=str),
                         lm=np.array(lm, dtype=float), n=np.array(n, dtype=np.int64),
                         acoustic=np.array(acoustic, dtype=float),
                         errors=np.array(errors, dtype=np.int64),
                         utterance=np.array(utterance, dtype=np.int64))

    @classmethod
    def load(cls, path: Path, key: dict, refs: list[str]) -> "Lists | None":
        """The lists kept at `path` for exactly `key`, else (another key's, or unreadable)
        None."""
        try:
            with np.load(path) as saved:
                if str(saved["key"]) != json.dumps(key, sort_keys=True):
                    return None
                columns = [saved[name].tolist() for name in
                           ("words", "lm", "n", "acoustic", "errors", "utterance")]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        lists = cls(refs)
        for w, lm, n, a, e, u in zip(*columns):
            if u >= len(refs):
                return None
            lists.kept[u][(w, lm, n)] = (a, e)
        lists._arrays = None
        return lists


def distance(point: dict, other: dict, space: dict) -> float | np.ndarray:
    """The larger of the two weights' differences, each as a share of its range (each weight a
    number, or an array of them: then elementwise)."""
    return np.maximum.reduce([abs(point[n] - other[n]) / (space[n][1] - space[n][0])
                              for n in WEIGHTS])


def near(point: dict, other: dict, space: dict) -> bool:
    """Whether two pairs are within NEAR of each weight's range of each other."""
    return distance(point, other, space) <= NEAR


def grid(space: dict) -> tuple[np.ndarray, np.ndarray]:
    """The LM weights and word scores that `search` rescores: GRID of each, evenly over the
    space, ends included."""
    return tuple(np.linspace(*space[name], GRID) for name in WEIGHTS)


def search(lists: Lists, words: int, space: dict, decoded: list[tuple[dict, float]]
           ) -> tuple[dict, float, dict | None, dict | None]:
    """The pair with the lowest WER (percent of `words`): the pairs `decoded` at their decodes'
    WER, every pair of the grid at its WER on the lists plus the gap that the decoded pair
    nearest to it measured (its decode's WER less its WER on the lists): where a decode found
    rescoring optimistic (its beam pruned what the lists hold), so is rescoring around it. On a
    tie, a decoded pair (the earliest), else the least LM weight, then word score. Returns the
    pair, its WER, the decoded pair it is near (NEAR; None: a new pair to decode), and the best
    grid pair near no decoded one (on a tie, the farthest from them; None if every one is
    near one)."""
    axes = grid(space)
    lm_weights, word_scores = np.meshgrid(*axes, indexing="ij")
    wer = 100.0 * lists.grid_errors(*axes) / words
    pairs = {"lm_weight": lm_weights, "word_score": word_scores}
    apart = np.stack([distance(pairs, point, space) for point, _ in decoded])
    gaps = np.array([value - 100.0 * lists.errors(**point) / words for point, value in decoded])
    wer = (wer + gaps[apart.argmin(axis=0)]).ravel()
    far = apart.min(axis=0).ravel()  # from the nearest decoded pair

    def lowest(among: np.ndarray, explore: bool) -> dict:
        """The pair of `among` (flat grid indices) with the lowest WER; on a tie, the grid's
        first (the least LM weight, then word score: where rescoring is least optimistic, a
        decode pruning the more the more it leans on the LM), or, to `explore`, the one
        farthest from the decoded pairs (a plateau's decode tells most there)."""
        tied = among[wer[among] == wer[among].min()]
        i = int(tied[far[tied].argmax()] if explore else tied[0])
        return {"lm_weight": float(lm_weights.flat[i]), "word_score": float(word_scores.flat[i])}

    first = min(range(len(decoded)), key=lambda d: decoded[d][1])
    if decoded[first][1] <= wer.min():
        best, value = decoded[first]
    else:
        best, value = lowest(np.arange(wer.size), False), float(wer.min())
    close = next((point for point, _ in decoded if near(best, point, space)), None)
    untried = np.flatnonzero(far > NEAR)
    return best, value, close, lowest(untried, True) if len(untried) else None


def start_point(space: dict) -> dict:
    """fairseq's example weights, within the space (else its middle)."""
    return {name: DEFAULT_WEIGHTS[name] if space[name][0] <= DEFAULT_WEIGHTS[name] <=
            space[name][1] else sum(space[name]) / 2 for name in WEIGHTS}


def least_lm_point(space: dict) -> dict:
    """Where a decode leans on the LM least: the space's lowest LM weight, word score 0 (within
    the space, else its middle)."""
    low, high = space["word_score"]
    return {"lm_weight": space["lm_weight"][0],
            "word_score": 0.0 if low <= 0.0 <= high else (low + high) / 2}


def check_space(space: dict) -> None:
    if set(space) != set(WEIGHTS):
        raise UserError(f"TUNE=rescore tunes {' and '.join(WEIGHTS)} only, this decoder also "
                        f"{', '.join(sorted(set(space) - set(WEIGHTS)))}; tune it with "
                        "TUNE=search")


def tune(hypotheses, utterances: list, refs: list[str], beam: int, out: Path, key: dict,
         space: dict, start: dict | None = None) -> dict:
    """Tune by rounds of decode, merge and rescoring search (see the module's docstring), the
    first decode at `start` (default: start_point(space));
    returns the rounds' record: `rounds` (each decode's point, measured and rescored WER,
    hypotheses kept), the chosen `point` and its `wer`."""
    check_space(space)
    words = sum(len(ref.split()) for ref in refs)
    lists_path, rounds_path = out / "hypotheses.npz", out / "rounds.json"
    rounds: list[dict] = []
    lists = Lists(refs)
    if rounds_path.is_file():
        try:
            saved = json.loads(rounds_path.read_text())
        except ValueError:
            saved = {}  # unreadable: as another key's
        kept = Lists.load(lists_path, key, refs)
        if saved.get("tuning_key") == key and kept is not None:
            rounds, lists = saved["rounds"], kept
            print(f"resuming after {len(rounds)} round(s) of {rounds_path}", flush=True)
        else:
            print(f"note: {out} holds hypotheses for another checkpoint, LM, lexicon, set or "
                  "beam, or unreadable ones; tuning afresh", file=sys.stderr)
    while True:
        if rounds and (rounds[-1]["next"] is None or len(rounds) >= MAX_ROUNDS):
            break
        point = rounds[-1]["next"] if rounds else (start or start_point(space))
        settings = {"beam": beam, "beam_threshold": BEAM_THRESHOLD, **point}
        beams = hypotheses(utterances, settings)
        if any(not beam_ for beam_ in beams):
            raise UserError("a decode gave an utterance no hypothesis; check its emissions")
        errors = sum(e for e, *_ in utterance_errors(refs, [b[0][3] for b in beams]))
        new = lists.merge(beams)
        decoded = [(r["point"], r["wer"]) for r in rounds] + [(point, 100.0 * errors / words)]
        best, predicted, close, runner_up = search(lists, words, space, decoded)
        following, why = (None, None) if close else (best, "moved")
        if following is None and not rounds and not near(point, least_lm_point(space), space):
            following, why = least_lm_point(space), "least LM"  # one beam cannot refute the rest
        confirmed = sum(r.get("why") == "confirm" for r in rounds)
        if following is None and runner_up and confirmed < CONFIRM:
            following, why = runner_up, "confirm"  # step 4
        rounds.append({"point": point, "wer": 100.0 * errors / words, "errors": errors,
                       "rescored_wer": 100.0 * lists.errors(**point) / words,
                       "new_hypotheses": new, "hypotheses": len(lists),
                       "next": following, "why": why, "best": best,
                       "best_wer": predicted})
        lists.save(lists_path, key)  # first: a round in rounds.json always has its lists
        write_json_atomic(rounds_path, {"tuning_key": key, "rounds": rounds})
        said = ", ".join(f"{name} {point[name]:.3f}" for name in WEIGHTS)
        print(f"round {len(rounds)}: decoded at {said} -> WER {rounds[-1]['wer']:.2f}; "
              f"{len(lists)} hypotheses kept ({new} new); best: "
              + ", ".join(f"{name} {best[name]:.3f}" for name in WEIGHTS)
              + f" -> WER {predicted:.2f}" + (" (rescored)" if not close else " (decoded)")
              + {"moved": "", "least LM": "; next: the LM's least weight", None: ": stop",
                 "confirm": "; next: the best pair not decoded yet"}[why], flush=True)

    def confirming(i: int) -> bool:  # a step-4 decode
        return i > 0 and rounds[i - 1].get("why") == "confirm"

    chosen = min(reversed(range(len(rounds))),
                 key=lambda i: (rounds[i]["errors"], confirming(i)))
    best = rounds[chosen]
    return {"rounds": rounds, "point": best["point"], "wer": best["wer"], "round": chosen + 1,
            "converged": rounds[-1]["next"] is None}
