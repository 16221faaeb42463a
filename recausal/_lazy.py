"""Public names imported on first use: the ``__getattr__`` of a package facade (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports each listed name from its module when first read.

    Args:
        package: the facade's name, for the error message.
        modules: public name -> the module that defines it.

    Returns:
        The ``__getattr__`` function; a name not listed raises :class:`AttributeError`.
    """

    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(importlib.import_module(modules[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


__all__ = ["lazy_getattr"]
