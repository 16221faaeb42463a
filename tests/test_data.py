"""Tests of the data layer: atomic files, histories, planted dataset, popularity baseline."""

from __future__ import annotations

import itertools
import math
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from recausal.data import (
    DatasetFiles,
    dataset_fingerprint,
    dataset_histories,
    item_titles,
    leave_one_out,
    load_planted_dataset,
    make_planted_dataset,
    make_tiny_planted_dataset,
    parse_header,
    popularity_baseline,
    read_atomic,
    recbole_normalizes_time,
    resolve_dataset,
    user_histories,
)
from recausal.data.popularity import hit_ndcg, popularity_ranking
from recausal.errors import InvalidInputError

REPO = Path(__file__).resolve().parents[1]
HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def write_dataset(root: Path, name: str, rows: list[str], header: str = HEADER) -> Path:
    """Write ``root/name/name.inter`` from tab-separated rows; return the folder."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.inter").write_text(header + "".join(r + "\n" for r in rows))
    return folder


# --- atomic files -------------------------------------------------------------------------


def test_parse_header_names_and_types():
    fields = parse_header("user_id:token\tscore:float\ttags:token_seq\tvec:float_seq\n")
    assert [(f.name, f.type) for f in fields] == [
        ("user_id", "token"),
        ("score", "float"),
        ("tags", "token_seq"),
        ("vec", "float_seq"),
    ]


@pytest.mark.parametrize(
    "header, fragment",
    [
        ("user_id\titem_id:token", "'user_id'"),
        ("user_id:token\titem_id:int", "'int'"),
        ("user_id:token\tuser_id:float", "twice"),
        (":token", "':token'"),
        ("", "empty"),
        ("user_id:token item_id:token", "separated by tabs"),
    ],
)
def test_parse_header_rejects_malformed(header, fragment):
    with pytest.raises(InvalidInputError, match=fragment):
        parse_header(header, source="x.inter")


def test_read_atomic_types(tmp_path):
    path = tmp_path / "t.item"
    path.write_text(
        "item_id:token\tprice:float\ttitle:token_seq\tvec:float_seq\n"
        "007\t1.5\tToy Story\t0.5 2\n"
        "8\t\tHeat\t\n"
    )
    frame = read_atomic(path)
    assert list(frame.columns) == ["item_id", "price", "title", "vec"]
    assert frame["item_id"].tolist() == ["007", "8"]  # tokens stay strings: no int parsing
    assert frame["price"].iloc[0] == 1.5 and math.isnan(frame["price"].iloc[1])
    assert frame["title"].tolist() == [("Toy", "Story"), ("Heat",)]
    assert frame["vec"].tolist() == [(0.5, 2.0), ()]
    assert frame.attrs["field_types"]["title"] == "token_seq"


def test_read_atomic_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_atomic(tmp_path / "missing.inter")
    bad_cells = tmp_path / "cells.inter"
    bad_cells.write_text(HEADER + "u1\ti1\t5\nu1\ti2\n")
    with pytest.raises(InvalidInputError, match="line 3 has 2"):
        read_atomic(bad_cells)
    bad_float = tmp_path / "float.inter"
    bad_float.write_text(HEADER + "u1\ti1\tyesterday\n")
    with pytest.raises(InvalidInputError, match=r"'timestamp'.*'yesterday'"):
        read_atomic(bad_float)
    bad_header = tmp_path / "header.inter"
    bad_header.write_text("user_id:token\titem_id\n")
    with pytest.raises(InvalidInputError, match="'item_id'"):
        read_atomic(bad_header)


# --- finding datasets ---------------------------------------------------------------------


def test_resolve_dataset_forms(tmp_path):
    folder = write_dataset(tmp_path, "mini", ["u1\ti1\t1"])
    (folder / "mini.item").write_text("item_id:token\ttitle:token_seq\ni1\tOne\n")
    by_dir = resolve_dataset(folder)
    assert by_dir == resolve_dataset("mini", data_path=tmp_path)
    assert by_dir == resolve_dataset(folder / "mini.inter")
    assert by_dir.name == "mini" and by_dir.item == folder / "mini.item" and by_dir.user is None
    assert by_dir.data_path == tmp_path


def test_resolve_dataset_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="known"):
        resolve_dataset(str(tmp_path / "nowhere"))
    with pytest.raises(InvalidInputError, match="data_path"):
        resolve_dataset("mini", data_path=tmp_path / "nowhere")
    with pytest.raises(InvalidInputError, match="expected"):
        resolve_dataset("mini", data_path=tmp_path)
    folder = tmp_path / "named-differently"
    folder.mkdir()
    (folder / "other.inter").write_text(HEADER)
    with pytest.raises(InvalidInputError, match=r"other\.inter"):
        resolve_dataset(folder)


def test_foreign_ml100k_folder_rejected(tmp_path):
    folder = write_dataset(tmp_path, "ml-100k", ["u\ti\t1"])
    with pytest.raises(InvalidInputError, match="bundled"):
        resolve_dataset(folder)
    copy = tmp_path / "copy" / "ml-100k"
    copy.mkdir(parents=True)
    for path in resolve_dataset("ml-100k").paths:
        shutil.copy(path, copy / path.name)
    assert resolve_dataset("ml-100k", data_path=copy.parent).directory == copy


def test_known_datasets_resolve():
    ml = resolve_dataset("ml-100k")
    assert ml.inter.name == "ml-100k.inter" and ml.item is not None and ml.user is not None
    assert "recbole" in ml.directory.parts
    planted = resolve_dataset("synthetic-planted")
    assert planted.inter.is_file() and planted.item is not None


# --- histories ----------------------------------------------------------------------------

# Rows in file order (users interleaved). u1's a and b are 30 s apart: as raw float32 they tie
# (float32 values near 1e9 are 64 apart), so RecBole keeps file order a, b; min-max scaled over
# the file's 1e5 s span they differ, so RecBole orders b, a. u2's d and e tie exactly.
TIE_ROWS = [
    "u2\tc\t1000100000",
    "u1\ta\t1000000030",
    "u2\td\t1000000500",
    "u1\tb\t1000000000",
    "u2\te\t1000000500",
    "u1\tf\t1000000100",
    "u3\tx\t1000050000",
    "u1\tg\t1000000200",
]


def test_histories_mirror_recbole_ties(tmp_path):
    assert np.float32(1000000030.0) == np.float32(1000000000.0)  # the premise of the case
    inter = read_atomic(write_dataset(tmp_path, "ties", TIE_ROWS) / "ties.inter")
    raw = user_histories(inter, normalize_time=False)
    assert list(raw) == ["u2", "u1", "u3"]  # first appearance in the file
    assert raw == {"u2": ["d", "e", "c"], "u1": ["a", "b", "f", "g"], "u3": ["x"]}
    scaled = user_histories(inter, normalize_time=True)
    assert scaled == {"u2": ["d", "e", "c"], "u1": ["b", "a", "f", "g"], "u3": ["x"]}


def test_recbole_normalizes_time_defaults():
    assert recbole_normalizes_time("ml-100k") is True
    assert recbole_normalizes_time("anything") is False
    assert recbole_normalizes_time("anything", {"normalize_all": True}) is True
    assert recbole_normalizes_time("ml-100k", {"normalize_all": None}) is False
    assert recbole_normalizes_time("x", {"normalize_field": ["timestamp"]}) is True


def test_leave_one_out_by_length():
    split = leave_one_out({"a": list("pqrs"), "b": list("pqr"), "c": list("pq"), "d": ["p"]})
    assert split.train == {"a": ("p", "q"), "b": ("p", "q"), "c": ("p", "q")}
    assert [(c.user, c.history, c.target) for c in split.valid] == [("a", ("p", "q"), "r")]
    assert [(c.user, c.history, c.target) for c in split.test] == [
        ("a", ("p", "q", "r"), "s"),
        ("b", ("p", "q"), "r"),
    ]


def _recbole_cases(tmp_path: Path, folder: Path, extra: dict, monkeypatch) -> tuple:
    """RecBole's own (valid, test, train-target counts) for the dataset in ``folder``."""
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])  # RecBole's Config reads the command line
    from recbole.config import Config
    from recbole.data import create_dataset

    settings = {
        "data_path": str(folder.parent),
        "checkpoint_dir": str(tmp_path / "saved"),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "use_gpu": False,
        "MAX_ITEM_LIST_LENGTH": 50,
        **extra,
    }
    config = Config(model="SASRec", dataset=folder.name, config_dict=settings)
    train, valid, test = create_dataset(config).build()

    def cases(part) -> dict[str, tuple[list[str], str]]:
        feat = part.inter_feat
        users = part.id2token("user_id", feat["user_id"].numpy())
        targets = part.id2token("item_id", feat["item_id"].numpy())
        out = {}
        for row, (user, target) in enumerate(zip(users, targets, strict=True)):
            length = int(feat["item_length"][row])
            seq = part.id2token("item_id", feat["item_id_list"][row][:length].numpy())
            out[str(user)] = ([str(t) for t in seq], str(target))
        return out

    train_targets = Counter(str(t) for t in train.id2token("item_id", train.inter_feat["item_id"]))
    return cases(valid), cases(test), train_targets


@pytest.mark.filterwarnings("ignore::FutureWarning")  # RecBole's pandas inplace fillna
@pytest.mark.parametrize(
    "which, extra",
    [("ties", {}), ("ties", {"normalize_all": True}), ("planted", {})],
)
def test_histories_equal_recbole_sequences(tmp_path, monkeypatch, which, extra):
    if which == "ties":
        folder = write_dataset(tmp_path, "ties", TIE_ROWS)
    else:
        folder = make_tiny_planted_dataset(tmp_path / "tiny-planted").path
    rb_valid, rb_test, rb_train = _recbole_cases(tmp_path, folder, extra, monkeypatch)
    split = leave_one_out(dataset_histories(folder, extra))
    assert {c.user: (list(c.history), c.target) for c in split.valid} == rb_valid
    assert {c.user: (list(c.history), c.target) for c in split.test} == rb_test
    assert Counter(i for seq in split.train.values() for i in seq[1:]) == rb_train
    if which == "ties":  # the two settings really order u1 differently
        expected = ["b", "a", "f"] if extra else ["a", "b", "f"]
        assert rb_test["u1"] == (expected, "g")


# --- titles and fingerprints --------------------------------------------------------------


def test_item_titles_ml100k_and_missing(tmp_path):
    titles = item_titles("ml-100k")
    assert titles["1"] == "Toy Story (1995)"
    assert len(titles) == 1682
    assert item_titles(write_dataset(tmp_path, "bare", ["u\ti\t1"])) == {}


def test_fingerprint_stable_and_content_bound(tmp_path):
    folder = write_dataset(tmp_path, "fp", TIE_ROWS)
    first = dataset_fingerprint(folder)
    assert (
        first
        == dataset_fingerprint(resolve_dataset(folder))
        == resolve_dataset(folder).fingerprint()
    )
    assert len(first) == 64 and int(first, 16) >= 0
    copy = tmp_path / "elsewhere" / "renamed"
    copy.mkdir(parents=True)
    shutil.copy(folder / "fp.inter", copy / "renamed.inter")
    assert dataset_fingerprint(copy) == first  # name and place do not matter
    (copy / "renamed.item").write_text("item_id:token\na\n")
    assert dataset_fingerprint(copy) != first  # an added .item file does
    (folder / "fp.inter").write_text(HEADER + "".join(r + "\n" for r in TIE_ROWS[:-1]))
    assert dataset_fingerprint(folder) != first  # and so does content


# --- the planted dataset ------------------------------------------------------------------


def test_planted_deterministic(tmp_path):
    one = make_tiny_planted_dataset(tmp_path / "a" / "tiny", seed=3)
    two = make_tiny_planted_dataset(tmp_path / "b" / "tiny", seed=3)
    other = make_tiny_planted_dataset(tmp_path / "c" / "tiny", seed=4)
    for suffix in ("inter", "item", "planted.json"):
        assert (one.path / f"tiny.{suffix}").read_bytes() == (
            two.path / f"tiny.{suffix}"
        ).read_bytes()
    assert (one.path / "tiny.inter").read_bytes() != (other.path / "tiny.inter").read_bytes()
    assert load_planted_dataset(one.path) == one


def test_shipped_planted_copy_regenerates_identically(tmp_path):
    shipped = resolve_dataset("synthetic-planted")
    fresh = make_planted_dataset(tmp_path / "synthetic-planted")
    assert fresh.files.fingerprint() == shipped.fingerprint()
    assert load_planted_dataset("synthetic-planted").pairs == fresh.pairs
    assert shipped.inter.stat().st_size < 300_000


def test_planted_rule_holds():
    planted = load_planted_dataset("synthetic-planted")
    histories = dataset_histories(planted.files)
    assert len(histories) == planted.n_users
    cause_to_effect = planted.cause_to_effect
    followed = occurrences = ends_with_cause = 0
    for seq in histories.values():
        assert planted.min_seq_len <= len(seq) <= planted.seq_len
        for prev, nxt in itertools.pairwise(seq):
            if nxt in planted.effects:
                assert cause_to_effect.get(prev) == nxt  # an effect only ever follows its cause
            if prev in cause_to_effect:
                occurrences += 1
                followed += nxt == cause_to_effect[prev]
        ends_with_cause += seq[-1] in cause_to_effect
    rate = followed / occurrences
    sd = math.sqrt(planted.follow_prob * (1 - planted.follow_prob) / occurrences)
    assert occurrences > 1000 and abs(rate - planted.follow_prob) < 4 * sd
    assert ends_with_cause >= planted.end_with_cause * planted.n_users * 0.85
    titles = item_titles(planted.files)
    assert titles["1"] == "cause 1" and titles[cause_to_effect["1"]] == "effect 1"


def test_planted_rejects_bad_parameters(tmp_path):
    with pytest.raises(InvalidInputError, match="follow_prob"):
        make_planted_dataset(tmp_path / "x", follow_prob=1.5)
    with pytest.raises(InvalidInputError, match="n_items"):
        make_planted_dataset(tmp_path / "x", n_items=20, n_pairs=10)
    with pytest.raises(InvalidInputError, match="min_seq_len"):
        make_planted_dataset(tmp_path / "x", seq_len=5, min_seq_len=6)


# --- popularity baseline ------------------------------------------------------------------

# u1: a b c d e -> train a b c, valid abc->d, test abcd->e
# u2: a b d c   -> train a b,   valid ab->d,  test abd->c
# u3: b a c     -> train b a,   test ba->c (no valid case with 3 items)
# u4: e d       -> train e d, no case;  u5: f -> no sample at all
# Training counts a 3, b 3, c 1, d 1, e 1, f 0; ties by first appearance: a b c d e f.
POP_ROWS = [
    *(f"u1\t{item}\t{t}" for t, item in enumerate("abcde")),
    *(f"u2\t{item}\t{t}" for t, item in enumerate("abdc")),
    *(f"u3\t{item}\t{t}" for t, item in enumerate("bac")),
    *(f"u4\t{item}\t{t}" for t, item in enumerate("ed")),
    "u5\tf\t0",
]


def test_popularity_ranking_hand_computed(tmp_path):
    folder = write_dataset(tmp_path, "pop", POP_ROWS)
    assert popularity_ranking(dataset_histories(folder)) == list("abcdef")


@pytest.mark.parametrize(
    "k, valid, test",
    [
        # valid targets d, d rank 4; test targets e, c, c rank 5, 3, 3 (history not masked:
        # u2's a and b stay above c).
        (3, (0.0, 0.0), (2 / 3, (0.5 + 0.5) / 3)),
        (4, (1.0, 1 / math.log2(5)), (2 / 3, (0.5 + 0.5) / 3)),
        (5, (1.0, 1 / math.log2(5)), (1.0, (1 / math.log2(6) + 0.5 + 0.5) / 3)),
    ],
)
def test_popularity_baseline_hand_computed(tmp_path, k, valid, test):
    folder = write_dataset(tmp_path, "pop", POP_ROWS)
    result = popularity_baseline(folder, k=k)
    assert (result.n_valid, result.n_test, result.n_items) == (2, 3, 6)
    assert result.valid == pytest.approx({f"hit@{k}": valid[0], f"ndcg@{k}": valid[1]})
    assert result.test == pytest.approx({f"hit@{k}": test[0], f"ndcg@{k}": test[1]})
    assert result.to_dict()["test"] == result.test


def test_hit_ndcg_equals_recbole_metrics(monkeypatch):
    from recbole.evaluator.metrics import NDCG, Hit

    monkeypatch.setattr(np, "float", float, raising=False)  # RecBole 1.2.1 uses np.float
    rng = np.random.default_rng(0)
    ranks = rng.integers(1, 30, size=200)
    k = 10
    pos_index = np.zeros((ranks.size, k), dtype=bool)
    for row, rank in enumerate(ranks):
        if rank <= k:
            pos_index[row, rank - 1] = True
    ours = hit_ndcg(ranks.tolist(), k)
    assert ours["hit@10"] == pytest.approx(Hit.metric_info(None, pos_index)[:, -1].mean())
    ndcg = NDCG.metric_info(None, pos_index, np.ones(ranks.size, dtype=int))[:, -1].mean()
    assert ours["ndcg@10"] == pytest.approx(ndcg)
    with pytest.raises(InvalidInputError, match="k=0"):
        hit_ndcg([1], 0)


def test_popularity_ml100k_regression():
    result = popularity_baseline("ml-100k")
    assert (result.n_valid, result.n_test, result.n_items) == (943, 943, 1682)
    # Measured with this code (RecBole's ordering with normalize_all: True, as for ml-100k).
    assert result.valid == pytest.approx({"hit@10": 36 / 943, "ndcg@10": 0.0173337}, abs=1e-6)
    assert result.test == pytest.approx({"hit@10": 47 / 943, "ndcg@10": 0.0224088}, abs=1e-6)


def test_dataset_files_is_frozen():
    files = resolve_dataset("ml-100k")
    assert isinstance(files, DatasetFiles)
    with pytest.raises(AttributeError):
        files.name = "x"  # type: ignore[misc]
