"""Fixtures for the source normalizers: vendor payloads as recorded bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.sources.base import DecodeResult
from processor.sources.detect import decode
from processor.sources.mapping import FieldMappings

PAYLOADS = Path(__file__).with_name("payloads")


@pytest.fixture
def mappings() -> FieldMappings:
    return FieldMappings()


@pytest.fixture
def payload() -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (PAYLOADS / name).read_bytes()

    return read


@pytest.fixture
def document(payload: Callable[[str], bytes]) -> Callable[[str], Any]:
    """A payload parsed, for tests that edit one key before decoding."""

    def read(name: str) -> Any:
        return orjson.loads(payload(name))

    return read


@pytest.fixture
def run(mappings: FieldMappings) -> Callable[[Any], DecodeResult]:
    """Decodes bytes as they are, anything else serialized first."""

    def go(message: Any) -> DecodeResult:
        raw = message if isinstance(message, bytes) else orjson.dumps(message)
        return decode(raw, mappings)

    return go
