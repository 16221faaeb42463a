"""The use cases shared by the interfaces (command line, HTTP service, offline evaluation).

Each function does one thing an interface offers, the same way everywhere: the history a model
uses, the explainer names, top-k rows with titles, an explanation and its JSON payload, the
causal graph and its drawing. The interfaces only parse their input and shape their output.
Imports here are light; models, explainers and discovery are imported when first used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recausal.errors import InvalidInputError, RecausalError

if TYPE_CHECKING:
    from recausal.causal.pag import PAG
    from recausal.explain import Explanation
    from recausal.models import SequentialModel

__all__ = [
    "NO_DISCOVERY",
    "UsedHistory",
    "causal_graph",
    "check_explainer",
    "check_explainers",
    "default_explainer",
    "discover_function",
    "explain_history",
    "explainer_names",
    "explanation_payload",
    "given_history",
    "graph_svg",
    "recommendation_rows",
    "user_history",
]

#: the message given where causal discovery is not installed
NO_DISCOVERY = "causal discovery (recausal.discovery) is not available here"


# --------------------------------------------------------------------------- histories
@dataclass(frozen=True)
class UsedHistory:
    """A user's history and the part of it the model reads.

    Every interface passes the whole history on: the model reads its most recent ``window``
    items, and explanations remove items from the whole history (older items then slide into
    the window, as they would in production).

    Attributes:
        items: the whole history, oldest first.
        user: the user whose history it is, or ``None`` for a given history.
        window: how many of the most recent items the model reads.
    """

    items: list[str]
    user: str | None = None
    window: int = 0

    @property
    def length(self) -> int:
        """The length of the whole history."""
        return len(self.items)

    @property
    def dropped(self) -> int:
        """How many older items lie outside the model's window."""
        return len(self.items) - self.window


def user_history(model: SequentialModel, user: str | int) -> UsedHistory:
    """A user's whole history in the model's dataset.

    Args:
        model: the model whose dataset holds the user.
        user: the user id.

    Returns:
        The :class:`UsedHistory` (``UnknownUserError`` for an unknown user).
    """
    items = list(model.user_history(str(user)))
    return UsedHistory(items, str(user), min(len(items), model.capacity))


def given_history(model: SequentialModel, items: Sequence[Any]) -> UsedHistory:
    """A history given as item tokens (numbers become strings).

    Args:
        model: the model that will read it.
        items: item tokens, oldest first.

    Returns:
        The :class:`UsedHistory`.
    """
    tokens = [str(t) for t in items]
    return UsedHistory(tokens, None, min(len(tokens), model.capacity))


# --------------------------------------------------------------------------- explainers
def explainer_names() -> list[str]:
    """The names of the registered explainers, in the registry's order.

    Returns:
        The names that :func:`recausal.explain.get_explainer` accepts.
    """
    from recausal.explain import explainer_names as registered

    return list(registered())


def default_explainer() -> str:
    """The explainer used when none is named.

    Returns:
        ``causal`` when it is registered, else ``occlusion``.
    """
    return "causal" if "causal" in explainer_names() else "occlusion"


def check_explainer(name: str | None) -> str:
    """One explainer name, checked against the registry.

    Args:
        name: an explainer name, or ``None`` for :func:`default_explainer`.

    Returns:
        The name.
    """
    name = default_explainer() if name is None else name
    known = explainer_names()
    if name not in known:
        raise InvalidInputError(f"unknown explainer {name!r}; choose one of {', '.join(known)}")
    return name


def check_explainers(explainers: str | Sequence[str]) -> tuple[str, ...]:
    """Several distinct explainer names, checked against the registry.

    Args:
        explainers: comma-separated names, or a sequence of names.

    Returns:
        The names, in the order given.
    """
    names = explainers.split(",") if isinstance(explainers, str) else list(explainers)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise InvalidInputError("explainers: give at least one explainer name")
    known = explainer_names()
    for name in names:
        if name not in known:
            raise InvalidInputError(
                f"explainers: unknown explainer {name!r}; choose from {', '.join(known)}"
            )
    if len(set(names)) != len(names):
        raise InvalidInputError(f"explainers: a name is listed twice in {names}")
    return tuple(names)


# --------------------------------------------------------------------------- recommend
def recommendation_rows(
    model: SequentialModel,
    items: Sequence[str],
    k: int,
    *,
    titles: Mapping[str, str] | None = None,
    exclude_seen: bool | None = None,
) -> list[dict[str, Any]]:
    """The model's top-k items for one history, one row each.

    Args:
        model: the model.
        items: the whole history, oldest first.
        k: how many items.
        titles: item token -> title (default: the model's titles).
        exclude_seen: leave out the items of the history (``None``: the model's default).

    Returns:
        Rows ``{"rank", "item", "title", "score"}``, best first (``title`` is ``None`` when
        the item has none).
    """
    rec = model.recommend([list(items)], k=k, exclude_seen=exclude_seen)[0]
    names = model.titles if titles is None else titles
    return [
        {"rank": rank, "item": item, "title": names.get(item), "score": score}
        for rank, (item, score) in enumerate(zip(rec.items, rec.scores, strict=True), start=1)
    ]


# --------------------------------------------------------------------------- explain
def explain_history(
    model: SequentialModel,
    items: Sequence[str],
    explainer: str,
    *,
    k: int = 10,
    item: str | None = None,
    rank: int | None = None,
    time_budget: float | None = None,
    **params: Any,
) -> Explanation:
    """Explain one recommendation for one history: the top-1, or any item of the top-k.

    Args:
        model: the model.
        items: the whole history, oldest first.
        explainer: a registered explainer name.
        k: the length of the top-k list.
        item: the item token to explain (in the top-k), or ``None``.
        rank: the 1-based rank of the item to explain, or ``None`` (the top-1).
        time_budget: seconds the explanation may search, or ``None`` (no limit); past it, the
            explanation holds what was found so far (``complete`` is False).
        **params: the explainer's parameters (``max_size``, ``removal``, ``exclude_seen``, ...).

    Returns:
        The :class:`~recausal.explain.Explanation`.
    """
    from recausal.explain import get_explainer

    return get_explainer(explainer, **params).explain(
        model, list(items), k=k, item=item, rank=rank, time_budget=time_budget
    )


def explanation_payload(
    explanation: Explanation, titles: Mapping[str, str], *, include_graph: bool = True
) -> dict[str, Any]:
    """The explanation's JSON form with the titles of its history and top-k items.

    Args:
        explanation: the explanation.
        titles: item token -> title.
        include_graph: keep the causal graph, where the explanation has one.

    Returns:
        :meth:`Explanation.to_dict` plus ``titles`` (token -> title, for the items that have one).
    """
    out = explanation.to_dict(include_graph=include_graph)
    shown = {*explanation.history, *explanation.top_k}
    out["titles"] = {t: titles[t] for t in shown if t in titles}
    return out


# --------------------------------------------------------------------------- graph
def discover_function() -> Callable[..., Any] | None:
    """The causal discovery entry point.

    Returns:
        ``recausal.discovery.discover``, or ``None`` where causal discovery is not installed.
    """
    try:
        from recausal.discovery import discover
    except ImportError:
        return None
    return discover if callable(discover) else None


def causal_graph(
    model: SequentialModel,
    items: Sequence[str],
    *,
    head: int | None = None,
    discover: Callable[..., Any] | None = None,
    target: str | None = None,
    exclude_seen: bool | None = None,
    **settings: Any,
) -> PAG:
    """The causal graph (PAG) over the model's window of a history and its recommendation.

    Args:
        model: the model whose attention the graph is learned from.
        items: the whole history, oldest first (the graph is over the window the model reads).
        head: one attention head, or ``None`` for the aggregate over heads.
        discover: the discovery function (default: :func:`discover_function`).
        target: the recommended item the graph is about (default: the top-1 under the
            seen-item policy).
        exclude_seen: the seen-item policy for the default target (``None``: the model's).
        **settings: discovery settings (``algorithm``, ``alpha``, ...).

    Returns:
        The PAG; its last node is the recommended item.
    """
    from recausal.causal.pag import PAG

    learn = discover if discover is not None else discover_function()
    if learn is None:
        raise RecausalError(NO_DISCOVERY)
    if target is None:
        target = model.recommend([list(items)], k=1, exclude_seen=exclude_seen)[0].items[0]
    heads = "aggregate" if head is None else head
    found = learn(model, list(items), heads=heads, target=target, **settings)
    return found if isinstance(found, PAG) else found.pag(head)


def graph_svg(pag: PAG, titles: Mapping[str, str], *, title: str) -> str:
    """The PAG drawn as SVG, each node labelled with its item's title.

    Args:
        pag: the graph.
        titles: item token -> title (an item without one is labelled with its token).
        title: the drawing's title.

    Returns:
        The SVG document.
    """
    from recausal.report.html import node_labels
    from recausal.report.svg import draw_pag

    return draw_pag(pag, title=title, labels=node_labels(pag.items, titles))
