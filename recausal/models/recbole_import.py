"""Import a checkpoint written by RecBole's own trainer into a recausal model bundle.

RecBole saves ``torch.save`` pickles of ``{config, epoch, cur_step, best_valid_score,
state_dict, other_parameter, optimizer}``. Unpickling can run arbitrary code, so by default
the file is read by recausal's own restricted reader, not by ``torch.load``:

* tensors, storages and plain containers are rebuilt by the few functions that do only that
  (``torch._utils._rebuild_tensor_v2``, ``collections.OrderedDict``, numpy scalars, ...),
  each called through a check of its arguments;
* RecBole's own objects (its ``Config``, enum members, the model class) and PyYAML's loader
  class become inert records of their pickled state: no RecBole or PyYAML code runs, and the
  configuration is recovered as plain data;
* any other global (``os.system``, ``builtins.exec``, a class from another package) is refused
  before anything is called, with a :class:`~recausal.errors.BundleError`.

Nothing the file says can make the reader allocate more than the file could hold: a
storage must be backed by as many bytes in the file, an array or a tensor view cannot be
larger than the file, a bytearray is only built from bytes, sets only from containers
already read, and a pickle may hold at most ``_MAX_OPCODES`` instructions. A file that is
not a ``torch.save`` checkpoint (random bytes, an empty file, a damaged archive) is reported
as such; ``--trust-pickle`` is only suggested for a well-formed pickle that names a global
outside the allowed set, the one case where it can help.

``trust_pickle=True`` (``--trust-pickle``) falls back to an ordinary
``torch.load(weights_only=False)`` for checkpoints the restricted reader refuses.

The item-id map is not in the checkpoint: RecBole assigns internal ids when it builds the
dataset. It is rebuilt exactly that way, by building the RecBole dataset from the
checkpoint's own settings and the given atomic files and reading ``field2id_token``
(:func:`recausal.models.recbole_settings.recbole_item_tokens`).
"""

from __future__ import annotations

import codecs
import collections
import hashlib
import io
import math
import os
import pickle
import pickletools
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recausal.errors import BundleError, RecausalError, UnsupportedModelError

#: modules whose globals become inert records (their pickled state is kept, no code runs)
INERT_PACKAGES = ("recbole", "yaml")

_MAX_PICKLE_BYTES = 64 << 20  # a RecBole checkpoint's pickle is a few hundred KB
_MAX_OPCODES = 1_000_000  # pickle instructions per pickle (each builds one small object)
_MAX_DIMS = 64  # dimensions of a tensor or an array
_MAX_NESTING = 200  # containers inside containers
_MAX_TEXT = 200  # characters of a dtype, device or global name
_SLACK = 1 << 16  # bytes any allocation may use, however small the file
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's legacy (non-zip) format
_LEGACY_PROTOCOL = 1001


class RefusedGlobalError(BundleError):
    """A pickle names a global that the restricted reader will not import."""


class NotACheckpointError(BundleError):
    """The file is not a checkpoint written by ``torch.save``, or it is damaged."""


class CheckpointLimitError(NotACheckpointError):
    """The file asks for more memory than its own size can account for."""


# --------------------------------------------------------------------- inert records
class InertObject:
    """A pickled object whose class was not imported: it only records what it was given.

    ``global_name`` is the ``module.qualname`` the pickle named, ``args`` what a pickled call
    passed, ``state`` what the pickle restored with ``BUILD`` (an object's ``__dict__``).
    """

    global_name: str = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = object.__new__(cls)
        obj.__dict__["args"] = args
        obj.__dict__["state"] = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing: the arguments were recorded by ``__new__``."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<inert {self.global_name}>"


_INERT_CLASSES: dict[tuple[str, str], type[InertObject]] = {}


def _inert_class(module: str, name: str) -> type[InertObject]:
    key = (module, name)
    if key not in _INERT_CLASSES:
        _INERT_CLASSES[key] = type(
            f"Inert[{module}.{name}]", (InertObject,), {"global_name": f"{module}.{name}"}
        )
    return _INERT_CLASSES[key]


@dataclass(frozen=True)
class _StorageKind:
    """What a pickled ``torch.FloatStorage`` (etc.) global stands for: only its dtype."""

    name: str
    dtype: Any


class _Marker:
    """A global that is only ever an argument (``numpy.ndarray`` given to ``_reconstruct``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_NDARRAY = _Marker("numpy.ndarray")


def _storage_kinds() -> dict[str, _StorageKind]:
    import torch

    dtypes = {
        "DoubleStorage": torch.float64,
        "FloatStorage": torch.float32,
        "HalfStorage": torch.float16,
        "BFloat16Storage": torch.bfloat16,
        "LongStorage": torch.int64,
        "IntStorage": torch.int32,
        "ShortStorage": torch.int16,
        "CharStorage": torch.int8,
        "ByteStorage": torch.uint8,
        "BoolStorage": torch.bool,
        "ComplexDoubleStorage": torch.complex128,
        "ComplexFloatStorage": torch.complex64,
        "UntypedStorage": torch.uint8,
    }
    return {name: _StorageKind(name, dtype) for name, dtype in dtypes.items()}


def _multiarray() -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


def _text_or_none(value: Any) -> str | None:
    return None if value is None else _short(value if isinstance(value, str) else str(value), 200)


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------- argument checks
def _malformed(what: str) -> NotACheckpointError:
    return NotACheckpointError(f"its pickle data is malformed: {what}")


def _ints(value: Any, what: str) -> tuple[int, ...]:
    """``value`` as a tuple of non-negative ints (a shape), checked."""
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS:
        raise _malformed(f"{what} must be a tuple of at most {_MAX_DIMS} integers")
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _malformed(f"{what} must hold non-negative integers, not {_short(v)}")
    return tuple(value)


def _is_concrete(value: Any) -> bool:
    """A container already read from the file (its size is bounded by the file's)."""
    return isinstance(value, (list, tuple, set, frozenset, dict, str, bytes, bytearray))


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it (text → latin-1 bytes), nothing else."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise RefusedGlobalError(f"_codecs.encode with encoding {_short(encoding)}")
    return codecs.encode(text, "latin1")


class SafeUnpickler(pickle._Unpickler):
    """An unpickler that builds tensors and plain data and never imports code it could run.

    It is Python's own pure-Python unpickler (whose memo is a dict and whose reads are
    bounded by the data given) with every global replaced by a checked function, ``BUILD``
    limited to the objects a checkpoint restores, and at most ``_MAX_OPCODES`` instructions.

    Args:
        file: the pickle, an in-memory stream.
        budget: the most bytes one array, tensor or bytearray may claim (the file's size).
        persistent_load: resolves the pickle's storage references, or ``None`` (refused).
    """

    def __init__(
        self,
        file: io.BytesIO,
        *,
        budget: int,
        persistent_load: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(file, fix_imports=True, encoding="utf-8", errors="strict")
        self._budget = max(int(budget), 0) + _SLACK
        self._opcodes = 0
        self._resolve = persistent_load
        self._globals = self._allowed_globals()

    # ---------------------------------------------------------------- the instruction loop
    def _count(self) -> None:
        self._opcodes += 1
        if self._opcodes > _MAX_OPCODES:
            raise CheckpointLimitError(
                f"its pickle has more than {_MAX_OPCODES} instructions; a RecBole "
                "checkpoint's has a few thousand"
            )

    def _claim(self, nbytes: int, what: str) -> None:
        if nbytes > self._budget:
            raise CheckpointLimitError(
                f"it asks for {what} of {nbytes} bytes, more than the whole file holds "
                f"({self._budget - _SLACK} bytes)"
            )

    def persistent_load(self, pid: Any) -> Any:
        """Resolve a storage reference through the reader of the archive or file."""
        if self._resolve is None:
            raise _malformed("a storage reference outside a torch.save checkpoint")
        return self._resolve(pid)

    def find_class(self, module: str, name: str) -> Any:
        """Checked rebuild functions, inert records for RecBole/PyYAML, refusal otherwise."""
        if not isinstance(module, str) or not isinstance(name, str):
            raise _malformed("a global whose name is not text")
        if self.proto < 3 and self.fix_imports:
            import _compat_pickle

            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        found = self._globals.get((module, name))
        if found is not None:
            return found
        if module == "torch":
            import torch

            if name in _STORAGE_KINDS:
                return _STORAGE_KINDS[name]
            value = getattr(torch, name, None) if name.isidentifier() else None
            if isinstance(value, torch.dtype):
                return value
        if module.split(".")[0] in INERT_PACKAGES:
            return _inert_class(module, name)
        raise RefusedGlobalError(f"{_short(module, _MAX_TEXT)}.{_short(name, _MAX_TEXT)}")

    def load_build(self) -> None:
        """``BUILD``, only on the objects a checkpoint restores state into."""
        import numpy as np

        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            self._check_array_state(state)
        elif isinstance(inst, collections.OrderedDict):
            if not isinstance(state, dict):
                raise _malformed("the state of an OrderedDict must be a dict")
        elif not isinstance(inst, (InertObject, np.dtype)):
            raise _malformed(f"it restores the state of a {type(inst).__name__} object")
        super().load_build()

    def _check_array_state(self, state: Any) -> None:
        import numpy as np

        if not isinstance(state, tuple) or len(state) != 5:
            raise _malformed("the state of a numpy array must be a 5-tuple")
        _, shape, dtype, _, raw = state
        shape = _ints(shape, "a numpy array's shape")
        if not isinstance(dtype, np.dtype):
            raise _malformed("a numpy array's dtype is not a dtype")
        count = math.prod(shape)
        self._claim(count * max(dtype.itemsize, 1), "a numpy array")
        if dtype.hasobject:
            if not isinstance(raw, list) or len(raw) != count:
                raise _malformed("an object array's data must be a list of its elements")
        elif not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dtype.itemsize:
            raise _malformed("a numpy array's data does not match its shape and dtype")

    # ---------------------------------------------------------------- the allowed globals
    def _allowed_globals(self) -> dict[tuple[str, str], Callable[..., Any] | _Marker]:
        allowed: dict[tuple[str, str], Callable[..., Any] | _Marker] = {
            ("collections", "OrderedDict"): self._ordered_dict,
            ("builtins", "set"): self._set,
            ("builtins", "frozenset"): self._frozenset,
            ("builtins", "complex"): self._complex,
            ("builtins", "slice"): self._slice,
            ("builtins", "range"): self._range,
            ("builtins", "bytearray"): self._bytearray,
            ("_codecs", "encode"): _latin1_encode,  # how pickle protocol 2 stores bytes
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch", "device"): self._device,
            ("torch", "Size"): self._size,
            ("numpy", "dtype"): self._dtype,
            ("numpy", "ndarray"): _NDARRAY,
        }
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed[(module, "scalar")] = self._scalar
            allowed[(module, "_reconstruct")] = self._reconstruct
        return allowed

    def _ordered_dict(self, *args: Any) -> collections.OrderedDict:
        if len(args) > 1 or (args and not _is_concrete(args[0])):
            raise _malformed("OrderedDict must be built from a dict or a list of pairs")
        return collections.OrderedDict(*args)

    def _set(self, items: Any = ()) -> set:
        if not _is_concrete(items):
            raise _malformed(f"set must be built from a list, not a {type(items).__name__}")
        return set(items)

    def _frozenset(self, items: Any = ()) -> frozenset:
        if not _is_concrete(items):
            raise _malformed(f"frozenset must be built from a list, not {type(items).__name__}")
        return frozenset(items)

    def _bytearray(self, source: Any = b"", encoding: Any = None, *rest: Any) -> bytearray:
        if isinstance(source, (bytes, bytearray)) and encoding is None and not rest:
            return bytearray(source)
        if isinstance(source, str) and encoding in ("latin1", "latin-1") and not rest:
            return bytearray(source, "latin-1")
        if isinstance(source, int) and not isinstance(source, bool):
            self._claim(source, "a bytearray")
            raise _malformed(f"a bytearray of a size ({source}) instead of its bytes")
        raise _malformed("bytearray must be built from bytes")

    def _complex(self, *args: Any) -> complex:
        if len(args) > 2 or not all(
            isinstance(a, (int, float)) or (isinstance(a, str) and len(a) <= _MAX_TEXT)
            for a in args
        ):
            raise _malformed("complex must be built from numbers")
        return complex(*args)

    def _slice(self, *args: Any) -> slice:
        if len(args) > 3 or not all(a is None or isinstance(a, int) for a in args):
            raise _malformed("slice must be built from integers")
        return slice(*args)

    def _range(self, *args: Any) -> range:
        if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
            raise _malformed("range must be built from integers")
        return range(*args)

    def _device(self, *args: Any) -> Any:
        import torch

        kind = args[0] if args else None
        if not isinstance(kind, str) or len(kind) > _MAX_TEXT or len(args) > 2:
            raise _malformed("torch.device must be built from a device name")
        if len(args) == 2 and not isinstance(args[1], int):
            raise _malformed("a torch.device's index must be an integer")
        return torch.device(*args)

    def _size(self, dims: Any = ()) -> Any:
        import torch

        return torch.Size(_ints(dims, "torch.Size"))

    def _dtype(self, kind: Any, align: Any = False, copy: Any = False) -> Any:
        import numpy as np

        if not isinstance(kind, str) or len(kind) > _MAX_TEXT:
            raise _malformed("numpy.dtype must be built from a type code")
        dtype = np.dtype(kind, bool(align), bool(copy))
        self._claim(dtype.itemsize, "a numpy scalar type")
        return dtype

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        import numpy as np

        multiarray = _multiarray()
        if not isinstance(dtype, np.dtype):
            raise _malformed("a numpy scalar's dtype is not a dtype")
        if not dtype.hasobject and (
            not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize
        ):
            raise _malformed("a numpy scalar's data does not match its dtype")
        return multiarray.scalar(dtype, data) if data is not None else multiarray.scalar(dtype)

    def _reconstruct(self, subtype: Any, shape: Any, code: Any) -> Any:
        import numpy as np

        multiarray = _multiarray()
        if subtype is not _NDARRAY or not isinstance(code, (bytes, str)) or len(code) > 8:
            raise _malformed("numpy's _reconstruct is only used for plain arrays")
        shape = _ints(shape, "a numpy array's shape")
        self._claim(math.prod(shape) * np.dtype(code).itemsize, "a numpy array")
        return multiarray._reconstruct(np.ndarray, shape, code)

    def _rebuild_tensor(
        self,
        storage: Any,
        offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        metadata: Any = None,
    ) -> Any:
        import torch

        if not isinstance(storage, torch.storage.TypedStorage):
            raise _malformed("a tensor whose storage is not a storage")
        size, stride = _ints(size, "a tensor's size"), _ints(stride, "a tensor's stride")
        if len(size) != len(stride) or not isinstance(offset, int) or offset < 0:
            raise _malformed("a tensor's size, stride and offset do not fit together")
        self._claim(math.prod(size) * storage.dtype.itemsize, "a tensor")
        held = storage._untyped_storage.nbytes() // max(storage.dtype.itemsize, 1)
        reach = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if 0 not in size and reach >= held:
            raise _malformed("a tensor reaches past the end of its storage")
        if not isinstance(requires_grad, bool) or backward_hooks:
            raise _malformed("a tensor with hooks or a non-boolean requires_grad")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and all(isinstance(k, str) and isinstance(v, bool) for k, v in metadata.items())
        ):
            raise _malformed("a tensor's metadata must map names to booleans")
        return torch._utils._rebuild_tensor_v2(
            storage, offset, size, stride, requires_grad, collections.OrderedDict(), metadata
        )

    def _rebuild_parameter(self, data: Any, requires_grad: Any, backward_hooks: Any) -> Any:
        import torch

        if not isinstance(data, torch.Tensor) or not isinstance(requires_grad, bool):
            raise _malformed("a parameter must be built from a tensor")
        if backward_hooks:
            raise _malformed("a parameter with hooks")
        return torch._utils._rebuild_parameter(data, requires_grad, collections.OrderedDict())


def _counted(method: Callable[[Any], None]) -> Callable[[Any], None]:
    def step(self: SafeUnpickler) -> None:
        self._count()
        method(self)

    return step


SafeUnpickler.dispatch = {
    code: _counted(getattr(SafeUnpickler, method.__name__, method))
    for code, method in pickle._Unpickler.dispatch.items()
}
_STORAGE_KINDS: dict[str, _StorageKind] = {}


# --------------------------------------------------------------------- reading torch.save files
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
        raise _malformed(f"{type(exc).__name__}: {_short(str(exc))}") from None
    return value, stream.tell()


def _not_a_pickle(start: int) -> NotACheckpointError:
    if start == 0:
        return NotACheckpointError("neither a zip archive nor a pickle, as torch.save writes")
    return _malformed(f"the pickle at byte {start} is incomplete or corrupt")


def _storage_id(pid: Any, parts: int) -> tuple[Any, ...]:
    if not isinstance(pid, tuple) or len(pid) != parts or pid[0] not in ("storage", b"storage"):
        raise _malformed("a storage reference is not ('storage', type, key, location, size)")
    kind, key, location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(kind, _StorageKind):
        raise _malformed("a storage reference names no storage type")
    if isinstance(key, bytes):
        key = key.decode("ascii", "replace")
    if not isinstance(key, str) or not isinstance(location, (str, bytes)):
        raise _malformed("a storage reference's key or location is not text")
    if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
        raise _malformed("a storage reference's size is not a non-negative integer")
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
        raise NotACheckpointError(f"a damaged zip archive ({_short(str(exc))})") from None
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
                    f"record {name!r} is damaged ({_short(str(exc))})"
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
        raise NotACheckpointError(f"legacy torch.save protocol {_short(protocol)}")
    _, offset = _unpickle(data, offset, size)
    storages: dict[str, tuple[Any, int]] = {}
    claimed = 0

    def resolve(pid: Any) -> Any:
        nonlocal claimed
        kind, key, numel, views = _storage_id(pid, 6)
        if views is not None:
            raise _malformed("storage views, which RecBole checkpoints do not use")
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
        raise _malformed("the list of storage keys does not match the storages used")
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


def _restricted_load(path: Path) -> Any:
    """Read a ``torch.save`` checkpoint without running code from it (see the module doc)."""
    if not _STORAGE_KINDS:
        _STORAGE_KINDS.update(_storage_kinds())
    size = path.stat().st_size
    if size == 0:
        raise NotACheckpointError("the file is empty")
    if _is_zip(path):
        value = _read_zip_checkpoint(path, size)
    else:
        value = _read_legacy_checkpoint(path, size)
    _check_nesting(value)
    return value


# --------------------------------------------------------------------- reading a checkpoint
@dataclass(frozen=True)
class RecBoleCheckpoint:
    """The parts of a RecBole checkpoint recausal uses, as plain data."""

    path: Path
    sha256: str
    model: str
    final_config: dict[str, Any]
    external_config: dict[str, Any]
    state_dict: dict[str, Any] = field(repr=False)
    epoch: int | None
    best_valid_score: float | None
    reader: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no weights).

        Returns:
            The path, digest, model, dataset, epoch, validation score and reader.
        """
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "model": self.model,
            "dataset": self.final_config.get("dataset"),
            "epoch": self.epoch,
            "best_valid_score": self.best_valid_score,
            "reader": self.reader,
        }


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript zip, which ``torch.load`` would hand to ``jit.load``."""
    try:
        if not _is_zip(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in archive.namelist())
    except Exception:  # a damaged archive fails zipfile in many ways; it is read later
        return False


def _is_zip(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except Exception:  # zipfile's checks can fail on damaged data in many ways
        return False


def _config_dicts(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``final_config_dict`` and ``external_config_dict`` of a Config or its inert record."""
    if isinstance(config, InertObject):
        state = config.state if isinstance(config.state, dict) else {}
    else:
        state = getattr(config, "__dict__", {})
    final = state.get("final_config_dict")
    external = state.get("external_config_dict") or {}
    if not isinstance(final, dict) or not isinstance(external, dict):
        raise BundleError("its 'config' entry is not a RecBole Config (no final_config_dict)")
    return dict(final), dict(external)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return None


def read_recbole_checkpoint(
    path: str | os.PathLike, *, trust_pickle: bool = False
) -> RecBoleCheckpoint:
    """Read a checkpoint saved by RecBole's trainer.

    Without ``trust_pickle`` no code from the file runs (see the module docstring); a file that
    needs more is refused with a :class:`BundleError` that names the global it asked for.

    Args:
        path: the checkpoint file.
        trust_pickle: read it with plain ``torch.load`` (which can run its code).

    Returns:
        The checkpoint's model name, settings, weights and provenance, as plain data.

    Raises:
        InvalidInputError: ``path`` is not a path.
        BundleError: the file is missing, not a RecBole checkpoint, or refused.
    """
    import torch

    from recausal.models.bundle import bundle_path_argument

    path = bundle_path_argument(path, "path", shipped=False, what="a checkpoint file")
    if not path.is_file():
        raise BundleError(f"checkpoint {path} does not exist")
    try:
        sha256 = _file_sha256(path)
    except OSError as exc:
        raise BundleError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from None
    if not trust_pickle and _is_torchscript(path):
        raise BundleError(
            f"{path} is a TorchScript archive, not a RecBole checkpoint; loading it would "
            "run its code, so recausal does not (RecBole checkpoints come from its trainer)"
        )
    try:
        if trust_pickle:
            import recbole  # noqa: F401  (the pickle names RecBole's classes)

            raw = torch.load(path, map_location="cpu", weights_only=False)
            reader = "torch.load (trusted pickle, --trust-pickle)"
        else:
            raw = _restricted_load(path)
            reader = "restricted unpickler (no code from the file run)"
    except RefusedGlobalError as exc:
        raise BundleError(
            f"checkpoint {path} refers to {exc}, which would have to be imported and called "
            "to load it; pickles can run arbitrary code when loaded, so recausal reads "
            "checkpoints with a restricted reader that only rebuilds tensors, plain data and "
            "RecBole's own config records. If you trust this file, import it with "
            "--trust-pickle (trust_pickle=True)"
        ) from None
    except NotACheckpointError as exc:
        raise BundleError(
            f"checkpoint {path} could not be read: it is not a RecBole checkpoint ({exc})"
        ) from None
    except Exception as exc:  # plain torch.load fails on a foreign file in many ways
        raise BundleError(
            f"checkpoint {path} could not be read: {type(exc).__name__}: {_short(str(exc))}"
        ) from None
    if not isinstance(raw, dict) or "state_dict" not in raw or "config" not in raw:
        raise BundleError(
            f"{path} is not a RecBole checkpoint (expected a dict with 'config' and "
            "'state_dict', as RecBole's trainer saves)"
        )
    try:
        final, external = _config_dicts(raw["config"])
    except BundleError as exc:
        raise BundleError(f"{path} is not a RecBole checkpoint: {exc}") from None
    state_dict = raw["state_dict"]
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise BundleError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    other = raw.get("other_parameter")
    if other is not None and not (isinstance(other, (dict, list, tuple)) and len(other) == 0):
        names = ", ".join(map(str, other)) if isinstance(other, (dict, list, tuple)) else other
        raise BundleError(
            f"{path}: the model keeps state outside its weights ({_short(names)}), which a "
            "bundle cannot hold"
        )
    model = final.get("model")
    if not isinstance(model, str):
        raise BundleError(f"{path}: the checkpoint's config names no model")
    epoch = raw.get("epoch")
    return RecBoleCheckpoint(
        path=path,
        sha256=sha256,
        model=model,
        final_config=final,
        external_config=external,
        state_dict=dict(state_dict),
        epoch=int(epoch) if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        best_valid_score=_number(raw.get("best_valid_score")),
        reader=reader,
    )


# --------------------------------------------------------------------- import
def import_recbole_checkpoint(
    path: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trust_pickle: bool = False,
) -> Path:
    """Convert a RecBole trainer checkpoint into a recausal bundle at ``out``; return its path.

    The item-id map is rebuilt from ``dataset`` with the checkpoint's settings, and the
    weights must fit it exactly. The settings are checked like a bundle's config.json and the
    network's tensor shapes compared with the checkpoint's before the network is built.

    Args:
        path: the checkpoint (``.pth``) written by RecBole's trainer.
        dataset: the dataset the model was trained on (a folder of atomic files or a known
            name).
        out: the bundle folder to write.
        trust_pickle: read the file with plain ``torch.load`` (which can run its code).

    Returns:
        The bundle's path.

    Raises:
        BundleError: the file is refused or unreadable, or its weights do not fit the dataset.
        UnsupportedModelError: recausal has no family for the checkpoint's model.
    """
    import recbole

    from recausal.models.bundle import CONFIG, bundle_meta, bundle_path_argument, save_bundle
    from recausal.models.bundle_schema import check_config
    from recausal.models.families import ADAPTERS
    from recausal.models.loading import build_network, network_shapes, weights_mismatch
    from recausal.models.recbole_settings import bundle_model_config, recbole_item_tokens

    out = bundle_path_argument(out, "out", shipped=False)
    ckpt = read_recbole_checkpoint(path, trust_pickle=trust_pickle)
    if ckpt.model not in ADAPTERS:
        raise UnsupportedModelError(
            f"checkpoint {ckpt.path} holds a {ckpt.model} model, which recausal cannot run; "
            f"supported: {', '.join(ADAPTERS)}"
        )
    items, files = recbole_item_tokens(ckpt.model, ckpt.external_config, dataset)
    model_config = bundle_model_config(ckpt.final_config, len(items))
    source = f"the settings in checkpoint {ckpt.path}"
    try:
        check_config(model_config, out / CONFIG)
    except BundleError as exc:
        raise BundleError(f"{source} are not a valid model config: {exc}") from None
    expected = network_shapes(ckpt.model, model_config["recbole"], len(items), source=source)
    detail = weights_mismatch(expected, ckpt.state_dict, "the network built for this dataset")
    if detail:
        raise BundleError(
            f"the weights in {ckpt.path} do not fit dataset {files.name!r}: the checkpoint "
            f"{detail} (RecBole gives this dataset {len(items) - 1} items with the "
            f"checkpoint's settings; the checkpoint was trained on "
            f"{_short(ckpt.final_config.get('dataset'))}); import it with the dataset it was "
            "trained on"
        )
    net = build_network(ckpt.model, model_config["recbole"], len(items), source=source)
    try:
        net.load_state_dict(ckpt.state_dict, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleError(f"the weights in {ckpt.path} cannot be loaded: {first}") from None
    meta = bundle_meta(
        ckpt.model,
        files,
        imported={
            "from": "RecBole checkpoint",
            "source": str(ckpt.path.resolve()),
            "source_sha256": ckpt.sha256,
            "reader": ckpt.reader,
            "epoch": ckpt.epoch,
            "trained_on": _text_or_none(ckpt.final_config.get("dataset")),
            "recbole_version": recbole.__version__,
        },
        metrics={
            "source": "RecBole checkpoint: validation score of the saved epoch",
            "valid_metric": _text_or_none(ckpt.final_config.get("valid_metric")),
            "best_valid_score": ckpt.best_valid_score,
        },
    )
    return save_bundle(out, net.state_dict(), model_config, items, meta)


__all__ = [
    "InertObject",
    "RecBoleCheckpoint",
    "import_recbole_checkpoint",
    "read_recbole_checkpoint",
]
