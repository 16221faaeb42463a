"""Differentiable scoring, the hooks the gradient explainers need (Integrated Gradients).

:class:`DifferentiableScoring` is a part of the model contract
(:class:`~recausal.models.SequentialModel` inherits it): by default every hook raises
:class:`~recausal.errors.UnsupportedModelError`; the SASRec and BERT4Rec families
(:mod:`recausal.models.families`) implement them and set
:attr:`~DifferentiableScoring.differentiable`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recausal.errors import UnsupportedModelError


class DifferentiableScoring:
    """The differentiable-scoring hooks of a model: its network input, scores with autograd
    and the item-embedding layer they read."""

    #: a name for messages, and the network (both set by the model)
    name: str
    net: torch.nn.Module

    #: :meth:`score_tokens` gives differentiable scores (the gradient explainers need them)
    differentiable: bool = False

    def _no_gradients(self) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"model {self.name} ({type(self.net).__name__}): differentiable scoring is "
            "supported for SASRec and BERT4Rec only; the explainers that only score "
            "(occlusion, kernel-shap, lime, shapley-sampling, ...) still work"
        )

    def network_input(self, seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's input for encoded histories, as :meth:`score_ids` builds it.

        Args:
            seqs: encoded histories, each within ``capacity`` (see :meth:`encode`).

        Returns:
            The padded tokens ``(B, W)`` (for BERT4Rec with the mask token after each
            history) and, per row, the position whose output is scored; both on the host
            (:meth:`score_tokens` moves them to the model's device).

        Raises:
            UnsupportedModelError: the family has no differentiable scoring.
        """
        raise self._no_gradients()

    def score_tokens(
        self, tokens: torch.Tensor, read: torch.Tensor, *, net: torch.nn.Module | None = None
    ) -> torch.Tensor:
        """Differentiable scores of network inputs: what :meth:`score_ids` computes (through the
        network's own ``forward``; equal up to float rounding), with autograd left to the
        caller, and nothing counted or masked.

        Args:
            tokens: the padded network input (see :meth:`network_input`), on any device; it
                is run on the model's.
            read: per row, the position whose output is scored.
            net: a copy of :attr:`net` to run instead (a gradient explainer sets its hooks on a
                private copy, where they cannot reach another thread scoring with this model)
                [default: :attr:`net`].

        Returns:
            Scores ``(B, n_items)``, column 0 (padding) included, on the model's device.

        Raises:
            UnsupportedModelError: the family has no differentiable scoring.
        """
        raise self._no_gradients()

    def embedding_layer(self, net: torch.nn.Module | None = None) -> torch.nn.Embedding:
        """The item-embedding layer through which :meth:`score_tokens` reads its tokens.

        Args:
            net: a copy of :attr:`net` (see :meth:`score_tokens`) [default: :attr:`net`].

        Returns:
            The network's item embedding (only its output for the input tokens enters the
            network; the scores read its weights directly).

        Raises:
            UnsupportedModelError: the family has no differentiable scoring.
        """
        if not self.differentiable:
            raise self._no_gradients()
        return (self.net if net is None else net).item_embedding


__all__ = ["DifferentiableScoring"]
