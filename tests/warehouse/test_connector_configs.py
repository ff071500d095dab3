"""The committed connector configurations agree with the published record
schemas, and keep every credential in the environment.

The JDBC sinks give the JSON converter a Connect schema for records that are
published as plain JSON, so that schema is a second description of each
record: these tests make it follow ``schemas/*.schema.json``, nested
structs and arrays included (the override ledger's, which a stock
ReplaceField transform then drops before the sink, since the JDBC sink maps
only primitive fields to columns).
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
    "rollup-rows.jdbc-sink.json": "rollup-row.schema.json",
    "override-log.jdbc-sink.json": "override-log.schema.json",
}
DROP_FIELDS = "org.apache.kafka.connect.transforms.ReplaceField$Value"


def _connect_fields(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    schema = json.loads(config["value.converter.schema.content"])
    assert schema["type"] == "struct"
    return {f["field"]: f for f in schema["fields"]}


def _property_type(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the non-null JSON Schema of a property, with its reference resolved; nullable)."""
    variants = prop.get("anyOf", [prop])
    nullable = any(v.get("type") == "null" for v in variants)
    (value,) = [v for v in variants if v.get("type") != "null"]
    if "$ref" in value:
        value = defs[value["$ref"].removeprefix("#/$defs/")]
    return value, nullable


def _check_field(field: dict[str, Any], prop: dict[str, Any], defs: dict[str, Any],
                 required: bool, where: str) -> None:
    """One Connect field (or array item) against its JSON Schema property,
    nested structs and arrays included."""
    value, nullable = _property_type(prop, defs)
    kind, fmt = value.get("type"), value.get("format")
    assert field["optional"] is nullable, (where, field, prop)
    if not nullable and not required:
        assert field.get("default") == prop["default"], (where, field, prop)
    if kind == "string" and fmt == "date-time":
        assert (field["type"], field.get("name")) == ("string", ZONED_TIMESTAMP), (where, field)
        return
    if kind == "object":
        assert field["type"] == "struct", (where, field)
        _check_struct(field, value, defs, where)
        return
    if kind == "array":
        assert field["type"] == "array", (where, field)
        _check_field(field["items"], value["items"], defs, True, f"{where}[]")
        return
    types = {
        "string": {"string"},
        "integer": {"int32", "int64"},
        "number": {"double"},
        "boolean": {"boolean"},
    }[kind]
    assert field["type"] in types, (where, field, prop)
    assert field.get("name") is None, (where, field)


def _check_struct(struct: dict[str, Any], schema: dict[str, Any], defs: dict[str, Any],
                  where: str) -> None:
    fields = {f["field"]: f for f in struct["fields"]}
    properties: dict[str, dict[str, Any]] = schema["properties"]
    assert set(fields) == set(properties), where
    for name, prop in properties.items():
        _check_field(fields[name], prop, defs, name in schema.get("required", []),
                     f"{where}.{name}")


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
    # Every sink's record schema is published now: a missing one is a
    # failure, never a skip that would let the sink drift unchecked.
    found = sorted(SCHEMAS.glob(JDBC_SINKS[name]))
    assert len(found) == 1, (name, JDBC_SINKS[name], found)
    published: dict[str, Any] = json.loads(Path(found[0]).read_text())
    schema = json.loads(connector(name)["config"]["value.converter.schema.content"])
    assert (schema["type"], schema["optional"]) == ("struct", False)
    _check_struct(schema, published, published.get("$defs", {}), name)


@pytest.mark.parametrize("name", sorted(JDBC_SINKS))
def test_what_reaches_the_jdbc_sink_is_flat(name: str) -> None:
    """The JDBC sink maps primitive fields to columns only: every nested
    field of a record is dropped by a stock ReplaceField transform."""
    config = connector(name)["config"]
    fields = _connect_fields(config)
    nested = sorted(n for n, f in fields.items() if f["type"] in ("struct", "array", "map"))
    dropped: list[str] = []
    for transform in filter(None, config.get("transforms", "").split(",")):
        if config[f"transforms.{transform}.type"] == DROP_FIELDS:
            dropped += config[f"transforms.{transform}.exclude"].split(",")
    assert sorted(dropped) == nested
    keys = config["primary.key.fields"].split(",")
    assert not set(keys) & set(dropped)
