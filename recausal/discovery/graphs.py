"""The result of discovery for one history: its learned structures, turned into PAGs and
PDS trees only when asked for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recausal.causal import PAG
from recausal.discovery.settings import DiscoverySettings
from recausal.discovery.structures import Structures
from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.causal import PDSTree, StructureResult


def structure_to_pag(
    result: StructureResult,
    items: Sequence[str],
    settings: DiscoverySettings,
    head: int | None = None,
) -> PAG:
    """The PAG of one learned structure, with its items, separating sets and meta.

    Args:
        result: a structure from :func:`learn_structures`.
        items: one token per node: the history, then the target.
        settings: the resolved settings it was learned with (recorded in ``meta``).
        head: the head it was learned from (``None``: the aggregate).

    Returns:
        The :class:`~recausal.causal.PAG`.
    """
    settings.check_resolved()
    if len(items) != result.n_nodes:
        raise InvalidInputError(
            f"items has {len(items)} entries but the structure has {result.n_nodes} nodes"
        )
    meta = {
        **settings.to_dict(),
        "heads": "aggregate" if head is None else head,
        "n_tests": int(result.n_tests),
        "max_cond_size_reached": int(result.max_cond_size_reached),
    }
    return PAG.from_structure(result.marks, items, result.sepsets, meta)


@dataclass(frozen=True, eq=False)
class Discovery:
    """The graphs learned for one history: per head and/or the aggregate over heads.

    PAGs and PDS trees are built on first use and kept.

    Example:
        >>> found = recausal.discover(model, history)  # doctest: +SKIP
        >>> found.pag().edges()[:1], found.pag(0).n_nodes  # doctest: +SKIP
        ([(3, 5, 'o->')], 6)
    """

    history: tuple[str, ...]
    target: str
    attention: np.ndarray = field(repr=False)
    structures: Structures = field(repr=False)
    settings: DiscoverySettings = field(default_factory=DiscoverySettings)
    _cache: dict[tuple[str, int | None], Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def head_ids(self) -> tuple[int, ...]:
        """The heads a graph was learned from, in the order of :attr:`heads`."""
        return self.structures.head_ids

    @property
    def keys(self) -> tuple[int | None, ...]:
        """Every learned graph's key for :meth:`pag`: head indices, then ``None`` (aggregate)."""
        return self.structures.keys

    @property
    def heads(self) -> tuple[PAG, ...]:
        """The per-head graphs, in the order of :attr:`head_ids`."""
        return tuple(self.pag(h) for h in self.head_ids)

    @property
    def aggregate(self) -> PAG | None:
        """The aggregate graph, or ``None`` when it was not learned."""
        return None if self.structures.aggregate is None else self.pag()

    def pag(self, head: int | None = None) -> PAG:
        """One learned graph.

        Args:
            head: a head's index, or ``None`` for the aggregate graph.

        Returns:
            The :class:`~recausal.causal.PAG` over the history and the target (the last node).
        """
        result = self.structures.get(head)
        if ("pag", head) not in self._cache:
            items = (*self.history, self.target)
            self._cache["pag", head] = structure_to_pag(result, items, self.settings, head)
        return self._cache["pag", head]

    def pds_tree(self, head: int | None = None) -> PDSTree:
        """The possible-d-separation tree rooted at the target of one learned graph.

        Args:
            head: a head's index, or ``None`` for the aggregate graph.

        Returns:
            The tree (the same as ``self.pag(head).pds_tree()``, built without items).
        """
        result = self.structures.get(head)
        if ("tree", head) not in self._cache:
            pag = self._cache.get(("pag", head))
            bare = PAG.from_structure(result.marks) if pag is None else pag
            self._cache["tree", head] = bare.pds_tree()
        return self._cache["tree", head]
