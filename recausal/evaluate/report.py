"""Write an evaluation's outputs: rows (Parquet, CSV), summary (markdown, JSON) and PNG plots.

Every file is written to a temporary name in the same folder and renamed into place, so a
reader never sees a half-written file.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from recausal._io import write_atomic
from recausal.evaluate.markdown import summary_markdown
from recausal.evaluate.measures import (
    KS,
    REFERENCE,
    deletion_curve,
    paired_tests,
    perturbation_curve,
    summarize,
)
from recausal.evaluate.schema import LIST_COLUMNS

PLOTS = {
    "sizes": "sizes.png",
    "deletion": "deletion.png",
    "replacement_rank": "replacement_rank.png",
    "perturbation": "perturbation.png",
    "probability": "probability.png",
}


def _clean(value: Any) -> Any:
    """JSON-safe value (NaN → null)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def rows_to_csv(rows: pd.DataFrame) -> str:
    """The rows as CSV; list columns are JSON strings."""
    flat = rows.copy()
    for col in LIST_COLUMNS:
        flat[col] = [json.dumps(v, ensure_ascii=False) for v in flat[col]]
    return flat.to_csv(index=False)


def rows_to_parquet(rows: pd.DataFrame) -> bytes:
    """The rows as Parquet bytes, with explicit list types (so an all-empty column keeps its
    type)."""
    from recausal.errors import require_extra

    pa = require_extra("pyarrow", "parquet")
    import pyarrow.parquet as pq

    types = {
        "top_k": pa.list_(pa.string()),
        "set_positions": pa.list_(pa.int64()),
        "set_items": pa.list_(pa.string()),
        "sets": pa.list_(pa.list_(pa.int64())),
        "deletion": pa.list_(pa.bool_()),
        "pos_ranks": pa.list_(pa.int64()),
        "neg_ranks": pa.list_(pa.int64()),
        "del_probs": pa.list_(pa.float64()),
        "ins_probs": pa.list_(pa.float64()),
        "pn_s_item": pa.bool_(),
    }
    table = pa.Table.from_pandas(rows.drop(columns=list(types)), preserve_index=False)
    for col, typ in types.items():
        cells = [None if v is None or v is pd.NA else v for v in rows[col]]
        array = pa.array(cells, type=typ)
        table = table.add_column(list(rows.columns).index(col), col, array)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def summary_json(
    rows: pd.DataFrame,
    manifest: dict[str, Any] | None = None,
    summary: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The summary as a JSON-ready object.

    Args:
        rows: the rows.
        manifest: the run's manifest.
        summary: ``summarize(rows)`` if already computed.

    Returns:
        The manifest, one record per explainer (figures, their 95% bootstrap intervals and
        p-values), and the paired tests against the causal explainer in full.
    """
    summary = summarize(rows) if summary is None else summary
    tests = paired_tests(rows, REFERENCE)
    return {
        "manifest": manifest or {},
        "n_rows": len(rows),
        "summary": [
            {"explainer": name, **{k: _clean(v) for k, v in rec.items()}}
            for name, rec in summary.iterrows()
        ],
        "paired_tests": [
            {k: _clean(v) for k, v in rec.items()} for rec in tests.to_dict("records")
        ],
    }


def _markdown(
    rows: pd.DataFrame, manifest: dict[str, Any] | None, summary: pd.DataFrame | None = None
) -> str:
    args = (manifest or {}).get("arguments", {})
    lines = ["# Explainer comparison", ""]
    if args:
        lines.append(
            f"Model `{args.get('model')}`, {args.get('n_users')} users, explainers "
            f"{', '.join(args.get('explainers', []))}; max size {args.get('max_size')}, "
            f"k = {args.get('k')}, removal `{args.get('removal')}`, seed {args.get('seed')}."
        )
        if manifest and manifest.get("command"):
            lines += ["", f"Command: `{manifest['command']}`"]
        if manifest and manifest.get("elapsed_seconds") is not None:
            lines += ["", f"Wall time of the (last) run: {manifest['elapsed_seconds']:.1f} s."]
        lines.append("")
    lines.append(summary_markdown(summarize(rows) if summary is None else summary))
    lines += [
        "Definitions: `valid` = share of users with an explanation up to the maximal size; sizes "
        "and replacement ranks are over valid rows; `repl. rank` = mean rank of the new top-1 in "
        "the original top-k (lower = a smaller change), over valid rows where it is in the "
        "top-k; `model calls` and `s/user` per user. Brackets: 95% percentile bootstrap "
        "intervals over users (1000 resamples, seed 0). ↓ / ↑: lower / higher is better. "
        "See docs/method.md §6 and recausal/evaluate/measures.py.",
        "",
        "Plots: [sizes](sizes.png), [deletion curves](deletion.png), "
        "[replacement ranks](replacement_rank.png), [POS/NEG curves](perturbation.png), "
        "[DEL/INS curves](probability.png).",
        "",
    ]
    return "\n".join(lines)


def _save_figure(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    write_atomic(path, buf.getvalue())


def plot_sizes(rows: pd.DataFrame, path: Path) -> None:
    """Histogram of explanation sizes per explainer (``none`` = no valid explanation)."""
    import matplotlib.pyplot as plt

    ok = rows[rows["error"].isna()]
    names = list(dict.fromkeys(ok["explainer"]))
    top = int(ok["size"].max()) if ok["size"].notna().any() else 1
    labels = [str(s) for s in range(1, top + 1)] + ["none"]
    fig, axes = plt.subplots(
        1, max(len(names), 1), figsize=(2.6 * max(len(names), 1), 2.8), sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=False):
        sizes = ok.loc[ok["explainer"] == name, "size"]
        counts = [int((sizes == s).sum()) for s in range(1, top + 1)] + [int(sizes.isna().sum())]
        total = max(len(sizes), 1)
        ax.bar(labels, [c / total for c in counts], color="tab:blue")
        ax.set_title(name)
        ax.set_xlabel("explanation size")
    axes[0][0].set_ylabel("share of users")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_deletion(rows: pd.DataFrame, path: Path) -> None:
    """Deletion curves: share of users whose top-1 changed after removing the top-m items."""
    import matplotlib.pyplot as plt

    curve = deletion_curve(rows)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, values in curve.iterrows():
        ax.plot(list(curve.columns), list(values), marker="o", label=str(name))
    ax.set_xlabel("m (top-ranked history items removed)")
    ax.set_ylabel("share of users whose top-1 changed")
    ax.set_ylim(0, 1.02)
    if len(curve.columns):
        ax.set_xticks(list(curve.columns))
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_replacement_ranks(rows: pd.DataFrame, path: Path) -> None:
    """Distribution of the replacement's rank in the original top-k, per explainer (valid rows;
    ``out`` = not in the top-k)."""
    import matplotlib.pyplot as plt
    import numpy as np

    valid = rows[rows["error"].isna() & rows["valid"]]
    names = list(dict.fromkeys(rows.loc[rows["error"].isna(), "explainer"]))
    k = max((len(t) for t in rows["top_k"]), default=1)
    labels = [str(r) for r in range(2, k + 1)] + ["out"]
    x = np.arange(len(labels))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(labels) + 2), 3.5))
    for i, name in enumerate(names):
        ranks = valid.loc[valid["explainer"] == name, "replacement_rank"]
        total = max(len(ranks), 1)
        counts = [int((ranks == r).sum()) for r in range(2, k + 1)] + [int(ranks.isna().sum())]
        ax.bar(x + i * width - 0.4 + width / 2, [c / total for c in counts], width, label=name)
    ax.set_xticks(x, labels)
    ax.set_xlabel("rank of the replacement in the original top-k")
    ax.set_ylabel("share of valid explanations")
    ax.legend(fontsize="small")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _curve_panel(ax: Any, rows: pd.DataFrame, kind: str, k: int | None) -> None:
    """One perturbation curve per explainer, with its 95% bootstrap band."""
    curve = perturbation_curve(rows, kind, k)
    for name, part in curve.groupby("explainer", sort=False):
        (line,) = ax.plot(part["step"] * 10, part["value"], marker=".", label=str(name))
        ax.fill_between(
            part["step"] * 10, part["ci_low"], part["ci_high"], color=line.get_color(), alpha=0.2
        )
    ax.set_xticks([20, 40, 60, 80, 100])
    ax.grid(alpha=0.3)


def plot_perturbation(rows: pd.DataFrame, path: Path) -> None:
    """POS@k (top) and NEG@k (bottom) curves for each k of :data:`KS`: share of users whose
    item stays in the top-k once the most (POS) / least (NEG) important 10%, 20%, ... of the
    ranked window are removed, per explainer with 95% bootstrap bands.

    Args:
        rows: the rows.
        path: the PNG to write.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(KS), figsize=(3.2 * len(KS), 6), sharex=True, sharey=True)
    for col, k in enumerate(KS):
        for row, kind in enumerate(("pos", "neg")):
            ax = axes[row][col]
            _curve_panel(ax, rows, kind, k)
            ax.set_title(f"{kind.upper()}@{k} ({'lower' if kind == 'pos' else 'higher'} = better)")
            ax.set_ylim(-0.02, 1.02)
            if row == 1:
                ax.set_xlabel("% of ranked window removed")
    for row in (0, 1):
        axes[row][0].set_ylabel("share with item in top-k")
    axes[0][-1].legend(fontsize="small")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_probability(rows: pd.DataFrame, path: Path) -> None:
    """DEL and INS curves: the explained item's mean probability once the most important 10%,
    20%, ... of the ranked window are removed (DEL) / are all that is kept (INS), per
    explainer with 95% bootstrap bands.

    Args:
        rows: the rows.
        path: the PNG to write.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    for ax, kind, title in (
        (axes[0], "del", "DEL: top items removed (lower = better)"),
        (axes[1], "ins", "INS: only top items kept (higher = better)"),
    ):
        _curve_panel(ax, rows, kind, None)
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("% of ranked window")
        ax.set_ylabel("probability of the item")
    axes[1].legend(fontsize="small")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def write_report(
    rows: pd.DataFrame,
    out: str | os.PathLike,
    manifest: dict[str, Any] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``rows.parquet``, ``rows.csv``, ``summary.md``, ``summary.json`` and (with
    ``plots``) the PNG plots into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "rows.parquet": out / "rows.parquet",
        "rows.csv": out / "rows.csv",
        "summary.md": out / "summary.md",
        "summary.json": out / "summary.json",
    }
    write_atomic(written["rows.parquet"], rows_to_parquet(rows))
    write_atomic(written["rows.csv"], rows_to_csv(rows).encode("utf-8"))
    summary = summarize(rows)
    write_atomic(written["summary.md"], _markdown(rows, manifest, summary).encode("utf-8"))
    payload = json.dumps(summary_json(rows, manifest, summary), indent=2, ensure_ascii=False)
    payload += "\n"
    write_atomic(written["summary.json"], payload.encode("utf-8"))
    if plots:
        from recausal.errors import require_extra

        matplotlib = require_extra("matplotlib", "plots")
        matplotlib.use("Agg")
        for key, draw in (
            ("sizes", plot_sizes),
            ("deletion", plot_deletion),
            ("replacement_rank", plot_replacement_ranks),
            ("perturbation", plot_perturbation),
            ("probability", plot_probability),
        ):
            path = out / PLOTS[key]
            draw(rows, path)
            written[PLOTS[key]] = path
    return written
