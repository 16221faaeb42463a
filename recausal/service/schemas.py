"""The bodies of the service's POST requests, validated before any model work."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from recausal.service.limits import MAX_HISTORY, MAX_K, MAX_SEED, MAX_SET_SIZE

Token = Annotated[StrictStr, Field(min_length=1, max_length=64)] | StrictInt
UserId = Annotated[StrictStr, Field(min_length=1, max_length=64)] | StrictInt


class HistoryRequest(BaseModel):
    """Fields shared by every POST body: the model, the history (a user or items), k."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        None, description="Name of a loaded model (default: the first)."
    )
    user: UserId | None = Field(None, description="A user id of the model's dataset.")
    history: Annotated[list[Token], Field(min_length=1, max_length=MAX_HISTORY)] | None = Field(
        None, description="Item tokens, oldest first (instead of user)."
    )
    k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = Field(10, description="Top-k size.")
    exclude_seen: bool | None = Field(
        None,
        description="Leave out the items of the history (default: when the model's dataset "
        "has no repeated interactions).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> HistoryRequest:
        if (self.user is None) == (self.history is None):
            raise ValueError("give exactly one of 'user' or 'history'")
        return self


class RecommendRequest(HistoryRequest):
    """Body of ``POST /recommend``."""


class ExplainRequest(HistoryRequest):
    """Body of ``POST /explain``."""

    explainer: Annotated[StrictStr, Field(max_length=40)] | None = Field(
        None, description="Explainer name (default: causal when installed, else occlusion)."
    )
    max_size: Annotated[StrictInt, Field(ge=1, le=MAX_SET_SIZE)] = 5
    removal: Literal["delete", "pad"] = "delete"
    seed: Annotated[StrictInt, Field(ge=0, le=MAX_SEED)] = 0
    include_graph: bool = True
    item: Token | None = Field(None, description="Explain this item of the top-k list.")
    rank: Annotated[StrictInt, Field(ge=1, le=MAX_K)] | None = Field(
        None, description="Explain the item at this rank of the top-k list (1 = the top-1)."
    )

    @model_validator(mode="after")
    def _one_target(self) -> ExplainRequest:
        if self.item is not None and self.rank is not None:
            raise ValueError("give 'item' or 'rank', not both")
        if self.rank is not None and self.rank > self.k:
            raise ValueError(f"rank must be between 1 and k ({self.k}); got {self.rank}")
        return self
