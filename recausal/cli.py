"""The ``recausal`` command line: the group, its shared options, and the model commands.

The commands only parse their options and print; the work is done by :mod:`recausal.usecases`
(``evaluate`` and ``serve`` live in their packages). Over 400 lines because it holds the
declarative option lists of five commands (recommend, train, graph, explain, import-recbole).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from recausal import usecases
from recausal._io import write_atomic
from recausal.errors import RecausalError, RecausalWarning

MODEL_HELP = "Model bundle: a directory or a shipped bundle's name [default: sasrec-ml100k]."


# Commands defined in other modules, imported only when used (keeps start-up light).
LAZY_COMMANDS = {
    "evaluate": "recausal.evaluate.cli:evaluate_command",
    "explore": "recausal.service.explore_cli:explore_command",
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

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command; a usage error is one line on stderr and exit status 2, like a
        :class:`RecausalError` (click's own report takes three lines)."""
        if kwargs.pop("standalone_mode", True) is False:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            click.echo(f"recausal: error: {exc.format_message()}", err=True)
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
        except click.Abort:
            click.echo("recausal: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="recausal")
def cli() -> None:
    """Causal explanations for transformer-based sequential recommenders."""
    warnings.simplefilter("default", RecausalWarning)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"recausal: warning: {msg}\n"


# --------------------------------------------------------------------- shared options
class ExplainerChoice(click.Choice):
    """A choice of the registered explainers, read from the registry when first needed (so
    that ``recausal --help`` does not import the explainers)."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        """The registered explainer names."""
        return tuple(usecases.explainer_names())

    @choices.setter
    def choices(self, value: Any) -> None:  # click.Choice.__init__ sets it; the registry wins
        pass


def model_option(f: Callable) -> Callable:
    """``--model BUNDLE``."""
    return click.option("--model", "-m", "model", default=None, help=MODEL_HELP)(f)


#: an output file named by an option (``--svg FILE``, ``--html FILE``)
OUT_FILE = click.Path(dir_okay=False, path_type=Path)

#: options that several commands take: name -> (declarations, attributes but the help text)
SHARED_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "k": (("-k", "k"), {"default": 10, "show_default": True, "type": click.IntRange(min=1)}),
    "max_size": (
        ("--max-size",),
        {"default": 5, "show_default": True, "type": click.IntRange(min=1)},
    ),
    "removal": (
        ("--removal",),
        {"default": "delete", "show_default": True, "type": click.Choice(["delete", "pad"])},
    ),
    "seed": (("--seed",), {"default": 0, "show_default": True, "type": int}),
    "json": (("--json", "as_json"), {"is_flag": True}),
    "seen": (("--exclude-seen/--keep-seen", "exclude_seen"), {"default": None}),
    "device": (("--device",), {"default": "cpu", "show_default": True, "metavar": "DEVICE"}),
}

#: help of ``--device``
DEVICE_HELP = (
    "Torch device the model runs on: cpu, cuda, cuda:N or mps (results are the CPU's up to "
    "float rounding)."
)


#: help of ``--exclude-seen/--keep-seen``
SEEN_HELP = (
    "Leave out the items of the history (--exclude-seen) or keep them (--keep-seen) "
    "[default: left out when the model's dataset has no repeated interactions]."
)


def shared_option(name: str, help: str | None = None) -> Callable[[Callable], Callable]:
    """One of :data:`SHARED_OPTIONS`, with this command's help text.

    Args:
        name: ``k`` (top-k length), ``max_size``, ``removal``, ``seed``, ``json``, ``seen``
            or ``device``.
        help: the option's help text.

    Returns:
        The click option decorator.
    """
    decls, attrs = SHARED_OPTIONS[name]
    return click.option(*decls, help=help, **attrs)


def history_options(f: Callable) -> Callable:
    """``--user ID`` or ``--history "i1,i2,..."`` (exactly one)."""
    f = click.option(
        "--history",
        default=None,
        help='Comma-separated item tokens, oldest first, e.g. "50,172,133".',
    )(f)
    return click.option("--user", "-u", default=None, help="A user id of the model's dataset.")(f)


def resolve_history(model: Any, user: str | None, history: str | None) -> usecases.UsedHistory:
    """The history named on the command line (``--user`` or ``--history``).

    Either is passed on whole: the model reads its most recent ``capacity`` items, and
    explanations remove items from the whole history.

    Args:
        model: the loaded model.
        user: the ``--user`` value.
        history: the ``--history`` value.

    Returns:
        The history to use.
    """
    if (user is None) == (history is None):
        raise click.UsageError('give exactly one of --user ID or --history "i1,i2,..."')
    if user is not None:
        return usecases.user_history(model, user)
    items = [t.strip() for t in history.split(",") if t.strip()]  # type: ignore[union-attr]
    return usecases.given_history(model, items)


def _load(model_name: str | None, device: str) -> Any:
    from recausal.models import load_model

    return load_model(model_name, device=device)


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def _label(m: Any, item: str) -> str:
    title = m.titles.get(item)
    return f"{item} ({title})" if title else item


# --------------------------------------------------------------------- commands
@cli.command()
@model_option
@history_options
@shared_option("k", "Number of items.")
@shared_option("json", "Print one JSON object.")
@shared_option("seen", SEEN_HELP)
@shared_option("device", DEVICE_HELP)
def recommend(
    model: str | None,
    user: str | None,
    history: str | None,
    k: int,
    as_json: bool,
    exclude_seen: bool | None,
    device: str,
) -> None:
    """Top-k recommendations for a user or a history."""
    m = _load(model, device)
    hist = resolve_history(m, user, history)
    rows = usecases.recommendation_rows(m, hist.items, k, exclude_seen=exclude_seen)
    for row in rows:
        row["score"] = round(row["score"], 6)
    if as_json:
        _echo_json(
            {
                "model": m.name,
                "user": hist.user,
                "history_length": len(hist.items),
                "k": k,
                "recommendations": rows,
            }
        )
        return
    who = f"user {hist.user}" if hist.user else "the given history"
    click.echo(f"Top {k} for {who} ({len(hist.items)} items) by {m.name}:")
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
@click.option(
    "--device",
    default=None,
    metavar="DEVICE",
    help="Torch device to train on: cpu, cuda, cuda:N or mps [default: CONFIG's device, else "
    "cpu]. A run may resume on another device.",
)
def train(
    config: Path,
    out: Path | None,
    epochs: int | None,
    checkpoints: Path | None,
    device: str | None,
) -> None:
    """Train SASRec or BERT4Rec with RecBole as CONFIG says and write a model bundle.

    Every epoch is checkpointed; run the same command again to resume a stopped run.
    """
    from recausal.models.train import train as run_training

    overrides = {"epochs": epochs} if epochs else None
    result = run_training(config, out, overrides=overrides, checkpoints=checkpoints, device=device)
    why = "validation stopped improving" if result.stopped_early else "last epoch reached"
    click.echo(
        f"wrote {result.bundle} ({result.model} on {result.dataset}, best epoch "
        f"{result.best_epoch + 1} of {result.epochs_run}, {why}, {result.seconds:.0f}s); "
        f"test hit@10 {result.test.get('hit@10', float('nan')):.4f}, "
        f"ndcg@10 {result.test.get('ndcg@10', float('nan')):.4f}"
    )


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
@shared_option("seen", SEEN_HELP)
@click.option("--item", default=None, help="The recommended item [default: the top-1].")
@shared_option("json", "Print the graph as JSON.")
@click.option(
    "--svg", type=OUT_FILE, default=None, help="Write an SVG drawing of the graph to this file."
)
@shared_option("device", DEVICE_HELP)
def graph(
    model: str | None,
    user: str | None,
    history: str | None,
    head: int | None,
    aggregate: bool,
    algorithm: str,
    alpha: float,
    exclude_seen: bool | None,
    item: str | None,
    as_json: bool,
    svg: Path | None,
    device: str,
) -> None:
    """Causal graph (PAG) over a history and its recommendation, from the model's attention."""
    if head is not None and aggregate:
        raise click.UsageError("give --head H or --aggregate, not both")
    m = _load(model, device)
    hist = resolve_history(m, user, history)
    pag = usecases.causal_graph(
        m,
        hist.items,
        head=head,
        target=item,
        exclude_seen=exclude_seen,
        algorithm=algorithm,
        alpha=alpha,
    )
    if svg is not None:
        drawing = usecases.graph_svg(pag, m.titles, title=f"{m.name}: causal graph")
        write_atomic(svg, drawing)
    if as_json:
        click.echo(pag.to_json())
    elif svg is None:
        click.echo(
            f"PAG over {pag.n_nodes - 1} history items and the recommendation "
            f"{_label(m, pag.items[pag.target])} (node {pag.target}):"
        )
        for i, j, text in pag.edges():
            click.echo(f"  {i}:{pag.items[i]} {text} {j}:{pag.items[j]}")


@cli.command()
@model_option
@history_options
@click.option("--explainer", "-e", type=ExplainerChoice(), default="causal", show_default=True)
@shared_option("max_size", "Largest explanation set tried.")
@shared_option("removal", "Delete removed items or replace them with padding.")
@shared_option("k", "Size of the original top-k list (for the replacement's rank).")
@shared_option("seed", "Seed (random explainer).")
@shared_option("seen", SEEN_HELP)
@click.option("--item", default=None, help="Explain this item of the top-k list.")
@click.option(
    "--rank", type=int, default=None, help="Explain the item at this rank of the top-k list."
)
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Stop searching after this many seconds and show what was found (marked incomplete).",
)
@shared_option("json", "Print the explanation as JSON.")
@click.option(
    "--html", type=OUT_FILE, default=None, help="Write a self-contained HTML page to this file."
)
@shared_option("device", DEVICE_HELP)
def explain(
    model: str | None,
    user: str | None,
    history: str | None,
    explainer: str,
    max_size: int,
    removal: str,
    k: int,
    seed: int,
    exclude_seen: bool | None,
    item: str | None,
    rank: int | None,
    time_budget: float | None,
    as_json: bool,
    html: Path | None,
    device: str,
) -> None:
    """Which history items caused a recommendation: the top-1, or --item / --rank in the list.

    For the top-1, an explanation is a smallest set of history items whose removal changes the
    top-1; for another item of the top-k, a smallest set whose removal moves it out of the top-k.
    """
    m = _load(model, device)
    hist = resolve_history(m, user, history)
    result = usecases.explain_history(
        m,
        hist.items,
        explainer,
        k=k,
        item=item,
        rank=rank,
        time_budget=time_budget,
        max_size=max_size,
        removal=removal,
        seed=seed,
        exclude_seen=exclude_seen,
    )
    if html is not None:
        from recausal.report.html import explanation_html

        write_atomic(html, explanation_html(result, model=m))
    if as_json:
        click.echo(result.to_json())
        return
    if html is not None:
        click.echo(f"wrote {html}")
        return
    _echo_explanation(m, result, hist, explainer=explainer, max_size=max_size, k=k)


def _echo_explanation(
    m: Any, result: Any, hist: usecases.UsedHistory, *, explainer: str, max_size: int, k: int
) -> None:
    """The explanation as text: the recent history, the recommendation and its causes."""
    who = f"User {hist.user}" if hist.user else "This history"
    recent = result.history[-8:]
    window = len(result.history) - result.window_start
    click.echo(
        f"{who}: {len(result.history)} items (the model reads the last {window}); "
        "most recent last:"
    )
    for pos, item in enumerate(recent, start=len(result.history) - len(recent)):
        click.echo(f"  [{pos}] {_label(m, item)}")
    where = "Recommended" if result.rank == 1 else f"Recommended at #{result.rank}"
    click.echo(f"{where}: {_label(m, result.recommended)}")
    goal = "changes the recommendation" if result.rank == 1 else f"moves it out of the top {k}"
    if not result.complete:
        click.echo("Incomplete: the time budget ran out before the search ended.")
    if not result.valid and not result.complete:
        click.echo(f"No explanation found within the time budget ({explainer} explainer).")
    elif not result.valid:
        click.echo(
            f"No explanation found up to size {max_size} ({explainer} explainer): "
            f"no such removal {goal}."
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
        if result.rank == 1:
            click.echo(
                f"Without them the model recommends {_label(m, result.replacement)} ({rank})."
            )
        else:
            click.echo(
                f"Without them it falls to #{result.new_rank}, and "
                f"{_label(m, result.replacement)} ({rank}) takes its place."
            )
        if result.slid_in:
            slid = ", ".join(_label(m, result.history[p]) for p in result.slid_in)
            click.echo(f"(Older items that slide into the model's window: {slid}.)")
    click.echo(f"[{result.model_calls} model calls, {result.seconds:.2f}s]")


# --------------------------------------------------------------------- import-recbole
@cli.command("import-recbole")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dataset",
    "-d",
    required=True,
    help="The training dataset: a folder of atomic files or a known name (ml-100k).",
)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Bundle directory to write.",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Load with plain torch.load if the safe reader refuses the file (can run its code).",
)
def import_recbole_command(checkpoint: Path, dataset: str, out: Path, trust_pickle: bool) -> None:
    """Convert CHECKPOINT.pth, saved by RecBole's trainer, into a recausal model bundle."""
    from recausal.models.recbole_import import import_recbole_checkpoint

    bundle = import_recbole_checkpoint(checkpoint, dataset, out, trust_pickle=trust_pickle)
    meta = json.loads((bundle / "meta.json").read_text(encoding="utf-8"))
    items = json.loads((bundle / "items.json").read_text(encoding="utf-8"))
    click.echo(
        f"Imported {meta['model']} (epoch {meta['imported']['epoch']}, {len(items) - 1} items, "
        f"dataset {meta['dataset']['name']}) into {bundle}"
    )
    click.echo(f"  read with: {meta['imported']['reader']}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="recausal")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
