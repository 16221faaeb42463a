"""What the restricted checkpoint reader builds in place of a pickled global it never imports.

* RecBole's own objects (its ``Config``, enum members, the model class) and PyYAML's loader
  class become :class:`InertObject` records of their pickled state (:func:`inert_class`);
* ``torch.FloatStorage`` and the other storage types become a :class:`StorageKind`, their
  dtype only (:func:`storage_kinds`);
* ``numpy.ndarray``, only ever an argument of numpy's ``_reconstruct``, becomes the
  :data:`NDARRAY` marker.

The unpickler that uses them is :class:`recausal.models.safe_unpickler.SafeUnpickler`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

#: modules whose globals become inert records (their pickled state is kept, no code runs)
INERT_PACKAGES = ("recbole", "yaml")


class InertObject:
    """A pickled object whose class was not imported: it only records what it was given.

    ``global_name`` is the ``module.qualname`` the pickle named, ``args`` what a pickled call
    passed, ``state`` what the pickle restored with ``BUILD`` (an object's ``__dict__``).
    """

    # the public home of the inert records: read_recbole_checkpoint returns them, and
    # recausal.models.recbole_import exports this class
    __module__ = "recausal.models.recbole_import"

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


def inert_class(module: str, name: str) -> type[InertObject]:
    """The inert record class standing for the global ``module.name`` (one per global).

    Args:
        module: the module the pickle names.
        name: the global's qualified name in it.

    Returns:
        A subclass of :class:`InertObject` whose ``global_name`` is ``module.name``.
    """
    key = (module, name)
    if key not in _INERT_CLASSES:
        _INERT_CLASSES[key] = type(
            f"Inert[{module}.{name}]",
            (InertObject,),
            {"global_name": f"{module}.{name}", "__module__": InertObject.__module__},
        )
    return _INERT_CLASSES[key]


@dataclass(frozen=True)
class StorageKind:
    """What a pickled ``torch.FloatStorage`` (etc.) global stands for: only its dtype."""

    name: str
    dtype: Any


class Marker:
    """A global that is only ever an argument (``numpy.ndarray`` given to ``_reconstruct``).

    Args:
        name: the global's name, for its ``repr``.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


#: the stand-in for ``numpy.ndarray``
NDARRAY = Marker("numpy.ndarray")


@functools.cache
def storage_kinds() -> dict[str, StorageKind]:
    """The storage types a checkpoint may name, by their name in ``torch``.

    Returns:
        ``{"FloatStorage": StorageKind("FloatStorage", torch.float32), ...}`` (built once).
    """
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
    return {name: StorageKind(name, dtype) for name, dtype in dtypes.items()}


__all__ = [
    "INERT_PACKAGES",
    "NDARRAY",
    "InertObject",
    "Marker",
    "StorageKind",
    "inert_class",
    "storage_kinds",
]
