"""Where a model runs: the ``device`` argument, checked in one place (:func:`check_device`).

A model's forward passes (scoring, attention, differentiable scoring, training) run on its
device; what leaves the model layer (scores, attention probabilities) is a numpy array on the
host, and rankings are made there (:func:`~recausal.models.batch.top_k_ids`: ties go to the
lower item id). Explanations computed on a GPU are therefore those of the CPU up to float
rounding: only where two scores are within rounding of each other can an order differ.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

#: the device names accepted (``cuda:N``: the N-th CUDA device)
DEVICES = ("cpu", "cuda", "cuda:N", "mps")
_NAME = re.compile(r"cpu|cuda|cuda:\d+|mps")


def available_devices() -> list[str]:
    """The devices this machine can run a model on.

    Returns:
        ``cpu``, then ``cuda`` and ``cuda:0``... when CUDA GPUs are usable, then ``mps`` when
        Apple's Metal backend is.
    """
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def _why_not(name: str) -> str:
    """Why device ``name`` (a valid name) is not available here."""
    import torch

    if name == "mps":
        return "this machine has no usable Apple Metal (MPS) backend"
    if not torch.backends.cuda.is_built():
        return "this torch build has no CUDA support"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return f"this machine has {torch.cuda.device_count()} CUDA device(s)"


def check_device(device: Any = "cpu") -> torch.device:
    """Check a device name and that the device can be used here.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (or a ``torch.device`` of
            one of them).

    Returns:
        The ``torch.device``.

    Raises:
        InvalidInputError: ``device`` is not such a name, or the device is not available
            (the message names the devices that are).
    """
    import torch

    name = str(device) if isinstance(device, torch.device) else device
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(f"device must be one of {', '.join(DEVICES)}; got {device!r}"[:300])
    available = available_devices()
    if name not in available:
        raise InvalidInputError(
            f"device {name!r} is not available: {_why_not(name)}; available: {', '.join(available)}"
        )
    return torch.device(name)


def device_of(net: torch.nn.Module) -> torch.device:
    """The device of a network's parameters (the CPU for a network without any).

    Args:
        net: a torch module.

    Returns:
        The device of its first parameter.
    """
    import torch

    first = next(net.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def place(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a RecBole network to ``device``, with its ``device`` attribute (which RecBole's
    models read to create tensors) set to match.

    Args:
        net: the network.
        device: a device checked by :func:`check_device`.

    Returns:
        ``net``, moved.
    """
    net = net.to(device)
    if hasattr(net, "device"):
        net.device = device
    return net


@contextlib.contextmanager
def keep_visible_devices() -> Iterator[None]:
    """While active, ``CUDA_VISIBLE_DEVICES`` may change; it is restored afterwards.

    RecBole's ``Config`` sets it to its ``gpu_id`` setting (``"0"`` by default), which would
    hide the other GPUs from the rest of the process.
    """
    key = "CUDA_VISIBLE_DEVICES"
    saved = os.environ.get(key)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


__all__ = [
    "DEVICES",
    "available_devices",
    "check_device",
    "device_of",
    "keep_visible_devices",
    "place",
]
