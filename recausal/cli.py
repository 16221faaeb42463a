"""The ``recausal`` command line."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from recausal.errors import RecausalError, RecausalWarning

MODEL_HELP = "Model bundle: a directory or a shipped bundle's name [default: sasrec-ml100k]."


class _Group(click.Group):
    """Turns every :class:`RecausalError` into one line on stderr and exit status 2."""

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
    """The history named on the command line (``--user`` or ``--history``)."""
    if (user is None) == (history is None):
        raise click.UsageError('give exactly one of --user ID or --history "i1,i2,..."')
    if user is not None:
        return model.user_history(user), str(user)
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
def recommend(
    model: str | None, user: str | None, history: str | None, k: int, as_json: bool
) -> None:
    """Top-k recommendations for a user or a history."""
    m = _load(model)
    hist, user_id = resolve_history(m, user, history)
    rec = m.recommend([hist], k=k)[0]
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
def train(config: Path, out: Path | None, epochs: int | None) -> None:
    """Train SASRec or BERT4Rec with RecBole as CONFIG says and write a model bundle."""
    from recausal.models.train import train as run_training

    overrides = {"epochs": epochs} if epochs else None
    result = run_training(config, out, overrides=overrides)
    click.echo(
        f"wrote {result.bundle} ({result.model} on {result.dataset}, best epoch "
        f"{result.best_epoch} of {result.epochs_run}, {result.seconds:.0f}s); "
        f"test hit@10 {result.test.get('hit@10', float('nan')):.4f}, "
        f"ndcg@10 {result.test.get('ndcg@10', float('nan')):.4f}"
    )


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="recausal")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
