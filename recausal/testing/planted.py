"""Histories with a planted cause, for tests and benchmarks of explainers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.data import PlantedDataset
    from recausal.models import SequentialModel


def planted_histories(
    model: SequentialModel,
    planted: PlantedDataset,
    n: int = 24,
    seed: int = 3,
    lag: int = 1,
) -> list[list[str]]:
    """Histories of random fillers with one planted cause, ``lag`` positions from the end.

    The cause is the history's only cause (every other item is a filler), and ``lag - 1``
    fillers follow it; its effect has not come, so the cause is still pending (see
    :mod:`recausal.data.synthetic`). A model that learned the planted rule recommends that
    cause's effect, and the true explanation is the cause alone. ``lag=1`` puts the cause last.

    Args:
        model: a model trained on ``planted``.
        planted: the planted dataset's description.
        n: how many histories; the causes are used in turn.
        seed: the seed of the fillers.
        lag: the cause's distance from the end (1: the last item), in
            ``[1, planted.max_lag]``.

    Returns:
        ``n`` histories of ``4 + lag`` to ``8 + lag`` item tokens, oldest first.

    Raises:
        InvalidInputError: ``lag`` outside ``[1, planted.max_lag]`` (no effect is due then).
    """
    if isinstance(lag, bool) or not isinstance(lag, int) or not 1 <= lag <= planted.max_lag:
        raise InvalidInputError(
            f"lag={lag!r} is not allowed; lag must be an int in [1, max_lag="
            f"{planted.max_lag}] (the planted dataset's window, after which no effect is due)"
        )
    rng = np.random.default_rng(seed)
    fillers = [t for t in model.items[1:] if t not in planted.causes | planted.effects]
    causes = sorted(planted.causes)
    out = []
    for i in range(n):
        drawn = rng.choice(fillers, size=int(rng.integers(4, 9)) + lag - 1).tolist()
        at = len(drawn) - (lag - 1)
        out.append([*drawn[:at], causes[i % len(causes)], *drawn[at:]])
    return out
