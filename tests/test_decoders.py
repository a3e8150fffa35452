"""A new decoder is one module: a greedy decoder written here (Viterbi's best path over the cached
emissions, under another name, with a file of its own), registered through the decoder protocol,
runs the `decode` stage and is parsed by `tune-lm` with no other file changed; a module that
misses part of the protocol is refused with what it lacks."""
import json
import os
import subprocess
import sys
import types

import pytest

from conftest import PYTHON, REPO
from w2v2_10min import decoders, tune_lm
from w2v2_10min.common import file_digest

GREEDY = '''"""Greedy decoding over the cached emissions: Viterbi's best path, letters from a file.

Usage: decoders.register(greedy); python scripts/decode.py --decoder greedy ... [--letters DICT]
"""
from pathlib import Path

from w2v2_10min.common import file_digest
from w2v2_10min.decoders import viterbi

NAME = "greedy"
CACHED = True  # float16 emissions from RUN/emissions/, kept by whichever decoder ran first
NEEDS = ()
FILES = {"letters": "GREEDY_LETTERS"}


def arguments(group, tuning, users):
    """its letters"""
    group.add_argument("--letters", type=Path,
                       help="fairseq letter dictionary (default: MANIFEST/dict.ltr.txt)")


ARGUMENTS = (arguments,)


def settings(args, run, checkpoint_sha256):
    letters = args.letters or args.manifests / "dict.ltr.txt"
    return {"letters": str(letters.resolve()), "letters_sha256": file_digest(letters)}


def prepare(args, settings):
    from fairseq.data import Dictionary
    return Dictionary.load(settings["letters"])


def decode(dictionary, emissions, settings, args):
    return viterbi.words(dictionary, emissions)


def extra(args, settings):
    return {"decoder_settings": settings}


def said(record, settings):
    return f"greedy, CER {record['cer']:.2f}"
'''

DECODE_WITH_GREEDY = """
import importlib, sys
sys.path.insert(0, sys.argv.pop(1))
from w2v2_10min import decoders
from w2v2_10min.common import run_main
from w2v2_10min.decode import main
decoders.register(importlib.import_module("greedy"))
run_main(lambda: main(sys.argv[1:]))
"""


def write_greedy(folder):
    (folder / "greedy.py").write_text(GREEDY)
    return folder


@pytest.fixture
def greedy(tmp_path, monkeypatch):
    """The greedy module imported from tmp_path and registered (for this test only)."""
    import importlib

    monkeypatch.setattr(decoders, "DECODERS", dict(decoders.DECODERS))
    monkeypatch.syspath_prepend(str(write_greedy(tmp_path)))
    monkeypatch.delitem(sys.modules, "greedy", raising=False)
    module = importlib.import_module("greedy")
    decoders.register(module)
    yield module
    sys.modules.pop("greedy", None)


def test_a_registered_decoder_runs_the_decode_stage_like_viterbi(tiny_env, tiny_run, tmp_path):
    """Registered from outside the package, the greedy decoder decodes a run as Viterbi does:
    into decode-greedy/, from the cached emissions, its file taken from make's --files, the same
    words; run again, it is up to date."""
    manifests = tiny_env / "manifests" / "10min-0"
    checkpoint = tiny_run / "checkpoints" / "checkpoint_best.pt"
    out = tmp_path / "run"
    common = ["--checkpoint", checkpoint, "--manifests", manifests, "--subsets", "dev_other",
              "--run", out, "--device", "cpu"]

    def decode(*args):
        proc = subprocess.run([PYTHON, "-c", DECODE_WITH_GREEDY, write_greedy(tmp_path),
                               *map(str, common), *map(str, args)], cwd=REPO,
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    decode()  # Viterbi, the default, keeps the emissions greedy then reads
    # make's way: every decoder's files by knob; greedy takes its own, the others' are ignored
    first = decode("--decoder", "greedy", "--files", f"GREEDY_LETTERS={manifests / 'dict.ltr.txt'}",
                   f"LM_ARPA={tmp_path / 'none.arpa'}")
    assert "computing emissions" not in first.stderr, "it reads the cached emissions"
    record = json.loads((out / "decode-greedy" / "dev_other" / "wer.json").read_text())
    viterbi = json.loads((out / "decode" / "dev_other" / "wer.json").read_text())
    assert record["decoder"] == "greedy" and "greedy, CER" in first.stdout
    assert record["decoder_settings"]["letters_sha256"] == file_digest(manifests / "dict.ltr.txt")
    assert (out / "decode-greedy/dev_other/hyp.wrd").read_text() == \
        (out / "decode/dev_other/hyp.wrd").read_text()
    assert (record["wer"], record["errors"]) == (viterbi["wer"], viterbi["errors"])
    # the same settings again: up to date, as for any decoder
    assert "decode-greedy is up to date" in decode("--decoder", "greedy").stdout


def test_tune_lm_parses_a_registered_decoder_and_its_options(greedy, tmp_path):
    """tune-lm takes the new decoder's options and files as `make tune-lm` passes them; a
    decoder without weights to tune names the default's (as Make's DECODER=viterbi does)."""
    letters = tmp_path / "letters.txt"
    args = tune_lm.parse(["--manifests", str(tmp_path), "--decoder", "greedy", "--letters",
                          str(letters), "--files", "LM_ARPA=lm.arpa", "LEXICON=lexicon.lst",
                          "GREEDY_LETTERS=other.txt"])
    assert args.letters == letters  # given beats --files
    assert (args.decoder, str(args.lm), str(args.lexicon)) == \
        (decoders.default("tune-lm").NAME, "lm.arpa", "lexicon.lst")
    assert args.beam == decoders.default("tune-lm").TUNE_BEAM
    assert "greedy" in decoders.knob("greedy")
    assert "--decoder greedy: its letters" in _help(tune_lm.parse)


def _help(parse) -> str:
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text), pytest.raises(SystemExit):
        parse(["--help"])
    return text.getvalue()


def test_a_module_missing_part_of_the_protocol_is_refused(greedy, monkeypatch):
    broken = types.ModuleType("broken")
    broken.__file__ = "broken.py"
    for name in decoders.REQUIRED:
        setattr(broken, name, getattr(greedy, name))
    broken.NAME = "broken"
    del broken.said
    with pytest.raises(ValueError, match="broken.py: a decoder module defines said too"):
        decoders.register(broken)
    broken.said = greedy.said
    broken.TUNE_BEAM = 5  # weights to tune, but not the rest of what tuning needs
    with pytest.raises(ValueError, match="SEARCH_SPACE, tuning_key, searcher"):
        decoders.register(broken)
    greedy_again = types.ModuleType("greedy_again")
    greedy_again.__dict__.update({name: getattr(greedy, name) for name in decoders.REQUIRED})
    greedy_again.__file__ = "greedy_again.py"
    with pytest.raises(ValueError, match="decoder greedy is .* already"):
        decoders.register(greedy_again)
