"""The Captum explainers: what they attribute (the score recausal explains), completeness and
efficiency, the planted cause, the shared contract on both families, seeding, missing extra."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from recausal.errors import InvalidInputError, MissingExtraError, UnsupportedModelError
from recausal.explain import get_explainer
from recausal.models import SASRecModel
from recausal.testing.planted import planted_histories

#: every test but the missing-extra ones runs Captum (the ``captum`` extra, in ``all``)
needs_captum = pytest.mark.skipif(
    importlib.util.find_spec("captum") is None or importlib.util.find_spec("sklearn") is None,
    reason="needs the captum extra",
)

ATTRIBUTION = ["integrated-gradients", "kernel-shap", "lime", "shapley-sampling"]
SAMPLED = ["kernel-shap", "lime", "shapley-sampling"]


def _histories(model, n, seed, low=3, high=12):
    rng = np.random.default_rng(seed)
    return [
        [model.items[i] for i in rng.integers(1, model.n_items, size=int(rng.integers(low, high)))]
        for _ in range(n)
    ]


def _score_at_padding_embedding(model, window, target):
    """The target's score with the padding embedding at every history position (the
    attention mask and BERT4Rec's mask token left as they are): IG's starting point."""
    tokens, read = model.network_input([window])
    n = len(window)

    def to_padding(module, inputs, output):
        output = output.clone()
        output[:, :n] = module.weight[0]
        return output

    handle = model.embedding_layer().register_forward_hook(to_padding)
    try:
        with torch.no_grad():
            return float(model.score_tokens(tokens, read)[0, target])
    finally:
        handle.remove()


def test_the_differentiable_hook_scores_what_recausal_scores(any_model):
    windows = [any_model.encode(h) for h in _histories(any_model, 6, seed=1)]
    tokens, read = any_model.network_input(windows)
    with torch.no_grad():
        hooked = any_model.score_tokens(tokens, read).numpy()
    np.testing.assert_allclose(hooked[:, 1:], any_model.score_ids(windows)[:, 1:], atol=1e-4)
    # and the scores do depend, differentiably, on the embedding of the history
    grads = []
    handle = any_model.embedding_layer().register_forward_hook(
        lambda m, i, out: out.register_hook(grads.append) and None
    )
    try:
        any_model.score_tokens(tokens, read)[:, 1].sum().backward()
    finally:
        handle.remove()
        any_model.net.zero_grad(set_to_none=True)
    assert grads and grads[0][:, : len(windows[0])].abs().sum() > 0


@needs_captum
def test_integrated_gradients_is_complete(any_model):
    histories = _histories(any_model, 6, seed=2)
    ranks = [1, 2, 3, 1, 2, 1]
    found = get_explainer("integrated-gradients", n_steps=50).explain_many(
        any_model, histories, ranks=ranks
    )
    for e, h, rank in zip(found, histories, ranks, strict=True):
        assert e.rank == rank
        target = any_model.item_ids[e.recommended]
        start = _score_at_padding_embedding(any_model, any_model.encode(h), target)
        total = sum(r.score for r in e.ranking)
        assert total == pytest.approx(e.score - start, rel=1e-3, abs=1e-3)


@needs_captum
@pytest.mark.parametrize("removal", ["pad", "delete"])
def test_shapley_values_add_up_to_the_score_removed(sasrec, removal):
    """Efficiency: the values sum to score(history) − score(every position removed) — exactly
    for permutation sampling, up to KernelSHAP's heavy end-point weights for KernelSHAP."""
    histories = _histories(sasrec, 4, seed=4, low=4, high=9)
    for name, tol in (("shapley-sampling", 1e-4), ("kernel-shap", 1e-2)):
        for e, h in zip(
            get_explainer(name, removal=removal).explain_many(sasrec, histories),
            histories,
            strict=True,
        ):
            empty = [0] * len(h) if removal == "pad" else []
            target = sasrec.item_ids[e.recommended]
            removed = float(sasrec.score_ids([np.array(empty, dtype=np.int64)])[0, target])
            total = sum(r.score for r in e.ranking)
            assert total == pytest.approx(e.score - removed, abs=tol * max(1, abs(e.score)))


@needs_captum
@pytest.mark.parametrize("name", ATTRIBUTION)
def test_the_planted_cause_ranks_first(any_model, planted, name, capsys):
    histories = [
        h
        for h in planted_histories(any_model, planted)
        if any_model.recommend([h], k=1)[0].top == planted.cause_to_effect[h[-1]]
    ]
    assert len(histories) >= 12, "the tiny model should have learned the planted rule"
    found = get_explainer(name, max_size=3, seed=0).explain_many(any_model, histories)
    cause = [len(h) - 1 for h in histories]
    first = np.mean([e.ranking[0].position == c for e, c in zip(found, cause, strict=True)])
    named = np.mean([e.valid and e.sets[0] == (c,) for e, c in zip(found, cause, strict=True)])
    with capsys.disabled():
        print(f"\n{name} ({any_model.name}): cause ranked first {first:.2f}, set {named:.2f}")
    assert first >= 0.8 and named >= 0.8


@needs_captum
@pytest.mark.parametrize("name", ATTRIBUTION)
def test_contract_on_both_families(any_model, name):
    histories = _histories(any_model, 4, seed=6, low=1, high=10)
    explainer = get_explainer(name, max_size=2, seed=5)
    single = [explainer.explain(any_model, h, rank=2) for h in histories]
    batch = explainer.explain_many(any_model, histories, ranks=[2] * len(histories))
    for a, b, h in zip(single, batch, histories, strict=True):
        assert (a.sets, a.replacement, a.recommended) == (b.sets, b.replacement, b.recommended)
        assert [r.position for r in a.ranking] == [r.position for r in b.ranking]
        np.testing.assert_allclose(
            [r.score for r in a.ranking], [r.score for r in b.ranking], rtol=1e-5, atol=1e-5
        )
        assert {r.position for r in a.ranking} == set(range(len(h)))
        assert a.explainer == name and a.rank == 2 and a.criterion == "leaves the top-k"
        top = any_model.recommend([h], k=10)[0].items
        assert a.recommended == top[1]
        for positions in a.sets:  # the explained item leaves the top-k
            kept = [t for p, t in enumerate(h) if p not in positions]
            assert a.recommended not in any_model.recommend([kept], k=10)[0].items
        # the costs reported are the model's work for this history
        n = len(h)
        assert a.model_calls >= 2 and a.histories_scored >= 2
        bound = {
            "integrated-gradients": 1 + 50 + 2 + 2,
            "kernel-shap": 1 + min(200, 2**n) + 2,
            "lime": 1 + min(200, 2**n) + 2,
            "shapley-sampling": 1 + min(1 + 8 * n, 2**n) + 2,
        }[name]
        assert a.histories_scored <= bound


@needs_captum
@pytest.mark.parametrize("name", SAMPLED)
def test_sampling_is_seeded_and_leaves_torch_alone(sasrec, name):
    histories = _histories(sasrec, 5, seed=8, low=6, high=12)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = get_explainer(name, seed=1).explain_many(sasrec, histories)
    assert torch.equal(torch.get_rng_state(), state), "the global generator must be restored"
    again = get_explainer(name, seed=1).explain_many(sasrec, histories)
    other = get_explainer(name, seed=2).explain_many(sasrec, histories)
    scores = [[r.score for r in e.ranking] for e in first]
    assert scores == [[r.score for r in e.ranking] for e in again]
    assert scores != [[r.score for r in e.ranking] for e in other]
    assert first[0].meta["params"]["seed"] == 1


@needs_captum
def test_one_item_window_gets_its_exact_shapley_value(sasrec):
    history = [sasrec.items[5]]
    for name in ("kernel-shap", "shapley-sampling"):
        e = get_explainer(name, removal="pad").explain(sasrec, history)
        removed = sasrec.score_ids([np.array([0])])[0, sasrec.item_ids[e.recommended]]
        assert e.ranking[0].score == pytest.approx(e.score - float(removed), abs=1e-4)


@pytest.mark.parametrize("name", ATTRIBUTION)
def test_missing_captum_names_the_extra(sasrec, monkeypatch, name):
    explainer = get_explainer(name)  # building one needs no captum
    monkeypatch.setitem(sys.modules, "captum", None)
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(MissingExtraError, match=r"recausal\[captum\]"):
        explainer.explain(sasrec, [sasrec.items[i] for i in (1, 2, 3)])


def test_missing_scikit_learn_names_the_extra(sasrec, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    for name in ("kernel-shap", "lime"):
        with pytest.raises(MissingExtraError, match=r"recausal\[captum\]"):
            get_explainer(name).explain(sasrec, [sasrec.items[i] for i in (1, 2, 3)])


class _NoGradients(SASRecModel):
    """A family without differentiable scoring."""

    differentiable = False


@needs_captum
def test_integrated_gradients_needs_differentiable_scoring(sasrec):
    model = _NoGradients(sasrec.net, sasrec.items, name="opaque")
    history = [sasrec.items[i] for i in (1, 2, 3)]
    with pytest.raises(UnsupportedModelError, match="kernel-shap"):
        get_explainer("integrated-gradients").explain(model, history)
    assert get_explainer("kernel-shap", n_samples=16).explain(model, history).ranking


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("integrated-gradients", {"n_steps": 0}, "n_steps"),
        ("kernel-shap", {"n_samples": 0}, "n_samples"),
        ("lime", {"alpha": -1.0}, "alpha"),
        ("shapley-sampling", {"n_permutations": 1.5}, "n_permutations"),
        ("lime", {"n_steps": 3}, "lime"),
    ],
)
def test_bad_parameters(name, params, match):
    with pytest.raises(InvalidInputError, match=match):
        get_explainer(name, **params)
