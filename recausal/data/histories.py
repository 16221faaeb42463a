"""Users' item sequences in the order RecBole's sequential models see them, and the split.

RecBole 1.2.1 (``SequentialDataset.data_augmentation``) sorts the interactions by user and
timestamp with stable sorts, so interactions with equal timestamps keep their order in the
``.inter`` file. The timestamp it sorts by is not the raw value but a float32
(``torch.FloatTensor``) copy, min-max scaled to [0, 1] over the whole file first when the
config normalizes float fields. Timestamps that differ in the file can therefore tie in
RecBole: unscaled, float32 values near 1e9 are 64 apart, so times within about a minute tie;
scaled, ties need about a second or less. :func:`user_histories` reproduces this, so its
sequences equal RecBole's.

Whether RecBole scales the timestamp depends on the dataset: its ``properties/dataset/
sample.yaml`` (read for every dataset) sets ``normalize_all: ~`` (off), and only
``properties/dataset/ml-100k.yaml`` turns it on; a config's ``normalize_all`` or
``normalize_field`` overrides both. :func:`recbole_normalizes_time` encodes this.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recausal.data.atomic import read_atomic
from recausal.data.datasets import DatasetFiles, as_dataset_files
from recausal.errors import InvalidInputError


def recbole_normalizes_time(
    dataset_name: str,
    config: Mapping[str, Any] | None = None,
    time_field: str = "timestamp",
) -> bool:
    """Whether RecBole 1.2.1 min-max scales the timestamp column for this dataset and config.

    ``config`` holds the settings given to RecBole (``normalize_all``, ``normalize_field``);
    without them, only ``ml-100k`` is scaled (its bundled dataset YAML says so).
    """
    cfg = config or {}
    fields = cfg.get("normalize_field")
    if fields:
        return time_field in fields
    if "normalize_all" in cfg:
        return bool(cfg["normalize_all"])
    return dataset_name == "ml-100k"


def recbole_time_key(
    timestamps: Sequence[float] | np.ndarray, normalize: bool = True
) -> np.ndarray:
    """The float32 sort key RecBole derives from a timestamp column.

    ``normalize=True`` mirrors RecBole's default ``normalize_all: True`` (min-max scaling over
    the whole column, in float64, then float32); ``False`` mirrors a config that turns it off
    (the raw values as float32). A constant column becomes all ones, as in RecBole.
    """
    values = np.asarray(timestamps, dtype=np.float64)
    if normalize and values.size:
        lo, hi = values.min(), values.max()
        values = np.ones_like(values) if hi == lo else (values - lo) / (hi - lo)
    return values.astype(np.float32)


def user_histories(
    inter: pd.DataFrame,
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str = "timestamp",
    normalize_time: bool = False,
) -> dict[str, list[str]]:
    """Each user's item tokens, oldest first, ordered exactly as RecBole orders them.

    ``inter`` is a ``.inter`` frame (see :func:`recausal.data.read_atomic`) in file order.
    Users appear in the order of their first interaction in the file (RecBole's internal id
    order). Ties of the sort key (see :func:`recbole_time_key`) keep file order;
    ``normalize_time`` must say whether RecBole scales the timestamps
    (:func:`recbole_normalizes_time`: ``True`` for ml-100k, ``False`` by default otherwise);
    :func:`dataset_histories` picks it for you. Histories are not truncated to
    ``MAX_ITEM_LIST_LENGTH``.
    """
    for field in (user_field, item_field, time_field):
        if field not in inter.columns:
            raise InvalidInputError(
                f"interactions have no column {field!r} "
                f"(columns: {', '.join(map(str, inter.columns))})"
            )
    times = pd.to_numeric(inter[time_field], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(times).any():
        row = int(np.flatnonzero(np.isnan(times))[0])
        raise InvalidInputError(
            f"column {time_field!r} has a missing or non-numeric timestamp at data row {row + 1}"
        )
    key = recbole_time_key(times, normalize=normalize_time)
    users = inter[user_field].astype(str).to_numpy()
    items = inter[item_field].astype(str).to_numpy()
    codes, uniques = pd.factorize(users)
    # Stable sorts, last key first: by time, then by user (as RecBole's Interaction.sort).
    order = np.argsort(key, kind="stable")
    order = order[np.argsort(codes[order], kind="stable")]
    sorted_codes = codes[order]
    bounds = np.flatnonzero(np.diff(sorted_codes)) + 1
    histories: dict[str, list[str]] = {}
    for chunk in np.split(order, bounds):
        if chunk.size:
            histories[str(uniques[codes[chunk[0]]])] = items[chunk].tolist()
    return histories


def dataset_histories(
    dataset: DatasetFiles | str | os.PathLike, config: Mapping[str, Any] | None = None
) -> dict[str, list[str]]:
    """:func:`user_histories` of a dataset's ``.inter`` file, ordered as RecBole orders it.

    ``dataset`` is anything :func:`recausal.data.resolve_dataset` accepts; ``config`` the RecBole
    settings in use (only ``normalize_all``/``normalize_field`` and the field names matter).
    """
    files = as_dataset_files(dataset)
    cfg = config or {}
    fields = {
        "user_field": cfg.get("USER_ID_FIELD", "user_id"),
        "item_field": cfg.get("ITEM_ID_FIELD", "item_id"),
        "time_field": cfg.get("TIME_FIELD", "timestamp"),
    }
    return user_histories(
        read_atomic(files.inter),
        normalize_time=recbole_normalizes_time(files.name, cfg, fields["time_field"]),
        **fields,
    )


@dataclass(frozen=True)
class EvalCase:
    """One evaluation case: the history the model sees and the item it should rank high."""

    user: str
    history: tuple[str, ...]
    target: str


@dataclass(frozen=True)
class LeaveOneOut:
    """RecBole's leave-one-out split (``split: {LS: valid_and_test}``, ``order: TO``).

    ``train`` holds, per user, the items of the training sequences (the full sequence less
    the held-out targets); ``valid`` and ``test`` the evaluation cases.
    """

    train: dict[str, tuple[str, ...]]
    valid: tuple[EvalCase, ...]
    test: tuple[EvalCase, ...]


def leave_one_out(histories: Mapping[str, Sequence[str]]) -> LeaveOneOut:
    """Split histories as RecBole 1.2.1 does for sequential models.

    RecBole makes one sample per prefix (target ``s_t`` with history ``s_1..s_{t-1}``, t ≥ 2)
    and leaves out each user's last samples: with n ≥ 4 items the last is test and the one
    before valid; with n = 3 only a test case (history ``s_1 s_2``); with n ≤ 2 no evaluation
    case. A user with one item yields no sample at all, so has no training items either.
    """
    train: dict[str, tuple[str, ...]] = {}
    valid: list[EvalCase] = []
    test: list[EvalCase] = []
    for user, seq in histories.items():
        seq = tuple(seq)
        n = len(seq)
        n_samples = max(n - 1, 0)
        n_left_out = min(2, n_samples - 1) if n_samples else 0
        if n_samples:
            train[user] = seq[: n - n_left_out]
        if n_left_out == 2:
            valid.append(EvalCase(user, seq[: n - 2], seq[n - 2]))
        if n_left_out >= 1:
            test.append(EvalCase(user, seq[: n - 1], seq[n - 1]))
    return LeaveOneOut(train=train, valid=tuple(valid), test=tuple(test))
