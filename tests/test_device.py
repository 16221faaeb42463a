"""The device option: checked once, clear errors for bad or missing devices, the same results on
an explicit CPU, and training checkpoints that ignore the device and threads (old ones resume).

Only the CPU is exercised here: the tests that need a missing GPU skip where one is present.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from recausal.cli import cli
from recausal.errors import InvalidInputError
from recausal.evaluate import evaluate, resolve_users
from recausal.explain import get_explainer
from recausal.models import available_devices, check_device, load_model
from recausal.models.checkpoint import legacy_settings_digest, settings_digest
from recausal.models.train import train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "sasrec-synthetic.yaml"
BAD_DEVICES = ["gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", " cpu", "", 0, None]

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def _explanations(model, histories):
    out = []
    for name in ("causal", "occlusion"):
        for history in histories:
            found = get_explainer(name, max_size=2).explain(model, history).to_dict()
            found.pop("seconds")
            out.append(found)
    return out


@pytest.mark.parametrize("bundle", ["sasrec_bundle", "bert4rec_bundle"])
def test_an_explicit_cpu_device_gives_the_default_results(bundle, request):
    path = request.getfixturevalue(bundle)
    default, explicit = load_model(path), load_model(path, device="cpu")
    assert default.device == explicit.device == torch.device("cpu")
    histories = [default.user_history(u) for u in resolve_users(default, 3)]
    assert default.recommend(histories, k=5) == explicit.recommend(histories, k=5)
    for history in histories:
        assert (default.attention(history) == explicit.attention(history)).all()
    assert _explanations(default, histories) == _explanations(explicit, histories)


def test_check_device_accepts_the_names_and_refuses_others():
    assert check_device("cpu") == check_device(torch.device("cpu")) == torch.device("cpu")
    assert available_devices()[0] == "cpu"
    for bad in BAD_DEVICES:
        with pytest.raises(InvalidInputError, match="device must be one of cpu, cuda, cuda:N, mps"):
            check_device(bad)


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_a_missing_gpu_is_a_clear_error_in_the_api(device, sasrec_bundle, tmp_path):
    expected = f"device '{device}' is not available: .*; available: cpu"
    with pytest.raises(InvalidInputError, match=expected):
        load_model(sasrec_bundle, device=device)
    with pytest.raises(InvalidInputError, match=expected):
        evaluate(sasrec_bundle, ["recency"], users=1, device=device)
    with pytest.raises(InvalidInputError, match=expected):
        train(CONFIG, tmp_path / "b", verbose=False, device=device)
    assert not (tmp_path / "b").exists()


def _cli_commands(bundle: Path, tmp_path: Path) -> list[list[str]]:
    model = ["--model", str(bundle)]
    commands = [
        ["recommend", *model, "--user", "1"],
        ["explain", *model, "--user", "1"],
        ["graph", *model, "--user", "1"],
        ["evaluate", *model, "--users", "1", "--explainers", "recency", "--out", str(tmp_path)],
        ["train", str(CONFIG), "--out", str(tmp_path / "trained")],
    ]
    try:
        import fastapi  # noqa: F401
    except ImportError:
        pass
    else:
        commands.append(["serve", *model, "--port", "9"])
    return commands


def _one_line_exit_2(result) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@no_cuda
def test_a_missing_gpu_is_one_line_and_exit_2_in_every_cli_command(sasrec_bundle, tmp_path):
    for command in _cli_commands(sasrec_bundle, tmp_path):
        line = _one_line_exit_2(CliRunner().invoke(cli, [*command, "--device", "cuda"]))
        assert line.startswith("recausal: error: device 'cuda' is not available: "), line
        assert line.endswith("; available: " + ", ".join(available_devices())), line
    assert not (tmp_path / "trained").exists()


def test_a_bad_device_name_is_one_line_and_exit_2_in_every_cli_command(sasrec_bundle, tmp_path):
    for command in _cli_commands(sasrec_bundle, tmp_path):
        line = _one_line_exit_2(CliRunner().invoke(cli, [*command, "--device", "gpu"]))
        assert line == (
            "recausal: error: device must be one of cpu, cuda, cuda:N, mps; got 'gpu'"
        ), (command, line)


@no_cuda
def test_a_missing_gpu_prints_no_traceback_in_a_real_process(sasrec_bundle):
    command = ["recommend", "-m", str(sasrec_bundle), "--user", "1", "--device", "cuda"]
    proc = subprocess.run(
        [sys.executable, "-m", "recausal.cli", *command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("recausal: error: device 'cuda' is not available: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_device_is_not_part_of_an_evaluation_runs_arguments(sasrec_bundle, tmp_path):
    run = {"explainers": ["recency", "occlusion"], "users": 3, "chunk_size": 2, "out": tmp_path}
    first = evaluate(sasrec_bundle, **run)
    again = evaluate(load_model(sasrec_bundle), **run, device="cpu")  # loaded there already
    manifest = json.loads((tmp_path / "summary.json").read_text())["manifest"]
    assert manifest["resumed_chunks"] == 2  # every chunk came from the journal
    assert manifest["device"] == "cpu" and "device" not in manifest["arguments"]
    assert first[["user", "explainer", "size"]].equals(again[["user", "explainer", "size"]])


# ------------------------------------------------------------------------------ training
SETTINGS = {
    "model": "SASRec",
    "dataset": "abc123",
    "learning_rate": 0.001,
    "epochs": 30,
    "stopping_step": 3,
    "threads": 2,
    "device": "cpu",
    "use_gpu": False,
    "data_path": None,
}


def test_the_settings_digest_ignores_the_device_and_threads_only():
    digest = settings_digest(SETTINGS)
    moved = {**SETTINGS, "threads": 8, "device": "cuda:1", "use_gpu": True, "gpu_id": "1"}
    assert settings_digest(moved) == digest
    assert settings_digest({**SETTINGS, "epochs": 99}) == digest
    assert settings_digest({**SETTINGS, "learning_rate": 0.01}) != digest
    # what the previous version (commit 026c1b0) wrote for these settings
    old = "66a42dd2e88a352e81a8f06177d07ba95361867b5b89c30696dc4967c25fff17"
    assert legacy_settings_digest(SETTINGS) == old != digest
    assert legacy_settings_digest({**SETTINGS, "threads": 1}) != old


def _train(planted, checkpoints: Path, epochs: int, **extra):
    torch.set_num_threads(1)
    overrides = {"dataset": str(planted.files.directory), "epochs": epochs, **extra}
    out = checkpoints.parent / "b"
    return train(CONFIG, out, overrides=overrides, verbose=False, checkpoints=checkpoints)


def _resumed(caplog) -> bool:
    return "resuming from" in caplog.text


def test_a_run_resumes_with_other_threads_and_an_explicit_cpu(planted, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    ck = tmp_path / "ck"
    first = _train(planted, ck, epochs=1, threads=1)
    assert not _resumed(caplog)
    resumed = _train(planted, ck, epochs=2, threads=2, device="cpu")
    assert _resumed(caplog) and resumed.epochs_run == 2
    assert resumed.history[0] == first.history[0]
    meta = json.loads((resumed.bundle / "meta.json").read_text())
    assert meta["training"]["device"] == "cpu"


def test_a_checkpoint_of_the_previous_version_still_resumes(planted, tmp_path, caplog, monkeypatch):
    import recausal.models.checkpoint as checkpoint

    caplog.set_level(logging.INFO)
    ck = tmp_path / "ck"
    with monkeypatch.context() as patch:  # the previous version's digest, threads included
        patch.setattr(checkpoint, "settings_digest", checkpoint.legacy_settings_digest)
        first = _train(planted, ck, epochs=1, threads=1)
    old = json.loads((ck / "checkpoint.json").read_text())["settings_digest"]
    with pytest.raises(InvalidInputError, match="other settings"):
        _train(planted, ck, epochs=2, threads=1, learning_rate=0.1)
    assert not _resumed(caplog)
    resumed = _train(planted, ck, epochs=2, threads=1)
    assert _resumed(caplog) and resumed.history[0] == first.history[0]
    new = json.loads((ck / "checkpoint.json").read_text())["settings_digest"]
    assert new != old  # written again with the digest that ignores threads
    caplog.clear()
    _train(planted, ck, epochs=3, threads=2)
    assert _resumed(caplog)
