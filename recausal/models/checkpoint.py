"""Training checkpoints that let ``recausal train`` resume where it stopped, without pickle.

A checkpoint directory holds one ``epoch-NNNN.safetensors`` (the model's weights, the best
epoch's weights, the optimizer's tensors and the random-number generators' states) and
``checkpoint.json`` (everything else: epoch counters, the learning curve, the optimizer's
hyper-parameters, the settings digest). The JSON file is replaced last and names its tensor
file with that file's SHA-256, so a run killed at any moment leaves either the previous
checkpoint or the new one, never a mix.

The settings digest leaves out what does not shape the weights (run length, patience, the
device and the number of threads), so a run resumes on another machine; checkpoints written
before the device and threads were left out carry the older digest
(:func:`legacy_settings_digest`), which :func:`load_checkpoint` accepts too.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recausal._io import write_atomic
from recausal.errors import InvalidInputError
from recausal.models.device import device_of

FORMAT = "recausal-train-checkpoint"
_STATE = "checkpoint.json"


@dataclass
class TrainingState:
    """Where a training run stands after a completed epoch.

    Attributes:
        epochs_done: epochs completed so far.
        best_epoch: epoch (0-based) with the best validation score, -1 before any.
        best_score: that score.
        best_valid: all validation metrics of the best epoch.
        stale_evals: evaluations since the best one (early stopping's counter).
        stopped: whether early stopping ended the run.
        history: one entry per epoch: ``{"epoch", "loss", "valid", "seconds"}``.
    """

    epochs_done: int = 0
    best_epoch: int = -1
    best_score: float = float("-inf")
    best_valid: dict[str, float] = field(default_factory=dict)
    stale_evals: int = 0
    stopped: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


#: settings that say how long to run, not what the weights become
_RUN_LENGTH = ("epochs", "stopping_step")
#: settings that say where and how the run executes (the same weights, up to float rounding)
_EXECUTION = ("device", "use_gpu", "gpu_id", "threads")


def _digest(settings: dict[str, Any], left_out: Collection[str]) -> str:
    shaping = {k: v for k, v in settings.items() if k not in left_out}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()


def settings_digest(settings: dict[str, Any]) -> str:
    """A digest of the settings that shape the weights.

    Args:
        settings: the run's settings.

    Returns:
        The SHA-256 of the settings less the run length (``epochs``, ``stopping_step``) and
        the execution settings (``device``, ``use_gpu``, ``gpu_id``, ``threads``).
    """
    return _digest(settings, (*_RUN_LENGTH, *_EXECUTION))


def legacy_settings_digest(settings: dict[str, Any]) -> str:
    """The digest that checkpoints written before the execution settings were left out carry.

    Args:
        settings: the run's settings.

    Returns:
        The SHA-256 of the settings less ``epochs`` and ``stopping_step`` only.
    """
    return _digest(settings, _RUN_LENGTH)


def save_checkpoint(
    directory: Path,
    state: TrainingState,
    digest: str,
    model: Any,
    best_weights: dict[str, Any] | None,
    optimizer: Any,
    generators: dict[str, Any],
) -> None:
    """Write the checkpoint of a completed epoch (see the module docstring for the layout)."""
    import torch
    from safetensors.torch import save

    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, value in model.state_dict().items():
        tensors[f"model/{name}"] = value
    for name, value in (best_weights or {}).items():
        tensors[f"best/{name}"] = value
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in opt["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{index}/{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors["rng/torch"] = torch.get_rng_state()
    device = device_of(model)
    if device.type == "cuda":
        tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
    for name, generator in generators.items():
        tensors[f"rng/{name}"] = generator.get_state()
    np_state = np.random.get_state()
    tensors["rng/numpy"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.int64))
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    weights = directory / f"epoch-{state.epochs_done:04d}.safetensors"
    write_atomic(weights, save(tensors, metadata={"format": FORMAT}))
    record = {
        "format": FORMAT,
        "settings_digest": digest,
        "tensors": weights.name,
        "tensors_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "state": state.__dict__,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
        "rng": {
            "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": _jsonable_random_state(random.getstate()),
            "generators": sorted(generators),
        },
    }
    write_atomic(directory / _STATE, json.dumps(record, indent=1) + "\n")
    for old in directory.glob("epoch-*.safetensors"):
        if old.name != weights.name:
            old.unlink(missing_ok=True)


def load_checkpoint(
    directory: Path,
    digest: str | Collection[str],
    model: Any,
    optimizer: Any,
    generators: dict[str, Any],
) -> tuple[TrainingState, dict[str, Any] | None] | None:
    """Restore model, optimizer and generators from ``directory``; ``None`` when it has none.

    Args:
        directory: the checkpoint folder.
        digest: the settings digest the checkpoint must carry, or several accepted ones.
        model: the model, whose weights are replaced (on whatever device it is).
        optimizer: its optimizer, whose state is replaced.
        generators: named ``torch.Generator`` objects, whose states are replaced.

    Returns:
        The training state and the best epoch's weights (``None`` before any evaluation).

    Raises:
        InvalidInputError: the checkpoint is damaged or belongs to other settings.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = directory / _STATE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        weights = directory / record["tensors"]
        if hashlib.sha256(weights.read_bytes()).hexdigest() != record["tensors_sha256"]:
            raise ValueError(f"{weights.name} does not match its digest")
        tensors = load_file(str(weights))
        state = TrainingState(**record["state"])
    except (OSError, KeyError, TypeError, ValueError, SafetensorError) as exc:
        raise InvalidInputError(
            f"training checkpoint in {directory} is damaged ({exc}); delete the folder to "
            "train from the start"
        ) from None
    accepted = {digest} if isinstance(digest, str) else set(digest)
    if record.get("format") != FORMAT or record.get("settings_digest") not in accepted:
        raise InvalidInputError(
            f"training checkpoint in {directory} was made with other settings; delete it or "
            "choose another --checkpoints folder"
        )
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best/")} or None
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            opt_state.setdefault(int(index), {})[name] = value
    for index, extra in record["optimizer"]["scalars"].items():
        opt_state.setdefault(int(index), {}).update(extra)
    groups = record["optimizer"]["param_groups"]
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng/torch"])
    device = device_of(model)
    if "rng/cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng/cuda"], device)
    for name, generator in generators.items():
        generator.set_state(tensors[f"rng/{name}"])
    kind, pos, has_gauss, cached = record["rng"]["numpy"]
    np.random.set_state(
        (kind, tensors["rng/numpy"].numpy().astype(np.uint32), pos, has_gauss, cached)
    )
    version, internal, gauss = record["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    return state, best


def _jsonable_random_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]
