"""The relradar command line: classify JSONL, schema, and clear errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from stream_jobs.cli import main


def test_classify_reads_jsonl_and_writes_one_line_per_input() -> None:
    lines = [
        {"id": 1, "text": "boycott them, worst ever"},
        {"id": "b", "text": "how do I get a refund?"},
        {"id": 3, "text": ""},
    ]
    result = CliRunner().invoke(
        main,
        ["classify", "--classifier", "lexicon"],
        input="\n".join(json.dumps(x) for x in lines) + "\nnot json\n",
    )
    out = [json.loads(x) for x in result.stdout.splitlines()]
    assert result.exit_code == 1  # some lines could not be classified
    assert [o.get("label") for o in out if "label" in o] == ["enemies", "basic_exchange"]
    assert {o["id"] for o in out if "label" in o} == {1, "b"}
    assert sum("error" in o for o in out) == 2
    assert abs(sum(out[0]["scores"].values()) - 1) < 1e-3


def test_schema_command_prints_the_envelope_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0 and json.loads(result.stdout)["title"] == "Envelope"


def test_sql_without_a_service_says_how_to_start_one(tmp_path: object) -> None:
    result = CliRunner().invoke(
        main, ["sql", "--data-dir", str(tmp_path), "--http-port", "1", "SELECT 1"]
    )
    assert result.exit_code == 1 and "relradar run" in result.output


def test_replay_rejects_an_unknown_source() -> None:
    result = CliRunner().invoke(main, ["replay", "nothing-here"])
    assert result.exit_code == 2 and "neither a preset" in result.output
