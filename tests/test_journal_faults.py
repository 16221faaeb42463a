"""A damaged evaluation journal: each kind of damage is named, never turned into rows, and
``repair`` recomputes exactly the damaged chunks; a SIGKILLed ``recausal evaluate`` resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from recausal.cli import cli
from recausal.errors import InvalidInputError
from recausal.evaluate import TIMING_COLUMNS, evaluate, resolve_users
from recausal.evaluate.journal import (
    MANIFEST,
    OWN_OUTPUTS,
    JournalDamagedError,
    JournalError,
    read_manifest,
)

EXPLAINERS = ["recency", "occlusion", "random"]
ARGS = {"users": 5, "chunk_size": 2, "plots": False}  # chunks 0, 1, 2 (two, two, one user)
PART = "journal/part-000001.jsonl"


def _untimed(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


def _parquet(out: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    table = pq.read_table(str(out / "rows.parquet"))  # a path: see results/README.md
    return table.to_pandas().drop(columns=list(TIMING_COLUMNS))


@pytest.fixture(scope="module")
def clean(sasrec, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """An uninterrupted run into a folder, and its rows."""
    out = tmp_path_factory.mktemp("clean") / "run"
    return out, evaluate(sasrec, EXPLAINERS, out=out, **ARGS)


@pytest.fixture
def journal(clean, tmp_path) -> Path:
    """A copy of the clean run's manifest and parts only: every chunk saved, no rows yet."""
    out = tmp_path / "run"
    shutil.copytree(clean[0], out)
    for name in OWN_OUTPUTS:
        (out / name).unlink(missing_ok=True)
    return out


def _truncate(out: Path) -> None:
    data = (out / PART).read_bytes()
    first = data.index(b"\n")
    (out / PART).write_bytes(data[: first + (len(data) - first) // 2])  # in the second line
    assert not (out / PART).read_bytes().endswith(b"\n")


def _garbage(out: Path) -> None:
    (out / PART).write_bytes(b"\x00garbage {{{ not json\n")


def _not_utf8(out: Path) -> None:
    data = bytearray((out / PART).read_bytes())
    data[len(data) // 2] = 0xFF
    (out / PART).write_bytes(bytes(data))


def _edited_value(out: Path) -> None:
    text = (out / PART).read_text()
    old, new = ('"valid": true', '"valid": false')
    if old not in text:
        old, new = new, old
    edited = text.replace(old, new, 1)
    assert edited != text and len(edited.splitlines()) == len(text.splitlines())
    (out / PART).write_text(edited)


def _missing(out: Path) -> None:
    (out / PART).unlink()


DAMAGE = {
    "truncated mid-line": _truncate,
    "garbage": _garbage,
    "invalid UTF-8": _not_utf8,
    "edited value": _edited_value,
    "missing": _missing,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_part_is_named_and_repair_recomputes_only_its_chunk(
    sasrec, clean, journal, damage
):
    DAMAGE[damage](journal)
    with pytest.raises(JournalDamagedError, match=r"journal/part-000001\.jsonl .*--repair") as err:
        evaluate(sasrec, EXPLAINERS, out=journal, **ARGS)
    assert err.value.parts == ("part-000001.jsonl",) and "\n" not in str(err.value)
    assert not (journal / "rows.parquet").exists()
    seen: list[int] = []
    with pytest.warns(UserWarning, match="part-000001"):
        rows = evaluate(
            sasrec, EXPLAINERS, out=journal, repair=True, on_chunk=lambda i, r: seen.append(i),
            **ARGS,
        )  # fmt: skip
    assert seen == [1]  # the good parts were kept
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(clean[1]))
    pd.testing.assert_frame_equal(_parquet(journal), _parquet(clean[0]))
    # the repaired journal is whole again: a rerun without repair computes nothing
    again = evaluate(sasrec, EXPLAINERS, out=journal, on_chunk=lambda i, r: seen.append(i), **ARGS)
    assert seen == [1]
    pd.testing.assert_frame_equal(_untimed(again), _untimed(clean[1]))


MANIFEST_DAMAGE = {
    "a JSON list": lambda m: json.dumps([json.loads(m)]).encode(),
    "cut off": lambda m: m[: len(m) // 2],
    "invalid UTF-8": lambda m: m.replace(b'"format"', b'"f\xffrmat"', 1),
    "no parts": lambda m: json.dumps({**json.loads(m), "parts": None}).encode(),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_a_damaged_manifest_is_named_and_repair_recomputes_everything(
    sasrec, clean, journal, damage
):
    path = journal / MANIFEST
    path.write_bytes(MANIFEST_DAMAGE[damage](path.read_bytes()))
    with pytest.raises(JournalDamagedError, match=r"manifest\.json is damaged .*--repair"):
        evaluate(sasrec, EXPLAINERS, out=journal, **ARGS)
    with pytest.raises(JournalDamagedError, match=r"manifest\.json"):
        read_manifest(journal)
    assert not (journal / "rows.parquet").exists()
    seen: list[int] = []
    with pytest.warns(UserWarning, match="recomputing every chunk"):
        rows = evaluate(
            sasrec, EXPLAINERS, out=journal, repair=True, on_chunk=lambda i, r: seen.append(i),
            **ARGS,
        )  # fmt: skip
    assert seen == [0, 1, 2]
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(clean[1]))
    pd.testing.assert_frame_equal(_parquet(journal), _parquet(clean[0]))
    assert read_manifest(journal)["version"] == 2


def test_a_missing_manifest_beside_a_journal_is_damage(sasrec, clean, journal):
    (journal / MANIFEST).unlink()
    with pytest.raises(JournalDamagedError, match=r"manifest\.json is missing"):
        evaluate(sasrec, EXPLAINERS, out=journal, **ARGS)
    with pytest.warns(UserWarning):
        rows = evaluate(sasrec, EXPLAINERS, out=journal, repair=True, **ARGS)
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(clean[1]))


def test_a_digest_entry_of_another_chunk_is_damage(sasrec, journal):
    manifest = json.loads((journal / MANIFEST).read_text())
    manifest["parts"]["part-000007.jsonl"] = manifest["parts"]["part-000000.jsonl"]
    (journal / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(JournalDamagedError, match=r"part-000007\.jsonl .not a chunk of this run"):
        evaluate(sasrec, EXPLAINERS, out=journal, **ARGS)


def test_a_part_the_manifest_does_not_name_yet_is_recomputed(sasrec, clean, journal):
    """A kill between saving a part and recording its digest: the part is redone, silently."""
    manifest = json.loads((journal / MANIFEST).read_text())
    del manifest["parts"]["part-000002.jsonl"]
    (journal / MANIFEST).write_text(json.dumps(manifest))
    (journal / "journal" / "part-000002.jsonl").write_text("half a li")
    seen: list[int] = []
    rows = evaluate(sasrec, EXPLAINERS, out=journal, on_chunk=lambda i, r: seen.append(i), **ARGS)
    assert seen == [2]
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(clean[1]))


def test_a_part_damaged_during_the_run_stops_the_rows(sasrec, journal):
    (journal / PART).unlink()

    def damage_part_0(index, rows):
        path = journal / "journal" / "part-000000.jsonl"
        path.write_bytes(path.read_bytes().replace(b'"user"', b'"usr"', 1))

    with (
        pytest.warns(UserWarning, match="part-000001"),
        pytest.raises(JournalDamagedError, match=r"part-000000\.jsonl .*no rows written"),
    ):
        evaluate(sasrec, EXPLAINERS, out=journal, repair=True, on_chunk=damage_part_0, **ARGS)
    assert not (journal / "rows.parquet").exists()


@pytest.mark.parametrize("version", [1, 3])
def test_a_journal_of_another_version_is_refused_until_overwritten(sasrec, clean, journal, version):
    manifest = json.loads((journal / MANIFEST).read_text())
    manifest["version"] = version
    if version == 1:
        del manifest["parts"]  # as version 1 wrote it
    (journal / MANIFEST).write_text(json.dumps(manifest))
    for repair in (False, True):
        with pytest.raises(JournalError, match=f"version {version}.*--overwrite") as err:
            evaluate(sasrec, EXPLAINERS, out=journal, repair=repair, **ARGS)
        assert not isinstance(err.value, JournalDamagedError)
    rows = evaluate(sasrec, EXPLAINERS, out=journal, overwrite=True, **ARGS)
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(clean[1]))


def test_cli_names_the_damaged_part_exits_2_and_repairs(sasrec_bundle, tmp_path):
    out = tmp_path / "cli"
    base = ["evaluate", "-m", str(sasrec_bundle), "--out", str(out), "-q", "--no-plots"]
    base += ["--explainers", "recency", "--users", "3", "--chunk-size", "1"]
    assert CliRunner().invoke(cli, base).exit_code == 0
    first = (out / "rows.csv").read_text()
    part = out / "journal" / "part-000002.jsonl"
    part.write_bytes(part.read_bytes()[:-7])
    result = CliRunner().invoke(cli, base)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "journal/part-000002.jsonl" in lines[0] and "--repair" in lines[0]
    with pytest.warns(UserWarning, match="part-000002.jsonl"):  # says what is recomputed
        result = CliRunner().invoke(cli, [*base, "--repair"])
    assert result.exit_code == 0, result.output
    assert (out / "rows.csv").read_text().count("\n") == first.count("\n")


def test_a_users_file_that_is_not_utf8_is_named_with_its_offset(sasrec, sasrec_bundle, tmp_path):
    users = resolve_users(sasrec, "all")
    path = tmp_path / "users.txt"
    path.write_bytes(f"{users[0]}\n".encode() + b"ab\xe9\n")
    offset = len(users[0]) + 3
    with pytest.raises(InvalidInputError, match=f"users.txt.*0xe9 at offset {offset} .line 2"):
        evaluate(sasrec, ["recency"], users=path)
    result = CliRunner().invoke(
        cli, ["evaluate", "-m", str(sasrec_bundle), "--out", str(tmp_path / "o"), "-q",
              "--explainers", "recency", "--users", str(path)],
    )  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"offset {offset}" in result.output and "users.txt" in result.output
    path.write_bytes(b"\xef\xbb\xbf" + f"{users[1]}\n".encode())  # a byte-order mark is fine
    assert resolve_users(sasrec, path) == [users[1]]


def _recorded_parts(out: Path) -> dict:
    """The parts the manifest names so far (it is replaced atomically, so it reads whole)."""
    try:
        return json.loads((out / MANIFEST).read_text())["parts"]
    except FileNotFoundError:
        return {}


def test_sigkill_of_the_cli_then_resume_gives_the_rows_of_a_clean_run(sasrec_bundle, tmp_path):
    """The process is killed (no cleanup runs) once the manifest records a part; a rerun resumes."""
    out = tmp_path / "killed"
    args = ["--explainers", "recency,occlusion", "--users", "40", "--chunk-size", "1"]
    command = [sys.executable, "-c", "from recausal.cli import main; main()", "evaluate"]
    command += ["-m", str(sasrec_bundle), "--out", str(out), "-q", "--no-plots", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not _recorded_parts(out):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no part was written in 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert not (out / "rows.parquet").exists()
    assert len(list((out / "journal").glob("part-*.jsonl"))) < 40  # killed mid-run
    result = CliRunner().invoke(cli, command[3:])  # the same command, in this process
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["manifest"]["resumed_chunks"] >= 1  # the saved parts were not redone
    clean = tmp_path / "clean"
    rows = evaluate(
        sasrec_bundle, ["recency", "occlusion"], users=40, chunk_size=1, out=clean, plots=False
    )
    assert len(rows) == 80
    pd.testing.assert_frame_equal(_parquet(out), _parquet(clean))
