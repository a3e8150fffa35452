"""make decode-original, the control row, end to end on CPU: a briefly fine-tuned tiny model is
served from a local HTTP server under the released BASE name, downloaded, its SHA-256 recorded
on first use, verified on every later use (a changed file is refused before it is unpickled),
and decoded like any run."""
import hashlib
import json
import random

import pytest

from w2v2_10min import checkpoints
from w2v2_10min.common import UserError
from conftest import make, one_error, run_script
from local_server import Server, local_only  # noqa: F401  (local_only is autouse)

NAME = "wav2vec_small_10m.pt"  # BASE's released 10-minute checkpoint
SUBSETS = ["dev_clean", "dev_other"]
NOISE = random.Random(1).randbytes(50_000)


@pytest.fixture(scope="module")
def finetuned(tiny_env, tmp_path_factory) -> bytes:
    """checkpoint_last.pt of the tiny model fine-tuned for 20 updates on tiny split 0."""
    root = tmp_path_factory.mktemp("finetuned")
    make("finetune", "MODEL=tiny", "PROTOCOL=tiny", f"PRETRAINED_DIR={tiny_env / 'pretrained'}",
         f"MANIFEST_ROOT={tiny_env / 'manifests'}", f"RUN_ROOT={root}",
         "ARGS=optimization.max_update=20")
    return (root / "tiny-tiny/10min-0/seed-1/checkpoints/checkpoint_last.pt").read_bytes()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def mirror(server, monkeypatch):
    """make's fetch goes to the local server through the environment's mirror variable."""
    monkeypatch.setenv("FETCH_BASE_URL", server.url)
    return server


def decode_original(tmp_path, env, model="base", check=True):
    return make("decode-original", f"MODEL={model}", f"RELEASED_DIR={tmp_path / 'released'}",
                f"RUN_ROOT={tmp_path / 'runs'}", f"MANIFEST_ROOT={env / 'manifests'}",
                f"PRETRAINED_DIR={tmp_path / 'pretrained'}",
                "SPLIT=0", "EVAL_SETS=dev-clean dev-other", check=check)


def make_error(proc) -> str:
    """The one `error:` line of a failed make, with no Python traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def requests_for(server, name=NAME):
    return [request for request in server.requests if request[0] == f"/mirror/{name}"]


def test_downloads_records_decodes_and_reuses(tmp_path, tiny_env, finetuned, mirror):
    mirror.files[NAME] = finetuned
    sha = hashlib.sha256(finetuned).hexdigest()
    released = tmp_path / "released"

    proc = decode_original(tmp_path, tiny_env)
    assert requests_for(mirror) == [(f"/mirror/{NAME}", None)]
    assert (released / NAME).read_bytes() == finetuned
    assert (released / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    assert sorted(p.name for p in released.iterdir()) == [NAME, f"{NAME}.sha256"]  # no .part
    assert f"SHA-256 {sha} recorded on first download" in proc.stdout

    out = tmp_path / "runs/base-released"
    assert sorted(p.name for p in (out / "decode").iterdir()) == SUBSETS
    assert len(list((out / "logs").glob("decode-*.log"))) == 1
    for subset in SUBSETS:
        record = json.loads((out / "decode" / subset / "wer.json").read_text())
        manifest = (tiny_env / "manifests/10min-0" / f"{subset}.tsv").read_text().splitlines()
        utterances = len(manifest) - 1  # the first line is the audio root
        assert utterances > 0
        assert record["subset"] == subset
        assert (record["model"], record["protocol"], record["split"], record["seed"]) == \
            ("base", "released", "-", "-")
        assert record["checkpoint_sha256"] == sha
        assert record["checkpoint"] == str((released / NAME).resolve())
        assert record["utterances"] == utterances
        assert len(record["utterance_errors"]) == len(record["utterance_words"]) == utterances
        assert sum(record["utterance_words"]) == record["words"]
        assert sum(record["utterance_errors"]) == record["errors"]
        assert record["wer"] == pytest.approx(100 * record["errors"] / record["words"])
        assert record["device"] == "cpu" and record["decoder"] == "viterbi"
        for name in ("hyp.wrd", "ref.wrd"):
            assert len((out / "decode" / subset / name).read_text().splitlines()) == utterances
        assert f"{subset}: WER {record['wer']:.2f}" in proc.stdout

    # a second run verifies the file it has and does not download it again
    first = (out / "decode/dev_clean/wer.json").read_text()
    proc = decode_original(tmp_path, tiny_env)
    assert requests_for(mirror) == [(f"/mirror/{NAME}", None)]
    assert f"{released / NAME}: already here, SHA-256 verified" in proc.stdout
    assert (released / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    again = json.loads((out / "decode/dev_clean/wer.json").read_text())
    assert {k: v for k, v in again.items() if k not in ("decode_seconds", "real_time_factor")} \
        == {k: v for k, v in json.loads(first).items()
            if k not in ("decode_seconds", "real_time_factor")}


@pytest.mark.parametrize("model,name,layout", [
    ("vox", "wav2vec_vox_10m_new.pt", "hydra_old_task"),  # hydra era, task audio_pretraining
    ("base", NAME, "argparse")])                            # fairseq <= 0.10: args, w2v_args
def test_released_layouts_decode_like_the_original(tmp_path, tiny_env, finetuned, mirror,
                                                   model, name, layout):
    """The same weights in a layout fairseq released (tests/make_legacy_checkpoints.py) give
    the hypotheses of the original; fairseq 0.12 alone fails on both (fairseq #4691)."""
    original = tmp_path / "original.pt"
    original.write_bytes(finetuned)
    run_script("tests/make_legacy_checkpoints.py", "--finetuned", original, "--pretrained",
               tiny_env / "pretrained/tiny.pt", "--out", tmp_path / "legacy")
    mirror.files["wav2vec_big_10m.pt"] = finetuned
    mirror.files[name] = (tmp_path / "legacy" / f"{layout}.pt").read_bytes()
    decode_original(tmp_path, tiny_env, "large")
    decode_original(tmp_path, tiny_env, model)
    for subset in SUBSETS:
        hyps = [(tmp_path / f"runs/{m}-released/decode" / subset / "hyp.wrd").read_text()
                for m in ("large", model)]
        assert hyps[0] == hyps[1]


@pytest.fixture
def fetched(tmp_path, server):
    """NAME already fetched (and its SHA-256 recorded) into tmp_path/released."""
    server.files[NAME] = NOISE
    checkpoints.fetch_checkpoint(NAME, tmp_path / "released", server.url)
    assert len(requests_for(server)) == 1
    return tmp_path / "released" / NAME


def test_a_changed_file_is_refused_before_loading(tmp_path, tiny_env, fetched, mirror):
    with open(fetched, "ab") as f:
        f.write(b"\0")  # appended by anything: a bad disk, an edit, an attacker
    changed = hashlib.sha256(NOISE + b"\0").hexdigest()
    line = make_error(decode_original(tmp_path, tiny_env, check=False))
    assert line == (f"error: {fetched}: SHA-256 {changed} differs from the recorded "
                    f"{hashlib.sha256(NOISE).hexdigest()}; delete the file and fetch it again")
    assert len(requests_for(mirror)) == 1  # not fetched again over the user's file
    assert not (tmp_path / "runs").exists()  # decode.py never started: no log, no output

    # decode.py checks it too, before unpickling anything
    proc = run_script("decode.py", "--checkpoint", fetched, "--verify-sha256",
                      "--manifests", tiny_env / "manifests/10min-0", "--subsets", "dev_clean",
                      "--run", tmp_path / "out", "--device", "cpu", check=False)
    assert "differs from the recorded" in one_error(proc)
    assert not (tmp_path / "out").exists()


def test_a_file_without_a_recorded_sha256_is_refused(tmp_path, tiny_env, fetched, mirror):
    (tmp_path / "released" / f"{NAME}.sha256").unlink()
    line = make_error(decode_original(tmp_path, tiny_env, check=False))
    assert line.startswith(f"error: {fetched}: no recorded SHA-256 ({NAME}.sha256)")
    assert len(requests_for(mirror)) == 1 and not (tmp_path / "runs").exists()


def test_a_download_differing_from_a_pinned_sha256_is_set_aside(tmp_path, server, monkeypatch,
                                                                capsys):
    server.files[NAME] = NOISE
    sha = hashlib.sha256(NOISE).hexdigest()
    dest = tmp_path / "released"
    monkeypatch.setitem(checkpoints.CHECKPOINT_SHA256, NAME, "0" * 64)
    with pytest.raises(UserError) as err:
        checkpoints.fetch_checkpoint(NAME, dest, server.url)
    assert str(err.value) == (f"{dest / NAME}.bad: SHA-256 {sha}, expected {'0' * 64}; "
                              "delete it and fetch again")
    assert sorted(p.name for p in dest.iterdir()) == [f"{NAME}.bad"]  # no file, no record
    assert (dest / f"{NAME}.bad").read_bytes() == NOISE

    monkeypatch.setitem(checkpoints.CHECKPOINT_SHA256, NAME, sha)
    assert checkpoints.fetch_checkpoint(NAME, dest, server.url) == dest / NAME
    assert f"SHA-256 {sha} matches the pinned value" in capsys.readouterr().out
    assert (dest / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    assert len(requests_for(server)) == 2


def test_unknown_checkpoint_name_is_refused(tmp_path, server):
    with pytest.raises(UserError, match="not a released checkpoint this project knows"):
        checkpoints.fetch_checkpoint("wav2vec_tiny_10m.pt", tmp_path, server.url)
    assert server.requests == []


def test_tiny_has_no_released_checkpoint(tmp_path, tiny_env, mirror):
    line = make_error(decode_original(tmp_path, tiny_env, model="tiny", check=False))
    assert line == "error: MODEL=tiny has no released checkpoint; choose base, large or vox"
    assert mirror.requests == []
    assert not (tmp_path / "released").exists() and not (tmp_path / "runs").exists()
