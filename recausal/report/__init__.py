"""Reports for people: a self-contained HTML page per explanation."""

from __future__ import annotations

from recausal.report.html import explanation_html

__all__ = ["explanation_html"]
