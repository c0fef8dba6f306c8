"""Finished runs of other output folders: found, then brought into this experiment's own folder.

The same computation is never trained twice on one machine: every run that finishes training is
listed in an index in the cache folder (`runs-index.json`, or $UGATIT_BENCH_RUN_INDEX), under its
run id. When an experiment plans a run whose folder does not exist yet, and the index lists a
finished run with the same identity (method, options, training settings, seed and the data's
fingerprint, bench/data/fingerprint.py) in another output folder, the run is *adopted*, not trained:

  - this experiment's own run folder is created, and the other run's trained checkpoint is linked
    into it (a hard link, or a copy across file systems; written under a temporary name and renamed,
    so a kill leaves the file whole or absent), with its stats.jsonl and sample sheets copied;
  - `training.json` records where it came from (`reused_from`);
  - everything after training (translations, scores, records, tables) is then made in this
    experiment's own folders, from this experiment's own test images, as for a run trained here.

Nothing is ever written into the other folder: a second checkout, another experiment or another user's
output folder stays byte-identical. `--no-reuse` trains such a run again anyway.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from safeio.files import (atomic_write_json, cache_root, owned_temporary_name, read_json, remove_stale_temporaries,
                          waiting_lock)

log = logging.getLogger("bench")

RUN_INDEX_ENV = "UGATIT_BENCH_RUN_INDEX"   # where the index is, if not runs-index.json in the cache folder
TRAINED_MARKER = "training.json"           # written when a run has finished training
CONFIG_FILE = "config.json"                # a run's resolved configuration and identity (bench/harness/execute.py)
CHECKPOINT = Path("checkpoints") / "latest.pt"


def run_index_path() -> Path:
    return Path(os.environ.get(RUN_INDEX_ENV) or cache_root() / "runs-index.json")


def _read_index() -> dict[str, list[str]]:
    return read_json(run_index_path()) or {}


def record_finished_run(run_id: str, run_dir: Path) -> None:
    """List a run that has finished training (or was adopted) in the index; never fails the run."""
    index_path = run_index_path()
    try:
        with waiting_lock(index_path.with_name(index_path.name + ".lock")):   # workers finish side by side
            index = _read_index()
            paths = [p for p in index.get(run_id, []) if isinstance(p, str) and Path(p).is_dir()]
            here = str(Path(run_dir).resolve())
            if here not in paths:
                index[run_id] = paths + [here]
                atomic_write_json(index_path, index)
    except OSError as error:   # the index only saves work
        log.warning("could not update the run index %s: %s", index_path, error)


def is_finished_run(folder: Path, identity: dict[str, Any]) -> bool:
    """Whether `folder` holds a finished training run of exactly this identity, with its checkpoint."""
    config = read_json(folder / CONFIG_FILE) or {}
    return ((folder / TRAINED_MARKER).is_file() and (folder / CHECKPOINT).is_file()
            and config.get("identity") == identity)


def finished_run_elsewhere(run_id: str, identity: dict[str, Any], run_dir: Path) -> Path | None:
    """A finished run of this identity in another folder than `run_dir`, or None."""
    here = Path(run_dir).resolve()
    for path in _read_index().get(run_id, []):
        folder = Path(path)
        if folder.resolve() != here and is_finished_run(folder, identity):
            return folder
    return None


def _place(source: Path, target: Path, link: bool) -> str:
    """Put `source` at `target` whole or not at all (a temporary name, then a rename). With `link`, a
    hard link where possible: no second copy of a large checkpoint, and safe because every writer of
    this harness replaces a checkpoint by rename, never in place. Otherwise (stats.jsonl is appended to
    in place; another file system; links not permitted) a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent, target.name)
    temporary = target.parent / owned_temporary_name(target.name, ".tmp")
    try:
        how = "copied"
        if link:
            try:
                os.link(source, temporary)
                how = "linked"
            except OSError as error:
                if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                    raise
        if how == "copied":
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
        return how
    finally:
        temporary.unlink(missing_ok=True)


def adopt_finished_run(source: Path, run_dir: Path, identity: dict[str, Any]) -> bool:
    """Bring the finished run in `source` into `run_dir` (see the module docstring). False when the
    source no longer holds it (deleted or changed since planning): the run is then trained here.
    The caller holds `run_dir`'s lock; `source` is only read."""
    source = Path(source)
    if not is_finished_run(source, identity):
        log.info("the finished run planned for reuse in %s is gone or changed; training here instead", source)
        return False
    marker = read_json(source / TRAINED_MARKER)
    if marker is None:
        return False
    how = _place(source / CHECKPOINT, run_dir / CHECKPOINT, link=True)
    records = [source / "stats.jsonl", *sorted((source / "samples").glob("*.png"))]   # this folder's own from now on
    for record in records:
        if record.is_file():
            _place(record, run_dir / record.relative_to(source), link=False)
    marker = {key: value for key, value in marker.items() if key != "reused_from"}
    atomic_write_json(run_dir / TRAINED_MARKER, {**marker, "reused_from": str(source.resolve())})
    log.info("reused the finished run in %s: checkpoint %s, %s steps; translating and scoring here",
             source, how, marker.get("steps"))
    return True
