"""Choose the shipped bundles' settings on validation, then train them until validation stops.

The search is small on purpose (each ml-100k epoch takes minutes on two cores):

1. Screening: every setting of the model's grid (dropout x learning rate x weight decay) is
   trained for ``--screen-epochs`` epochs, with early stopping disabled.
2. The setting with the best validation ndcg@10 after screening is trained on, from its
   screening checkpoint, until validation ndcg@10 has not improved for ``--patience``
   evaluations (one per epoch) or ``--max-epochs`` is reached.

Every run is checkpointed after each epoch in ``--work/<model>/<setting>/``, so the script can
be stopped at any point and resumes where it stopped when run again. The learning curves of
all runs are written to ``--work/<model>/curves.json``; the final bundle to
``--work/<model>/bundle``. Short screening favours settings that learn fast; the final run is
therefore the one that decides how far each model gets.

    python benchmarks/tune_bundles.py --model sasrec --work ../train-runs
    python benchmarks/tune_bundles.py --model bert4rec --work ../train-runs
    python benchmarks/tune_bundles.py --curves recausal/bundles --work ../train-runs

``--curves DIR`` writes the learning curves of every run found under ``--work`` (finished or
not: they are read from the runs' checkpoints) to ``DIR/curves.json`` and ``DIR/curves.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

GRIDS = {
    "sasrec": {"dropout": [0.2, 0.5], "learning_rate": [0.001, 0.003], "weight_decay": [0.0]},
    "bert4rec": {"dropout": [0.2, 0.5], "learning_rate": [0.001, 0.003], "weight_decay": [0.0]},
}


def setting_name(setting: dict) -> str:
    """A folder name for one setting, e.g. ``do0.5-lr0.001-wd0``."""
    return f"do{setting['dropout']}-lr{setting['learning_rate']}-wd{setting['weight_decay']:g}"


def overrides(setting: dict, epochs: int, patience: int, threads: int) -> dict:
    """The training settings one grid point stands for."""
    return {
        "hidden_dropout_prob": setting["dropout"],
        "attn_dropout_prob": setting["dropout"],
        "learning_rate": setting["learning_rate"],
        "weight_decay": setting["weight_decay"],
        "epochs": epochs,
        "stopping_step": patience,
        "threads": threads,
    }


def read_curves(work: Path) -> dict[str, dict[str, list[dict]]]:
    """Every run's per-epoch history under ``work``: model -> setting -> epochs.

    Args:
        work: the ``--work`` folder of the search.

    Returns:
        The ``history`` of each run's last checkpoint (epoch, loss, valid scores, seconds).
    """
    curves: dict[str, dict[str, list[dict]]] = {}
    for record in sorted(work.glob("*/*/checkpoints/checkpoint.json")):
        model, setting = record.parts[-4], record.parts[-3]
        history = json.loads(record.read_text(encoding="utf-8"))["state"]["history"]
        curves.setdefault(model, {})[setting] = history
    return curves


def write_curves(work: Path, out: Path) -> None:
    """``out/curves.json`` and ``out/curves.png``: valid ndcg@10 per epoch of every run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = read_curves(work)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curves.json").write_text(json.dumps(curves, indent=1) + "\n", encoding="utf-8")
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4), squeeze=False)
    for ax, (model, runs) in zip(axes[0], sorted(curves.items()), strict=True):
        longest = max(runs, key=lambda name: len(runs[name]))
        for name, history in sorted(runs.items()):
            epochs = [h["epoch"] + 1 for h in history]
            ndcg = [h["valid"]["ndcg@10"] for h in history]
            final = name == longest
            ax.plot(
                epochs,
                ndcg,
                "o-" if final else "--",
                lw=2 if final else 1,
                ms=3,
                label=f"{name}{' (final run)' if final else ''}",
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(model)
        ax.set_xlabel("epoch")
        ax.set_ylabel("valid ndcg@10")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    print(f"wrote {out / 'curves.json'} and {out / 'curves.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(GRIDS))
    parser.add_argument("--curves", type=Path, metavar="DIR", help="write the curves and stop")
    parser.add_argument("--work", type=Path, required=True, help="folder for runs and results")
    parser.add_argument("--screen-epochs", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.curves is not None:
        write_curves(args.work, args.curves)
        return
    if args.model is None:
        parser.error("--model is required (or --curves)")

    from recausal.models.train import train

    config = CONFIGS / f"{args.model}-ml100k.yaml"
    root = args.work / args.model
    grid = GRIDS[args.model]
    settings = [
        dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
    ]
    curves: dict[str, list] = {}
    screened = []
    for setting in settings:
        name = setting_name(setting)
        print(f"[{args.model}] screening {name}", flush=True)
        result = train(
            config,
            root / name / "bundle",
            overrides=overrides(setting, args.screen_epochs, args.max_epochs, args.threads),
            checkpoints=root / name / "checkpoints",
        )
        screened.append((result.valid.get("ndcg@10", 0.0), name, setting))
        curves[name] = result.history
    _, best_name, best = max(screened)
    print(f"[{args.model}] best after screening: {best_name}; training until it stops", flush=True)
    result = train(
        config,
        root / "bundle",
        overrides=overrides(best, args.max_epochs, args.patience, args.threads),
        checkpoints=root / best_name / "checkpoints",
    )
    curves[best_name] = result.history
    summary = {
        "model": args.model,
        "grid": grid,
        "screen_epochs": args.screen_epochs,
        "patience": args.patience,
        "screening": {name: score for score, name, _ in screened},
        "chosen": best_name,
        "chosen_setting": best,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "valid": result.valid,
        "test": result.test,
        "curves": curves,
    }
    (root / "curves.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "curves"}, indent=1))


if __name__ == "__main__":
    main()
