"""Files and bundles recausal writes get the user's usual modes, and unwritable paths give a
clear OutputError instead of an OSError traceback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from recausal._io import write_atomic
from recausal.errors import InvalidInputError, OutputError, RecausalError
from recausal.models.bundle import SHIPPED_DIR, read_bundle, save_bundle


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(value)``), restored afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(value: int) -> None:
        os.umask(value)

    try:
        yield set_mask
    finally:
        os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path, umask, mask, expected):
    umask(mask)
    target = tmp_path / "sub" / "report.html"
    write_atomic(target, "<html></html>")
    assert target.read_text() == "<html></html>"
    assert _mode(target) == expected
    assert _mode(target.parent) == 0o777 & ~mask
    assert _leftovers(target.parent) == []


@pytest.mark.parametrize("existing", [0o640, 0o755, 0o600])
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, existing):
    umask(0o022)
    target = tmp_path / "graph.svg"
    target.write_bytes(b"old")
    target.chmod(existing)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == existing


@pytest.mark.parametrize(("mask", "folder", "file"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_a_saved_bundle_gets_the_modes_the_umask_gives(tmp_path, umask, mask, folder, file):
    source = read_bundle(SHIPPED_DIR / "sasrec-ml100k")
    meta = {k: v for k, v in source.meta.items() if k != "weights_sha256"}
    umask(mask)
    out = save_bundle(tmp_path / "bundle", source.state_dict, source.config, source.items, meta)
    assert _mode(out) == folder
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "items.json", "meta.json", "model.safetensors"]
    assert {name: _mode(out / name) for name in names} == dict.fromkeys(names, file)
    assert read_bundle(out).items == source.items
    assert _leftovers(tmp_path) == []


def test_a_replaced_bundle_keeps_its_folder_mode(tmp_path, umask):
    source = read_bundle(SHIPPED_DIR / "sasrec-ml100k")
    meta = {k: v for k, v in source.meta.items() if k != "weights_sha256"}
    umask(0o022)
    out = tmp_path / "bundle"
    save_bundle(out, source.state_dict, source.config, source.items, meta)
    out.chmod(0o700)
    save_bundle(out, source.state_dict, source.config, source.items, meta)
    assert _mode(out) == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


@pytest.mark.parametrize("depth", [0, 2])
def test_a_parent_that_is_a_file_is_a_clear_error(tmp_path, depth):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    target = blocker.joinpath(*["deeper"] * depth, "out.html")
    with pytest.raises(
        OutputError, match=r"cannot write .*out\.html: its parent .*notes\.txt is a file"
    ) as err:
        write_atomic(target, "x")
    assert isinstance(err.value, InvalidInputError) and isinstance(err.value, RecausalError)
    assert blocker.read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_saving_a_bundle_under_a_file_is_a_clear_error(tmp_path):
    source = read_bundle(SHIPPED_DIR / "sasrec-ml100k")
    blocker = tmp_path / "taken"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"its parent .*taken is a file"):
        save_bundle(blocker / "bundle", source.state_dict, source.config, source.items, {})


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("target", ["/proc/recausal-out.html", "/proc/recausal-dir/out.json"])
def test_writing_under_proc_is_a_clear_error(target):
    with pytest.raises(OutputError, match=rf"cannot write {target}: folder /proc"):
        write_atomic(target, "{}")


def test_a_folder_or_a_bad_argument_is_a_clear_error(tmp_path):
    with pytest.raises(OutputError, match=r"it is a folder"):
        write_atomic(tmp_path, "x")
    with pytest.raises(OutputError, match=r"data must be str or bytes"):
        write_atomic(tmp_path / "a.json", 12)
    with pytest.raises(OutputError, match=r"path must be a path"):
        write_atomic(3, "x")
    assert list(tmp_path.iterdir()) == []
