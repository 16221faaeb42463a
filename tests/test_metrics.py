"""Evaluation measures against hand computations: perturbation curves (LXR), counterfactual
measures (CFExpRec), bootstrap intervals, paired tests, and the rows' version."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from recausal.errors import InvalidInputError
from recausal.evaluate import evaluate, rows_frame, summarize
from recausal.evaluate.chunk import (
    curve_sizes,
    pn_r,
    pn_s_list,
    probabilities,
    ranks_in_rows,
    row_measures,
)
from recausal.evaluate.measures import paired_tests, perturbation_curve, user_measures
from recausal.evaluate.schema import COLUMNS
from recausal.evaluate.spec import JobSpec
from recausal.evaluate.stats import (
    bootstrap_ci,
    bootstrap_cis,
    mcnemar_exact,
    statistic,
    wilcoxon_signed_rank,
)
from recausal.explain import Explanation, get_explainer
from recausal.explain.batch import Batch
from recausal.explain.explanation import RankedItem
from recausal.testing.planted import planted_histories

NEG_INF = -np.inf


# ---------------------------------------------------------------- row-level building blocks
def test_curve_sizes_are_ceil_of_j_n_over_10():
    assert curve_sizes(10) == list(range(1, 11))
    assert curve_sizes(5) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert curve_sizes(12) == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]  # ceil(1.2) = 2, ...
    assert curve_sizes(1) == [1] * 10


def test_rank_and_probability_of_hand_made_score_rows():
    scores = np.array(
        [
            [NEG_INF, 2.0, 3.0, 2.0, 1.0],  # item 3: one above (2), one tie with a lower id (1)
            [NEG_INF, 0.0, 0.0, 0.0, 0.0],  # item 4: ties with 1, 2, 3, all lower ids
            [NEG_INF, 5.0, NEG_INF, 1.0, 0.0],  # item 1 first; item 2 masked
        ]
    )
    assert ranks_in_rows(scores, np.array([3, 4, 1])).tolist() == [3, 4, 1]
    assert ranks_in_rows(scores, np.array([1, 1, 4])).tolist() == [2, 1, 3]
    p = probabilities(scores, np.array([3, 4, 2]))
    e = math.exp
    assert p[0] == pytest.approx(e(2) / (e(2) + e(3) + e(2) + e(1)))
    assert p[1] == pytest.approx(0.25)
    assert p[2] == 0.0  # a masked item has probability 0


def test_pn_s_list_and_pn_r_by_hand():
    before, after = [1, 2, 3, 4, 5], [1, 7, 3, 8, 2]  # 7 (rank 2) and 8 (rank 4) are new
    assert pn_s_list(before, after) == 2 / 5
    ideal = sum(1 / math.log2(i + 1) for i in range(1, 6))
    assert pn_r(before, after) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert pn_s_list(before, before[::-1]) == 0.0 and pn_r(before, before[::-1]) == 0.0
    assert pn_s_list([1, 2], [3, 4]) == 1.0 and pn_r([1, 2], [3, 4]) == pytest.approx(1.0)
    assert pn_r([1, 2], [3, 1]) == pytest.approx(1 / (1 + 1 / math.log2(3)))  # new at the top


class BagModel:
    """A tiny model whose scores are a bias plus the summed weights of the history's items.

    Items: a, b, c (histories), d, e, f, g (candidates). Bias d=1, e=2, f=0, g=2.5; weights
    a->f 3, b->f 1, c->f 5, c->e 1. Padding (id 0) weighs nothing.
    """

    items = ("[PAD]", "a", "b", "c", "d", "e", "f", "g")

    def __init__(self, capacity: int = 10) -> None:
        self.capacity = capacity
        self.item_ids = {t: i for i, t in enumerate(self.items) if i > 0}
        self.n_items = len(self.items)
        self.bias = np.array([0, 0, 0, 0, 1, 2, 0, 2.5])
        self.weights = np.zeros((8, 8))
        a, b, c, e, f = 1, 2, 3, 5, 6
        self.weights[a, f], self.weights[b, f], self.weights[c, f], self.weights[c, e] = 3, 1, 5, 1

    def encode(self, history, *, warn=True, window=True):
        ids = np.array([self.item_ids[t] for t in history], dtype=np.int64)
        return ids[-self.capacity :] if window else ids

    def score_ids(self, seqs, batch_size=1024):
        out = np.array(
            [self.bias + self.weights[np.asarray(s, dtype=np.int64)].sum(0) for s in seqs]
        )
        out[:, 0] = NEG_INF
        return out.astype(np.float32)


def _explanation(model, history, order, sets, k=2) -> Explanation:
    """An explanation of the top-1 with the given ranking (full-history positions)."""
    return Explanation(
        explainer="hand",
        history=tuple(history),
        recommended="f",
        score=0.0,
        top_k=("f", "e")[:k],
        sets=sets,
        ranking=tuple(RankedItem(p, history[p], float(-i)) for i, p in enumerate(order)),
        replacement=None,
        replacement_rank=None,
        valid=bool(sets),
        max_size=3,
        removal="delete",
        model_calls=1,
        histories_scored=1,
        seconds=0.0,
        window_start=max(0, len(history) - model.capacity),
        exclude_seen=True,
    )


def _spec(removal="delete", deletion_max=5) -> JobSpec:
    return JobSpec(("hand",), 3, 2, removal, 0, deletion_max, 1)


def _softmax_of(scores: dict[str, float], item: str) -> float:
    return math.exp(scores[item]) / sum(math.exp(v) for v in scores.values())


def test_row_measures_of_a_bag_of_items_model_by_hand():
    model = BagModel()
    # history a, b, c: scores d 1, e 3, f 9, g 2.5 (a, b, c are seen: masked); top-2 (f, e)
    # ranking c (2), a (0), b (1); n = 3, steps remove m = 1,1,1,2,2,2,3,3,3,3 items
    expl = _explanation(model, ["a", "b", "c"], [2, 0, 1], ((0, 2),))
    (found,) = row_measures(model, [expl], _spec())
    # POS: -{c}: f 4 -> rank 1; -{c, a}: f 1 < g 2.5, e 2, tie with d (lower id) -> rank 4
    assert found["pos_ranks"] == [1, 1, 1, 4, 4, 4, 4, 4, 4, 4]
    # NEG: -{b}: f 8 -> 1; -{a, b}: f 5 -> 1; all: f 0 -> 4
    assert found["neg_ranks"] == [1, 1, 1, 1, 1, 1, 4, 4, 4, 4]
    dels = [
        _softmax_of({"d": 1, "e": 2, "f": 4, "g": 2.5}, "f"),
        _softmax_of({"d": 1, "e": 2, "f": 1, "g": 2.5}, "f"),
        _softmax_of({"d": 1, "e": 2, "f": 0, "g": 2.5}, "f"),
    ]
    assert found["del_probs"] == pytest.approx([dels[0]] * 3 + [dels[1]] * 3 + [dels[2]] * 4)
    ins = [  # only c; only c and a; everything
        _softmax_of({"d": 1, "e": 3, "f": 5, "g": 2.5}, "f"),
        _softmax_of({"d": 1, "e": 3, "f": 8, "g": 2.5}, "f"),
        _softmax_of({"d": 1, "e": 3, "f": 9, "g": 2.5}, "f"),
    ]
    assert found["ins_probs"] == pytest.approx([ins[0]] * 3 + [ins[1]] * 3 + [ins[2]] * 4)
    # the set {a, c} leaves b: top-2 (g, e): f falls to rank 4 (out of the top-2), one of two
    # replaced, the newcomer g at rank 1
    assert found["pn_s_item"] is True
    assert found["pn_s_list"] == 0.5
    assert found["pn_r"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # deletion (criterion: top-1 changes): -{c} no; -{c, a} g on top; -all g on top
    assert found["deletion"] == [False, True, True, None, None]
    # no set: nothing is removed
    (none,) = row_measures(model, [dataclasses.replace(expl, sets=(), valid=False)], _spec())
    assert (none["pn_s_item"], none["pn_s_list"], none["pn_r"]) == (False, 0.0, 0.0)


def test_row_measures_follow_the_removal_rule_of_the_window():
    model = BagModel(capacity=2)  # history a, b, c: the window is b, c (offset 1)
    expl = _explanation(model, ["a", "b", "c"], [2, 1], ())  # n = 2: m = 1 x5, then 2 x5
    (deleted,) = row_measures(model, [expl], _spec("delete"))
    # delete: -c lets a slide in (a, b: f 4); -{b, c} leaves a (f 3 > g 2.5): rank 1 throughout
    assert deleted["pos_ranks"] == [1] * 10
    (padded,) = row_measures(model, [expl], _spec("pad"))
    # pad: -c reads (b, pad): f 1 -> rank 4; -{b, c} reads padding only: f 0 -> rank 4
    assert padded["pos_ranks"] == [4] * 10


def test_rank_in_rows_agrees_with_the_batch_rule(sasrec):
    rng = np.random.default_rng(2)
    histories = [[sasrec.items[i] for i in rng.integers(1, sasrec.n_items, 7)] for _ in range(3)]
    fulls = [sasrec.encode(h, window=False) for h in histories]
    batch = Batch(sasrec, fulls, True)
    bases = batch.baselines(10, ranks=[1, 3, 5])
    owners = [u for u in range(3) for _ in range(6)]
    seqs = [
        batch.edit(u, sorted(rng.choice(len(batch.ids[u]), 1 + j % 4, replace=False)), "delete")
        for j, u in enumerate(owners)
    ]
    new_rank = batch.outcomes(owners, seqs, bases).new_rank
    scores = batch.score(owners, seqs)
    for row, u in enumerate(owners):
        scores[row, fulls[u]] = -np.inf  # the seen-item policy, by hand
    targets = np.array([bases[u].target for u in owners])
    assert ranks_in_rows(scores, targets).tolist() == new_rank.tolist()


def test_curves_of_the_planted_model_separate_the_cause_from_fillers(sasrec, planted):
    histories = [
        h
        for h in planted_histories(sasrec, planted)
        if sasrec.recommend([h], k=1)[0].top == planted.cause_to_effect[h[-1]]
    ]
    assert len(histories) >= 12
    # recency ranks the most recent item, the cause, first; reversed it ranks it last
    first = get_explainer("recency", max_size=3).explain_many(sasrec, histories)
    assert all(e.ranking[0].position == len(e.history) - 1 for e in first)
    last = [dataclasses.replace(e, ranking=e.ranking[::-1]) for e in first]
    spec = _spec()
    auc = {}
    for name, expls in (("first", first), ("last", last)):
        found = row_measures(sasrec, expls, spec)
        auc[name] = {
            kind: np.mean([np.mean(np.array(f[f"{kind}_ranks"]) <= 1) for f in found])
            for kind in ("pos", "neg")
        }
    # removing the cause first drops the effect from the top-1 at once; removing it last
    # keeps it there until the last step
    assert auc["first"]["pos"] < auc["last"]["pos"] - 0.3, auc
    assert auc["first"]["neg"] > auc["last"]["neg"] + 0.3, auc


# ---------------------------------------------------------------- summary measures
def _row(user, name, *, valid=True, size=1, pos=None, neg=None, dels=None, ins=None, pn=None,
         error=None):  # fmt: skip
    pn = pn or (False, 0.0, 0.0)
    return {
        **dict.fromkeys(COLUMNS),
        "user": user,
        "explainer": name,
        "valid": valid and error is None,
        "size": size if valid else None,
        "top_k": ["x"],
        "set_positions": [0] * (size or 0) if valid else [],
        "sets": [],
        "deletion": [],
        "model_calls": 1,
        "pos_ranks": pos if pos is not None else [1] * 10,
        "neg_ranks": neg if neg is not None else [1] * 10,
        "del_probs": dels if dels is not None else [0.0] * 10,
        "ins_probs": ins if ins is not None else [0.0] * 10,
        "pn_s_item": pn[0],
        "pn_s_list": pn[1],
        "pn_r": pn[2],
        "error": error,
    }


def _measure_rows() -> pd.DataFrame:
    return rows_frame(
        [
            _row("1", "causal", pos=[1, 1, 2, 2, 5, 5, 8, 8, 30, 30], neg=[1] * 5 + [6] * 5,
                 dels=[0.1] * 5 + [0.3] * 5, ins=[0.2] * 10, pn=(True, 0.5, 0.6)),
            _row("2", "causal", size=3, pos=[3] * 10, neg=[25] * 10, dels=[0.5] * 10,
                 ins=[0.4] * 5 + [0.0] * 5, pn=(False, 0.1, 0.05)),
            _row("1", "random", valid=False, pos=[1] * 10, neg=[1] * 10, dels=[0.9] * 10),
            _row("2", "random", size=2, pos=[1] * 10, pn=(True, 1.0, 1.0)),
            _row("3", "random", error="InvalidInputError: boom"),
        ]
    )  # fmt: skip


def test_auc_and_counterfactual_measures_equal_hand_computed_values():
    s = summarize(_measure_rows(), n_boot=0)
    c, r = s.loc["causal"], s.loc["random"]
    # POS@1: user 1 in the top-1 at 2 of 10 steps, user 2 never -> (0.2 + 0) / 2
    assert c["pos_auc_1"] == pytest.approx(0.1)
    assert c["pos_auc_5"] == pytest.approx((0.6 + 1.0) / 2)
    assert c["pos_auc_10"] == pytest.approx((0.8 + 1.0) / 2)
    assert c["pos_auc_20"] == pytest.approx((0.8 + 1.0) / 2)
    assert c["neg_auc_1"] == pytest.approx((0.5 + 0.0) / 2)
    assert c["neg_auc_5"] == pytest.approx(0.25) and c["neg_auc_10"] == pytest.approx(0.5)
    assert c["neg_auc_20"] == pytest.approx(0.5)
    assert c["del_auc"] == pytest.approx((0.2 + 0.5) / 2)
    assert c["ins_auc"] == pytest.approx((0.2 + 0.2) / 2)
    assert c["pn_s_item"] == 0.5 and c["pn_s_list"] == pytest.approx(0.3)
    assert c["pn_r"] == pytest.approx(0.325)
    # random: user 3 is an error and left out; user 1 has no explanation (PN 0, no size)
    assert (r["users"], r["errors"]) == (2, 1)
    assert r["valid_share"] == 0.5 and r["size_mean"] == 2.0
    assert r["pos_auc_1"] == 1.0 and r["del_auc"] == pytest.approx(0.45)
    assert r["pn_s_item"] == 0.5 and r["pn_s_list"] == 0.5 and r["pn_r"] == 0.5
    assert math.isnan(c["pos_auc_1_ci_low"])  # no resamples, no interval
    curve = perturbation_curve(_measure_rows(), "pos", 1, n_boot=0)
    causal = curve[curve["explainer"] == "causal"].set_index("step")["value"]
    assert causal[1] == 0.5 and causal[3] == 0.0 and list(causal.index) == list(range(1, 11))
    values = user_measures(_measure_rows())
    assert len(values) == 4  # the error row is left out
    assert values.loc[0, "pos_auc_5"] == pytest.approx(0.6)


def test_rows_without_the_new_columns_give_undefined_measures():
    old = [{k: v for k, v in _row("1", "causal").items() if k not in ("pos_ranks", "pn_r")}]
    s = summarize(rows_frame(old), n_boot=10)
    assert math.isnan(s.loc["causal", "pos_auc_1"]) and math.isnan(s.loc["causal", "pn_r"])
    assert s.loc["causal", "valid_share"] == 1.0


def test_paired_tests_against_causal_by_hand():
    rows = [_row(str(u), "causal", size=1, pos=[1] * 10) for u in range(6)]
    rows += [_row(str(u), "random", valid=u == 0, size=2, pos=[1] * (10 - u) + [9] * u)
             for u in range(6)]  # fmt: skip
    frame = rows_frame(rows)
    tests = paired_tests(frame).set_index("measure")
    # validity: causal alone valid for 5 users, random alone for none: p = 2 / 2^5
    assert tests.loc["valid", "p_value"] == pytest.approx(0.0625)
    assert tests.loc["valid", "n"] == 6 and tests.loc["valid", "statistic"] == 0
    # size: one pair (user 0), difference -1: exact p = 1
    assert tests.loc["size", "n"] == 1 and tests.loc["size", "p_value"] == pytest.approx(1.0)
    # POS@1 AUC: differences 0, .1, .2, .3, .4, .5 -> five nonzero, all one sign: p = 2 / 2^5
    assert tests.loc["pos_auc_1", "p_value"] == pytest.approx(0.0625)
    assert tests.loc["pos_auc_1", "reference"] == 1.0
    assert tests.loc["pos_auc_1", "other"] == pytest.approx(0.75)
    s = summarize(frame, n_boot=0)
    assert s.loc["random", "p_vs_causal_valid"] == pytest.approx(0.0625)
    assert math.isnan(s.loc["causal", "p_vs_causal_valid"])
    assert paired_tests(frame[frame["explainer"] == "random"]).empty  # no reference


# ---------------------------------------------------------------- statistics
def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (30, 3000):
        values = (rng.random(n) < 0.3).astype(float)
        lo, hi = bootstrap_ci(values, n_boot=1000, seed=0)
        assert lo <= statistic(values) <= hi
        widths.append(hi - lo)
        assert bootstrap_ci(values, n_boot=1000, seed=0) == (lo, hi)  # seeded
    assert widths[1] < widths[0] / 5  # about sqrt(100) = 10 times narrower
    sizes = rng.integers(1, 6, 200).astype(float)
    lo, hi = bootstrap_ci(sizes, "median", n_boot=500, seed=1)
    assert lo <= np.median(sizes) <= hi


def test_bootstrap_skips_undefined_values_and_shares_resamples():
    assert bootstrap_ci(np.array([1.0, np.nan, 1.0, np.nan]), n_boot=200) == (1.0, 1.0)
    lo, hi = bootstrap_ci(np.array([0.0, 1.0]), n_boot=1000)  # resample means 0, .5, 1
    assert (lo, hi) == (0.0, 1.0)
    x = np.arange(50, dtype=float)
    both = bootstrap_cis({"a": (x, "mean"), "b": (2 * x, "mean")}, n_boot=300, seed=4)
    assert both["b"] == pytest.approx((2 * both["a"][0], 2 * both["a"][1]))
    assert both["a"] == bootstrap_ci(x, n_boot=300, seed=4)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([np.nan, np.nan])))


def test_mcnemar_exact_on_known_cases():
    def pairs(b, c, concordant=0):
        first = [True] * b + [False] * c + [True] * concordant
        second = [False] * b + [True] * c + [True] * concordant
        return mcnemar_exact(np.array(first), np.array(second))

    assert pairs(5, 0).p_value == pytest.approx(2 / 32)
    assert pairs(5, 0, concordant=7).p_value == pytest.approx(2 / 32)  # concordant pairs: no say
    assert pairs(1, 9).p_value == pytest.approx(2 * 11 / 1024)  # 2 P(X <= 1), X ~ Bin(10, 1/2)
    assert pairs(3, 3).p_value == 1.0 and pairs(0, 0, concordant=4).p_value == 1.0
    assert pairs(1, 9).statistic == 1 and pairs(1, 9).n == 10


def test_wilcoxon_signed_rank_on_known_cases():
    # all five differences positive: exact two-sided p = 2 / 2^5, smaller rank sum 0
    result = wilcoxon_signed_rank(np.array([1, 2, 3, 4, 5.0]), np.zeros(5))
    assert (result.n, result.statistic, result.p_value) == (5, 0.0, pytest.approx(0.0625))
    # one negative (rank 2): W- = 2; P(W <= 2) = |{}, {1}, {2}| / 32, two-sided 6/32
    result = wilcoxon_signed_rank(np.array([1, -2, 3, 4, 5.0]), np.zeros(5))
    assert result.statistic == 2.0 and result.p_value == pytest.approx(6 / 32)
    # zero differences are dropped
    dropped = wilcoxon_signed_rank(np.array([0, 1, 2, 3, 4, 5.0]), np.zeros(6))
    assert dropped.n == 5 and dropped.p_value == pytest.approx(0.0625)
    assert wilcoxon_signed_rank(np.ones(3), np.ones(3)).p_value == 1.0
    assert math.isnan(wilcoxon_signed_rank(np.array([]), np.array([])).p_value)


# ---------------------------------------------------------------- the whole run
def test_run_writes_curves_measures_intervals_tests_and_plots(sasrec, tmp_path):
    out = tmp_path / "run"
    rows = evaluate(sasrec, ["causal", "recency"], users=4, chunk_size=2, out=out)
    ok = rows[rows["error"].isna()]
    for _, row in ok.iterrows():
        assert len(row["pos_ranks"]) == len(row["neg_ranks"]) == 10
        assert row["pos_ranks"][-1] == row["neg_ranks"][-1]  # both remove everything
        assert all(0 <= p <= 1 for p in row["del_probs"] + row["ins_probs"])
        # INS at the last step keeps the whole window: the item's probability as recommended
        scores = sasrec.score([sasrec.user_history(row["user"])])[0].astype(np.float64)
        if sasrec.excludes_seen:
            scores[[sasrec.item_ids[t] for t in sasrec.user_history(row["user"])]] = -np.inf
        target = sasrec.item_ids[row["recommended"]]
        expected = probabilities(scores[None], np.array([target]))[0]
        assert row["ins_probs"][-1] == pytest.approx(expected, rel=1e-4)
        assert row["pn_s_item"] == (row["valid"] and row["pn_s_item"])
    for name in ("perturbation.png", "probability.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    record = summary["summary"][1]
    assert record["explainer"] == "recency" and "pos_auc_1_ci_low" in record
    assert "p_vs_causal_valid" in record
    assert {t["measure"] for t in summary["paired_tests"]} >= {"valid", "size", "pos_auc_1"}
    text = (out / "summary.md").read_text()
    assert "POS@1" in text and "PN_S@k item" in text and "Paired tests against `causal`" in text


def test_a_journal_of_earlier_rows_is_refused(sasrec, tmp_path):
    out = tmp_path / "run"
    evaluate(sasrec, ["recency"], users=2, out=out, plots=False)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["arguments"]["rows_version"] == 2
    del manifest["arguments"]["rows_version"]  # as written before the rows had curves
    path.write_text(json.dumps(manifest))
    with pytest.raises(InvalidInputError, match="rows_version"):
        evaluate(sasrec, ["recency"], users=2, out=out, plots=False)
