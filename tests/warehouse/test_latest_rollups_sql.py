"""The latest-rollups query on a real PostgreSQL, against the table the draft
rollup sink would create (its columns read from that sink's Connect schema).

Both are drafts until forecast.rollups records exist; this keeps the query
valid and in step with the draft configuration meanwhile.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .conftest import NewDatabase
from .support import connector, sql

pytestmark = pytest.mark.integration

_PG_TYPES = {"string": "text", "double": "double precision", "int32": "integer",
             "int64": "bigint", "boolean": "boolean"}
T0 = datetime(2026, 7, 1, tzinfo=UTC)


def _create_table(conn: Any) -> list[str]:
    config = connector("rollups.jdbc-sink.draft.json")["config"]
    fields = json.loads(config["value.converter.schema.content"])["fields"]
    columns = [
        f"{f['field']} "
        + ("timestamptz" if f.get("name") == "io.debezium.time.ZonedTimestamp"
           else _PG_TYPES[f["type"]])
        + ("" if f["optional"] else " not null")
        for f in fields
    ]
    keys = config["primary.key.fields"]
    conn.execute(f"create table forecast_rollups ({', '.join(columns)}, primary key ({keys}))")
    return [f["field"] for f in fields]


def test_latest_rollups_apply_overrides_with_their_reason(new_database: NewDatabase) -> None:
    _, conn = new_database()
    names = _create_table(conn)

    def rollup(manager: str, category: str, total: float, **values: Any) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(names)
        row.update(manager_id=manager, period="FY2026-Q3", forecast_category=category,
                   currency="USD", opportunity_count=3, system_total=total, as_of=T0)
        row.update(values)
        return row

    rows = [
        rollup("m-1", "Commit", 50_000.0),
        rollup("m-1", "Best Case", 20_000.0, override_total=35_000.0,
               override_reason="two renewals confirmed verbally", override_by="m-1",
               override_at=T0 + timedelta(hours=2), as_of=T0 + timedelta(hours=2)),
        rollup("m-2", "Commit", 10_000.0),
    ]
    placeholders = ", ".join(f"%({n})s" for n in names)
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into forecast_rollups ({', '.join(names)}) values ({placeholders})", rows
        )
    conn.commit()

    with conn.cursor() as cur:
        cur.execute(
            "select manager_id, forecast_category, system_total, forecast_total, override_reason "
            f"from ({sql('latest_rollups.sql')}) as latest order by manager_id, forecast_category"
        )
        assert cur.fetchall() == [
            ("m-1", "Best Case", 20_000.0, 35_000.0, "two renewals confirmed verbally"),
            ("m-1", "Commit", 50_000.0, 50_000.0, None),
            ("m-2", "Commit", 10_000.0, 10_000.0, None),
        ]
