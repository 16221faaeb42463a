"""The model layer: RecBole models behind one contract, their bundles, training and import.

Public names (imported on first use, so that importing this package, or a torch-free module
of it such as :mod:`recausal.models.bundle`, does not import torch):

- the contract: :class:`SequentialModel` (``recommend``, ``score``, ``attention``), the
  values it takes and returns (:class:`Edits`, :class:`Recommendation`, :func:`top_k_ids`);
- building a model: :func:`load_model` (a bundle), :func:`from_recbole` (a RecBole model in
  memory), :func:`build_network`; the families in ``ADAPTERS``;
- where it runs: the ``device`` argument, :func:`check_device`, :func:`available_devices`;
- the shipped bundles: :func:`shipped_models`, :func:`resolve_bundle_path`, ``DEFAULT_MODEL``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recausal._lazy import lazy_getattr

if TYPE_CHECKING:
    from recausal.models.base import SequentialModel
    from recausal.models.batch import Edits, History, Recommendation, top_k_ids
    from recausal.models.bundle import (
        DEFAULT_MODEL,
        SHIPPED_DIR,
        resolve_bundle_path,
        shipped_models,
    )
    from recausal.models.device import available_devices, check_device
    from recausal.models.families import (
        ADAPTERS,
        ATTENTION_MODELS,
        BERT4RecModel,
        COREModel,
        GCSANModel,
        LightSANsModel,
        RecBoleSequentialModel,
        SASRecModel,
    )
    from recausal.models.loading import build_network, from_bundle, from_recbole, load_model

# Module → the public names it defines; each is imported on first use.
_EXPORTS = {
    "recausal.models.base": ("SequentialModel",),
    "recausal.models.batch": ("Edits", "History", "Recommendation", "top_k_ids"),
    "recausal.models.bundle": (
        "DEFAULT_MODEL",
        "SHIPPED_DIR",
        "resolve_bundle_path",
        "shipped_models",
    ),
    "recausal.models.device": ("available_devices", "check_device"),
    "recausal.models.families": (
        "ADAPTERS",
        "ATTENTION_MODELS",
        "BERT4RecModel",
        "COREModel",
        "GCSANModel",
        "LightSANsModel",
        "RecBoleSequentialModel",
        "SASRecModel",
    ),
    "recausal.models.loading": ("build_network", "from_bundle", "from_recbole", "load_model"),
}
__getattr__ = lazy_getattr(
    __name__, {name: module for module, names in _EXPORTS.items() for name in names}
)


__all__ = [
    "ADAPTERS",
    "ATTENTION_MODELS",
    "DEFAULT_MODEL",
    "SHIPPED_DIR",
    "BERT4RecModel",
    "COREModel",
    "Edits",
    "GCSANModel",
    "History",
    "LightSANsModel",
    "RecBoleSequentialModel",
    "Recommendation",
    "SASRecModel",
    "SequentialModel",
    "available_devices",
    "build_network",
    "check_device",
    "from_bundle",
    "from_recbole",
    "load_model",
    "resolve_bundle_path",
    "shipped_models",
    "top_k_ids",
]
