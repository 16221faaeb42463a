"""Offline evaluation: explain many users with several explainers and compare them.

``evaluate(model, explainers, users, ...)`` returns one row per (user, explainer);
``summarize(rows)`` the measures per explainer; ``write_report(rows, out)`` the files.

Modules: ``schema`` (the rows), ``spec`` (what a run computes), ``users`` (which users),
``chunk`` (one chunk's rows), ``engines`` (where chunks run), ``journal`` (the saved chunks),
``runner`` (the job), ``measures``, ``markdown`` and ``report`` (the summary, its tables and
the files), ``cli``.
"""

from __future__ import annotations

from recausal.evaluate.journal import read_manifest
from recausal.evaluate.markdown import summary_markdown
from recausal.evaluate.measures import deletion_curve, summarize
from recausal.evaluate.report import write_report
from recausal.evaluate.runner import evaluate
from recausal.evaluate.schema import COLUMNS, TIMING_COLUMNS, rows_frame
from recausal.evaluate.spec import DEFAULT_EXPLAINERS
from recausal.evaluate.users import resolve_users

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
