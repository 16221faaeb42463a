"""Shared fixtures: a tiny planted-cause dataset and tiny SASRec/BERT4Rec bundles trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """A small planted-cause dataset (effect follows its cause) written to a temp folder."""
    from recausal.data import make_planted_dataset

    folder = tmp_path_factory.mktemp("data") / "planted"
    return make_planted_dataset(
        folder,
        name="planted",
        n_users=120,
        n_items=24,
        n_pairs=3,
        seq_len=12,
        min_seq_len=8,
        seed=0,
    )


def _train(planted, tmp_path_factory, family: str) -> Path:
    import torch

    from recausal.models.train import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bundles") / f"{family}-planted"
    result = train(
        CONFIGS / f"{family}-synthetic.yaml",
        out,
        overrides={"dataset": str(planted.files.directory), "epochs": 12},
        verbose=False,
    )
    return result.bundle


@pytest.fixture(scope="session")
def sasrec_bundle(planted, tmp_path_factory) -> Path:
    """Path of a tiny SASRec bundle trained for a few seconds on the planted data."""
    return _train(planted, tmp_path_factory, "sasrec")


@pytest.fixture(scope="session")
def bert4rec_bundle(planted, tmp_path_factory) -> Path:
    """Path of a tiny BERT4Rec bundle trained for a few seconds on the planted data."""
    return _train(planted, tmp_path_factory, "bert4rec")


@pytest.fixture(scope="session")
def sasrec(sasrec_bundle):
    """The tiny SASRec adapter."""
    from recausal.models import load_model

    return load_model(sasrec_bundle)


@pytest.fixture(scope="session")
def bert4rec(bert4rec_bundle):
    """The tiny BERT4Rec adapter."""
    from recausal.models import load_model

    return load_model(bert4rec_bundle)


@pytest.fixture(params=["sasrec", "bert4rec"])
def any_model(request):
    """Each tiny model in turn."""
    return request.getfixturevalue(request.param)
