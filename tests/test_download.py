"""scripts/download.py against a local HTTP server: checksums, resuming, unpacking, reruns."""
import hashlib
import io
import json
import random
import tarfile

import pytest

from w2v2_10min import download as fetch  # the `make data` stage
from w2v2_10min.common import UserError
from w2v2_10min.formats import DICT_LTR
from conftest import PYTHON, REPO, on_terminal, one_error, run_script
from local_server import Server, local_only  # noqa: F401  (local_only is autouse)

NOISE = random.Random(0).randbytes(30_000)  # incompressible, so archives have some length
DICT_TEXT = "".join(f"{symbol} {count}\n" for symbol, count in DICT_LTR)


def targz(members: dict) -> bytes:
    """A .tar.gz of {name: bytes}; a str value makes a symbolic link to it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


FILES = {
    "librispeech_finetuning.tgz": targz({
        "librispeech_finetuning/1h/0/clean/103/1240/103-1240.trans.txt": b"103-1240-0000 HELLO\n",
        "librispeech_finetuning/1h/0/clean/103/1240/103-1240-0000.flac": NOISE,
        "librispeech_finetuning/9h/other/7/8/7-8.trans.txt": b"7-8-0000 WORLD\n"}),
    "dev-clean.tar.gz": targz({
        "LibriSpeech/README.TXT": b"LibriSpeech\n",
        "LibriSpeech/dev-clean/1/2/1-2.trans.txt": b"1-2-0000 A B\n",
        "LibriSpeech/dev-clean/1/2/1-2-0000.flac": NOISE}),
    "dev-other.tar.gz": targz({
        "LibriSpeech/README.TXT": b"LibriSpeech\n",
        "LibriSpeech/dev-other/3/4/3-4.trans.txt": b"3-4-0000 C D\n"}),
    "dict.ltr.txt": DICT_TEXT.encode(),
    "escape.tar.gz": targz({"LibriSpeech/dev-clean/1/1-2.trans.txt": b"x\n",
                            "../escape.txt": b"outside\n"}),
    "link.tar.gz": targz({"LibriSpeech/dev-clean/1/1-2.trans.txt": b"x\n",
                          "LibriSpeech/dev-clean/link": "../../../escape.txt"}),
}


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


@pytest.fixture
def server():
    srv = Server(FILES)
    yield srv
    srv.close()


def table(srv: Server) -> list[dict]:
    """The test files, listed at a URL the server does not serve: only --base-url reaches them."""
    url = srv.url.replace("/mirror", "/original")

    def archive(name, file, unpack_to, algorithm="md5"):
        return {"name": name, "url": f"{url}/{file}", "unpack_to": unpack_to,
                algorithm: hashlib.new(algorithm, FILES[file]).hexdigest()}

    return [archive("librispeech_finetuning", "librispeech_finetuning.tgz",
                    "librispeech_finetuning", "sha256"),
            archive("dev-clean", "dev-clean.tar.gz", "LibriSpeech/dev-clean"),
            archive("dev-other", "dev-other.tar.gz", "LibriSpeech/dev-other"),
            archive("escape", "escape.tar.gz", "LibriSpeech/dev-clean"),
            archive("link", "link.tar.gz", "LibriSpeech/dev-clean"),
            {"name": "dict", "url": f"{url}/dict.ltr.txt", "check": "dict_ltr"}]


def run(tmp_path, srv, *only, check=True):
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table(srv)))
    return run_script("download.py", "--data", tmp_path / "data", "--table", path,
                      "--base-url", srv.url, "--only", *only, check=check)


ALL = ("librispeech_finetuning", "dev-clean", "dev-other", "dict")


def test_fetches_verifies_unpacks_and_skips_on_rerun(tmp_path, server):
    proc = run(tmp_path, server, *ALL)
    data = tmp_path / "data"
    assert sorted(p.name for p in data.iterdir()) == [
        "LibriSpeech", "dict.ltr.txt", "downloads", "librispeech_finetuning"]
    assert (data / "librispeech_finetuning/1h/0/clean/103/1240/103-1240-0000.flac"
            ).read_bytes() == NOISE
    assert (data / "librispeech_finetuning/9h/other/7/8/7-8.trans.txt").is_file()
    assert (data / "LibriSpeech/dev-clean/1/2/1-2.trans.txt").read_text() == "1-2-0000 A B\n"
    assert (data / "LibriSpeech/dev-other/3/4/3-4.trans.txt").is_file()
    assert (data / "LibriSpeech/README.TXT").is_file()
    assert (data / "dict.ltr.txt").read_text() == DICT_TEXT
    # archives are gone once unpacked; the stamps hold the checksums
    assert sorted(p.name for p in (data / "downloads").iterdir()) == sorted(
        f"{name}.ok" for name in ALL)
    assert (data / "downloads/dev-clean.ok").read_text() == f"md5 {md5(FILES['dev-clean.tar.gz'])}\n"
    assert all(path.startswith("/mirror/") and rng is None for path, rng in server.requests)
    assert len(server.requests) == 4

    server.requests.clear()
    proc = run(tmp_path, server, *ALL)
    assert server.requests == []
    assert proc.stdout.count("skipped, already verified") == 4


def test_bad_checksum_is_one_line_and_the_file_is_set_aside(tmp_path, server):
    server.corrupt.add("dev-clean.tar.gz")
    line = one_error(run(tmp_path, server, "dev-clean", check=False))
    good = FILES["dev-clean.tar.gz"]
    corrupt = good[:100] + bytes([good[100] ^ 1]) + good[101:]
    downloads = tmp_path / "data/downloads"
    assert line.startswith(f"error: {downloads}/dev-clean.tar.gz.bad: md5 is {md5(corrupt)}, "
                           f"expected {md5(good)}")
    assert "delete it and run again" in line
    assert sorted(p.name for p in downloads.iterdir()) == ["dev-clean.tar.gz.bad"]
    assert not (tmp_path / "data/LibriSpeech").exists()

    server.corrupt.clear()  # a later run downloads afresh
    run(tmp_path, server, "dev-clean")
    assert (tmp_path / "data/LibriSpeech/dev-clean/1/2/1-2.trans.txt").is_file()


def test_dropped_connection_keeps_the_part_and_a_rerun_resumes(tmp_path, server):
    size = len(FILES["librispeech_finetuning.tgz"])
    server.drop["librispeech_finetuning.tgz"] = size // 2
    line = one_error(run(tmp_path, server, "librispeech_finetuning", check=False))
    assert "connection lost" in line and "run the same command again to resume" in line
    part = tmp_path / "data/downloads/librispeech_finetuning.tgz.part"
    assert part.stat().st_size == size // 2
    assert not (tmp_path / "data/librispeech_finetuning").exists()

    proc = run(tmp_path, server, "librispeech_finetuning")
    assert server.requests[-1] == ("/mirror/librispeech_finetuning.tgz", f"bytes={size // 2}-")
    assert "resuming" in proc.stderr
    assert (tmp_path / "data/librispeech_finetuning/1h/0/clean/103/1240/103-1240-0000.flac"
            ).read_bytes() == NOISE


def test_server_ignoring_range_starts_over(tmp_path, server):
    part = tmp_path / "data/downloads/dev-clean.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 700)  # appended to, this would fail the checksum
    server.ignore_range = True
    proc = run(tmp_path, server, "dev-clean")
    assert server.requests == [("/mirror/dev-clean.tar.gz", "bytes=700-")]
    assert "starting over" in proc.stderr
    assert (tmp_path / "data/LibriSpeech/dev-clean/1/2/1-2.trans.txt").is_file()


def test_a_whole_part_file_is_verified_not_downloaded_again(tmp_path, server):
    part = tmp_path / "data/downloads/dev-other.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(FILES["dev-other.tar.gz"])  # e.g. killed between download and check
    run(tmp_path, server, "dev-other")
    assert server.requests == [("/mirror/dev-other.tar.gz",
                                f"bytes={len(FILES['dev-other.tar.gz'])}-")]  # answered 416
    assert (tmp_path / "data/LibriSpeech/dev-other/3/4/3-4.trans.txt").is_file()


@pytest.mark.parametrize("name, member", [("escape", "../escape.txt"),
                                          ("link", "LibriSpeech/dev-clean/link")])
def test_members_escaping_data_are_refused(tmp_path, server, name, member):
    line = one_error(run(tmp_path, server, name, check=False))
    assert f"unsafe member '{member}'" in line
    data = tmp_path / "data"
    assert not (tmp_path / "escape.txt").exists()
    assert sorted(p.name for p in data.iterdir()) == ["downloads"]  # nothing unpacked
    assert sorted(p.name for p in (data / "downloads").iterdir()) == [f"{name}.tar.gz.bad"]


def test_dict_is_checked_by_content_with_the_built_in_table(tmp_path, server, monkeypatch):
    data = tmp_path / "data"
    server.files["dict.ltr.txt"] = DICT_TEXT.replace("E 51860", "E 51861").encode()
    proc = run_script("download.py", "--data", data, "--only", "dict", "--base-url", server.url,
                      check=False)
    line = one_error(proc)
    assert f"{data}/downloads/dict.ltr.txt.bad: not the expected dict.ltr.txt" in line
    assert "line 2 is 'E 51861', expected 'E 51860'" in line
    assert not (data / "dict.ltr.txt").exists()

    server.files["dict.ltr.txt"] = DICT_TEXT.encode()
    monkeypatch.setenv("FETCH_BASE_URL", server.url)  # the environment's mirror
    run_script("download.py", "--data", data, "--only", "dict")
    assert (data / "dict.ltr.txt").read_text() == DICT_TEXT
    assert [path for path, _ in server.requests] == ["/mirror/dict.ltr.txt"] * 2


def test_built_in_table_checks_the_published_md5(tmp_path, server):
    line = one_error(run_script("download.py", "--data", tmp_path / "data", "--only", "dev-clean",
                                "--base-url", server.url, check=False))
    assert "expected 42e2234ba48799c1f50f24a7926300a1 (http://127.0.0.1:" in line
    assert not (tmp_path / "data/LibriSpeech").exists()


def test_unknown_name_and_missing_file_are_one_line(tmp_path, server):
    line = one_error(run(tmp_path, server, "dev-dirty", check=False))
    assert line == ("error: --only dev-dirty: unknown name; choose from librispeech_finetuning "
                    "dev-clean dev-other escape link dict")
    line = one_error(run_script("download.py", "--data", tmp_path / "data", "--only", "dict",
                                "--base-url", server.url + "/nowhere", check=False))
    assert line == (f"error: {server.url}/nowhere/dict.ltr.txt: HTTP 404 Not Found; check the "
                    "URL (or --base-url) and run again")


def test_progress_is_shown_on_a_terminal_and_kept_out_of_logs(tmp_path, server):
    server.files["dict.ltr.txt"] = DICT_TEXT.encode() * 400  # big enough to count as a download
    args = ["--only", "dict", "--base-url", server.url, "--table", tmp_path / "table.json"]
    (tmp_path / "table.json").write_text(json.dumps(
        [{"name": "dict", "url": f"{server.url}/dict.ltr.txt", "md5": md5(server.files[
            "dict.ltr.txt"])}]))
    logged = run_script("download.py", "--data", tmp_path / "logged", *args)
    assert "B/s" not in logged.stderr and "dict.ltr.txt.part: downloaded" in logged.stderr
    code, seen = on_terminal(PYTHON, REPO / "scripts/download.py", "--data", tmp_path / "seen", *args)
    assert code == 0 and "dict.ltr.txt.part: downloaded" in seen
    bar = [line for line in seen.split("\r") if line.startswith("dict.ltr.txt:")]
    assert bar and all("/82.8k [" in line and "B/s]" in line for line in bar)  # size, rate


def test_fetch_serves_single_files_such_as_checkpoints(tmp_path, server):
    server.files["model.pt"] = NOISE
    sha = hashlib.sha256(NOISE).hexdigest()
    path = fetch.fetch(f"{server.url}/model.pt", tmp_path / "pretrained", sha256=sha)
    assert path == tmp_path / "pretrained/model.pt" and path.read_bytes() == NOISE
    assert fetch.fetch(f"{server.url}/model.pt", tmp_path / "pretrained", sha256=sha) == path
    assert len(server.requests) == 1  # the second call only verified the file
    with pytest.raises(UserError, match="sha256 is .*, expected 0000"):
        fetch.fetch(f"{server.url}/model.pt", tmp_path / "pretrained", sha256="0" * 64)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt.bad"]


def test_built_in_table():
    names = [item.name for item in fetch.TABLE]
    assert names == ["librispeech_finetuning", "dev-clean", "dev-other", "test-clean",
                     "test-other", "dict"]
    assert fetch.mirror(fetch.TABLE[1].url, "http://mirror.example/ls/") == \
        "http://mirror.example/ls/dev-clean.tar.gz"
    assert fetch.TABLE[0].target == "librispeech_finetuning"
    assert fetch.TABLE[-1].target == "dict.ltr.txt"


def test_plain_files_such_as_the_lm_are_fetched_checked_and_skipped_on_rerun(tmp_path, server):
    """`make lm` fetches 4-gram.arpa.gz and the lexicon as plain files, md5-checked."""
    server.files["4-gram.arpa.gz"] = NOISE
    server.files["librispeech-lexicon.txt"] = b"A\tAH0\nTHE\tDH AH0\n"
    url = server.url.replace("/mirror", "/original")
    entries = [{"name": name, "url": f"{url}/{file}", "md5": md5(server.files[file])}
               for name, file in (("4-gram", "4-gram.arpa.gz"),
                                  ("lexicon", "librispeech-lexicon.txt"))]
    path = tmp_path / "table.json"
    path.write_text(json.dumps(entries))
    args = ["--data", tmp_path / "data", "--table", path, "--base-url", server.url]
    run_script("download.py", *args)
    assert (tmp_path / "data/4-gram.arpa.gz").read_bytes() == NOISE
    assert (tmp_path / "data/librispeech-lexicon.txt").read_bytes() == b"A\tAH0\nTHE\tDH AH0\n"
    server.requests.clear()
    assert run_script("download.py", *args).stdout.count("skipped, already verified") == 2
    assert server.requests == []


def test_the_lm_files_are_fetched_only_when_asked():
    assert {item.name for item in fetch.LM_TABLE} == {"4-gram", "lexicon"}
    assert all(item.md5 and not item.unpack_to for item in fetch.LM_TABLE)
    assert not {item.name for item in fetch.TABLE} & {"4-gram", "lexicon"}
    line = one_error(run_script("download.py", "--lm", "--only", "nothing", check=False))
    assert "4-gram lexicon" in line


# ---- `make data POOL=train-clean-100`: a pool for drawn samples ------------------------------

POOL_ARCHIVE = "train-clean-100.tar.gz"
POOL_FILES = {"LibriSpeech/SPEAKERS.TXT": b"; ID | SEX | ...\n",
              "LibriSpeech/train-clean-100/19/198/19-198.trans.txt": b"19-198-0000 A\n",
              "LibriSpeech/train-clean-100/19/198/19-198-0000.flac": NOISE}


def test_the_pool_is_fetched_only_when_asked_with_its_published_sha256():
    assert "train-clean-100" not in {item.name for item in fetch.TABLE + fetch.LM_TABLE}
    item = fetch.POOL_TABLE["train-clean-100"]
    assert item.url == "http://www.openslr.org/resources/12/train-clean-100.tar.gz"
    assert item.unpack_to == "LibriSpeech/train-clean-100"
    # torchaudio's _CHECKSUMS entry for this URL
    assert item.sha256 == "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"
    from w2v2_10min.layout import POOLS
    assert set(fetch.POOL_TABLE) == set(POOLS.values())  # one name per pool, everywhere


def test_pool_archive_not_matching_the_recorded_sha256_is_refused(tmp_path, server):
    server.files[POOL_ARCHIVE] = targz(POOL_FILES)
    data = tmp_path / "data"
    line = one_error(run_script("download.py", "--data", data, "--pool", "train-clean-100",
                                "--only", "train-clean-100", "--base-url", server.url,
                                check=False))
    assert line.startswith(f"error: {data}/downloads/{POOL_ARCHIVE}.bad: sha256 is ")
    assert "expected d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2" in line
    assert not (data / "LibriSpeech").exists()
    assert [path for path, _ in server.requests] == [f"/mirror/{POOL_ARCHIVE}"]


def test_pool_archive_resumes_is_checked_unpacked_and_skipped_on_rerun(tmp_path, server):
    body = server.files[POOL_ARCHIVE] = targz(POOL_FILES)
    table = tmp_path / "table.json"  # the recorded checksum of the test's archive
    table.write_text(json.dumps([{
        "name": "train-clean-100", "url": f"{server.url}/{POOL_ARCHIVE}",
        "sha256": hashlib.sha256(body).hexdigest(), "unpack_to": "LibriSpeech/train-clean-100"}]))
    args = ["download.py", "--data", tmp_path / "data", "--table", table, "--pool",
            "train-clean-100"]
    server.drop[POOL_ARCHIVE] = len(body) // 3
    assert "run the same command again to resume" in one_error(run_script(*args, check=False))
    proc = run_script(*args)
    assert server.requests[-1] == (f"/mirror/{POOL_ARCHIVE}", f"bytes={len(body) // 3}-")
    assert "resuming" in proc.stderr and "train-clean-100: verified" in proc.stdout
    pool = tmp_path / "data/LibriSpeech/train-clean-100"
    assert (pool / "19/198/19-198-0000.flac").read_bytes() == NOISE
    assert (tmp_path / "data/downloads/train-clean-100.ok").read_text() == \
        f"sha256 {hashlib.sha256(body).hexdigest()}\n"
    server.requests.clear()
    assert "skipped, already verified" in run_script(*args).stdout and server.requests == []


def test_make_data_checks_pool_before_anything_runs(tmp_path):
    from conftest import make
    proc = make("data", "POOL=train-clean-99", f"DATA={tmp_path / 'data'}", check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode != 0 and errors == [
        "error: POOL=train-clean-99: POOL accepts train-clean-100 (empty: Libri-light's 9h pool)"]
    assert list(tmp_path.iterdir()) == []
