"""The time budget of an explanation: without one nothing changes; a budget that runs out stops
the search between two batched model calls, and the explanation, marked incomplete, holds only
true findings; the service answers such an explanation with 200 (not 504) and frees the model
at once; ``recausal explain --time-budget`` says the explanation is incomplete."""

from __future__ import annotations

import importlib.util
import json
import time
from typing import Any

import numpy as np
import pytest

from recausal.errors import InvalidInputError
from recausal.explain import IntegratedGradientsExplainer, get_explainer
from recausal.explain.batch import Batch
from recausal.explain.search import Deadline

#: explainers without extras, and the parameters they are tried with
PLAIN = {
    "causal": {},
    "causal-wide": {"beyond_tree": True},
    "attention": {},
    "recency": {},
    "random": {},
    "occlusion": {},
    "exhaustive": {},
}

needs_captum = pytest.mark.skipif(
    importlib.util.find_spec("captum") is None or importlib.util.find_spec("sklearn") is None,
    reason="needs the captum extra",
)


def _explainer(key: str, **params: Any):
    return get_explainer(key.removesuffix("-wide"), max_size=2, **PLAIN[key], **params)


def _histories(model, n: int = 6) -> list[list[str]]:
    return [list(model.user_history(str(u))) for u in range(1, n + 1)]


def _after_calls(model, n: int) -> Deadline:
    """A deadline that passes once ``model`` has made ``n`` more forward passes (a clock that
    counts model calls: deterministic wherever the machine is busy)."""
    return Deadline(model.forward_passes + n, clock=lambda: model.forward_passes)


def _without_seconds(e) -> dict[str, Any]:
    d = e.to_dict()
    d.pop("seconds")
    return d


def _findings(e) -> tuple:
    return (e.sets, e.replacement, e.replacement_rank, e.new_rank, e.valid, e.ranking)


def _changes_top1(model, history: list[str], positions: tuple[int, ...], item: str) -> bool:
    left = [t for p, t in enumerate(history) if p not in positions]
    return model.recommend([left], k=1, exclude_seen=False)[0].items[0] != item


# --------------------------------------------------------------------------- the library
def test_a_budget_is_seconds_or_a_deadline():
    assert Deadline.of(None) == Deadline() and not Deadline().bounded
    assert not Deadline.of(1e9).passed and Deadline.of(0).passed
    mine = Deadline(5.0, clock=lambda: 4.0)
    assert Deadline.of(mine) is mine and not mine.passed
    for bad in (-1, float("nan"), "1", True):
        with pytest.raises(InvalidInputError, match="time_budget"):
            Deadline.of(bad)


@pytest.mark.parametrize("key", sorted(PLAIN))
@pytest.mark.parametrize("batch_size", [7, Batch.batch_size])
def test_without_a_budget_nothing_changes(any_model, key, batch_size, monkeypatch):
    """No budget, or one that never runs out (the search then scores in pieces of
    ``batch_size`` rows, the model calls it makes anyway): the same explanations, counts
    included, marked complete."""
    monkeypatch.setattr(Batch, "batch_size", batch_size)
    histories = _histories(any_model)
    plain = [_without_seconds(e) for e in _explainer(key).explain_many(any_model, histories)]
    assert all(d["complete"] is True for d in plain)
    for budget in (None, 1e9, Deadline(1e18)):
        again = _explainer(key).explain_many(any_model, histories, time_budget=budget)
        assert [_without_seconds(e) for e in again] == plain, budget
    one = _explainer(key).explain(any_model, histories[0], rank=2, time_budget=1e9)
    assert _without_seconds(one) == _without_seconds(
        _explainer(key).explain(any_model, histories[0], rank=2)
    )


@pytest.mark.parametrize("key", sorted(PLAIN))
def test_a_spent_budget_skips_the_search(sasrec, key):
    """A budget of 0: the history's own scores and the one-pass ranking (attention, graph
    learning, occlusion) are computed, no candidate set is scored."""
    histories = _histories(sasrec, 3)
    whole = _explainer(key).explain_many(sasrec, histories)
    spent = _explainer(key).explain_many(sasrec, histories, time_budget=0)
    for h, e, w in zip(histories, spent, whole, strict=True):
        # complete only where there was nothing to try (a causal tree with no history item)
        assert e.complete == (w.meta.get("candidates_tested") == 0)
        assert e.to_dict()["complete"] is e.complete
        assert not e.valid and e.sets == () and e.replacement is None and e.size is None
        assert sorted(r.position for r in e.ranking) == list(range(e.window_start, len(h)))
        one_pass = len(h) - e.window_start if key == "occlusion" else 0
        assert e.histories_scored == 1 + one_pass  # the history itself, nothing validated
        if key in ("attention", "recency", "random", "occlusion"):
            assert e.ranking == w.ranking  # the ranking is all there before the search


@pytest.mark.parametrize("key", ["causal", "causal-wide", "exhaustive", "recency"])
def test_a_budget_cut_short_keeps_only_true_findings(sasrec, key, monkeypatch):
    """One model call per candidate set, and a budget of ``n`` model calls for every ``n``:
    each explanation cut short is marked incomplete, and the sets it holds are sets the whole
    search finds, of the same size, whose removal does change the top-1."""
    monkeypatch.setattr(Batch, "batch_size", 1)
    explainer = _explainer(key, exclude_seen=False)
    cut_with_a_set = 0
    for history in _histories(sasrec, 4):
        whole = explainer.explain(sasrec, history)
        assert whole.complete
        for n in range(whole.model_calls + 1):
            e = explainer.explain(sasrec, history, time_budget=_after_calls(sasrec, n))
            assert e.model_calls <= max(n, 2)  # the baseline and attention passes always run
            if e.complete:
                assert _findings(e) == _findings(whole), n
                continue
            assert n < whole.model_calls
            assert set(e.sets) <= set(whole.sets), n
            if e.sets:
                cut_with_a_set += 1
                assert e.size == whole.size
            for s in e.sets:
                assert _changes_top1(sasrec, history, s, e.recommended), (n, s)
        last = explainer.explain(sasrec, history, time_budget=_after_calls(sasrec, 10**6))
        assert _without_seconds(last) == _without_seconds(whole)
    if key != "recency":  # a prefix search that found its set is complete
        assert cut_with_a_set > 0, "no search was cut after its first valid set"


@needs_captum
@pytest.mark.parametrize(
    "name, params",
    [
        ("integrated-gradients", {"n_steps": 4}),
        ("kernel-shap", {"n_samples": 30}),
        ("shapley-sampling", {"n_permutations": 2}),
    ],
)
def test_attributions_stop_between_model_calls(sasrec, name, params, monkeypatch):
    """The attributions are computed history by history until the budget runs out: those
    computed are the whole run's; the others score 0, with no set, marked incomplete."""
    monkeypatch.setattr(IntegratedGradientsExplainer, "rows_per_pass", params.get("n_steps", 1))
    explainer = get_explainer(name, max_size=2, **params)
    histories = _histories(sasrec, 3)
    whole = explainer.explain_many(sasrec, histories)
    assert all(e.complete for e in whole)
    seen_partial = False
    for n in range(0, 12):
        got = explainer.explain_many(sasrec, histories, time_budget=_after_calls(sasrec, n))
        done = [e.ranking == w.ranking for e, w in zip(got, whole, strict=True)]
        assert done == sorted(done, reverse=True)  # in order: the first ones were computed
        for e, computed in zip(got, done, strict=True):
            if not computed:
                assert not e.complete and not e.valid
                assert all(r.score == 0 for r in e.ranking)
        seen_partial |= any(done) and not all(done)
    assert seen_partial


# --------------------------------------------------------------------------- the service
class _SlowScoring:
    """A model whose every scoring call (``score_ids``) takes ``delay`` seconds more."""

    def __init__(self, model: Any, delay: float) -> None:
        self._model = model
        self._delay = delay

    def score_ids(self, *args: Any, **kwargs: Any) -> np.ndarray:
        time.sleep(self._delay)
        return self._model.score_ids(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def test_the_service_passes_the_budget_on(sasrec, monkeypatch):
    """With no time left to search, the service answers 200 with the explanation so far,
    ``"complete": false``; with the default budget, the explanation is complete."""
    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    from starlette.testclient import TestClient

    from recausal.service import pool
    from recausal.service.app import create_app

    body = {"user": "1", "max_size": 2}
    with TestClient(create_app({"sasrec": sasrec})) as c:
        whole = c.post("/explain", json=body)
        monkeypatch.setattr(pool, "SEARCH_SHARE", 0.0)
        spent = c.post("/explain", json=body)
        page = c.get("/explain/1.html", params={"max_size": 2})
    assert whole.status_code == 200 and whole.json()["explanation"]["complete"] is True
    assert spent.status_code == 200, spent.text
    e = spent.json()["explanation"]
    assert e["complete"] is False and e["valid"] is False and e["sets"] == []
    assert e["model_calls"] == 2  # the history's scores and its attention, nothing validated
    assert len(e["ranking"]) == len(sasrec.user_history("1")) - e["window_start"]
    assert page.status_code == 200


def test_an_explanation_past_its_budget_answers_200_and_frees_the_model(sasrec, monkeypatch):
    """Every model call takes 0.6 s and each candidate set is one call, so the whole search
    takes longer than the 5 s budget: the explanation stops searching at half the budget and
    answers 200 with what it found, marked incomplete, well within the budget; the model is
    free at once."""
    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    import httpx

    from recausal.service import pool
    from recausal.service.app import create_app
    from recausal.testing.server import serving

    monkeypatch.setattr(Batch, "batch_size", 1)
    monkeypatch.setattr(pool, "SEARCH_SHARE", 0.5)
    history = list(sasrec.user_history("1"))
    assert len(history) >= 8  # 1 + 8 calls of 0.6 s: past the budget without it
    app = create_app({"slow": _SlowScoring(sasrec, 0.6)}, time_budget=5.0)
    body = {"history": history, "explainer": "exhaustive", "max_size": 2, "exclude_seen": False}
    with serving(app) as (url, _), httpx.Client(base_url=url, timeout=30) as c:
        t0 = time.perf_counter()
        r = c.post("/explain", json=body)
        took = time.perf_counter() - t0
        pending = app.state.models["slow"].pending
        t0 = time.perf_counter()
        after = c.post("/recommend", json={"history": history, "k": 3})
        next_s = time.perf_counter() - t0
    app.state.pool.close()
    assert r.status_code == 200, r.text
    e = r.json()["explanation"]
    assert e["complete"] is False
    assert 2.5 <= took < 5.0, took
    assert pending == 0 and after.status_code == 200 and next_s < 1.0, (pending, next_s)
    for s in e["sets"]:
        assert _changes_top1(sasrec, history, tuple(s["positions"]), e["recommended"])


# --------------------------------------------------------------------------- the command line
def test_explain_command_takes_a_time_budget(sasrec_bundle):
    from click.testing import CliRunner

    from recausal.cli import cli

    args = ["explain", "-m", str(sasrec_bundle), "--user", "1", "-e", "recency"]
    spent = CliRunner().invoke(cli, [*args, "--time-budget", "0"])
    assert spent.exit_code == 0, spent.output
    assert "Incomplete: the time budget ran out" in spent.output
    assert "No explanation found within the time budget" in spent.output
    as_json = CliRunner().invoke(cli, [*args, "--time-budget", "0", "--json"])
    assert json.loads(as_json.output)["complete"] is False
    whole = CliRunner().invoke(cli, [*args, "--time-budget", "100"])
    assert whole.exit_code == 0 and "Incomplete" not in whole.output
    bad = CliRunner().invoke(cli, [*args, "--time-budget", "-1"])
    assert bad.exit_code == 2 and "--time-budget" in bad.output
