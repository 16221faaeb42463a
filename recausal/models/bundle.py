"""Model bundles: a directory holding everything needed to run a trained recommender.

Layout (format version 1)::

    BUNDLE/
      model.safetensors   weights; safetensors cannot run code when loaded
      config.json         model family and architecture parameters
      items.json          external item tokens; list index = RecBole's internal id (0 = padding)
      meta.json           dataset (name, fingerprint), metrics, training settings, versions

No file in a bundle is ever unpickled. Bundles shipped inside the package are found by name
(:func:`resolve_bundle_path`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recausal._io import remove_path, staging_folder, write_atomic
from recausal._version import __version__
from recausal.errors import BundleError, InvalidInputError, OutputError
from recausal.models.bundle_schema import (
    FORMAT,
    FORMAT_VERSION,
    check_config,
    check_items,
    check_meta,
    check_parts,
)

if TYPE_CHECKING:
    from recausal.data import DatasetFiles

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ITEMS = "items.json"
META = "meta.json"
_PICKLE_SUFFIXES = (".pth", ".pt", ".pkl", ".pickle", ".bin", ".ckpt")

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "bundles"
DEFAULT_MODEL = "sasrec-ml100k"


def shipped_models() -> list[str]:
    """Names of the bundles shipped inside the package.

    Returns:
        The names, sorted (empty when the package ships none).
    """
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_DIR.iterdir() if (p / META).is_file())


def resolve_bundle_path(model: str | os.PathLike | None) -> Path:
    """A bundle path from a path or a shipped bundle's name.

    Args:
        model: a bundle folder, a shipped bundle's name, or ``None`` (the SASRec ml-100k one).

    Returns:
        The shipped bundle's folder when ``model`` names one and is no existing path, else
        ``model`` as a path.
    """
    if model is None:
        model = DEFAULT_MODEL
    path = bundle_path_argument(model, "model")
    if not path.exists() and (SHIPPED_DIR / str(model)).is_dir():
        return SHIPPED_DIR / str(model)
    return path


def bundle_path_argument(
    value: Any, name: str, *, shipped: bool = True, what: str = "a bundle folder"
) -> Path:
    """``value`` as a path, or an :class:`InvalidInputError` naming the argument.

    Args:
        value: what the caller passed (a ``str`` or ``os.PathLike``).
        name: the argument's name, used in the message.
        shipped: whether a shipped bundle's name is also accepted (said in the message).
        what: what the path must lead to, used in the message.

    Returns:
        The path.
    """
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, str) and text and "\x00" not in text:
            return Path(text)
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    names = ", ".join(shipped_models()) or "none shipped"
    allowed = f" or a shipped bundle's name ({names})" if shipped else ""
    raise InvalidInputError(
        f"{name} must be {what} (a non-empty str or os.PathLike){allowed}; "
        f"got {type(value).__name__} {shown}"
    )


@dataclass(frozen=True)
class Bundle:
    """A bundle read from disk: weights as tensors plus its JSON parts."""

    path: Path
    config: dict[str, Any]
    items: list[str]
    meta: dict[str, Any]
    state_dict: dict[str, Any] = field(repr=False)

    @property
    def model_name(self) -> str:
        """RecBole model class name, e.g. ``"SASRec"``."""
        return str(self.config["model"])


def weights_digest(path: Path) -> str:
    """SHA-256 of the weights file (recorded in meta.json, checked on load).

    Args:
        path: the weights file.

    Returns:
        The hex digest.
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def bundle_meta(
    model: str,
    files: DatasetFiles,
    *,
    dataset_extra: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The metadata of a new bundle: what wrote it and when, the model, and its dataset.

    Args:
        model: the RecBole model class name.
        files: the dataset the model was trained on (its name, folder and fingerprint are
            recorded; the fingerprint is computed now).
        dataset_extra: more entries of the ``dataset`` section, after those.
        **sections: the sections that follow, in order (``training``, ``imported``,
            ``metrics``, ...).

    Returns:
        The ``meta`` to give :func:`save_bundle`.
    """
    return {
        "recausal_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": model,
        "dataset": {
            "name": files.name,
            "directory": str(files.directory.resolve()),
            "fingerprint": files.fingerprint(),
            **(dataset_extra or {}),
        },
        **sections,
    }


def save_bundle(
    path: str | os.PathLike,
    state_dict: dict[str, Any],
    config: dict[str, Any],
    items: list[str],
    meta: dict[str, Any],
) -> Path:
    """Write a bundle directory atomically (a half-written bundle is never left at ``path``).

    Args:
        path: the bundle folder; an existing one is replaced.
        state_dict: the network's weights.
        config: the model config (``model``, ``n_items``, ``recbole`` settings).
        items: the item tokens by internal id.
        meta: the metadata (see :func:`bundle_meta`); the format and weights digest are added.

    Returns:
        ``path``.

    Raises:
        InvalidInputError: an argument is of the wrong type.
        BundleError: ``config``, ``items`` or ``meta`` would make an invalid bundle (nothing
            is written).
        OutputError: ``path`` cannot be written.
    """
    from safetensors.torch import save

    path = bundle_path_argument(path, "path", shipped=False)
    for name, value in (("state_dict", state_dict), ("meta", meta)):
        if not isinstance(value, Mapping):
            raise InvalidInputError(f"{name} must be a mapping; got {type(value).__name__}")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    check_config(config, path / CONFIG)
    check_items(items, path / ITEMS)
    staging = staging_folder(path)
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        # Serialised here and written by write_atomic: safetensors' own save_file creates
        # the file with mode 0600 whatever the umask.
        write_atomic(staging / WEIGHTS, save(tensors, metadata={"format": FORMAT}))
        meta["weights_sha256"] = weights_digest(staging / WEIGHTS)
        check_parts(path, config, items, meta)
        for name, obj in ((CONFIG, config), (ITEMS, items), (META, meta)):
            write_atomic(staging / name, json.dumps(obj, indent=2) + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.{secrets.token_hex(6)}.old")
            os.replace(path, old)
            os.replace(staging, path)
            remove_path(old, ignore=OSError)
        else:
            os.replace(staging, path)
    except OSError as exc:
        remove_path(staging, ignore=OSError)
        raise OutputError(f"cannot write bundle {path}: {exc.strerror or exc}") from None
    except BaseException:
        remove_path(staging, ignore=OSError)
        raise
    return path


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise BundleError(f"bundle {path.parent} has no {path.name} ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"bundle file {path} is corrupt: {exc}") from None
    except RecursionError:
        raise BundleError(f"bundle file {path} is corrupt: its JSON nests too deeply") from None
    except OSError as exc:
        raise BundleError(f"bundle file {path} cannot be read: {exc.strerror or exc}") from None


def read_bundle(path: str | os.PathLike) -> Bundle:
    """Read and check a bundle; every problem is a :class:`BundleError` naming the file.

    The JSON parts are checked by :mod:`recausal.models.bundle_schema` (types, ranges, distinct
    item tokens, ``items.json`` as long as ``n_items``); whether the weights fit the config is
    checked when the network is built (:func:`recausal.models.loading.from_bundle`).

    Args:
        path: the bundle folder.

    Returns:
        The bundle, its weights loaded.

    Raises:
        InvalidInputError: ``path`` is not a path.
        BundleError: the bundle is missing, incomplete, corrupt or inconsistent.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = bundle_path_argument(path, "path")
    if not path.is_dir():
        raise BundleError(f"no model bundle at {path} (expected a directory with {WEIGHTS})")
    weights = path / WEIGHTS
    if not weights.is_file():
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        hint = (
            f"; found {', '.join(pickles)}, a pickle, which recausal never loads because it "
            "can run code (convert a RecBole checkpoint with `recausal import-recbole`)"
            if pickles
            else ""
        )
        raise BundleError(f"bundle {path} has no {WEIGHTS}{hint}")
    meta = check_meta(_read_json(path / META, "metadata"), path / META)
    expected = meta.get("weights_sha256")
    if expected and weights_digest(weights) != expected:
        raise BundleError(f"{weights} does not match the digest in meta.json (corrupt or edited)")
    try:
        state_dict = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise BundleError(f"{weights} is not a valid safetensors file: {exc}") from None
    config = _read_json(path / CONFIG, "model configuration")
    items = _read_json(path / ITEMS, "item-id map")
    check_parts(path, config, items, meta)
    return Bundle(path=path, config=config, items=items, meta=meta, state_dict=state_dict)
