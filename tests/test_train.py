"""Training: checkpointed every epoch, resumed exactly, with its learning curve recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from recausal.errors import InvalidInputError
from recausal.models.train import train

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "sasrec-synthetic.yaml"


def _train(planted, out: Path, epochs: int, checkpoints: Path | None = None, **extra):
    torch.set_num_threads(1)
    overrides = {"dataset": str(planted.files.directory), "epochs": epochs, **extra}
    return train(CONFIG, out, overrides=overrides, verbose=False, checkpoints=checkpoints)


def _curve(result) -> list[tuple]:
    return [(h["epoch"], h["loss"], h["valid"]) for h in result.history]


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(planted, tmp_path):
    straight = _train(planted, tmp_path / "straight", epochs=4)
    first = _train(planted, tmp_path / "resumed", epochs=2, checkpoints=tmp_path / "ck")
    assert first.epochs_run == 2 and (tmp_path / "ck" / "checkpoint.json").is_file()
    resumed = _train(planted, tmp_path / "resumed", epochs=4, checkpoints=tmp_path / "ck")
    a = load_file(str(straight.bundle / "model.safetensors"))
    b = load_file(str(resumed.bundle / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _curve(straight) == _curve(resumed) and resumed.epochs_run == 4
    assert straight.test == resumed.test and straight.best_epoch == resumed.best_epoch
    meta = json.loads((resumed.bundle / "meta.json").read_text())
    assert [h["epoch"] for h in meta["training"]["history"]] == [0, 1, 2, 3]
    assert meta["dataset"]["repeated_interactions"] is True  # the planted data repeats items
    # the default checkpoint folder is removed once the bundle is written
    assert not (tmp_path / "straight.partial").exists()


def test_a_checkpoint_of_other_settings_or_a_damaged_one_is_refused(planted, tmp_path):
    _train(planted, tmp_path / "b", epochs=1, checkpoints=tmp_path / "ck")
    with pytest.raises(InvalidInputError, match="other settings"):
        _train(planted, tmp_path / "b", epochs=2, checkpoints=tmp_path / "ck", learning_rate=0.1)
    tensors = next((tmp_path / "ck").glob("epoch-*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:-10])
    with pytest.raises(InvalidInputError, match="damaged"):
        _train(planted, tmp_path / "b", epochs=2, checkpoints=tmp_path / "ck")


def test_early_stopping_ends_the_run_when_validation_stops_improving(planted, tmp_path):
    result = _train(planted, tmp_path / "b", epochs=60, stopping_step=1, learning_rate=0.05)
    assert result.stopped_early and result.epochs_run < 60
    scores = [h["valid"]["ndcg@10"] for h in result.history]
    assert max(scores) == scores[result.best_epoch]
    # it stopped after two evaluations in a row without improvement
    assert all(s < scores[result.best_epoch] for s in scores[result.best_epoch + 1 :])
    assert len(scores) - 1 - result.best_epoch == 2
