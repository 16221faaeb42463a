"""Check, over every user, that explanations hold for the user's real history.

For each model and explainer, with the default settings, every user's recommendation is
explained, then:

1. the recommended item and the replacement must not be in the user's history (the seen-item
   policy: ml-100k has no repeated interactions);
2. every valid explanation, removed from the user's **full** history and recommended again the
   way ``recausal recommend --history`` does it (``SequentialModel.recommend``), must change
   the top-1.

For comparison, the previous rule is replayed: the history is cut to the model's window first
and the set is deleted inside that window. Its valid explanations are checked the same way on
the full history (older items then slide into the window), which is how the earlier releases
could report explanations that do not hold.

    python benchmarks/check_counterfactuals.py                     # causal, both shipped models
    python benchmarks/check_counterfactuals.py --explainers causal,occlusion --users 200
"""

from __future__ import annotations

import argparse
import time


def check(model_name: str, explainer_name: str, n_users: int | None, chunk: int) -> dict:
    """The figures of one model and explainer.

    Args:
        model_name: a shipped bundle or a bundle path.
        explainer_name: a registered explainer.
        n_users: the first N users, or ``None`` for all.
        chunk: users explained per batch.

    Returns:
        Counts of the checks, for the table.
    """
    import recausal
    from recausal.data import dataset_histories

    model = recausal.load_model(model_name)
    histories = list(dataset_histories(model.dataset_name).values())[:n_users]
    explainer = recausal.get_explainer(explainer_name)
    out = dict.fromkeys(
        ("users", "long", "seen_rec", "seen_repl", "valid", "holds", "old_valid", "old_holds"), 0
    )
    started = time.perf_counter()
    for start in range(0, len(histories), chunk):
        part = histories[start : start + chunk]
        windows = [h[-model.capacity :] for h in part]
        new = explainer.explain_many(model, part)
        old = explainer.explain_many(model, windows)
        for history, e, o in zip(part, new, old, strict=True):
            out["users"] += 1
            seen = set(history)
            out["seen_rec"] += e.recommended in seen
            out["seen_repl"] += e.replacement in seen
            if e.valid:
                out["valid"] += 1
                left = [t for p, t in enumerate(history) if p not in e.sets[0]]
                out["holds"] += model.recommend([left], k=1)[0].items[0] != e.recommended
            if len(history) > model.capacity:
                out["long"] += 1
                if o.valid:  # positions index the window: map them to the full history
                    offset = len(history) - len(o.history)
                    removed = {offset + p for p in o.sets[0]}
                    left = [t for p, t in enumerate(history) if p not in removed]
                    out["old_valid"] += 1
                    out["old_holds"] += model.recommend([left], k=1)[0].items[0] != o.recommended
    out["seconds"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sasrec-ml100k,bert4rec-ml100k")
    parser.add_argument("--explainers", default="causal")
    parser.add_argument("--users", type=int, default=None, help="the first N users [all]")
    parser.add_argument("--chunk", type=int, default=64)
    args = parser.parse_args()

    header = (
        "| model | explainer | users | recommended seen | replacement seen | valid | "
        "valid and holds on the full history | long histories | old rule: valid | "
        "old rule: holds on the full history | seconds |"
    )
    print(header)
    print("|---" * 11 + "|")
    for model_name in args.models.split(","):
        for name in args.explainers.split(","):
            r = check(model_name, name, args.users, args.chunk)
            old_fail = r["old_valid"] - r["old_holds"]
            print(
                f"| {model_name} | {name} | {r['users']} | {r['seen_rec']} | {r['seen_repl']} | "
                f"{r['valid']} | {r['holds']} ({r['valid'] - r['holds']} fail) | {r['long']} | "
                f"{r['old_valid']} | {r['old_holds']} ({old_fail} fail, "
                f"{100 * old_fail / max(1, r['old_valid']):.1f}%) | {r['seconds']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
