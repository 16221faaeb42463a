"""Reports for people: a self-contained HTML page per explanation, and graph node labels."""

from __future__ import annotations

from recausal.report.html import explanation_html, node_labels

__all__ = ["explanation_html", "node_labels"]
