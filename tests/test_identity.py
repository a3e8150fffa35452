"""A run's identity is written once, by `make finetune`, and every later stage records that one.

The drift this guards against: `make export-hf PROTOCOL=paper LR_DECAY=exponential` once
recorded protocol=paper where `make decode` recorded paper-exponential.
"""
import json
import shutil

import pytest

from conftest import TINY, make, run_script
from w2v2_10min import layout
from w2v2_10min.common import UserError
from w2v2_10min.stage import read_identity

KNOBS = ["MODEL=tiny", "SPLIT=0", "SEED=1", "LR_DECAY=exponential"]
TRAINED = "tiny-tiny-exponential-lr3e-3"  # LR named, at the tiny recipe's own value


def stage_knobs(env, root):
    return [f"PRETRAINED_DIR={env / 'pretrained'}", f"MANIFEST_ROOT={env / 'manifests'}",
            f"RUN_ROOT={root}", f"DATA={env / 'corpus'}", "EVAL_SETS=dev-other"]


@pytest.fixture(scope="module")
def trained(tiny_env, tmp_path_factory):
    """A tiny run fine-tuned with LR_DECAY and LR given (300 updates: enough for its greedy
    transcripts to be unambiguous, which the export checks)."""
    root = tmp_path_factory.mktemp("identity")
    make("finetune", *stage_knobs(tiny_env, root), *KNOBS, "LR=3e-3", "PROTOCOL=tiny",
         "ARGS=optimization.max_update=300 dataset.validate_interval_updates=300")
    return root


def test_finetune_writes_the_identity_into_run_json_and_names_the_folder_from_it(trained):
    run = trained / TRAINED / "10min-0" / "seed-1"
    record = json.loads((run / "run.json").read_text())
    ident = {key: record[key] for key in layout.IDENTITY}
    assert ident == {"model": "tiny", "protocol": "tiny", "lr": "3e-3",
                     "lr_decay": "exponential", "split": "0", "seed": "1", "trainer": "fairseq",
                     "rung": "", "optim": ""}
    assert layout.RunId.of(ident).folder(trained) == run
    assert record["trained_lr"] == "3e-3" and record["trained_lr_decay"] == "exponential"


def test_decode_tune_lm_and_export_hf_record_the_same_identity(trained, tiny_env, tmp_path):
    """PROTOCOL=paper LR_DECAY=exponential LR=3e-5: the tiny run stands in for such a run (the
    paper recipe has no tiny scale), its run.json saying so, as finetune would write it."""
    ident = layout.RunId("tiny", "paper", "0", "1", "3e-5", "exponential").record()
    run = layout.RunId.of(ident).folder(tmp_path)
    shutil.copytree(trained / TRAINED / "10min-0" / "seed-1", run)
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "protocol": "paper", "lr": "3e-5",
                                              "trained_lr": "3e-5"}))
    knobs = [*stage_knobs(tiny_env, tmp_path), *KNOBS, "PROTOCOL=paper", "LR=3e-5",
             f"DEMO_ROOT={tmp_path}"]
    lm = [f"LM_ARPA={tmp_path / 'lm/4-gram.arpa.gz'}",
          f"LEXICON={tmp_path / 'lm/lexicon.ltr.lst'}", "LM_JOBS=1"]
    make("decode", *knobs)
    make("tiny-lm", *knobs)
    make("tune-lm", *knobs, *lm, "TRIALS=2")
    make("decode", *knobs, *lm, "DECODER=4gram", "BEAM=20")
    make("export-hf", *knobs, "HF_VERIFY=2")
    written = {"viterbi": json.loads((run / "decode/dev_other/wer.json").read_text()),
               "4gram": json.loads((run / "decode-4gram/dev_other/wer.json").read_text()),
               "tune-lm": json.loads((run / "tune-4gram/weights.json").read_text()),
               "export-hf": json.loads((run / "hf/export.json").read_text())}
    for what, record in written.items():
        assert {key: record[key] for key in layout.IDENTITY} == ident, what
    card = (run / "hf/README.md").read_text()
    for key in ("protocol", "lr", "lr_decay"):
        assert f"| {key} | `{ident[key]}` |" in card


def test_a_run_json_that_names_another_run_is_refused(trained, tmp_path):
    run = tmp_path / "tiny-tiny" / "10min-3" / "seed-1"
    shutil.copytree(trained / TRAINED / "10min-0" / "seed-1", run)
    with pytest.raises(UserError, match="names another run"):
        read_identity(run, layout.RunId("tiny", "tiny", "3", "1"))
    proc = run_script("decode.py", "--run-root", tmp_path, "--model", "tiny", "--protocol",
                      "tiny", "--split", "3", "--seed", "1", "--manifests", TINY,
                      "--subsets", "dev_other", check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1 and "names another run" in errors[0]


def test_released_checkpoints_get_their_identity_from_decode_original(tmp_path):
    from w2v2_10min.stage import write_released_record

    checkpoint = tmp_path / "released" / "wav2vec_small_10m.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    (checkpoint.parent / "wav2vec_small_10m.pt.sha256").write_text("ab" * 32 + "  x\n")
    folder = layout.RunId.released("base").folder(tmp_path)
    write_released_record(folder, layout.RunId.released("base"), checkpoint)
    assert folder == tmp_path / "base-released"
    assert read_identity(folder) == {"model": "base", "protocol": "released", "lr": "",
                                     "lr_decay": "", "split": "-", "seed": "-",
                                     "trainer": "fairseq", "rung": "", "optim": ""}
    assert json.loads((folder / "run.json").read_text())["checkpoint_sha256"] == "ab" * 32
