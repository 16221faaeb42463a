"""File writing shared by every layer: whole files or nothing, with the user's usual modes.

Every file recausal writes (HTML, SVG, JSON, Parquet, bundle parts) goes through
:func:`write_atomic`; a folder that is filled and then renamed into place (a bundle) is made
by :func:`staging_folder`; what a run replaces is removed by :func:`remove_path`. New files
and folders get the modes the user's umask gives (as ``open`` and ``mkdir`` would), a
replaced file keeps its mode, and a path that cannot be written is an
:class:`~recausal.errors.OutputError` naming it and why.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from pathlib import Path

from recausal.errors import OutputError

_NEW_FILE_MODE = 0o666  # less the umask, as open() does
_NEW_FOLDER_MODE = 0o777  # less the umask, as mkdir does
_TRIES = 100


def _as_path(path: object, what: str) -> Path:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise OutputError(f"{what} must be a path (a str or os.PathLike); got {path!r}")
    text = os.fspath(path)
    if isinstance(text, bytes) or not text:
        raise OutputError(f"{what} must be a non-empty text path; got {path!r}")
    return Path(text)


def ensure_folder(folder: str | os.PathLike, target: str | os.PathLike | None = None) -> Path:
    """Create ``folder`` and its parents if needed, or say clearly why it cannot be.

    Args:
        folder: the folder that must exist.
        target: the file or folder to be written there, named in messages [default: ``folder``].

    Returns:
        ``folder`` as a path.

    Raises:
        OutputError: a parent is a file, or the folder cannot be created.
    """
    folder = _as_path(folder, "folder")
    target = folder if target is None else Path(target)
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(
                    f"cannot write {target}: its parent {ancestor} is a file, not a folder"
                )
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot write {target}: folder {folder} cannot be created ({exc.strerror or exc})"
        ) from None
    return folder


def _unique_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{suffix}")


def write_atomic(path: str | os.PathLike, data: bytes | bytearray | memoryview | str) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one.

    Text is written as UTF-8. The parent folder is created if needed; a failed write leaves
    no temporary file behind. A new file gets the mode the umask gives (``0644`` under the
    usual ``022``); a file that is replaced keeps its mode.

    Args:
        path: the file to write.
        data: its content.

    Raises:
        OutputError: ``path`` cannot be written (a parent is a file, ``path`` is a folder, the
            file system refuses); the message names the path and the reason.
    """
    path = _as_path(path, "path")
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise OutputError(f"cannot write {path}: data must be str or bytes; got {type(data)}")
    ensure_folder(path.parent, path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    try:
        existing = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
    except OSError:
        existing = None
    fd, tmp = _create_temp_file(path)
    try:
        if existing is not None:
            os.fchmod(fd, existing)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def _create_temp_file(path: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        tmp = _unique_name(path, ".tmp")
        try:
            return os.open(tmp, flags, _NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(
                f"cannot write {path}: folder {path.parent} does not accept new files "
                f"({exc.strerror or exc})"
            ) from None
    raise OutputError(f"cannot write {path}: no free temporary name in {path.parent}")


def staging_folder(path: str | os.PathLike) -> Path:
    """A new, empty, hidden folder beside ``path``, to fill and then rename to ``path``.

    Its mode is the one ``mkdir`` gives under the umask (``0755`` under ``022``), or that of
    the existing ``path`` it will replace.

    Args:
        path: the folder that the staging folder will become.

    Returns:
        The staging folder.

    Raises:
        OutputError: the parent cannot be created or does not accept new folders.
    """
    path = _as_path(path, "path")
    ensure_folder(path.parent, path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot write {path}: it is a file, not a folder")
    for _ in range(_TRIES):
        staging = _unique_name(path, ".staging")
        try:
            staging.mkdir(mode=_NEW_FOLDER_MODE)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(
                f"cannot write {path}: folder {path.parent} does not accept new folders "
                f"({exc.strerror or exc})"
            ) from None
        if path.is_dir():
            with contextlib.suppress(OSError):
                staging.chmod(stat.S_IMODE(path.stat().st_mode))
        return staging
    raise OutputError(f"cannot write {path}: no free temporary name in {path.parent}")


def remove_path(
    path: Path, *, ignore: type[OSError] | tuple[type[OSError], ...] = FileNotFoundError
) -> None:
    """Remove a file, a link or a whole folder, if it is there.

    A folder is removed with everything in it, as far as it can be (errors inside it are
    ignored); a file or a link is unlinked.

    Args:
        path: what to remove.
        ignore: the errors of unlinking a file that are ignored [default: it is missing].
    """
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(ignore):
            path.unlink()
