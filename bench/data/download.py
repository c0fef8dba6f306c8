"""Download and install the paper's datasets in the standard layout.

    python run_bench.py --download horse2zebra [--data-root DIR] [--archive FILE] [--force]

Steps, each of which leaves nothing half-built behind when it fails:
1. Download the archive from the first source that works into `<root>/.downloads/<file>.part`,
   resuming a previous partial download with an HTTP Range request, with a progress bar. The
   finished file is renamed into place; a checksum mismatch deletes it.
2. Check every archive entry before extracting any: absolute paths, `..` components, links and
   device files are refused, and so is an archive that would unpack to more than the dataset can
   plausibly hold (a zip bomb; `plausible_unpacked_bytes`, `--max-unpacked-gb`) or than the disk has
   free. Bytes are counted as they are written, so a header that lies about sizes does not help.
3. Extract into a staging folder next to the target (named after its process, so that a later
   install removes what a killed one left), find the folder holding trainA/trainB/testA/
   testB, orient it so that A -> B is the paper's direction (by the paper's image counts when they
   tell the domains apart, otherwise by what is known of the archive), count the images, write
   `dataset.json`, and move it to `<root>/<name>` in one rename.
"""

from __future__ import annotations

import http.client
import json
import lzma
import os
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from tqdm.auto import tqdm

from bench.data.datasets import CATALOGUE, SPLITS, ArchiveSource, DatasetInfo
from safeio.files import (DiskFullError, InputError, atomic_write_json, is_disk_full, owned_temporary_name,
                          remove_stale_temporaries, sha256_file)
from safeio.images import count_images

CHUNK_BYTES = 1 << 20
MIB = 1 << 20


class DownloadError(InputError, RuntimeError):
    """A dataset could not be downloaded or installed; nothing was left half-built."""


class UnsafeArchiveError(DownloadError):
    """An archive entry would be written outside the target folder, or is a link or device."""


@dataclass(frozen=True)
class InstallReport:
    name: str
    path: Path
    counts: dict[str, int]              # images per split, e.g. {"trainA": 1067, ...}
    source: str                         # URL or local archive path
    sha256: str
    swapped: bool                       # whether the archive's A and B were exchanged
    already_present: bool = False

    def summary(self) -> str:
        counts = ", ".join(f"{split} {self.counts.get(split, 0)}" for split in SPLITS)
        state = "already present" if self.already_present else "installed"
        swap = " (archive's A and B exchanged to the paper's direction)" if self.swapped else ""
        return f"{self.name}: {state} at {self.path}: {counts}{swap}"


# ----------------------------------------------------------------------------------------------
# Download.


def _archive_file_name(url: str) -> str:
    name = PurePosixPath(urllib.request.urlparse(url).path).name
    return name or "archive.zip"


def fetch(url: str, destination: Path, expected_sha256: str | None = None, timeout: float = 60.0,
          progress: bool = True) -> Path:
    """Download `url` to `destination`, resuming `destination.part` if present. Returns `destination`."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ugatit-bench-downloader"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the partial file is already complete (or longer than the file)
            partial.unlink()
            return fetch(url, destination, expected_sha256, timeout, progress)
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"{url}: {getattr(error, 'reason', error)}") from None

    with response:
        resumed = have > 0 and response.status == 206
        if have and not resumed:
            have = 0  # the server ignored the Range request: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        mode = "ab" if resumed else "wb"
        with open(partial, mode) as handle, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=destination.name, disable=not progress, leave=False,
        ) as bar:
            try:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    handle.write(chunk)
                    bar.update(len(chunk))
            except (OSError, urllib.error.URLError, http.client.HTTPException) as error:   # IncompleteRead too
                if is_disk_full(error):
                    raise DiskFullError(partial) from None
                raise DownloadError(f"{url}: the connection broke after {handle.tell()} bytes ({error}); "
                                    "run the same command again to resume") from None
    if total is not None and partial.stat().st_size != total:
        raise DownloadError(f"{url}: got {partial.stat().st_size} of {total} bytes; run the same command again to resume")

    if expected_sha256:
        actual = sha256_file(partial)
        if actual != expected_sha256:
            partial.unlink()
            raise DownloadError(
                f"{url}: checksum mismatch (sha256 {actual}, expected {expected_sha256}); the corrupt file "
                "was deleted; run the command again to download it afresh"
            )
    os.replace(partial, destination)
    return destination


# ----------------------------------------------------------------------------------------------
# Safe extraction.


def _check_member_name(name: str, archive: Path) -> PurePosixPath:
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":") or ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: entry {name!r} would be written outside the dataset folder; "
                                 "the archive was not extracted")
    return path


class ArchiveTooLargeError(DownloadError):
    """An archive that would unpack to more than the dataset can plausibly hold (a zip bomb?)."""


def plausible_unpacked_bytes(info: DatasetInfo, archive_bytes: int) -> int:
    """The most an archive of this dataset may unpack to: images are already compressed (JPEG, PNG),
    so a real dataset unpacks to about its archive's size, and a 256 px image takes well under 1 MiB.
    The limit is the smaller of 1 MiB per image the paper reports (10,000 when unknown) and 20 times
    the archive's size, but never under 64 MiB. `--max-unpacked-gb` replaces it."""
    counts = [*(info.train_counts or ()), *(info.test_counts or ())]
    by_images = (sum(counts) if counts else 10_000) * MIB
    return max(min(by_images, 20 * archive_bytes), 64 * MIB)


def _refuse_if_too_large(archive: Path, declared: int, max_bytes: int, target: Path) -> None:
    if declared > max_bytes:
        raise ArchiveTooLargeError(
            f"{archive}: its entries would unpack to {declared / MIB:,.0f} MiB, more than the {max_bytes / MIB:,.0f} MiB "
            "this dataset can plausibly hold (a zip bomb, or the wrong archive?); nothing was extracted. If the archive "
            "is genuine, raise the limit with --max-unpacked-gb")
    free = shutil.disk_usage(target.parent).free
    if declared + 64 * MIB > free:
        raise DownloadError(f"{archive}: unpacking needs {declared / MIB:,.0f} MiB (and 64 MiB to spare) but "
                            f"{target.parent} has {free / MIB:,.0f} MiB free; nothing was extracted")


def _copy_limited(source, destination: Path, budget: list[int], archive: Path, max_bytes: int) -> None:
    """Copy a member's bytes, counting them against `budget` (headers can lie about sizes)."""
    with open(destination, "wb") as out:
        for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
            budget[0] += len(chunk)
            if budget[0] > max_bytes:
                raise ArchiveTooLargeError(
                    f"{archive}: unpacked more than {max_bytes / MIB:,.0f} MiB, more than its entries declare and more "
                    "than this dataset can plausibly hold (a zip bomb?); extraction stopped and nothing was kept. If "
                    "the archive is genuine, raise the limit with --max-unpacked-gb")
            out.write(chunk)


def _write_members(members: list[tuple[str, bool, Callable]], archive: Path, target: Path, max_bytes: int) -> None:
    """Write (name, is folder, open its bytes) entries under `target`, counting bytes against `max_bytes`."""
    budget = [0]
    for name, is_folder, open_member in members:
        destination = target / _check_member_name(name, archive)
        if is_folder:
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as source:
            _copy_limited(source, destination, budget, archive, max_bytes)


def _extract_zip(archive: Path, target: Path, max_bytes: int) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        for member in members:
            _check_member_name(member.filename, archive)
            kind = stat.S_IFMT(member.external_attr >> 16)
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise UnsafeArchiveError(f"{archive}: entry {member.filename!r} is a link or special file; "
                                         "the archive was not extracted")
        _refuse_if_too_large(archive, sum(m.file_size for m in members), max_bytes, target)
        # bundle.open checks each entry's CRC when its end is read.
        _write_members([(m.filename, m.is_dir(), lambda m=m: bundle.open(m)) for m in members], archive, target, max_bytes)


def _extract_tar(archive: Path, target: Path, max_bytes: int) -> None:
    with tarfile.open(archive) as bundle:
        members = bundle.getmembers()
        for member in members:
            _check_member_name(member.name, archive)
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(f"{archive}: entry {member.name!r} is a link or special file; "
                                         "the archive was not extracted")
        _refuse_if_too_large(archive, sum(m.size for m in members if m.isfile()), max_bytes, target)
        _write_members([(m.name, m.isdir(), lambda m=m: bundle.extractfile(m)) for m in members], archive, target, max_bytes)


def safe_extract(archive: Path, target: Path, max_bytes: int | None = None) -> None:
    """Extract a .zip or .tar(.gz/.bz2/.xz) archive into `target`: every entry is checked before any is
    written (no absolute or `..` paths, no links or devices), and at most `max_bytes` are unpacked
    (default: 20 times the archive's size), counted as they are written."""
    archive, target = Path(archive), Path(target)
    max_bytes = max_bytes if max_bytes is not None else max(20 * archive.stat().st_size, 64 * MIB)
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target, max_bytes)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, target, max_bytes)
        else:
            raise DownloadError(f"{archive}: not a zip or tar archive (damaged, or an HTML error page?); "
                                "delete it and download again")
    except DownloadError:
        raise
    except Exception as error:  # zipfile, tarfile, zlib, lzma and bz2 each raise their own kinds for a damaged file
        if is_disk_full(error):
            raise DiskFullError(target) from None
        if not isinstance(error, (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError, zlib.error,
                                  lzma.LZMAError, NotImplementedError, RuntimeError)):
            raise
        raise DownloadError(f"{archive}: the archive is damaged ({type(error).__name__}: {error}); delete it and "
                            "download again") from None


# ----------------------------------------------------------------------------------------------
# Layout and orientation.


def find_split_root(extracted: Path) -> Path:
    """The folder inside an extracted archive that holds trainA, trainB, testA and testB."""
    candidates = []
    for folder in [extracted, *sorted(p for p in extracted.rglob("*") if p.is_dir())]:
        if "__MACOSX" in folder.parts:
            continue
        if all((folder / split).is_dir() for split in SPLITS):
            candidates.append(folder)
    if not candidates:
        found = sorted(str(p.relative_to(extracted)) for p in extracted.rglob("*") if p.is_dir())[:10]
        raise DownloadError(f"the archive has no folder with {', '.join(SPLITS)}; its folders: {found}")
    return min(candidates, key=lambda p: len(p.parts))


def _count_mismatch(expected: tuple[int, int], found: tuple[int, int]) -> float:
    return abs(found[0] - expected[0]) / expected[0] + abs(found[1] - expected[1]) / expected[1]


def should_swap(info: DatasetInfo, source: ArchiveSource, counts: dict[str, int], swap: bool | None) -> bool:
    """Whether the archive's A and B must be exchanged to give the paper's direction.

    An explicit `swap` wins. Otherwise, when the paper's counts tell the two domains apart, the
    orientation whose counts are closer to the paper's is chosen; when they do not (selfie2anime:
    3400 and 3400), what is known of the archive (`source.swap_ab`) decides.
    """
    if swap is not None:
        return swap
    expected = info.train_counts
    if expected and abs(expected[0] - expected[1]) > 0.1 * max(expected):
        # The paper gives training counts for CycleGAN's datasets and whole-domain counts for DRIT's,
        # so compare both readings and keep the better one.
        train = (counts["trainA"], counts["trainB"])
        whole = (counts["trainA"] + counts["testA"], counts["trainB"] + counts["testB"])
        as_is = min(_count_mismatch(expected, train), _count_mismatch(expected, whole))
        exchanged = min(_count_mismatch(expected, train[::-1]), _count_mismatch(expected, whole[::-1]))
        return exchanged < as_is
    return source.swap_ab


def _orient(root: Path, staging: Path, swap: bool) -> None:
    for split in SPLITS:
        source_split = split if not swap else split[:-1] + ("B" if split.endswith("A") else "A")
        os.replace(root / source_split, staging / split)


# ----------------------------------------------------------------------------------------------
# The whole installation.


def install_dataset(info: DatasetInfo, data_root: Path, *, archive: Path | None = None, force: bool = False,
                    swap: bool | None = None, progress: bool = True, max_unpacked_bytes: int | None = None,
                    log: Callable[[str], None] = print) -> InstallReport:
    """Download (unless `archive` is given), check, extract and install one dataset.
    `max_unpacked_bytes` replaces `plausible_unpacked_bytes` as the limit on what the archive unpacks to."""
    data_root = Path(data_root)
    target = data_root / info.name
    manifest_path = target / "dataset.json"
    if info.synthetic:
        raise DownloadError(f"{info.name} is synthetic: it is generated on demand, not downloaded")
    if target.exists() and not force:
        if all((target / split).is_dir() for split in SPLITS):
            counts = {split: count_images(target / split) for split in SPLITS}
            manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
            return InstallReport(info.name, target, counts, manifest.get("source", "?"), manifest.get("sha256", "?"),
                                 manifest.get("swapped", False), already_present=True)
        raise DownloadError(f"{target} exists but is not a complete dataset (needs {', '.join(SPLITS)}); "
                            "move it away or use --force to replace it")

    data_root.mkdir(parents=True, exist_ok=True)
    downloads = data_root / ".downloads"
    if archive is not None:
        archive = Path(archive)
        if not archive.is_file():
            raise DownloadError(f"{archive}: archive file not found")
        archive_path = archive
        digest = sha256_file(archive_path)
        # A local copy of a known archive is oriented like that archive; an unknown one is taken as is.
        known = [s for s in info.sources if s.sha256 == digest]
        chosen = ArchiveSource(url=str(archive), sha256=digest, swap_ab=known[0].swap_ab if known else False)
        if not known and info.train_counts and info.train_counts[0] == info.train_counts[1] and swap is None:
            log(f"note: {archive} is not a known archive and the counts cannot tell {info.domain_a} from "
                f"{info.domain_b}: its trainA is taken as {info.domain_a}; pass --swap if it holds {info.domain_b}")
    else:
        if not info.sources:
            raise DownloadError(f"{info.name}: no download source is known. {info.manual_download}")
        errors = []
        for source in sorted(info.sources, key=lambda source: not source.url.startswith("https://")):   # https first
            try:
                log(f"downloading {info.name} from {source.url}")
                archive_path = fetch(source.url, downloads / f"{info.name}-{_archive_file_name(source.url)}",
                                     source.sha256, progress=progress)
                chosen = source
                break
            except DownloadError as error:
                errors.append(str(error))
        else:
            manual = f" {info.manual_download}" if info.manual_download else (
                f" Download the archive by hand and run: python run_bench.py --download {info.name} --archive FILE")
            _remove_if_empty(downloads)   # a partial download (.part) stays, to be resumed
            raise DownloadError(f"{info.name}: every source failed:\n  " + "\n  ".join(errors) + "\n" + manual)

    digest = chosen.sha256 or sha256_file(archive_path)  # fetch() has already verified a known checksum
    if archive is None:   # a file the user chose is theirs to choose; a download must be what it was
        check_recorded_checksum(data_root, info, chosen.url, digest)

    remove_stale_temporaries(data_root, f".{info.name}-installing")   # left by a killed install
    staging = data_root / owned_temporary_name(f".{info.name}-installing")
    staging.mkdir()
    try:
        extracted = staging / "extracted"
        limit = max_unpacked_bytes or plausible_unpacked_bytes(info, archive_path.stat().st_size)
        safe_extract(archive_path, extracted, limit)
        split_root = find_split_root(extracted)
        counts = {split: count_images(split_root / split) for split in SPLITS}
        empty = [split for split, count in counts.items() if count == 0]
        if empty:
            raise DownloadError(f"{archive_path}: no images in {', '.join(empty)}")
        swapped = should_swap(info, chosen, counts, swap)
        dataset = staging / info.name
        dataset.mkdir()
        _orient(split_root, dataset, swapped)
        counts = {split: count_images(dataset / split) for split in SPLITS}
        manifest = {
            "name": info.name, "domain_a": info.domain_a, "domain_b": info.domain_b,
            "source": chosen.url, "sha256": digest, "swapped": swapped, "counts": counts,
            "installed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (dataset / "dataset.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():  # --force: the old copy goes only once the new one is complete
            retired = staging / "previous"
            os.replace(target, retired)
        os.replace(dataset, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    if archive is None:
        archive_path.unlink(missing_ok=True)  # the dataset is installed; the archive is no longer needed
        _remove_if_empty(downloads)
    record_checksum(data_root, info, chosen.url, digest, log)
    report = InstallReport(info.name, target, counts, chosen.url, digest, swapped)
    _warn_about_counts(info, report, log)
    return report


CHECKSUM_LOCK = "datasets.lock.json"


def _read_lock(data_root: Path) -> tuple[Path, dict]:
    lock_path = Path(data_root) / CHECKSUM_LOCK
    try:
        return lock_path, (json.loads(lock_path.read_text()) if lock_path.is_file() else {})
    except ValueError:
        raise DownloadError(f"{lock_path}: not valid JSON; repair it or delete it (the checksums are recorded again)") from None


def check_recorded_checksum(data_root: Path, info: DatasetInfo, source: str, digest: str) -> None:
    """Trust on first use, for archives without a published checksum: the first install records the
    archive's sha256 in <data root>/datasets.lock.json (`record_checksum`); every later install of that
    dataset must bring the same archive, or is refused before anything is extracted."""
    lock_path, lock = _read_lock(data_root)
    recorded = lock.get(info.name)
    if recorded is not None and recorded["sha256"] != digest:
        raise DownloadError(
            f"{info.name}: the archive from {source} has sha256 {digest}, but {lock_path} recorded {recorded['sha256']} "
            f"when it was first installed (from {recorded['source']}, {recorded['recorded']}): the archive changed at its "
            "source or was damaged on the way; nothing was installed. If the new archive is right, delete the "
            f"{info.name!r} entry of {lock_path}")


def record_checksum(data_root: Path, info: DatasetInfo, source: str, digest: str, log: Callable[[str], None]) -> None:
    lock_path, lock = _read_lock(data_root)
    if info.name in lock:
        return
    lock[info.name] = {"sha256": digest, "source": source, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_json(lock_path, lock)
    if not any(s.sha256 for s in info.sources):
        log(f"note: {info.name} has no published checksum; its archive's sha256 {digest[:16]}... is recorded in "
            f"{lock_path} and checked at every later install")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:   # absent, or holds something (a partial download to resume)
        pass


def _warn_about_counts(info: DatasetInfo, report: InstallReport, log: Callable[[str], None]) -> None:
    for label, expected, splits in (("train", info.train_counts, ("trainA", "trainB")),
                                    ("test", info.test_counts, ("testA", "testB"))):
        if expected is None:
            continue
        found = tuple(report.counts[s] for s in splits)
        if found != tuple(expected):
            log(f"note: {info.name} {label} counts (A, B) = {found}; the paper reports {tuple(expected)}")


def download_by_name(name: str, data_root: Path, **kwargs) -> InstallReport:
    if name not in CATALOGUE or CATALOGUE[name].synthetic:
        known = ", ".join(n for n, info in CATALOGUE.items() if not info.synthetic)
        raise DownloadError(f"unknown dataset {name!r}; downloadable datasets: {known}")
    return install_dataset(CATALOGUE[name], data_root, **kwargs)
