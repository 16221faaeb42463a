"""``recausal evaluate``: compare explainers over many users and write a report."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import click

from recausal.cli import DEVICE_HELP, SEEN_HELP, model_option, shared_option

# Kept here as text so that ``recausal --help`` need not import the evaluation stack.
DEFAULT_EXPLAINERS = "causal,attention,recency,occlusion,random"


def _users_option(ctx: click.Context, param: click.Parameter, value: str) -> str | int:
    """``all``, a positive number, or an existing file of user ids."""
    from recausal.errors import InvalidInputError
    from recausal.evaluate.users import parse_users

    try:
        return parse_users(value.strip())
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("evaluate")
@model_option
@click.option(
    "--explainers",
    default=DEFAULT_EXPLAINERS,
    show_default=True,
    help="Comma-separated explainer names (add 'exhaustive' for the optimum on short histories).",
)
@click.option(
    "--users",
    default="all",
    show_default=True,
    callback=_users_option,
    help="'all', 'dev' or 'held-out' (the fixed halves), the first N users, or a file with "
    "one user id per line.",
)
@shared_option("max_size")
@shared_option("k", "Length of the original top-k list (for the replacement's rank).")
@shared_option("removal", "How history items are removed.")
@shared_option("seed")
@shared_option("seen", SEEN_HELP)
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (journal, rows, summary, plots); a rerun resumes.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Local worker processes (with --engine ray: Ray tasks in flight at once).",
)
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "ray"]))
@click.option(
    "--address",
    default=None,
    metavar="HOST:PORT",
    help="With --engine ray: the Ray cluster to run on (its head's address, or 'auto'); "
    "default $RAY_ADDRESS, else a local Ray for the run. Every node needs the bundle at the "
    "same path.",
)
@click.option(
    "--chunk-size",
    default=16,
    show_default=True,
    type=click.IntRange(min=1),
    help="Users per saved chunk (part of the run's arguments).",
)
@shared_option("device", DEVICE_HELP + " Every worker uses it; a rerun may resume on another.")
@click.option("--overwrite", is_flag=True, help="Discard an earlier run in --out.")
@click.option(
    "--repair",
    is_flag=True,
    help="Recompute the chunks whose journal parts in --out are damaged (instead of stopping).",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def evaluate_command(
    model: str | None,
    explainers: str,
    users: str | int,
    max_size: int,
    k: int,
    removal: str,
    seed: int,
    exclude_seen: bool | None,
    out: Path,
    workers: int,
    engine: str,
    address: str | None,
    chunk_size: int,
    device: str,
    overwrite: bool,
    repair: bool,
    no_plots: bool,
    quiet: bool,
) -> None:
    """Explain many users with several explainers and compare them (rows, summary, plots)."""
    from recausal.errors import InvalidInputError
    from recausal.usecases import check_explainers

    try:
        names = check_explainers(explainers)
    except InvalidInputError as exc:
        raise click.BadParameter(str(exc), param_hint="--explainers") from None
    if address and engine != "ray":
        raise click.BadParameter("is for --engine ray", param_hint="--address")

    from recausal.evaluate import evaluate, summarize, summary_markdown

    args = ["--model", model] if model else []
    args += ["--explainers", ",".join(names), "--users", str(users), "--max-size", str(max_size)]
    args += ["-k", str(k), "--removal", removal, "--seed", str(seed), "--chunk-size"]
    args += [str(chunk_size), "--out", str(out), "--workers", str(workers), "--engine", engine]
    if address:
        args += ["--address", address]
    if exclude_seen is not None:
        args += ["--exclude-seen" if exclude_seen else "--keep-seen"]
    if device != "cpu":
        args += ["--device", device]
    command = "recausal evaluate " + shlex.join(args)
    started = time.perf_counter()
    rows = evaluate(
        model,
        names,
        users,
        max_size=max_size,
        k=k,
        removal=removal,
        seed=seed,
        exclude_seen=exclude_seen,
        out=out,
        workers=workers,
        engine=engine,
        address=address,
        chunk_size=chunk_size,
        device=device,
        overwrite=overwrite,
        repair=repair,
        progress=not quiet,
        plots=not no_plots,
        command=command,
    )
    click.echo(summary_markdown(summarize(rows)))
    n_users = rows["user"].nunique()
    click.echo(
        f"wrote {out}: {n_users} users x {len(names)} explainers = {len(rows)} rows "
        f"in {time.perf_counter() - started:.1f} s (rows.parquet, rows.csv, summary.md, "
        "summary.json" + ("" if no_plots else ", plots") + ")"
    )
