"""Import a checkpoint written by RecBole's own trainer into a recausal model bundle.

RecBole saves ``torch.save`` pickles of ``{config, epoch, cur_step, best_valid_score,
state_dict, other_parameter, optimizer}``. Unpickling can run arbitrary code, so by default
the file is read with a restricted unpickler:

* tensors, storages and plain containers are rebuilt by the few functions that do only that
  (``torch._utils._rebuild_tensor_v2``, ``collections.OrderedDict``, numpy scalars, ...);
* RecBole's own objects (its ``Config``, enum members, the model class) and PyYAML's loader
  class become inert records of their pickled state: no RecBole or PyYAML code runs, and the
  configuration is recovered as plain data;
* any other global (``os.system``, ``builtins.exec``, a class from another package) is refused
  before anything is called, with a :class:`~recausal.errors.BundleError`.

``trust_pickle=True`` (``--trust-pickle``) falls back to an ordinary
``torch.load(weights_only=False)`` for checkpoints the restricted reader cannot handle.

The item-id map is not in the checkpoint: RecBole assigns internal ids when it builds the
dataset. It is rebuilt exactly that way, by building the RecBole dataset from the
checkpoint's own settings and the given atomic files and reading ``field2id_token``
(:func:`recausal.models.recbole_settings.recbole_item_tokens`).
"""

from __future__ import annotations

import codecs
import collections
import hashlib
import io
import os
import pickle
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recausal.errors import BundleError, UnsupportedModelError

#: modules whose globals become inert records (their pickled state is kept, no code runs)
INERT_PACKAGES = ("recbole", "yaml")


# --------------------------------------------------------------------- restricted unpickling
class InertObject:
    """A pickled object whose class was not imported: it only records what it was given.

    ``global_name`` is the ``module.qualname`` the pickle named, ``args`` what a pickled call
    passed, ``state`` what the pickle restored with ``BUILD`` (an object's ``__dict__``).
    """

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


def _inert_class(module: str, name: str) -> type[InertObject]:
    key = (module, name)
    if key not in _INERT_CLASSES:
        _INERT_CLASSES[key] = type(
            f"Inert[{module}.{name}]", (InertObject,), {"global_name": f"{module}.{name}"}
        )
    return _INERT_CLASSES[key]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it (text → latin-1 bytes), nothing else."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise RefusedGlobalError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import numpy as np
    import torch

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("builtins", "range"): range,
        ("builtins", "bytearray"): bytearray,
        ("_codecs", "encode"): _latin1_encode,  # how pickle protocol 2 stores bytes
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch", "device"): torch.device,
        ("torch", "Size"): torch.Size,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "scalar")] = multiarray.scalar
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
    return allowed


class RefusedGlobalError(BundleError):
    """A pickle names a global that the restricted reader will not import."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds tensors and plain data and never imports code it could run."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        """Allowed rebuild functions, inert records for RecBole/PyYAML, refusal otherwise."""
        if SafeUnpickler._allowed is None:
            SafeUnpickler._allowed = _allowed_globals()
        found = SafeUnpickler._allowed.get((module, name))
        if found is not None:
            return found
        if module == "torch":
            import torch

            value = getattr(torch, name, None)
            if isinstance(value, torch.dtype):
                return value
        if module.split(".")[0] in INERT_PACKAGES:
            return _inert_class(module, name)
        raise RefusedGlobalError(f"{module}.{name}")


def _safe_load(file: Any, **kwargs: Any) -> Any:
    return SafeUnpickler(file, **kwargs).load()


def _safe_loads(data: bytes, **kwargs: Any) -> Any:
    return SafeUnpickler(io.BytesIO(data), **kwargs).load()


#: a ``pickle_module`` for ``torch.load`` that reads with :class:`SafeUnpickler`
safe_pickle = types.ModuleType("recausal_safe_pickle")
safe_pickle.Unpickler = SafeUnpickler  # type: ignore[attr-defined]
safe_pickle.load = _safe_load  # type: ignore[attr-defined]
safe_pickle.loads = _safe_loads  # type: ignore[attr-defined]
safe_pickle.__doc__ = "pickle, restricted to tensors, plain data and inert RecBole records"


# --------------------------------------------------------------------- reading a checkpoint
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
        """JSON-ready summary (no weights)."""
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


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript zip, which ``torch.load`` would hand to ``jit.load``."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


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
    except (TypeError, ValueError):
        return None


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
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"checkpoint {path} does not exist")
    sha256 = _file_sha256(path)
    if not trust_pickle and _is_torchscript(path):
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
            raw = torch.load(
                path, map_location="cpu", weights_only=False, pickle_module=safe_pickle
            )
            reader = "restricted unpickler (no code from the file run)"
    except RefusedGlobalError as exc:
        raise BundleError(
            f"checkpoint {path} refers to {exc}, which would have to be imported and called "
            "to load it; pickles can run arbitrary code when loaded, so recausal reads "
            "checkpoints with a restricted reader that only rebuilds tensors, plain data and "
            "RecBole's own config records. If you trust this file, import it with "
            "--trust-pickle (trust_pickle=True)"
        ) from None
    except Exception as exc:  # any failure reading a foreign file is a BundleError
        hint = "" if trust_pickle else " (a checkpoint the restricted reader cannot handle "
        hint += "" if trust_pickle else "may load with --trust-pickle if you trust it)"
        raise BundleError(
            f"checkpoint {path} could not be read: {type(exc).__name__}: {exc}{hint}"
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
    if raw.get("other_parameter"):
        raise BundleError(
            f"{path}: the model keeps state outside its weights "
            f"({', '.join(map(str, raw['other_parameter']))}), which a bundle cannot hold"
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
        epoch=int(epoch) if isinstance(epoch, int) else None,
        best_valid_score=_number(raw.get("best_valid_score")),
        reader=reader,
    )


# --------------------------------------------------------------------- import
def _state_dict_mismatch(expected: dict[str, Any], found: dict[str, Any]) -> str:
    """A description of the first difference between two state dicts ('' when they fit)."""
    missing = sorted(set(expected) - set(found))
    if missing:
        return f"the checkpoint has no {missing[0]!r}"
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        return f"the checkpoint has an unexpected {unexpected[0]!r}"
    for key, tensor in expected.items():
        if tuple(tensor.shape) != tuple(found[key].shape):
            return (
                f"{key} has shape {tuple(found[key].shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} for this dataset"
            )
    return ""


def import_recbole_checkpoint(
    path: str | os.PathLike,
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    *,
    trust_pickle: bool = False,
) -> Path:
    """Convert a RecBole trainer checkpoint into a recausal bundle at ``out``; return its path.

    The item-id map is rebuilt from ``dataset`` with the checkpoint's settings, and the
    weights must fit it exactly.

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

    from recausal.models.bundle import bundle_meta, save_bundle
    from recausal.models.families import ADAPTERS
    from recausal.models.loading import build_network
    from recausal.models.recbole_settings import bundle_model_config, recbole_item_tokens

    ckpt = read_recbole_checkpoint(path, trust_pickle=trust_pickle)
    if ckpt.model not in ADAPTERS:
        raise UnsupportedModelError(
            f"checkpoint {ckpt.path} holds a {ckpt.model} model, which recausal cannot run; "
            f"supported: {', '.join(ADAPTERS)}"
        )
    items, files = recbole_item_tokens(ckpt.model, ckpt.external_config, dataset)
    model_config = bundle_model_config(ckpt.final_config, len(items))
    net = build_network(ckpt.model, model_config["recbole"], len(items))
    detail = _state_dict_mismatch(net.state_dict(), ckpt.state_dict)
    if detail:
        raise BundleError(
            f"the weights in {ckpt.path} do not fit dataset {files.name!r}: {detail} "
            f"(RecBole gives this dataset {len(items) - 1} items with the checkpoint's settings; "
            f"the checkpoint was trained on {ckpt.final_config.get('dataset')!r}); import it "
            "with the dataset it was trained on"
        )
    net.load_state_dict(ckpt.state_dict, strict=True)
    meta = bundle_meta(
        ckpt.model,
        files,
        imported={
            "from": "RecBole checkpoint",
            "source": str(ckpt.path.resolve()),
            "source_sha256": ckpt.sha256,
            "reader": ckpt.reader,
            "epoch": ckpt.epoch,
            "trained_on": ckpt.final_config.get("dataset"),
            "recbole_version": recbole.__version__,
        },
        metrics={
            "source": "RecBole checkpoint: validation score of the saved epoch",
            "valid_metric": ckpt.final_config.get("valid_metric"),
            "best_valid_score": ckpt.best_valid_score,
        },
    )
    return save_bundle(out, net.state_dict(), model_config, items, meta)


__all__ = [
    "InertObject",
    "RecBoleCheckpoint",
    "import_recbole_checkpoint",
    "read_recbole_checkpoint",
    "safe_pickle",
]
