"""Fuzzing the evaluation journal: whatever is written over a part or the manifest, a rerun either
raises a ``RecausalError`` (and writes no rows) or gives exactly the rows of a clean run; with
``repair`` every kind of damage is recomputed."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from recausal.errors import RecausalError  # noqa: E402
from recausal.evaluate import TIMING_COLUMNS, evaluate  # noqa: E402
from recausal.evaluate.journal import MANIFEST, OWN_OUTPUTS, JournalDamagedError  # noqa: E402

EXPLAINERS = ["recency", "occlusion"]
ARGS = {"users": 5, "chunk_size": 2, "plots": False}  # chunks 0, 1, 2
TARGETS = [MANIFEST, "journal/part-000000.jsonl", "journal/part-000002.jsonl"]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _untimed(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


@pytest.fixture(scope="module")
def clean(sasrec, tmp_path_factory):
    """A clean run's journal (outputs removed) and its rows."""
    out = tmp_path_factory.mktemp("fuzz") / "run"
    rows = evaluate(sasrec, EXPLAINERS, out=out, **ARGS)
    for name in OWN_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    return out, _untimed(rows)


def _manifest_edit(data: st.DataObject, original: bytes) -> bytes:
    """The manifest with one value (top level, in ``arguments`` or ``parts``) replaced or
    removed."""
    manifest = json.loads(original)
    holder = data.draw(st.sampled_from([manifest, manifest["arguments"], manifest["parts"]]))
    key = data.draw(st.sampled_from(sorted(holder)))
    if data.draw(st.booleans()):
        del holder[key]
    else:
        holder[key] = data.draw(JSON)
    return json.dumps(manifest).encode()


def _damage(data: st.DataObject, original: bytes, is_manifest: bool) -> bytes:
    kind = data.draw(st.sampled_from(["bytes", "json", "cut", "byte", "insert", "edit"]))
    if kind == "bytes":
        return data.draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(data.draw(JSON)).encode()
    at = data.draw(st.integers(0, len(original)))
    if kind == "cut":
        return original[:at]
    if kind == "byte" and at < len(original):
        return original[:at] + bytes([data.draw(st.integers(0, 255))]) + original[at + 1 :]
    if kind == "insert":
        return original[:at] + data.draw(st.binary(min_size=1, max_size=8)) + original[at:]
    if kind == "edit" and is_manifest:
        return _manifest_edit(data, original)
    return original  # unchanged: must resume as it is


def _run(out: Path, sasrec, repair: bool) -> pd.DataFrame | RecausalError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _untimed(evaluate(sasrec, EXPLAINERS, out=out, repair=repair, **ARGS))
        except RecausalError as exc:
            return exc


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_anything_over_the_journal_is_an_error_or_a_correct_resume(sasrec, clean, data):
    base, expected = clean
    target = data.draw(st.sampled_from(TARGETS))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        shutil.copytree(base, out)
        path = out / target
        path.write_bytes(_damage(data, path.read_bytes(), target == MANIFEST))

        first = _run(out, sasrec, repair=False)
        if isinstance(first, RecausalError):
            assert "\n" not in str(first)
            assert not (out / "rows.parquet").exists()  # nothing from damaged data
        else:
            pd.testing.assert_frame_equal(first, expected)

        repaired = _run(out, sasrec, repair=True)
        event(f"{target}: {type(first).__name__}, repaired: {type(repaired).__name__}")
        if isinstance(repaired, RecausalError):
            # only what is not damage (another version, other arguments) survives repair
            assert not isinstance(repaired, JournalDamagedError), str(repaired)
            assert not isinstance(first, pd.DataFrame)
        else:
            pd.testing.assert_frame_equal(repaired, expected)
