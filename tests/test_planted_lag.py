"""The planted dataset's lag: causes whose effect comes several items later, fillers between."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from recausal.data import dataset_histories, load_planted_dataset, make_planted_dataset
from recausal.errors import InvalidInputError
from recausal.testing.planted import planted_histories


@pytest.fixture(scope="module")
def lagged(tmp_path_factory):
    """A planted dataset whose effects come 1 to 3 items after their cause."""
    folder = tmp_path_factory.mktemp("lag") / "lag3"
    return make_planted_dataset(folder, name="lag3", n_users=400, max_lag=3, seed=1)


def test_default_max_lag_writes_the_bytes_of_the_shipped_copy(tmp_path):
    fresh = make_planted_dataset(tmp_path / "synthetic-planted", max_lag=1)
    shipped = load_planted_dataset("synthetic-planted")
    for suffix in ("inter", "item", "planted.json"):
        name = f"synthetic-planted.{suffix}"
        assert (fresh.path / name).read_bytes() == (shipped.path / name).read_bytes(), suffix
    assert shipped.max_lag == 1 and fresh == load_planted_dataset(fresh.path)


def test_every_effect_comes_within_max_lag_of_its_cause_with_only_fillers_between(lagged):
    histories = dataset_histories(lagged.files)
    cause_to_effect = lagged.cause_to_effect
    delays = np.zeros(lagged.max_lag + 1, dtype=int)
    for seq in histories.values():
        last_cause = None  # (position, token) of the latest cause
        for i, item in enumerate(seq):
            if item in lagged.effects:
                assert last_cause is not None
                at, cause = last_cause
                assert cause_to_effect[cause] == item
                assert 1 <= i - at <= lagged.max_lag
                between = seq[at + 1 : i]
                assert not (set(between) & (lagged.causes | lagged.effects))
                delays[i - at] += 1
                last_cause = None  # an effect closes its cause's window
            elif item in cause_to_effect:
                last_cause = (i, item)
    # Every delay occurs, about as often as the documented constant chance h per step predicts.
    h = 1 - (1 - lagged.follow_prob) ** (1 / lagged.max_lag)
    expected = np.array([h * (1 - h) ** (d - 1) for d in range(1, lagged.max_lag + 1)])
    shares = delays[1:] / delays.sum()
    assert delays.sum() > 800
    np.testing.assert_allclose(shares, expected / expected.sum(), atol=0.05)


def test_the_lag_is_recorded_and_read_back(lagged):
    meta = json.loads((lagged.path / "lag3.planted.json").read_text())
    assert meta["max_lag"] == 3 and "max_lag" in meta["rule"]
    assert load_planted_dataset(lagged.path) == lagged


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3", 12])
def test_bad_max_lag_is_refused_by_name(tmp_path, bad):
    with pytest.raises(InvalidInputError, match=r"max_lag=.*\[1, seq_len - 1 = 11\]"):
        make_planted_dataset(tmp_path / "x", seq_len=12, min_seq_len=8, max_lag=bad)


def test_a_corrupt_recorded_max_lag_is_refused(lagged, tmp_path):
    folder = tmp_path / "lag3"
    folder.mkdir()
    for path in lagged.path.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    meta_path = folder / "lag3.planted.json"
    meta = json.loads(meta_path.read_text())
    meta["max_lag"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InvalidInputError, match="max_lag"):
        load_planted_dataset(folder)


def _stub_model(planted):
    return SimpleNamespace(items=["[PAD]", *(str(i) for i in range(1, planted.n_items + 1))])


@pytest.mark.parametrize("lag", [1, 2, 3])
def test_planted_histories_put_the_only_cause_lag_items_from_the_end(lagged, lag):
    histories = planted_histories(_stub_model(lagged), lagged, n=12, lag=lag)
    assert len(histories) == 12
    for i, history in enumerate(histories):
        causes = [p for p, t in enumerate(history) if t in lagged.causes]
        assert causes == [len(history) - lag]
        assert history[causes[0]] == sorted(lagged.causes)[i % len(lagged.causes)]
        assert not set(history) & lagged.effects
        assert 4 + lag <= len(history) <= 8 + lag


def test_planted_histories_with_lag_one_are_unchanged(lagged):
    model = _stub_model(lagged)
    assert planted_histories(model, lagged, n=6) == planted_histories(model, lagged, n=6, lag=1)
    rng = np.random.default_rng(3)  # the draws of the helper before it took a lag
    fillers = [t for t in model.items[1:] if t not in lagged.causes | lagged.effects]
    first = [*rng.choice(fillers, size=int(rng.integers(4, 9))).tolist(), sorted(lagged.causes)[0]]
    assert planted_histories(model, lagged, n=1) == [first]


@pytest.mark.parametrize("lag", [0, 4, 1.5])
def test_planted_histories_refuse_a_lag_outside_the_window(lagged, lag):
    with pytest.raises(InvalidInputError, match=r"lag=.*max_lag=3"):
        planted_histories(_stub_model(lagged), lagged, lag=lag)
