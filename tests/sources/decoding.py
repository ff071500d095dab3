"""Assertions shared by the source tests: one decoded change, or one reject."""

from __future__ import annotations

from processor.sources.base import DecodeResult
from schemas.change import OpportunityChange


def only_change(result: DecodeResult) -> OpportunityChange:
    assert (result.rejects, result.ignored) == ([], 0)
    assert len(result.changes) == 1
    return result.changes[0]


def only_reject(result: DecodeResult) -> tuple[str, str]:
    assert result.changes == []
    assert len(result.rejects) == 1
    return result.rejects[0].reason, result.rejects[0].error
