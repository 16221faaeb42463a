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
