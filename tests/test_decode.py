"""Decoding: best path, decoder folders, and when a decoded subset is current."""
import json
import os

import torch

from w2v2_10min import layout, records
from w2v2_10min.decoders import viterbi
from w2v2_10min.decoders.viterbi import best_path


def up_to_date(folder, checkpoint, decoder, settings=None, identity=None):
    needs = viterbi.NEEDS if decoder == "viterbi" else ()
    return records.up_to_date(folder, checkpoint, decoder, settings, identity, needs)


def test_best_path_merges_repeats_drops_blanks_and_padding():
    blank = 0
    # frames: 5 5 0 5 7 7 0 | padded frames that would say 9
    frames = [5, 5, 0, 5, 7, 7, 0, 9, 9]
    emissions = torch.nn.functional.one_hot(torch.tensor([frames]), 10).float()
    assert best_path(emissions, [7], blank) == [[5, 5, 7]]
    assert best_path(emissions, [9], blank) == [[5, 5, 7, 9]]


def test_each_decoder_has_its_own_folder_and_viterbi_keeps_decode(tmp_path):
    run = tmp_path / "large-fairseq" / "10min-0" / "seed-1"
    assert layout.decode_dir(run) == run / "decode"
    assert layout.decode_dir(run, "4gram") == run / "decode-4gram"
    assert layout.decoder_of("decode") == "viterbi" and layout.decoder_of("decode-4gram") == "4gram"
    for decoder in ("viterbi", "4gram"):
        folder = layout.decode_dir(run, decoder) / "dev_other"
        folder.mkdir(parents=True)
        (folder / "wer.json").write_text("{}")
    released = layout.RunId.released("large").folder(tmp_path) / "decode/dev_other/wer.json"
    released.parent.mkdir(parents=True)
    released.write_text("{}")
    assert layout.wer_json_files(tmp_path) == [run / "decode/dev_other/wer.json",
                                               run / "decode-4gram/dev_other/wer.json", released]


def test_a_subset_is_current_only_if_newer_than_the_checkpoint_and_same_decoder(tmp_path):
    checkpoint = tmp_path / "checkpoint_best.pt"
    checkpoint.write_bytes(b"weights")
    folder = tmp_path / "decode" / "dev_other"
    assert not up_to_date(folder, checkpoint, "viterbi")  # never decoded
    folder.mkdir(parents=True)
    (folder / "wer.json").write_text(json.dumps({"decoder": "viterbi"}))
    os.utime(checkpoint, ns=(0, (folder / "wer.json").stat().st_mtime_ns - 10**9))
    assert not up_to_date(folder, checkpoint, "viterbi")  # decoded before `batching` was recorded
    (folder / "wer.json").write_text(json.dumps({"decoder": "viterbi", "batching": {}}))
    os.utime(checkpoint, ns=(0, (folder / "wer.json").stat().st_mtime_ns - 10**9))
    assert up_to_date(folder, checkpoint, "viterbi")
    assert not up_to_date(folder, checkpoint, "4gram")
    os.utime(checkpoint, ns=(0, (folder / "wer.json").stat().st_mtime_ns + 10**9))
    assert not up_to_date(folder, checkpoint, "viterbi")  # the checkpoint changed since


def test_a_decoder_with_settings_is_current_only_with_the_same_settings(tmp_path):
    checkpoint = tmp_path / "checkpoint_best.pt"
    checkpoint.write_bytes(b"weights")
    folder = tmp_path / "decode-4gram" / "dev_other"
    folder.mkdir(parents=True)
    settings = {"beam": 1500, "lm_weight": 2.0, "word_score": -1.0, "lm_sha256": "ab"}
    (folder / "wer.json").write_text(json.dumps({"decoder": "4gram",
                                                 "decoder_settings": settings}))
    os.utime(checkpoint, ns=(0, (folder / "wer.json").stat().st_mtime_ns - 10**9))
    assert up_to_date(folder, checkpoint, "4gram", settings)
    assert not up_to_date(folder, checkpoint, "4gram", {**settings, "lm_weight": 1.5})
    assert not up_to_date(folder, checkpoint, "4gram", {**settings, "lm_sha256": "cd"})
    assert not up_to_date(folder, checkpoint, "viterbi")


def test_a_subset_decoded_for_another_run_identity_is_decoded_again(tmp_path):
    checkpoint = tmp_path / "checkpoint_best.pt"
    checkpoint.write_bytes(b"weights")
    folder = tmp_path / "decode" / "dev_other"
    folder.mkdir(parents=True)
    ident = layout.RunId("base", "paper", "0", "1", "3e-5", "exponential").record()
    (folder / "wer.json").write_text(json.dumps({"decoder": "viterbi", "batching": {},
                                                 **ident}))
    os.utime(checkpoint, ns=(0, (folder / "wer.json").stat().st_mtime_ns - 10**9))
    assert up_to_date(folder, checkpoint, "viterbi", identity=ident)
    assert not up_to_date(folder, checkpoint, "viterbi", identity={**ident, "lr": ""})
    (folder / "wer.json").write_text(json.dumps({"decoder": "viterbi", "batching": {}}))
    os.utime(checkpoint, ns=(0, (folder / "wer.json").stat().st_mtime_ns - 10**9))
    assert not up_to_date(folder, checkpoint, "viterbi", identity=ident)  # decoded before
