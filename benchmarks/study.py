"""The causal explainer's open choices, measured: variants on the development half of the users.

Each variant is the paper's method (``causal-paper``) with some settings changed (significance
level, heads, order-aware learning, removal, what to do when the PDS tree holds no valid set,
how equally small sets are ordered, how items outside the tree are ranked); ``causal`` is the
defaults chosen from it. Every variant and the baselines run through ``recausal.evaluate`` on
the same users, and ``summarize`` gives every figure with its
bootstrap interval. Choose the defaults on ``--users dev``; report them on ``--users held-out``.

    python benchmarks/study.py --model sasrec-ml100k --users dev --out results/study/sasrec-dev
    python benchmarks/study.py --model bert4rec-ml100k --users dev --out results/study/bert4rec-dev
    python benchmarks/study.py --users 40 --out /tmp/study-smoke        # a quick look

Writes ``summary.md`` (one row per variant and baseline) beside the evaluation's own files.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: name -> (the explainer it starts from, the settings changed): one choice at a time on the
#: paper's method (``causal-paper``); ``causal`` is the defaults chosen from them
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "causal-paper": ("causal-paper", {}),
    "causal-alpha0.05": ("causal-paper", {"alpha": 0.05}),
    "causal-alpha0.001": ("causal-paper", {"alpha": 0.001}),
    "causal-aggregate": ("causal-paper", {"heads": "aggregate"}),
    "causal-all-heads": ("causal-paper", {"heads": "all"}),
    "causal-pad": ("causal-paper", {"removal": "pad"}),
    "causal-beyond-tree": ("causal-paper", {"beyond_tree": True}),
    "causal-min-change": ("causal-paper", {"prefer": "replacement"}),
    "causal-rank-all": ("causal-paper", {"rank_all": True}),
    "causal": ("causal", {}),
    # the candidate cap, around the default's 1,200 (every pair of a 49-item window)
    "causal-candidates5000": ("causal", {"max_candidates": 5000}),
    "causal-candidates300": ("causal", {"max_candidates": 300}),
}
BASELINES = (
    "attention",
    "recency",
    "occlusion",
    "integrated-gradients",
    "kernel-shap",
    "lime",
    "shapley-sampling",
    "random",
)
COLUMNS = (
    "valid_share",
    "size_mean",
    "replacement_outside_share",
    "pos_auc_1",
    "pos_auc_5",
    "neg_auc_1",
    "pn_s_item",
    "model_calls_mean",
)


def register_variants() -> list[str]:
    """Register each variant as an explainer of its own name (for this process only).

    Returns:
        The variants' names.
    """
    from recausal.explain import EXPLAINERS

    for name, (start, settings) in VARIANTS.items():
        if name in EXPLAINERS:  # causal-paper and causal: registered already
            continue
        base = EXPLAINERS[start]

        def init(self: Any, _base=base, _settings=settings, **params: Any) -> None:
            _base.__init__(self, **{**params, **_settings})

        EXPLAINERS[name] = type(name, (base,), {"name": name, "__init__": init})
    return list(VARIANTS)


def _cell(row: Any, column: str) -> str:
    value = row.get(column)
    if value is None or value != value:
        return "–"
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if low is None or low != low:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sasrec-ml100k")
    parser.add_argument("--users", default="dev", help="dev, held-out, all or N")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--baselines", default=",".join(BASELINES))
    args = parser.parse_args()

    from recausal.evaluate import evaluate, summarize

    register_variants()
    names = [n for n in args.variants.split(",") if n] + [n for n in args.baselines.split(",") if n]
    users: Any = int(args.users) if args.users.isdigit() else args.users
    rows = evaluate(args.model, names, users, out=args.out, progress=True)
    text = study_markdown(summarize(rows), f"Study on {args.model}, users {args.users}")
    (args.out / "study.md").write_text(text, encoding="utf-8")
    print(text)


def study_markdown(summary: Any, title: str) -> str:
    """The study's table: one row per variant and baseline, the figures of ``COLUMNS``.

    Args:
        summary: ``recausal.evaluate.summarize(rows)``.
        title: the first line.

    Returns:
        The markdown text.
    """
    present = [c for c in COLUMNS if c in summary.columns]
    lines = [
        f"{title} (95% bootstrap intervals)",
        "",
        "| explainer | " + " | ".join(present) + " |",
        "|---" * (len(present) + 1) + "|",
    ]
    for name, row in summary.iterrows():
        lines.append(f"| {name} | " + " | ".join(_cell(row, c) for c in present) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
