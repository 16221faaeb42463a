"""Offline evaluation: explain many users with several explainers and compare them.

``evaluate(model, explainers, users, ...)`` returns one row per (user, explainer);
``summarize(rows)`` the measures per explainer; ``write_report(rows, out)`` the files.
"""

from __future__ import annotations

from recausal.evaluate.measures import deletion_curve, summarize, summary_markdown
from recausal.evaluate.report import write_report
from recausal.evaluate.runner import (
    COLUMNS,
    DEFAULT_EXPLAINERS,
    TIMING_COLUMNS,
    evaluate,
    read_manifest,
    resolve_users,
    rows_frame,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_EXPLAINERS",
    "TIMING_COLUMNS",
    "deletion_curve",
    "evaluate",
    "read_manifest",
    "resolve_users",
    "rows_frame",
    "summarize",
    "summary_markdown",
    "write_report",
]
