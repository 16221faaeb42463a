"""Bring your own RecBole model: checkpoint import, in-memory wrapping, more model families."""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from recausal.errors import BundleError, UnsupportedModelError
from recausal.models import from_recbole, load_model
from recausal.models.recbole_import import import_recbole_checkpoint, read_recbole_checkpoint

MAX_LEN = 10


@dataclass
class RecBoleRun:
    """A model trained by RecBole's own trainer, with the checkpoint that trainer wrote."""

    checkpoint: Path
    model: Any
    dataset: Any
    config: Any


def _recbole_train(
    family: str, planted, folder: Path, *, epochs: int = 2, validate: bool = False, **extra
) -> RecBoleRun:
    """Train with RecBole's Config, create_dataset, data_preparation and Trainer (saved=True)."""
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    from recausal._compat import quiet_trainer_side_effects, recbole_config
    from recausal.models.train import DEFAULTS

    torch.set_num_threads(1)
    settings = {
        **DEFAULTS,
        "data_path": str(planted.files.data_path),
        "checkpoint_dir": str(folder),
        "epochs": epochs,
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "n_layers": 1,
        "n_heads": 2,
        "hidden_size": 16,
        "embedding_size": 16,
        "inner_size": 32,
        "learning_rate": 0.01,
        **extra,
    }
    config = recbole_config(family, planted.files.name, settings)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = get_model(family)(config, train_data.dataset)
    with quiet_trainer_side_effects():
        trainer = Trainer(config, model)
        trainer.fit(train_data, valid_data if validate else None, saved=True, verbose=False)
    return RecBoleRun(Path(trainer.saved_model_file), model.eval(), dataset, config)


@pytest.fixture(scope="module")
def sasrec_run(planted, tmp_path_factory) -> RecBoleRun:
    """SASRec trained by RecBole's loop, checkpoint saved at the best validation epoch."""
    return _recbole_train("SASRec", planted, tmp_path_factory.mktemp("ck"), validate=True)


@pytest.fixture(scope="module")
def bert4rec_run(planted, tmp_path_factory) -> RecBoleRun:
    """BERT4Rec trained by RecBole's loop (checkpoint = the last epoch = the model in memory)."""
    return _recbole_train("BERT4Rec", planted, tmp_path_factory.mktemp("ck"), mask_ratio=0.3)


@pytest.fixture(scope="module")
def gru4rec_run(planted, tmp_path_factory) -> RecBoleRun:
    """GRU4Rec (no self-attention) trained by RecBole's loop."""
    return _recbole_train("GRU4Rec", planted, tmp_path_factory.mktemp("ck"), epochs=1)


def _id_histories(n_items: int, n: int = 8, seed: int = 0) -> list[list[int]]:
    """Random internal-id histories of lengths 2..MAX_LEN-2 (below every capacity)."""
    rng = np.random.default_rng(seed)
    return [
        rng.integers(1, n_items, size=int(rng.integers(2, MAX_LEN - 1))).tolist() for _ in range(n)
    ]


def _recbole_scores(net, histories: list[list[int]]) -> np.ndarray:
    """RecBole's own full_sort_predict on histories padded the way its dataloaders pad them."""
    from recbole.data.interaction import Interaction

    batch = torch.zeros((len(histories), MAX_LEN), dtype=torch.long)
    for row, h in enumerate(histories):
        batch[row, : len(h)] = torch.tensor(h)
    lengths = torch.tensor([len(h) for h in histories])
    with torch.no_grad():
        scores = net.full_sort_predict(
            Interaction({net.ITEM_SEQ: batch, net.ITEM_SEQ_LEN: lengths})
        )
    return scores.numpy()


def _tokens(model, histories: list[list[int]]) -> list[list[str]]:
    return [model.decode(h) for h in histories]


def _assert_same_top10(ours: np.ndarray, theirs: np.ndarray, model) -> None:
    """Top-10 tokens equal and scores equal within float tolerance (padding id 0 excluded)."""
    np.testing.assert_allclose(ours[:, 1:], theirs[:, 1:], rtol=1e-4, atol=1e-5)
    for row_ours, row_theirs in zip(ours, theirs, strict=True):
        row_theirs = row_theirs.copy()
        row_theirs[0] = -np.inf
        top_theirs = [model.items[i] for i in np.argsort(-row_theirs, kind="stable")[:10]]
        rec = model._top_k(row_ours, 10)
        assert list(rec.items) == top_theirs


# ------------------------------------------------------------------ import: SASRec


@pytest.fixture(scope="module")
def sasrec_imported(sasrec_run, planted, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "sasrec"
    return import_recbole_checkpoint(sasrec_run.checkpoint, planted.files.directory, out)


def test_imported_sasrec_recommends_what_recbole_recommends(sasrec_run, sasrec_imported):
    from recbole.utils import get_model

    # RecBole's own model restored from its checkpoint, the way its trainer reloads it.
    saved = torch.load(sasrec_run.checkpoint, map_location="cpu", weights_only=False)
    reference = get_model("SASRec")(sasrec_run.config, sasrec_run.dataset).eval()
    reference.load_state_dict(saved["state_dict"])
    model = load_model(sasrec_imported)
    assert model.items == tuple(sasrec_run.dataset.field2id_token["item_id"])
    histories = _id_histories(model.n_items)
    ours = model.score(_tokens(model, histories))
    _assert_same_top10(ours, _recbole_scores(reference, histories), model)
    recs = model.recommend(_tokens(model, histories[:1]), k=10)[0]
    assert len(recs.items) == 10


def test_import_meta_records_the_source_checkpoint(sasrec_run, sasrec_imported, planted):
    meta = json.loads((sasrec_imported / "meta.json").read_text())
    digest = hashlib.sha256(sasrec_run.checkpoint.read_bytes()).hexdigest()
    assert meta["imported"]["source_sha256"] == digest
    assert meta["imported"]["from"] == "RecBole checkpoint"
    assert "restricted" in meta["imported"]["reader"]
    assert meta["dataset"]["fingerprint"] == planted.files.fingerprint()
    assert meta["metrics"]["best_valid_score"] is not None
    config = json.loads((sasrec_imported / "config.json").read_text())
    assert config["model"] == "SASRec" and config["recbole"]["hidden_size"] == 16
    assert "data_path" not in config["recbole"]


def test_restricted_reader_recovers_the_config_without_recbole_code(sasrec_run):
    ckpt = read_recbole_checkpoint(sasrec_run.checkpoint)
    assert ckpt.model == "SASRec"
    assert ckpt.final_config["MAX_ITEM_LIST_LENGTH"] == MAX_LEN
    assert ckpt.external_config["n_heads"] == 2
    # RecBole objects inside the config are inert records, not RecBole instances.
    model_type = ckpt.final_config["MODEL_TYPE"]
    assert type(model_type).__module__ == "recausal.models.recbole_import"
    assert model_type.global_name == "recbole.utils.enum_type.ModelType"
    assert isinstance(ckpt.state_dict["item_embedding.weight"], torch.Tensor)


def test_trusted_import_gives_the_same_bundle_weights(
    sasrec_run, sasrec_imported, planted, tmp_path
):
    from recausal.models.bundle import read_bundle

    trusted = import_recbole_checkpoint(
        sasrec_run.checkpoint, planted.files.directory, tmp_path / "t", trust_pickle=True
    )
    a, b = read_bundle(sasrec_imported), read_bundle(trusted)
    assert a.items == b.items and a.config == b.config
    for key, tensor in a.state_dict.items():
        assert torch.equal(tensor, b.state_dict[key]), key
    assert "trust" in b.meta["imported"]["reader"]


# ------------------------------------------------------------------ import: BERT4Rec, GRU4Rec


def test_imported_bert4rec_scores_like_recbole(bert4rec_run, planted, tmp_path):
    bundle = import_recbole_checkpoint(
        bert4rec_run.checkpoint, planted.files.directory, tmp_path / "b"
    )
    model = load_model(bundle)
    net = bert4rec_run.model
    histories = _id_histories(model.n_items, seed=1)
    ours = model.score(_tokens(model, histories))
    # Our [s1..sn, MASK] equals the network's own forward on that sequence.
    mask = net.mask_token
    weights = net.item_embedding.weight[: net.n_items]
    with torch.no_grad():
        direct = np.vstack(
            [
                (
                    net.forward(torch.tensor([[*h, mask]]))[0, len(h)] @ weights.T + net.output_bias
                ).numpy()
                for h in histories
            ]
        )
    _assert_same_top10(ours, direct, model)
    # RecBole's full_sort_predict drops the oldest item: it scores [s2..sn, MASK].
    shorter = model.score(_tokens(model, [h[1:] for h in histories]))
    _assert_same_top10(shorter, _recbole_scores(net, histories), model)


def test_gru4rec_scores_but_has_no_attention(gru4rec_run, planted, tmp_path):
    from recausal.explain import get_explainer

    bundle = import_recbole_checkpoint(
        gru4rec_run.checkpoint, planted.files.directory, tmp_path / "g"
    )
    model = load_model(bundle)
    histories = _id_histories(model.n_items, seed=2)
    _assert_same_top10(
        model.score(_tokens(model, histories)), _recbole_scores(gru4rec_run.model, histories), model
    )
    history = _tokens(model, histories[:1])[0]
    with pytest.raises(UnsupportedModelError, match="not supported: no self-attention"):
        model.attention(history)
    with pytest.raises(UnsupportedModelError, match="no self-attention"):
        get_explainer("attention").explain(model, history)
    explanation = get_explainer("occlusion").explain(model, history)
    # Occlusion ranks first the single removal that lowers the top item's score most.
    base = model.score([history])[0]
    top = int(np.argmax(base))
    assert explanation.recommended == model.items[top]
    drops = [
        base[top] - model.score([history[:p] + history[p + 1 :]])[0][top]
        for p in range(len(history))
    ]
    assert explanation.ranking[0].position == int(np.argmax(drops))
    exhaustive = get_explainer("exhaustive", max_size=2).explain(model, history[:5])
    assert exhaustive.recommended == model.recommend([history[:5]], k=1)[0].top


# ------------------------------------------------------------------ import: refusals


class _WritesFile:
    """Unpickling this calls builtins.exec, which would create the file PWNED."""

    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


class _RunsShell:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_SHELL",))


@pytest.mark.parametrize("payload", [_WritesFile, _RunsShell])
@pytest.mark.parametrize("fmt", ["torch", "pickle"])
def test_malicious_checkpoint_is_refused_without_running_code(
    payload, fmt, planted, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / "evil.pth"
    content = {"config": payload(), "state_dict": {}, "epoch": 1}
    if fmt == "torch":
        torch.save(content, checkpoint)
    else:
        checkpoint.write_bytes(pickle.dumps(content))
    with pytest.raises(BundleError, match="--trust-pickle") as err:
        import_recbole_checkpoint(checkpoint, planted.files.directory, tmp_path / "out")
    assert "arbitrary code" in str(err.value)
    assert ("exec" in str(err.value)) or ("system" in str(err.value))
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED_SHELL").exists()
    assert not (tmp_path / "out").exists()


def test_recbole_globals_stay_inert_even_when_called(planted, tmp_path, monkeypatch):
    """A RecBole function named in a pickle is recorded, never called."""
    monkeypatch.chdir(tmp_path)

    class _CallsRecBole:
        def __reduce__(self):
            from recbole.utils import utils

            return (utils.ensure_dir, (str(tmp_path / "MADE_BY_RECBOLE"),))

    checkpoint = tmp_path / "odd.pth"
    torch.save({"config": _CallsRecBole(), "state_dict": {}}, checkpoint)
    with pytest.raises(BundleError, match="not a RecBole checkpoint"):
        read_recbole_checkpoint(checkpoint)
    assert not (tmp_path / "MADE_BY_RECBOLE").exists()


def test_config_strings_are_not_evaluated_and_saved_datasets_not_unpickled(
    sasrec_run, planted, tmp_path, monkeypatch
):
    """RecBole's Config evals string settings and create_dataset unpickles a saved dataset:
    neither may run code from an imported checkpoint."""
    monkeypatch.chdir(tmp_path)
    saved = torch.load(sasrec_run.checkpoint, map_location="cpu", weights_only=False)
    external = saved["config"].external_config_dict
    external["valid_metric"] = "__import__('pathlib').Path('PWNED_EVAL').touch() or 'NDCG@10'"
    evil_dataset = tmp_path / "saved-dataset.pth"
    evil_dataset.write_bytes(pickle.dumps(_WritesFile()))
    external["dataset_save_path"] = str(evil_dataset)
    checkpoint = tmp_path / "tampered.pth"
    torch.save(saved, checkpoint)
    bundle = import_recbole_checkpoint(checkpoint, planted.files.directory, tmp_path / "b")
    assert not (tmp_path / "PWNED_EVAL").exists() and not (tmp_path / "PWNED").exists()
    assert load_model(bundle).items == tuple(sasrec_run.dataset.field2id_token["item_id"])


def test_foreign_global_needs_trust_pickle(sasrec_run, planted, tmp_path):
    from fractions import Fraction

    saved = torch.load(sasrec_run.checkpoint, map_location="cpu", weights_only=False)
    saved["note"] = Fraction(1, 3)  # harmless, but from outside the allowed set
    checkpoint = tmp_path / "with-fraction.pth"
    torch.save(saved, checkpoint)
    with pytest.raises(BundleError, match=r"fractions\.Fraction.*--trust-pickle"):
        import_recbole_checkpoint(checkpoint, planted.files.directory, tmp_path / "a")
    bundle = import_recbole_checkpoint(
        checkpoint, planted.files.directory, tmp_path / "b", trust_pickle=True
    )
    assert load_model(bundle).n_items == len(sasrec_run.dataset.field2id_token["item_id"])


def test_torchscript_archive_is_refused(tmp_path):
    archive = tmp_path / "scripted.pth"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(archive))
    with pytest.raises(BundleError, match="TorchScript"):
        read_recbole_checkpoint(archive)


def test_wrong_dataset_or_garbage_file_is_a_bundle_error(sasrec_run, tmp_path):
    from recausal.data import make_planted_dataset

    other = make_planted_dataset(
        tmp_path / "other",
        name="other",
        n_users=40,
        n_items=12,
        n_pairs=1,
        seq_len=8,
        min_seq_len=6,
        seed=3,
    )
    with pytest.raises(BundleError, match="do not fit dataset 'other'"):
        import_recbole_checkpoint(sasrec_run.checkpoint, other.files.directory, tmp_path / "x")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(BundleError, match="could not be read"):
        read_recbole_checkpoint(garbage)
    with pytest.raises(BundleError, match="does not exist"):
        read_recbole_checkpoint(tmp_path / "missing.pth")


def test_cli_import_recbole(sasrec_run, planted, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from recausal.cli import cli

    runner = CliRunner()
    out = tmp_path / "cli-bundle"
    args = ["import-recbole", str(sasrec_run.checkpoint), "--dataset", str(planted.files.directory)]
    result = runner.invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Imported SASRec" in result.output and (out / "model.safetensors").is_file()
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"config": _WritesFile()}, evil)
    result = runner.invoke(cli, ["import-recbole", str(evil), "--dataset", "x", "--out", "y"])
    assert result.exit_code == 2
    assert "--trust-pickle" in result.output and not (tmp_path / "PWNED").exists()


# ------------------------------------------------------------------ from_recbole


def test_from_recbole_wraps_the_model_in_memory(bert4rec_run, sasrec_run, sasrec_imported):
    net = bert4rec_run.model
    net.train()
    wrapped = from_recbole(net, bert4rec_run.dataset)
    assert net.training, "the caller's model must not be switched to eval mode"
    assert wrapped.items == tuple(bert4rec_run.dataset.field2id_token["item_id"])
    histories = _id_histories(wrapped.n_items, seed=3)
    shorter = wrapped.score(_tokens(wrapped, [h[1:] for h in histories]))
    net.eval()
    _assert_same_top10(shorter, _recbole_scores(net, histories), wrapped)
    assert wrapped.attention(_tokens(wrapped, histories[:1])[0]).shape[0] == 2
    assert len(wrapped.user_history("1")) >= 8  # users come from the RecBole dataset's folder
    with pytest.raises(UnsupportedModelError, match="not supported"):
        from_recbole(torch.nn.Linear(2, 2), bert4rec_run.dataset)


# ------------------------------------------------------------------ more transformer families


def _random_network(family: str, planted, **extra):
    """A RecBole network with RecBole's default settings for ``family``, randomly initialised."""
    from recausal._compat import recbole_config
    from recausal.models import ADAPTERS, build_network
    from recausal.models.recbole_settings import model_config_from_recbole
    from recausal.models.train import DEFAULTS

    settings = {
        **DEFAULTS,
        "data_path": str(planted.files.data_path),
        "MAX_ITEM_LIST_LENGTH": MAX_LEN,
        "n_layers": 2,
        "n_heads": 2,
        "hidden_size": 16,
        "embedding_size": 16,
        "inner_size": 32,
        **extra,
    }
    config = recbole_config(family, planted.files.name, settings)
    params = model_config_from_recbole(config, 25)["recbole"]
    torch.manual_seed(0)
    net = build_network(family, params, 25)
    items = ["[PAD]", *[str(i) for i in range(1, 25)]]
    return ADAPTERS[family](net, items, name=family)


@pytest.mark.parametrize(
    ("family", "extra"),
    [("GCSAN", {}), ("CORE", {"dnn_type": "trm"})],
)
def test_more_transformers_expose_left_to_right_attention(family, extra, planted):
    model = _random_network(family, planted, **extra)
    history = ["3", "7", "3", "12", "5"]
    attention = model.attention(history)
    assert model.causal_attention and model.n_heads == 2 and model.n_layers == 2
    assert attention.shape == (2, len(history) + 1, len(history) + 1)
    np.testing.assert_allclose(attention.sum(axis=-1), 1.0, atol=1e-9)
    assert np.abs(np.triu(attention, k=1)).max() < 1e-6
    assert np.tril(attention, k=-1).max() > 1e-3
    first_layer = model.attention(history, layer=0)
    assert not np.allclose(first_layer, attention)
    batch = model.score([history, history[:2]])
    np.testing.assert_allclose(batch[0], model.score([history])[0], rtol=1e-5, atol=1e-6)
    # Padding to RecBole's full width gives the same scores as RecBole's own scoring.
    np.testing.assert_allclose(
        batch[:, 1:],
        _recbole_scores(model.net, [model.encode(h).tolist() for h in (history, history[:2])])[
            :, 1:
        ],
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("family", "extra", "reason"),
    [
        ("LightSANs", {"k_interests": 3}, "latent interests"),
        ("CORE", {"dnn_type": "ave"}, "averages"),
        ("NARM", {}, "no self-attention"),
        ("STAMP", {}, "no self-attention"),
        ("NextItNet", {}, "no self-attention"),
        ("SRGNN", {}, "no self-attention"),
        ("RepeatNet", {}, "no self-attention"),
    ],
)
def test_models_without_readable_attention_score_only(family, extra, reason, planted):
    model = _random_network(family, planted, **extra)
    history = ["3", "7", "12"]
    scores = model.score([history, history[:1]])
    expected = _recbole_scores(model.net, [[3, 7, 12], [3]])
    np.testing.assert_allclose(scores[:, 1:], expected[:, 1:], rtol=1e-5, atol=1e-6)
    assert not model.has_attention
    with pytest.raises(UnsupportedModelError, match=reason):
        model.attention(history)
