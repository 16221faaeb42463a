"""How graphs are learned from attention: one settings object, its model-dependent
defaults resolved once, and which heads to learn from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from recausal._checks import is_int
from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.models import SequentialModel

Algorithm = Literal["icd", "fci"]
Heads = Literal["aggregate", "each", "all"] | int


@dataclass(frozen=True)
class DiscoverySettings:
    """How graphs are learned from attention (shared by :func:`discover` and the explainer).

    Args:
        algorithm: ``"icd"`` or ``"fci"``.
        alpha: Fisher-z significance level, in (0, 1).
        n_samples: effective sample size (default: the model's hidden size).
        order_aware: use token order as background knowledge (default: only for
            left-to-right attention, i.e. SASRec).
        max_cond_size: cap on the conditioning-set size (``None``: no cap).
        layer: which transformer layer's attention (default: the deepest).

    Example:
        >>> DiscoverySettings(alpha=0.05).resolve(model).n_samples  # doctest: +SKIP
        64
    """

    algorithm: Algorithm = "icd"
    alpha: float = 0.01
    n_samples: int | None = None
    order_aware: bool | None = None
    max_cond_size: int | None = None
    layer: int = -1

    def __post_init__(self) -> None:
        if self.algorithm not in ("icd", "fci"):
            raise InvalidInputError(f"algorithm must be 'icd' or 'fci', got {self.algorithm!r}")
        if not 0 < self.alpha < 1:
            raise InvalidInputError(f"alpha must be in (0, 1), got {self.alpha!r}")

    def resolve(self, model: SequentialModel) -> DiscoverySettings:
        """These settings with the model-dependent defaults filled in.

        Args:
            model: the model whose attention is read.

        Returns:
            A copy whose ``n_samples`` and ``order_aware`` are set.
        """
        return replace(
            self,
            n_samples=self.n_samples or model.hidden_size,
            order_aware=model.causal_attention if self.order_aware is None else self.order_aware,
        )

    def check_resolved(self) -> None:
        """Raise :class:`InvalidInputError` unless ``n_samples`` and ``order_aware`` are set."""
        if self.n_samples is None or self.order_aware is None:
            raise InvalidInputError(
                "n_samples and order_aware must be set: use settings.resolve(model) first"
            )

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return asdict(self)


def heads_to_learn(heads: Heads, n_heads: int) -> tuple[list[int], bool]:
    """What ``heads`` asks for, for a model with ``n_heads`` attention heads.

    Args:
        heads: ``"all"`` (each head and the aggregate), ``"each"``, ``"aggregate"`` or one
            head's index.
        n_heads: the number of heads of the attention layer.

    Returns:
        The head indices to learn one graph each from, and whether to learn the aggregate.
    """
    if is_int(heads):
        if not 0 <= heads < n_heads:
            raise InvalidInputError(f"head must be in [0, {n_heads - 1}], got {heads}")
        return [int(heads)], False
    if heads in ("each", "all"):
        return list(range(n_heads)), heads == "all"
    if heads == "aggregate":
        return [], True
    raise InvalidInputError(
        f"heads must be 'aggregate', 'each', 'all' or a head index, got {heads!r}"
    )
