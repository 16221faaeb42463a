"""Attention matrices with a planted linear SEM, the batch entry points, and order-aware
learning on SASRec-like (lower-triangular) attention."""

from __future__ import annotations

import numpy as np
import pytest

from recausal.causal._marks import ARROW, NONE
from recausal.causal.citest import AttentionCITest
from recausal.causal.fci import fci
from recausal.causal.icd import icd
from recausal.causal.learn import learn_pags, pag_from_attention
from recausal.errors import InvalidInputError
from recausal.testing.attention import random_softmax_attention, sem_attention


def _skeleton_rates(n_samples: int, seeds: range) -> tuple[float, float]:
    tp = fp = fn = 0
    for seed in seeds:
        a, adj = sem_attention(12, seed=seed, low=0.3, high=0.8)
        res = pag_from_attention(a, n_samples=n_samples)
        true = np.triu(adj | adj.T, 1)
        got = np.triu(res.skeleton, 1)
        tp += int((true & got).sum())
        fp += int((got & ~true).sum())
        fn += int((true & ~got).sum())
    return tp / (tp + fn), tp / (tp + fp)


def test_planted_sem_skeleton_is_recovered() -> None:
    # The attention matrix IS the SEM Z = BZ + V (rows of (I-B)^-1, scaled): its correlation
    # has exactly the DAG's independences, so the skeleton must come back once N is large.
    recall_big, precision_big = _skeleton_rates(10**5, range(12))
    recall_64, precision_64 = _skeleton_rates(64, range(12))
    print(
        f"N=1e5 recall {recall_big:.3f} precision {precision_big:.3f}; "
        f"N=64 recall {recall_64:.3f} precision {precision_64:.3f}"
    )
    assert recall_big >= 0.97
    assert precision_big >= 0.8
    # at the reference's N = 64 weak edges are lost, but what is found is almost all real
    assert precision_64 >= 0.95
    assert recall_64 < recall_big


def test_sem_attention_is_valid_causal_attention() -> None:
    a, adj = sem_attention(10, seed=3)
    assert np.allclose(a.sum(axis=1), 1.0)
    assert np.all(a >= 0)
    assert np.allclose(np.triu(a, 1), 0.0)  # lower triangular, like SASRec
    assert not np.any(np.tril(adj))  # edges only from earlier to later


@pytest.mark.parametrize("algorithm", ["icd", "fci"])
def test_batch_equals_one_by_one(algorithm: str) -> None:
    attn = random_softmax_attention(12, causal=False, seed=5, batch=6)
    batch = learn_pags(attn, algorithm=algorithm, _users_per_chunk=4)
    run = icd if algorithm == "icd" else fci
    for a, res in zip(attn, batch, strict=False):
        single = run(AttentionCITest(a), 12)
        assert np.array_equal(res.marks, single.marks)
        assert dict(res.sepsets) == dict(single.sepsets)
        assert res.n_tests == single.n_tests
        assert np.array_equal(pag_from_attention(a, algorithm=algorithm).marks, single.marks)


def test_order_aware_never_orients_later_to_earlier() -> None:
    attn = random_softmax_attention(16, causal=True, seed=11, batch=12)
    plain = learn_pags(attn)
    ordered = learn_pags(attn, order_aware=True)
    fci_ordered = learn_pags(attn[:4], order_aware=True, algorithm="fci")
    for res in [*ordered, *fci_ordered]:
        m = res.marks
        upper = np.triu(m != NONE, 1)
        assert np.all(m[upper] == ARROW)  # the later end of every edge is an arrowhead
        assert res.order_aware
    # the order prunes conditioning sets: fewer tests overall
    assert sum(r.n_tests for r in ordered) < sum(r.n_tests for r in plain)

    # and it commits to at least as many edge marks as plain ICD
    def committed(rs: list) -> int:
        return sum(int(((r.marks != NONE) & (r.marks != 1)).sum()) for r in rs)

    assert committed(ordered) >= committed(plain)


def test_aggregate_heads_entry_point() -> None:
    heads = random_softmax_attention(8, causal=True, seed=2, batch=4)  # 4 heads
    res = pag_from_attention(heads, aggregate_heads=True)
    assert res.n_nodes == 8
    res_b = learn_pags(heads[None], aggregate_heads=True)[0]
    assert np.array_equal(res.marks, res_b.marks)


def test_result_is_frozen_and_serialisable() -> None:
    res = pag_from_attention(random_softmax_attention(6, seed=1))
    with pytest.raises(ValueError):
        res.marks[0, 1] = 3
    with pytest.raises(TypeError):
        res.sepsets[(0, 1)] = ()  # type: ignore[index]
    d = res.to_dict()
    assert d["algorithm"] == "icd" and d["n_nodes"] == 6
    assert res.to_json().startswith("{")
    assert res.marks.dtype == np.int8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attn_batch": np.eye(4)}, "shape"),
        ({"attn_batch": np.eye(4)[None], "algorithm": "pc"}, "algorithm"),
        ({"attn_batch": -np.ones((1, 3, 3))}, "non-negative"),
        ({"attn_batch": np.full((1, 3, 3), 0.5)}, "sum to 1"),
        ({"attn_batch": np.eye(4)[None], "n_samples": 2}, "n_samples"),
        ({"attn_batch": np.eye(4)[None], "max_cond_size": -2}, "max_cond_size"),
    ],
)
def test_bad_input(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        learn_pags(**kwargs)
    with pytest.raises(InvalidInputError, match=r"shape|axes"):
        pag_from_attention(np.ones((2, 3, 3)) / 3)


def test_vectorised_legal_sets_match_plain_enumeration() -> None:
    # the numpy path of ICD's conditioning-set enumeration must list exactly the same sets,
    # in the same order, as the plain-Python path (which follows the definition literally)
    from recausal.causal._graph import MarkBits, MarkGraph
    from recausal.causal.icd_sep import ICDSepTree

    attn = random_softmax_attention(24, causal=False, seed=9)
    res = pag_from_attention(attn, max_cond_size=1)
    g = MarkBits(MarkGraph.from_array(res.marks))
    checked = 0
    for root in range(24):
        for size in (2, 3):
            tree = ICDSepTree(g, root, size)
            plain = tree.legal_sets(size)
            masks, dist, sets = tree.legal_arrays(size)
            assert [p[0] for p in plain] == [int(x) for x in masks]
            assert [p[1] for p in plain] == dist.tolist()
            assert [list(p[2]) for p in plain] == sets.tolist()
            checked += len(plain)
    assert checked > 100
