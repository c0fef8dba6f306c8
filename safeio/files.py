"""Files that survive crashes, full disks and hostile inputs: the bottom layer every part uses.

- Atomic writes (`atomic_write_bytes`, `atomic_write_json`, `atomic_torch_save`): the data goes to a
  temporary file in the same folder, is flushed to disk, and is renamed over the target, so a reader
  sees the old file or the new one, never half of one. The temporary file is created with mode 0666
  minus the umask, so the result has the permissions a plain `open(path, "w")` would give it.
- A full disk is reported as `DiskFullError` naming the file and the free space, not as a library's
  internal error; the previous version of the file is kept.
- Temporary files and folders carry their owner's host and process id in their names
  (`owned_temporary_name`), so a later start can remove the ones left by a killed process
  (`remove_stale_temporaries`) without touching those of a process that is still working.
- `load_torch_file` is the only way this project reads a file with torch: always
  `weights_only=True`, so a crafted pickle cannot run code, with errors that name the file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
CACHE_ENV = "UGATIT_BENCH_CACHE"   # where features, stand-in weights and the run index are kept
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# <stem>.<pid>@<host>.<8 hex>[.tmp]: what owned_temporary_name makes and remove_stale_temporaries reads.
_OWNED = re.compile(r"^(?P<stem>.*)\.(?P<pid>\d+)@(?P<host>[^/]+)\.(?P<token>[0-9a-f]{8})(?:\.tmp)?$")


class InputError(Exception):
    """What the user handed us cannot be used: a setting, a dataset, a weights or checkpoint file, an
    image, a download. Every such error says which one and how to fix it, so it is reported in one
    line, without a traceback, and the command exits with status 2 (`bench.cli`); a run that fails
    with one is reported failed with that line, and the others go on. The error classes of the
    project's parts derive from it (ConfigError, DataError, CheckpointError, WeightsError, ...)."""


class DiskFullError(OSError):
    """No space left on the device (or quota exceeded) while writing a file."""

    def __init__(self, path: Path, detail: str = ""):
        free = _free_bytes(Path(path).parent)
        free_text = f"{free / 2**20:.1f} MiB free" if free is not None else "free space unknown"
        super().__init__(errno.ENOSPC, f"no space left on device while writing {path} ({free_text} on its file system)"
                         f"{'; ' + detail if detail else ''}. The previous version of the file, if any, is kept; "
                         "free some space and run the same command again")
        self.path = Path(path)

    def __str__(self) -> str:
        return self.strerror


class UnreadableFileError(InputError, ValueError):
    """A file handed to us is not what it claims to be, or would run code if unpickled."""


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_disk_full(error: BaseException) -> bool:
    """Whether an exception (or one it was raised from) is a full disk or an exceeded quota."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return True
        # torch's C++ writer reports a failed write as a RuntimeError, e.g. "[enforce fail at
        # inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: file write failed".
        if isinstance(error, RuntimeError) and ("file write failed" in str(error) or "No space left" in str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_path(error: BaseException, default: Path) -> Path:
    """The file whose write met a full disk, as the error (or one it was raised from) names it; else
    `default` (torch's writer, for one, names no file)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskFullError):
            return error.path
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS and error.filename:
            return Path(os.fsdecode(error.filename))
        error = error.__cause__ or error.__context__
    return Path(default)


def cache_root() -> Path:
    """${UGATIT_BENCH_CACHE}, else ~/.cache/ugatit-bench."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ugatit-bench")


# ----------------------------------------------------------------------------------------------
# Temporary names that say who owns them.


def owned_temporary_name(stem: str, suffix: str = "") -> str:
    """`<stem>.<pid>@<host>.<random>[suffix]`: unique per process, and tells a later process whose it is."""
    return f"{stem}.{os.getpid()}@{socket.gethostname()}.{secrets.token_hex(4)}{suffix}"


def process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: Path, stem_prefix: str = "") -> list[Path]:
    """Remove the temporary files and folders in `folder` left by dead processes of this host.

    Only names made by `owned_temporary_name` (whose stem starts with `stem_prefix`) are considered;
    those of live processes, and of other hosts (on a shared file system), are left alone.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    host, removed = socket.gethostname(), []
    for entry in folder.iterdir():
        match = _OWNED.match(entry.name)
        if not match or not match["stem"].startswith(stem_prefix) or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or process_is_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
        log.info("removed %s, left by process %d that no longer runs", entry, pid)
    return removed


# ----------------------------------------------------------------------------------------------
# Atomic writes.


def _open_temporary(path: Path) -> tuple[Path, BinaryIO]:
    """A new temporary file beside `path`, mode 0666 minus the umask (as open() would give)."""
    temporary = path.with_name(owned_temporary_name(f".{path.name}", ".tmp"))
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    return temporary, os.fdopen(descriptor, "wb")


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(handle)` on a temporary file and rename it over `path` once it is complete on disk."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary, handle = _open_temporary(path)
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(path) from None
        raise
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, Exception) and is_disk_full(error):
            raise DiskFullError(path) from None
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: Path, value: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON record (a mapping), or None when it is missing or unreadable: every record is written
    atomically, so a damaged one was damaged from outside, and is treated as absent."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_step_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log with a `step` in each (a run's stats.jsonl), in file order.

    A log is appended to while its run trains, so a kill or a full disk can leave its last line torn;
    such a line (or any line that is not a record) is skipped with one warning per file, never an
    exception: one run's damaged log must not stop the tables, figures or status of the others. A
    missing or unreadable file has no records."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    records, skipped = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            record["step"] = int(record["step"])
        except (ValueError, TypeError, KeyError, IndexError):
            skipped.append(number)
            continue
        records.append(record)
    if skipped:
        where = "its last line" if skipped == [len(text.splitlines())] else f"line(s) {', '.join(map(str, skipped[:5]))}"
        log.warning("%s: %s torn or not a record (a kill or a full disk mid-write); skipped", path, where)
    return records


def atomic_torch_save(path: Path, value: Any) -> Path:
    """torch.save through a file handle: streamed (no copy in memory), and the same bytes for the same
    tensors whatever the file is called (torch names the archive's records after a path it is given)."""
    import torch

    return atomic_write(path, lambda handle: torch.save(value, handle))


def replace_directory(new: Path, target: Path) -> None:
    """Move the complete folder `new` to `target`, replacing what is there; safe when two processes
    finish the same folder at once (each move is a rename; the last complete one wins)."""
    new, target = Path(new), Path(target)
    for _ in range(10):
        if target.exists():
            retired = target.with_name(owned_temporary_name(f".{target.name}.old"))
            try:
                os.replace(target, retired)
            except FileNotFoundError:      # another process moved it first
                pass
            else:
                shutil.rmtree(retired, ignore_errors=True)
        try:
            os.replace(new, target)
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):   # another process put its copy there first
                raise
    raise OSError(f"could not move {new} to {target}: another process keeps replacing it")


@contextlib.contextmanager
def waiting_lock(path: Path):
    """Hold an exclusive lock on `path` (created if needed) for the block, waiting for another process
    that holds it. The kernel drops a dead process's lock, so a crash never leaves it held."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ----------------------------------------------------------------------------------------------
# Reading.


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


_hashes: dict[tuple[str, int, int], str] = {}


def cached_sha256_file(path: Path) -> str:
    """The file's sha256, computed once per (path, size, modification time) in this process: weights
    files that enter several runs' identities are read once."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _hashes:
        _hashes[key] = sha256_file(path)
    return _hashes[key]


def strip_data_parallel_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict saved from a DataParallel wrapper carries `module.` before every key: without it."""
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


RUNNING_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")   # norm buffers without weights


def describe_content(content: Any) -> str:
    """What a loaded file holds, for an error that says what was found: its first keys, or its type."""
    if isinstance(content, dict):
        return f"keys {', '.join(sorted(map(str, content))[:6])}"
    return f"a {type(content).__name__}"   # norm buffers without weights


def load_torch_file(path: Path, what: str = "PyTorch file") -> Any:
    """torch.load(path, weights_only=True) on the CPU; a clear UnreadableFileError for anything else.

    `weights_only=True` unpickles tensors and plain Python data only: a file that would create any
    other object (and so could run code) is refused before anything in it runs.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: {what} not found")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"(?:Unsupported global|GLOBAL)[: ]+(?:GLOBAL )?([\w.]+)", str(error))
        if found is None:
            raise UnreadableFileError(f"{path}: not a readable {what} (not a file torch.save wrote, or damaged)") from None
        raise UnreadableFileError(
            f"{path}: refused: it holds Python objects other than tensors and plain data (it asks for "
            f"{found.group(1)}). Such a file can run code when it is unpickled, so it was read with "
            f"torch.load(weights_only=True) and nothing in it was run. Expected for a {what}: a plain state dict "
            "saved with torch.save; re-save it as one (e.g. torch.save(model.state_dict(), path)) where you trust it"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, KeyError, IndexError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise UnreadableFileError(f"{path}: not a readable {what} ({type(error).__name__}: {first_line[:200]})") from None


def download_weights(url: str, path: Path, sha256_prefix: str) -> None:
    """Download a weights file with torch's hub helper (progress on stderr), checking its sha256 prefix;
    raises OSError with the cause when offline, blocked or damaged."""
    import sys

    import torch

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            torch.hub.download_url_to_file(url, str(path), hash_prefix=sha256_prefix)
    except Exception as error:  # no network, blocked, or a damaged download
        raise OSError(str(error)) from None


def find_weights_file(requested: str | None, *, env: str, setting: str, what: str, file_name: str, url: str,
                      sha256_prefix: str, allow_download: bool = True) -> Path:
    """The weights file of a network the harness does not train (Inception for KID, VGG19 for CartoonGAN), first
    found wins: the path the user gave (`requested`, from `setting`), else the path in $`env`, else the library's
    own `file_name` in torch.hub's cache, downloaded from `url` when missing (its sha256 prefix checked).
    Raises WeightsFileError naming where to put the file. `random` stand-ins are the caller's."""
    import torch

    requested = requested or os.environ.get(env) or None
    if requested is not None:
        path = Path(requested).expanduser()
        if not path.is_file():
            raise WeightsFileError(f"{what} file {path} not found (from {setting} or ${env}); download {file_name} "
                                   f"({url}) and give its path with {setting}")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if not path.is_file():
        if not allow_download:
            raise WeightsFileError(f"no {what}: give the path of {file_name} with {setting} or ${env}, or allow the download")
        try:
            download_weights(url, path, sha256_prefix)
        except OSError as error:
            raise WeightsFileError(f"could not download the {what} from {url} ({error}); download {file_name} elsewhere "
                                   f"and give its path with {setting} or ${env}") from None
    return path


class WeightsFileError(InputError, RuntimeError):
    """A weights file that cannot be found or downloaded."""
