"""The command line, as a user runs it."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
from click.testing import CliRunner

from processor.cli import main
from processor.rules import DEFAULT_RULES_PATH


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_rules_check_accepts_the_default_file() -> None:
    code, output = invoke("rules", "check", str(DEFAULT_RULES_PATH))
    assert code == 0
    assert "rule-set version 2026.11-default.1" in output
    assert "pipeline new_business (default): Prospecting -> Discovery" in output


def test_rules_check_rejects_a_bad_file_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_RULES_PATH.read_text().replace("stale_after_days: 14",
                                                          "stale_after_days: fourteen", 1))
    code, output = invoke("rules", "check", str(bad))
    assert code == 2
    assert "pipelines[0](new_business).stages[0](Prospecting).stale_after_days" in output
    assert "Traceback" not in output


def test_simulate_then_replay_writes_outputs_and_report(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    code, output = invoke("simulate", "-n", "60", "-d", "60", "--seed", "5", "--format",
                          "mixed", "--start", "2026-03-01", "--out", str(events))
    assert code == 0, output
    lines = events.read_bytes().splitlines()
    assert len(lines) > 60
    events.write_bytes(b"\n".join([*lines, b"{broken"]) + b"\n")

    out = tmp_path / "out"
    code, output = invoke("replay", str(events), "--out", str(out), "--as-of", "2026-04-30")
    assert code == 0, output
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    history = [orjson.loads(x) for x in (out / "stage-history.jsonl").read_bytes().splitlines()]
    dead = [orjson.loads(x) for x in (out / "dead-letter.jsonl").read_bytes().splitlines()]
    assert alerts and all(a["ruleset_version"] == "2026.11-default.1" for a in alerts)
    assert history and all(h["record_id"] for h in history)
    assert [d["reason"] for d in dead] == ["malformed_json"]
    assert dead[0]["offset"] == len(lines) + 1
    report = (out / "audit-report.html").read_text()
    assert "<svg" in report and "Pipeline hygiene audit" in report
    assert "1 dead letter" in output


def test_replay_reads_a_bulk_csv_export(tmp_path: Path) -> None:
    export = tmp_path / "opps.csv"
    with export.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Id", "Name", "StageName", "Amount", "CloseDate", "OwnerId",
                         "LastModifiedDate"])
        writer.writerow(["006000000000001AAA", "Globex", "Negotiation", "0", "2026-05-01",
                         "005000000000001AAA", "2026-04-01T10:00:00Z"])
        writer.writerow(["006000000000002AAA", "Initech", "Prospecting", "5000", "2026-06-01",
                         "005000000000001AAA", "2026-04-01T10:00:00Z"])
    out = tmp_path / "out"
    code, output = invoke("replay", str(export), "--out", str(out), "--as-of", "2026-04-02",
                          "--no-report")
    assert code == 0, output
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    by_opp = {(a["opportunity_id"], a["rule_id"]) for a in alerts}
    assert ("006000000000001AAA", "amount_invalid") in by_opp
    assert ("006000000000001AAA", "stage_gate_missing_fields") in by_opp
    assert not any(opp == "006000000000002AAA" for opp, _ in by_opp)


def test_replay_reads_a_json_lines_export_and_dead_letters_its_bad_rows(tmp_path: Path) -> None:
    export = Path(__file__).parent / "sources" / "payloads" / "bulk_export.jsonl"
    out = tmp_path / "out"
    code, output = invoke("replay", "--export", str(export), "--out", str(out),
                          "--as-of", "2024-05-02", "--no-report")
    assert code == 0, output
    history = [orjson.loads(x) for x in (out / "stage-history.jsonl").read_bytes().splitlines()]
    dead = [orjson.loads(x) for x in (out / "dead-letter.jsonl").read_bytes().splitlines()]
    assert {h["opportunity_id"] for h in history} >= {"18420399216", "deal-4411"}
    assert sorted(d["reason"] for d in dead) == ["malformed_json", "schema_violation"]
    assert "Traceback" not in output


def test_replay_without_any_input_is_a_usage_error() -> None:
    code, output = invoke("replay", "--no-report")
    assert code == 2
    assert "at least one input" in output
