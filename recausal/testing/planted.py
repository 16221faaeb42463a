"""Histories with a planted cause, for tests and benchmarks of explainers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recausal.data import PlantedDataset
    from recausal.models import SequentialModel


def planted_histories(
    model: SequentialModel, planted: PlantedDataset, n: int = 24, seed: int = 3
) -> list[list[str]]:
    """Histories of random fillers ending with a planted cause.

    A model that learned the planted rule recommends that cause's effect, and the true
    explanation is the last item.

    Args:
        model: a model trained on ``planted``.
        planted: the planted dataset's description.
        n: how many histories; the causes are used in turn.
        seed: the seed of the fillers.

    Returns:
        ``n`` histories of 5 to 9 item tokens, oldest first.
    """
    rng = np.random.default_rng(seed)
    fillers = [t for t in model.items[1:] if t not in planted.causes | planted.effects]
    causes = sorted(planted.causes)
    return [
        [*rng.choice(fillers, size=int(rng.integers(4, 9))).tolist(), causes[i % len(causes)]]
        for i in range(n)
    ]
