"""Read TensorFlow checkpoints (the V2 "tensor bundle" of `tf.train.Saver`) without TensorFlow.

A checkpoint is a prefix, e.g. `checkpoint/UGATIT.model-1000000`, with two kinds of files beside it:

- `PREFIX.index`: a sorted string table in LevelDB's table format (data blocks of prefix-compressed
  key/value entries, an index block, a 48-byte footer ending in a magic number; each block followed by
  a compression byte and a masked CRC-32C). Key "" holds the `BundleHeaderProto` (number of data shards,
  endianness); every other key is a tensor's name and holds its `BundleEntryProto` (dtype, shape, shard,
  offset, size, masked CRC-32C of its bytes).
- `PREFIX.data-00000-of-0000N`: the tensors' raw bytes, row-major (C order), little-endian.

The folder also holds a text file `checkpoint` (`model_checkpoint_path: "UGATIT.model-1000000"`) that
names the newest prefix; a folder may be given instead of a prefix.

This module parses only those documented formats (LevelDB's table_format.md; TensorFlow's
tensor_bundle.proto, tensor_shape.proto and types.proto) with a small protocol-buffer wire decoder:
nothing in the files is executed or unpickled. A tensor is read on request, straight from its file
into the array that is returned (no memory map, no whole-file read), and its CRC-32C is checked; so a
caller that reads the tensors it needs one at a time holds those and one more in memory, never the
optimizer slots or networks it skips. CRC-32C (Castagnoli) comes from the `crc32c` package: a C
implementation with hardware instructions, 10+ GB/s, where pure Python would need minutes for a
several-GB checkpoint.

Every problem (a missing or truncated file, a missing shard, a checksum mismatch, an index that is not a
bundle) is a `TFCheckpointError` naming the file and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from safeio.files import InputError

_TABLE_MAGIC = 0xDB4775248B80FB57      # LevelDB table footer (TensorFlow's table.cc keeps it)
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5                # compression type byte + masked CRC-32C
_CRC_MASK_DELTA = 0xA282EAD8

# types.proto DataType -> numpy (the ones a model's variables use; strings and resources are not tensors of numbers)
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
           10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
_DTYPE_NAMES = {7: "string", 14: "bfloat16", 20: "resource", 21: "variant"}


class TFCheckpointError(InputError, ValueError):
    """A TensorFlow checkpoint that cannot be read as one: the message names the file and the fault."""


# ----------------------------------------------------------------------------------------------
# Checksums


def _crc32c(data) -> int:
    import crc32c

    return crc32c.crc32c(data)


def unmask_crc(masked: int) -> int:
    """LevelDB and TensorFlow store CRC-32C values masked: rotated right by 15 bits plus a constant."""
    rotated = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------
# Protocol-buffer wire format: (field number, value) pairs; enough for the bundle's three messages.


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("a varint runs past the end of its record")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    position = 0
    while position < len(message):
        tag, position = _varint(message, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = _varint(message, position)
        elif wire_type == 1:
            value, position = int.from_bytes(message[position:position + 8], "little"), position + 8
        elif wire_type == 2:
            length, position = _varint(message, position)
            value, position = message[position:position + length], position + length
        elif wire_type == 5:
            value, position = int.from_bytes(message[position:position + 4], "little"), position + 4
        else:
            raise ValueError(f"protocol-buffer wire type {wire_type} (field {number}) has no place in a bundle entry")
        if position > len(message):
            raise ValueError("a field runs past the end of its record")
        yield number, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the bundle (BundleEntryProto): where its bytes are and what they hold."""

    name: str
    dtype: int                  # types.proto DataType number
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c_masked: int | None
    sliced: bool                # a partitioned variable saved as slices (not read here)

    @property
    def dtype_name(self) -> str:
        return np.dtype(_DTYPES[self.dtype]).name if self.dtype in _DTYPES else _DTYPE_NAMES.get(self.dtype, f"dtype {self.dtype}")


def _shape(message: bytes) -> tuple[int, ...]:
    dims = []
    for number, value in _fields(message):
        if number == 2:            # TensorShapeProto.dim
            size = 0
            for dim_number, dim_value in _fields(value):
                if dim_number == 1:
                    size = _signed64(dim_value)
            dims.append(size)
        elif number == 3 and value:
            raise ValueError("a tensor of unknown rank")
    return tuple(dims)


def _entry(name: str, message: bytes) -> TensorEntry:
    values = {"dtype": 0, "shape": (), "shard": 0, "offset": 0, "size": 0, "crc": None, "sliced": False}
    for number, value in _fields(message):
        if number == 1:
            values["dtype"] = value
        elif number == 2:
            values["shape"] = _shape(value)
        elif number == 3:
            values["shard"] = value
        elif number == 4:
            values["offset"] = _signed64(value)
        elif number == 5:
            values["size"] = _signed64(value)
        elif number == 6:
            values["crc"] = value
        elif number == 7:
            values["sliced"] = True
    return TensorEntry(name, values["dtype"], values["shape"], values["shard"], values["offset"], values["size"],
                       values["crc"], values["sliced"])


# ----------------------------------------------------------------------------------------------
# The index: a LevelDB table.


def _block(index: bytes, offset: int, size: int, what: str) -> bytes:
    end = offset + size
    if offset < 0 or end + _BLOCK_TRAILER_SIZE > len(index):
        raise ValueError(f"the {what} block ({offset}+{size} bytes) lies outside the file ({len(index)} bytes)")
    contents = index[offset:end]
    compression = index[end]
    stored = int.from_bytes(index[end + 1:end + 5], "little")
    if unmask_crc(stored) != _crc32c(index[offset:end + 1]):
        raise ValueError(f"the {what} block at byte {offset} fails its checksum (the file is damaged)")
    if compression != 0:
        raise ValueError(f"the {what} block is compressed (type {compression}); TensorFlow writes bundles uncompressed")
    return contents


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise ValueError("a block shorter than its restart count")
    restarts = int.from_bytes(block[-4:], "little")
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise ValueError("a block's restart array is larger than the block")
    position, key = 0, b""
    while position < end:
        shared, position = _varint(block, position)
        unshared, position = _varint(block, position)
        value_length, position = _varint(block, position)
        if shared > len(key) or position + unshared + value_length > end:
            raise ValueError("a block entry runs past its block")
        key = key[:shared] + block[position:position + unshared]
        position += unshared
        yield key, block[position:position + value_length]
        position += value_length


def _handle(data: bytes, position: int = 0) -> tuple[int, int, int]:
    offset, position = _varint(data, position)
    size, position = _varint(data, position)
    return offset, size, position


def _table(index: bytes) -> Iterator[tuple[bytes, bytes]]:
    if len(index) < _FOOTER_SIZE:
        raise ValueError(f"{len(index)} bytes, shorter than a table footer ({_FOOTER_SIZE})")
    footer = index[-_FOOTER_SIZE:]
    if int.from_bytes(footer[-8:], "little") != _TABLE_MAGIC:
        raise ValueError("its last 8 bytes are not a TensorFlow/LevelDB table's magic number")
    _, _, position = _handle(footer)                   # the meta-index block: unused by bundles
    index_offset, index_size, _ = _handle(footer, position)
    for _, handle in _block_entries(_block(index, index_offset, index_size, "index")):
        offset, size, _ = _handle(handle)
        yield from _block_entries(_block(index, offset, size, "data"))


# ----------------------------------------------------------------------------------------------
# The checkpoint.


def resolve_prefix(path: str | Path) -> Path:
    """The checkpoint prefix a user gave: `PREFIX`, `PREFIX.index`, a `PREFIX.data-*` file, or a folder with a
    `checkpoint` file (its `model_checkpoint_path`, the newest save) or a single `*.index`."""
    path = Path(path)
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', state.read_text(errors="replace"), re.MULTILINE)
            if not match:
                raise TFCheckpointError(f"{state}: no model_checkpoint_path line; give the checkpoint's prefix "
                                        f"(PREFIX of PREFIX.index) instead of the folder")
            named = Path(match.group(1))
            # The saver writes the path it was given (often relative to where training ran): keep its name only.
            prefix = named if named.is_absolute() and Path(f"{named}.index").is_file() else path / named.name
            if not Path(f"{prefix}.index").is_file():
                raise TFCheckpointError(f"{state} names {match.group(1)}, but {prefix}.index does not exist; "
                                        "give the prefix of a checkpoint that is there")
            return prefix
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        raise TFCheckpointError(f"{path}: a folder without a `checkpoint` file and with {len(indexes)} *.index files; "
                                "give the checkpoint's prefix (PREFIX of PREFIX.index)")
    if path.suffix == ".index":
        return path.with_suffix("")
    match = re.fullmatch(r"(.*)\.data-\d{5}-of-\d{5}", path.name)
    if match:
        return path.with_name(match.group(1))
    return path


def is_tf_checkpoint(path: str | Path) -> bool:
    """Whether `path` names a TensorFlow checkpoint (by its files' names; the contents are checked on opening)."""
    path = Path(path)
    if path.is_dir():
        return (path / "checkpoint").is_file() or any(path.glob("*.index"))
    if path.suffix == ".index" or re.fullmatch(r".*\.data-\d{5}-of-\d{5}", path.name):
        return path.is_file()
    return Path(f"{path}.index").is_file()


class TFCheckpoint:
    """An open TensorFlow checkpoint: its tensors' names, dtypes and shapes, and `read(name)`.

    Opening reads the index (kilobytes) and checks that every data shard exists and is long enough for
    its tensors; `read` reads one tensor from its shard and checks its CRC-32C.
    """

    def __init__(self, path: str | Path):
        self.prefix = resolve_prefix(path)
        self.index_path = Path(f"{self.prefix}.index")
        if not self.index_path.is_file():
            raise TFCheckpointError(f"{self.index_path}: not found (a TensorFlow checkpoint is PREFIX.index with "
                                    "PREFIX.data-00000-of-00001; give PREFIX or the folder holding the `checkpoint` file)")
        raw = self.index_path.read_bytes()
        try:
            records = list(_table(raw))
            header, entries = self._parse(records)
        except (ValueError, IndexError, KeyError) as error:
            raise TFCheckpointError(f"{self.index_path}: not a TensorFlow checkpoint index ({error})") from None
        self.num_shards = header
        self.entries: dict[str, TensorEntry] = entries
        self.shard_paths = [Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}") for shard in range(self.num_shards)]
        self._check_shards()

    def _parse(self, records: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, TensorEntry]]:
        if not records or records[0][0] != b"":
            raise ValueError("no bundle header (the empty key)")
        num_shards, endianness = 1, 0
        for number, value in _fields(records[0][1]):
            if number == 1:
                num_shards = value
            elif number == 2:
                endianness = value
        if endianness != 0:
            raise ValueError("a big-endian bundle; only little-endian bundles (every x86 and ARM machine's) are read")
        if not 1 <= num_shards <= 1_000_000:
            raise ValueError(f"the header names {num_shards} data shards")
        entries = {}
        for key, value in records[1:]:
            name = key.decode("utf-8")
            entries[name] = _entry(name, value)
            if not 0 <= entries[name].shard < num_shards:
                raise ValueError(f"tensor {name} is in shard {entries[name].shard} of {num_shards}")
        return num_shards, entries

    def _check_shards(self) -> None:
        ends = [0] * self.num_shards
        for entry in self.entries.values():
            ends[entry.shard] = max(ends[entry.shard], entry.offset + entry.size)
        for shard, path in enumerate(self.shard_paths):
            if not path.is_file():
                raise TFCheckpointError(f"{path}: missing data shard {shard + 1} of {self.num_shards} of checkpoint "
                                        f"{self.prefix} (copy every {self.prefix.name}.data-* file beside the .index)")
            size = path.stat().st_size
            if size < ends[shard]:
                raise TFCheckpointError(f"{path}: truncated: {size:,} bytes, its tensors need {ends[shard]:,} "
                                        "(an interrupted download or copy; fetch it again)")

    # -- reading --------------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def _entry(self, name: str) -> TensorEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise TFCheckpointError(f"{self.index_path}: no tensor named {name!r}") from None

    def read(self, name: str) -> np.ndarray:
        """The tensor `name` as a numpy array of its dtype and shape, read from its shard; checksum checked."""
        entry = self._entry(name)
        if entry.sliced:
            raise TFCheckpointError(f"{self.index_path}: tensor {name} is saved in slices (a partitioned variable); "
                                    "such checkpoints are not read here")
        if entry.dtype not in _DTYPES:
            raise TFCheckpointError(f"{self.index_path}: tensor {name} is a {entry.dtype_name} tensor, not numbers")
        dtype = np.dtype(_DTYPES[entry.dtype]).newbyteorder("<")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * dtype.itemsize != entry.size:
            raise TFCheckpointError(f"{self.index_path}: tensor {name} of shape {list(entry.shape)} and type "
                                    f"{entry.dtype_name} should have {count * dtype.itemsize} bytes, the index says {entry.size}")
        array = np.empty(entry.shape, dtype=dtype)
        path = self.shard_paths[entry.shard]
        with open(path, "rb") as file:
            file.seek(entry.offset)
            view = memoryview(array.reshape(-1).view(np.uint8))
            got = file.readinto(view) if entry.size else 0
        if got != entry.size:
            raise TFCheckpointError(f"{path}: truncated inside tensor {name} (read {got} of {entry.size} bytes)")
        if entry.crc32c_masked is not None and unmask_crc(entry.crc32c_masked) != _crc32c(view):
            raise TFCheckpointError(f"{path}: tensor {name} fails its CRC-32C checksum: the file is damaged "
                                    "(download or copy it again)")
        return array


def read_step(prefix: Path) -> int | None:
    """The global step in a saver's prefix (`UGATIT.model-1000000` -> 1000000), or None."""
    match = re.search(r"-(\d+)$", Path(prefix).name)
    return int(match.group(1)) if match else None


def content_digest(path: str | Path) -> str:
    """A checkpoint's identity: the sha256 of its index, which records every tensor's dtype, shape and
    CRC-32C (a data file that disagrees with it is refused when read), without hashing gigabytes of data."""
    from safeio.files import cached_sha256_file

    return cached_sha256_file(Path(f"{resolve_prefix(path)}.index"))
