"""Former home of the model layer, kept so that imports written before the split still work.

Its contents now live in :mod:`recausal.models.batch` (``Edits``, ``Recommendation``,
``top_k_ids``), :mod:`recausal.models.base` (``SequentialModel``),
:mod:`recausal.models.inference` (the fast forward), :mod:`recausal.models.families` (the
model families, ``ADAPTERS``) and :mod:`recausal.models.loading` (``build_network``,
``from_bundle``, ``from_recbole``). Import them from :mod:`recausal.models`, whose public
names this module forwards; it goes once nothing imports it.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    import recausal.models

    if name in recausal.models.__all__:
        return getattr(recausal.models, name)
    raise AttributeError(f"module 'recausal.models.adapter' has no attribute {name!r}")
