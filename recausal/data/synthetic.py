"""A synthetic sequential dataset with planted causes.

The planted rule: **a cause raises its effect within the next** ``max_lag`` **items, until the
effect appears** (``max_lag=1``, the default: an effect follows its cause immediately). Items
are of three kinds, with tokens ``"1"``..``str(n_items)``:

- causes ``1..n_pairs`` (titles ``"cause i"``),
- effects ``n_pairs+1..2*n_pairs`` (titles ``"effect i"``); effect ``i`` belongs to cause ``i``,
- fillers, the rest (titles ``"filler j"``).

Each user's sequence is drawn step by step. A cause is *pending* for the ``max_lag`` items
after it, until its effect appears. While a cause is pending, the next item is its effect with
the same probability ``h`` at every step, ``h = 1 - (1 - follow_prob) ** (1 / max_lag)``, so
that the effect comes within ``max_lag`` items with probability ``follow_prob`` (its delay is
1..max_lag, geometric); otherwise the next item is a filler, except at the last step of the
window: there the cause expires, and the item is drawn as if none were pending. With no cause
pending, the next item is a cause (drawn uniformly) with probability ``cause_prob`` and a
filler (drawn uniformly) otherwise. Effects occur nowhere else: an effect always comes at most
``max_lag`` items after its cause, with only fillers between, and a pending cause is the only
thing that raises the chance of its effect.

The chance ``h`` is the same at every step of the window on purpose: the chance of the effect
depends only on *which* cause is pending, not on how many fillers came after it. So removing a
filler cannot by itself change what a model that learned the rule should recommend (the cause
stays pending, and its effect stays the likeliest item whenever ``h`` beats every other
item's chance, as with the defaults), while removing the cause can (its effect can no longer
come): the cause alone is the true explanation.

A share ``end_with_cause`` of the users have a sequence whose last item is a cause, with no
other cause pending before it (no cause starts in the ``max_lag`` items before it): for those
users, a model that learned the rule recommends that cause's effect next, and the true
explanation of that recommendation is the last history item. Sequence lengths are uniform in
``[min_seq_len, seq_len]``.

Timestamps are ``1_000_000_000 + step * 86_400 + user_index``: strictly increasing within a
user and far enough apart that RecBole's float32 timestamps never tie. The ``.inter`` file lists
users in order, each user's interactions oldest first. The same arguments give identical bytes;
``max_lag=1`` gives the bytes of the rule before ``max_lag`` existed (the ``.planted.json``
records ``max_lag`` only when it is not 1, and a file without it reads as ``max_lag=1``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recausal.data.datasets import DatasetFiles, as_dataset_files, resolve_dataset
from recausal.errors import InvalidInputError

_T0 = 1_000_000_000
_DAY = 86_400
META_SUFFIX = "planted.json"


@dataclass(frozen=True)
class PlantedDataset:
    """A generated dataset with planted cause → effect pairs (item tokens) and its parameters.

    ``max_lag`` is the number of items after a cause within which its effect may come.
    """

    path: Path
    name: str
    pairs: tuple[tuple[str, str], ...]
    n_users: int
    n_items: int
    n_pairs: int
    seq_len: int
    min_seq_len: int
    follow_prob: float
    cause_prob: float
    end_with_cause: float
    seed: int
    max_lag: int = 1

    @property
    def cause_to_effect(self) -> dict[str, str]:
        """Cause token → its effect token."""
        return dict(self.pairs)

    @property
    def causes(self) -> frozenset[str]:
        """The cause item tokens."""
        return frozenset(c for c, _ in self.pairs)

    @property
    def effects(self) -> frozenset[str]:
        """The effect item tokens."""
        return frozenset(e for _, e in self.pairs)

    @property
    def files(self) -> DatasetFiles:
        """The dataset's atomic files."""
        return resolve_dataset(self.path)

    def to_dict(self) -> dict[str, Any]:
        """Parameters and pairs, JSON-ready (the path as a string)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["pairs"] = [list(p) for p in self.pairs]
        return data


DEFAULT_PARAMS: dict[str, Any] = {
    "n_users": 500,
    "n_items": 60,
    "n_pairs": 10,
    "seq_len": 25,
    "min_seq_len": 15,
    "follow_prob": 0.9,
    "cause_prob": 0.2,
    "end_with_cause": 0.5,
    "seed": 0,
}
"""The parameters of the shipped ``synthetic-planted`` copy."""


def _check(name: str, ok: bool, value: Any, allowed: str) -> None:
    if not ok:
        raise InvalidInputError(f"{name}={value!r} is not allowed; {name} must be {allowed}")


def _hazard(follow_prob: float, max_lag: int) -> float:
    """The chance that a pending cause's effect is the next item (module docstring)."""
    if max_lag == 1:
        return follow_prob
    return 1.0 - (1.0 - follow_prob) ** (1.0 / max_lag)


def _draw_sequence(
    rng: np.random.Generator,
    length: int,
    n_pairs: int,
    n_items: int,
    follow_prob: float,
    cause_prob: float,
    end_with_cause: bool,
    max_lag: int = 1,
) -> list[int]:
    fillers_lo = 2 * n_pairs + 1  # filler ids are fillers_lo..n_items (1-based)
    n_fillers = n_items - 2 * n_pairs
    hazard = _hazard(follow_prob, max_lag)
    free = length - 1 if end_with_cause else length
    seq: list[int] = []
    pending = 0  # the cause whose effect may still come (0: none)
    age = 0  # which step of the pending cause's window this one is (1..max_lag)
    for step in range(free):
        if pending:
            age += 1
        u_follow, u_kind = rng.random(), rng.random()
        if pending and u_follow < hazard:
            seq.append(pending + n_pairs)
            pending = 0
            continue
        if pending and age < max_lag:  # the window is still open: only fillers come between
            seq.append(int(rng.integers(fillers_lo, fillers_lo + n_fillers)))
            continue
        pending = 0
        # No cause may start in the max_lag steps before a forced final cause (that cause
        # would then be "not followed" by design, not by chance), so draw a filler there.
        last_free = end_with_cause and step >= free - max_lag
        if u_kind < cause_prob and not last_free:
            pending, age = int(rng.integers(1, n_pairs + 1)), 0
            seq.append(pending)
        else:
            seq.append(int(rng.integers(fillers_lo, fillers_lo + n_fillers)))
    if end_with_cause:
        seq.append(int(rng.integers(1, n_pairs + 1)))
    return seq


def make_planted_dataset(
    out_dir: str | os.PathLike,
    name: str = "synthetic-planted",
    *,
    n_users: int = DEFAULT_PARAMS["n_users"],
    n_items: int = DEFAULT_PARAMS["n_items"],
    n_pairs: int = DEFAULT_PARAMS["n_pairs"],
    seq_len: int = DEFAULT_PARAMS["seq_len"],
    min_seq_len: int | None = DEFAULT_PARAMS["min_seq_len"],
    follow_prob: float = DEFAULT_PARAMS["follow_prob"],
    cause_prob: float = DEFAULT_PARAMS["cause_prob"],
    end_with_cause: float = DEFAULT_PARAMS["end_with_cause"],
    seed: int = DEFAULT_PARAMS["seed"],
    max_lag: int = 1,
) -> PlantedDataset:
    """Write ``<out_dir>/<name>.inter``, ``.item`` and ``.planted.json``; return their description.

    See the module docstring for the generative rule. ``out_dir`` is created if needed; for
    RecBole its folder name should equal ``name``. The defaults give the shipped copy.

    Args:
        out_dir: the dataset's folder.
        name: the file name stem.
        n_users, n_items, n_pairs, seq_len, min_seq_len, follow_prob, cause_prob,
            end_with_cause, seed: the parameters of the rule (module docstring).
        max_lag: the number of items after a cause within which its effect may come, an int
            in ``[1, seq_len - 1]``.

    Returns:
        The dataset's description.

    Raises:
        InvalidInputError: a parameter out of its range (the message names it).
    """
    _check("name", bool(name) and "/" not in name and "\\" not in name, name, "a file name stem")
    _check("n_users", isinstance(n_users, int) and n_users >= 1, n_users, "an int >= 1")
    _check("n_pairs", isinstance(n_pairs, int) and n_pairs >= 1, n_pairs, "an int >= 1")
    _check(
        "n_items",
        isinstance(n_items, int) and n_items >= 2 * n_pairs + 1,
        n_items,
        f"an int >= 2 * n_pairs + 1 = {2 * n_pairs + 1} (room for at least one filler)",
    )
    _check("seq_len", isinstance(seq_len, int) and seq_len >= 2, seq_len, "an int >= 2")
    min_len = seq_len if min_seq_len is None else min_seq_len
    _check(
        "min_seq_len",
        isinstance(min_len, int) and 2 <= min_len <= seq_len,
        min_seq_len,
        f"an int in [2, seq_len={seq_len}]",
    )
    for pname, value in (
        ("follow_prob", follow_prob),
        ("cause_prob", cause_prob),
        ("end_with_cause", end_with_cause),
    ):
        _check(pname, isinstance(value, int | float) and 0.0 <= value <= 1.0, value, "in [0, 1]")
    _check("seed", isinstance(seed, int) and seed >= 0, seed, "an int >= 0")
    _check_max_lag(max_lag, seq_len)

    rng = np.random.default_rng(seed)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(1, n_users + 1):
        length = int(rng.integers(min_len, seq_len + 1))
        ends = bool(rng.random() < end_with_cause)
        seq = _draw_sequence(rng, length, n_pairs, n_items, follow_prob, cause_prob, ends, max_lag)
        for step, item in enumerate(seq):
            lines.append(f"{user}\t{item}\t{_T0 + step * _DAY + user}")

    item_lines = ["item_id:token\ttitle:token_seq"]
    for item in range(1, n_items + 1):
        if item <= n_pairs:
            title = f"cause {item}"
        elif item <= 2 * n_pairs:
            title = f"effect {item - n_pairs}"
        else:
            title = f"filler {item - 2 * n_pairs}"
        item_lines.append(f"{item}\t{title}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = PlantedDataset(
        path=out,
        name=name,
        pairs=tuple((str(i), str(i + n_pairs)) for i in range(1, n_pairs + 1)),
        n_users=n_users,
        n_items=n_items,
        n_pairs=n_pairs,
        seq_len=seq_len,
        min_seq_len=min_len,
        follow_prob=float(follow_prob),
        cause_prob=float(cause_prob),
        end_with_cause=float(end_with_cause),
        seed=seed,
        max_lag=max_lag,
    )
    meta = {k: v for k, v in result.to_dict().items() if k != "path"}
    if max_lag == 1:
        del meta["max_lag"]  # the bytes of the files written before max_lag existed
        meta["rule"] = "effect follows its cause immediately with probability follow_prob"
    else:
        meta["rule"] = (
            "a cause raises its effect within the next max_lag items, until the effect "
            "appears: while it is pending the next item is its effect with probability "
            "1 - (1 - follow_prob) ** (1 / max_lag), else a filler"
        )
    _write(out / f"{name}.inter", "\n".join(lines) + "\n")
    _write(out / f"{name}.item", "\n".join(item_lines) + "\n")
    _write(out / f"{name}.{META_SUFFIX}", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return result


def _check_max_lag(max_lag: Any, seq_len: int) -> None:
    ok = isinstance(max_lag, int) and not isinstance(max_lag, bool)
    _check(
        "max_lag",
        ok and 1 <= max_lag < seq_len,
        max_lag,
        f"an int in [1, seq_len - 1 = {seq_len - 1}]",
    )


def _write(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def make_tiny_planted_dataset(out_dir: str | os.PathLike, seed: int = 0) -> PlantedDataset:
    """A small planted dataset for tests (60 users, 20 items, 3 pairs, sequences of 8-12)."""
    return make_planted_dataset(
        out_dir,
        name=Path(out_dir).name or "synthetic-planted",
        n_users=60,
        n_items=20,
        n_pairs=3,
        seq_len=12,
        min_seq_len=8,
        seed=seed,
    )


def load_planted_dataset(
    dataset: str | os.PathLike | DatasetFiles = "synthetic-planted",
) -> PlantedDataset:
    """The description of a planted dataset written by :func:`make_planted_dataset`.

    ``dataset`` is anything :func:`resolve_dataset` accepts; its folder must hold the
    ``<name>.planted.json`` written alongside the atomic files.
    """
    files = as_dataset_files(dataset)
    meta_path = files.directory / f"{files.name}.{META_SUFFIX}"
    if not meta_path.is_file():
        raise InvalidInputError(
            f"dataset {files.name!r} has no {meta_path.name}; it was not made by "
            "make_planted_dataset"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        max_lag = meta.get("max_lag", 1)
        _check_max_lag(max_lag, meta["seq_len"])
        return PlantedDataset(
            path=files.directory,
            name=str(meta["name"]),
            pairs=tuple((str(c), str(e)) for c, e in meta["pairs"]),
            **{k: meta[k] for k in DEFAULT_PARAMS},
            max_lag=max_lag,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"{meta_path} is not a valid planted-dataset description: {exc}"
        ) from None
