"""Correctness against planted causes: is an explainer's first set exactly the planted cause?

    nice -n 19 .venv/bin/python benchmarks/planted.py [--n 40] [--max-size 5] [--out FILE.md]
        [--explainers causal,occlusion,...] [--examples 2] [--examples-of causal] [--retrain]

Trains a small SASRec and a small BERT4Rec (configs/*-synthetic*.yaml, see CONFIGS) on two
planted datasets (recausal.data.synthetic): the shipped ``synthetic-planted`` (an effect
follows its cause immediately, ``max_lag=1``) and ``synthetic-planted-lag3`` (a cause raises
its effect within the next 3 items, fillers between; written under benchmarks/out/planted/).
Bundles are cached under benchmarks/out/planted/ and reused while their dataset and training
settings are unchanged (``--retrain`` trains again).

For each model and each lag its data allows (1; 1, 2 and 3), it builds planted histories
(recausal.testing.planted: fillers with one cause ``lag`` items from the end), keeps those the
model gets right (its top-1 is the cause's effect), and explains them with every registered
explainer, removing items by deletion and by padding. By the planted rule the cause alone is the
true explanation: removing a filler cannot change what a model that learned the rule recommends.

Prints one markdown table per model: per lag, explainer and removal, the share of histories
whose first explanation set is exactly {cause} with its 95% bootstrap interval, the mean rank
of the cause in the explainer's ranking (1 = first) with its interval, the share with any
explanation (valid), the seconds per history and n; then, per lag and removal, whether the
causal explainer finds the cause for at least 90% of the histories and more often than every
baseline (every explainer but ``causal`` and ``exhaustive``, the optimum); then up to
``--examples`` histories per lag and removal where an explainer of ``--examples-of`` (default
``causal``) missed the cause.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recausal.data import PlantedDataset, load_planted_dataset, make_planted_dataset
from recausal.errors import RecausalError
from recausal.evaluate.stats import bootstrap_cis
from recausal.explain import Explanation, explainer_names, get_explainer
from recausal.models import SequentialModel, load_model
from recausal.models.train import load_train_config, train
from recausal.testing.planted import planted_histories

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out" / "planted"
#: the training config of each family, per dataset (BERT4Rec needs a lower learning rate and
#: more epochs to learn causes several steps back: at 0.005 it learns none of them)
CONFIGS = {
    "SASRec": {"synthetic-planted": "sasrec-synthetic.yaml"},
    "BERT4Rec": {
        "synthetic-planted": "bert4rec-synthetic.yaml",
        "synthetic-planted-lag3": "bert4rec-synthetic-lag3.yaml",
    },
}
LAGGED = "synthetic-planted-lag3"
REMOVALS = ("delete", "pad")
#: the explainers that are the optimum, not a baseline, in the verdict
NOT_BASELINES = ("causal", "exhaustive")


@dataclass(frozen=True)
class Row:
    """One line of a table: an explainer's results on one lag with one removal."""

    lag: int
    explainer: str
    removal: str
    exact: np.ndarray  # 1.0 where the first set is exactly {cause}, per history
    rank: np.ndarray  # the cause's 1-based rank in the ranking, per history
    valid: np.ndarray
    seconds: float  # per history
    misses: tuple[Explanation, ...]  # explanations whose first set is not {cause}


def datasets() -> list[PlantedDataset]:
    """The shipped lag-1 dataset and the lag-3 one (written under OUT once)."""
    lagged = OUT / "data" / LAGGED
    if not (lagged / f"{LAGGED}.planted.json").is_file():
        make_planted_dataset(lagged, name=LAGGED, max_lag=3)
    return [load_planted_dataset("synthetic-planted"), load_planted_dataset(lagged)]


def config_for(family: str, planted: PlantedDataset) -> Path:
    """The training config of ``family`` on ``planted``."""
    configs = CONFIGS[family]
    return ROOT / "configs" / configs.get(planted.name, configs["synthetic-planted"])


def bundle(family: str, planted: PlantedDataset, retrain: bool) -> SequentialModel:
    """The model of ``family`` trained on ``planted``: the cached bundle while its dataset and
    settings are those asked for, or a new one."""
    out = OUT / "bundles" / f"{family.lower()}-{planted.name}"
    config = config_for(family, planted)
    overrides = {"dataset": str(planted.files.directory)}
    settings = {**load_train_config(config), **overrides}
    if out.is_dir() and not retrain:
        try:
            model = load_model(out)
            same_data = model.meta["dataset"]["fingerprint"] == planted.files.fingerprint()
            if same_data and model.meta["training"]["settings"] == settings:
                return model
        except (RecausalError, KeyError):
            pass
    began, cpu = time.perf_counter(), time.process_time()
    result = train(config, out, overrides=overrides, verbose=False)
    print(
        f"trained {family} on {planted.name} ({config.name}) in "
        f"{time.perf_counter() - began:.0f}s ({time.process_time() - cpu:.0f}s CPU; best "
        f"epoch {result.best_epoch + 1} of {result.epochs_run}, test {result.test})",
        file=sys.stderr,
    )
    return load_model(result.bundle)


def cases(
    model: SequentialModel, planted: PlantedDataset, lag: int, n: int
) -> tuple[list[list[str]], int]:
    """The planted histories of ``lag`` the model gets right, and how many were drawn."""
    histories = planted_histories(model, planted, n=n, lag=lag)
    effect = planted.cause_to_effect
    tops = model.recommend(histories, k=1)
    kept = [h for h, top in zip(histories, tops, strict=True) if top.items[0] == effect[h[-lag]]]
    return kept, len(histories)


def score(
    name: str,
    removal: str,
    max_size: int,
    model: SequentialModel,
    histories: list[list[str]],
    lag: int,
) -> Row:
    """Explain ``histories`` with one explainer and compare with the planted cause."""
    explanations = get_explainer(name, max_size=max_size, removal=removal).explain_many(
        model, histories
    )
    exact, rank, misses = [], [], []
    for history, e in zip(histories, explanations, strict=True):
        cause = len(history) - lag
        hit = bool(e.sets) and e.sets[0] == (cause,)
        exact.append(float(hit))
        rank.append(float(1 + [r.position for r in e.ranking].index(cause)))
        if not hit:
            misses.append(e)
    return Row(
        lag,
        name,
        removal,
        np.array(exact),
        np.array(rank),
        np.array([float(e.valid) for e in explanations]),
        sum(e.seconds for e in explanations) / max(1, len(explanations)),
        tuple(misses),
    )


def _share(values: np.ndarray, cis: tuple[float, float], pct: bool) -> str:
    if values.size == 0:
        return "–"
    mean = float(values.mean())
    if pct:
        return f"{100 * mean:.0f}% [{100 * cis[0]:.0f}, {100 * cis[1]:.0f}]"
    return f"{mean:.2f} [{cis[0]:.2f}, {cis[1]:.2f}]"


def table(title: str, rows: list[Row], drawn: dict[int, int]) -> list[str]:
    """The markdown lines of one model's table and its verdicts."""
    lines = [
        f"### {title}",
        "",
        "| lag | explainer | removal | first set = {cause} | mean rank of cause | valid | "
        "s/history | n (of drawn) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cis = bootstrap_cis({"exact": (r.exact, "mean"), "rank": (r.rank, "mean")})
        valid = f"{100 * r.valid.mean():.0f}%" if r.valid.size else "–"
        lines.append(
            f"| {r.lag} | {r.explainer} | {r.removal} | {_share(r.exact, cis['exact'], True)} | "
            f"{_share(r.rank, cis['rank'], False)} | {valid} | {r.seconds:.3f} | "
            f"{r.exact.size} (of {drawn[r.lag]}) |"
        )
    lines.append("")
    for lag in sorted({r.lag for r in rows}):
        for removal in REMOVALS:
            group = {r.explainer: r for r in rows if r.lag == lag and r.removal == removal}
            causal = group.get("causal")
            baselines = [r for name, r in group.items() if name not in NOT_BASELINES]
            if causal is None or not causal.exact.size or not baselines:
                continue
            best = max(baselines, key=lambda r: r.exact.mean())
            ours, theirs = causal.exact.mean(), best.exact.mean()
            if ours < 0.9 or ours < theirs:
                verdict = "does not hold"
            else:  # a tie at the top (recency at lag 1 is right by construction) is no win
                verdict = "holds" if ours > theirs else "ties with the best baseline"
            lines.append(
                f"- lag {lag}, {removal}: causal {100 * ours:.0f}% vs best baseline "
                f"{best.explainer} {100 * theirs:.0f}%: the claim (≥ 90% and above every "
                f"baseline) {verdict}"
            )
    lines.append("")
    return lines


def examples(rows: list[Row], n: int, of: list[str]) -> list[str]:
    """Up to ``n`` histories per row of the explainers ``of`` where the first set was not
    exactly the cause: the history, the first set, the cause's score and the ranking's top."""
    lines = []
    for r in rows:
        if r.explainer not in of:
            continue
        for e in r.misses[:n]:
            cause = len(e.history) - r.lag
            score = next(x.score for x in e.ranking if x.position == cause)
            first = e.set_items[0] if e.sets else "none"
            lines.append(
                f"- {r.explainer}, lag {r.lag}, {r.removal}: history {' '.join(e.history)} (cause "
                f"{e.history[cause]} at {cause}) → {e.recommended}; first set {first} "
                f"at {e.sets[0] if e.sets else '–'}, {len(e.sets)} sets; cause's score "
                f"{score:.3f}; tree nodes {e.meta.get('tree_nodes')}; top of ranking "
                f"{[(x.position, x.item, round(x.score, 3)) for x in e.ranking[:3]]}"
            )
    return lines + ([""] if lines else [])


def main(argv: list[str] | None = None) -> None:
    """Train (or reuse) the bundles, explain, print the tables (and write them to --out)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="histories drawn per lag")
    parser.add_argument("--max-size", type=int, default=5, help="largest explanation set")
    parser.add_argument("--explainers", default=",".join(explainer_names()))
    parser.add_argument("--examples", type=int, default=2, help="misses shown per row")
    parser.add_argument("--examples-of", default="causal", help="whose misses are shown")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    parser.add_argument("--retrain", action="store_true", help="train even if cached")
    args = parser.parse_args(argv)
    names = [s for s in args.explainers.split(",") if s]

    import torch

    torch.set_num_threads(1)
    began = time.perf_counter()
    lines = [
        "## Planted causes: is the first set exactly the cause?",
        "",
        f"{args.n} planted histories per lag (fillers, one cause `lag` items from the end), "
        f"kept when the model's top-1 is the cause's effect; explainers' defaults, max_size "
        f"{args.max_size}; 95% bootstrap intervals over the histories.",
        "",
    ]
    for family in CONFIGS:
        for planted in datasets():
            print(f"{family} on {planted.name} ...", file=sys.stderr, flush=True)
            model = bundle(family, planted, args.retrain)
            rows, drawn = [], {}
            for lag in range(1, planted.max_lag + 1):
                histories, drawn[lag] = cases(model, planted, lag, args.n)
                for name in names:
                    for removal in REMOVALS:
                        rows.append(score(name, removal, args.max_size, model, histories, lag))
            title = f"{family} on {planted.name} (max_lag {planted.max_lag})"
            block = table(title, rows, drawn)
            block += examples(rows, args.examples, args.examples_of.split(","))
            print("\n".join(block), flush=True)
            lines += block
    lines.append(f"Wall time: {time.perf_counter() - began:.0f}s.")
    print(lines[-1])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
