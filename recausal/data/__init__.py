"""The data layer: RecBole atomic files, user histories, a planted-cause dataset, baselines."""

from recausal.data.atomic import FIELD_TYPES, AtomicField, parse_header, read_atomic, read_header
from recausal.data.datasets import (
    KNOWN_DATASETS,
    DatasetFiles,
    as_dataset_files,
    dataset_fingerprint,
    item_titles,
    item_titles_if_any,
    recorded_dataset,
    resolve_dataset,
)
from recausal.data.histories import (
    EvalCase,
    LeaveOneOut,
    dataset_histories,
    leave_one_out,
    recbole_normalizes_time,
    recbole_time_key,
    user_histories,
)
from recausal.data.popularity import BaselineResult, popularity_baseline, popularity_metrics
from recausal.data.synthetic import (
    PlantedDataset,
    load_planted_dataset,
    make_planted_dataset,
    make_tiny_planted_dataset,
)

__all__ = [
    "FIELD_TYPES",
    "KNOWN_DATASETS",
    "AtomicField",
    "BaselineResult",
    "DatasetFiles",
    "EvalCase",
    "LeaveOneOut",
    "PlantedDataset",
    "as_dataset_files",
    "dataset_fingerprint",
    "dataset_histories",
    "item_titles",
    "item_titles_if_any",
    "leave_one_out",
    "load_planted_dataset",
    "make_planted_dataset",
    "make_tiny_planted_dataset",
    "parse_header",
    "popularity_baseline",
    "popularity_metrics",
    "read_atomic",
    "read_header",
    "recbole_normalizes_time",
    "recbole_time_key",
    "recorded_dataset",
    "resolve_dataset",
    "user_histories",
]
