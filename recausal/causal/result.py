"""The frozen result of a structure search (ICD or FCI): edge marks, separating sets and
how they were obtained."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from recausal.causal._marks import NONE

__all__ = ["StructureResult"]


def _freeze(marks: np.ndarray) -> np.ndarray:
    a = np.array(marks, dtype=np.int8, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class StructureResult:
    """A learned PAG: its edge marks plus how it was obtained.

    ``marks``: read-only ``int8`` ``(n, n)`` matrix, ``marks[i, j]`` the mark at ``j`` (see
    ``recausal.causal._marks``); ``sepsets``: ``(i, j)`` with ``i < j`` → the separating set
    found for each removed edge; ``n_tests``: CI tests the algorithm consulted (up to the first
    independence per edge and conditioning-set size, as the reference counts them);
    ``max_cond_size_reached``: the largest conditioning-set size for which tests were run;
    ``algorithm``, ``order_aware``, ``params``: provenance.
    """

    marks: np.ndarray
    sepsets: Mapping[tuple[int, int], tuple[int, ...]]
    n_tests: int
    max_cond_size_reached: int
    algorithm: str
    order_aware: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "marks", _freeze(self.marks))
        object.__setattr__(self, "sepsets", MappingProxyType(dict(self.sepsets)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.marks.shape[0])

    @property
    def skeleton(self) -> np.ndarray:
        """Boolean adjacency matrix."""
        return self.marks != NONE

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "algorithm": self.algorithm,
            "order_aware": self.order_aware,
            "n_nodes": self.n_nodes,
            "marks": self.marks.tolist(),
            "sepsets": [[i, j, list(s)] for (i, j), s in sorted(self.sepsets.items())],
            "n_tests": self.n_tests,
            "max_cond_size_reached": self.max_cond_size_reached,
            "params": dict(self.params),
        }

    def to_json(self) -> str:
        """The result as JSON text."""
        return json.dumps(self.to_dict())
