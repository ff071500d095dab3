"""The committed connector configurations agree with the published record
schemas, and keep every credential in the environment.

The JDBC sinks give the JSON converter a Connect schema for records that are
published as plain JSON, so that schema is a second description of each
record: these tests make it follow ``schemas/*.schema.json``. A draft
configuration is checked the same way as soon as its record's schema is
published; until then that check is skipped, saying so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .support import CONNECT, ROOT, connector

SCHEMAS = ROOT / "schemas"
ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
CONFIGS = sorted(p.name for p in CONNECT.glob("*.json"))
JDBC_SINKS = {
    # connector file -> glob of the published JSON Schema of its records
    "stage-history.jdbc-sink.json": "stage-history.schema.json",
    "rollups.jdbc-sink.draft.json": "*rollup*.schema.json",
    "override-log.jdbc-sink.draft.json": "*override*log*.schema.json",
}


def _connect_fields(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schema = json.loads(config["value.converter.schema.content"])
    assert schema["type"] == "struct"
    return {f["field"]: f for f in schema["fields"]}


def _expected_connect_type(prop: dict[str, Any]) -> tuple[set[str], str | None, bool]:
    """(allowed Connect types, semantic name, optional) for one JSON Schema property."""
    variants = prop.get("anyOf", [prop])
    nullable = any(v.get("type") == "null" for v in variants)
    (value,) = [v for v in variants if v.get("type") != "null"]
    kind, fmt = value.get("type"), value.get("format")
    if kind == "string" and fmt == "date-time":
        return {"string"}, ZONED_TIMESTAMP, nullable
    types = {
        "string": {"string"},
        "integer": {"int32", "int64"},
        "number": {"double"},
        "boolean": {"boolean"},
    }[kind]
    return types, None, nullable


def test_every_config_file_is_a_connect_request_without_secrets() -> None:
    assert set(JDBC_SINKS) <= set(CONFIGS)
    for name in CONFIGS:
        body = connector(name)
        assert set(body) == {"name", "config"}, name
        for key, value in body["config"].items():
            assert isinstance(value, str), (name, key)
            if any(word in key for word in ("password", "secret", "username", "url")):
                assert value.startswith("${env:"), (name, key, value)


@pytest.mark.parametrize("name", sorted(JDBC_SINKS))
def test_jdbc_sinks_upsert_on_a_required_field(name: str) -> None:
    config = connector(name)["config"]
    assert config["connector.class"] == "io.debezium.connector.jdbc.JdbcSinkConnector"
    assert config["insert.mode"] == "upsert"
    assert config["primary.key.mode"] == "record_value"
    assert config["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert config["value.converter.schemas.enable"] == "true"
    fields = _connect_fields(config)
    for key in config["primary.key.fields"].split(","):
        assert fields[key]["optional"] is False, key


@pytest.mark.parametrize("name", sorted(JDBC_SINKS))
def test_connect_schema_follows_the_published_record_schema(name: str) -> None:
    found = sorted(SCHEMAS.glob(JDBC_SINKS[name]))
    if not found:
        pytest.skip(f"{name} is a draft: no {JDBC_SINKS[name]} is published yet")
    assert len(found) == 1, found
    published: dict[str, Any] = json.loads(Path(found[0]).read_text())
    properties: dict[str, dict[str, Any]] = published["properties"]
    fields = _connect_fields(connector(name)["config"])
    assert set(fields) == set(properties)
    for field_name, prop in properties.items():
        types, semantic, nullable = _expected_connect_type(prop)
        field = fields[field_name]
        assert field["type"] in types, (field_name, field, prop)
        assert field.get("name") == semantic, (field_name, field)
        assert field["optional"] is nullable, (field_name, field, prop)
        if not nullable and field_name not in published.get("required", []):
            assert field.get("default") == prop["default"], (field_name, field, prop)
