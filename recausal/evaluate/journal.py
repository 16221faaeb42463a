"""The journal of an evaluation folder: its manifest and one saved part per finished chunk.

``OUT/manifest.json`` records the run's arguments; ``OUT/journal/part-NNNNNN.jsonl`` holds the
rows of chunk NNNNNN, written atomically. A rerun with the same arguments reads the parts back
and computes only the missing chunks; other arguments are refused unless ``overwrite``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recausal._io import write_atomic
from recausal.errors import InvalidInputError, RecausalError
from recausal.evaluate.spec import JobSpec

if TYPE_CHECKING:
    from recausal.models import SequentialModel

MANIFEST = "manifest.json"
JOURNAL = "journal"
MANIFEST_FORMAT = "recausal-evaluation"
MANIFEST_VERSION = 1

#: the files a finished run writes next to the journal (removed by ``overwrite``)
OWN_OUTPUTS = (
    "rows.parquet",
    "rows.csv",
    "summary.md",
    "summary.json",
    "sizes.png",
    "deletion.png",
    "replacement_rank.png",
)

#: the (user, explainer) pairs of each chunk's rows, in order, by chunk index
Expected = dict[int, list[tuple[str, str]]]


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


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an evaluation folder.

    Args:
        out: the folder.

    Returns:
        The manifest as written.
    """
    return json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))


def _part_path(out: Path, index: int) -> Path:
    return out / JOURNAL / f"part-{index:06d}.jsonl"


def _refuse_other_arguments(out: Path, manifest: dict[str, Any]) -> None:
    try:
        old = read_manifest(out)
    except (OSError, ValueError) as exc:
        raise RecausalError(f"out {str(out)!r}: cannot read {MANIFEST}: {exc}") from None
    old_args, new_args = old.get("arguments", {}), manifest["arguments"]
    if old_args != new_args:
        diff = sorted(
            key for key in set(old_args) | set(new_args) if old_args.get(key) != new_args.get(key)
        )
        raise InvalidInputError(
            f"out {str(out)!r} holds a run with different arguments ({', '.join(diff)}); "
            "use another --out, or --overwrite to discard it"
        )


class Journal:
    """The saved chunks of one run in one folder (``out=None``: nothing is saved)."""

    def __init__(self, out: str | os.PathLike | None) -> None:
        self.out = Path(out) if out is not None else None

    def open(self, manifest: dict[str, Any], overwrite: bool) -> None:
        """Create the folder with its manifest, or check that an existing one is this run's.

        Args:
            manifest: this run's manifest.
            overwrite: discard an earlier run in the folder.
        """
        out = self.out
        if out is None:
            return
        path = out / MANIFEST
        if out.exists() and not out.is_dir():
            raise InvalidInputError(f"out {str(out)!r} exists and is not a directory")
        if path.is_file() and overwrite:
            shutil.rmtree(out / JOURNAL, ignore_errors=True)
            for name in (MANIFEST, *OWN_OUTPUTS):
                with contextlib.suppress(FileNotFoundError):
                    (out / name).unlink()
        elif path.is_file():
            _refuse_other_arguments(out, manifest)
            (out / JOURNAL).mkdir(exist_ok=True)
            for stale in (out / JOURNAL).glob(".*.tmp"):  # a write cut short by a kill
                with contextlib.suppress(OSError):
                    stale.unlink()
            return
        elif out.is_dir() and any(out.iterdir()) and not overwrite:
            raise InvalidInputError(
                f"out {str(out)!r} is not empty and holds no evaluation; use an empty folder "
                "(or --overwrite)"
            )
        (out / JOURNAL).mkdir(parents=True, exist_ok=True)
        write_atomic(path, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))

    def saved(self, expected: Expected) -> dict[int, list[dict[str, Any]]]:
        """The rows of the chunks saved by an earlier run.

        Args:
            expected: the (user, explainer) pairs of each chunk's rows.

        Returns:
            Chunk index -> rows, for the chunks whose part exists (``RecausalError`` where a
            part does not hold its chunk's rows).
        """
        done: dict[int, list[dict[str, Any]]] = {}
        if self.out is None:
            return done
        for index, pairs in expected.items():
            path = _part_path(self.out, index)
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            rows = [json.loads(line) for line in text.splitlines() if line]
            if [(r["user"], r["explainer"]) for r in rows] != pairs:
                raise RecausalError(
                    f"journal part {path} does not hold the rows of its chunk (edited or from "
                    "another run); delete it to recompute that chunk, or use --overwrite"
                )
            done[index] = rows
        return done

    def save(self, index: int, rows: list[dict[str, Any]]) -> None:
        """Save one finished chunk atomically.

        Args:
            index: the chunk's index.
            rows: its rows.
        """
        if self.out is None:
            return
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_atomic(_part_path(self.out, index), text.encode("utf-8"))
