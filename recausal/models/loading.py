"""Building a model: from a bundle on disk, or from a RecBole model object held in memory.

:func:`load_model` reads a bundle (a path or a shipped bundle's name) and rebuilds its RecBole
network from the stored parameters (:func:`build_network`); :func:`from_recbole` wraps a live
RecBole model and its dataset.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch

from recausal.errors import BundleError, InvalidInputError, UnsupportedModelError
from recausal.models.base import SequentialModel
from recausal.models.bundle import Bundle, read_bundle, resolve_bundle_path
from recausal.models.families import ADAPTERS


class _ConfigView(dict):
    """The subset of a RecBole ``Config`` a model constructor reads (missing keys are None)."""

    def __getitem__(self, key: str) -> Any:
        return self.get(key)


class _DatasetView:
    """Stands in for a RecBole dataset where a model constructor only asks for sizes."""

    def __init__(self, item_field: str, n_items: int, max_seq_length: int = 0) -> None:
        self._item_field = item_field
        self._n_items = n_items
        self.field2seqlen = _AnyKey(max_seq_length)

    def num(self, field: str) -> int:
        if field != self._item_field:
            raise UnsupportedModelError(f"the model asks for the size of field {field!r}")
        return self._n_items


class _AnyKey(dict):
    """A mapping that answers every key with one value (sequence lengths of list fields)."""

    def __init__(self, value: int) -> None:
        super().__init__()
        self._value = value

    def __getitem__(self, key: str) -> int:
        return self._value


def build_network(model_name: str, recbole_params: dict[str, Any], n_items: int) -> torch.nn.Module:
    """Instantiate a RecBole model class from a bundle's stored parameters.

    Args:
        model_name: the RecBole model class name (a key of ``ADAPTERS``).
        recbole_params: the RecBole settings stored in the bundle's ``config.json``.
        n_items: the number of item ids, padding included.

    Returns:
        The network, with fresh weights (the global random state is left as it was).

    Raises:
        UnsupportedModelError: recausal has no family for ``model_name``.
    """
    if model_name not in ADAPTERS:
        raise UnsupportedModelError(
            f"model {model_name!r} is not supported; supported: {', '.join(ADAPTERS)}"
        )
    from recbole.utils import get_model

    config = _ConfigView(recbole_params)
    config["device"] = torch.device("cpu")
    item_field = config["ITEM_ID_FIELD"] or "item_id"
    max_len = int(config["MAX_ITEM_LIST_LENGTH"] or 0)
    with torch.random.fork_rng():
        net = get_model(model_name)(config, _DatasetView(item_field, n_items, max_len))
    return net


def from_bundle(bundle: Bundle, dataset: Any = None) -> SequentialModel:
    """Build the model of a bundle read by :func:`recausal.models.bundle.read_bundle`.

    Args:
        bundle: the bundle.
        dataset: a dataset that overrides the one recorded in the bundle, or ``None``.

    Returns:
        The model of the bundle's family, with the bundle's weights.

    Raises:
        BundleError: the weights or the item-id map do not fit the bundle's config.
    """
    net = build_network(
        bundle.model_name, bundle.config.get("recbole", {}), int(bundle.config["n_items"])
    )
    try:
        net.load_state_dict(bundle.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise BundleError(f"bundle {bundle.path} weights do not fit its config: {first}") from None
    if len(bundle.items) != int(bundle.config["n_items"]):
        raise BundleError(
            f"bundle {bundle.path}: items.json has {len(bundle.items)} tokens but the model "
            f"has {bundle.config['n_items']} item ids"
        )
    return ADAPTERS[bundle.model_name](
        net,
        bundle.items,
        name=bundle.path.name,
        meta=bundle.meta,
        path=bundle.path,
        dataset=dataset,
    )


def from_recbole(model: torch.nn.Module, dataset: Any, *, name: str = "") -> SequentialModel:
    """Wrap a RecBole model object and the RecBole dataset it was built for.

    ``model`` is an instance of a supported RecBole sequential model (see ``ADAPTERS``);
    ``dataset`` is its RecBole ``Dataset`` (or a dataloader's ``.dataset``), whose
    ``field2id_token`` gives the item tokens. The adapter holds a CPU copy of the model taken
    now, in eval mode: the caller's model is not changed, and later training does not reach
    the adapter (wrap again after training).

    Args:
        model: the RecBole model.
        dataset: its RecBole dataset.
        name: a name for messages [default: the model's family].

    Returns:
        The model of its family, holding a CPU copy of the network.

    Raises:
        UnsupportedModelError: ``model`` is not of a supported RecBole family.
        InvalidInputError: ``dataset`` is not the dataset ``model`` was built for.
    """
    family = next(
        (
            cls.__name__
            for cls in type(model).__mro__
            if cls.__name__ in ADAPTERS and cls.__module__.startswith("recbole.")
        ),
        None,
    )
    if family is None:
        raise UnsupportedModelError(
            f"model of type {type(model).__name__} is not supported; supported RecBole "
            f"models: {', '.join(ADAPTERS)}"
        )
    tokens_by_field = getattr(dataset, "field2id_token", None)
    if not isinstance(tokens_by_field, dict):
        raise InvalidInputError(
            "dataset must be the RecBole Dataset the model was built for (an object with "
            f"field2id_token), got {type(dataset).__name__}"
        )
    item_field = model.ITEM_ID
    if item_field not in tokens_by_field:
        raise InvalidInputError(f"dataset has no item field {item_field!r} in field2id_token")
    items = [str(t) for t in tokens_by_field[item_field]]
    if len(items) != int(model.n_items):
        raise InvalidInputError(
            f"dataset has {len(items)} item ids but model {family} was built for "
            f"{model.n_items}; pass the dataset the model was trained on"
        )
    net = copy.deepcopy(model).cpu()
    if hasattr(net, "device"):
        net.device = torch.device("cpu")
    config = getattr(dataset, "config", None)
    folder = config["data_path"] if config is not None else None
    folder = str(folder) if folder and Path(str(folder)).is_dir() else None
    meta = {
        "model": family,
        "source": "in-memory RecBole model (recausal.from_recbole)",
        "dataset": {"name": str(getattr(dataset, "dataset_name", "")), "directory": folder},
    }
    return ADAPTERS[family](net, items, name=name or family, meta=meta, dataset=folder)


def load_model(model: str | os.PathLike | None = None, dataset: Any = None) -> SequentialModel:
    """Load a model bundle (a path, or a shipped bundle's name such as ``"bert4rec-ml100k"``).

    Args:
        model: the bundle's folder or a shipped bundle's name [default: ``sasrec-ml100k``].
        dataset: a name or a folder of atomic files that overrides the dataset recorded in
            the bundle; it is only needed to look up users' histories.

    Returns:
        The model, ready to score.
    """
    return from_bundle(read_bundle(resolve_bundle_path(model)), dataset=dataset)
