"""A run's identity, and where each stage's outputs live: the one home of both, so no stage
spells a run's folder or a file in it, nor interprets an identity key, itself (tests/test_layout.py
checks the stage modules for it).

Usage:
    ident = RunId("large", "paper", split="0", seed="1", lr="3e-5")
    run = ident.folder(Path("runs"))        # runs/large-paper-lr3e-5/10min-0/seed-1
    RunId.of(json.loads(run_json(run).read_text()))     # parsed back, checked
    decode_dir(run, "4gram") / "dev_other" / WER_JSON

  runs/<model>-<protocol>[+<rung>][-<lr_decay>][-<optim>][-<trainer>][-lr<lr>]/10min-<split>/seed-<seed>/
      checkpoints/ config.yaml run.json done logs/ tensorboard/ hydra/ wandb/ wandb-id
      slurm.json slurm/           its SLURM job's record and submitit's files (LAUNCHER=slurm)
      hf/                         `make export-hf`
      decode/<subset>/            Viterbi (no LM): hyp.wrd ref.wrd wer.json
      decode-<decoder>/<subset>/  any other decoder, e.g. decode-4gram/, same files
      emissions/<subset>.npz      the model's outputs kept for LM decoding (float16)
      tune-<decoder>/             `make tune-lm`: weights.json, trials.json; hypotheses.npz and
                                  rounds.json (TUNE=rescore) or optuna.db (TUNE=search)
  runs/<model>-released/      a released fine-tuned checkpoint (the control row): run.json,
      decode*/<subset>/, emissions/, tune-<decoder>/, hf/ as a run has them

A key of the identity is a field of RunId, with the Make knob that sets it: everything else
(the stages' --options, run.json and wer.json, the folder's name, the report's grouping, a
SLURM sweep's runs, `make status`) is derived from the fields, so adding one is one change
here and its knob in the Makefile (tests/test_layout.py shows it).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

VITERBI = "viterbi"
RELEASED = "released"
NO_SPLIT = "-"  # split and seed of a released checkpoint's record
FAIRSEQ = "fairseq"


def key(knob: str, default: str | None = None, absent: str | None = None):
    """An identity field set by Make's KNOB; `absent` is its value in records written before
    the key existed (None: such a record is refused)."""
    return field(default=default, metadata={"knob": knob, "absent": absent}) \
        if default is not None else field(metadata={"knob": knob, "absent": absent})


@dataclass(frozen=True)
class RunId:
    """What names a run, written once by `finetune` into RUN/run.json (these keys of it) and
    copied from there into every record a later stage writes (wer.json, the tuning's
    weights.json, the export's record). All values are strings. `lr` and `lr_decay` are what
    the user gave (LR, LR_DECAY), '' for the recipe's own; the values trained with are
    run.json's `trained_lr` and `trained_lr_decay`, which records carry too."""
    model: str = key("MODEL")
    protocol: str = key("PROTOCOL")
    split: str = key("SPLIT")
    seed: str = key("SEED")
    lr: str = key("LR", "")
    lr_decay: str = key("LR_DECAY", "")
    trainer: str = key("TRAINER", FAIRSEQ, absent=FAIRSEQ)
    rung: str = key("RUNG", "", absent="")
    optim: str = key("OPTIM", "", absent="")

    def __post_init__(self):
        for name in self.keys():
            value = getattr(self, name)
            object.__setattr__(self, name, "" if value is None else str(value))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """The keys without a default: naming a run takes these at least."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING)

    @classmethod
    def knobs(cls) -> dict[str, str]:
        """{key: the Make knob that sets it}."""
        return {f.name: f.metadata["knob"] for f in dataclasses.fields(cls)}

    @classmethod
    def of(cls, record) -> "RunId":
        """The identity a record (run.json, wer.json, ...) holds; KeyError naming a key it
        lacks (one that existed when it was written), TypeError naming a key whose value is
        neither a string nor a whole number."""
        values = {}
        for f in dataclasses.fields(cls):
            value = record.get(f.name, f.metadata["absent"])
            if value is None:
                raise KeyError(f.name)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise TypeError(f.name)
            values[f.name] = str(value)
        return cls(**values)

    @classmethod
    def released(cls, model: str) -> "RunId":
        """The identity of MODEL's released 10-minute checkpoint (the control row)."""
        return cls(model, RELEASED, NO_SPLIT, NO_SPLIT)

    @property
    def is_released(self) -> bool:
        return self.protocol == RELEASED

    def record(self) -> dict[str, str]:
        """The identity as run.json and every record hold it."""
        return dataclasses.asdict(self)

    @property
    def label(self) -> str:
        """The protocol as the report groups runs: `paper`, `paper-exponential` when LR_DECAY
        named the run, `paper-transformers` for another trainer, `seed+masks-adamw-transformers`
        for a rung of the departure ladder (RUNG) trained with another optimizer (OPTIM) (runs
        of every learning rate compete within one label; trainers are never pooled)."""
        parts = [self.protocol + (f"+{self.rung}" if self.rung else ""), self.lr_decay,
                 self.optim, "" if self.trainer == FAIRSEQ else self.trainer]
        return "-".join(p for p in parts if p)

    @property
    def setting(self) -> str:
        """The label with the learning rate the user named: `fairseq`, `paper-lr3e-5`."""
        return self.label + (f"-lr{self.lr}" if self.lr else "")

    @property
    def name(self) -> str:
        """The top folder of a run: `<model>-<setting>`, e.g. `base-fairseq`,
        `base-paper-exponential-lr3e-5`; `<model>-released` for a released one."""
        return f"{self.model}-{self.setting}"

    def folder(self, root: Path) -> Path:
        """RUN: `<root>/<name>/10min-<split>/seed-<seed>`, or `<root>/<model>-released`."""
        if self.is_released:
            return Path(root) / self.name
        return Path(root) / self.name / f"10min-{self.split}" / f"seed-{self.seed}"

    @property
    def lr_value(self) -> float | None:
        """The learning rate the user named, as a number (None: the recipe's own)."""
        return learning_rate(self.lr)

    def describe(self) -> str:
        """`model large, protocol paper, lr 3e-5, split 0, seed 1` for messages."""
        return (f"model {self.model}, protocol {self.label}, lr {self.lr or 'the recipe’s'}, "
                f"split {self.split}, seed {self.seed}")


IDENTITY = RunId.keys()

# The departure ladder (`make ladder`, w2v2_10min/ladder.py): from PROTOCOL=seed, each rung
# returns one more of the seed's departures to the paper's value, in this order.
RUNGS = ("norm", "updates", "freeze", "masks", "dropouts", "schedule", "optimizer")


def label_order(label: str) -> tuple:
    """The report's order of labels: by protocol, a ladder's rungs in climbing order, then
    the rest of the label."""
    head, _, rest = label.partition("-")
    protocol, _, rung = head.partition("+")
    return (protocol, RUNGS.index(rung) + 1 if rung in RUNGS else 0, rung, rest)


def learning_rate(text) -> float | None:
    """A recorded learning rate as a number, None unless it is a finite number > 0."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def trained_lr(record: dict) -> float | None:
    """The learning rate a run was trained with, as a number: `trained_lr`, else `lr`; None
    when the record names neither (the recipe's own, not recorded)."""
    for name in ("trained_lr", "lr"):
        if record.get(name) not in (None, ""):
            return learning_rate(record[name])
    return None


# ---- splits: what a run trains on (its `split`, the SPLIT knob; manifests/10min-<split>/) ----
#   0 .. 5          Libri-light's official 10-minute folds (librispeech_finetuning/1h/K)
#   s<SEED>         a sample drawn from Libri-light's 9h pool with SEED (MINUTES of audio)
#   c100s<SEED>     48 utterances drawn from LibriSpeech train-clean-100 with sample seed SEED
#   c100s<SEED>n<N> the same with N utterances (N other than 48)

# The pools a sample of N utterances can be drawn from: the split name's prefix -> its folder
# under DATA/LibriSpeech/ (and the name `make data POOL=` and `make manifests POOL=` take).
POOLS = {"c100": "train-clean-100"}
POOL_UTTERANCES = 48  # the seed's `.take(48)`: a pool sample's default size
POOL_SAMPLE_SEED = 42  # the seed's default `data.sample_seed`

# Each kind of split, in the report's order, with what the report calls it. Samples of a pool
# are a kind of their own: clean speech of other speakers, not Libri-light's half clean and
# half other with two speakers each, so they are never averaged with the folds or 9h samples.
SPLIT_KINDS = {"official": "official folds", "seeded": "seeded samples",
               **{pool: f"{pool} samples" for pool in POOLS.values()}}
_POOL_SPLIT = re.compile(r"(?P<prefix>[a-z]+[0-9]*)s(?P<seed>0|[1-9][0-9]*)"
                         r"(?:n(?P<n>[1-9][0-9]*))?")


def pool_split(pool: str, seed, utterances=POOL_UTTERANCES) -> str:
    """The split name of N utterances drawn from POOL with sample seed SEED: `c100s42`, or
    `c100s42n96` for a size other than the seed's 48."""
    prefix = {name: prefix for prefix, name in POOLS.items()}[pool]
    n = int(utterances)
    return f"{prefix}s{int(seed)}" + ("" if n == POOL_UTTERANCES else f"n{n}")


def parse_pool_split(split: str) -> tuple[str, int, int] | None:
    """(pool, sample seed, utterances) of a pool sample's split name as pool_split writes it,
    else None (a fold, a 9h sample, or a name no pool sample has)."""
    match = _POOL_SPLIT.fullmatch(str(split))
    if match is None or match["prefix"] not in POOLS:
        return None
    pool, seed = POOLS[match["prefix"]], int(match["seed"])
    n = int(match["n"]) if match["n"] else POOL_UTTERANCES
    return (pool, seed, n) if pool_split(pool, seed, n) == split else None


def split_kind(split: str) -> str:
    """A key of SPLIT_KINDS: 'official' for Libri-light's folds 0..5, the pool's name (e.g.
    'train-clean-100') for a pool sample, 'seeded' for the 9h samples sN (and anything else)."""
    split = str(split)
    if split.isdigit():
        return "official"
    pool = parse_pool_split(split)
    return pool[0] if pool else "seeded"


def split_order(split: str) -> tuple:
    """Sort key of splits everywhere: official folds 0..5 first, then seeded samples s1, s2,
    ..., s10, ..., then each pool's samples c100s1, c100s2, c100s2n96, ... (numbers in numeric
    order)."""
    split = str(split)
    kinds = list(SPLIT_KINDS)
    parts = tuple((len(p), p) if p.isdigit() else (0, p) for p in re.findall(r"[0-9]+|[^0-9]+",
                                                                               split))
    return (kinds.index(split_kind(split)), parts)


def seed_order(seed: str) -> tuple:
    """Sort key of seeds: 1, 2, ..., 10."""
    return (len(str(seed)), str(seed))


# ---- every path inside a run folder (RUN) -------------------------------------------------

RUN_JSON = "run.json"
WER_JSON = "wer.json"


def run_json(run: Path) -> Path:
    """The run's identity and settings, written by `finetune` (or `decode-original`)."""
    return Path(run) / RUN_JSON


def config_file(run: Path) -> Path:
    """fairseq's composed config the run trains with."""
    return Path(run) / "config.yaml"


def done_file(run: Path) -> Path:
    """Present once fine-tuning finished."""
    return Path(run) / "done"


def checkpoint_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def best_checkpoint(run: Path) -> Path:
    return checkpoint_dir(run) / "checkpoint_best.pt"


def last_checkpoint(run: Path) -> Path:
    """What fine-tuning resumes from."""
    return checkpoint_dir(run) / "checkpoint_last.pt"


def stop_status_file(run: Path) -> Path:
    """The status a trainer stopped with on purpose (saved on the save signal, or no space for
    a save), written by the trainer: torchrun reports any process's stop as a failure."""
    return Path(run) / "logs" / "stop-status"


def logs_dir(run: Path) -> Path:
    return Path(run) / "logs"


# fairseq's line in RUN/logs/finetune-*.log once every copy of a save is written: the update saved
SAVED = re.compile(r"Saved checkpoint .* @ (\d+) updates")


def hydra_dir(run: Path) -> Path:
    """Hydra's own output of the training command (and of its launchers)."""
    return Path(run) / "hydra"


def wandb_id_file(run: Path) -> Path:
    """The run's wandb id, so that a resumed run logs on in the same wandb run."""
    return Path(run) / "wandb-id"


def tensorboard_dir(run: Path) -> Path:
    return Path(run) / "tensorboard"


def slurm_json(run: Path) -> Path:
    """The run's SLURM job: id, state, last error (w2v2_10min.cluster)."""
    return Path(run) / "slurm.json"


def hf_dir(run: Path) -> Path:
    """`make export-hf`'s transformers model."""
    return Path(run) / "hf"


def decode_dir(run: Path, decoder: str = VITERBI) -> Path:
    """`decode/` for Viterbi (as runs have always had it), `decode-<decoder>/` for the rest."""
    return Path(run) / ("decode" if decoder == VITERBI else f"decode-{decoder}")


def decoder_of(folder_name: str) -> str:
    """The decoder whose outputs a folder named `decode` or `decode-<decoder>` holds."""
    return VITERBI if folder_name == "decode" else folder_name.removeprefix("decode-")


def wer_json(run: Path, decoder: str, subset: str) -> Path:
    return decode_dir(run, decoder) / subset / WER_JSON


def decoded_files(run: Path) -> list[Path]:
    """Every wer.json of one run (all decoders), in sorted order."""
    return sorted(Path(run).glob(f"decode*/*/{WER_JSON}"))


def record_run(path: Path) -> Path:
    """The run folder a wer.json lies in (RUN/decode*/<subset>/wer.json)."""
    return Path(path).parents[2]


def run_folders(root: Path) -> list[Path]:
    """Every trained run's folder under `root` (one with run.json or slurm.json)."""
    return sorted(p for p in Path(root).glob("*/10min-*/seed-*")
                  if run_json(p).is_file() or slurm_json(p).is_file())


def wer_json_files(root: Path) -> list[Path]:
    """Every decoded subset under a runs folder, trained runs first, in sorted order."""
    root = Path(root)
    return sorted(root.glob(f"*/10min-*/seed-*/decode*/*/{WER_JSON}")) + \
        sorted(root.glob(f"*-{RELEASED}/decode*/*/{WER_JSON}"))


def emissions_dir(run: Path) -> Path:
    """The acoustic model's outputs kept for LM decoding: one `<subset>.npz` per set."""
    return Path(run) / "emissions"


def tuning_dir(run: Path, decoder: str = "4gram") -> Path:
    """`make tune-lm`'s trials and chosen LM weights for a run."""
    return Path(run) / f"tune-{decoder}"
