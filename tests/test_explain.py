"""Explainers: planted causes, exactness against exhaustive search, and the shared contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import recausal
from recausal.errors import InvalidInputError
from recausal.explain import (
    EXPLAINERS,
    CausalExplainer,
    explainer_names,
    get_explainer,
    remove_positions,
)
from recausal.models import SASRecModel
from recausal.testing.planted import planted_histories

NAMES = sorted(EXPLAINERS)


def _top1(model, history):
    return model.recommend([history], k=1)[0].top


def test_causal_explainer_finds_the_planted_cause(any_model, planted, capsys):
    histories = [
        h
        for h in planted_histories(any_model, planted)
        if _top1(any_model, h) == planted.cause_to_effect[h[-1]]
    ]
    assert len(histories) >= 12, "the tiny model should have learned the planted rule"
    recall, precision = {}, {}
    for name in ("causal", "random"):
        explainer = get_explainer(name, max_size=3, seed=0)
        found = [explainer.explain(any_model, h) for h in histories]
        hits = [
            e.valid and e.sets[0] == (len(h) - 1,) for e, h in zip(found, histories, strict=True)
        ]
        recall[name] = np.mean(hits)
        precision[name] = sum(hits) / max(1, sum(e.valid for e in found))
    with capsys.disabled():
        print(f"\nplanted cause found ({any_model.name}): recall {recall}, precision {precision}")
    # When the causal explainer answers, it names the planted cause; random rarely does.
    assert precision["causal"] >= 0.9, precision
    assert precision["causal"] >= precision["random"] + 0.3, precision
    assert recall["causal"] >= 0.3, recall


@pytest.mark.parametrize("name", ["causal", "attention", "recency", "occlusion", "random"])
def test_sets_are_valid_and_never_smaller_than_the_exhaustive_optimum(sasrec, name):
    rng = np.random.default_rng(7)
    explainer = get_explainer(name, max_size=3)
    exhaustive = get_explainer("exhaustive", max_size=3)
    for _ in range(6):
        history = [sasrec.items[i] for i in rng.integers(1, sasrec.n_items, size=6)]
        found, best = explainer.explain(sasrec, history), exhaustive.explain(sasrec, history)
        original = sasrec.recommend([history], k=1)[0].top
        for positions in found.sets:
            kept = [t for p, t in enumerate(history) if p not in positions]
            assert _top1(sasrec, kept) != original, "an explanation set must change the top-1"
        if found.valid:
            assert best.valid and found.size >= best.size
            assert found.replacement == _top1(
                sasrec, [t for p, t in enumerate(history) if p not in found.sets[0]]
            )


def test_exhaustive_returns_all_minimal_sets(sasrec):
    history = [sasrec.items[i] for i in (3, 5, 7, 9, 11)]
    e = get_explainer("exhaustive", max_size=5).explain(sasrec, history)
    assert e.valid
    original = _top1(sasrec, history)
    import itertools

    expected = [
        c
        for c in itertools.combinations(range(5), e.size)
        if _top1(sasrec, [t for p, t in enumerate(history) if p not in c]) != original
    ]
    assert list(e.sets) == expected
    smaller = [
        c
        for r in range(1, e.size)
        for c in itertools.combinations(range(5), r)
        if _top1(sasrec, [t for p, t in enumerate(history) if p not in c]) != original
    ]
    assert smaller == []


@pytest.mark.parametrize("name", NAMES)
def test_contract_schema_determinism_and_batch(sasrec, name):
    rng = np.random.default_rng(11)
    histories = [
        [sasrec.items[i] for i in rng.integers(1, sasrec.n_items, size=5 + j)] for j in range(3)
    ]
    explainer = get_explainer(name, max_size=2, seed=5)
    single = [explainer.explain(sasrec, h) for h in histories]
    batch = explainer.explain_many(sasrec, histories)
    again = get_explainer(name, max_size=2, seed=5).explain_many(sasrec, histories)
    for a, b, c, h in zip(single, batch, again, histories, strict=True):
        for x in (b, c):
            assert (x.sets, x.replacement, x.recommended) == (a.sets, a.replacement, a.recommended)
            assert [r.position for r in x.ranking] == [r.position for r in a.ranking]
            np.testing.assert_allclose(
                [r.score for r in x.ranking], [r.score for r in a.ranking], rtol=1e-5, atol=1e-5
            )
        d = json.loads(a.to_json())
        assert d["schema_version"] == 2 and d["explainer"] == name
        assert d["history"] == h and len(d["top_k"]) == 10
        assert {r["position"] for r in d["ranking"]} == set(range(len(h)))
        assert d["valid"] == bool(d["sets"]) and d["meta"]["params"]["max_size"] == 2
        assert d["model_calls"] >= 1 and d["seconds"] >= 0
        scores = [r["score"] for r in d["ranking"]]
        assert scores == sorted(scores, reverse=True)


def test_candidate_validation_is_batched(sasrec):
    history = [sasrec.items[i] for i in (2, 4, 6, 8, 10, 12, 14, 16)]
    e = get_explainer("exhaustive", max_size=3).explain(sasrec, history)
    assert e.histories_scored > 8 and e.model_calls <= 1 + 3
    c = get_explainer("causal", max_size=3).explain(sasrec, history)
    assert c.model_calls <= 2 + 3
    assert c.histories_scored >= c.meta["candidates_tested"] + 1


def test_edge_cases_one_item_and_duplicates(sasrec):
    one = [sasrec.items[5]]
    for name in NAMES:
        e = get_explainer(name).explain(sasrec, one)
        assert len(e.ranking) == 1
        if e.valid:
            assert e.sets == ((0,),)
    dup = [sasrec.items[3], sasrec.items[4], sasrec.items[3], sasrec.items[4]]
    e = get_explainer("causal").explain(sasrec, dup)
    assert e.history == tuple(dup) and len(e.ranking) == 4


class _IgnoresHistory(SASRecModel):
    """A model whose scores do not depend on the history: nothing can explain them."""

    def _score_batch(self, seqs):
        scores = torch.arange(self.n_items, dtype=torch.float32)
        return scores.expand(len(seqs), -1).clone()


def test_no_explanation_is_reported_honestly(sasrec):
    model = _IgnoresHistory(sasrec.net, sasrec.items, name="constant")
    history = [sasrec.items[i] for i in (1, 2, 3, 4)]
    for name in NAMES:
        e = get_explainer(name, max_size=2).explain(model, history)
        assert not e.valid and e.sets == () and e.replacement is None and e.size is None


def test_removal_modes_and_bad_parameters():
    ids = np.array([5, 6, 7, 8])
    assert remove_positions(ids, [1, 3], "delete").tolist() == [5, 7]
    assert remove_positions(ids, [1, 3], "pad").tolist() == [5, 0, 7, 0]
    with pytest.raises(InvalidInputError, match="max_size"):
        get_explainer("causal", max_size=0)
    with pytest.raises(InvalidInputError, match="removal"):
        get_explainer("recency", removal="erase")
    with pytest.raises(InvalidInputError, match="unknown explainer 'nope'"):
        get_explainer("nope")


@pytest.mark.parametrize("name", ["causal", "occlusion", "exhaustive"])
def test_exclude_seen_explains_an_unseen_item_against_a_fixed_pool(sasrec, name):
    rng = np.random.default_rng(5)
    for _ in range(4):
        history = [sasrec.items[i] for i in rng.integers(1, sasrec.n_items, size=6)]
        rec = sasrec.recommend([history], k=3, exclude_seen=True)[0]
        assert not set(rec.items) & set(history)
        e = get_explainer(name, max_size=2, exclude_seen=True).explain(sasrec, history)
        assert e.recommended == rec.top and e.meta["params"]["exclude_seen"] is True
        for positions in e.sets:
            kept = [t for p, t in enumerate(history) if p not in positions]
            scores = sasrec.score([kept])[0]
            scores[[sasrec.item_ids[t] for t in history]] = -np.inf  # the same pool as before
            new_top = sasrec.items[int(np.argmax(scores))]
            assert new_top != e.recommended and new_top not in history
            if positions == e.sets[0]:
                assert new_top == e.replacement


def test_registry_names_every_explainer_once():
    assert (
        explainer_names()
        == tuple(EXPLAINERS)
        == (
            "causal",
            "causal-paper",
            "attention",
            "recency",
            "random",
            "occlusion",
            "exhaustive",
            "integrated-gradients",
            "kernel-shap",
            "lime",
            "shapley-sampling",
        )
    )
    assert all(EXPLAINERS[n].name == n for n in explainer_names())


def test_causal_heads_all_searches_every_graph_and_records_the_one_kept(sasrec):
    rng = np.random.default_rng(13)
    histories = [
        [sasrec.items[i] for i in rng.integers(1, sasrec.n_items, size=7)] for _ in range(8)
    ]
    by_heads = {
        heads: CausalExplainer(heads=heads, max_size=2).explain_many(sasrec, histories)
        for heads in ("all", "each", "aggregate", 1)
    }
    more_than_aggregate = 0
    for u, h in enumerate(histories):
        e = by_heads["all"][u]
        kept = e.meta["graph_head"]
        # the key names the graph kept: a head's index, or None for the aggregate graph
        assert e.graph.meta["heads"] == ("aggregate" if kept is None else kept)
        assert e.graph.to_dict() == recausal.discover(sasrec, h, heads="all").pag(kept).to_dict()
        # "all" searches the union of the per-head trees and the aggregate tree
        each, aggregate = by_heads["each"][u], by_heads["aggregate"][u]
        assert e.meta["tree_nodes"] >= max(each.meta["tree_nodes"], aggregate.meta["tree_nodes"])
        more_than_aggregate += e.meta["tree_nodes"] > aggregate.meta["tree_nodes"]
        assert aggregate.meta["graph_head"] is None and aggregate.graph.meta["heads"] == "aggregate"
        one = by_heads[1][u]
        assert one.meta["graph_head"] == 1 and one.graph.meta["heads"] == 1
    assert more_than_aggregate > 0, "the per-head graphs should have been used"


def test_discover_stays_callable_after_use(sasrec):
    history = [sasrec.items[i] for i in (2, 4, 6, 8, 10)]
    first = recausal.discover(sasrec, history, heads="aggregate")
    second = recausal.discover(sasrec, history, heads="aggregate")
    recausal.get_explainer("causal", max_size=2).explain(sasrec, history)
    third = recausal.discover(sasrec, history, heads="all")
    assert callable(recausal.discover)
    assert first.pag().to_dict() == second.pag().to_dict() == third.pag().to_dict()
    # graphs are built once, on first use, and the bare PDS tree equals the full PAG's
    assert third.pag(0) is third.heads[0] and third.aggregate is third.pag()
    assert dict(third.pds_tree(0).nodes) == dict(third.pag(0).pds_tree().nodes)
    with pytest.raises(InvalidInputError, match="aggregate graph was not learned"):
        recausal.discover(sasrec, history, heads="each").pag()


def _random_histories(model, n=16, length=9, seed=11):
    rng = np.random.default_rng(seed)
    return [[model.items[int(i)] for i in rng.integers(1, model.n_items, length)] for _ in range(n)]


def test_causal_beyond_tree_keeps_the_papers_answers_and_adds_outside_sets(any_model):
    histories = _random_histories(any_model)
    paper = get_explainer("causal-paper", max_size=1).explain_many(any_model, histories)
    wide = get_explainer("causal-paper", max_size=1, beyond_tree=True).explain_many(
        any_model, histories
    )
    assert any(not p.valid for p in paper), "the test needs histories the tree cannot explain"
    for p, w in zip(paper, wide, strict=True):
        if p.valid:
            assert (w.sets, w.replacement, w.meta["beyond_tree"]) == (p.sets, p.replacement, False)
        elif w.valid:
            tree = set(p.graph.pds_tree().nodes)
            assert w.meta["beyond_tree"] and all(not set(s) <= tree for s in w.sets)
            assert w.meta["candidates_tested"] > p.meta["candidates_tested"]
    assert sum(w.valid for w in wide) > sum(p.valid for p in paper)


def test_causal_prefer_replacement_reorders_the_same_sets(any_model):
    histories = _random_histories(any_model, seed=12)
    tree = get_explainer("causal-paper", max_size=2).explain_many(any_model, histories)
    best = get_explainer("causal-paper", max_size=2, prefer="replacement").explain_many(
        any_model, histories
    )
    worst = len(tree[0].top_k) + 1
    for t, b in zip(tree, best, strict=True):
        assert sorted(t.sets) == sorted(b.sets)
        if b.valid:
            left = [x for p, x in enumerate(b.history) if p not in b.sets[0]]
            assert b.replacement == any_model.recommend([left], k=1)[0].items[0]
            assert (b.replacement_rank or worst) <= (t.replacement_rank or worst)


def test_causal_defaults_go_past_the_paper_and_causal_paper_is_the_paper():
    assert {
        k: get_explainer("causal").get_params()[k] for k in ("beyond_tree", "prefer", "rank_all")
    } == {"beyond_tree": True, "prefer": "replacement", "rank_all": True}
    paper = get_explainer("causal-paper", alpha=0.05).get_params()
    assert (paper["beyond_tree"], paper["prefer"], paper["rank_all"], paper["alpha"]) == (
        False,
        "tree",
        False,
        0.05,
    )


def test_causal_default_cap_tries_every_pair_of_the_window(any_model):
    # sizes 1 and 2 are searched in full whatever the tree: the cap binds from size 3 on
    pairs = math.comb(any_model.capacity, 2)
    assert get_explainer("causal").max_candidates >= pairs
    assert get_explainer("causal-paper").max_candidates >= pairs


def test_causal_rank_all_orders_the_items_outside_the_tree(any_model):
    history = _random_histories(any_model, n=1, length=12, seed=13)[0]
    paper = get_explainer("causal-paper").explain(any_model, history)
    ranked = get_explainer("causal-paper", rank_all=True).explain(any_model, history)
    assert ranked.sets == paper.sets
    assert all(r.score > 0 for r in ranked.ranking)
    in_tree = {r.position for r in paper.ranking if r.score > 0}
    # the tree's items keep their order, ahead of every item outside it
    assert [r.position for r in ranked.ranking[: len(in_tree)]] == [
        r.position for r in paper.ranking[: len(in_tree)]
    ]
