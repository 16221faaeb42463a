"""``evaluate --engine ray`` on a real multi-node Ray cluster on this machine.

A head and worker nodes are started as separate ``ray start`` processes on loopback addresses
(:class:`recausal.evaluate.local_cluster.LocalRayCluster`); the run connects by address and must
give the rows of a local run, also when a node's raylet is killed (SIGKILL) in the middle of a
chunk. A cluster that cannot start fails these tests (it is not a reason to skip them).
"""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
import ray
from click.testing import CliRunner

from recausal.cli import cli
from recausal.errors import BundleError, InvalidInputError, RecausalError
from recausal.evaluate import TIMING_COLUMNS, evaluate
from recausal.evaluate.engines import _ray_model, ray_address
from recausal.evaluate.local_cluster import ClusterError, LocalRayCluster, free_port

FAST = ["recency", "occlusion", "random", "exhaustive"]
USERS = 6


def _untimed(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


def _ray_nodes(out) -> dict[str, int]:
    return json.loads((out / "summary.json").read_text())["manifest"]["ray_nodes"]


@pytest.fixture(scope="module")
def cluster():
    """A head (127.0.0.2) and one worker node (127.0.0.3), one CPU each; stopped at the end."""
    started = LocalRayCluster(workers=1)
    try:
        started.start()
    except ClusterError as exc:
        started.stop()
        pytest.fail(f"a Ray cluster could not be started on this machine: {exc}")
    except BaseException:
        started.stop()
        raise
    try:
        yield started
    finally:
        started.stop()
    assert not started.root.exists()


@pytest.fixture
def driver_tmp(cluster, monkeypatch):
    """The driver's Ray logs go under the cluster's folder, not /tmp/ray."""
    folder = cluster.root / "driver"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("RAY_TMPDIR", str(folder))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(scope="module")
def local_rows(sasrec):
    """The rows of an in-process run (the same users and chunks)."""
    return evaluate(sasrec, FAST, users=USERS, chunk_size=1)


def test_cluster_gives_the_rows_of_a_local_run(
    cluster, driver_tmp, sasrec_bundle, local_rows, tmp_path
):
    out = tmp_path / "run"
    rows = evaluate(
        sasrec_bundle,
        FAST,
        users=USERS,
        chunk_size=1,
        engine="ray",
        address=cluster.address,
        workers=2,
        out=out,
        plots=False,
    )
    assert not ray.is_initialized()  # the driver disconnected; the cluster goes on
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(local_rows))
    nodes = _ray_nodes(out)
    assert set(nodes) == {"127.0.0.2", "127.0.0.3"}, nodes  # both nodes computed chunks
    assert sum(nodes.values()) == USERS


def test_a_node_killed_mid_chunk_costs_no_rows(
    cluster, driver_tmp, sasrec_bundle, local_rows, tmp_path
):
    victim = cluster.add_worker()
    killed: list[int] = []
    done = threading.Event()

    def kill_when_busy() -> None:
        """SIGKILL the victim's raylet as soon as one of its workers runs a chunk."""
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            if victim.running("_ray_chunk"):
                killed.append(cluster.kill_raylet(victim))
                return
            time.sleep(0.05)

    out = tmp_path / "run"
    args = ["evaluate", "-m", str(sasrec_bundle), "--explainers", ",".join(FAST)]
    args += ["--users", str(USERS), "--chunk-size", "1", "--engine", "ray"]
    args += ["--address", cluster.address, "--workers", "3", "--out", str(out), "-q", "--no-plots"]
    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        done.set()
        killer.join()
    assert killed, "no chunk ran on the node to be killed"
    assert result.exit_code == 0, result.output
    assert victim.ip not in _ray_nodes(out)  # its chunk was computed again elsewhere
    # the journal holds every chunk: a rerun computes none and gives the local run's rows
    rows = evaluate(sasrec_bundle, FAST, users=USERS, chunk_size=1, out=out, plots=False)
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(local_rows))
    manifest = json.loads((out / "summary.json").read_text())["manifest"]
    assert manifest["resumed_chunks"] == USERS


def test_a_node_without_the_bundle_or_with_other_weights_stops_the_run(sasrec_bundle, tmp_path):
    with pytest.raises(BundleError, match="is not on Ray node"):
        _ray_model(str(tmp_path / "elsewhere"), None)
    with pytest.raises(BundleError, match="other weights"):
        _ray_model(str(sasrec_bundle), "0" * 64)


def test_ray_address_falls_back_to_the_environment(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.2:6380")
    assert ray_address(None) == "127.0.0.2:6380"
    assert ray_address("127.0.0.5:1") == "127.0.0.5:1"
    monkeypatch.setenv("RAY_ADDRESS", "")
    assert ray_address(None) is None


def test_no_cluster_at_the_address_fails_fast(sasrec_bundle):
    started = time.monotonic()
    with pytest.raises(RecausalError, match=r"no Ray cluster at 127\.0\.0\.2"):
        evaluate(
            sasrec_bundle,
            ["recency"],
            users=1,
            engine="ray",
            address=f"127.0.0.2:{free_port('127.0.0.2')}",
        )
    assert time.monotonic() - started < 30
    assert not ray.is_initialized()
    with pytest.raises(InvalidInputError, match="engine='ray'"):
        evaluate(sasrec_bundle, ["recency"], users=1, address="127.0.0.2:1")
    result = CliRunner().invoke(
        cli, ["evaluate", "-m", str(sasrec_bundle), "--out", "x", "--address", "127.0.0.2:1"]
    )
    assert result.exit_code == 2 and "--engine ray" in result.output
