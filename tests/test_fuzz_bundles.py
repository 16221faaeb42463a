"""Property tests: whatever a bundle's files or a checkpoint hold, recausal either loads them
or raises a RecausalError; no other exception, and no allocation the file cannot justify.

Examples are small and the runs derandomised (each test explores the same examples on every
run, so a failure is reproducible); the whole file takes a few seconds.
"""

from __future__ import annotations

import functools
import io
import json
import math
import pickle
import shutil
import tempfile
import tracemalloc
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recausal.errors import RecausalError
from recausal.models import load_model
from recausal.models.bundle import SHIPPED_DIR
from recausal.models.recbole_import import read_recbole_checkpoint

SOURCE = SHIPPED_DIR / "sasrec-ml100k"
MEMORY_LIMIT = 64 << 20  # bytes Python and numpy may allocate while reading one small file

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)

CONFIG_FIELDS = [
    "model", "n_items", "recbole", "recbole.model", "recbole.hidden_size", "recbole.n_layers",
    "recbole.n_heads", "recbole.inner_size", "recbole.MAX_ITEM_LIST_LENGTH",
    "recbole.ITEM_ID_FIELD", "recbole.LIST_SUFFIX", "recbole.ITEM_LIST_LENGTH_FIELD",
    "recbole.NEG_PREFIX", "recbole.USER_ID_FIELD", "recbole.hidden_dropout_prob",
    "recbole.attn_dropout_prob", "recbole.hidden_act", "recbole.layer_norm_eps",
    "recbole.initializer_range", "recbole.loss_type", "recbole.embedding_size",
    "recbole.learning_rate", "recbole.eval_args",
]  # fmt: skip
META_FIELDS = [
    "format", "format_version", "recausal_version", "created", "model", "source", "dataset",
    "dataset.name", "dataset.directory", "dataset.fingerprint", "dataset.repeated_interactions",
    "training", "training.settings", "training.best_epoch", "training.epochs_run",
    "training.seconds", "training.stopped_early", "training.history", "metrics",
    "metrics.valid", "metrics.test", "metrics.test.hit@10", "imported", "imported.epoch",
    "weights_sha256",
]  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the shipped SASRec bundle, with no weights digest (so edited weights are
    parsed rather than refused by the digest)."""
    folder = tmp_path_factory.mktemp("fuzz") / "sasrec"
    shutil.copytree(SOURCE, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop("weights_sha256")
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


@contextmanager
def _bundle_copy(source: Path, **replace: bytes) -> Iterator[Path]:
    """A temporary bundle: the weights linked from ``source``, its files replaced as given."""
    with tempfile.TemporaryDirectory(prefix="recausal-fuzz-") as scratch:
        bundle = Path(scratch) / "bundle"
        bundle.mkdir()
        for name in ("config.json", "items.json", "meta.json", "model.safetensors"):
            if name in replace:
                (bundle / name).write_bytes(replace[name])
            elif name == "model.safetensors":
                (bundle / name).symlink_to(source / name)
            else:
                shutil.copy(source / name, bundle / name)
        yield bundle


def _edited(data: Any, dotted: str, value: Any, delete: bool) -> Any:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            return data
        node = node[part]
    if delete:
        node.pop(last, None)
    else:
        node[last] = value
    return data


def _load_and_use(bundle: Path) -> None:
    """Load the bundle and, if that works, use it; only a RecausalError may come out."""
    try:
        model = load_model(bundle)
        model.recommend([[model.items[1], model.items[2]]], k=2, exclude_seen=False)
        assert isinstance(model.dataset_name, str)
    except RecausalError:
        pass


@contextmanager
def _bounded_memory() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
        assert peak < MEMORY_LIMIT, f"reading a small file allocated {peak} bytes"
    finally:
        tracemalloc.stop()


@FUZZ
@given(field=st.sampled_from(CONFIG_FIELDS), value=JSON, delete=st.booleans(), whole=st.booleans())
def test_any_config_json_loads_or_is_a_recausal_error(source, field, value, delete, whole):
    config = json.loads((source / "config.json").read_text())
    content = value if whole and delete else _edited(config, field, value, delete and not whole)
    with _bundle_copy(source, **{"config.json": json.dumps(content).encode()}) as bundle:
        _load_and_use(bundle)


@FUZZ
@given(field=st.sampled_from(META_FIELDS), value=JSON, delete=st.booleans())
def test_any_meta_json_loads_or_is_a_recausal_error(source, field, value, delete):
    meta = _edited(json.loads((source / "meta.json").read_text()), field, value, delete)
    with _bundle_copy(source, **{"meta.json": json.dumps(meta).encode()}) as bundle:
        _load_and_use(bundle)


@FUZZ
@given(
    position=st.integers(0, 1682),
    value=JSON | st.sampled_from(["242", "[PAD]", ""]),
    cut=st.integers(0, 3),
    raw=st.none() | st.binary(max_size=64),
)
def test_any_items_json_loads_or_is_a_recausal_error(source, position, value, cut, raw):
    if raw is not None:
        content = raw
    else:
        items = json.loads((source / "items.json").read_text())
        items[position] = value
        content = json.dumps(items[: len(items) - cut]).encode()
    with _bundle_copy(source, **{"items.json": content}) as bundle:
        _load_and_use(bundle)


@FUZZ
@given(
    data=st.data(),
    mode=st.sampled_from(["random", "header", "truncate"]),
)
def test_any_weights_file_loads_or_is_a_recausal_error(source, data, mode):
    original = (source / "model.safetensors").read_bytes()
    if mode == "random":
        weights = data.draw(st.binary(max_size=256))
    elif mode == "truncate":
        weights = original[: data.draw(st.integers(0, len(original) - 1))]
    else:  # change a few bytes of the length prefix and the JSON header
        weights = bytearray(original)
        for _ in range(data.draw(st.integers(1, 4))):
            weights[data.draw(st.integers(0, 400))] = data.draw(st.integers(0, 255))
        weights = bytes(weights)
    with _bundle_copy(source, **{"model.safetensors": weights}) as bundle:
        _load_and_use(bundle)


@functools.cache
def _small_checkpoint(legacy: bool) -> bytes:
    """A tiny torch.save file, made once (each save has its own serialization id)."""
    buffer = io.BytesIO()
    torch.save(
        {"config": {"final": [1, 2.5, "x"]}, "state_dict": {"w": torch.arange(6.0).view(2, 3)}},
        buffer,
        _use_new_zipfile_serialization=not legacy,
    )
    return buffer.getvalue()


#: pickle instructions with arguments drawn small, to build random but plausible pickles
_OPCODES = [op for op in pickle.__dict__.values() if isinstance(op, bytes) and len(op) == 1]


@st.composite
def _pickle_soup(draw) -> bytes:
    """A sequence of pickle instructions with random operands (most are malformed)."""
    parts = [b"\x80\x02"]
    for _ in range(draw(st.integers(1, 24))):
        parts.append(draw(st.sampled_from(_OPCODES)))
        parts.append(draw(st.binary(max_size=6)))
    if draw(st.booleans()):
        parts.insert(1, b"c__builtin__\nbytearray\n")
    return b"".join(parts) + b"."


def _checkpoint_bytes(data: st.DataObject, kind: str) -> bytes:
    if kind == "random":
        return data.draw(st.binary(max_size=512))
    if kind == "soup":
        return data.draw(_pickle_soup())
    original = bytearray(_small_checkpoint(legacy=kind == "legacy"))
    if data.draw(st.booleans()):
        return bytes(original[: data.draw(st.integers(0, len(original) - 1))])
    for _ in range(data.draw(st.integers(1, 6))):
        original[data.draw(st.integers(0, len(original) - 1))] = data.draw(st.integers(0, 255))
    return bytes(original)


@settings(FUZZ, max_examples=100)
@given(data=st.data(), kind=st.sampled_from(["random", "soup", "zip", "legacy"]))
def test_any_checkpoint_file_reads_or_is_a_recausal_error(data, kind):
    content = _checkpoint_bytes(data, kind)
    with tempfile.TemporaryDirectory(prefix="recausal-fuzz-") as scratch:
        path = Path(scratch) / "model.pth"
        path.write_bytes(content)
        with _bounded_memory():
            try:
                checkpoint = read_recbole_checkpoint(path)
            except RecausalError:
                return
        assert all(isinstance(t, torch.Tensor) for t in checkpoint.state_dict.values())


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a RecBole checkpoint (the file is empty)"),
        (bytes(range(7, 250, 3)), "not a RecBole checkpoint (neither a zip archive nor a pickle"),
        (b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00H\x85R.", "a bytearray of 1207959552"),
        (b"\x80\x02cnumpy\ndtype\nX\x03\x00\x00\x00U99\x85R.", "not one written by torch.save"),
    ],
)
def test_small_hostile_checkpoints_are_refused_without_a_trust_pickle_hint(
    tmp_path, content, expected
):
    """The 30-byte file that used to allocate 1.2 GB, random bytes, an empty file: none is a
    checkpoint, and --trust-pickle (which could not help) is not suggested."""
    path = tmp_path / "hostile.pth"
    path.write_bytes(content)
    with _bounded_memory(), pytest.raises(RecausalError) as err:
        read_recbole_checkpoint(path)
    assert expected in str(err.value)
    assert "trust" not in str(err.value)


def test_a_well_formed_pickle_with_a_foreign_global_gets_the_hint(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"config": math.gcd, "state_dict": {}}, path)
    with pytest.raises(RecausalError, match=r"math\.gcd.*--trust-pickle"):
        read_recbole_checkpoint(path)
    broken = tmp_path / "broken.pth"
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        body = archive.read(name)
    broken.write_bytes(b"\x80\x02" + body[2:-1])  # the same global, but no complete pickle
    with pytest.raises(RecausalError, match="not a RecBole checkpoint") as err:
        read_recbole_checkpoint(broken)
    assert "trust" not in str(err.value)
