"""The model's dataset: its users' histories, its items' titles, and the seen-item policy
that follows from whether the dataset repeats interactions.

:class:`ModelDataset` is a part of the model contract (:class:`~recausal.models.SequentialModel`
inherits it); the histories and titles come from the data layer (:mod:`recausal.data`), read
on first use.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from recausal.errors import InvalidInputError, RecausalError, UnknownUserError


class ModelDataset:
    """What a model knows of the dataset whose users it serves."""

    #: a name for messages, the bundle's metadata and the dataset given to ``load_model``
    #: (all set by the model)
    name: str
    meta: dict[str, Any]
    _dataset: Any

    @cached_property
    def repeated_interactions(self) -> bool | None:
        """Whether a user can interact with the same item again in the model's dataset.

        Recorded in the bundle at training time (``meta["dataset"]["repeated_interactions"]``);
        for an older bundle it is found from the dataset's histories, and it is ``None`` when
        neither is available.
        """
        recorded = (self.meta.get("dataset") or {}).get("repeated_interactions")
        if isinstance(recorded, bool):
            return recorded
        try:
            histories = self._user_histories
        except RecausalError:
            return None
        return any(len(set(h)) < len(h) for h in histories.values())

    @property
    def excludes_seen(self) -> bool:
        """The default seen-item policy: leave out the items of a user's history when the
        dataset has no repeated interactions (nobody rates a film twice), keep them when it
        has them or when that is unknown."""
        return self.repeated_interactions is False

    def seen_policy(self, exclude_seen: bool | None) -> bool:
        """Resolve a seen-item option: ``None`` means the model's default.

        Args:
            exclude_seen: ``True``/``False`` to force the policy, ``None`` for
                :attr:`excludes_seen`.

        Returns:
            Whether the items of the history are left out of the recommendations.
        """
        if exclude_seen is None:
            return self.excludes_seen
        if not isinstance(exclude_seen, bool):
            raise InvalidInputError(
                f"exclude_seen must be True, False or None; got {exclude_seen!r}"
            )
        return exclude_seen

    @cached_property
    def _user_histories(self) -> dict[str, list[str]]:
        from recausal.data import dataset_histories

        return dataset_histories(self.dataset_name)

    @property
    def dataset_name(self) -> str:
        """The dataset (a known name or a folder) whose users this model serves.

        The one given to ``load_model``, else a known name recorded in the bundle (such as
        ``ml-100k``), else the folder recorded at training time.
        """
        from recausal.data import recorded_dataset

        return recorded_dataset(self.meta, self._dataset)

    @cached_property
    def titles(self) -> dict[str, str]:
        """Item token → readable title from the dataset's ``.item`` file (empty if none)."""
        from recausal.data import item_titles_if_any

        return item_titles_if_any(self.dataset_name)

    def user_history(self, user_id: str | int) -> list[str]:
        """The user's full interaction history in the model's dataset, oldest first.

        Args:
            user_id: a user id of the model's dataset.

        Returns:
            The user's item tokens, oldest first (not cut to ``capacity``).

        Raises:
            UnknownUserError: the dataset has no such user.
        """
        hist = self._user_histories.get(str(user_id))
        if hist is None:
            raise UnknownUserError(f"user {user_id!r} is not in the dataset of model {self.name}")
        return hist


__all__ = ["ModelDataset"]
