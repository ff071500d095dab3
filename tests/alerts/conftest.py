"""Per test: its own Redis key prefix on the session's Redis server."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"t:{request.node.name[:30]}:{uuid.uuid4().hex[:8]}:"
