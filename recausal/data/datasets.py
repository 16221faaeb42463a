"""Find a dataset's atomic files, fingerprint them, and read item titles.

A model's bundle records the dataset it was trained on; :func:`recorded_dataset` says which
dataset that is, for looking up its users and items.

A dataset is a directory ``<dir>/<name>/`` holding ``<name>.inter`` and optionally
``<name>.item`` and ``<name>.user`` (RecBole's layout: ``data_path=<dir>``, ``dataset=<name>``).
Two names are known without a path:

- ``"ml-100k"``: MovieLens 100K as bundled inside the installed RecBole wheel
  (``recbole/dataset_example/ml-100k``); never downloaded.
- ``"synthetic-planted"``: the synthetic dataset with planted causes that ships with recausal
  (see :mod:`recausal.data.synthetic`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recausal.data.atomic import read_atomic
from recausal.errors import InvalidInputError, RecausalError

KNOWN_DATASETS = ("ml-100k", "synthetic-planted")
"""Dataset names :func:`resolve_dataset` finds without a path."""

_SUFFIXES = ("inter", "item", "user")
_FINGERPRINT_TAG = b"recausal-dataset-fingerprint-v1\n"

# Where a copy of the synthetic dataset may live: inside the package (wheel installs), then
# the repository's datasets/ folder (source checkouts).
_PACKAGE_FILES = Path(__file__).resolve().parent / "_files"
_REPO_DATASETS = Path(__file__).resolve().parents[2] / "datasets"


@dataclass(frozen=True)
class DatasetFiles:
    """One dataset's atomic files: ``directory/<name>.inter``, optional ``.item``, ``.user``."""

    name: str
    directory: Path
    inter: Path
    item: Path | None = None
    user: Path | None = None

    @property
    def data_path(self) -> Path:
        """The folder to give RecBole as ``data_path`` (with ``dataset=name``)."""
        return self.directory.parent

    @property
    def paths(self) -> tuple[Path, ...]:
        """The atomic files present, in the order ``.inter``, ``.item``, ``.user``."""
        return tuple(p for p in (self.inter, self.item, self.user) if p is not None)

    def fingerprint(self) -> str:
        """The dataset's content fingerprint; see :func:`dataset_fingerprint`."""
        return dataset_fingerprint(self)

    def to_dict(self) -> dict[str, str | None]:
        """The names and paths as strings (JSON-ready)."""
        return {
            "name": self.name,
            "directory": str(self.directory),
            "inter": str(self.inter),
            "item": None if self.item is None else str(self.item),
            "user": None if self.user is None else str(self.user),
        }


def _files_in(directory: Path, name: str) -> DatasetFiles:
    inter = directory / f"{name}.inter"
    if not inter.is_file():
        others = sorted(p.name for p in directory.glob("*.inter"))
        hint = (
            f"; it has {', '.join(others)}: RecBole needs the folder to be named like the file "
            f"(<data_path>/<name>/<name>.inter)"
            if others
            else ""
        )
        raise InvalidInputError(f"dataset folder {str(directory)!r} has no {name}.inter{hint}")
    extra = {s: directory / f"{name}.{s}" for s in ("item", "user")}
    return DatasetFiles(
        name=name,
        directory=directory,
        inter=inter,
        item=extra["item"] if extra["item"].is_file() else None,
        user=extra["user"] if extra["user"].is_file() else None,
    )


def _checked(files: DatasetFiles) -> DatasetFiles:
    # RecBole 1.2.1 reads its bundled copy for any dataset named ml-100k (Config ignores
    # data_path then), so another folder of that name would not be what RecBole trains on.
    if files.name != "ml-100k":
        return files
    bundled = _files_in(recbole_ml100k_dir(), "ml-100k")
    if files.directory.resolve() != bundled.directory.resolve() and (
        dataset_fingerprint(files) != dataset_fingerprint(bundled)
    ):
        raise InvalidInputError(
            f"dataset folder {str(files.directory)!r} is named ml-100k but differs from "
            "RecBole's bundled ml-100k, which RecBole reads for that name whatever data_path "
            "says; give the folder and its files another name"
        )
    return files


def recbole_ml100k_dir() -> Path:
    """The folder of the ml-100k copy inside the installed RecBole package (torch not imported)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInputError(
            "dataset 'ml-100k' is taken from the installed RecBole package, which is missing; "
            "install recbole==1.2.1"
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not directory.is_dir():
        raise InvalidInputError(f"the RecBole package has no ml-100k example at {directory}")
    return directory


def bundled_synthetic_dir() -> Path:
    """The folder of the shipped ``synthetic-planted`` copy (package data, else repo datasets/)."""
    for base in (_PACKAGE_FILES, _REPO_DATASETS):
        directory = base / "synthetic-planted"
        if (directory / "synthetic-planted.inter").is_file():
            return directory
    raise InvalidInputError(
        "dataset 'synthetic-planted' has no shipped copy here; write one with "
        "recausal.data.synthetic.make_planted_dataset(out_dir) and pass its folder"
    )


def resolve_dataset(
    name_or_dir: str | os.PathLike, data_path: str | os.PathLike | None = None
) -> DatasetFiles:
    """Find a dataset's atomic files.

    ``name_or_dir`` is one of: a dataset name with ``data_path`` (RecBole's convention:
    ``<data_path>/<name>/<name>.inter``); a folder ``<dir>/<name>/`` holding ``<name>.inter``;
    a path to a ``.inter`` file inside such a folder; or a known name (``ml-100k``,
    ``synthetic-planted``). Raises :class:`InvalidInputError` when nothing matches, and for a
    folder named ``ml-100k`` whose files differ from RecBole's bundled copy (RecBole would
    silently read its own copy instead).
    """
    if data_path is not None:
        base = Path(data_path)
        if not base.is_dir():
            raise InvalidInputError(f"data_path {str(base)!r} is not a folder")
        name = str(name_or_dir)
        directory = base / name
        if directory.is_dir():
            return _checked(_files_in(directory, name))
        if name not in KNOWN_DATASETS:
            raise InvalidInputError(
                f"dataset {name!r} is not a folder in data_path {str(base)!r} "
                f"(expected {str(directory / (name + '.inter'))!r})"
            )
    path = Path(name_or_dir)
    if path.is_file():
        if path.suffix != ".inter":
            raise InvalidInputError(
                f"dataset path {str(path)!r} is a file but not a .inter atomic file"
            )
        if path.stem != path.parent.name:
            raise InvalidInputError(
                f"dataset file {str(path)!r} must sit in a folder named {path.stem!r} "
                f"(RecBole's layout <data_path>/<name>/<name>.inter)"
            )
        return _checked(_files_in(path.parent, path.stem))
    if path.is_dir():
        return _checked(_files_in(path, path.resolve().name))
    name = str(name_or_dir)
    if name == "ml-100k":
        return _files_in(recbole_ml100k_dir(), name)
    if name == "synthetic-planted":
        return _files_in(bundled_synthetic_dir(), name)
    raise InvalidInputError(
        f"dataset {name!r} is neither a folder nor a known name "
        f"(known: {', '.join(KNOWN_DATASETS)})"
    )


def as_dataset_files(dataset: DatasetFiles | str | os.PathLike) -> DatasetFiles:
    """A dataset's files, found with :func:`resolve_dataset` unless already given.

    Args:
        dataset: :class:`DatasetFiles`, or anything :func:`resolve_dataset` accepts.

    Returns:
        The dataset's files.
    """
    return dataset if isinstance(dataset, DatasetFiles) else resolve_dataset(dataset)


def dataset_fingerprint(files: DatasetFiles | str | os.PathLike) -> str:
    """A sha256 hex digest of the dataset's atomic files' bytes.

    The hash covers a version tag, then for each of ``.inter``, ``.item``, ``.user`` that is
    present: the suffix, the byte length (8 bytes, big-endian) and the bytes. It does not depend
    on the folder or the dataset name, so a copied dataset keeps its fingerprint, and any change
    of content, or adding or removing a ``.item``/``.user`` file, changes it.
    """
    files = as_dataset_files(files)
    digest = hashlib.sha256(_FINGERPRINT_TAG)
    for suffix, path in zip(_SUFFIXES, (files.inter, files.item, files.user), strict=True):
        if path is None:
            continue
        size = path.stat().st_size
        digest.update(suffix.encode("ascii") + b"\0" + size.to_bytes(8, "big"))
        with path.open("rb") as handle:
            for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


_TITLE_FIELDS = ("movie_title", "title", "name", "item_name")
_YEAR_FIELDS = ("release_year", "year")


def item_titles(dataset: DatasetFiles | str | os.PathLike) -> dict[str, str]:
    """Item token → human-readable title, from the dataset's ``.item`` file.

    The title is the first present column of ``movie_title``, ``title``, ``name``,
    ``item_name`` (sequence columns joined by spaces), followed by `` (year)`` when a
    ``release_year``/``year`` column has a value (ml-100k: item ``"1"`` → ``"Toy Story (1995)"``).
    Returns an empty dict when the dataset has no ``.item`` file or no title column.
    """
    files = as_dataset_files(dataset)
    if files.item is None:
        return {}
    frame = read_atomic(files.item)
    if "item_id" not in frame.columns:
        raise InvalidInputError(f"{files.item}: the .item file has no item_id column")
    title_field = next((f for f in _TITLE_FIELDS if f in frame.columns), None)
    if title_field is None:
        return {}
    year_field = next((f for f in _YEAR_FIELDS if f in frame.columns), None)
    titles: dict[str, str] = {}
    years = frame[year_field] if year_field else [None] * len(frame)
    for token, title, year in zip(frame["item_id"], frame[title_field], years, strict=True):
        text = " ".join(title) if isinstance(title, tuple) else str(title)
        if year is not None:
            year_text = " ".join(year) if isinstance(year, tuple) else str(year)
            if isinstance(year, float):
                year_text = "" if year != year else str(int(year))
            if year_text:
                text = f"{text} ({year_text})"
        titles[str(token)] = text
    return titles


def item_titles_if_any(dataset: DatasetFiles | str | os.PathLike) -> dict[str, str]:
    """:func:`item_titles`, or no titles when the dataset cannot be found or read.

    Args:
        dataset: anything :func:`resolve_dataset` accepts.

    Returns:
        Item token → title; empty when the dataset has none or cannot be read.
    """
    try:
        return item_titles(dataset)
    except RecausalError:
        return {}


def recorded_dataset(meta: Mapping[str, Any], override: Any = None) -> str:
    """The dataset (a known name or a folder) whose users a bundle's model serves.

    Args:
        meta: the bundle's metadata; its ``dataset`` entry holds ``name`` and ``directory``.
        override: a dataset given instead (a name or a folder), or ``None``.

    Returns:
        ``override`` when given; else the recorded name when it is a known one (such as
        ``ml-100k``) or no folder was recorded; else the folder recorded at training time.
    """
    if override is not None:
        return str(override)
    recorded = meta.get("dataset", {})
    name = str(recorded.get("name", ""))
    if name in KNOWN_DATASETS or not recorded.get("directory"):
        return name
    return str(recorded["directory"])
