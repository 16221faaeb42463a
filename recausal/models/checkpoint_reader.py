"""The restricted checkpoint reader: a ``torch.save`` file read without running code from it.

Both of ``torch.save``'s formats are read, the zip archive (``PREFIX/data.pkl`` and one
record per storage) and the legacy one (a run of pickles followed by the storages' bytes);
every pickle in them is read by :class:`~recausal.models.safe_unpickler.SafeUnpickler`.

Nothing the file says can make the reader allocate more than the file could hold: a
storage must be backed by as many bytes in the file, a record cannot claim more than the file
holds, the archive's pickle is at most ``_MAX_PICKLE_BYTES`` and the data read may nest at
most ``_MAX_NESTING`` levels. A file that is not a ``torch.save`` checkpoint (random bytes, an
empty file, a damaged archive) is a :class:`~recausal.models.safe_unpickler.NotACheckpointError`;
a well-formed pickle that names a global outside the allowed set is a
:class:`~recausal.models.safe_unpickler.RefusedGlobalError`.
"""

from __future__ import annotations

import io
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Any

from recausal.errors import RecausalError
from recausal.models.inert_records import InertObject, StorageKind
from recausal.models.safe_unpickler import (
    CheckpointLimitError,
    NotACheckpointError,
    RefusedGlobalError,
    SafeUnpickler,
    malformed,
    short,
)

_MAX_PICKLE_BYTES = 64 << 20  # a RecBole checkpoint's pickle is a few hundred KB
_MAX_NESTING = 200  # containers inside containers
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's legacy (non-zip) format
_LEGACY_PROTOCOL = 1001


class _DiscardText:
    """A text sink (``pickletools.dis`` needs one)."""

    def write(self, text: str) -> int:
        return len(text)


def _well_formed(data: bytes, start: int = 0) -> bool:
    """Whether ``data[start:]`` opens with a complete, consistent pickle (nothing is run)."""
    try:
        pickletools.dis(io.BytesIO(data[start:]), out=_DiscardText())
    except Exception:  # malformed data fails pickletools in many ways
        return False
    return True


def _unpickle(data: bytes, start: int, budget: int, resolve: Any = None) -> tuple[Any, int]:
    """One pickle of ``data``, read from ``start``; returns it and the offset after it."""
    stream = io.BytesIO(data)
    stream.seek(start)
    unpickler = SafeUnpickler(stream, budget=budget, persistent_load=resolve)
    try:
        value = unpickler.load()
    except RefusedGlobalError:
        if _well_formed(data, start):
            raise
        raise _not_a_pickle(start) from None
    except RecausalError:
        raise
    except Exception as exc:  # malformed pickle data fails in many ways
        if not _well_formed(data, start):
            raise _not_a_pickle(start) from None
        raise malformed(f"{type(exc).__name__}: {short(str(exc))}") from None
    return value, stream.tell()


def _not_a_pickle(start: int) -> NotACheckpointError:
    if start == 0:
        return NotACheckpointError("neither a zip archive nor a pickle, as torch.save writes")
    return malformed(f"the pickle at byte {start} is incomplete or corrupt")


def _storage_id(pid: Any, parts: int) -> tuple[Any, ...]:
    if not isinstance(pid, tuple) or len(pid) != parts or pid[0] not in ("storage", b"storage"):
        raise malformed("a storage reference is not ('storage', type, key, location, size)")
    kind, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(kind, StorageKind):
        raise malformed("a storage reference names no storage type")
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str) or not isinstance(location, (str, bytes)):
        raise malformed("a storage reference's key or location is not text")
    if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
        raise malformed("a storage reference's size is not a non-negative integer")
    return kind, key, numel, *pid[5:]


def _typed_storage(raw: bytes | bytearray, dtype: Any) -> Any:
    import torch

    buffer = bytearray(raw)
    untyped = (
        torch.frombuffer(buffer, dtype=torch.uint8).untyped_storage()
        if buffer
        else torch.UntypedStorage(0)
    )
    return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def _read_zip_checkpoint(path: Path, size: int) -> Any:
    """A ``torch.save`` zip archive: ``PREFIX/data.pkl`` and one record per storage."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # a damaged archive fails zipfile in many ways
        raise NotACheckpointError(f"a damaged zip archive ({short(str(exc))})") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [n for n in infos if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise NotACheckpointError("a zip archive without torch.save's data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        read_total = 0

        def record(name: str, limit: int) -> bytes:
            nonlocal read_total
            info = infos.get(prefix + name)
            if info is None:
                raise NotACheckpointError(f"torch.save's record {name!r} is missing")
            if info.file_size > limit or read_total + info.file_size > size:
                raise CheckpointLimitError(
                    f"its record {name!r} claims {info.file_size} bytes, more than the "
                    f"{size}-byte file can hold"
                )
            try:
                with archive.open(info) as handle:
                    data = handle.read(info.file_size + 1)
            except Exception as exc:  # damaged records fail zipfile in many ways
                raise NotACheckpointError(
                    f"record {name!r} is damaged ({short(str(exc))})"
                ) from None
            if len(data) != info.file_size:
                raise NotACheckpointError(f"record {name!r} is not as long as it claims")
            read_total += len(data)
            return data

        if prefix + "byteorder" in infos and record("byteorder", 16) not in (b"little", b""):
            raise NotACheckpointError("a big-endian checkpoint, which this reader does not read")
        data = record("data.pkl", _MAX_PICKLE_BYTES)
        storages: dict[str, Any] = {}

        def resolve(pid: Any) -> Any:
            kind, key, numel = _storage_id(pid, 5)
            if key not in storages:
                nbytes = numel * kind.dtype.itemsize
                raw = record(f"data/{key}", size)
                if len(raw) < nbytes:
                    raise NotACheckpointError(
                        f"storage {key!r} claims {numel} elements but its record holds "
                        f"{len(raw)} bytes"
                    )
                storages[key] = _typed_storage(raw[:nbytes], kind.dtype)
            return storages[key]

        value, _ = _unpickle(data, 0, size, resolve)
        return value


def _read_legacy_checkpoint(path: Path, size: int) -> Any:
    """torch.save's legacy format: magic number, protocol, system info, the object, the keys
    of its storages, then each storage's element count and bytes."""
    data = path.read_bytes()
    magic, offset = _unpickle(data, 0, size)
    if type(magic) is not int or magic != _LEGACY_MAGIC:
        raise NotACheckpointError(
            "a pickle, but not one written by torch.save (it has no torch.save header)"
        )
    protocol, offset = _unpickle(data, offset, size)
    if type(protocol) is not int or protocol != _LEGACY_PROTOCOL:
        raise NotACheckpointError(f"legacy torch.save protocol {short(protocol)}")
    _, offset = _unpickle(data, offset, size)
    storages: dict[str, tuple[Any, int]] = {}
    claimed = 0

    def resolve(pid: Any) -> Any:
        nonlocal claimed
        kind, key, numel, views = _storage_id(pid, 6)
        if views is not None:
            raise malformed("storage views, which RecBole checkpoints do not use")
        if key not in storages:
            claimed += numel * kind.dtype.itemsize
            if claimed > size:
                raise CheckpointLimitError(
                    f"its storages claim {claimed} bytes, more than the {size}-byte file holds"
                )
            storages[key] = (_typed_storage(bytes(numel * kind.dtype.itemsize), kind.dtype), numel)
        return storages[key][0]

    value, offset = _unpickle(data, offset, size, resolve)
    keys, offset = _unpickle(data, offset, size)
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise malformed("the list of storage keys does not match the storages used")
    import torch

    for key in keys:
        storage, numel = storages[str(key)]
        width = storage.dtype.itemsize
        if offset + 8 > len(data):
            raise NotACheckpointError(f"the data of storage {key!r} is missing")
        (count,) = struct.unpack_from("<q", data, offset)
        end = offset + 8 + count * width
        if count != numel or end > len(data):
            raise NotACheckpointError(f"the data of storage {key!r} does not match its size")
        target = torch.empty(0, dtype=torch.uint8).set_(storage._untyped_storage)
        if count:
            target.copy_(torch.frombuffer(bytearray(data[offset + 8 : end]), dtype=torch.uint8))
        offset = end
    return value


def _check_nesting(value: Any) -> None:
    """Refuse data nested deeper than ``_MAX_NESTING`` (later traversals would recurse)."""
    seen: set[int] = set()
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        obj, depth = todo.pop()
        if depth > _MAX_NESTING:
            raise NotACheckpointError(f"its data nests more than {_MAX_NESTING} levels deep")
        if id(obj) in seen:
            continue
        if isinstance(obj, dict):
            children = [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = list(obj)
        elif isinstance(obj, InertObject):
            children = [obj.args, obj.state]
        else:
            continue
        seen.add(id(obj))
        todo.extend((child, depth + 1) for child in children)


def read_torch_save(path: Path) -> Any:
    """Read a ``torch.save`` checkpoint without running code from it (see the module doc).

    Args:
        path: the file.

    Returns:
        The object that was saved, tensors rebuilt and other objects as inert records.

    Raises:
        NotACheckpointError: the file is not a ``torch.save`` checkpoint, or it is damaged
            (:class:`~recausal.models.safe_unpickler.CheckpointLimitError`: it claims more
            memory than its size accounts for).
        RefusedGlobalError: a pickle in it names a global outside the allowed set.
    """
    size = path.stat().st_size
    if size == 0:
        raise NotACheckpointError("the file is empty")
    if is_zip(path):
        value = _read_zip_checkpoint(path, size)
    else:
        value = _read_legacy_checkpoint(path, size)
    _check_nesting(value)
    return value


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript zip, which ``torch.load`` would hand to ``jit.load``.

    Args:
        path: the file.

    Returns:
        True for a readable zip archive holding a ``constants.pkl`` record.
    """
    try:
        if not is_zip(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in archive.namelist())
    except Exception:  # a damaged archive fails zipfile in many ways; it is read later
        return False


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a zip archive (``torch.save``'s default format).

    Args:
        path: the file.

    Returns:
        True when zipfile recognises it; False otherwise, also when the check fails.
    """
    try:
        return zipfile.is_zipfile(path)
    except Exception:  # zipfile's checks can fail on damaged data in many ways
        return False


__all__ = ["is_torchscript", "is_zip", "read_torch_save"]
