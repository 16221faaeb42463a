"""The optimised paths give the same graphs and explanations as the plain ones.

Batched graph learning (users of equal length together) against one CI test and one search per
matrix; ``explain_many`` over a batch against one history at a time and against the plain
graph-learning path; chunked top-1 scoring against full score matrices.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from recausal.causal.citest import AttentionCITest
from recausal.causal.icd import icd
from recausal.causal.pag import PAG
from recausal.discovery import (
    DiscoverySettings,
    discover_ids,
    learn_structures,
    structure_to_pag,
)
from recausal.explain.batch import Baseline, Batch
from recausal.explain.causal import CausalExplainer
from recausal.testing import random_softmax_attention


def _attentions(causal: bool, lengths: list[int], heads: int = 2) -> list[np.ndarray]:
    """Seeded per-head softmax attention ``(H, n, n)`` for histories of mixed lengths."""
    out = []
    for u, n in enumerate(lengths):
        stack = [random_softmax_attention(n, causal=causal, seed=100 * u + h) for h in range(heads)]
        out.append(np.stack(stack))
    return out


def _same_structure(a, b) -> None:
    np.testing.assert_array_equal(a.marks, b.marks)
    assert dict(a.sepsets) == dict(b.sepsets)
    assert a.n_tests == b.n_tests
    assert a.max_cond_size_reached == b.max_cond_size_reached


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("algorithm", ["icd", "fci"])
def test_batched_learning_equals_one_matrix_at_a_time(causal, algorithm):
    lengths = [12, 9, 12, 15, 9, 12, 4]  # groups of equal length, and singletons
    attn = _attentions(causal, lengths)
    settings = DiscoverySettings(
        algorithm=algorithm,
        max_cond_size=3 if algorithm == "fci" else None,
        n_samples=32,
        order_aware=causal,
    )
    batched = learn_structures(attn, settings, heads="all")
    plain = learn_structures(attn, settings, heads="all", batched=False)
    assert len(batched) == len(plain) == len(lengths)
    removed = 0
    for u, (fast, slow) in enumerate(zip(batched, plain, strict=True)):
        assert len(fast.heads) == 2
        for h in range(2):
            _same_structure(fast.heads[h], slow.heads[h])
            n = lengths[u]
            removed += n * (n - 1) // 2 - int((fast.heads[h].marks != 0).sum()) // 2
        _same_structure(fast.aggregate, slow.aggregate)
    assert removed > 0  # the graphs are not all complete: the tests decided something


def test_batched_learning_equals_direct_icd():
    lengths = [10, 10, 10, 7]
    attn = _attentions(True, lengths)
    found = learn_structures(attn, DiscoverySettings(n_samples=64, order_aware=True), heads="each")
    for a, f in zip(attn, found, strict=True):
        for h in range(2):
            direct = icd(AttentionCITest(a[h], n_samples=64), a.shape[-1], order_aware=True)
            _same_structure(f.heads[h], direct)


def test_structure_to_pag_equals_the_plain_path():
    attn = _attentions(False, [11])[0]
    items = [f"i{k}" for k in range(11)]
    settings = DiscoverySettings(n_samples=64, order_aware=False)
    fast = learn_structures([attn], settings, heads=1)[0]
    assert len(fast.heads) == 1 and fast.aggregate is None
    pag = structure_to_pag(fast.heads[0], items, settings, 1)
    slow = learn_structures([attn], settings, heads=1, batched=False)[0]
    plain = structure_to_pag(slow.heads[0], items, settings, 1)
    assert pag.to_dict() == plain.to_dict()
    # the unvalidated constructor gives the same PAG as the validating one
    checked = PAG.from_marks(
        fast.heads[0].marks, items=items, sepsets=fast.heads[0].sepsets, meta=pag.meta
    )
    assert fast.heads[0].sepsets and checked == pag
    assert checked.to_dict() == pag.to_dict()
    assert nx.utils.graphs_equal(checked.graph, pag.graph)
    # the bare PAG the explainer builds for its PDS trees has the same tree as the full one
    bare = PAG.from_structure(fast.heads[0].marks).pds_tree()
    full = pag.pds_tree()
    assert dict(bare.nodes) == dict(full.nodes)
    assert list(bare.candidate_sets(2)) == list(full.candidate_sets(2))


def _histories(model, n: int) -> list[list[str]]:
    from recausal.data import dataset_histories, resolve_dataset

    hist = list(dataset_histories(resolve_dataset(model.dataset_name)).values())
    return [h[: 4 + (u % 9)] for u, h in enumerate(hist[:n])]  # mixed lengths 4..12


def test_discover_ids_many_equals_one_by_one(any_model):
    model = any_model
    ids = [model.encode(h) for h in _histories(model, 12)]
    targets = [int(t) for t in model.score_ids(ids).argmax(axis=1)]
    attn = model.attention_ids(ids, targets)
    settings = DiscoverySettings()
    many = discover_ids(model, ids, targets, settings, heads="all", attentions=attn)
    for s, t, a, d in zip(ids, targets, attn, many, strict=True):
        one = discover_ids(model, [s], [t], settings, "all", attentions=[a], batched=False)[0]
        assert d.history == one.history and d.target == one.target
        assert [g.to_dict() for g in d.heads] == [g.to_dict() for g in one.heads]
        assert d.aggregate.to_dict() == one.aggregate.to_dict()


def _assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for u, (x, y) in enumerate(zip(a, b, strict=True)):
        dx, dy = _strip(x), _strip(y)
        # a forward pass over a different batch may round the last float32 bits differently
        assert dx.pop("score") == pytest.approx(dy.pop("score"), rel=1e-5)
        diff = {k: (dx[k], dy.get(k)) for k in dx if dx[k] != dy.get(k)}
        assert not diff, f"history {u}: {diff}"


def _strip(e) -> dict:
    d = e.to_dict()
    d.pop("seconds")
    d.pop("model_calls")  # batched passes are shared: fewer per history in a batch
    return d


@pytest.mark.parametrize("heads", ["each", "aggregate", 0])
def test_explain_many_equals_one_by_one_and_plain_path(any_model, heads):
    model = any_model
    histories = _histories(model, 14)
    explainer = CausalExplainer(heads=heads, max_size=3)
    batch = explainer.explain_many(model, histories)
    single = [explainer.explain(model, h) for h in histories]
    plain_explainer = CausalExplainer(heads=heads, max_size=3)
    plain_explainer._batched = False
    plain = plain_explainer.explain_many(model, histories)
    _assert_same(batch, single)
    _assert_same(batch, plain)
    assert any(e.valid for e in batch)
    assert all(e.graph is not None for e in batch)
    # batching shares passes: a history in a batch takes part in no more passes than alone
    assert all(b.model_calls <= s.model_calls for b, s in zip(batch, single, strict=True))


def test_top1_in_chunks_equals_full_scores(sasrec, monkeypatch):
    ids = [sasrec.encode(h) for h in _histories(sasrec, 20)]
    seqs = [np.delete(s, [p]) for s in ids for p in range(len(s))]
    owners = [u for u, s in enumerate(ids) for _ in range(len(s))]
    full = sasrec.score_ids(seqs).argmax(axis=1)
    monkeypatch.setattr(Batch, "batch_size", 7)
    batch = Batch(sasrec, ids)
    bases = [Baseline(np.empty(0), 0, (0,), 1) for _ in ids]  # explain item 0: never the top-1
    np.testing.assert_array_equal(batch.outcomes(owners, seqs, bases).replacement, full)
    # calls are counted per chunk a history took part in, rows per history
    assert batch.rows.tolist() == [len(s) for s in ids]
    assert batch.calls.sum() >= -(-len(seqs) // 7)


def test_small_score_chunks_change_nothing(sasrec, monkeypatch):
    histories = _histories(sasrec, 10)
    explainer = CausalExplainer(max_size=2)
    wide = explainer.explain_many(sasrec, histories)
    monkeypatch.setattr(Batch, "batch_size", 5)
    narrow = explainer.explain_many(sasrec, histories)
    _assert_same(wide, narrow)
    assert sum(e.model_calls for e in narrow) > sum(e.model_calls for e in wide)


def test_fast_scoring_scores_as_recbole_forward(any_model, monkeypatch):
    model = any_model
    ids = [model.encode(h) for h in _histories(model, 20)]
    seqs = [np.delete(s, [p]) for s in ids for p in range(len(s))] + [ids[0][:1], ids[0][:0]]
    fast = model.score_ids(seqs)
    monkeypatch.setattr(type(model), "fast_scoring", False)
    full = model.score_ids(seqs)
    np.testing.assert_allclose(fast[:, 1:], full[:, 1:], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fast.argmax(axis=1), full.argmax(axis=1))
