"""The journal of an evaluation folder: its manifest and one saved part per finished chunk.

``OUT/manifest.json`` records the run's arguments and, under ``parts``, the SHA-256 of every
saved part; ``OUT/journal/part-NNNNNN.jsonl`` holds the rows of chunk NNNNNN. A chunk is saved
in two atomic steps: the part first, then the manifest with its digest. A kill between the two
leaves a part the manifest does not name; it is recomputed like a missing one.

A rerun with the same arguments checks every part the manifest names against its digest, reads
the good ones back and computes only the missing chunks; other arguments are refused unless
``overwrite``. The parts are checked again when the rows are assembled. A damaged part (cut off,
edited, not UTF-8 or JSON, missing) or a damaged manifest (not JSON, not an object, missing
fields) stops the run with :class:`JournalDamagedError` naming it; with ``repair`` the damaged
parts (for a damaged manifest: all parts, which can no longer be checked) are dropped and their
chunks recomputed.

Journals of version 1 (recausal before part digests) are refused with a message to start over
(``--overwrite``): their parts cannot be checked, and a value edited in one would pass unseen.

A little over 400 lines because the manifest and the parts it names are read, checked, repaired
and written together, by one :class:`Journal`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recausal._io import remove_path, write_atomic
from recausal.errors import InvalidInputError, RecausalError, RecausalWarning
from recausal.evaluate.spec import JobSpec

if TYPE_CHECKING:
    from recausal.models import SequentialModel

MANIFEST = "manifest.json"
JOURNAL = "journal"
MANIFEST_FORMAT = "recausal-evaluation"
#: 2: the manifest holds the SHA-256 of each part under ``parts`` (1: no digests)
MANIFEST_VERSION = 2
#: the manifest's key for part file name -> SHA-256 (hex) of its bytes
PARTS = "parts"

#: the files a finished run writes next to the journal (removed by ``overwrite``)
OWN_OUTPUTS = (
    "rows.parquet",
    "rows.csv",
    "summary.md",
    "summary.json",
    "sizes.png",
    "deletion.png",
    "replacement_rank.png",
    "perturbation.png",
    "probability.png",
)

#: the (user, explainer) pairs of each chunk's rows, in order, by chunk index
Expected = dict[int, list[tuple[str, str]]]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_REPAIR = "rerun with --repair (repair=True)"


class JournalError(RecausalError):
    """An evaluation folder's journal cannot be used as it is (the message says what to do)."""


class JournalDamagedError(JournalError):
    """A journal part or the manifest is damaged; ``repair`` recomputes what it held.

    ``parts`` names the damaged part files (empty when the manifest itself is damaged).
    """

    def __init__(self, message: str, parts: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.parts = parts


class _Damage(Exception):
    """Why one part cannot be used (internal; becomes a :class:`JournalDamagedError`)."""


def make_manifest(
    model: SequentialModel, users: list[str], spec: JobSpec, users_arg: Any
) -> dict[str, Any]:
    """The manifest of a run.

    Args:
        model: the model.
        users: the user ids evaluated, in order.
        spec: what is computed.
        users_arg: the ``users`` argument as given (recorded when a name or a number).

    Returns:
        The manifest; its ``arguments`` are what a resumed run must match.
    """
    digest = hashlib.sha256("\n".join(users).encode("utf-8")).hexdigest()
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "arguments": {
            "model": model.name,
            "weights_sha256": model.meta.get("weights_sha256"),
            "users_sha256": digest,
            "n_users": len(users),
            **spec.to_dict(),
        },
        "model_path": str(model.path) if model.path else None,
        "users": users_arg if isinstance(users_arg, str | int) else "list",
    }


def _describe(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _parse_manifest(path: Path, data: bytes) -> dict[str, Any]:
    """The manifest in ``data``; ``_Damage`` (why) when it is not one, ``JournalError`` when it
    is of another version."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Damage(f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8") from None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Damage(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError):
        raise _Damage("not JSON") from None
    if not isinstance(manifest, dict):
        raise _Damage(f"{_describe(manifest)} instead of an object")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise _Damage(f"its format is not {MANIFEST_FORMAT!r}")
    version = manifest.get("version")
    if type(version) is not int:
        raise _Damage(f"its version is {_describe(version)}, not a number")
    if version < MANIFEST_VERSION:
        raise JournalError(
            f"{path} is a journal of version {version}, written by a recausal that kept no "
            "digests of its parts, so they cannot be checked; rerun with --overwrite to start "
            "over, or use another --out"
        )
    if version > MANIFEST_VERSION:
        raise JournalError(
            f"{path} is a journal of version {version}, newer than this recausal reads "
            f"({MANIFEST_VERSION}); use a newer recausal, --overwrite to start over, or another "
            "--out"
        )
    for key in ("arguments", PARTS):
        if not isinstance(manifest.get(key), dict):
            raise _Damage(f"its {key!r} is {_describe(manifest.get(key))}, not an object")
    return manifest


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an evaluation folder.

    Args:
        out: the folder.

    Returns:
        The manifest as written (``JournalDamagedError`` when it is missing or damaged,
        ``JournalError`` when it is of another version).
    """
    path = Path(out) / MANIFEST
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return _parse_manifest(path, data)
    except _Damage as why:
        raise JournalDamagedError(f"{path} is damaged ({why})") from None


def _part_name(index: int) -> str:
    return f"part-{index:06d}.jsonl"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Journal:
    """The saved chunks of one run in one folder (``out=None``: nothing is saved)."""

    def __init__(self, out: str | os.PathLike | None) -> None:
        self.out = Path(out) if out is not None else None
        self.manifest: dict[str, Any] = {}
        self.repair = False

    def open(self, manifest: dict[str, Any], overwrite: bool, repair: bool = False) -> None:
        """Create the folder with its manifest, or check that an existing one is this run's.

        Args:
            manifest: this run's manifest.
            overwrite: discard an earlier run in the folder.
            repair: where the manifest is damaged, start the journal over (every chunk is
                recomputed) instead of raising :class:`JournalDamagedError`; damaged parts are
                handled by :meth:`saved`.
        """
        self.repair = repair
        self.manifest = {**manifest, PARTS: {}}
        out = self.out
        if out is None:
            return
        path, journal = out / MANIFEST, out / JOURNAL
        if out.exists() and not out.is_dir():
            raise InvalidInputError(f"out {str(out)!r} exists and is not a directory")
        has_run = path.is_file() or journal.is_dir()
        if has_run and overwrite:
            self._clear()
        elif has_run:
            try:
                if not path.is_file():
                    raise _Damage(f"{MANIFEST} is missing")
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise JournalError(f"cannot read {path}: {exc.strerror or exc}") from None
                old = _parse_manifest(path, data)
            except _Damage as why:
                if not repair:
                    raise JournalDamagedError(
                        f"out {str(out)!r}: {MANIFEST} is damaged ({why}), so no part can be "
                        f"checked; {_REPAIR} to recompute every chunk, or --overwrite"
                    ) from None
                warnings.warn(
                    f"out {str(out)!r}: {MANIFEST} is damaged ({why}); recomputing every chunk",
                    RecausalWarning,
                    stacklevel=3,
                )
                self._clear()
            else:
                self._refuse_other_arguments(old)
                self.manifest = old
                self._sweep()
                return
        elif out.is_dir() and any(out.iterdir()) and not overwrite:
            raise InvalidInputError(
                f"out {str(out)!r} is not empty and holds no evaluation; use an empty folder "
                "(or --overwrite)"
            )
        self._mkdir()
        self._write_manifest()

    def _refuse_other_arguments(self, old: dict[str, Any]) -> None:
        old_args, new_args = old["arguments"], self.manifest["arguments"]
        if old_args != new_args:
            diff = sorted(
                key
                for key in set(old_args) | set(new_args)
                if old_args.get(key) != new_args.get(key)
            )
            raise InvalidInputError(
                f"out {str(self.out)!r} holds a run with different arguments ({', '.join(diff)});"
                " use another --out, or --overwrite to discard it"
            )

    def _clear(self) -> None:
        """Remove the journal, the manifest and the outputs of an earlier run."""
        assert self.out is not None
        for name in (JOURNAL, MANIFEST, *OWN_OUTPUTS):
            remove_path(self.out / name)

    def _mkdir(self) -> None:
        assert self.out is not None
        try:
            (self.out / JOURNAL).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"cannot create {self.out / JOURNAL}: {exc.strerror or exc}; remove what is "
                "there, or use --overwrite"
            ) from None

    def _sweep(self) -> None:
        """Make the journal folder and remove writes cut short by a kill."""
        assert self.out is not None
        self._mkdir()
        for stale in [*(self.out / JOURNAL).glob(".*.tmp"), *self.out.glob(f".{MANIFEST}.*.tmp")]:
            with contextlib.suppress(OSError):
                stale.unlink()

    def _write_manifest(self) -> None:
        assert self.out is not None
        text = json.dumps(self.manifest, indent=2, ensure_ascii=False) + "\n"
        write_atomic(self.out / MANIFEST, text.encode("utf-8"))

    def _read_part(self, index: int, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The rows of a part the manifest names, checked (``_Damage`` why not)."""
        assert self.out is not None
        name = _part_name(index)
        digest = self.manifest[PARTS].get(name)
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise _Damage(f"its digest in {MANIFEST} is not a SHA-256")
        try:
            data = (self.out / JOURNAL / name).read_bytes()
        except FileNotFoundError:
            raise _Damage("missing") from None
        except OSError as exc:
            raise _Damage(f"unreadable: {exc.strerror or exc}") from None
        if _digest(data) != digest:
            raise _Damage(f"its SHA-256 differs from the one in {MANIFEST}: cut off or edited")
        try:
            rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line]
        except (ValueError, RecursionError):
            raise _Damage("not JSON lines") from None
        if (
            not all(isinstance(r, dict) for r in rows)
            or [(r.get("user"), r.get("explainer")) for r in rows] != pairs
        ):
            raise _Damage("it does not hold the rows of its chunk")
        return rows

    def _damage_message(self, damaged: list[tuple[str, str]], tail: str) -> str:
        shown = [f"{JOURNAL}/{name} ({why})" for name, why in damaged[:3]]
        if len(damaged) > 3:
            shown.append(f"{len(damaged) - 3} more")
        what = "part " if len(damaged) == 1 else "parts "
        verb = " is" if len(damaged) == 1 else " are"
        return f"out {str(self.out)!r}: journal {what}{', '.join(shown)}{verb} damaged; {tail}"

    def saved(self, expected: Expected) -> dict[int, list[dict[str, Any]]]:
        """The rows of the chunks saved by an earlier run, each part checked.

        Args:
            expected: the (user, explainer) pairs of each chunk's rows.

        Returns:
            Chunk index -> rows, for the chunks the manifest records. A damaged part raises
            :class:`JournalDamagedError` naming it; with ``repair`` (see :meth:`open`) it is
            dropped instead (with a warning) and its chunk left to recompute.
        """
        done: dict[int, list[dict[str, Any]]] = {}
        if self.out is None:
            return done
        parts: dict[str, Any] = self.manifest[PARTS]
        names = {_part_name(index): index for index in expected}
        damaged = [(name, "not a chunk of this run") for name in parts if name not in names]
        for name, index in names.items():
            if name not in parts:  # never saved, or cut off before the manifest named it
                continue
            try:
                done[index] = self._read_part(index, expected[index])
            except _Damage as why:
                damaged.append((name, str(why)))
        if not damaged:
            return done
        if not self.repair:
            tail = f"{_REPAIR} to recompute {'its chunk' if len(damaged) == 1 else 'them'}"
            raise JournalDamagedError(
                self._damage_message(damaged, tail), tuple(n for n, _ in damaged)
            )
        for name, _ in damaged:
            parts.pop(name, None)
            remove_path(self.out / JOURNAL / name)
        self._write_manifest()
        warnings.warn(self._damage_message(damaged, "recomputing"), RecausalWarning, stacklevel=2)
        return done

    def rows(self, expected: Expected, done: dict[int, list[dict[str, Any]]]) -> list[Any]:
        """Every row of the run in chunk order, read back from the checked parts.

        Args:
            expected: the (user, explainer) pairs of each chunk's rows (every chunk done).
            done: chunk index -> rows (used as they are when nothing is saved).

        Returns:
            The rows. With a folder they come from the parts on disk, each checked against its
            digest again (``JournalDamagedError`` if one changed during the run).
        """
        if self.out is None:
            return [row for index in expected for row in done[index]]
        rows: list[Any] = []
        damaged: list[tuple[str, str]] = []
        for index, pairs in expected.items():
            try:
                rows += self._read_part(index, pairs)
            except _Damage as why:
                damaged.append((_part_name(index), str(why)))
        if damaged:
            raise JournalDamagedError(
                self._damage_message(damaged, f"no rows written; {_REPAIR}"),
                tuple(n for n, _ in damaged),
            )
        return rows

    def save(self, index: int, rows: list[dict[str, Any]]) -> None:
        """Save one finished chunk: the part atomically, then the manifest with its digest.

        Args:
            index: the chunk's index.
            rows: its rows.
        """
        if self.out is None:
            return
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        name = _part_name(index)
        write_atomic(self.out / JOURNAL / name, data)
        self.manifest[PARTS][name] = _digest(data)
        self._write_manifest()
