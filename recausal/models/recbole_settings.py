"""RecBole settings as a bundle keeps them, and replayed to rebuild a dataset's item ids.

A bundle's ``config.json`` holds the JSON-ready part of RecBole's final config
(:func:`model_config_from_recbole`); an imported checkpoint's own settings are replayed in
RecBole to rebuild the item-id map it was trained with (:func:`recbole_item_tokens`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from typing import Any

from recausal.errors import BundleError

# Entries of RecBole's final config that describe the run rather than the model.
_RUN_ONLY_KEYS = {"data_path", "checkpoint_dir", "device", "gpu_id", "use_gpu", "local_rank"}

# Settings that describe the training run (machine, paths), not the data or the model; left
# out when a checkpoint's settings are replayed.
_RUN_SETTINGS = {
    "data_path",
    "checkpoint_dir",
    "device",
    "gpu_id",
    "use_gpu",
    "local_rank",
    "nproc",
    "world_size",
    "offset",
    "ip",
    "port",
    "shuffle",
    "save_dataset",
    "save_dataloaders",
    "dataset_save_path",
    "dataloaders_save_path",
}


def jsonable(value: Any) -> bool:
    """Whether ``value`` can be written as JSON as it is.

    Args:
        value: any value.

    Returns:
        ``True`` when ``json.dumps`` accepts it.
    """
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def bundle_model_config(final: Mapping[str, Any], n_items: int) -> dict[str, Any]:
    """The JSON model config of a bundle, from RecBole's final settings.

    Args:
        final: a RecBole ``Config``'s ``final_config_dict`` (it names the ``model``).
        n_items: the number of item ids, padding included.

    Returns:
        ``{"model", "n_items", "recbole"}``: the settings less run-only, private and
        non-JSON entries.
    """
    params = {
        k: v
        for k, v in final.items()
        if k not in _RUN_ONLY_KEYS and jsonable(v) and not k.startswith("_")
    }
    return {"model": final.get("model"), "n_items": int(n_items), "recbole": params}


def model_config_from_recbole(config: Any, n_items: int) -> dict[str, Any]:
    """The JSON model config of a bundle, taken from a RecBole ``Config``.

    Args:
        config: the RecBole ``Config`` of the run.
        n_items: the number of item ids, padding included.

    Returns:
        See :func:`bundle_model_config`.
    """
    return bundle_model_config(config.final_config_dict, n_items)


def replayable_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's settings made safe to hand to RecBole's ``Config``.

    ``Config`` calls ``eval`` on every string value it is given, so a string from a
    checkpoint is passed as its ``repr``: ``eval`` of a string literal gives back the same
    string and runs nothing. (The strings saved in a checkpoint are already what ``Config``
    made of them, so this changes no value.) Run-only settings are dropped, and the paths
    from which ``create_dataset`` would unpickle a saved dataset are cleared.

    Args:
        settings: the settings recovered from a checkpoint.

    Returns:
        The settings to give ``Config``.
    """
    plain: dict[str, Any] = {}
    for key, value in settings.items():
        if not isinstance(key, str) or key in _RUN_SETTINGS or key.startswith("_"):
            continue
        if not jsonable(value):
            continue
        plain[key] = repr(value) if isinstance(value, str) else value
    plain.update(dataset_save_path=None, dataloaders_save_path=None)
    return plain


def recbole_item_tokens(
    model: str, settings: Mapping[str, Any], dataset: Any
) -> tuple[list[str], Any]:
    """Item tokens in RecBole's internal-id order for ``dataset`` under ``settings``.

    Builds the RecBole dataset exactly as RecBole does for training (same filtering and
    remapping settings) and reads ``field2id_token`` of the item field.

    Args:
        model: the RecBole model class name.
        settings: the checkpoint's settings (see :func:`replayable_settings`).
        dataset: anything :func:`recausal.data.resolve_dataset` accepts.

    Returns:
        The item tokens, and the dataset's :class:`~recausal.data.DatasetFiles`.

    Raises:
        BundleError: RecBole could not build the dataset with these settings.
    """
    from recbole.data import create_dataset

    from recausal._compat import quiet_recbole_dataset_warnings, recbole_config
    from recausal.data import resolve_dataset
    from recausal.models.device import keep_visible_devices

    files = resolve_dataset(dataset)
    config_dict = replayable_settings(settings)
    with tempfile.TemporaryDirectory(prefix="recausal-import-") as scratch:
        config_dict.update(
            data_path=str(files.data_path),
            checkpoint_dir=scratch,
            use_gpu=False,
            device="cpu",
            save_dataset=False,
            save_dataloaders=False,
            show_progress=False,
        )
        try:
            with quiet_recbole_dataset_warnings(), keep_visible_devices():
                config = recbole_config(model, files.name, config_dict)
                built = create_dataset(config)
        except Exception as exc:  # RecBole's own errors are of many types
            raise BundleError(
                f"RecBole could not build dataset {files.name!r} with the checkpoint's "
                f"settings: {type(exc).__name__}: {exc}"
            ) from None
        item_field = config["ITEM_ID_FIELD"]
    return [str(t) for t in built.field2id_token[item_field]], files
