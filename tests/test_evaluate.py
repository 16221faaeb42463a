"""Offline evaluation: rows, measures computed by hand, resume, engines, outputs, CLI errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from recausal.cli import cli
from recausal.errors import InvalidInputError, RecausalError
from recausal.evaluate import (
    COLUMNS,
    TIMING_COLUMNS,
    deletion_curve,
    evaluate,
    resolve_users,
    rows_frame,
    summarize,
)
from recausal.evaluate.runner import DEFAULT_EXPLAINERS
from recausal.explain import EXPLAINERS, get_explainer, remove_positions

FAST = ["recency", "occlusion", "random", "exhaustive"]


def _untimed(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(sasrec):
    """An uninterrupted in-process run: 5 users, chunks of 2."""
    return evaluate(sasrec, FAST, users=5, chunk_size=2)


def test_rows_one_per_user_and_explainer_in_order(sasrec, reference):
    users = resolve_users(sasrec, "all")[:5]
    assert list(reference.columns) == list(COLUMNS)
    assert list(zip(reference["user"], reference["explainer"], strict=True)) == [
        (u, e) for u in users for e in FAST
    ]
    assert reference["error"].isna().all()
    assert reference["graph_nodes"].isna().all() and reference["graph_edges"].isna().all()
    for _, row in reference.iterrows():
        assert row["valid"] == (not pd.isna(row["size"]))
        if row["valid"]:
            assert len(row["set_positions"]) == row["size"]
            assert row["replacement"] != row["recommended"]


def test_row_matches_the_explanation_and_deletion_is_recomputed(sasrec, reference):
    user = resolve_users(sasrec, "all")[1]
    hist = sasrec.user_history(user)
    expl = get_explainer("occlusion", max_size=5).explain(sasrec, hist, k=10)
    row = reference[(reference["user"] == user) & (reference["explainer"] == "occlusion")].iloc[0]
    assert row["recommended"] == expl.recommended and row["top_k"] == list(expl.top_k)
    assert row["set_positions"] == list(expl.sets[0] if expl.sets else ())
    assert row["replacement_rank"] is pd.NA or row["replacement_rank"] == expl.replacement_rank
    ids = sasrec.encode(hist)
    target = sasrec.item_ids[expl.recommended]
    order = [r.position for r in expl.ranking]
    by_hand = [
        bool(sasrec.score_ids([remove_positions(ids, order[:m], "delete")])[0].argmax() != target)
        for m in range(1, 6)
    ]
    assert row["deletion"] == by_hand


def _hand_rows() -> pd.DataFrame:
    """Six rows with known measures: two users, three explainers (one row is an error)."""

    def row(user, name, size, rank, sets, deletion, calls, error=None):
        valid = size is not None
        return {
            "user": user,
            "explainer": name,
            "history_length": 4,
            "history_used": 4,
            "recommended": "a",
            "score": 1.0,
            "top_k": ["a", "b", "c"],
            "valid": valid and error is None,
            "size": size,
            "n_sets": len(sets),
            "set_positions": list(sets[0]) if sets else [],
            "set_items": [],
            "sets": [list(s) for s in sets],
            "replacement": "b" if valid else None,
            "replacement_rank": rank,
            "model_calls": calls,
            "histories_scored": 2 * calls,
            "seconds": 0.5 * calls,
            "graph_nodes": None,
            "graph_edges": None,
            "deletion": deletion,
            "error": error,
        }

    return rows_frame(
        [
            row("1", "exhaustive", 1, 2, [(3,), (1,)], [True, False, None], 4),
            row("1", "attention", 2, None, [(2, 3)], [False, True, None], 2),
            row("1", "recency", 1, 3, [(1,)], [True, True, None], 1),
            row("2", "exhaustive", 2, 3, [(0, 1)], [False, True, True], 6),
            row("2", "attention", None, None, [], [False, False, False], 3),
            row("2", "recency", None, None, [], [], 1, error="InvalidInputError: boom"),
        ]
    )


def test_summary_equals_hand_computed_values():
    s = summarize(_hand_rows())
    assert list(s.index) == ["exhaustive", "attention", "recency"]
    att, rec, ex = s.loc["attention"], s.loc["recency"], s.loc["exhaustive"]
    assert (att["users"], att["errors"], rec["users"], rec["errors"]) == (2, 0, 1, 1)
    assert att["valid_share"] == 0.5 and rec["valid_share"] == 1.0 and ex["valid_share"] == 1.0
    assert ex["size_mean"] == 1.5 and ex["size_median"] == 1.5 and ex["size_1_share"] == 0.5
    assert att["size_mean"] == 2.0 and att["size_1_share"] == 0.0
    assert ex["replacement_rank_mean"] == 2.5 and ex["replacement_outside_share"] == 0.0
    assert math.isnan(att["replacement_rank_mean"]) and att["replacement_outside_share"] == 1.0
    # inside the top-k, over every user (no explanation counts as 0)
    assert ex["replacement_inside_share"] == 1.0 and rec["replacement_inside_share"] == 1.0
    assert att["replacement_inside_share"] == 0.0
    assert att["model_calls_mean"] == 2.5 and att["seconds_mean"] == 1.25
    assert att["histories_scored_mean"] == 5.0 and ex["model_calls_mean"] == 5.0
    # optimum: user 1 size 1, sets {(3,), (1,)}; user 2 size 2, set {(0, 1)}
    assert att["optimum_users"] == 2 and att["optimum_size_share"] == 0.0
    assert rec["optimum_users"] == 1 and rec["optimum_size_share"] == 1.0
    assert rec["optimum_set_share"] == 1.0  # (1,) is the second optimal set of user 1
    assert ex["optimum_size_share"] == 1.0 and ex["optimum_set_share"] == 1.0
    # deletion: m=3 is undefined for user 1 (None) and counts only user 2
    assert list(deletion_curve(_hand_rows()).loc["attention"]) == [0.0, 0.5, 0.0]
    assert (att["deletion_1"], att["deletion_2"], att["deletion_3"]) == (0.0, 0.5, 0.0)
    assert (ex["deletion_1"], ex["deletion_2"], ex["deletion_3"]) == (0.5, 0.5, 1.0)
    assert (rec["deletion_1"], rec["deletion_2"]) == (1.0, 1.0) and math.isnan(rec["deletion_3"])


def test_summary_of_real_rows_equals_pandas_by_hand(reference):
    s = summarize(reference)
    for name, group in reference.groupby("explainer"):
        valid = group[group["valid"]]
        assert s.loc[name, "valid_share"] == pytest.approx(group["valid"].mean())
        if len(valid):
            assert s.loc[name, "size_mean"] == pytest.approx(valid["size"].astype(float).mean())
        assert s.loc[name, "model_calls_mean"] == pytest.approx(group["model_calls"].mean())
        for m in range(1, 6):
            flags = [d[m - 1] for d in group["deletion"] if d[m - 1] is not None]
            assert s.loc[name, f"deletion_{m}"] == pytest.approx(np.mean(flags))
    # exhaustive is the optimum: never larger than any other explainer's explanation
    ex = reference[reference["explainer"] == "exhaustive"].set_index("user")["size"]
    for _, row in reference[reference["valid"]].iterrows():
        assert ex[row["user"]] is not pd.NA and ex[row["user"]] <= row["size"]
    assert s.loc["exhaustive", "optimum_set_share"] == 1.0


def test_resume_after_a_stop_gives_the_same_rows(sasrec, reference, tmp_path):
    out = tmp_path / "run"

    def stop(index, rows):
        raise KeyboardInterrupt  # as if killed after the first saved chunk

    with pytest.raises(KeyboardInterrupt):
        evaluate(sasrec, FAST, users=5, chunk_size=2, out=out, on_chunk=stop, plots=False)
    assert sorted(p.name for p in (out / "journal").iterdir()) == ["part-000000.jsonl"]
    assert not (out / "rows.csv").exists()
    stale = out / "journal" / ".part-000001.jsonl.abc.tmp"  # a write cut short by a kill
    stale.write_text('{"user": "half')
    seen: list[int] = []
    rows = evaluate(
        sasrec, FAST, users=5, chunk_size=2, out=out, plots=False,
        on_chunk=lambda i, r: seen.append(i),
    )  # fmt: skip
    assert seen == [1, 2]  # the saved chunk was not recomputed
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(reference))
    assert not list(out.rglob("*.tmp"))
    # a third run has nothing left to do and returns the same rows
    again = evaluate(sasrec, FAST, users=5, chunk_size=2, out=out, plots=False)
    pd.testing.assert_frame_equal(_untimed(again), _untimed(rows))


def test_outputs_are_written(sasrec, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "run"
    rows = evaluate(sasrec, ["recency", "exhaustive"], users=3, out=out)
    for name in ("rows.csv", "summary.md", "summary.json", "sizes.png", "deletion.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "replacement_rank.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pq.read_table(str(out / "rows.parquet"))  # a path: see results/README.md
    assert table.num_rows == 6 and table.column_names == list(COLUMNS)
    csv = pd.read_csv(out / "rows.csv", dtype={"user": str})
    assert list(csv["user"]) == list(rows["user"])
    assert [json.loads(d) for d in csv["deletion"]] == list(rows["deletion"])
    summary = json.loads((out / "summary.json").read_text())
    assert [r["explainer"] for r in summary["summary"]] == ["recency", "exhaustive"]
    assert (
        summary["summary"][0]["valid_share"] == rows[rows["explainer"] == "recency"]["valid"].mean()
    )
    assert summary["manifest"]["arguments"]["n_users"] == 3
    assert "| recency |" in (out / "summary.md").read_text()


def test_other_arguments_in_the_same_out_are_refused(sasrec, tmp_path):
    out = tmp_path / "run"
    evaluate(sasrec, ["recency"], users=2, out=out, plots=False)
    with pytest.raises(InvalidInputError, match="max_size"):
        evaluate(sasrec, ["recency"], users=2, max_size=3, out=out, plots=False)
    rows = evaluate(sasrec, ["recency"], users=2, max_size=3, out=out, overwrite=True, plots=False)
    assert json.loads((out / "manifest.json").read_text())["arguments"]["max_size"] == 3
    assert len(rows) == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="not empty"):
        evaluate(sasrec, ["recency"], users=2, out=tmp_path / "other", plots=False)


def test_a_tampered_journal_part_is_detected(sasrec, tmp_path):
    out = tmp_path / "run"
    evaluate(sasrec, ["recency"], users=2, chunk_size=1, out=out, plots=False)
    part = out / "journal" / "part-000001.jsonl"
    part.write_text(part.read_text() * 2)  # the chunk's rows twice
    with pytest.raises(RecausalError, match="part-000001"):
        evaluate(sasrec, ["recency"], users=2, chunk_size=1, out=out, plots=False)


def test_failing_explainer_gives_error_rows_left_out_of_measures(sasrec, monkeypatch):
    from recausal.explain.baselines import RecencyExplainer

    class Picky(RecencyExplainer):
        name = "picky"

        def explain_many(self, model, histories, k=10, **targets):
            if any(len(h) % 2 for h in histories):
                raise InvalidInputError("odd history length")
            return super().explain_many(model, histories, k, **targets)

    monkeypatch.setitem(EXPLAINERS, "picky", Picky)
    rows = evaluate(sasrec, ["picky"], users=8, chunk_size=8)
    odd = rows["history_used"] % 2 == 1
    assert odd.any() and (~odd).any()
    assert rows.loc[odd, "error"].str.contains("odd history length").all()
    assert rows.loc[~odd, "error"].isna().all()
    assert summarize(rows).loc["picky", "errors"] == int(odd.sum())
    assert summarize(rows).loc["picky", "users"] == int((~odd).sum())


def test_users_from_a_file_and_bad_users(sasrec, tmp_path):
    users = resolve_users(sasrec, "all")
    path = tmp_path / "users.txt"
    path.write_text(f"# chosen\n{users[3]}\n\n{users[0]}\n")
    rows = evaluate(sasrec, ["recency"], users=path)
    assert list(rows["user"]) == [users[3], users[0]]
    for bad in ("some", 0, [users[0], users[0]], ["no-such-user"], tmp_path / "missing"):
        with pytest.raises(InvalidInputError):
            evaluate(sasrec, ["recency"], users=bad)
    with pytest.raises(InvalidInputError, match="unknown explainer"):
        evaluate(sasrec, ["recency", "nope"], users=2)
    with pytest.raises(InvalidInputError, match="engine"):
        evaluate(sasrec, ["recency"], users=2, engine="spark")


def test_default_explainers_match_the_cli():
    from recausal.evaluate.cli import DEFAULT_EXPLAINERS as CLI_DEFAULT

    assert ",".join(DEFAULT_EXPLAINERS) == CLI_DEFAULT


def test_worker_processes_give_the_same_rows(sasrec_bundle, sasrec, reference):
    rows = evaluate(sasrec_bundle, FAST, users=5, chunk_size=2, workers=2)
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(reference))


def test_ray_engine_gives_the_same_rows(sasrec_bundle, reference):
    ray = pytest.importorskip("ray")
    rows = evaluate(sasrec_bundle, FAST, users=5, chunk_size=2, engine="ray", workers=1)
    assert not ray.is_initialized()  # shut down after the run
    pd.testing.assert_frame_equal(_untimed(rows), _untimed(reference))


def test_cli_runs_and_bad_arguments_exit_2(sasrec_bundle, tmp_path):
    out = tmp_path / "cli"
    base = ["evaluate", "-m", str(sasrec_bundle), "--out", str(out), "-q"]
    result = CliRunner().invoke(cli, [*base, "--explainers", "recency", "--users", "2"])
    assert result.exit_code == 0, result.output
    assert "| recency |" in result.output and (out / "summary.md").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"].startswith("recausal evaluate --model ")
    bad = [
        ["--explainers", "recency,nope", "--users", "2"],
        ["--explainers", "recency", "--users", "many"],
        ["--explainers", "recency", "--users", "0"],
        ["--explainers", "recency", "--users", "2", "--max-size", "0"],
        ["--explainers", "recency", "--users", "2", "--engine", "spark"],
        ["--explainers", "recency", "--users", "3"],  # other arguments, same --out
    ]
    for args in bad:
        result = CliRunner().invoke(cli, [*base, *args])
        assert result.exit_code == 2, (args, result.output)


def test_graph_size_is_recorded_for_explainers_with_a_graph(sasrec, monkeypatch):
    import dataclasses

    from recausal.explain.baselines import RecencyExplainer

    class Graph:
        n_nodes = 7

        def edges(self):
            return [(0, 1), (1, 2), (2, 6)]

    class WithGraph(RecencyExplainer):
        name = "with-graph"

        def explain_many(self, model, histories, k=10):
            found = super().explain_many(model, histories, k)
            return [dataclasses.replace(e, graph=Graph()) for e in found]

    monkeypatch.setitem(EXPLAINERS, "with-graph", WithGraph)
    rows = evaluate(sasrec, ["with-graph", "recency"], users=2)
    graph = rows[rows["explainer"] == "with-graph"]
    assert list(graph["graph_nodes"]) == [7.0, 7.0] and list(graph["graph_edges"]) == [3.0, 3.0]
    assert rows.loc[rows["explainer"] == "recency", "graph_nodes"].isna().all()
    assert summarize(rows).loc["with-graph", "graph_edges_mean"] == 3.0


def test_the_dev_and_held_out_halves_split_the_users_in_a_fixed_way(sasrec):
    every = resolve_users(sasrec, "all")
    dev, held_out = resolve_users(sasrec, "dev"), resolve_users(sasrec, "held-out")
    assert dev == every[0::2] and held_out == every[1::2]
    assert not set(dev) & set(held_out) and sorted(dev + held_out) == sorted(every)
