"""Model layer: RecBole adapters, bundles and training."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recausal.models.adapter import (
    BERT4RecModel,
    Recommendation,
    SASRecModel,
    SequentialModel,
    from_recbole,
)

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "bundles"
DEFAULT_MODEL = "sasrec-ml100k"


def shipped_models() -> list[str]:
    """Names of the bundles shipped inside the package."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / "meta.json").is_file())


def resolve_bundle_path(model: str | os.PathLike | None) -> Path:
    """A bundle path from a path or a shipped bundle's name (default: the SASRec ml-100k one)."""
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if not path.exists() and (SHIPPED_DIR / str(model)).is_dir():
        return SHIPPED_DIR / str(model)
    return path


def load_model(model: str | os.PathLike | None = None, dataset: Any = None) -> SequentialModel:
    """Load a model bundle (a path, or a shipped bundle's name such as ``"bert4rec-ml100k"``).

    ``dataset`` (a name or a directory of atomic files) overrides the dataset recorded in the
    bundle; it is only needed to look up users' histories.
    """
    from recausal.models.adapter import from_bundle
    from recausal.models.bundle import read_bundle

    return from_bundle(read_bundle(resolve_bundle_path(model)), dataset=dataset)


__all__ = [
    "DEFAULT_MODEL",
    "BERT4RecModel",
    "Recommendation",
    "SASRecModel",
    "SequentialModel",
    "from_recbole",
    "load_model",
    "shipped_models",
]
