"""The model adapter: attention, scoring, bundles, planted-cause learning."""

from __future__ import annotations

import json
import pickle
import shutil
import threading

import numpy as np
import pytest
import torch

from recausal.errors import (
    BundleError,
    EmptyHistoryError,
    InvalidInputError,
    RecausalWarning,
    UnknownItemError,
    UnknownUserError,
)
from recausal.models import load_model
from recausal.models.bundle import read_bundle, save_bundle


def _histories(model, n=6, length=7, seed=0):
    rng = np.random.default_rng(seed)
    return [
        [model.items[i] for i in rng.integers(1, model.n_items, size=length - k % 3)]
        for k in range(n)
    ]


def _recomputed_attention(model, history, target):
    """Softmax(QKᵀ/√d + mask) of the deepest layer, from the layer's own weights and input."""
    layer = model.net.trm_encoder.layer[-1].multi_head_attention
    captured = {}

    def keep_input(module, inputs, output):
        captured.setdefault("x", inputs)

    handle = layer.register_forward_hook(keep_input)
    try:
        ids = model.encode(history)
        tid = model.item_ids[target]
        with torch.inference_mode():
            model._forward(*model._abductive_input([ids], [tid]))
    finally:
        handle.remove()
    x, mask = captured["x"]
    with torch.inference_mode():

        def heads(t):
            return t.view(1, -1, layer.num_attention_heads, layer.attention_head_size).transpose(
                1, 2
            )

        q, k = heads(layer.query(x)), heads(layer.key(x))
        scores = q @ k.transpose(-1, -2) / layer.sqrt_attention_head_size + mask
        probs = torch.softmax(scores, dim=-1)[0].numpy()
    n1 = len(ids) + 1
    return probs[:, :n1, :n1]


def test_attention_equals_recomputation_from_queries_and_keys(any_model):
    history = _histories(any_model)[0]
    target = any_model.recommend([history], k=1)[0].top
    attn = any_model.attention(history, target=target)
    expected = _recomputed_attention(any_model, history, target)
    assert attn.shape == (any_model.n_heads, len(history) + 1, len(history) + 1)
    np.testing.assert_allclose(attn, expected, atol=1e-5)
    np.testing.assert_allclose(attn.sum(axis=-1), 1.0, atol=1e-9)
    assert (attn >= 0).all()


def test_sasrec_attention_is_lower_triangular_and_bert4rec_is_not(sasrec, bert4rec):
    history = _histories(sasrec)[1]
    a = sasrec.attention(history)
    assert np.abs(np.triu(a, k=1)).max() < 1e-6
    b = bert4rec.attention(history)
    assert np.triu(b, k=1).max() > 1e-3


def test_attention_ignores_a_forward_pass_run_by_another_thread(any_model, monkeypatch):
    """Reading attention hooks the network: a pass another thread runs meanwhile on the same
    network (a service answering two requests) must not be read instead."""
    first, other = _histories(any_model)[:2]
    expected = any_model.attention(first)
    original = type(any_model)._forward

    def forward_while_another_thread_runs(self, batch, lengths):
        out = original(self, batch, lengths)
        seqs = [self.encode(other)] * 3  # a different batch, run while the hook is still on
        worker = threading.Thread(target=lambda: original(self, *self._pad(seqs, 1)))
        worker.start()
        worker.join()
        return out

    monkeypatch.setattr(type(any_model), "_forward", forward_while_another_thread_runs)
    np.testing.assert_allclose(any_model.attention(first), expected, atol=1e-7)


def test_attention_default_target_is_the_top1_and_layer_is_checked(sasrec):
    history = _histories(sasrec)[2]
    top = sasrec.recommend([history], k=1)[0].top
    np.testing.assert_allclose(sasrec.attention(history), sasrec.attention(history, target=top))
    with pytest.raises(InvalidInputError, match="layer"):
        sasrec.attention(history, layer=5)
    with pytest.raises(UnknownItemError, match="nope"):
        sasrec.attention(history, target="nope")


def test_batch_scores_equal_one_by_one(any_model):
    histories = _histories(any_model, n=8)
    batch = any_model.score(histories)
    single = np.vstack([any_model.score([h]) for h in histories])
    np.testing.assert_allclose(batch[:, 1:], single[:, 1:], rtol=1e-5, atol=1e-5)
    assert np.isneginf(batch[:, 0]).all(), "the padding id must never be recommended"


def test_recommend_returns_k_sorted_items(any_model):
    rec = any_model.recommend(_histories(any_model, n=2), k=5)
    assert len(rec) == 2
    for r in rec:
        assert len(r.items) == 5 and len(set(r.items)) == 5
        assert list(r.scores) == sorted(r.scores, reverse=True)
        assert "[PAD]" not in r.items


def test_model_learned_the_planted_cause(any_model, planted):
    rng = np.random.default_rng(1)
    fillers = [t for t in any_model.items[1:] if t not in planted.causes | planted.effects]
    hits = total = 0
    for cause, effect in planted.cause_to_effect.items():
        for _ in range(20):
            history = [*rng.choice(fillers, size=5).tolist(), cause]
            hits += any_model.recommend([history], k=1)[0].top == effect
            total += 1
    assert hits / total >= 0.8, f"planted successor recommended for only {hits}/{total}"


def test_long_history_is_truncated_with_a_warning(sasrec):
    long = _histories(sasrec, n=1, length=sasrec.capacity + 5)[0] * 1
    long = (long * 4)[: sasrec.capacity + 5]
    with pytest.warns(RecausalWarning, match="most recent"):
        s_long = sasrec.score([long])
    s_cut = sasrec.score([long[-sasrec.capacity :]])
    np.testing.assert_allclose(s_long[:, 1:], s_cut[:, 1:], atol=1e-6)


def test_bad_histories_raise_named_errors(sasrec):
    with pytest.raises(EmptyHistoryError):
        sasrec.score([[]])
    with pytest.raises(UnknownItemError, match="'no-such-item'"):
        sasrec.score([[sasrec.items[1], "no-such-item"]])
    with pytest.raises(InvalidInputError, match="batch"):
        sasrec.score([sasrec.items[1], sasrec.items[2]])
    with pytest.raises(InvalidInputError, match="k must be"):
        sasrec.recommend([[sasrec.items[1]]], k=0)
    with pytest.raises(UnknownUserError, match="'no-such-user'"):
        sasrec.user_history("no-such-user")


def test_user_history_comes_from_the_dataset(sasrec, planted):
    history = sasrec.user_history("1")
    assert len(history) >= 8 and all(t in sasrec.item_ids for t in history)


def test_bundle_round_trip_gives_identical_scores(sasrec_bundle, tmp_path):
    original = read_bundle(sasrec_bundle)
    copy = save_bundle(
        tmp_path / "copy",
        original.state_dict,
        original.config,
        original.items,
        {k: v for k, v in original.meta.items() if k != "weights_sha256"},
    )
    a, b = load_model(sasrec_bundle), load_model(copy)
    histories = _histories(a)
    np.testing.assert_array_equal(a.score(histories), b.score(histories))
    meta = json.loads((sasrec_bundle / "meta.json").read_text())
    assert meta["dataset"]["fingerprint"] and meta["metrics"]["test"]["hit@10"] >= 0


class _RunsCode:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_pickle_weights_are_refused_without_running_code(sasrec_bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(sasrec_bundle, bad)
    (bad / "model.safetensors").write_bytes(pickle.dumps({"w": _RunsCode()}))
    meta = json.loads((bad / "meta.json").read_text())
    meta.pop("weights_sha256")
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="not a valid safetensors"):
        load_model(bad)
    (bad / "model.safetensors").unlink()
    (bad / "model.pth").write_bytes(pickle.dumps({"w": _RunsCode()}))
    with pytest.raises(BundleError, match="pickle"):
        load_model(bad)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_or_incomplete_bundles_give_clear_errors(sasrec_bundle, tmp_path):
    cut = tmp_path / "cut"
    shutil.copytree(sasrec_bundle, cut)
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="digest"):
        load_model(cut)
    (cut / "meta.json").write_text("{not json")
    with pytest.raises(BundleError, match="corrupt"):
        load_model(cut)
    partial = tmp_path / "partial"
    shutil.copytree(sasrec_bundle, partial)
    (partial / "items.json").unlink()
    with pytest.raises(BundleError, match=r"items\.json"):
        load_model(partial)
    with pytest.raises(BundleError, match="no model bundle"):
        load_model(tmp_path / "missing")


def test_adapter_evaluation_matches_recboles_trainer(sasrec):
    from recausal.models.quality import next_item_metrics

    ours = next_item_metrics(sasrec)
    recbole = sasrec.meta["metrics"]
    for split in ("valid", "test"):
        for key in ("hit@10", "ndcg@10"):
            assert abs(ours[split][key] - recbole[split][key]) < 1e-3, (split, key)
