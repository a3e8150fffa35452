"""w2v2_10min.layout: a run's identity (RunId) and where its files live, and the promise that
every stage derives what it does with an identity from RunId's fields, so that adding a key
is one change in layout.py (and its Make knob)."""
import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO
from w2v2_10min import cluster, finetune, layout, records, stage, tables
from w2v2_10min.common import UserError
from w2v2_10min.layout import RunId


def test_folder_name_label_and_record():
    ident = RunId("large", "paper", "0", "1", lr="3e-5", lr_decay="exponential")
    assert ident.label == "paper-exponential" and ident.setting == "paper-exponential-lr3e-5"
    assert ident.folder(Path("runs")) == Path("runs/large-paper-exponential-lr3e-5/10min-0/seed-1")
    assert RunId.of(ident.record()) == ident and ident.lr_value == 3e-5
    assert RunId("base", "fairseq", "s2", 3).record() == {
        "model": "base", "protocol": "fairseq", "split": "s2", "seed": "3", "lr": "",
        "lr_decay": "", "trainer": "fairseq", "rung": "", "optim": ""}
    released = RunId.released("vox")
    assert released.is_released and released.folder(Path("r")) == Path("r/vox-released")
    # another trainer is another run, and never pooled with fairseq's in the report
    other = RunId("large", "paper", "0", "1", trainer="transformers")
    assert other.label == "paper-transformers" and other.name == "large-paper-transformers"


def test_records_written_before_a_key_existed_take_its_old_value():
    old = {"model": "large", "protocol": "fairseq", "split": "0", "seed": "1", "lr": "",
           "lr_decay": ""}  # no trainer: made when fairseq was the only one
    assert RunId.of(old).trainer == "fairseq"
    with pytest.raises(KeyError, match="lr_decay"):
        RunId.of({k: v for k, v in old.items() if k != "lr_decay"})
    with pytest.raises(TypeError, match="seed"):
        RunId.of({**old, "seed": 1.5})


def test_one_split_order_and_lr_reading():
    assert sorted(["s10", "2", "s2", "0", "s1"], key=layout.split_order) == \
        ["0", "2", "s1", "s2", "s10"]
    assert [layout.split_kind(s) for s in ("5", "s5")] == ["official", "seeded"]
    assert layout.trained_lr({"lr": "", "trained_lr": "5e-05"}) == 5e-5
    assert layout.trained_lr({"lr": "3e-5"}) == 3e-5
    assert layout.learning_rate("fast") is None and layout.learning_rate("-1") is None


def test_every_path_inside_a_run_comes_from_layout(tmp_path):
    run = RunId("tiny", "tiny", "0", "1").folder(tmp_path)
    assert layout.best_checkpoint(run) == run / "checkpoints/checkpoint_best.pt"
    assert layout.wer_json(run, "4gram", "dev_other") == run / "decode-4gram/dev_other/wer.json"
    assert layout.record_run(layout.wer_json(run, "viterbi", "test_clean")) == run
    layout.run_json(run).parent.mkdir(parents=True)
    layout.run_json(run).write_text("{}")
    assert layout.run_folders(tmp_path) == [run]


def spelled_run_files(path: Path) -> list[str]:
    """Lines of a module that spell a run's file or folder name themselves."""
    pattern = re.compile(r'"(run\.json|wer\.json|done|config\.yaml|slurm\.json|checkpoints|'
                         r'wandb-id)"|/ "logs"|glob\("decode|\}/(hydra|checkpoints|tensorboard)')
    return [line for line in path.read_text().splitlines() if pattern.search(line)]


@pytest.mark.parametrize("module", ["stage", "records", "stats", "compare", "analysis",
                                    "tables", "plots", "status", "cluster", "finetune",
                                    "hf_export", "decode", "tune_lm", "emissions"])
def test_stages_spell_no_run_file_themselves(module):
    path = REPO / "w2v2_10min" / f"{module}.py"
    for file in [path] if path.is_file() else sorted(path.with_suffix("").glob("*.py")):
        assert spelled_run_files(file) == [], file


# ---- adding a key -------------------------------------------------------------------------

@dataclass(frozen=True)
class WithCorpus(RunId):
    """The identity with one key more, as layout.py would have it after the change: its field
    (with the Make knob and the value older records imply) and where it shows in the name."""
    corpus: str = layout.key("CORPUS", "librilight", absent="librilight")

    @property
    def label(self) -> str:
        return super().label + ("" if self.corpus == "librilight" else f"-{self.corpus}")


@pytest.fixture
def with_corpus(monkeypatch):
    monkeypatch.setattr(layout, "RunId", WithCorpus)
    return WithCorpus


def test_adding_a_key_is_one_change_in_layout(with_corpus, tmp_path):
    # the stages' options: decode, tune-lm, export-hf (stage) and finetune
    parser = argparse.ArgumentParser()
    stage.add_run_arguments(parser)
    args = parser.parse_args(["--model", "large", "--protocol", "paper", "--split", "0",
                              "--seed", "1", "--corpus", "cv", "--manifests", "m"])
    ident = stage.identity_of(args)
    assert ident.corpus == "cv"
    assert ident.folder(tmp_path) == tmp_path / "large-paper-cv/10min-0/seed-1"
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "train.tsv").write_text("/\n")
    trained = finetune.parse(["--model", "large", "--protocol", "paper", "--split", "0",
                              "--seed", "1", "--corpus", "cv", "--manifests", str(manifests),
                              "--pretrained", "p.pt"])
    assert finetune.run_identity(trained) == ident
    assert finetune.run_identity(trained).record()["corpus"] == "cv"  # into run.json
    # run.json read back, and refused when it names the other corpus
    run = ident.folder(tmp_path)
    run.mkdir(parents=True)
    layout.run_json(run).write_text(json.dumps({**ident.record(), "trained_lr": "5e-5"}))
    assert stage.read_identity(run, ident)["corpus"] == "cv"
    with pytest.raises(UserError, match="names another run"):
        stage.read_identity(run, WithCorpus("large", "paper", "0", "1"))
    # a wer.json: checked against its folder, and a column of table9.csv
    path = layout.wer_json(run, "viterbi", "dev_other")
    record = {**ident.record(), "trained_lr": "5e-5", "subset": "dev_other"}
    records.check_identity(tmp_path, path, dict(record))
    with pytest.raises(UserError, match="belongs in large-paper-cv/10min-0/seed-1/"):
        records.check_identity(tmp_path, layout.wer_json(
            WithCorpus("large", "paper", "0", "1").folder(tmp_path), "viterbi", "dev_other"),
            dict(record))
    assert "corpus" in tables.csv_keys()
    # a SLURM sweep's runs take the key from its Make knob
    sweep = argparse.Namespace(splits="0", seeds="1 2", lrs="", knobs={
        "MODEL": "large", "PROTOCOL": "paper", "LR_DECAY": "", "TRAINER": "", "CORPUS": "cv",
        "RUN_ROOT": str(tmp_path)})
    assert [folder for folder, _ in cluster.sweep_runs(sweep)] == [
        tmp_path / "large-paper-cv/10min-0/seed-1", tmp_path / "large-paper-cv/10min-0/seed-2"]


def test_every_key_has_its_knob_in_the_makefile():
    """The other half of adding a key: its knob (with `make help`'s line), passed by every
    run-level target (RUN_KNOBS) and to a SLURM job (JOB_KNOBS) unless the sweep sets it."""
    makefile = (REPO / "Makefile").read_text()
    run_knobs = re.search(r"^RUN_KNOBS = (.*?[^\\])\n", makefile, re.S | re.M).group(1)
    job_knobs = re.search(r"^JOB_KNOBS = (.*?[^\\])\n", makefile, re.S | re.M).group(1).split()
    for name, knob in RunId.knobs().items():
        assert re.search(rf"^{knob} \?=.*## \S", makefile, re.M), knob
        assert re.search(rf"{stage.option(name)} '?\$\({knob}\)", run_knobs), knob
        assert knob in job_knobs or knob in ("SPLIT", "SEED", "LR"), knob  # the sweep's own
