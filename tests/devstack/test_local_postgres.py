"""The local PostgreSQL is a real, isolated server: separate databases per
test, nothing left behind on stop, and no running as root."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

from processor.devstack.postgres import LocalPostgres

pytestmark = pytest.mark.integration


def test_databases_are_separate_and_stop_removes_everything() -> None:
    server = LocalPostgres().start()
    data_dir = server._tmp
    assert data_dir is not None
    try:
        first = server.create_database("devstack_one")
        second = server.create_database("devstack_two")
        with psycopg.connect(first) as conn:
            conn.execute("create table t (x int)")
            conn.execute("insert into t values (1)")
            row = conn.execute("select current_setting('data_directory')").fetchone()
            assert row is not None and Path(row[0]).is_relative_to(data_dir)
        with psycopg.connect(second) as conn:
            found = conn.execute("select to_regclass('public.t')").fetchone()
            assert found == (None,)
        with pytest.raises(ValueError):
            server.create_database("Robert'); drop table students;--")
        if os.geteuid() == 0:
            assert data_dir.stat().st_uid != 0
    finally:
        server.stop()
    assert not server.running
    assert not data_dir.exists()
