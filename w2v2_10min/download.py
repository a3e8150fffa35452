"""Download, verify and unpack the data sets into DATA (the `make data` stage).

Usage:
  python scripts/download.py [--data DATA] [--only NAME ...] [--base-url URL] [--table JSON] [--lm]
                             [--pool train-clean-100]

Each file of TABLE is downloaded to DATA/downloads/<file>.part (a rerun resumes it with an
HTTP Range request), checked against its published sha256 or md5 (dict.ltr.txt, which has no
published checksum, by its content) and only then unpacked: into a temporary folder inside
DATA whose folders are renamed into place. DATA/downloads/<name>.ok records the checksum once
everything is in place; with it, a rerun skips the file. Verified archives are deleted after
unpacking; a file that fails its check is moved aside to DATA/downloads/<file>.bad.

--base-url URL (or $FETCH_BASE_URL) fetches every file from URL/<file name> instead, e.g.
from a mirror; --table JSON replaces TABLE with a JSON list of its entries (as in Item).
--lm adds LM_TABLE: OpenSLR 11's 4-gram.arpa.gz and librispeech-lexicon.txt, kept as they
come (DATA/4-gram.arpa.gz, DATA/librispeech-lexicon.txt) for `make lm`.
--pool NAME adds POOL_TABLE's NAME: LibriSpeech train-clean-100 (6.3 GB, unpacked to
DATA/LibriSpeech/train-clean-100/), the pool `make manifests POOL=` draws samples from.
Needs the standard library, and tqdm for the progress bar shown on a terminal.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from w2v2_10min.common import UserError, file_digest, progress, stage, write_text_atomic
from w2v2_10min.formats import DICT_LTR
from w2v2_10min.knobs import knob

CHUNK = 1 << 20
TIMEOUT = 60  # seconds without data before a download counts as dropped
USER_AGENT = "w2v2-10min-fetch"


def check_dict_ltr(path: Path) -> str | None:
    """None when `path` is the released dict.ltr.txt (common.DICT_LTR), else what differs."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for lineno, (line, (symbol, count)) in enumerate(zip(lines, DICT_LTR), 1):
        if line.split() != [symbol, str(count)]:
            return f"line {lineno} is {line!r}, expected '{symbol} {count}'"
    if len(lines) != len(DICT_LTR):
        return f"{len(lines)} lines, expected {len(DICT_LTR)}"
    return None


CONTENT_CHECKS = {"dict_ltr": check_dict_ltr}


@dataclass(frozen=True)
class Item:
    """One file to fetch: `unpack_to` is the folder its archive yields, None for a plain file."""
    name: str
    url: str
    sha256: str | None = None
    md5: str | None = None
    check: str | None = None  # a key of CONTENT_CHECKS, for files without a published checksum
    unpack_to: str | None = None

    def __post_init__(self):
        if not (self.sha256 or self.md5 or self.check):
            raise ValueError(f"{self.name}: needs sha256, md5 or check")
        if self.check and self.check not in CONTENT_CHECKS:
            raise ValueError(f"{self.name}: unknown check {self.check!r}")

    @property
    def target(self) -> str:
        """What exists under DATA once the item is in place."""
        return self.unpack_to or url_name(self.url)

    @property
    def stamp(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        return f"md5 {self.md5}" if self.md5 else f"check {self.check}"


TABLE = [
    Item("librispeech_finetuning",
         "https://dl.fbaipublicfiles.com/librilight/data/librispeech_finetuning.tgz",
         sha256="5d1efdc777b548194d7e09ba89126e2188026df9fd57aa57eb14408d2b2342af",
         unpack_to="librispeech_finetuning"),
    Item("dev-clean", "http://www.openslr.org/resources/12/dev-clean.tar.gz",
         md5="42e2234ba48799c1f50f24a7926300a1", unpack_to="LibriSpeech/dev-clean"),
    Item("dev-other", "http://www.openslr.org/resources/12/dev-other.tar.gz",
         md5="c8d0bcc9cca99d4f8b62fcc847357931", unpack_to="LibriSpeech/dev-other"),
    Item("test-clean", "http://www.openslr.org/resources/12/test-clean.tar.gz",
         md5="32fa31d27d2e1cad72775fee3f4849a9", unpack_to="LibriSpeech/test-clean"),
    Item("test-other", "http://www.openslr.org/resources/12/test-other.tar.gz",
         md5="fb5a50374b501bb3bac4815ee91d3135", unpack_to="LibriSpeech/test-other"),
    Item("dict", "https://dl.fbaipublicfiles.com/fairseq/wav2vec/dict.ltr.txt", check="dict_ltr"),
]
# `make lm` (--lm): the LibriSpeech LM corpus's 4-gram LM and lexicon (OpenSLR 11), plain files.
# OpenSLR's page shows no checksums for them; these md5 sums come from a public LibriSpeech
# recipe's table (pydrobert-pytorch) whose sums for the audio archives above agree with ours.
LM_TABLE = [
    Item("4-gram", "http://www.openslr.org/resources/11/4-gram.arpa.gz",
         md5="6abdcd5b055bd482e4f9defe91d40408"),
    Item("lexicon", "http://www.openslr.org/resources/11/librispeech-lexicon.txt",
         md5="28f72663f6bfed7cd346283c064c315b"),
]


# `make data POOL=NAME` (--pool NAME): a pool that `make manifests POOL=NAME` draws samples of N
# utterances from (w2v2_10min.layout.POOLS names them). The SHA-256 is torchaudio's
# (torchaudio/datasets/librispeech.py, _CHECKSUMS); OpenSLR 12's md5sum.txt, as pydrobert-pytorch
# copies it, gives md5 2a93770f6d5c6c964bc36631d331a522 for the same archive.
POOL_TABLE = {
    "train-clean-100": Item(
        "train-clean-100", "http://www.openslr.org/resources/12/train-clean-100.tar.gz",
        sha256="d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
        unpack_to="LibriSpeech/train-clean-100"),
}


def url_name(url: str) -> str:
    return PurePosixPath(urllib.parse.urlsplit(url).path).name


def mirror(url: str, base_url: str | None) -> str:
    """The same file name under `base_url`, or `url` itself when there is no base URL."""
    return f"{base_url.rstrip('/')}/{url_name(url)}" if base_url else url


def size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"


def download(url: str, part: Path) -> None:
    """Fetch `url` into `part`, continuing an existing `part` with a Range request."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.build_opener().open(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the .part is whole
            return
        raise UserError(f"{url}: HTTP {err.code} {err.reason}; check the URL (or --base-url) "
                        "and run again") from None
    except OSError as err:  # URLError, refused, timed out
        raise UserError(f"{url}: cannot connect ({getattr(err, 'reason', err)}); check the "
                        "network (or --base-url) and run again") from None
    with response:
        if have and response.status == 206:
            start = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start != str(have):
                raise UserError(f"{part}: the server resumed at the wrong offset ({start}, "
                                f"asked for {have}); delete the file and run again")
            mode = "ab"
            print(f"{part.name}: resuming at {size(have)}", file=sys.stderr)
        else:
            if have:
                print(f"{part.name}: the server cannot resume; starting over", file=sys.stderr)
            have, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        done, lost = have, False
        # bytes, rate and time left, on a terminal only
        bar = progress(part.name.removesuffix(".part"), total, initial=have, unit="B",
                       unit_scale=True, unit_divisor=1000)
        with open(part, mode) as out, bar:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException):
                lost = True
    if lost or total is not None and done < total:
        got = f"{size(done)} of {size(total)}" if total else size(done)
        raise UserError(f"{part}: connection lost after {got} ({url}); run the same command "
                        "again to resume the download")
    print(f"{part.name}: downloaded {size(done)}", file=sys.stderr)


def set_aside(path: Path) -> Path:
    bad = path.with_name(path.name.removesuffix(".part") + ".bad")
    os.replace(path, bad)
    return bad


def verify(path: Path, url: str, sha256=None, md5=None, check=None) -> None:
    """Raise a UserError, with the file moved aside to .bad, unless it passes its check."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            actual = file_digest(path, algorithm)
            if actual != expected.lower():
                bad = set_aside(path)
                raise UserError(f"{bad}: {algorithm} is {actual}, expected {expected} ({url}); "
                                "delete it and run again, or check the URL (or --base-url)")
            return
    problem = CONTENT_CHECKS[check](path)
    if problem:
        bad = set_aside(path)
        raise UserError(f"{bad}: not the expected {url_name(url)} ({problem}; {url}); "
                        "delete it and run again, or check the URL (or --base-url)")


def fetch(url: str, dest_dir: Path, sha256=None, md5=None, check=None) -> Path:
    """Return dest_dir/<file name of url>, downloaded (resuming a .part) and verified.

    A file already there is verified again instead of downloaded.
    """
    if not (sha256 or md5 or check):
        raise ValueError(f"{url}: give sha256, md5 or check")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / url_name(url)
    if path.exists():
        verify(path, url, sha256, md5, check)
        return path
    part = path.with_name(path.name + ".part")
    print(f"fetching {url}", file=sys.stderr)
    download(url, part)
    verify(part, url, sha256, md5, check)
    os.replace(part, path)
    return path


def unsafe_member(tar: tarfile.TarFile) -> str | None:
    """The first member that could land outside the folder it is unpacked into, if any."""
    for member in tar.getmembers():  # reads the whole archive
        link = member.linkname if member.issym() or member.islnk() else ""
        for name in (member.name, link):
            if name.startswith("/") or ".." in PurePosixPath(name).parts:
                return member.name
        if not (member.isfile() or member.isdir() or link):
            return member.name
    return None


def move_into(src: Path, dest: Path) -> None:
    """Rename src onto dest; folders present on both sides are merged, files replaced."""
    if src.is_dir() and dest.is_dir() and not dest.is_symlink():
        for child in src.iterdir():
            move_into(child, dest / child.name)
    else:
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(src, dest)


def read_archive(archive: Path) -> tarfile.TarFile:
    """Open the archive and check all its members; a corrupt or unsafe one is moved to .bad."""
    tar = None
    try:
        tar = tarfile.open(archive)
        unsafe = unsafe_member(tar)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        if tar is not None:
            tar.close()
        bad = set_aside(archive)
        raise UserError(f"{bad}: not a readable archive ({err}); delete it and run again, "
                        "or check the URL") from None
    if unsafe:
        tar.close()
        bad = set_aside(archive)
        raise UserError(f"{bad}: unsafe member {unsafe!r} (absolute path, '..' or special "
                        "file), not unpacked; delete it and check the URL")
    return tar


def unpack(archive: Path, data: Path, item: Item) -> None:
    """Extract into a temporary folder in DATA, then rename what it holds into place."""
    for stale in data.glob(f".unpack-{item.name}-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".unpack-{item.name}-", dir=data))
    try:
        with read_archive(archive) as tar:
            print(f"unpacking {archive.name}", file=sys.stderr)
            try:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
                    tar.extractall(tmp, filter="data")
                else:
                    tar.extractall(tmp)
            except tarfile.TarError as err:  # refused by the data filter
                bad = set_aside(archive)
                raise UserError(f"{bad}: unsafe archive ({err}), not unpacked; delete it and "
                                "check the URL") from None
            except OSError as err:
                raise UserError(f"{archive}: cannot unpack into {data} ({err}); free some "
                                "space and run again") from None
        if not (tmp / item.unpack_to).is_dir():
            raise UserError(f"{archive}: holds no {item.unpack_to}/; fix its table entry")
        target = data / item.unpack_to
        if target.exists():  # an older copy without a stamp
            shutil.rmtree(target)
        move_into(tmp, data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_item(item: Item, data: Path, base_url: str | None = None) -> str:
    """Put one item in place under DATA unless its stamp says it is; return what was done."""
    downloads = data / "downloads"
    stamp = downloads / f"{item.name}.ok"
    target = data / item.target
    if target.exists() and stamp.is_file() and stamp.read_text().strip() == item.stamp:
        return "skipped, already verified"
    stamp.unlink(missing_ok=True)
    path = fetch(mirror(item.url, base_url), downloads, item.sha256, item.md5, item.check)
    if item.unpack_to:
        unpack(path, data, item)
        path.unlink()
    else:
        os.replace(path, target)
    write_text_atomic(stamp, item.stamp + "\n")
    return f"verified, in {target}"


def load_table(path: Path) -> list[Item]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return [Item(**row) for row in rows]
    except (OSError, ValueError, TypeError) as err:
        fields = ", ".join(asdict(TABLE[0]))
        raise UserError(f"{path}: not a table ({err}); write a JSON list of objects with "
                        f"the fields {fields}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="where to put the data")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="fetch only these entries")
    parser.add_argument("--base-url", default=os.environ.get("FETCH_BASE_URL") or None,
                        help="fetch every file from BASE_URL/<file name> (a mirror)")
    parser.add_argument("--table", type=Path, help="a JSON table to use instead of the built-in")
    parser.add_argument("--lm", action="store_true",
                        help="also the 4-gram LM and lexicon of OpenSLR 11 (1.3 GB; make lm)")
    parser.add_argument("--pool", type=knob("POOL"),
                        help="also this pool for drawn samples: train-clean-100 (6.3 GB)")
    args = parser.parse_args(argv)
    table = load_table(args.table) if args.table else TABLE + (LM_TABLE if args.lm else [])
    if args.pool and args.pool not in {item.name for item in table}:
        table.append(POOL_TABLE[args.pool])
    names = [item.name for item in table]
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        raise UserError(f"--only {' '.join(unknown)}: unknown name; choose from {' '.join(names)}")
    args.data.mkdir(parents=True, exist_ok=True)
    with stage("data", str(args.data)):
        for item in table:
            if args.only is None or item.name in args.only:
                print(f"{item.name}: {fetch_item(item, args.data, args.base_url)}")
    return 0

