"""Filler detection: values that satisfy a required field without meaning
anything. Reps under gate pressure type "tbd" or "asdf"; counting those as
filled would teach the team that gates can be gamed."""

from __future__ import annotations

import re
from typing import Any

from processor.core import fields as f


class JunkDetector:
    """Verdicts on text are memoized: the same MEDDICC answer is re-checked on
    every event of its deal, and a regex per value per event adds up."""

    __slots__ = ("_dates", "_memo", "_min_length", "_pattern", "_values")
    _MEMO_LIMIT = 200_000

    def __init__(
        self, values: list[str], patterns: list[str], placeholder_dates: list[str], min_length: int
    ) -> None:
        self._values = frozenset(v.casefold() for v in values)
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if (
            patterns
        ) else None
        self._dates = frozenset(placeholder_dates)
        self._min_length = min_length
        self._memo: dict[str, bool] = {}

    def is_junk(self, field: str, value: Any) -> bool:
        if field in f.DATE_FIELDS:
            return isinstance(value, str) and value in self._dates
        if not isinstance(value, str):
            return False
        verdict = self._memo.get(value)
        if verdict is None:
            if len(self._memo) >= self._MEMO_LIMIT:
                self._memo.clear()
            verdict = self._memo[value] = self._judge(value)
        return verdict

    def _judge(self, value: str) -> bool:
        text = value.strip()
        if len(text) < self._min_length or text.casefold() in self._values:
            return True
        return bool(self._pattern and self._pattern.fullmatch(text))

    def is_placeholder_date(self, value: Any) -> bool:
        return isinstance(value, str) and value in self._dates


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
