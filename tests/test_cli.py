"""The command line: JSON output and clean errors."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from recausal.cli import cli


def test_recommend_json_has_k_items(sasrec_bundle):
    result = CliRunner().invoke(
        cli, ["recommend", "--model", str(sasrec_bundle), "--user", "1", "-k", "4", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["k"] == 4 and len(payload["recommendations"]) == 4
    assert [r["rank"] for r in payload["recommendations"]] == [1, 2, 3, 4]


def test_recommend_text_for_a_history(sasrec_bundle, planted):
    cause = next(iter(planted.cause_to_effect))
    result = CliRunner().invoke(cli, ["recommend", "-m", str(sasrec_bundle), "--history", cause])
    assert result.exit_code == 0 and "Top 10" in result.stdout


def test_bad_input_exits_2_with_one_line(sasrec_bundle):
    cases = [
        ["recommend", "-m", str(sasrec_bundle), "--history", "no-such-item"],
        ["recommend", "-m", str(sasrec_bundle), "--user", "no-such-user"],
        ["recommend", "-m", str(sasrec_bundle), "--user", "1", "--history", "1"],
        ["recommend", "-m", str(sasrec_bundle) + "-missing", "--user", "1"],
        ["recommend", "-m", str(sasrec_bundle), "--user", "1", "-k", "0"],
    ]
    for args in cases:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stdout == ""
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_real_process_prints_no_traceback(sasrec_bundle):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "recausal.cli",
            "recommend",
            "-m",
            str(sasrec_bundle),
            "--history",
            "no-such-item",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "recausal: error: item 'no-such-item' (history position 0) is not known to model "
        f"{sasrec_bundle.name}"
    )


def test_explain_text_json_and_html(sasrec_bundle, tmp_path):
    runner = CliRunner()
    text = runner.invoke(cli, ["explain", "-m", str(sasrec_bundle), "--user", "2"])
    assert text.exit_code == 0, text.output
    assert "Recommended:" in text.stdout and "model calls" in text.stdout
    as_json = runner.invoke(
        cli,
        [
            "explain",
            "-m",
            str(sasrec_bundle),
            "--user",
            "2",
            "--explainer",
            "occlusion",
            "--max-size",
            "2",
            "--json",
        ],
    )
    payload = json.loads(as_json.stdout)
    assert payload["explainer"] == "occlusion" and payload["max_size"] == 2
    page = tmp_path / "page.html"
    html = runner.invoke(
        cli, ["explain", "-m", str(sasrec_bundle), "--user", "2", "--html", str(page)]
    )
    assert html.exit_code == 0 and page.read_text().lstrip().lower().startswith("<!doctype html")


def test_graph_json_and_svg(sasrec_bundle, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["graph", "-m", str(sasrec_bundle), "--user", "2", "--json"])
    assert result.exit_code == 0, result.output
    pag = json.loads(result.stdout)
    assert sum(node["is_target"] for node in pag["nodes"]) == 1
    assert pag["nodes"][-1]["is_target"] and len(pag["nodes"]) >= 2
    svg = tmp_path / "g.svg"
    drawn = runner.invoke(
        cli, ["graph", "-m", str(sasrec_bundle), "--user", "2", "--head", "1", "--svg", str(svg)]
    )
    assert drawn.exit_code == 0 and svg.read_text().count("data-node=") == len(pag["nodes"])
    bad = runner.invoke(cli, ["graph", "-m", str(sasrec_bundle), "--user", "2", "--head", "9"])
    assert bad.exit_code == 2
