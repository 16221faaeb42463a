"""Import a checkpoint written by RecBole's own trainer into a recausal model bundle.

RecBole saves ``torch.save`` pickles of ``{config, epoch, cur_step, best_valid_score,
state_dict, other_parameter, optimizer}``. Unpickling can run arbitrary code, so by default
the file is read by recausal's own restricted reader, not by ``torch.load``
(:mod:`recausal.models.checkpoint_reader`, its unpickler in
:mod:`recausal.models.safe_unpickler`):

* tensors, storages and plain containers are rebuilt by the few functions that do only that
  (``torch._utils._rebuild_tensor_v2``, ``collections.OrderedDict``, numpy scalars, ...),
  each called through a check of its arguments;
* RecBole's own objects (its ``Config``, enum members, the model class) and PyYAML's loader
  class become inert records of their pickled state (:class:`InertObject`): no RecBole or
  PyYAML code runs, and the configuration is recovered as plain data;
* any other global (``os.system``, ``builtins.exec``, a class from another package) is refused
  before anything is called, with a :class:`~recausal.errors.BundleError`.

Nothing the file says can make the reader allocate more than the file could hold. A file that
is not a ``torch.save`` checkpoint (random bytes, an empty file, a damaged archive) is
reported as such; ``--trust-pickle`` is only suggested for a well-formed pickle that names a
global outside the allowed set, the one case where it can help.

``trust_pickle=True`` (``--trust-pickle``) falls back to an ordinary
``torch.load(weights_only=False)`` for checkpoints the restricted reader refuses.

The item-id map is not in the checkpoint: RecBole assigns internal ids when it builds the
dataset. It is rebuilt exactly that way, by building the RecBole dataset from the
checkpoint's own settings and the given atomic files and reading ``field2id_token``
(:func:`recausal.models.recbole_settings.recbole_item_tokens`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recausal.errors import BundleError, UnsupportedModelError
from recausal.models.checkpoint_reader import is_torchscript, read_torch_save
from recausal.models.inert_records import InertObject
from recausal.models.safe_unpickler import NotACheckpointError, RefusedGlobalError, short


@dataclass(frozen=True)
class RecBoleCheckpoint:
    """The parts of a RecBole checkpoint recausal uses, as plain data."""

    path: Path
    sha256: str
    model: str
    final_config: dict[str, Any]
    external_config: dict[str, Any]
    state_dict: dict[str, Any] = field(repr=False)
    epoch: int | None
    best_valid_score: float | None
    reader: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no weights).

        Returns:
            The path, digest, model, dataset, epoch, validation score and reader.
        """
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "model": self.model,
            "dataset": self.final_config.get("dataset"),
            "epoch": self.epoch,
            "best_valid_score": self.best_valid_score,
            "reader": self.reader,
        }


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _config_dicts(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``final_config_dict`` and ``external_config_dict`` of a Config or its inert record."""
    if isinstance(config, InertObject):
        state = config.state if isinstance(config.state, dict) else {}
    else:
        state = getattr(config, "__dict__", {})
    final = state.get("final_config_dict")
    external = state.get("external_config_dict") or {}
    if not isinstance(final, dict) or not isinstance(external, dict):
        raise BundleError("its 'config' entry is not a RecBole Config (no final_config_dict)")
    return dict(final), dict(external)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else short(value if isinstance(value, str) else str(value), 200)


def read_recbole_checkpoint(
    path: str | os.PathLike, *, trust_pickle: bool = False
) -> RecBoleCheckpoint:
    """Read a checkpoint saved by RecBole's trainer.

    Without ``trust_pickle`` no code from the file runs (see the module docstring); a file that
    needs more is refused with a :class:`BundleError` that names the global it asked for.

    Args:
        path: the checkpoint file.
        trust_pickle: read it with plain ``torch.load`` (which can run its code).

    Returns:
        The checkpoint's model name, settings, weights and provenance, as plain data.

    Raises:
        InvalidInputError: ``path`` is not a path.
        BundleError: the file is missing, not a RecBole checkpoint, or refused.
    """
    import torch

    from recausal.models.bundle import bundle_path_argument

    path = bundle_path_argument(path, "path", shipped=False, what="a checkpoint file")
    if not path.is_file():
        raise BundleError(f"checkpoint {path} does not exist")
    try:
        sha256 = _file_sha256(path)
    except OSError as exc:
        raise BundleError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from None
    if not trust_pickle and is_torchscript(path):
        raise BundleError(
            f"{path} is a TorchScript archive, not a RecBole checkpoint; loading it would "
            "run its code, so recausal does not (RecBole checkpoints come from its trainer)"
        )
    try:
        if trust_pickle:
            import recbole  # noqa: F401  (the pickle names RecBole's classes)

            raw = torch.load(path, map_location="cpu", weights_only=False)
            reader = "torch.load (trusted pickle, --trust-pickle)"
        else:
            raw = read_torch_save(path)
            reader = "restricted unpickler (no code from the file run)"
    except RefusedGlobalError as exc:
        raise BundleError(
            f"checkpoint {path} refers to {exc}, which would have to be imported and called "
            "to load it; pickles can run arbitrary code when loaded, so recausal reads "
            "checkpoints with a restricted reader that only rebuilds tensors, plain data and "
            "RecBole's own config records. If you trust this file, import it with "
            "--trust-pickle (trust_pickle=True)"
        ) from None
    except NotACheckpointError as exc:
        raise BundleError(
            f"checkpoint {path} could not be read: it is not a RecBole checkpoint ({exc})"
        ) from None
    except Exception as exc:  # plain torch.load fails on a foreign file in many ways
        raise BundleError(
            f"checkpoint {path} could not be read: {type(exc).__name__}: {short(str(exc))}"
        ) from None
    if not isinstance(raw, dict) or "state_dict" not in raw or "config" not in raw:
        raise BundleError(
            f"{path} is not a RecBole checkpoint (expected a dict with 'config' and "
            "'state_dict', as RecBole's trainer saves)"
        )
    try:
        final, external = _config_dicts(raw["config"])
    except BundleError as exc:
        raise BundleError(f"{path} is not a RecBole checkpoint: {exc}") from None
    state_dict = raw["state_dict"]
    if not isinstance(state_dict, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise BundleError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    other = raw.get("other_parameter")
    if other is not None and not (isinstance(other, (dict, list, tuple)) and len(other) == 0):
        names = ", ".join(map(str, other)) if isinstance(other, (dict, list, tuple)) else other
        raise BundleError(
            f"{path}: the model keeps state outside its weights ({short(names)}), which a "
            "bundle cannot hold"
        )
    model = final.get("model")
    if not isinstance(model, str):
        raise BundleError(f"{path}: the checkpoint's config names no model")
    epoch = raw.get("epoch")
    return RecBoleCheckpoint(
        path=path,
        sha256=sha256,
        model=model,
        final_config=final,
        external_config=external,
        state_dict=dict(state_dict),
        epoch=int(epoch) if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        best_valid_score=_number(raw.get("best_valid_score")),
        reader=reader,
    )


# --------------------------------------------------------------------- import
def import_recbole_checkpoint(
    path: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trust_pickle: bool = False,
) -> Path:
    """Convert a RecBole trainer checkpoint into a recausal bundle at ``out``; return its path.

    The item-id map is rebuilt from ``dataset`` with the checkpoint's settings, and the
    weights must fit it exactly. The settings are checked like a bundle's config.json and the
    network's tensor shapes compared with the checkpoint's before the network is built.

    Args:
        path: the checkpoint (``.pth``) written by RecBole's trainer.
        dataset: the dataset the model was trained on (a folder of atomic files or a known
            name).
        out: the bundle folder to write.
        trust_pickle: read the file with plain ``torch.load`` (which can run its code).

    Returns:
        The bundle's path.

    Raises:
        BundleError: the file is refused or unreadable, or its weights do not fit the dataset.
        UnsupportedModelError: recausal has no family for the checkpoint's model.
    """
    import recbole

    from recausal.models.bundle import CONFIG, bundle_meta, bundle_path_argument, save_bundle
    from recausal.models.bundle_schema import check_config
    from recausal.models.families import ADAPTERS
    from recausal.models.loading import build_network, network_shapes, weights_mismatch
    from recausal.models.recbole_settings import bundle_model_config, recbole_item_tokens

    out = bundle_path_argument(out, "out", shipped=False)
    ckpt = read_recbole_checkpoint(path, trust_pickle=trust_pickle)
    if ckpt.model not in ADAPTERS:
        raise UnsupportedModelError(
            f"checkpoint {ckpt.path} holds a {ckpt.model} model, which recausal cannot run; "
            f"supported: {', '.join(ADAPTERS)}"
        )
    items, files = recbole_item_tokens(ckpt.model, ckpt.external_config, dataset)
    model_config = bundle_model_config(ckpt.final_config, len(items))
    source = f"the settings in checkpoint {ckpt.path}"
    try:
        check_config(model_config, out / CONFIG)
    except BundleError as exc:
        raise BundleError(f"{source} are not a valid model config: {exc}") from None
    expected = network_shapes(ckpt.model, model_config["recbole"], len(items), source=source)
    detail = weights_mismatch(expected, ckpt.state_dict, "the network built for this dataset")
    if detail:
        raise BundleError(
            f"the weights in {ckpt.path} do not fit dataset {files.name!r}: the checkpoint "
            f"{detail} (RecBole gives this dataset {len(items) - 1} items with the "
            f"checkpoint's settings; the checkpoint was trained on "
            f"{short(ckpt.final_config.get('dataset'))}); import it with the dataset it was "
            "trained on"
        )
    net = build_network(ckpt.model, model_config["recbole"], len(items), source=source)
    try:
        net.load_state_dict(ckpt.state_dict, strict=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleError(f"the weights in {ckpt.path} cannot be loaded: {first}") from None
    meta = bundle_meta(
        ckpt.model,
        files,
        imported={
            "from": "RecBole checkpoint",
            "source": str(ckpt.path.resolve()),
            "source_sha256": ckpt.sha256,
            "reader": ckpt.reader,
            "epoch": ckpt.epoch,
            "trained_on": _text_or_none(ckpt.final_config.get("dataset")),
            "recbole_version": recbole.__version__,
        },
        metrics={
            "source": "RecBole checkpoint: validation score of the saved epoch",
            "valid_metric": _text_or_none(ckpt.final_config.get("valid_metric")),
            "best_valid_score": ckpt.best_valid_score,
        },
    )
    return save_bundle(out, net.state_dict(), model_config, items, meta)


__all__ = [
    "InertObject",
    "RecBoleCheckpoint",
    "import_recbole_checkpoint",
    "read_recbole_checkpoint",
]
