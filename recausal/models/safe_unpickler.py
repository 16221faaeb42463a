"""The restricted unpickler of recausal's checkpoint reader: it builds tensors and plain data
and never imports code it could run.

* tensors, storages and plain containers are rebuilt by the few functions that do only that
  (``torch._utils._rebuild_tensor_v2``, ``collections.OrderedDict``, numpy scalars, ...),
  each called through a check of its arguments;
* RecBole's own objects and PyYAML's loader class become inert records of their pickled
  state (:mod:`recausal.models.inert_records`): no RecBole or PyYAML code runs;
* any other global (``os.system``, ``builtins.exec``, a class from another package) is refused
  before anything is called, with :class:`RefusedGlobalError`.

Nothing the pickle says can make it allocate more than the file could hold: an array or a
tensor view cannot be larger than the file, a bytearray is only built from bytes, sets only
from containers already read, and a pickle may hold at most ``_MAX_OPCODES`` instructions.
The ``torch.save`` file formats around the pickles are read by
:mod:`recausal.models.checkpoint_reader`.
"""

from __future__ import annotations

import codecs
import collections
import io
import math
import pickle
from collections.abc import Callable
from typing import Any

from recausal.errors import BundleError
from recausal.models.inert_records import (
    INERT_PACKAGES,
    NDARRAY,
    InertObject,
    Marker,
    inert_class,
    storage_kinds,
)

_MAX_OPCODES = 1_000_000  # pickle instructions per pickle (each builds one small object)
_MAX_DIMS = 64  # dimensions of a tensor or an array
_MAX_TEXT = 200  # characters of a dtype, device or global name
_SLACK = 1 << 16  # bytes any allocation may use, however small the file


class RefusedGlobalError(BundleError):
    """A pickle names a global that the restricted reader will not import."""


class NotACheckpointError(BundleError):
    """The file is not a checkpoint written by ``torch.save``, or it is damaged."""


class CheckpointLimitError(NotACheckpointError):
    """The file asks for more memory than its own size can account for."""


def short(value: Any, limit: int = 80) -> str:
    """A value for a message: text as it is, anything else as its ``repr``, cut to ``limit``.

    Args:
        value: the value.
        limit: the most characters shown.

    Returns:
        The text, ending in ``...`` when it was cut.
    """
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def malformed(what: str) -> NotACheckpointError:
    """The error for pickle data that does not hold what a checkpoint holds.

    Args:
        what: what is wrong.

    Returns:
        The :class:`NotACheckpointError` to raise.
    """
    return NotACheckpointError(f"its pickle data is malformed: {what}")


def _multiarray() -> Any:
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    return multiarray


# --------------------------------------------------------------------- argument checks
def _ints(value: Any, what: str) -> tuple[int, ...]:
    """``value`` as a tuple of non-negative ints (a shape), checked."""
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS:
        raise malformed(f"{what} must be a tuple of at most {_MAX_DIMS} integers")
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise malformed(f"{what} must hold non-negative integers, not {short(v)}")
    return tuple(value)


def _is_concrete(value: Any) -> bool:
    """A container already read from the file (its size is bounded by the file's)."""
    return isinstance(value, (list, tuple, set, frozenset, dict, str, bytes, bytearray))


def _latin1_encode(text: Any, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it (text → latin-1 bytes), nothing else."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise RefusedGlobalError(f"_codecs.encode with encoding {short(encoding)}")
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
            raise malformed("a storage reference outside a torch.save checkpoint")
        return self._resolve(pid)

    def find_class(self, module: str, name: str) -> Any:
        """Checked rebuild functions, inert records for RecBole/PyYAML, refusal otherwise."""
        if not isinstance(module, str) or not isinstance(name, str):
            raise malformed("a global whose name is not text")
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

            kinds = storage_kinds()
            if name in kinds:
                return kinds[name]
            value = getattr(torch, name, None) if name.isidentifier() else None
            if isinstance(value, torch.dtype):
                return value
        if module.split(".")[0] in INERT_PACKAGES:
            return inert_class(module, name)
        raise RefusedGlobalError(f"{short(module, _MAX_TEXT)}.{short(name, _MAX_TEXT)}")

    def load_build(self) -> None:
        """``BUILD``, only on the objects a checkpoint restores state into."""
        import numpy as np

        state, inst = self.stack[-1], self.stack[-2]
        if isinstance(inst, np.ndarray):
            self._check_array_state(state)
        elif isinstance(inst, collections.OrderedDict):
            if not isinstance(state, dict):
                raise malformed("the state of an OrderedDict must be a dict")
        elif not isinstance(inst, (InertObject, np.dtype)):
            raise malformed(f"it restores the state of a {type(inst).__name__} object")
        super().load_build()

    def _check_array_state(self, state: Any) -> None:
        import numpy as np

        if not isinstance(state, tuple) or len(state) != 5:
            raise malformed("the state of a numpy array must be a 5-tuple")
        _, shape, dtype, _, raw = state
        shape = _ints(shape, "a numpy array's shape")
        if not isinstance(dtype, np.dtype):
            raise malformed("a numpy array's dtype is not a dtype")
        count = math.prod(shape)
        self._claim(count * max(dtype.itemsize, 1), "a numpy array")
        if dtype.hasobject:
            if not isinstance(raw, list) or len(raw) != count:
                raise malformed("an object array's data must be a list of its elements")
        elif not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dtype.itemsize:
            raise malformed("a numpy array's data does not match its shape and dtype")

    # ---------------------------------------------------------------- the allowed globals
    def _allowed_globals(self) -> dict[tuple[str, str], Callable[..., Any] | Marker]:
        allowed: dict[tuple[str, str], Callable[..., Any] | Marker] = {
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
            ("numpy", "ndarray"): NDARRAY,
        }
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed[(module, "scalar")] = self._scalar
            allowed[(module, "_reconstruct")] = self._reconstruct
        return allowed

    def _ordered_dict(self, *args: Any) -> collections.OrderedDict:
        if len(args) > 1 or (args and not _is_concrete(args[0])):
            raise malformed("OrderedDict must be built from a dict or a list of pairs")
        return collections.OrderedDict(*args)

    def _set(self, items: Any = ()) -> set:
        if not _is_concrete(items):
            raise malformed(f"set must be built from a list, not a {type(items).__name__}")
        return set(items)

    def _frozenset(self, items: Any = ()) -> frozenset:
        if not _is_concrete(items):
            raise malformed(f"frozenset must be built from a list, not {type(items).__name__}")
        return frozenset(items)

    def _bytearray(self, source: Any = b"", encoding: Any = None, *rest: Any) -> bytearray:
        if isinstance(source, (bytes, bytearray)) and encoding is None and not rest:
            return bytearray(source)
        if isinstance(source, str) and encoding in ("latin1", "latin-1") and not rest:
            return bytearray(source, "latin-1")
        if isinstance(source, int) and not isinstance(source, bool):
            self._claim(source, "a bytearray")
            raise malformed(f"a bytearray of a size ({source}) instead of its bytes")
        raise malformed("bytearray must be built from bytes")

    def _complex(self, *args: Any) -> complex:
        if len(args) > 2 or not all(
            isinstance(a, (int, float)) or (isinstance(a, str) and len(a) <= _MAX_TEXT)
            for a in args
        ):
            raise malformed("complex must be built from numbers")
        return complex(*args)

    def _slice(self, *args: Any) -> slice:
        if len(args) > 3 or not all(a is None or isinstance(a, int) for a in args):
            raise malformed("slice must be built from integers")
        return slice(*args)

    def _range(self, *args: Any) -> range:
        if not 1 <= len(args) <= 3 or not all(isinstance(a, int) for a in args):
            raise malformed("range must be built from integers")
        return range(*args)

    def _device(self, *args: Any) -> Any:
        import torch

        kind = args[0] if args else None
        if not isinstance(kind, str) or len(kind) > _MAX_TEXT or len(args) > 2:
            raise malformed("torch.device must be built from a device name")
        if len(args) == 2 and not isinstance(args[1], int):
            raise malformed("a torch.device's index must be an integer")
        return torch.device(*args)

    def _size(self, dims: Any = ()) -> Any:
        import torch

        return torch.Size(_ints(dims, "torch.Size"))

    def _dtype(self, kind: Any, align: Any = False, copy: Any = False) -> Any:
        import numpy as np

        if not isinstance(kind, str) or len(kind) > _MAX_TEXT:
            raise malformed("numpy.dtype must be built from a type code")
        dtype = np.dtype(kind, bool(align), bool(copy))
        self._claim(dtype.itemsize, "a numpy scalar type")
        return dtype

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        import numpy as np

        multiarray = _multiarray()
        if not isinstance(dtype, np.dtype):
            raise malformed("a numpy scalar's dtype is not a dtype")
        if not dtype.hasobject and (
            not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize
        ):
            raise malformed("a numpy scalar's data does not match its dtype")
        return multiarray.scalar(dtype, data) if data is not None else multiarray.scalar(dtype)

    def _reconstruct(self, subtype: Any, shape: Any, code: Any) -> Any:
        import numpy as np

        multiarray = _multiarray()
        if subtype is not NDARRAY or not isinstance(code, (bytes, str)) or len(code) > 8:
            raise malformed("numpy's _reconstruct is only used for plain arrays")
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
            raise malformed("a tensor whose storage is not a storage")
        size, stride = _ints(size, "a tensor's size"), _ints(stride, "a tensor's stride")
        if len(size) != len(stride) or not isinstance(offset, int) or offset < 0:
            raise malformed("a tensor's size, stride and offset do not fit together")
        self._claim(math.prod(size) * storage.dtype.itemsize, "a tensor")
        held = storage._untyped_storage.nbytes() // max(storage.dtype.itemsize, 1)
        reach = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if 0 not in size and reach >= held:
            raise malformed("a tensor reaches past the end of its storage")
        if not isinstance(requires_grad, bool) or backward_hooks:
            raise malformed("a tensor with hooks or a non-boolean requires_grad")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and all(isinstance(k, str) and isinstance(v, bool) for k, v in metadata.items())
        ):
            raise malformed("a tensor's metadata must map names to booleans")
        return torch._utils._rebuild_tensor_v2(
            storage, offset, size, stride, requires_grad, collections.OrderedDict(), metadata
        )

    def _rebuild_parameter(self, data: Any, requires_grad: Any, backward_hooks: Any) -> Any:
        import torch

        if not isinstance(data, torch.Tensor) or not isinstance(requires_grad, bool):
            raise malformed("a parameter must be built from a tensor")
        if backward_hooks:
            raise malformed("a parameter with hooks")
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


__all__ = [
    "CheckpointLimitError",
    "NotACheckpointError",
    "RefusedGlobalError",
    "SafeUnpickler",
    "malformed",
    "short",
]
