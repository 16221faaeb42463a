"""The ``recausal`` command line."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from recausal._io import write_atomic
from recausal.errors import RecausalError, RecausalWarning

MODEL_HELP = "Model bundle: a directory or a shipped bundle's name [default: sasrec-ml100k]."


# Commands defined in other modules, imported only when used (keeps start-up light).
LAZY_COMMANDS = {
    "import-recbole": "recausal.models.recbole_import:import_recbole_command",
    "evaluate": "recausal.evaluate.cli:evaluate_command",
    "serve": "recausal.service.cli:serve_command",
}


class _Group(click.Group):
    """Loads lazy commands, and turns every :class:`RecausalError` into one line on stderr
    with exit status 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            import importlib

            module, attr = LAZY_COMMANDS[name].split(":")
            try:
                command = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                return None
            self.add_command(command, name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RecausalError as exc:
            click.echo(f"recausal: error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recausal")
def cli() -> None:
    """Causal explanations for transformer-based sequential recommenders."""
    warnings.simplefilter("default", RecausalWarning)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"recausal: warning: {msg}\n"


def model_option(f: Callable) -> Callable:
    """``--model BUNDLE``."""
    return click.option("--model", "-m", "model", default=None, help=MODEL_HELP)(f)


def history_options(f: Callable) -> Callable:
    """``--user ID`` or ``--history "i1,i2,..."`` (exactly one)."""
    f = click.option(
        "--history",
        default=None,
        help='Comma-separated item tokens, oldest first, e.g. "50,172,133".',
    )(f)
    return click.option("--user", "-u", default=None, help="A user id of the model's dataset.")(f)


def resolve_history(
    model: Any, user: str | None, history: str | None
) -> tuple[list[str], str | None]:
    """The history named on the command line (``--user`` or ``--history``).

    A user's history is cut to the items the model uses (its most recent ``capacity``) without
    a warning: that is expected for long-standing users. A ``--history`` that is too long is
    cut by the adapter, which warns.
    """
    if (user is None) == (history is None):
        raise click.UsageError('give exactly one of --user ID or --history "i1,i2,..."')
    if user is not None:
        return model.user_history(user)[-model.capacity :], str(user)
    items = [t.strip() for t in history.split(",") if t.strip()]
    return items, None


def _load(model_name: str | None):
    from recausal.models import load_model

    return load_model(model_name)


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


@cli.command()
@model_option
@history_options
@click.option(
    "-k", default=10, show_default=True, type=click.IntRange(min=1), help="Number of items."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--exclude-seen", is_flag=True, help="Leave out items already in the history.")
def recommend(
    model: str | None,
    user: str | None,
    history: str | None,
    k: int,
    as_json: bool,
    exclude_seen: bool,
) -> None:
    """Top-k recommendations for a user or a history."""
    m = _load(model)
    hist, user_id = resolve_history(m, user, history)
    rec = m.recommend([hist], k=k, exclude_seen=exclude_seen)[0]
    rows = [
        {"rank": r, "item": item, "title": m.titles.get(item), "score": round(score, 6)}
        for r, (item, score) in enumerate(zip(rec.items, rec.scores, strict=True), start=1)
    ]
    if as_json:
        _echo_json(
            {
                "model": m.name,
                "user": user_id,
                "history_length": len(hist),
                "k": k,
                "recommendations": rows,
            }
        )
        return
    who = f"user {user_id}" if user_id else "the given history"
    click.echo(f"Top {k} for {who} ({len(hist)} items) by {m.name}:")
    for row in rows:
        title = f"  {row['title']}" if row["title"] else ""
        click.echo(f"{row['rank']:>3}. {row['item']:<8}{title}  [{row['score']:.3f}]")


@cli.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Bundle directory to write [default: bundles/<model>-<dataset>].",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override epochs.")
@click.option(
    "--checkpoints",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Checkpoint folder to resume from and keep [default: OUT.partial, removed at the end].",
)
def train(config: Path, out: Path | None, epochs: int | None, checkpoints: Path | None) -> None:
    """Train SASRec or BERT4Rec with RecBole as CONFIG says and write a model bundle.

    Every epoch is checkpointed; run the same command again to resume a stopped run.
    """
    from recausal.models.train import train as run_training

    overrides = {"epochs": epochs} if epochs else None
    result = run_training(config, out, overrides=overrides, checkpoints=checkpoints)
    why = "validation stopped improving" if result.stopped_early else "last epoch reached"
    click.echo(
        f"wrote {result.bundle} ({result.model} on {result.dataset}, best epoch "
        f"{result.best_epoch + 1} of {result.epochs_run}, {why}, {result.seconds:.0f}s); "
        f"test hit@10 {result.test.get('hit@10', float('nan')):.4f}, "
        f"ndcg@10 {result.test.get('ndcg@10', float('nan')):.4f}"
    )


EXPLAINER_NAMES = ["causal", "attention", "recency", "random", "occlusion", "exhaustive"]


def _label(m: Any, item: str) -> str:
    title = m.titles.get(item)
    return f"{item} ({title})" if title else item


@cli.command()
@model_option
@history_options
@click.option(
    "--head",
    type=click.IntRange(min=0),
    default=None,
    help="Learn the graph of one attention head.",
)
@click.option(
    "--aggregate",
    is_flag=True,
    help="Learn one graph from all heads' summed covariance (the default).",
)
@click.option("--algorithm", type=click.Choice(["icd", "fci"]), default="icd", show_default=True)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.01,
    show_default=True,
    help="Significance level of the CI tests.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON.")
@click.option(
    "--svg",
    "svg",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write an SVG drawing of the graph to this file.",
)
def graph(
    model: str | None,
    user: str | None,
    history: str | None,
    head: int | None,
    aggregate: bool,
    algorithm: str,
    alpha: float,
    as_json: bool,
    svg: Path | None,
) -> None:
    """Causal graph (PAG) over a history and its recommendation, from the model's attention."""
    from recausal.discover import discover

    if head is not None and aggregate:
        raise click.UsageError("give --head H or --aggregate, not both")
    m = _load(model)
    hist, _ = resolve_history(m, user, history)
    found = discover(
        m, hist, heads="aggregate" if head is None else head, algorithm=algorithm, alpha=alpha
    )
    pag = found.pag(head)
    if svg is not None:
        labels = {i: m.titles.get(t, t) for i, t in enumerate(pag.items)}
        write_atomic(svg, pag.to_svg(title=f"{m.name}: causal graph", labels=labels))
    if as_json:
        click.echo(pag.to_json())
    elif svg is None:
        click.echo(
            f"PAG over {pag.n_nodes - 1} history items and the recommendation "
            f"{_label(m, found.target)} (node {pag.target}):"
        )
        for i, j, text in pag.edges():
            click.echo(f"  {i}:{pag.items[i]} {text} {j}:{pag.items[j]}")


@cli.command()
@model_option
@history_options
@click.option(
    "--explainer", "-e", type=click.Choice(EXPLAINER_NAMES), default="causal", show_default=True
)
@click.option(
    "--max-size",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Largest explanation set tried.",
)
@click.option(
    "--removal",
    type=click.Choice(["delete", "pad"]),
    default="delete",
    show_default=True,
    help="Delete removed items or replace them with padding.",
)
@click.option(
    "-k",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Size of the original top-k list (for the replacement's rank).",
)
@click.option("--seed", default=0, show_default=True, help="Seed (random explainer).")
@click.option(
    "--exclude-seen",
    is_flag=True,
    help="Explain the top item the user has not seen (history items never count as top-1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.option(
    "--html",
    "html",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a self-contained HTML page to this file.",
)
def explain(
    model: str | None,
    user: str | None,
    history: str | None,
    explainer: str,
    max_size: int,
    removal: str,
    k: int,
    seed: int,
    exclude_seen: bool,
    as_json: bool,
    html: Path | None,
) -> None:
    """Which history items caused the top recommendation."""
    from recausal.explain import get_explainer

    m = _load(model)
    hist, user_id = resolve_history(m, user, history)
    e = get_explainer(
        explainer, max_size=max_size, removal=removal, seed=seed, exclude_seen=exclude_seen
    )
    result = e.explain(m, hist, k=k)
    if html is not None:
        from recausal.report.html import explanation_html

        write_atomic(html, explanation_html(result, model=m))
    if as_json:
        click.echo(result.to_json())
        return
    if html is not None:
        click.echo(f"wrote {html}")
        return
    who = f"User {user_id}" if user_id else "This history"
    recent = result.history[-8:]
    click.echo(f"{who}: {len(result.history)} items; most recent last:")
    for pos, item in enumerate(recent, start=len(result.history) - len(recent)):
        click.echo(f"  [{pos}] {_label(m, item)}")
    click.echo(f"Recommended: {_label(m, result.recommended)}")
    if not result.valid:
        click.echo(
            f"No explanation found up to size {max_size} ({explainer} explainer): "
            "no such removal changes the recommendation."
        )
    else:
        click.echo(
            f"Because of ({explainer} explainer, {len(result.sets)} minimal "
            f"set(s) of size {result.size}):"
        )
        for pos, item in zip(result.sets[0], result.set_items[0], strict=True):
            click.echo(f"  [{pos}] {_label(m, item)}")
        rank = (
            f"#{result.replacement_rank} in the original top {k}"
            if result.replacement_rank
            else f"outside the original top {k}"
        )
        click.echo(f"Without them the model recommends {_label(m, result.replacement)} ({rank}).")
    click.echo(f"[{result.model_calls} model calls, {result.seconds:.2f}s]")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="recausal")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
