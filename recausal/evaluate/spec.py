"""What an evaluation computes: explainers and settings (what a resumed run must match)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from recausal._checks import check_int
from recausal.errors import InvalidInputError
from recausal.usecases import check_explainers

DEFAULT_EXPLAINERS: tuple[str, ...] = ("causal", "attention", "recency", "occlusion", "random")
ENGINES: tuple[str, ...] = ("local", "ray")
REMOVALS: tuple[str, ...] = ("delete", "pad")


@dataclass(frozen=True)
class JobSpec:
    """Everything that decides the rows of an evaluation."""

    explainers: tuple[str, ...]
    max_size: int
    k: int
    removal: str
    seed: int
    deletion_max: int
    chunk_size: int
    #: the seen-item policy (``None``: the model's default)
    exclude_seen: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict.

        Returns:
            The fields, with ``explainers`` as a list.
        """
        out = asdict(self)
        out["explainers"] = list(self.explainers)
        return out


def job_spec(
    explainers: str | Sequence[str],
    *,
    max_size: int,
    k: int,
    removal: str,
    seed: int,
    deletion_max: int,
    chunk_size: int,
    exclude_seen: bool | None = None,
) -> JobSpec:
    """The checked spec of an evaluation.

    Args:
        explainers: comma-separated names or a sequence of registered explainer names.
        max_size: the largest explanation set tried.
        k: the size of the original top-k list.
        removal: ``delete`` or ``pad``.
        seed: the seed of the explainers.
        deletion_max: the longest deletion curve (top-m removed, m = 1..deletion_max).
        chunk_size: users per saved chunk.
        exclude_seen: leave the users' own items out of the recommendations (``None``: the
            model's default).

    Returns:
        The :class:`JobSpec` (``InvalidInputError`` naming the first bad argument).
    """
    spec = JobSpec(
        explainers=check_explainers(explainers),
        max_size=check_int(max_size, "max_size", minimum=1),
        k=check_int(k, "k", minimum=1),
        removal=str(removal),
        seed=int(seed),
        deletion_max=check_int(deletion_max, "deletion_max", minimum=1),
        chunk_size=check_int(chunk_size, "chunk_size", minimum=1),
        exclude_seen=exclude_seen,
    )
    if exclude_seen is not None and not isinstance(exclude_seen, bool):
        raise InvalidInputError(f"exclude_seen must be True, False or None; got {exclude_seen!r}")
    if spec.removal not in REMOVALS:
        raise InvalidInputError(f"removal must be 'delete' or 'pad', got {removal!r}")
    return spec


def check_engine(engine: str, workers: int, address: str | None = None) -> int:
    """Check the engine, the number of workers and the Ray address.

    Args:
        engine: one of :data:`ENGINES`.
        workers: local worker processes, or Ray tasks in flight.
        address: a Ray cluster's address (``engine="ray"`` only).

    Returns:
        ``workers`` as an int.
    """
    workers = check_int(workers, "workers", minimum=1)
    if engine not in ENGINES:
        raise InvalidInputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if address is not None and not isinstance(address, str):
        raise InvalidInputError(f"address must be a string (HOST:PORT), got {address!r}")
    if address and engine != "ray":
        raise InvalidInputError(f"address {address!r} is for engine='ray', not {engine!r}")
    return workers
