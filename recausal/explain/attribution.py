"""Attribution baselines built on Captum: Integrated Gradients on the item-embedding layer, and
KernelSHAP, LIME and Shapley value sampling over the positions of the history's window.

Each attributes the explained item's score (``base.target``: the top-1, or the item of the
top-k being explained) and ranks the window's positions by their attribution; like every
:class:`~recausal.explain.RankingExplainer`, its explanation is then the smallest prefix of
that ranking whose removal explains the item. They need the ``captum`` extra
(``pip install 'recausal[captum]'``).

- Integrated Gradients (:class:`IntegratedGradientsExplainer`) takes Captum's
  ``LayerIntegratedGradients`` at the network's item embedding, through the model's own
  differentiable scoring (:meth:`~recausal.models.SequentialModel.score_tokens`: SASRec's
  forward read at the last item, BERT4Rec's at the mask token after the history, as
  ``score_ids`` scores them). The path starts at the padding embedding (item id 0) at every
  history position, the attention mask and, for BERT4Rec, the mask token kept as they are.
- KernelSHAP, LIME and Shapley value sampling perturb one feature per window position: an
  absent position is removed by the explainer's removal rule (``delete``: older items slide
  into the window; ``pad``: padding in its place), and the edited history is scored as every
  other explainer scores it (``Batch.score``). Their samples are seeded by ``seed`` and the
  window, as the ``random`` baseline is: a history gets the same ranking alone or in a batch.

With a time budget, no model call of the attributions starts once it has run out: a history
whose attributions were not computed by then gets all-zero scores and no set, marked
incomplete.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch

from recausal._checks import check_int
from recausal.errors import InvalidInputError, require_extra
from recausal.explain.base import RankingExplainer
from recausal.explain.batch import Baseline, Batch, Removal
from recausal.explain.search import NO_DEADLINE, Deadline

#: the seeded sections share torch's global generator (forked, and restored afterwards)
_RNG_LOCK = threading.Lock()


def _captum_attr() -> Any:
    """``captum.attr``, or :class:`~recausal.errors.MissingExtraError` naming the extra."""
    return require_extra("captum.attr", "captum")


def _account(batch: Batch, owners: np.ndarray) -> None:
    """Count one forward pass for each history with rows in it, and the rows of each."""
    np.add.at(batch.calls, np.unique(owners), 1)
    np.add.at(batch.rows, owners, 1)
    batch.model.forward_passes += 1
    batch.model.histories_scored += len(owners)


class IntegratedGradientsExplainer(RankingExplainer):
    """Ranks items by Integrated Gradients of the explained item's score, taken at the item
    embedding (Captum's ``LayerIntegratedGradients``) and summed over the embedding's
    dimensions.

    The baseline is the padding embedding (item id 0) at every history position; the
    attention mask (every history position attended) and BERT4Rec's mask token stay those of
    the input, so a position's attribution is its share of ``score(input) − score(baseline)``
    (completeness, up to the integral's approximation). The histories are batched: one
    forward and backward pass per ``rows_per_pass`` rows (histories × steps), plus Captum's
    two passes that read the embedding of the input and of the baseline. SASRec and BERT4Rec
    only (:attr:`~recausal.models.SequentialModel.differentiable`).

    Args:
        n_steps: steps of the integral's approximation (Gauss–Legendre, Captum's default).
        **params: the :class:`~recausal.explain.Explainer` parameters (``max_size``,
            ``removal`` — it applies to the validation of the prefixes only —, ...).
    """

    name = "integrated-gradients"
    #: rows (histories × steps) per forward and backward pass
    rows_per_pass: ClassVar[int] = 1024

    def __init__(self, *, n_steps: int = 50, **params: Any) -> None:
        super().__init__(**params)
        self.n_steps = check_int(n_steps, "n_steps", minimum=1)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "n_steps": self.n_steps}

    def _position_scores(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[np.ndarray | None]:
        attr = _captum_attr()
        model = batch.model
        if not model.differentiable:
            model.embedding_layer()  # raises UnsupportedModelError
        # Captum hooks the embedding: on a private copy, no other thread's scoring sees it
        net = copy.deepcopy(model.net).eval().requires_grad_(False)

        def target_score(
            tokens: torch.Tensor, read: torch.Tensor, targets: torch.Tensor, owners: torch.Tensor
        ) -> torch.Tensor:
            _account(batch, owners.cpu().numpy())
            scores = model.score_tokens(tokens, read, net=net)
            return scores[torch.arange(len(tokens)), targets]

        ig = attr.LayerIntegratedGradients(target_score, model.embedding_layer(net))
        out: list[np.ndarray | None] = []
        users_per_pass = max(1, self.rows_per_pass // self.n_steps)
        with torch.inference_mode(False), torch.enable_grad():
            for start in range(0, len(batch.ids), users_per_pass):
                users = range(start, min(start + users_per_pass, len(batch.ids)))
                if deadline.passed:
                    out += [None] * len(users)
                    continue
                windows = [batch.ids[u] for u in users]
                tokens, read = model.network_input(windows)
                lengths = torch.tensor([len(w) for w in windows])
                history = torch.arange(tokens.shape[1]) < lengths[:, None]
                reference = tokens.masked_fill(history, 0)  # the padding id
                targets = torch.tensor([bases[u].target for u in users])
                attributions = ig.attribute(
                    tokens,
                    baselines=reference,
                    additional_forward_args=(read, targets, torch.tensor(list(users))),
                    n_steps=self.n_steps,
                    internal_batch_size=max(self.rows_per_pass, len(users)),
                )
                per_position = attributions.detach().sum(dim=-1).cpu().double().numpy()
                out += [per_position[i, : len(w)] for i, w in enumerate(windows)]
        return out


class _OutOfTime(Exception):
    """Raised by :class:`_Presence` through Captum when the deadline has passed."""


class _Presence:
    """The explained item's score for rows of presence flags over one window (0: the position
    is removed by the removal rule), scored through the batch; each distinct row once. Raises
    :class:`_OutOfTime` instead of scoring once ``deadline`` has passed."""

    def __init__(
        self,
        batch: Batch,
        u: int,
        target: int,
        removal: Removal,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        self.batch, self.u, self.target, self.removal = batch, u, target, removal
        self.deadline = deadline
        self.memo: dict[bytes, float] = {}

    def __call__(self, presence: torch.Tensor) -> torch.Tensor:
        rows = presence.detach().reshape(len(presence), -1).cpu().numpy() > 0.5
        keys = [row.tobytes() for row in rows]
        new = list(dict.fromkeys(k for k in keys if k not in self.memo))
        if new and self.deadline.passed:
            raise _OutOfTime
        seqs = {
            k: self.batch.edit(self.u, np.flatnonzero(~np.frombuffer(k, dtype=bool)), self.removal)
            for k in new
        }
        # an emptied history is scored on its own: batched with longer rows, the model would
        # read it at their padded width rather than as the one padding token it is
        for part in ([k for k in new if len(seqs[k])], [k for k in new if not len(seqs[k])]):
            if part:
                scores = self.batch.score([self.u] * len(part), [seqs[k] for k in part])
                values = scores[:, self.target].astype(np.float64).tolist()
                self.memo.update(zip(part, values, strict=True))
        return torch.tensor([self.memo[k] for k in keys], dtype=torch.float32)


@contextmanager
def _seeded(seed: int, ids: np.ndarray) -> Iterator[None]:
    """Torch's generator seeded by ``seed`` and the window, restored afterwards."""
    state = np.random.SeedSequence([seed, *ids.tolist()]).generate_state(1)[0]
    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(state))
        yield


class _PerturbationExplainer(RankingExplainer):
    """Captum's perturbation methods over the window's positions: one feature per position,
    present (1) or removed by the removal rule (0); one Captum run per history, seeded."""

    def _position_scores(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[np.ndarray | None]:
        attr = _captum_attr()
        out: list[np.ndarray | None] = []
        for u, base in enumerate(bases):
            game = _Presence(batch, u, base.target, self.removal, deadline)
            try:
                with _seeded(self.seed, batch.ids[u]):
                    values = self._attribute(attr, game, len(batch.ids[u]))
            except _OutOfTime:
                out.append(None)
                continue
            out.append(values.detach().reshape(-1).cpu().double().numpy())
        return out

    def _attribute(self, attr: Any, game: _Presence, n: int) -> torch.Tensor:
        """The attributions ``(1, n)`` of one window of ``n`` positions."""
        raise NotImplementedError


def _perturb(method: Any, n: int, n_samples: int, per_eval: int) -> torch.Tensor:
    """A Captum perturbation method's attributions for one window of ``n`` positions: every
    position present in the input, removed in the baseline, one feature each."""
    return method.attribute(
        torch.ones(1, n),
        baselines=torch.zeros(1, n),
        feature_mask=torch.arange(n).unsqueeze(0),
        n_samples=n_samples,
        perturbations_per_eval=per_eval,
    )


def _check_samples(value: int, name: str) -> int:
    return check_int(value, name, minimum=1, maximum=1_000_000)


class KernelShapExplainer(_PerturbationExplainer):
    """Ranks items by their KernelSHAP value for the explained item's score (Captum's
    ``KernelShap``: coalitions drawn from the Shapley kernel, a weighted linear regression).

    Cost: at most ``n_samples`` edited histories per history (each distinct coalition is
    scored once), in one model call, two when removing every item empties the history (the
    empty history is scored on its own). A one-item window gets its exact Shapley value,
    ``score(history) − score(history without it)``.

    Args:
        n_samples: coalitions drawn per history (the first two: all present, all removed).
        **params: the :class:`~recausal.explain.Explainer` parameters (``max_size``,
            ``removal``, ``seed``, ...).
    """

    name = "kernel-shap"

    def __init__(self, *, n_samples: int = 200, **params: Any) -> None:
        super().__init__(**params)
        self.n_samples = _check_samples(n_samples, "n_samples")

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "n_samples": self.n_samples}

    def _attribute(self, attr: Any, game: _Presence, n: int) -> torch.Tensor:
        require_extra("sklearn", "captum")
        if n == 1:  # Captum's kernel needs two features; one is exact
            return game(torch.ones(1, 1)) - game(torch.zeros(1, 1))
        return _perturb(attr.KernelShap(game), n, self.n_samples, self.n_samples)


class LimeExplainer(_PerturbationExplainer):
    """Ranks items by their LIME weight for the explained item's score (Captum's ``Lime``:
    each position kept with probability 1/2, samples weighted by an exponential kernel of
    their cosine distance to the full window, a Lasso fit).

    Cost: at most ``n_samples`` edited histories per history (each distinct sample is scored
    once), in one model call, two when a sample empties the history.

    Args:
        n_samples: samples drawn per history.
        alpha: the Lasso's L1 penalty (Captum's default, 0.01).
        **params: the :class:`~recausal.explain.Explainer` parameters (``max_size``,
            ``removal``, ``seed``, ...).
    """

    name = "lime"

    def __init__(self, *, n_samples: int = 200, alpha: float = 0.01, **params: Any) -> None:
        super().__init__(**params)
        self.n_samples = _check_samples(n_samples, "n_samples")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha >= 0:
            raise InvalidInputError(f"alpha must be a number >= 0; got {alpha!r}")
        self.alpha = float(alpha)

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "n_samples": self.n_samples, "alpha": self.alpha}

    def _attribute(self, attr: Any, game: _Presence, n: int) -> torch.Tensor:
        require_extra("sklearn", "captum")
        from captum._utils.models.linear_model import SkLearnLasso

        lime = attr.Lime(game, interpretable_model=SkLearnLasso(alpha=self.alpha))
        return _perturb(lime, n, self.n_samples, self.n_samples)


class ShapleySamplingExplainer(_PerturbationExplainer):
    """Ranks items by their Shapley value for the explained item's score, estimated from
    random permutations (Captum's ``ShapleyValueSampling``): each position's mean score gain
    when it joins the positions before it in the permutation, starting from all removed.

    Cost: at most ``1 + n_permutations × n`` coalitions for a window of ``n`` items (each
    distinct coalition is scored once), in at most ``1 + n_permutations`` model calls.

    Args:
        n_permutations: permutations drawn per history.
        **params: the :class:`~recausal.explain.Explainer` parameters (``max_size``,
            ``removal``, ``seed``, ...).
    """

    name = "shapley-sampling"

    def __init__(self, *, n_permutations: int = 8, **params: Any) -> None:
        super().__init__(**params)
        self.n_permutations = _check_samples(n_permutations, "n_permutations")

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "n_permutations": self.n_permutations}

    def _attribute(self, attr: Any, game: _Presence, n: int) -> torch.Tensor:
        return _perturb(attr.ShapleyValueSampling(game), n, self.n_permutations, n)
