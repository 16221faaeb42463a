"""Bundle metadata validation: every bad field of config.json, meta.json or items.json, and
weights that do not fit the config, give a BundleError naming the file and the field."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recausal.errors import (
    BundleError,
    InvalidInputError,
    RecausalError,
    UnsupportedModelError,
)
from recausal.models import load_model
from recausal.models.bundle import SHIPPED_DIR, read_bundle, save_bundle
from recausal.models.loading import from_bundle

SASREC = SHIPPED_DIR / "sasrec-ml100k"
BERT4REC = SHIPPED_DIR / "bert4rec-ml100k"
DELETE = object()


def _edit(data: Any, dotted: str, value: Any) -> Any:
    """Set (or with ``DELETE`` remove) the entry at a dotted path of parsed JSON."""
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


def _copy(tmp_path: Path, source: Path = SASREC) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(source, bundle)
    return bundle


def _rewrite(bundle: Path, name: str, change) -> None:
    path = bundle / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


C, M, ITEMS = "config.json", "meta.json", "items.json"
BAD_FIELDS = [
    (C, "recbole.hidden_size", "64", "must be an integer; got '64'"),
    (C, "recbole.MAX_ITEM_LIST_LENGTH", "abc", "must be an integer; got 'abc'"),
    (C, "recbole.MAX_ITEM_LIST_LENGTH", 1, "must be >= 2; got 1"),
    (C, "n_items", -5, "must be >= 2; got -5"),
    (C, "n_items", 1683.0, "must be an integer; got 1683.0"),
    (C, "n_items", DELETE, "is missing"),
    (C, "recbole", [], "must be a JSON object; got []"),
    (C, "recbole.ITEM_ID_FIELD", DELETE, "is missing"),
    (C, "model", 42, "must be a string; got 42"),
    (C, "recbole.n_layers", True, "must be an integer; got True"),
    (C, "recbole.n_layers", 10**9, "must be <= 64"),
    (C, "recbole.hidden_act", "nope", "must be 'gelu', 'relu'"),
    (C, "recbole.hidden_dropout_prob", 1.5, "must be <= 1"),
    (C, "recbole.layer_norm_eps", 0, "must be > 0"),
    (C, "recbole.model", "BERT4Rec", "is 'BERT4Rec' but field 'model' is 'SASRec'"),
    (M, "dataset", "ml-100k", "must be a JSON object; got 'ml-100k'"),
    (M, "dataset", None, "must be a JSON object; got None"),
    (M, "dataset.repeated_interactions", "yes", "must be true or false; got 'yes'"),
    (M, "training.history", {"epoch": 0}, "must be a JSON list"),
    (M, "training.stopped_early", "no", "must be true or false"),
    (M, "training.epochs_run", -1, "must be >= 0"),
    (M, "metrics.test.hit@10", "high", "must be a number; got 'high'"),
    (M, "weights_sha256", "abc", "must match"),
    (M, "format_version", "1", "is '1'"),
    (ITEMS, "3", 3, "must be a string (an item token); got 3"),
]


@pytest.mark.parametrize(("name", "field", "value", "problem"), BAD_FIELDS)
def test_a_bad_field_is_a_bundle_error_naming_file_and_field(tmp_path, name, field, value, problem):
    bundle = _copy(tmp_path)
    _rewrite(bundle, name, lambda data: _edit(data, field, value))
    shown = f"entry [{field}]" if name == ITEMS else f"field '{field}'"
    with pytest.raises(BundleError, match=re.escape(f"{shown} {problem}")) as err:
        load_model(bundle)
    assert f"{bundle / name}: " in str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "field", "value", "expected"),
    [
        (M, "model", "BERT4Rec", r"meta\.json's field 'model' is 'BERT4Rec' but config\.json's"),
        (M, "format", "other", r"meta\.json is not a recausal bundle's metadata"),
        (ITEMS, "2", "242", r"items\.json: token '242' appears at ids 1 and 2"),
    ],
)
def test_parts_that_disagree_are_a_bundle_error(tmp_path, name, field, value, expected):
    bundle = _copy(tmp_path)
    _rewrite(bundle, name, lambda data: _edit(data, field, value))
    with pytest.raises(BundleError, match=expected):
        load_model(bundle)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (C, [1, 2], r"config\.json must hold a JSON object; got \[1, 2\]"),
        (M, [], r"meta\.json is not a recausal bundle's metadata"),
        (ITEMS, {"0": "[PAD]"}, r"items\.json must be a JSON list of item tokens"),
        (ITEMS, ["[PAD]"], r"items\.json has 1 entries"),
    ],
)
def test_a_file_of_the_wrong_kind_is_a_bundle_error(tmp_path, name, content, expected):
    bundle = _copy(tmp_path)
    (bundle / name).write_text(json.dumps(content))
    with pytest.raises(BundleError, match=expected):
        load_model(bundle)


def test_a_duplicate_token_would_hide_an_item_and_is_refused(tmp_path):
    """Two ids with one token: the first would be unknown (the map keeps the last)."""
    bundle = _copy(tmp_path)
    items = json.loads((bundle / "items.json").read_text())
    items[-1] = items[10]
    (bundle / "items.json").write_text(json.dumps(items))
    with pytest.raises(BundleError, match=rf"token '{items[10]}' appears at ids 10 and 1682"):
        read_bundle(bundle)


def test_items_json_must_be_as_long_as_n_items(tmp_path):
    bundle = _copy(tmp_path)
    _rewrite(bundle, "items.json", lambda items: items[:-1])
    with pytest.raises(BundleError, match=r"items\.json has 1682 tokens but config\.json's "):
        load_model(bundle)


def _forbid_real_builds(monkeypatch) -> list[bool]:
    """Record every network build; a real (memory-backed) one fails the test."""
    from recausal.models import loading

    builds: list[bool] = []
    original = loading.build_network

    def recording(*args, shapes_only=False, **kwargs):
        builds.append(shapes_only)
        assert shapes_only, "the real network was built before the weights were checked"
        return original(*args, shapes_only=shapes_only, **kwargs)

    monkeypatch.setattr(loading, "build_network", recording)
    return builds


NETWORK = r"the SASRec network that config\.json describes \(n_items 1683\)"
MISFITS = [
    ("recbole.hidden_size", 32, rf"tensor 'item_embedding\.weight' of shape \(1683, 64\), "
     rf"where {NETWORK} has \(1683, 32\)"),
    ("recbole.MAX_ITEM_LIST_LENGTH", 49, r"tensor 'position_embedding\.weight' of shape "
     r"\(50, 64\), where .* has \(49, 64\)"),
    ("recbole.n_layers", 3, r"no tensor 'trm_encoder\.layer\.2\."),
    ("recbole.n_layers", 1, rf"a tensor 'trm_encoder\.layer\.1\..*', which {NETWORK} does not"),
    ("recbole.hidden_size", 65536, r"tensor 'item_embedding\.weight' of shape \(1683, 64\)"),
]  # fmt: skip


@pytest.mark.parametrize(("field", "value", "expected"), MISFITS)
def test_weights_that_do_not_fit_the_config_are_refused_before_building(
    tmp_path, monkeypatch, field, value, expected
):
    bundle = _copy(tmp_path)
    _rewrite(bundle, "config.json", lambda data: _edit(data, field, value))
    builds = _forbid_real_builds(monkeypatch)
    with pytest.raises(BundleError, match=r"model\.safetensors has " + expected) as err:
        load_model(bundle)
    assert builds == [True]
    assert "must come from the same model" in str(err.value)


def test_a_family_that_does_not_match_the_weights_is_refused(tmp_path, monkeypatch):
    """SASRec weights under BERT4Rec's config: the tensor BERT4Rec has and SASRec lacks."""
    bundle = _copy(tmp_path)
    shutil.copy(BERT4REC / "config.json", bundle / "config.json")
    _rewrite(bundle, "meta.json", lambda meta: _edit(meta, "model", "BERT4Rec"))
    builds = _forbid_real_builds(monkeypatch)
    with pytest.raises(
        BundleError,
        match=r"model\.safetensors has no tensor '[a-z_.]+', which the BERT4Rec network",
    ):
        load_model(bundle)
    assert builds == [True]


def test_settings_recbole_cannot_build_name_the_config(tmp_path):
    bundle = _copy(tmp_path)
    _rewrite(bundle, "config.json", lambda data: _edit(data, "recbole.n_heads", 3))
    with pytest.raises(BundleError, match=r"config\.json's settings cannot build a SASRec network"):
        load_model(bundle)


def test_an_unknown_family_is_unsupported(tmp_path):
    bundle = _copy(tmp_path)
    _rewrite(
        bundle,
        "config.json",
        lambda c: _edit(_edit(c, "model", "NoSuchRec"), "recbole.model", "NoSuchRec"),
    )
    _rewrite(bundle, "meta.json", lambda meta: _edit(meta, "model", "NoSuchRec"))
    with pytest.raises(UnsupportedModelError, match="'NoSuchRec' is not supported"):
        load_model(bundle)


def test_shipped_bundles_load_and_the_new_optional_fields_are_allowed(tmp_path):
    for name in ("sasrec-ml100k", "bert4rec-ml100k"):
        assert load_model(name).n_items == 1683
    bundle = _copy(tmp_path)

    def newer(meta):
        meta["dataset"]["repeated_interactions"] = False
        meta["training"]["history"] = [{"epoch": 0, "loss": 7.1, "valid": {}, "seconds": 3.0}]
        meta["training"]["stopped_early"] = True
        meta["extra_section"] = {"anything": [1, "two"]}
        return meta

    _rewrite(bundle, "meta.json", newer)
    model = load_model(bundle)
    assert model.meta["training"]["stopped_early"] is True
    reference = load_model("sasrec-ml100k")
    history = [model.items[i] for i in (3, 8, 21)]
    np.testing.assert_array_equal(model.score([history]), reference.score([history]))


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: load_model(123), r"model must be a bundle folder .*; got int 123"),
        (lambda: load_model(["sasrec-ml100k"]), r"model must be .*; got list"),
        (lambda: load_model(""), r"model must be .*; got str ''"),
        (lambda: load_model("sasrec-ml100k", dataset=5), r"dataset must be None, .*; got int 5"),
        (lambda: read_bundle(3.5), r"path must be a bundle folder .*; got float 3\.5"),
        (
            lambda: from_bundle("sasrec-ml100k"),
            r"bundle must be a Bundle \(from read_bundle\); got str",
        ),
    ],
)
def test_wrong_argument_types_are_invalid_input_naming_the_argument(call, expected):
    with pytest.raises(InvalidInputError, match=expected):
        call()


def test_save_bundle_checks_before_writing(tmp_path):
    source = read_bundle(SASREC)
    items = list(source.items)
    items[5] = items[4]
    meta = {k: v for k, v in source.meta.items() if k != "weights_sha256"}
    with pytest.raises(BundleError, match=r"appears at ids 4 and 5"):
        save_bundle(tmp_path / "out", source.state_dict, source.config, items, meta)
    assert list(tmp_path.iterdir()) == []


def test_only_pandas_chained_assignment_warning_is_hidden():
    from recausal._compat import quiet_recbole_dataset_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_recbole_dataset_warnings():
            warnings.warn(
                "A value is trying to be set on a copy of a DataFrame or Series through "
                "chained assignment using an inplace method.",
                FutureWarning,
                stacklevel=1,
            )
            warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]


def test_rebuilding_an_imported_item_map_shows_no_pandas_warning(planted):
    from recausal.models.recbole_settings import recbole_item_tokens

    settings = {"MAX_ITEM_LIST_LENGTH": 10, "train_neg_sample_args": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items, _ = recbole_item_tokens("SASRec", settings, planted.files.directory)
    assert len(items) == 25
    assert not [w for w in caught if "chained assignment" in str(w.message)]


def test_every_bundle_problem_is_a_recausal_error(tmp_path):
    """A truncated config.json and a deleted weights file are BundleErrors, too."""
    bundle = _copy(tmp_path)
    (bundle / "config.json").write_text('{"model": "SASRec", "n_items": ')
    with pytest.raises(BundleError, match=r"config\.json is corrupt"):
        load_model(bundle)
    (bundle / "config.json").write_text("[" * 100_000)
    with pytest.raises(RecausalError, match=r"config\.json"):
        load_model(bundle)
