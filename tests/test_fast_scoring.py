"""recausal's own inference forward for SASRec/BERT4Rec (``fast_scoring``) scores as RecBole's
``net.forward`` does, reuses an edit's shared prefix without changing a score, and gives the
same explanations as the plain path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recausal.errors import InvalidInputError
from recausal.explain import get_explainer, remove_positions
from recausal.models import ADAPTERS, Edits, SequentialModel, build_network
from recausal.models.bundle import read_bundle
from recausal.models.inference import Transformer


def _deeper(model: SequentialModel, layers: int, heads: int, act: str) -> SequentialModel:
    """A model of the same family and items with more layers: each a perturbed copy of the
    trained one's (its recommendations still depend on the history)."""
    bundle = read_bundle(model.path)
    params = {**bundle.config["recbole"], "n_layers": layers, "n_heads": heads, "hidden_act": act}
    net = build_network(bundle.model_name, params, model.n_items)
    net.load_state_dict(model.net.state_dict(), strict=False)
    first = net.trm_encoder.layer[0].state_dict()
    for layer in net.trm_encoder.layer[1:]:
        layer.load_state_dict(first)
    generator = torch.Generator().manual_seed(layers * 10 + heads)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return ADAPTERS[bundle.model_name](net.eval(), model.items, name=f"{model.name}-deeper")


def _edits(model: SequentialModel, n: int, seed: int = 0) -> Edits:
    """Random histories of every length 1..capacity, and edits of them: 1-3 items deleted or
    replaced by padding, every item deleted, every item replaced by padding."""
    rng = np.random.default_rng(seed)
    originals = [rng.integers(1, model.n_items, size=1 + u % model.capacity) for u in range(n)]
    seqs, owners = [], []
    for u, ids in enumerate(originals):
        for k in range(4):
            size = min(len(ids), 1 + k % 3)
            removed = rng.choice(len(ids), size=size, replace=False)
            seqs.append(remove_positions(ids, removed, "pad" if k == 3 else "delete"))
            owners.append(u)
        seqs.append(ids.copy())
        owners.append(u)
    for removal in ("delete", "pad"):
        seqs.append(remove_positions(originals[3], range(len(originals[3])), removal))
        owners.append(3)
    return Edits(seqs, originals, owners)


def _plain(model: SequentialModel, seqs, monkeypatch, batch_size: int = 1024) -> np.ndarray:
    """Scores from RecBole's own ``net.forward`` (an emptied history's depend on the padded
    width, so on the batch: compare at the same batch size)."""
    with monkeypatch.context() as patch:
        patch.setattr(type(model), "fast_scoring", False)
        return model.score_ids(list(seqs), batch_size=batch_size)


def _assert_close(fast: np.ndarray, plain: np.ndarray) -> None:
    np.testing.assert_allclose(fast[:, 1:], plain[:, 1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fast.argmax(axis=1), plain.argmax(axis=1))


@pytest.mark.parametrize(
    ("layers", "heads", "act"), [(2, 2, "gelu"), (3, 4, "relu"), (2, 1, "swish")]
)
def test_fast_scores_equal_recbole_forward(any_model, monkeypatch, layers, heads, act):
    model = _deeper(any_model, layers, heads, act)
    edits = _edits(model, 40)
    plain = _plain(model, edits, monkeypatch)
    _assert_close(model.score_ids(list(edits)), plain)
    _assert_close(model.score_ids(edits), plain)  # with the originals (prefix reuse, SASRec)
    monkeypatch.setattr(Transformer, "positions_per_pass", 30)  # many small passes
    _assert_close(model.score_ids(edits, 50), _plain(model, edits, monkeypatch, 50))


def test_prefix_reuse_computes_less_and_scores_the_same(sasrec, monkeypatch):
    model = _deeper(sasrec, 2, 2, "gelu")
    edits = _edits(model, 40, seed=1)
    computed = []
    original = Transformer._pass

    def counting(self, plan, rows):
        computed.append(int((plan.ends[rows] - plan.starts[rows]).sum()))
        return original(self, plan, rows)

    monkeypatch.setattr(Transformer, "_pass", counting)
    full = model.score_ids(list(edits))
    recomputed = sum(computed)
    computed.clear()
    reused = model.score_ids(edits)
    # the originals' pass included, the edits with their originals compute fewer positions
    assert sum(computed) < 0.8 * recomputed
    np.testing.assert_allclose(reused[:, 1:], full[:, 1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(reused.argmax(axis=1), full.argmax(axis=1))


def test_edits_slice_keeps_originals():
    originals = [np.array([1, 2, 3]), np.array([4, 5])]
    edits = Edits([np.array([1, 3]), np.array([4]), np.array([2, 3])], originals, [0, 1, 0])
    part = edits[1:]
    assert isinstance(part, Edits) and part.originals is originals
    assert part.owners.tolist() == [1, 0] and [s.tolist() for s in part] == [[4], [2, 3]]
    assert edits[0].tolist() == [1, 3]
    with pytest.raises(InvalidInputError, match="owners"):
        Edits([np.array([1])], originals, [0, 1])


@pytest.mark.parametrize("name", ["sasrec-ml100k", "bert4rec-ml100k"])
def test_shipped_bundles_score_as_recbole_forward(name, monkeypatch):
    from recausal.data import dataset_histories, resolve_dataset
    from recausal.models import load_model

    model = load_model(name)
    histories = list(dataset_histories(resolve_dataset(model.dataset_name)).values())[:12]
    originals = [model.encode(h, warn=False) for h in histories]
    rng = np.random.default_rng(0)
    seqs, owners = [], []
    for u, ids in enumerate(originals):
        for size in (1, 2, 3) * 4:
            seqs.append(np.delete(ids, rng.choice(len(ids), size=size, replace=False)))
            owners.append(u)
    edits = Edits(seqs, originals, owners)
    _assert_close(model.score_ids(edits), _plain(model, edits, monkeypatch))


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(
    ("explainer", "removal"), [("causal", "delete"), ("causal", "pad"), ("exhaustive", "pad")]
)
def test_explanations_equal_plain_path(any_model, monkeypatch, layers, explainer, removal):
    from recausal.data import dataset_histories, resolve_dataset

    model = any_model if layers == 1 else _deeper(any_model, 2, 2, "gelu")
    histories = list(dataset_histories(resolve_dataset(any_model.dataset_name)).values())[:30]
    if explainer == "exhaustive":  # short histories: sets up to every item
        histories = [h[:3] for h in histories[:8]]
    make = get_explainer(explainer, max_size=3, removal=removal)
    fast = make.explain_many(model, histories)
    monkeypatch.setattr(type(model), "fast_scoring", False)
    plain = make.explain_many(model, histories)
    for f, p in zip(fast, plain, strict=True):
        df, dp = f.to_dict(), p.to_dict()
        assert df.pop("score") == pytest.approx(dp.pop("score"), rel=1e-5)
        df.pop("seconds")
        dp.pop("seconds")
        assert df == dp
    assert any(e.valid for e in fast)


def test_an_emptied_history_scores_the_same_in_every_batch(sasrec):
    """Its output once depended on the batch's padded width (every key masked)."""
    empty = np.zeros(0, dtype=np.int64)
    longest = np.arange(1, sasrec.capacity + 1) % (sasrec.n_items - 1) + 1
    alone = sasrec.score_ids([empty])
    for fast in (True, False):
        sasrec.fast_scoring = fast
        try:
            beside = sasrec.score_ids([empty, longest, np.array([3])])
        finally:
            sasrec.fast_scoring = True
        np.testing.assert_allclose(beside[0, 1:], alone[0, 1:], atol=1e-5)
