"""Session-wide PostgreSQL and Kafka Connect for the warehouse tests.

Each is started once per run, like the broker: a Connect worker takes
seconds to start, a connector only a moment. Tests isolate themselves with
their own database, topic and connector name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from processor.devstack.connect import LocalConnect
from processor.devstack.postgres import SUPERUSER, LocalPostgres
from tests.stream.support import Kafka

from .support import Published, published_history

NewDatabase = Callable[[], tuple[str, psycopg.Connection[Any]]]

WAREHOUSE_ENV = {
    # What the committed connector configuration reads through Connect's env
    # config provider; trust authentication ignores the password.
    "HYGIENE_WAREHOUSE_USER": SUPERUSER,
    "HYGIENE_WAREHOUSE_PASSWORD": "unused-with-trust-authentication",
}


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    with LocalPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def connect(kafka_bootstrap: str) -> Iterator[LocalConnect]:
    with LocalConnect(kafka_bootstrap, env=WAREHOUSE_ENV) as worker:
        yield worker


@pytest.fixture
def kafka(kafka_bootstrap: str) -> Iterator[Kafka]:
    with Kafka(kafka_bootstrap) as client:
        yield client


@pytest.fixture(scope="session")
def published() -> Published:
    return published_history()


@pytest.fixture
def new_database(postgres: LocalPostgres) -> Iterator[NewDatabase]:
    """``new_database()``: a fresh database and an open connection to it."""
    opened: list[psycopg.Connection[Any]] = []

    def make() -> tuple[str, psycopg.Connection[Any]]:
        name = f"wh_{uuid.uuid4().hex[:12]}"
        dsn = postgres.create_database(name)
        conn = psycopg.connect(dsn)
        opened.append(conn)
        return name, conn

    yield make
    for conn in opened:
        conn.close()
