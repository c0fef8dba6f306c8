"""Run-folder locks: one worker at a time trains, translates or scores in a run folder.

A worker holds an exclusive `flock` on `<run folder>/.lock` for as long as it works there, and writes
who it is into the file (host, process id, Slurm job id, start time). Another worker, from the same
invocation, another invocation of the experiment, an overlapping experiment or a Slurm job, fails to
take the lock at once (no waiting) and skips the run as "running elsewhere", naming the owner.

The kernel drops the lock of a process that dies (a kill, a crash, a Slurm job at its time limit),
so a lock is never stuck. The owner record stays behind until the next worker takes the lock over and
logs whose it was. `lock_owner` reads the record without touching the lock (so `--status` in a loop
never makes a worker believe the run is taken): the owner of a record whose process is gone from this
host is reported as dead. On a shared file system, `flock` works across hosts where the file system
supports it (NFSv4, Lustre and GPFS do); where it is refused (ENOLCK), the record alone decides.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeio.files import process_is_alive

log = logging.getLogger("bench")

LOCK_FILE = ".lock"


def slurm_job_id() -> str | None:
    """This process's Slurm job id (`<array job>_<task>` inside an array), or None outside Slurm."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _owner_record() -> dict[str, Any]:
    record = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    job = slurm_job_id()
    if job:
        record["slurm_job"] = job
    return record


def describe_owner(owner: dict[str, Any]) -> str:
    text = f"{owner.get('host', '?')}:{owner.get('pid', '?')}"
    if owner.get("slurm_job"):
        text += f" (Slurm job {owner['slurm_job']})"
    return text


def owner_is_alive(owner: dict[str, Any]) -> bool | None:
    """True or False for a process of this host; None (unknown) for one of another host."""
    if owner.get("host") != socket.gethostname():
        return None
    try:
        return process_is_alive(int(owner["pid"]))
    except (KeyError, TypeError, ValueError):
        return False


class RunLocked(RuntimeError):
    """Another worker holds the run folder's lock."""

    def __init__(self, run_dir: Path, owner: dict[str, Any]):
        super().__init__(f"{run_dir} is in use by {describe_owner(owner)} since {owner.get('since', '?')}")
        self.run_dir, self.owner = Path(run_dir), owner


def _read_record(handle) -> dict[str, Any] | None:
    handle.seek(0)
    text = handle.read().strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {"host": "?", "pid": "?", "unreadable": text[:80]}
    return record if isinstance(record, dict) else None


@dataclass
class RunLock:
    """Hold the lock of one run folder: `with RunLock(run_dir): ...`; raises RunLocked when taken."""

    run_dir: Path

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self._handle = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(self.run_dir / LOCK_FILE, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_record(handle) or {}
            handle.close()
            raise RunLocked(self.run_dir, owner) from None
        except OSError as error:
            if error.errno != errno.ENOLCK:
                handle.close()
                raise
            # No locks on this file system: the owner record alone decides (a live owner keeps it).
            owner = _read_record(handle)
            if owner and owner_is_alive(owner) is not False and owner.get("pid") != os.getpid():
                handle.close()
                raise RunLocked(self.run_dir, owner) from None
        previous = _read_record(handle)
        if previous:
            log.info("%s: taking over the lock left by %s, which no longer holds it (the process ended "
                     "without releasing it: killed, crashed or at its time limit)", self.run_dir, describe_owner(previous))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_owner_record()) + "\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()      # an empty record: released in good order
            handle.flush()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def lock_owner(run_dir: Path) -> dict[str, Any] | None:
    """The owner record of a run folder's lock, with `alive` (True, False, or None when unknown:
    another host); None when nobody holds it. Reads the record only: never takes the lock."""
    try:
        with open(Path(run_dir) / LOCK_FILE, encoding="utf-8") as handle:
            owner = _read_record(handle)
    except OSError:
        return None
    if owner is None:
        return None
    return {**owner, "alive": owner_is_alive(owner)}
