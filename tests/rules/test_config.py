"""Loading rules files: the default is valid, errors name file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from processor.rules import DEFAULT_RULES_PATH, RulesError, default_rules, load_rules


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def default_data() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(DEFAULT_RULES_PATH.read_text())  # type: ignore[no-any-return]


def test_default_rules_describe_a_meddicc_pipeline() -> None:
    rules = default_rules()
    pipeline = rules.default_pipeline
    assert [s.name for s in pipeline.stages][:5] == [
        "Prospecting", "Discovery", "Solution", "Proposal", "Negotiation"]
    negotiation = pipeline.required_by_position[pipeline.position_of("Negotiation") or 0]
    for field in ("metrics", "economic_buyer", "decision_criteria", "decision_process",
                  "paper_process", "identify_pain", "champion", "competition"):
        assert field in negotiation
    assert rules.pipeline_for("default") is pipeline
    assert rules.pipeline_for("nonexistent") is pipeline
    assert rules.pipeline_for("renewal").id == "renewals"


def test_error_names_file_key_and_problem(tmp_path: Path) -> None:
    data = default_data()
    data["pipelines"][0]["stages"][1]["stale_after_days"] = "soon"
    data["pipelines"][1]["thresholds"]["close_out"]["no_activity_dayz"] = 3
    path = write(tmp_path, data)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    text = str(info.value)
    assert str(path) in text
    assert "pipelines[0](new_business).stages[1](Discovery).stale_after_days" in text
    assert "pipelines[1](renewals).thresholds.close_out.no_activity_dayz" in text
    assert "Extra inputs are not permitted" in text


def test_cross_field_errors(tmp_path: Path) -> None:
    data = default_data()
    data["pipelines"][0]["thresholds"]["next_meeting_required_from"] = "Demo"
    with pytest.raises(RulesError, match="next_meeting_required_from: 'Demo' is not a stage"):
        load_rules(write(tmp_path, data))
    data = default_data()
    data["pipelines"][0]["severity"] = {"stale_foo": "high"}
    with pytest.raises(RulesError, match="unknown rule id 'stale_foo'"):
        load_rules(write(tmp_path, data))
    data = default_data()
    data["pipelines"][1]["stages"][0]["aliases"] = ["Prospecting", "Engaged"]
    with pytest.raises(RulesError, match="'Engaged' belongs to both"):
        load_rules(write(tmp_path, data))


def test_bad_regex_and_bad_yaml(tmp_path: Path) -> None:
    data = default_data()
    data["junk"]["patterns"] = ["(unclosed"]
    with pytest.raises(RulesError, match=r"junk.patterns: .*does not compile"):
        load_rules(write(tmp_path, data))
    with pytest.raises(RulesError, match="not valid YAML at line 3, column 3"):
        load_rules(write(tmp_path, "version: 1\npipelines: [\n  - {id: x\n"))
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    with pytest.raises(RulesError, match="mapping at the top level"):
        load_rules(write(tmp_path, "- just a list\n"))


def test_an_unknown_time_zone_is_named(tmp_path: Path) -> None:
    data = default_data()
    data["timezone"] = "Europe/Atlantis"
    with pytest.raises(RulesError, match=r"timezone: .*unknown time zone 'Europe/Atlantis'"):
        load_rules(write(tmp_path, data))
    data["timezone"] = "Europe/Berlin"
    assert load_rules(write(tmp_path, data)).days.iso_day(0) == "1970-01-01"


def test_owner_managers_fill_in_a_missing_manager(tmp_path: Path) -> None:
    data = default_data()
    data["owner_managers"] = {"005REP1": "005MGR9"}
    rules = load_rules(write(tmp_path, data))
    assert rules.manager_of({"owner_id": "005REP1"}) == "005MGR9"
    assert rules.manager_of({"owner_id": "005REP1", "manager_id": "005OWN"}) == "005OWN"
    assert rules.manager_of({"owner_id": "005OTHER"}) is None
    data["owner_managers"] = {"005REP1": 7}
    with pytest.raises(RulesError, match=r"owner_managers\.005REP1"):
        load_rules(write(tmp_path, data))
