"""Next-item quality of model bundles: recausal's adapter vs RecBole's trainer vs popularity.

    python benchmarks/quality.py [BUNDLE ...]      (default: the shipped ml-100k bundles)

Prints a markdown table (hit@10 and ndcg@10 on the valid and test splits).
"""

from __future__ import annotations

import sys

from recausal.data import popularity_baseline, resolve_dataset
from recausal.models import load_model
from recausal.models.quality import next_item_metrics


def main(bundles: list[str]) -> None:
    print("| model | evaluated by | valid hit@10 | valid ndcg@10 | test hit@10 | test ndcg@10 |")
    print("|---|---|---|---|---|---|")
    datasets = {}
    for bundle in bundles:
        model = load_model(bundle)
        rows = {
            "RecBole trainer": model.meta["metrics"],
            "recausal adapter": next_item_metrics(model),
            "recausal adapter, seen items excluded": next_item_metrics(model, exclude_seen=True),
        }
        for source, m in rows.items():
            print(
                f"| {model.name} | {source} | {m['valid']['hit@10']:.4f} | "
                f"{m['valid']['ndcg@10']:.4f} | {m['test']['hit@10']:.4f} | "
                f"{m['test']['ndcg@10']:.4f} |"
            )
        datasets[model.dataset_name] = resolve_dataset(model.dataset_name)
    for name, files in datasets.items():
        for label, exclude in (("recausal.data", False), ("recausal.data, seen excluded", True)):
            pop = popularity_baseline(files, exclude_seen=exclude)
            print(
                f"| most popular ({name}) | {label} | {pop.valid['hit@10']:.4f} | "
                f"{pop.valid['ndcg@10']:.4f} | {pop.test['hit@10']:.4f} | "
                f"{pop.test['ndcg@10']:.4f} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["sasrec-ml100k", "bert4rec-ml100k"])
