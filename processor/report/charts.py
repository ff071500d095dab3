"""Inline SVG charts for the audit report.

Pure functions from numbers to SVG text. The report is forwarded by mail and
printed, so a chart must stand on its own: no script, no external font or
stylesheet, fixed geometry in a ``viewBox`` so it scales to the page, and a
``<title>`` on every bar so the exact number survives without hovering tools.
Every piece of caller text is escaped here, because labels are CRM data
(opportunity owners, stage names) that anyone with CRM access can type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

FONT = "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
TEXT = "#1d2939"
MUTED = "#667085"
GRID = "#e4e7ec"

_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20})$")
_ROW_HEIGHT = 22
_BAR_HEIGHT = 14
_CHAR_WIDTH = 7.0  # average advance of a 13px sans-serif glyph, for layout only
_LABEL_MAX_CHARS = 34
_LEGEND_HEIGHT = 22
_AXIS_HEIGHT = 18

Mode = Literal["stack", "overlay"]


@dataclass(frozen=True, slots=True)
class Segment:
    """One coloured piece of a bar; ``name`` is the series it belongs to."""

    value: float
    color: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of a horizontal bar chart. ``note`` is printed after the bar
    (default: the formatted total), so the number is readable on paper."""

    label: str
    segments: tuple[Segment, ...]
    note: str | None = None


def attr(value: object) -> str:
    """Escapes for both text and attribute positions."""
    return escape(str(value), quote=True)


def _color(value: str) -> str:
    # Colours are interpolated into attributes; refusing anything but a hex
    # code or a colour keyword keeps a caller from smuggling markup in.
    if not _COLOR.match(value):
        raise ValueError(f"not a colour: {value!r}")
    return value


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def compact_number(value: float) -> str:
    """12,345 -> 12.3K: axis ticks and bar notes need few characters."""
    magnitude = abs(value)
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if magnitude >= threshold:
            scaled = value / threshold
            return f"{scaled:.1f}{suffix}".replace(".0" + suffix, suffix)
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.1f}"


def nice_ceiling(value: float, *, integer: bool = False, ticks: int = 4) -> float:
    """Axis maximum whose ``ticks`` gridlines fall on round numbers (steps of
    1, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten), so a reader can add them up; with
    ``integer`` the steps are whole numbers, since half an alert means nothing."""
    if value <= 0:
        return float(ticks) if integer else 1.0
    raw_step = value / ticks
    exponent = math.floor(math.log10(raw_step))
    for power in (exponent, exponent + 1):
        for multiple in (1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0):
            step = multiple * 10.0**power
            if integer and (step < 1 or step != int(step)):
                continue
            if step * ticks >= value - 1e-9:
                return step * ticks
    return float(ticks) * 10.0 ** (exponent + 1)  # pragma: no cover - unreachable


def _truncate(label: str, limit: int = _LABEL_MAX_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _svg_open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{attr(title)}" font-family="{attr(FONT)}" font-size="13" '
        f'fill="{TEXT}"><title>{attr(title)}</title>'
    )


def empty_chart(title: str, message: str = "Nothing to chart", width: int = 900) -> str:
    """A placeholder of the same look, so a section never silently vanishes."""
    return (
        _svg_open(width, 40, title)
        + f'<text x="{width // 2}" y="24" text-anchor="middle" fill="{MUTED}">'
        f"{attr(message)}</text></svg>"
    )


def legend(entries: Sequence[tuple[str, str]], *, y: int, x: float = 0.0) -> str:
    """Colour keys in one row; entries are (name, colour)."""
    parts: list[str] = []
    cursor = x
    for name, color in entries:
        parts.append(
            f'<rect x="{_num(cursor)}" y="{y - 10}" width="11" height="11" rx="2" '
            f'fill="{_color(color)}"/>'
            f'<text x="{_num(cursor + 16)}" y="{y}" fill="{MUTED}">{attr(name)}</text>'
        )
        cursor += 16 + len(name) * _CHAR_WIDTH + 18
    return "".join(parts)


def _bar_total(bar: Bar, mode: Mode) -> float:
    values = [max(s.value, 0.0) for s in bar.segments]
    if not values:
        return 0.0
    return sum(values) if mode == "stack" else max(values)


def _segment_rects(
    bar: Bar, mode: Mode, x0: float, y: float, scale: float, fmt: Callable[[float], str]
) -> list[str]:
    rects: list[str] = []
    cursor = x0
    segments = bar.segments
    if mode == "overlay":  # the longest first, so shorter ones stay visible on top
        segments = tuple(sorted(segments, key=lambda s: -s.value))
    for segment in segments:
        length = max(segment.value, 0.0) * scale
        if length <= 0:
            continue
        start = cursor if mode == "stack" else x0
        tip = f"{bar.label}: {segment.name + ' ' if segment.name else ''}{fmt(segment.value)}"
        rects.append(
            f'<rect x="{_num(start)}" y="{_num(y)}" width="{_num(max(length, 1.0))}" '
            f'height="{_BAR_HEIGHT}" fill="{_color(segment.color)}">'
            f"<title>{attr(tip)}</title></rect>"
        )
        if mode == "stack":
            cursor += length
    return rects


def _axis(x0: float, plot_width: float, top: float, bottom: float, maximum: float,
          fmt: Callable[[float], str]) -> list[str]:
    parts: list[str] = []
    for step in range(5):
        value = maximum * step / 4
        x = x0 + plot_width * step / 4
        parts.append(
            f'<line x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(bottom)}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{_num(x)}" y="{_num(bottom + 13)}" text-anchor="middle" '
            f'font-size="11" fill="{MUTED}">{attr(fmt(value))}</text>'
        )
    return parts


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    fmt: Callable[[float], str] = compact_number,
    mode: Mode = "stack",
    legend_entries: Sequence[tuple[str, str]] = (),
    integer: bool = False,
    width: int = 900,
) -> str:
    """Horizontal bars, one per row, stacked or overlaid segments.

    ``stack`` draws segments end to end (a total split by severity);
    ``overlay`` draws them all from zero (a part against its whole, such as
    alerts open now against alerts raised), which reads like a bullet chart.
    """
    if not bars or all(_bar_total(b, mode) <= 0 for b in bars):
        return empty_chart(title, width=width)
    longest = max(len(_truncate(b.label)) for b in bars)
    label_width = min(max(longest * _CHAR_WIDTH + 12, 60.0), width * 0.38)
    note_width = 78.0
    x0 = label_width
    plot_width = width - label_width - note_width
    top = _LEGEND_HEIGHT + 4 if legend_entries else 6
    maximum = nice_ceiling(max(_bar_total(b, mode) for b in bars), integer=integer)
    scale = plot_width / maximum
    bottom = top + len(bars) * _ROW_HEIGHT
    height = int(bottom + _AXIS_HEIGHT + 4)

    parts = [_svg_open(width, height, title)]
    if legend_entries:
        parts.append(legend(legend_entries, y=15, x=x0))
    parts.extend(_axis(x0, plot_width, top, bottom, maximum, fmt))
    for row, bar in enumerate(bars):
        y = top + row * _ROW_HEIGHT + (_ROW_HEIGHT - _BAR_HEIGHT) / 2
        baseline = y + _BAR_HEIGHT - 3
        label = _truncate(bar.label)
        parts.append(
            f'<text x="{_num(x0 - 8)}" y="{_num(baseline)}" text-anchor="end">'
            f"<title>{attr(bar.label)}</title>{attr(label)}</text>"
        )
        parts.extend(_segment_rects(bar, mode, x0, y, scale, fmt))
        total = _bar_total(bar, mode)
        note = bar.note if bar.note is not None else fmt(total)
        parts.append(
            f'<text x="{_num(x0 + total * scale + 6)}" y="{_num(baseline)}" '
            f'fill="{MUTED}">{attr(note)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
