"""Where chunks run: in this process, on local worker processes, or as Ray tasks.

Every engine yields ``(chunk index, rows)`` as chunks finish (in any order); the rows come from
:func:`recausal.evaluate.chunk.run_chunk` everywhere. Workers load the model once per process,
from its bundle, on the run's device.

Ray (``engine="ray"``) runs each chunk as a task (one CPU, at most ``workers`` in flight), on a
local Ray started for the run or, with ``address`` (or ``RAY_ADDRESS``), on an existing cluster
(``ray start --head`` and ``ray start --address HEAD:PORT`` on the other nodes); the driver then
only connects and never starts Ray itself. What every node needs:

- the same recausal installation (tasks name their function by module, they do not ship code);
- the bundle at the same absolute path (the driver sends the path, not the files): on one machine
  that is a given, across machines put it on a shared filesystem. A node that finds no bundle
  there, or one with other weights, fails the run with a :class:`~recausal.errors.BundleError`
  naming the node (its rows would differ).

A lost worker or node (a killed process, a dead raylet) costs only its running chunks: Ray runs a
task again, on any node left, up to :data:`RAY_MAX_RETRIES` times, and a chunk's rows do not
depend on where or how often it ran. Past that the run stops with a
:class:`~recausal.errors.RecausalError`; the chunks finished so far are in the journal (``out``),
and rerunning the same command resumes from them.

On a CUDA device each Ray task asks for a share (``1 / workers``) of one GPU and runs on the GPU
Ray assigns it (``cuda:N`` is read as ``cuda`` there): Ray hides the GPUs from tasks that ask
for none.

On one machine, start the nodes with ``--node-ip-address 127.0.0.N`` (N >= 2): Ray 2.6 replaces
127.0.0.1 by the machine's outward address. For a loopback ``address`` the driver joins the
cluster under that address too, so that all its traffic stays on the loopback interface. A
process already connected to Ray (its own ``ray.init``) runs the chunks there and stays connected.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from recausal.errors import BundleError, InvalidInputError, RecausalError
from recausal.evaluate.chunk import run_chunk
from recausal.evaluate.spec import JobSpec

if TYPE_CHECKING:
    from recausal.models import SequentialModel

#: one chunk: its index and its ``(user, history)`` pairs
Chunk = tuple[int, list[tuple[str, list[str]]]]
#: one finished chunk: its index and its rows
Done = tuple[int, list[dict[str, Any]]]

#: how often Ray runs a chunk again whose worker process or node was lost (not for errors raised
#: by the chunk itself, which would only repeat)
RAY_MAX_RETRIES = 3
#: seconds to wait for the TCP connection to a cluster's address before giving up
CONNECT_TIMEOUT_S = 10.0

_WORKER_MODEL: Any = None
#: the models a Ray worker process has loaded, by bundle path and device (a process serves many
#: tasks)
_RAY_MODELS: dict[tuple[str, str], Any] = {}


def _init_worker(bundle: str, device: str = "cpu") -> None:
    """Process-pool initializer: one torch thread, the model loaded once per process."""
    import torch

    from recausal.models import load_model

    global _WORKER_MODEL
    torch.set_num_threads(1)
    _WORKER_MODEL = load_model(bundle, device=device)


def _worker_chunk(index: int, users: list[tuple[str, list[str]]], spec: JobSpec) -> Done:
    return index, run_chunk(_WORKER_MODEL, users, spec)


def _node_name() -> str:
    """This Ray node's IP address (the host's name outside Ray)."""
    import ray

    return ray.util.get_node_ip_address() if ray.is_initialized() else socket.gethostname()


def _ray_model(bundle: str, weights: str | None, device: str = "cpu") -> Any:
    """The model of ``bundle`` in this Ray worker process, loaded on first use and checked.

    Args:
        bundle: the bundle's absolute path (the same on every node).
        weights: the SHA-256 of the driver's weights (``None``: not recorded, not checked).
        device: where it runs (``cuda``: the GPU Ray assigned to the task).

    Returns:
        The loaded model (``BundleError`` naming the node when the bundle is missing there or
        holds other weights).
    """
    model = _RAY_MODELS.get((bundle, device))
    if model is None:
        import torch

        from recausal.models import load_model

        node = _node_name()
        if not os.path.isdir(bundle):
            raise BundleError(
                f"bundle {bundle} is not on Ray node {node}: every node loads the bundle from "
                "the driver's path, so put it at that path on each node (a shared filesystem)"
            )
        torch.set_num_threads(1)
        model = load_model(bundle, device=device)
        found = model.meta.get("weights_sha256")
        if weights is not None and found != weights:
            raise BundleError(
                f"bundle {bundle} on Ray node {node} has other weights than the driver's "
                f"(sha256 {found} != {weights}); every node needs the same bundle"
            )
        _RAY_MODELS[bundle, device] = model
    return model


def _ray_chunk(
    bundle: str,
    weights: str | None,
    index: int,
    users: list[tuple[str, list[str]]],
    spec: JobSpec,
    device: str = "cpu",
) -> tuple[int, list[dict[str, Any]], str]:
    """One chunk as a Ray task.

    Args:
        bundle: the bundle's absolute path.
        weights: the SHA-256 of the driver's weights.
        index: the chunk's index.
        users: its ``(user, history)`` pairs.
        spec: what to compute.
        device: where the model runs (see :func:`_ray_model`).

    Returns:
        The chunk's index, its rows and the address of the Ray node that computed them.
    """
    import ray

    rows = run_chunk(_ray_model(bundle, weights, device), users, spec)
    return index, rows, ray.util.get_node_ip_address()


def _run_local(model: SequentialModel, chunks: list[Chunk], spec: JobSpec) -> Iterator[Done]:
    for index, users in chunks:
        yield index, run_chunk(model, users, spec)


def _run_processes(
    bundle: str, chunks: list[Chunk], spec: JobSpec, workers: int, device: str
) -> Iterator:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(bundle, device)
    ) as pool:
        futures = [pool.submit(_worker_chunk, index, users, spec) for index, users in chunks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def ray_address(address: str | None = None) -> str | None:
    """The Ray cluster an evaluation connects to.

    Args:
        address: ``HOST:PORT`` of a cluster's head (its GCS), ``auto``, or a ``ray://`` address;
            ``None`` or empty: the ``RAY_ADDRESS`` environment variable.

    Returns:
        The address, or ``None`` (no cluster named: the run starts a local Ray of its own).
    """
    found = (address if address is not None else os.environ.get("RAY_ADDRESS", "")).strip()
    return found or None


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a plain ``HOST:PORT`` address; ``None`` for ``auto``, ``ray://``..."""
    if "://" in address or address == "auto":
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidInputError(
            f"Ray address must be HOST:PORT (the head's GCS port), 'auto' or ray://...; "
            f"got {address!r}"
        )
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _connect(ray: Any, address: str) -> None:
    """Connect this process to the cluster at ``address`` (never starting one)."""
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": False}
    target = _host_port(address)
    if target is not None:
        # ray.init would retry an address where nothing listens for minutes
        try:
            socket.create_connection(target, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise RecausalError(
                f"no Ray cluster at {address} ({exc.strerror or exc}); start its head with "
                "`ray start --head --port PORT` or check --address / RAY_ADDRESS"
            ) from None
        if _is_loopback(target[0]):
            kwargs["_node_ip_address"] = target[0]  # the driver stays on the loopback too
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise RecausalError(f"cannot connect to the Ray cluster at {address}: {exc}") from None


def _run_ray(
    bundle: str,
    weights: str | None,
    chunks: list[Chunk],
    spec: JobSpec,
    workers: int,
    address: str | None,
    placement: dict[str, int] | None,
    device: str,
) -> Iterator[Done]:
    from recausal.errors import require_extra

    ray = require_extra("ray", "ray")
    from ray.exceptions import RayTaskError

    started = not ray.is_initialized()
    if started:
        target = ray_address(address)
        if target is not None:
            _connect(ray, target)
        else:  # "local": a Ray of its own, even where `ray start` left a cluster's address
            ray.init(
                address="local",
                num_cpus=max(workers, 2),
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
            )
    pending: dict[Any, int] = {}
    try:
        on_gpu = device.startswith("cuda")
        task = ray.remote(
            num_cpus=1, num_gpus=1 / workers if on_gpu else 0, max_retries=RAY_MAX_RETRIES
        )(_ray_chunk)
        device = "cuda" if on_gpu else device
        todo = iter(chunks)

        def submit() -> None:
            for index, users in todo:
                pending[task.remote(bundle, weights, index, users, spec, device)] = index
                return

        for _ in range(workers):
            submit()
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ref)
            try:
                index, rows, node = ray.get(ref)
            except RayTaskError:  # raised by the chunk itself (also an instance of its error)
                raise
            except ray.exceptions.RayError as exc:
                raise RecausalError(
                    f"chunk {index} was lost on the Ray cluster ({type(exc).__name__}) after "
                    f"{RAY_MAX_RETRIES} retries; rerun with the same arguments and out to resume "
                    "from the chunks already saved"
                ) from exc
            if placement is not None:
                placement[node] = placement.get(node, 0) + 1
            submit()
            yield index, rows
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


def run_chunks(
    model: SequentialModel,
    chunks: list[Chunk],
    spec: JobSpec,
    *,
    engine: str,
    workers: int,
    address: str | None = None,
    placement: dict[str, int] | None = None,
    device: str = "cpu",
) -> Generator[Done, None, None]:
    """Run ``chunks`` on an engine; close the iterator to stop early.

    Args:
        model: the model (``model.path``, its bundle, is what workers load).
        chunks: the chunks to compute.
        spec: what to compute.
        engine: ``local`` (in this process, or ``workers`` local processes) or ``ray``.
        workers: local worker processes, or Ray tasks in flight.
        address: the Ray cluster to connect to (see :func:`ray_address`; ``engine="ray"`` only).
        placement: filled, for Ray, with the number of chunks each Ray node (by its IP address)
            computed.
        device: where the workers' models run (the local engine uses ``model`` as it is).

    Returns:
        A generator of ``(chunk index, rows)``, in the order the chunks finish.
    """
    if not chunks:
        return
    if engine == "ray":
        bundle = os.path.abspath(os.fspath(model.path))
        weights = model.meta.get("weights_sha256")
        yield from _run_ray(bundle, weights, chunks, spec, workers, address, placement, device)
    elif workers > 1:
        yield from _run_processes(str(model.path), chunks, spec, min(workers, len(chunks)), device)
    else:
        yield from _run_local(model, chunks, spec)
