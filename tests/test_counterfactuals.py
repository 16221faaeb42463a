"""Explanations that hold for the user's real history: the seen-item policy, counterfactuals on
the full history (older items slide into the model's window), and any item of the top-k."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recausal.errors import InvalidInputError, UnknownItemError
from recausal.explain import get_explainer
from recausal.explain.batch import Batch
from recausal.models import load_model

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
EXPLAINERS = ["causal", "attention", "recency", "occlusion", "random", "exhaustive"]


# --------------------------------------------------------------------------- planted data
# Causes 1..3; after cause c comes its first effect c+3 (probability 0.6) or its second effect
# c+6 (0.35): a model that learned this ranks the first effect #1 and the second #2 after a
# history ending with c, and the cause of the second effect's place in the list is c.
CAUSES, FIRST, SECOND = (1, 2, 3), (4, 5, 6), (7, 8, 9)
FILLERS = tuple(range(10, 21))


def _two_effect_dataset(folder: Path, n_users: int = 150, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(1, n_users + 1):
        seq: list[int] = []
        for _ in range(int(rng.integers(8, 13))):
            prev = seq[-1] if seq else 0
            u = rng.random()
            if prev in CAUSES and u < 0.95:
                seq.append(prev + 3 if u < 0.6 else prev + 6)
            elif rng.random() < 0.25:
                seq.append(int(rng.choice(CAUSES)))
            else:
                seq.append(int(rng.choice(FILLERS)))
        lines += [f"{user}\t{item}\t{1_000_000_000 + 86_400 * t}" for t, item in enumerate(seq)]
    folder.mkdir(parents=True)
    (folder / f"{folder.name}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def two_effects(tmp_path_factory):
    """A tiny SASRec trained on the two-effect data."""
    import torch

    from recausal.models.train import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("two-effects")
    data = _two_effect_dataset(root / "twoeffects")
    result = train(
        CONFIGS / "sasrec-synthetic.yaml",
        root / "bundle",
        overrides={"dataset": str(data), "epochs": 20},
        verbose=False,
    )
    return load_model(result.bundle)


def _ending_with_causes(model, n: int = 24, seed: int = 5) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [
        [*map(str, rng.choice(FILLERS, size=int(rng.integers(4, 8)))), str(CAUSES[i % 3])]
        for i in range(n)
    ]


@pytest.mark.parametrize("name", ["exhaustive", "causal", "occlusion"])
def test_the_cause_of_the_second_item_of_the_list_is_found(two_effects, name):
    model = two_effects
    histories = [
        h
        for h in _ending_with_causes(model)
        if model.recommend([h], k=3, exclude_seen=False)[0].items[1] == str(int(h[-1]) + 6)
    ]
    assert len(histories) >= 12, "the tiny model should rank the second effect #2"
    explainer = get_explainer(name, max_size=2, exclude_seen=False)
    found = [explainer.explain(model, h, k=3, rank=2) for h in histories]
    assert all(e.recommended == str(int(h[-1]) + 6) for e, h in zip(found, histories, strict=True))
    assert all(e.rank == 2 and e.criterion == "leaves the top-k" for e in found)
    hits = [e.valid and e.sets[0] == (len(h) - 1,) for e, h in zip(found, histories, strict=True)]
    if name == "causal":
        # The tree around the second item often misses its cause (no explanation then), but
        # when the causal explainer answers, it names the planted cause.
        assert sum(hits) >= 3 and sum(hits) >= 0.9 * sum(e.valid for e in found), hits
    else:
        assert np.mean(hits) >= 0.8, hits
    for e, h in zip(found, histories, strict=True):
        if e.valid:  # the criterion holds when the set is removed from the history
            left = [t for p, t in enumerate(h) if p not in e.sets[0]]
            assert e.recommended not in model.recommend([left], k=3, exclude_seen=False)[0].items
            assert e.new_rank > 3


def test_item_and_rank_name_the_same_explanation(two_effects):
    model = two_effects
    history = _ending_with_causes(model)[0]
    top = model.recommend([history], k=5, exclude_seen=False)[0].items
    explainer = get_explainer("occlusion", max_size=2, exclude_seen=False)
    by_rank = explainer.explain(model, history, k=5, rank=3)
    by_item = explainer.explain(model, history, k=5, item=top[2])
    assert by_rank.recommended == by_item.recommended == top[2]
    assert by_rank.sets == by_item.sets and by_rank.rank == by_item.rank == 3
    top1 = explainer.explain(model, history, k=5)
    assert top1.rank == 1 and top1.criterion == "top-1 changes" and top1.recommended == top[0]


def test_bad_item_or_rank_is_a_clear_error(two_effects):
    model = two_effects
    history = _ending_with_causes(model)[0]
    explainer = get_explainer("recency", exclude_seen=False)
    top = model.recommend([history], k=5, exclude_seen=False)[0].items
    outside = next(t for t in model.items[1:] if t not in top)
    with pytest.raises(UnknownItemError, match="not known"):
        explainer.explain(model, history, k=5, item="no-such-item")
    with pytest.raises(InvalidInputError, match="not in the top-5"):
        explainer.explain(model, history, k=5, item=outside)
    for rank in (0, 6):
        with pytest.raises(InvalidInputError, match="rank"):
            explainer.explain(model, history, k=5, rank=rank)
    with pytest.raises(InvalidInputError, match="not both"):
        explainer.explain(model, history, k=5, item=top[1], rank=2)


# --------------------------------------------------------------------------- full history
def _long_history(model, extra: int = 6, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    return [model.items[int(i)] for i in rng.integers(1, model.n_items, model.capacity + extra)]


def test_deletion_edits_the_full_history_and_older_items_slide_in(sasrec):
    history = _long_history(sasrec)
    full = sasrec.encode(history, window=False)
    batch = Batch(sasrec, [full])
    assert batch.offsets == [len(history) - sasrec.capacity]
    edited = batch.edit(0, [0, 3], "delete")
    # what the model reads once the two items are removed from the user's real history
    kept = [t for p, t in enumerate(history) if p - batch.offsets[0] not in (0, 3)]
    assert edited.tolist() == sasrec.encode(kept, warn=False).tolist()
    assert len(edited) == sasrec.capacity  # two older items slid in: the window stays full
    padded = batch.edit(0, [0, 3], "pad")
    assert len(padded) == sasrec.capacity and padded[0] == padded[3] == 0
    assert padded[1:3].tolist() == full[batch.offsets[0] + 1 : batch.offsets[0] + 3].tolist()


def test_the_seen_mask_hides_each_rows_own_full_history(sasrec):
    fulls = [sasrec.encode(_long_history(sasrec, seed=s), window=False) for s in (1, 2, 3)]
    batch = Batch(sasrec, fulls, exclude_seen=True)
    owners = [2, 0, 2, 1]  # rows in any order, a history more than once
    scores = batch.mask_seen(np.zeros((len(owners), sasrec.n_items)), owners)
    for row, u in enumerate(owners):
        hidden = set(np.flatnonzero(np.isinf(scores[row])).tolist())
        assert hidden == set(fulls[u].tolist())  # older than the window too
    kept = Batch(sasrec, fulls, exclude_seen=False).mask_seen(np.zeros((1, 5)), [0])
    assert not np.isinf(kept).any()


@pytest.mark.parametrize("name", EXPLAINERS)
@pytest.mark.parametrize("removal", ["delete", "pad"])
def test_every_valid_explanation_holds_for_the_full_history(sasrec, name, removal):
    explainer = get_explainer(name, max_size=2, removal=removal, exclude_seen=False)
    histories = [_long_history(sasrec, extra=e, seed=s) for s, e in enumerate((1, 4, 9, 15))]
    if name == "exhaustive":
        histories = histories[:2]
    for history, e in zip(histories, explainer.explain_many(sasrec, histories), strict=True):
        assert e.history == tuple(history)
        assert e.window_start == len(history) - sasrec.capacity
        assert all(e.window_start <= r.position < len(history) for r in e.ranking)
        if not e.valid:
            continue
        assert all(e.window_start <= p for p in e.sets[0])
        if removal == "delete":
            left = [t for p, t in enumerate(history) if p not in e.sets[0]]
            new_top = sasrec.recommend([left], k=1, exclude_seen=False)[0].items[0]
            assert e.slid_in == tuple(range(e.window_start - len(e.sets[0]), e.window_start))
        else:
            ids = sasrec.encode(history, window=False)
            ids[list(e.sets[0])] = 0
            new_top = sasrec.items[int(np.argmax(sasrec.score_ids([ids[e.window_start :]])[0]))]
            assert e.slid_in == ()
        assert new_top != e.recommended and new_top == e.replacement


# --------------------------------------------------------------------------- seen items
@pytest.fixture()
def no_repeats(sasrec_bundle):
    """The tiny SASRec, told that its dataset has no repeated interactions."""
    model = load_model(sasrec_bundle)
    model.meta["dataset"] = {**model.meta.get("dataset", {}), "repeated_interactions": False}
    return model


def test_the_seen_policy_follows_the_data_and_can_be_overridden(sasrec, no_repeats, planted):
    assert sasrec.repeated_interactions is True and sasrec.excludes_seen is False
    assert no_repeats.excludes_seen is True
    history = [t for t in sasrec.user_history(sasrec_user(planted))]
    default = no_repeats.recommend([history], k=10)[0].items
    assert not set(default) & set(history)
    kept = no_repeats.recommend([history], k=10, exclude_seen=False)[0].items
    assert kept == sasrec.recommend([history], k=10)[0].items
    with pytest.raises(InvalidInputError, match="exclude_seen"):
        no_repeats.recommend([history], exclude_seen="yes")


def sasrec_user(planted) -> str:
    """A user of the planted data whose history repeats an item."""
    from recausal.data import dataset_histories

    histories = dataset_histories(planted.files.directory)
    return next(u for u, h in histories.items() if len(set(h)) < len(h))


@pytest.mark.parametrize("name", EXPLAINERS)
def test_recommended_and_replacement_are_never_seen_items(no_repeats, planted, name):
    from recausal.data import dataset_histories

    histories = [h for h in dataset_histories(planted.files.directory).values()][:12]
    explainer = get_explainer(name, max_size=2)
    for history, e in zip(histories, explainer.explain_many(no_repeats, histories), strict=True):
        assert e.exclude_seen is True and e.meta["params"]["exclude_seen"] is True
        assert e.recommended not in history and not set(e.top_k) & set(history)
        # the removed items stay masked: the replacement is never an item of the history
        assert e.replacement is None or e.replacement not in history


# --------------------------------------------------------------------------- interfaces
def test_cli_explains_any_item_of_the_list(sasrec_bundle, sasrec):
    from click.testing import CliRunner

    from recausal.cli import cli

    base = ["explain", "-m", str(sasrec_bundle), "--user", "1", "-e", "occlusion", "--json"]
    result = CliRunner().invoke(cli, [*base, "--rank", "3"])
    assert result.exit_code == 0, result.output
    by_rank = json.loads(result.stdout)
    assert by_rank["rank"] == 3 and by_rank["criterion"] == "leaves the top-k"
    assert by_rank["recommended"] == by_rank["top_k"][2]
    result = CliRunner().invoke(cli, [*base, "--item", by_rank["recommended"]])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sets"] == by_rank["sets"]
    outside = next(t for t in sasrec.items[1:] if t not in by_rank["top_k"])
    bad = [
        ["--item", "no-such-item"],
        ["--item", outside],
        ["--rank", "0"],
        ["--rank", "11"],
        ["--item", by_rank["recommended"], "--rank", "3"],
    ]
    for args in bad:
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_service_explains_any_item_of_the_list(sasrec):
    from starlette.testclient import TestClient

    from recausal.service.app import create_app

    with TestClient(create_app({"sasrec": sasrec})) as client:
        body = {"user": "1", "explainer": "occlusion", "k": 5, "include_graph": False}
        answer = client.post("/explain", json={**body, "rank": 2})
        assert answer.status_code == 200, answer.text
        expl = answer.json()["explanation"]
        assert expl["rank"] == 2 and expl["recommended"] == expl["top_k"][1]
        same = client.post("/explain", json={**body, "item": expl["recommended"]}).json()
        assert same["explanation"]["sets"] == expl["sets"]
        outside = next(t for t in sasrec.items[1:] if t not in expl["top_k"])
        for bad in ({"rank": 6}, {"rank": 0}, {"item": outside}, {"item": "x", "rank": 1}):
            answer = client.post("/explain", json={**body, **bad})
            assert 400 <= answer.status_code < 500 and "error" in answer.json(), bad


def test_popularity_ranks_without_seen_items_by_hand():
    from recausal.data.popularity import popularity_metrics

    # leave-one-out: u1 trains on a b c a, tests a b c a x -> d; u2 trains on a b, tests
    # a b y -> z. Training counts a 3, b 2, c 1: the ranking is a b c d x y z.
    histories = {"u1": ["a", "b", "c", "a", "x", "d"], "u2": ["a", "b", "y", "z"]}
    items = ["a", "b", "c", "d", "x", "y", "z"]
    kept = popularity_metrics(histories, k=2, items=items)
    excluded = popularity_metrics(histories, k=2, items=items, exclude_seen=True)
    # kept: d at 4, z at 7; without seen items: d at 1 (a b c seen), z at 4 (a b y seen)
    assert kept.test == {"hit@2": 0.0, "ndcg@2": 0.0}
    assert excluded.test == {"hit@2": 0.5, "ndcg@2": 0.5}
