"""Tune an LM's weight and word score on one set: as the paper did, 128 full decodes (the
default, `make tune-lm [TUNE=search]`), or by rescoring a few decodes' beams (`TUNE=rescore`).

Usage:
  python scripts/tune_lm.py --run RUN_DIR --manifests MANIFEST_DIR \
      --lm LM --lexicon LEXICON [--decoder NAME] [--subset dev_other] [--tune rescore|search]
      [--trials 128] [--beam B] [decoder options] [--files KNOB=PATH ...]
      [--sampler-seed 1] [--checkpoint CKPT --verify-sha256]
  (the run named as in w2v2_10min.stage: --run, its knobs, or --released MODEL)

The paper (section 4.4) tuned the LM weight in [0, 5] and the word insertion score in [-5, 5]
by Bayesian optimisation on dev-other, 128 trials, at beam 500 for the 4-gram LM (an ARPA
file, --decoder 4gram, the default) and 50 for the word Transformer LM (a fairseq checkpoint
with dict.txt, --decoder transformer). The decoder (w2v2_10min.decoders) gives what tuning
needs: its search space, tuning beam, files' key and search; one without weights (Make's default
DECODER=viterbi) names the default's, 4gram. The model runs once (`RUN_DIR/emissions/`).

--tune search (the paper's way, the default): Optuna's TPE sampler proposes the pairs; each
trial decodes the whole subset from the cached emissions and scores its WER. Trials are kept in
RUN_DIR/tune-<decoder>/optuna.db, so an interrupted tuning continues where it stopped.

--tune rescore (w2v2_10min.rescore; not yet shown to choose as well, docs/lm.md): a few
decodes, each keeping every utterance's final beam with its scores; between them every pair of
a grid over the space (rescore.GRID values of each weight; --trials is the search's only) is
scored by rescoring the kept hypotheses (each pair's WER corrected by the gap between the
nearest decode's WER and its WER on the lists), until its best pair is near one already decoded
(never after the first decode alone: the second is at the LM's least weight), then decodes up
to rescore.CONFIRM of the best pairs not yet decoded (at most rescore.MAX_ROUNDS decodes in
all); the decoded pair with the lowest WER is chosen. The lists and rounds (hypotheses.npz,
rounds.json) are kept, so an interrupted tuning resumes at its next round.

At the end RUN_DIR/tune-<decoder>/weights.json holds the best pair (which `make decode
DECODER=<decoder>` then uses) and the method that chose it (`tuning_method`), trials.json
every decode. The tuning key holds the method: switching methods tunes again. Run again with
no more trials and nothing changed, it says the weights are up to date and stops, before
loading the LM.
"""
from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

from w2v2_10min import decoders, emissions, rescore, stage
from w2v2_10min.checkpoints import checkpoint_sha256
from w2v2_10min.common import UserError, file_digest, run_main, versions, write_json_atomic
from w2v2_10min.knobs import check
from w2v2_10min.layout import tuning_dir
from w2v2_10min.lm import BEAM_THRESHOLD, SEARCH_SPACE
from w2v2_10min.score import summarise, utterance_errors

STUDY = "lm-weights"
METHODS = ("search", "rescore")  # --tune: a full decode a trial (the default); rescoring the
# beams' hypotheses (not yet shown to choose as well: docs/lm.md)


def tune(decode, utterances, refs, trials: int, beam: int, seed: int, storage: Path,
         key: dict, space: dict = SEARCH_SPACE):
    """The Optuna study after `trials` finished trials (those already in `storage` count).

    `decode(utterances, settings)` gives the words of each utterance (a decoder's `searcher`);
    each trial's settings are the beam and one draw of `space` (a decoder's SEARCH_SPACE). `key`
    (checkpoint, LM, lexicon, set, beam) is kept with the study: trials made for another key are
    never mixed in.
    """
    import optuna

    # ERROR: a trial that fails (Ctrl-C, a bad file) is raised again and said in one line;
    # optuna's warning would add its traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = f"sqlite:///{storage.resolve()}"
    storage.parent.mkdir(parents=True, exist_ok=True)
    done = 0
    try:
        old = optuna.load_study(study_name=STUDY, storage=url)
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in old.trials)
    except KeyError:
        pass
    # a resumed study draws fresh proposals: the sampler's seed moves on with the trials done
    study = optuna.create_study(study_name=STUDY, storage=url, load_if_exists=True,
                                direction="minimize",
                                sampler=optuna.samplers.TPESampler(seed=seed + done))
    if done == 0 and not study.user_attrs:
        study.set_user_attr("key", key)
    elif study.user_attrs.get("key") != key:
        raise UserError(f"{storage}: holds trials for another checkpoint, LM, lexicon, set, "
                        f"beam or method; delete {storage.parent} to tune again")

    def objective(trial) -> float:
        drawn = {name: trial.suggest_float(name, *bounds) for name, bounds in space.items()}
        settings = {"beam": beam, "beam_threshold": BEAM_THRESHOLD, **drawn}
        scores = summarise(utterance_errors(refs, decode(utterances, settings)))
        trial.set_user_attr("errors", scores["errors"])
        said = " ".join(f"{name} {value:.3f}" for name, value in drawn.items())
        print(f"trial {trial.number}: {said} -> WER {scores['wer']:.2f}", flush=True)
        return scores["wer"]

    if trials > done:
        study.optimize(objective, n_trials=trials - done)
    return study


def method(value: str) -> str:
    """argparse type of --tune: a method, else TUNE's one-line error."""
    return check("TUNE", value, " or ".join(METHODS), value in METHODS)


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    stage.add_run_arguments(parser)
    tunable = [name for name, module in decoders.DECODERS.items() if decoders.tunes(module)]
    parser.add_argument("--decoder", type=decoders.knob,
                        default=decoders.default("tune-lm").NAME,
                        help=f"the decoder whose LM weights to tune: {', '.join(tunable)} "
                             f"(another, without weights: the default's)")
    parser.add_argument("--subset", default="dev_other")
    parser.add_argument("--tune", type=method, default=METHODS[0],
                        help="search: a full decode per trial (the paper's, the default); "
                             "rescore: a few decodes, the pairs searched by rescoring their beams")
    parser.add_argument("--trials", type=int, default=128,
                        help="pairs tried by --tune search, each a full decode (rescore: a grid)")
    parser.add_argument("--sampler-seed", type=int, default=1, help="seed of the TPE sampler")
    parser.add_argument("--max-tokens", type=int, default=1_600_000, help="samples per batch")
    decoders.add_arguments(parser, tuning=True)  # each decoder's options, as decode's
    args = parser.parse_args(argv)
    decoder = decoders.tuned(args)
    args.decoder = decoder.NAME
    if args.beam is None:
        args.beam = decoder.TUNE_BEAM
    if args.trials < 1 or args.beam < 1:
        raise UserError(f"--trials {args.trials} --beam {args.beam}: give positive numbers")
    return args


def weights_record(args, decoder, run: stage.Run, chosen: dict, key: dict, files: dict) -> dict:
    """weights.json: the chosen weights (`chosen`: them, their decode's wer, trial, trials,
    method's figures) and everything they hold for: the tuning `key`, the decoder's files and
    their `files` key (its tuning_key)."""
    return {"decoder": decoder.NAME, **chosen, "tuning_method": args.tune,
            "subset": args.subset, "beam": args.beam, "beam_threshold": BEAM_THRESHOLD,
            **({"sampler": "optuna TPESampler", "sampler_seed": args.sampler_seed}
               if args.tune == "search" else {"sampler": f"grid {rescore.GRID}x{rescore.GRID}"}),
            **{f"{name}_range": list(bounds) for name, bounds in decoder.SEARCH_SPACE.items()},
            **{option: str(getattr(args, option).resolve()) for option in decoder.FILES},
            **files, "checkpoint": str(run.checkpoint.resolve()),
            **(run.identity or {}),
            "versions": {**versions(), "flashlight-text": version("flashlight-text"),
                         "optuna": version("optuna")},
            "tuning_key": key}


def finished(out: Path, key: dict, trials: int, kept: str = "optuna.db") -> dict | None:
    """OUT/weights.json when it is the outcome of at least `trials` trials for exactly `key`
    and nothing was tried after it was written to OUT/`kept` (the trials, or rescoring's
    rounds.json; then tuning again would change nothing)."""
    weights, storage = out / "weights.json", out / kept
    try:
        record = json.loads(weights.read_text())
        current = weights.stat().st_mtime_ns >= storage.stat().st_mtime_ns
    except (OSError, ValueError):
        return None
    if current and record.get("tuning_key") == key and record.get("trials", 0) >= trials:
        return record
    return None


def main(argv=None) -> int:
    args = parse(argv)
    decoder = decoders.get(args.decoder)  # the one parse chose, its files taken
    run = stage.resolve_run(args)
    stage.check_manifests(args.manifests, [args.subset])
    refs = emissions.references(args.manifests, args.subset)
    if not any(ref.split() for ref in refs):
        raise UserError(f"{args.manifests / args.subset}.ltr: no words to tune on; give a "
                        "set with transcripts (TUNE_SET=dev-other)")
    checkpoint_sha = checkpoint_sha256(run.checkpoint, args.verify_sha256)
    # the LM and lexicon before the model: a bad one stops before minutes of emissions
    files = decoder.tuning_key(args, checkpoint_sha)
    out = tuning_dir(run.folder, decoder.NAME)
    key = {**files, "subset": args.subset, "beam": args.beam,
           "manifest_sha256": file_digest(args.manifests / f"{args.subset}.tsv"),
           "method": args.tune, **({"grid": rescore.GRID} if args.tune == "rescore" else {})}
    kept = "rounds.json" if args.tune == "rescore" else "optuna.db"
    done = finished(out, key, args.trials if args.tune == "search" else 0, kept)
    if done:
        print(f"{out.name} is up to date ({done['tuning_method']}, "
              f"{done['trials']} decodes on {args.subset}, best WER "
              f"{done['wer']:.2f}); delete {out} to tune again")
        return 0
    if args.tune == "rescore":
        rescore.check_space(decoder.SEARCH_SPACE)
    decode = (decoder.hypotheses if args.tune == "rescore" else decoder.searcher)(args)
    how = (f"{args.trials} trials" if args.tune == "search" else
           f"a {rescore.GRID}x{rescore.GRID} grid rescored")
    with stage.fairseq_stage("tune-lm", f"{args.tune}, {how} on {args.subset} -> {out}",
                             run.folder, "tune-lm"):
        frames = emissions.cached(run.folder, run.checkpoint, checkpoint_sha, args.manifests,
                                  [args.subset], stage.device(args), args.max_tokens)
        chosen, trials = (tuned_by_rescoring if args.tune == "rescore" else tuned_by_search)(
            args, decode, frames[args.subset], refs, out, key, decoder.SEARCH_SPACE)
    record = weights_record(args, decoder, run, chosen, key, files)
    write_json_atomic(out / "trials.json", trials)
    write_json_atomic(out / "weights.json", record)
    best = ", ".join(f"{name} {record[name]:.3f}" for name in decoder.SEARCH_SPACE)
    print(f"{args.subset}: best WER {record['wer']:.2f} with {best} ({args.tune}: "
          f"{record['decodes']} decodes, beam {args.beam}) -> {out / 'weights.json'}")
    return 0


def tuned_by_search(args, decode, utterances, refs, out: Path, key: dict, space: dict):
    """The paper's way: a full decode per trial. (weights.json's figures, trials.json)"""
    study = tune(decode, utterances, refs, args.trials, args.beam, args.sampler_seed,
                 out / "optuna.db", key, space)
    best = study.best_trial
    trials = [{"number": t.number, **t.params, "wer": t.value}
              for t in study.trials if t.value is not None]
    return {**best.params, "wer": best.value, "trial": best.number, "trials": len(trials),
            "decodes": len(trials)}, trials


def tuned_by_rescoring(args, decode, utterances, refs, out: Path, key: dict, space: dict):
    """A few decodes, the pairs searched by rescoring their beams (w2v2_10min.rescore).
    (weights.json's figures, trials.json: each decode)"""
    done = rescore.tune(decode, utterances, refs, args.beam, out, key, space)
    trials = [{"number": i, **r["point"], "wer": r["wer"], "rescored_wer": r["rescored_wer"],
               "hypotheses": r["hypotheses"]} for i, r in enumerate(done["rounds"])]
    return {**done["point"], "wer": done["wer"], "trial": done["round"] - 1,
            "trials": len(done["rounds"]), "decodes": len(done["rounds"]),
            "rounds": done["rounds"], "converged": done["converged"],
            "max_rounds": rescore.MAX_ROUNDS, "confirm": rescore.CONFIRM}, trials


if __name__ == "__main__":
    run_main(main)
