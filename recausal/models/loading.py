"""Building a model: from a bundle on disk, or from a RecBole model object held in memory.

:func:`load_model` reads a bundle (a path or a shipped bundle's name) and rebuilds its RecBole
network from the stored parameters (:func:`build_network`); :func:`from_recbole` wraps a live
RecBole model and its dataset.
"""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from recausal.errors import BundleError, InvalidInputError, RecausalError, UnsupportedModelError
from recausal.models.base import SequentialModel
from recausal.models.bundle import CONFIG, WEIGHTS, Bundle, read_bundle, resolve_bundle_path
from recausal.models.bundle_schema import check_parts
from recausal.models.device import check_device, place
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


#: in-place initialisers that a shapes-only build skips (they would only fill meta tensors)
_INITIALISERS = frozenset(
    {
        "normal_",
        "uniform_",
        "trunc_normal_",
        "xavier_normal_",
        "xavier_uniform_",
        "kaiming_normal_",
        "kaiming_uniform_",
        "orthogonal_",
        "constant_",
        "zeros_",
        "ones_",
        "fill_",
        "zero_",
    }
)


class _SkipInitialisers(TorchFunctionMode):
    """Makes weight initialisers no-ops on meta tensors (a shapes-only build needs no values,
    and filling meta tensors would import torch's compiler for nothing)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
        if (
            getattr(func, "__name__", "") in _INITIALISERS
            and isinstance(target, torch.Tensor)
            and target.is_meta
        ):
            return target
        return func(*args, **kwargs)


def build_network(
    model_name: str,
    recbole_params: dict[str, Any],
    n_items: int,
    *,
    shapes_only: bool = False,
    source: str = "the RecBole settings",
) -> torch.nn.Module:
    """Instantiate a RecBole model class from a bundle's stored parameters.

    Args:
        model_name: the RecBole model class name (a key of ``ADAPTERS``).
        recbole_params: the RecBole settings stored in the bundle's ``config.json``.
        n_items: the number of item ids, padding included.
        shapes_only: build on the ``meta`` device: the parameters have their shapes but no
            memory (to check weights against a config before allocating anything).
        source: where the settings come from, named in messages.

    Returns:
        The network, with fresh weights (the global random state is left as it was).

    Raises:
        UnsupportedModelError: recausal has no family for ``model_name``.
        BundleError: RecBole cannot build the network from these settings.
    """
    if model_name not in ADAPTERS:
        raise UnsupportedModelError(
            f"model {model_name!r} is not supported; supported: {', '.join(ADAPTERS)}"
        )
    from recbole.utils import get_model

    config = _ConfigView(recbole_params)
    config["device"] = torch.device("meta" if shapes_only else "cpu")
    item_field = config["ITEM_ID_FIELD"] or "item_id"
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    max_len = max_len if isinstance(max_len, int) and not isinstance(max_len, bool) else 0
    modes = (torch.device("meta"), _SkipInitialisers()) if shapes_only else ()
    try:
        with torch.random.fork_rng(devices=[]), contextlib.ExitStack() as stack:
            for mode in modes:
                stack.enter_context(mode)
            return get_model(model_name)(config, _DatasetView(item_field, n_items, max_len))
    except RecausalError:
        raise
    except Exception as exc:  # RecBole's constructors fail with errors of many types
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise BundleError(
            f"{source} cannot build a {model_name} network: {type(exc).__name__}: {detail}"
        ) from None


def network_shapes(
    model_name: str,
    recbole_params: dict[str, Any],
    n_items: int,
    *,
    source: str = "the RecBole settings",
) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor of the network these settings build.

    Nothing is allocated: the network is built on the ``meta`` device.

    Args:
        model_name: the RecBole model class name.
        recbole_params: its RecBole settings.
        n_items: the number of item ids, padding included.
        source: where the settings come from, named in messages.

    Returns:
        ``state_dict`` key -> shape.

    Raises:
        UnsupportedModelError: recausal has no family for ``model_name``.
        BundleError: RecBole cannot build the network from these settings.
    """
    net = build_network(model_name, recbole_params, n_items, shapes_only=True, source=source)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def weights_mismatch(
    expected: dict[str, tuple[int, ...]], found: dict[str, Any], network: str
) -> str | None:
    """The first difference between a network's tensor shapes and a set of weights.

    Args:
        expected: key -> shape, from :func:`network_shapes`.
        found: key -> tensor (the weights).
        network: the network described in the phrase (e.g. ``"the SASRec network of ..."``).

    Returns:
        ``None`` when both have the same keys and shapes, else a phrase to follow the weights'
        name: ``has no tensor 'k', which NETWORK has``, ``has tensor 'k' of shape (a, b),
        where NETWORK has (c, d)``, ...
    """
    for key in expected:
        if key not in found:
            return f"has no tensor {key!r}, which {network} has"
    for key in found:
        if key not in expected:
            return f"has a tensor {key!r}, which {network} does not have"
    for key, shape in expected.items():
        got = tuple(getattr(found[key], "shape", ()))
        if got != shape:
            return f"has tensor {key!r} of shape {got}, where {network} has {shape}"
    return None


def from_bundle(
    bundle: Bundle, dataset: str | os.PathLike | None = None, *, device: Any = "cpu"
) -> SequentialModel:
    """Build the model of a bundle read by :func:`recausal.models.bundle.read_bundle`.

    The bundle's JSON parts are checked (:mod:`recausal.models.bundle_schema`), then the
    network the config describes is built without memory and its tensor shapes are compared
    with the weights, before the real network is built and the weights loaded.

    Args:
        bundle: the bundle.
        dataset: a dataset (a known name or a folder) that overrides the one recorded in the
            bundle, or ``None``.
        device: where the network runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``
            (see :mod:`recausal.models.device`).

    Returns:
        The model of the bundle's family, with the bundle's weights, on ``device``.

    Raises:
        InvalidInputError: ``bundle`` is not a :class:`Bundle`, ``dataset`` is not a path, or
            ``device`` is not a device name or not available here.
        BundleError: the weights or the item-id map do not fit the bundle's config.
    """
    if not isinstance(bundle, Bundle):
        raise InvalidInputError(
            f"bundle must be a Bundle (from read_bundle); got {type(bundle).__name__}"
        )
    _check_dataset_argument(dataset)
    target = check_device(device)
    check_parts(bundle.path, bundle.config, bundle.items, bundle.meta)
    config_file = bundle.path / CONFIG
    model_name = bundle.model_name
    params, n_items = bundle.config["recbole"], bundle.config["n_items"]
    expected = network_shapes(
        model_name, params, n_items, source=f"bundle file {config_file}'s settings"
    )
    network = f"the {model_name} network that config.json describes (n_items {n_items})"
    problem = weights_mismatch(expected, bundle.state_dict, network)
    if problem is not None:
        raise BundleError(
            f"bundle {bundle.path}: {WEIGHTS} {problem}; the weights and config.json must "
            "come from the same model (family and settings)"
        )
    net = build_network(model_name, params, n_items, source=f"bundle file {config_file}'s settings")
    try:
        net.load_state_dict(bundle.state_dict, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0]
        raise BundleError(f"bundle {bundle.path} weights do not fit its config: {first}") from None
    return ADAPTERS[model_name](
        place(net, target),
        bundle.items,
        name=bundle.path.name,
        meta=bundle.meta,
        path=bundle.path,
        dataset=dataset,
    )


def _check_dataset_argument(dataset: Any) -> None:
    if dataset is None:
        return
    if isinstance(dataset, (str, os.PathLike)):
        text = os.fspath(dataset)
        if isinstance(text, str) and text and "\x00" not in text:
            return
    raise InvalidInputError(
        "dataset must be None, a known dataset's name or a folder of atomic files (a "
        f"non-empty str or os.PathLike); got {type(dataset).__name__} {dataset!r}"[:300]
    )


def from_recbole(
    model: torch.nn.Module, dataset: Any, *, name: str = "", device: Any = "cpu"
) -> SequentialModel:
    """Wrap a RecBole model object and the RecBole dataset it was built for.

    ``model`` is an instance of a supported RecBole sequential model (see ``ADAPTERS``);
    ``dataset`` is its RecBole ``Dataset`` (or a dataloader's ``.dataset``), whose
    ``field2id_token`` gives the item tokens. The adapter holds a copy of the model taken
    now, on ``device``, in eval mode: the caller's model is not changed, and later training
    does not reach the adapter (wrap again after training).

    Args:
        model: the RecBole model.
        dataset: its RecBole dataset.
        name: a name for messages [default: the model's family].
        device: where the copy runs: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns:
        The model of its family, holding a copy of the network on ``device``.

    Raises:
        UnsupportedModelError: ``model`` is not of a supported RecBole family.
        InvalidInputError: ``dataset`` is not the dataset ``model`` was built for, or
            ``device`` is not a device name or not available here.
    """
    target = check_device(device)
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
    net = place(copy.deepcopy(model), target)
    config = getattr(dataset, "config", None)
    folder = config["data_path"] if config is not None else None
    folder = str(folder) if folder and Path(str(folder)).is_dir() else None
    meta = {
        "model": family,
        "source": "in-memory RecBole model (recausal.from_recbole)",
        "dataset": {"name": str(getattr(dataset, "dataset_name", "")), "directory": folder},
    }
    return ADAPTERS[family](net, items, name=name or family, meta=meta, dataset=folder)


def load_model(
    model: str | os.PathLike | None = None, dataset: Any = None, *, device: Any = "cpu"
) -> SequentialModel:
    """Load a model bundle (a path, or a shipped bundle's name such as ``"bert4rec-ml100k"``).

    Args:
        model: the bundle's folder or a shipped bundle's name [default: ``sasrec-ml100k``].
        dataset: a name or a folder of atomic files that overrides the dataset recorded in
            the bundle; it is only needed to look up users' histories.
        device: where the model's forward passes run: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
            ``"mps"``. Scores and attention come back as numpy arrays and are ranked on the
            host (ties: lower item id first), so results match the CPU's up to float
            rounding.

    Returns:
        The model, ready to score.

    Raises:
        InvalidInputError: ``model`` or ``dataset`` is not a path or a name, or ``device``
            is not a device name or not available here (the message names those that are).
        BundleError: the bundle is missing, corrupt, or its parts do not fit each other.
    """
    _check_dataset_argument(dataset)
    target = check_device(device)
    return from_bundle(read_bundle(resolve_bundle_path(model)), dataset=dataset, device=target)
