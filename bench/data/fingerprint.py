"""Dataset fingerprints: what a run's identity records of the images it was trained and tested on.

Two experiments whose data roots hold different images under one dataset name (another copy of
`horse2zebra`, one image changed, a user's own folder called `shapes`) compute different things, so
their runs must not share a folder or be reused for one another. A run's identity therefore carries a
fingerprint of each split its results depend on (trainA, trainB, testA, testB): a sha256 over the
image files that `bench.data.list_images` lists there (the files training and scoring read), each by
its name, size and the sha256 of its bytes. A symbolic link counts as what it points to.

Hashing a dataset's bytes costs a second or so per gigabyte, once: the fingerprint of a split is
cached in `<cache>/fingerprints/`, keyed by the split's listing (names, sizes, modification times and
inode numbers, so that an edited, replaced or touched file is hashed again). A cache entry is one
small JSON file written atomically; two processes that compute the same entry write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from bench.data.datasets import SPLITS
from safeio.files import atomic_write_json, cache_root, sha256_file
from safeio.images import DataError, list_images

log = logging.getLogger("bench")

FINGERPRINT_VERSION = 1        # raise when what is hashed changes: every cached entry is then computed again
LOG_ABOVE_BYTES = 256 * 2**20  # say that a split is being hashed when it is this large (it takes a moment)


def _listing_key(folder: Path, files: list[Path]) -> str:
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([path.name, stat.st_size, stat.st_mtime_ns, stat.st_ino])
    text = json.dumps([FINGERPRINT_VERSION, str(folder.resolve()), entries])
    return hashlib.sha256(text.encode()).hexdigest()


def split_fingerprint(folder: Path) -> str:
    """sha256 over the names, sizes and contents of the image files of one split folder. Raises
    DataError (naming the folder) when it is missing or holds no image."""
    folder = Path(folder)
    files = list_images(folder)
    try:
        key = _listing_key(folder, files)
    except OSError as error:   # a file vanished, or a link points nowhere
        raise DataError(f"{folder}: cannot read {error.filename or 'a file'} ({error.strerror})") from None
    cached = cache_root() / "fingerprints" / f"{key}.json"
    try:
        return json.loads(cached.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    total = sum(path.stat().st_size for path in files)
    if total > LOG_ABOVE_BYTES:
        log.info("fingerprinting %s (%d images, %.1f GB) once; cached in %s", folder, len(files), total / 2**30, cached.parent)
    digest = hashlib.sha256()
    for path in files:
        try:
            digest.update(f"{path.name}\0{path.stat().st_size}\0{sha256_file(path)}\n".encode())
        except OSError as error:
            raise DataError(f"{path}: cannot read it to fingerprint the dataset ({error.strerror})") from None
    fingerprint = digest.hexdigest()
    try:
        atomic_write_json(cached, {"folder": str(folder), "fingerprint": fingerprint})
    except OSError as error:   # the cache only saves time
        log.warning("could not cache the fingerprint of %s in %s: %s", folder, cached, error)
    return fingerprint


def dataset_fingerprint(dataset_dir: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, str]:
    """{split: fingerprint} of a dataset folder in the paper's layout."""
    return {split: split_fingerprint(Path(dataset_dir) / split) for split in splits}
