"""Filler detection: values that satisfy a required field without meaning
anything. Reps under gate pressure type "tbd" or "asdf"; counting those as
filled would teach the team that gates can be gamed."""

from __future__ import annotations

import re
from typing import Any

from processor.core import fields as f


class JunkDetector:
    __slots__ = ("_dates", "_min_length", "_pattern", "_values")

    def __init__(
        self, values: list[str], patterns: list[str], placeholder_dates: list[str], min_length: int
    ) -> None:
        self._values = frozenset(v.casefold() for v in values)
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if (
            patterns
        ) else None
        self._dates = frozenset(placeholder_dates)
        self._min_length = min_length

    def is_junk(self, field: str, value: Any) -> bool:
        if field in f.DATE_FIELDS:
            return isinstance(value, str) and value in self._dates
        if not isinstance(value, str):
            return False
        text = value.strip()
        if len(text) < self._min_length or text.casefold() in self._values:
            return True
        return bool(self._pattern and self._pattern.fullmatch(text))

    def is_placeholder_date(self, value: Any) -> bool:
        return isinstance(value, str) and value in self._dates


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
