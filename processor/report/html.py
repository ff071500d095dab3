"""The offline pipeline-audit report: one self-contained HTML file.

A RevOps lead forwards this file to a VP or prints it, so it carries no
script, no external font, image or stylesheet, and every number a chart shows
is also written out in text (mail clients that strip SVG still show the
tables). It is built from a ``ReplayResult`` in two steps: ``summarize``
reduces the result to plain numbers (testable on its own), and the
``_section_*`` functions turn those into markup. The fix lists come from
``queue_items``, the same builder the weekly digest uses, so the report never
disagrees with what reps were sent.

Every string that came from the CRM or an input file is escaped: opportunity
names, owner ids and error messages are typed by people we do not control.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

from processor.alerts.queue import queue_items
from processor.core import fields as f
from processor.core.clock import from_ms
from processor.core.engine import Engine
from processor.replay.runner import ReplayResult
from processor.report.charts import Bar, Segment, attr, bar_chart, compact_number
from processor.rules.config import RuleSet
from schemas import (
    SEVERITY_RANK,
    Alert,
    DeadLetter,
    OpportunityState,
    QueueItem,
    Resolution,
    StageHistoryRecord,
)

SEVERITIES: tuple[str, ...] = ("high", "medium", "low", "info")
SEVERITY_COLORS: dict[str, str] = {
    "high": "#d92d20", "medium": "#f79009", "low": "#2e90fa", "info": "#98a2b3",
}
AT_RISK_SEVERITIES = frozenset({"medium", "high"})
NO_OWNER = "(no owner)"
DEFAULT_ITEMS_PER_OWNER = 25
CHART_ROWS = 20
DEAD_LETTER_SAMPLES = 5
ERROR_CHARS = 300
INPUTS_SHOWN = 8
_SYMBOLS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3", "JPY": "\u00a5", "INR": "\u20b9"}

Status = Literal["open", "won", "lost", "removed"]


# ---------------------------------------------------------------------------
# The numbers
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class OpportunityCounts:
    open: int = 0
    won: int = 0
    lost: int = 0
    removed: int = 0
    """Deleted in the CRM or merged into another opportunity."""

    @property
    def closed(self) -> int:
        return self.won + self.lost


@dataclass(slots=True)
class RuleRow:
    rule_id: str
    severity: str
    """The configured severity; ``high/low`` when pipelines disagree."""
    open_now: int
    raised: int


@dataclass(slots=True)
class OwnerRow:
    owner: str
    items: list[QueueItem] = field(default_factory=list)
    findings: Counter[str] = field(default_factory=Counter)
    at_risk: dict[str, float] = field(default_factory=dict)
    """Per currency, never added across currencies."""
    at_risk_deals: int = 0

    @property
    def finding_count(self) -> int:
        return sum(self.findings.values())


@dataclass(slots=True)
class StageRisk:
    label: str
    amount: float
    deals: int


@dataclass(slots=True)
class Duration:
    pipeline: str
    stage: str
    count: int
    median_days: float
    p75_days: float


@dataclass(slots=True)
class Conversion:
    pipeline: str
    from_stage: str
    to_stage: str
    count: int
    share: float
    """Of all exits from ``from_stage`` in the pipeline."""


@dataclass(slots=True)
class Summary:
    ruleset_version: str
    as_of_ms: int
    inputs: list[str]
    messages: int
    changes: int
    ignored: int
    opportunities: OpportunityCounts
    flagged_opportunities: int
    flagged_open: int
    """Of the flagged, those still open (closed deals can need a resync)."""
    open_findings: int
    main_currency: str
    at_risk: dict[str, float]
    at_risk_deals: dict[str, int]
    alerts_raised: int
    resolutions: int
    close_outs: int
    close_out_amount: dict[str, float]
    dead_letters: Counter[str]
    dead_letter_samples: list[DeadLetter]
    rules: list[RuleRow]
    owners: list[OwnerRow]
    stage_risk: list[StageRisk]
    durations: list[Duration]
    conversions: list[Conversion]
    multi_pipeline: bool

    @property
    def other_currencies(self) -> dict[str, float]:
        return {c: v for c, v in self.at_risk.items() if c != self.main_currency}


def summarize(result: ReplayResult) -> Summary:
    """Reduces a replay result to the report's numbers.

    Findings are evaluated once, through ``queue_items``, at the replay's
    as-of time; everything "now" in the report derives from that one pass.
    """
    rules, states = result.rules, result.states
    statuses = {oid: _status(state, rules) for oid, state in states.items()}
    items = queue_items(states.values(), Engine(rules), result.as_of_ms)
    main = _main_currency(s for oid, s in states.items() if statuses[oid] == "open")
    owners = _owners(items, states, statuses)
    at_risk: dict[str, float] = defaultdict(float)
    deals: Counter[str] = Counter()
    for item in items:
        if _is_at_risk(item, statuses):
            at_risk[_currency(item.currency)] += item.amount or 0.0
            deals[_currency(item.currency)] += 1
    history = current_history(result.history)
    pipelines = {rules.pipeline_for(s.fields.get(f.PIPELINE)).id for s in states.values()}
    return Summary(
        ruleset_version=rules.version,
        as_of_ms=result.as_of_ms,
        inputs=list(result.inputs),
        messages=result.messages,
        changes=result.changes,
        ignored=result.ignored,
        opportunities=_counts(statuses.values()),
        flagged_opportunities=len(items),
        flagged_open=sum(1 for i in items if statuses.get(i.opportunity_id) == "open"),
        open_findings=sum(len(i.issues) for i in items),
        main_currency=main,
        at_risk=dict(at_risk),
        at_risk_deals=dict(deals),
        alerts_raised=len(_unique_alerts(result.alerts)),
        resolutions=len({r.alert_id for r in result.alerts if isinstance(r, Resolution)}),
        close_outs=len({c.command_id: c for c in result.commands}),
        close_out_amount=_close_out_amounts(result),
        dead_letters=Counter(d.reason for d in result.dead_letters),
        dead_letter_samples=result.dead_letters[:DEAD_LETTER_SAMPLES],
        rules=_rule_rows(items, result.alerts, rules),
        owners=_order_owners(owners, main),
        stage_risk=_stage_risk(items, states, statuses, rules, main),
        durations=stage_durations(history, rules),
        conversions=stage_conversions(history, rules),
        multi_pipeline=len(pipelines | {r.pipeline for r in history}) > 1,
    )


def _status(state: OpportunityState, rules: RuleSet) -> Status:
    values = state.fields
    if values.get(f.DELETED) or state.merged_into is not None:
        return "removed"
    pipeline = rules.pipeline_for(values.get(f.PIPELINE))
    position = pipeline.stage_position(values.get(f.STAGE))
    if position is None or not pipeline.stages[position].closed:
        return "open"  # an unknown stage is still a deal someone works on
    return "won" if pipeline.stages[position].won else "lost"


def _counts(statuses: Iterable[Status]) -> OpportunityCounts:
    tally = Counter(statuses)
    return OpportunityCounts(
        open=tally["open"], won=tally["won"], lost=tally["lost"], removed=tally["removed"]
    )


def _currency(value: object) -> str:
    """Upper-cased code, or "" when the CRM sent none (kept apart: guessing
    a currency would misstate the number a VP reads)."""
    return str(value).strip().upper() if value else ""


def _main_currency(open_states: Iterable[OpportunityState]) -> str:
    """The currency most open deals are in: the one the headline uses."""
    tally = Counter(_currency(s.fields.get(f.CURRENCY)) for s in open_states)
    if not tally:
        return ""
    return min(tally.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _is_at_risk(item: QueueItem, statuses: dict[str, Status]) -> bool:
    return statuses.get(item.opportunity_id) == "open" and any(
        i.severity in AT_RISK_SEVERITIES for i in item.issues
    )


def _owner_of(state: OpportunityState | None) -> str:
    owner = state.fields.get(f.OWNER_ID) if state is not None else None
    return str(owner) if owner else NO_OWNER


def _owners(
    items: list[QueueItem], states: dict[str, OpportunityState], statuses: dict[str, Status]
) -> dict[str, OwnerRow]:
    owners: dict[str, OwnerRow] = {}
    for item in items:  # already ordered by deal size, so each owner's list is too
        owner = _owner_of(states.get(item.opportunity_id))
        row = owners.get(owner) or owners.setdefault(owner, OwnerRow(owner))
        row.items.append(item)
        row.findings.update(i.severity for i in item.issues)
        if _is_at_risk(item, statuses):
            code = _currency(item.currency)
            row.at_risk[code] = row.at_risk.get(code, 0.0) + (item.amount or 0.0)
            row.at_risk_deals += 1
    return owners


def _order_owners(owners: dict[str, OwnerRow], main: str) -> list[OwnerRow]:
    """Biggest exposure first: where a manager's attention pays most."""
    return sorted(
        owners.values(),
        key=lambda o: (-o.at_risk.get(main, 0.0), -o.finding_count, o.owner),
    )


def _unique_alerts(records: Iterable[Alert | Resolution]) -> dict[str, Alert]:
    return {r.alert_id: r for r in records if isinstance(r, Alert)}


def _close_out_amounts(result: ReplayResult) -> dict[str, float]:
    amounts: dict[str, float] = defaultdict(float)
    for command in {c.command_id: c for c in result.commands}.values():
        amounts[_currency(command.currency)] += command.amount or 0.0
    return dict(amounts)


def _rule_rows(
    items: list[QueueItem], records: list[Alert | Resolution], rules: RuleSet
) -> list[RuleRow]:
    open_now: Counter[str] = Counter()
    severities: dict[str, set[str]] = defaultdict(set)
    for item in items:
        for issue in item.issues:
            open_now[issue.rule_id] += 1
            severities[issue.rule_id].add(issue.severity)
    raised: Counter[str] = Counter()
    for alert in _unique_alerts(records).values():
        raised[alert.rule_id] += 1
        severities[alert.rule_id].add(alert.severity)
    rows = [
        RuleRow(rule, _severity_label(severities[rule], rules, rule), open_now[rule], raised[rule])
        for rule in set(open_now) | set(raised)
    ]
    return sorted(rows, key=lambda r: (-r.open_now, -r.raised, r.rule_id))


def _severity_label(seen: set[str], rules: RuleSet, rule_id: str) -> str:
    if not seen:
        seen = {rules.default_pipeline.severity_of(rule_id)}
    return "/".join(sorted(seen, key=lambda s: -SEVERITY_RANK[s]))


def _stage_label(raw: object, pipeline_id: str, rules: RuleSet, multi: bool) -> tuple[int, str]:
    """Sort key and label: pipeline order, then stage order, unknown stages last."""
    pipeline = next((p for p in rules.pipelines if p.id == pipeline_id), rules.default_pipeline)
    p_index = rules.pipelines.index(pipeline)
    position = pipeline.stage_position(raw if isinstance(raw, str) else None)
    name = pipeline.stages[position].name if position is not None else str(raw or "(no stage)")
    order = p_index * 1000 + (position if position is not None else 999)
    return order, (f"{pipeline.name or pipeline.id} \u00b7 {name}" if multi else name)


def _stage_risk(
    items: list[QueueItem],
    states: dict[str, OpportunityState],
    statuses: dict[str, Status],
    rules: RuleSet,
    main: str,
) -> list[StageRisk]:
    multi = len({i.pipeline for i in items if _is_at_risk(i, statuses)}) > 1
    totals: dict[tuple[int, str], StageRisk] = {}
    for item in items:
        if not _is_at_risk(item, statuses) or _currency(item.currency) != main:
            continue
        key = _stage_label(item.stage, item.pipeline, rules, multi)
        row = totals.setdefault(key, StageRisk(key[1], 0.0, 0))
        row.amount += item.amount or 0.0
        row.deals += 1
    return [totals[k] for k in sorted(totals)]


def current_history(records: Iterable[StageHistoryRecord]) -> list[StageHistoryRecord]:
    """What a warehouse upserting on ``record_id`` holds: the last version of
    each record, without the ones a late event retracted."""
    latest: dict[str, StageHistoryRecord] = {}
    for record in records:
        latest[record.record_id] = record
    return [r for r in latest.values() if not r.retracted]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so the
    numbers match what an analyst gets from the warehouse."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def _stage_changes(history: Iterable[StageHistoryRecord]) -> list[StageHistoryRecord]:
    # Creations have no previous stage; deletions and restores measure how
    # long a deal sat before someone removed it, not how long a stage takes.
    return [r for r in history if r.transition == "stage_changed" and r.previous_stage]


def stage_durations(history: Iterable[StageHistoryRecord], rules: RuleSet) -> list[Duration]:
    days: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in _stage_changes(history):
        if record.seconds_in_previous_stage is not None and record.previous_stage is not None:
            days[(record.pipeline, record.previous_stage)].append(
                record.seconds_in_previous_stage / 86_400
            )
    rows: list[tuple[tuple[int, str], Duration]] = []
    for (pipeline, stage), values in days.items():
        values.sort()
        key = _stage_label(stage, pipeline, rules, multi=False)
        rows.append((key, Duration(pipeline, stage, len(values), percentile(values, 0.5),
                                   percentile(values, 0.75))))
    return [d for _, d in sorted(rows, key=lambda r: (r[0], r[1].pipeline))]


def stage_conversions(history: Iterable[StageHistoryRecord], rules: RuleSet) -> list[Conversion]:
    moves: Counter[tuple[str, str, str]] = Counter()
    exits: Counter[tuple[str, str]] = Counter()
    for record in _stage_changes(history):
        source, target = record.previous_stage or "", record.new_stage or "(none)"
        moves[(record.pipeline, source, target)] += 1
        exits[(record.pipeline, source)] += 1
    rows = [
        Conversion(p, a, b, n, n / exits[(p, a)]) for (p, a, b), n in moves.items()
    ]

    def order(row: Conversion) -> tuple[tuple[int, str], tuple[int, str], int]:
        return (_stage_label(row.from_stage, row.pipeline, rules, False),
                _stage_label(row.to_stage, row.pipeline, rules, False), -row.count)

    return sorted(rows, key=order)


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------


def money(amount: float, currency: str, *, compact: bool = False) -> str:
    """$1,234,567 in tables, $1.2M on cards and charts; a bare number when the
    CRM sent no currency."""
    number = compact_number(amount) if compact else f"{amount:,.0f}"
    symbol = _SYMBOLS.get(currency)
    if symbol:
        return f"-{symbol}{number[1:]}" if number.startswith("-") else f"{symbol}{number}"
    return f"{currency} {number}" if currency else number


def share_text(part: int, whole: int) -> str:
    """Whole percents, except that 0% and 100% are only said when exact: "100%
    of deals flagged" when a few are clean would misinform."""
    share = part / whole * 100 if whole else 0.0
    text = f"{share:.0f}%"
    if text in ("0%", "100%") and part not in (0, whole):
        text = f"{share:.1f}%"
    return text


def _count(value: int) -> str:
    return f"{value:,}"


def _plural(value: int, word: str, plural: str | None = None) -> str:
    return f"{value:,} {word if value == 1 else (plural or word + 's')}"


def _day(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%d %H:%M UTC") if ms else "\u2014"


def _timestamp(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.strftime("%Y-%m-%d %H:%M %Z").strip()


def _other_money(amounts: dict[str, float], deals: dict[str, int]) -> str:
    """"€300K (4 deals), 12K without a currency (1 deal)": the amounts the
    headline leaves out, so nobody thinks they were converted."""
    parts = []
    for code in sorted(amounts, key=lambda c: (-amounts[c], c)):
        text = money(amounts[code], code, compact=True)
        if not code:
            text += " without a currency"
        parts.append(f"{text} ({_plural(deals.get(code, 0), 'deal')})")
    return ", ".join(parts)


def _badge(severity: str) -> str:
    return f'<span class="badge sev-{attr(severity)}">{attr(severity)}</span>'


def _severity_badges(label: str) -> str:
    return " ".join(_badge(s) for s in label.split("/"))


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Sequence[int] = (),
           css: str = "") -> str:
    """Cells are pre-rendered markup; callers escape data they put in."""
    nums = set(numeric)
    th = "".join(
        f'<th{" class=num" if i in nums else ""}>{attr(h)}</th>' for i, h in enumerate(head)
    )
    body = "".join(
        "<tr>" + "".join(
            f'<td{" class=num" if i in nums else ""}>{cell}</td>' for i, cell in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f'<table class="{attr(css)}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _figure(svg: str, caption: str) -> str:
    return f'<figure>{svg}<figcaption>{caption}</figcaption></figure>'


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def _section(anchor: str, heading: str, body: str, intro: str = "") -> str:
    lead = f'<p class="lead">{intro}</p>' if intro else ""
    return f'<section id="{attr(anchor)}"><h2>{attr(heading)}</h2>{lead}{body}</section>'


def _section_header(title: str, s: Summary, generated_at: datetime) -> str:
    inputs = s.inputs[:INPUTS_SHOWN]
    more = len(s.inputs) - len(inputs)
    listed = ", ".join(f"<code>{attr(p)}</code>" for p in inputs) or "\u2014"
    if more > 0:
        listed += f" and {more:,} more"
    return (
        f"<header><h1>{attr(title)}</h1>"
        '<table class="meta"><tbody>'
        f"<tr><th>As of</th><td>{attr(_day(s.as_of_ms))}</td>"
        f"<th>Rule set</th><td><code>{attr(s.ruleset_version)}</code></td></tr>"
        f"<tr><th>Inputs</th><td>{listed}</td>"
        f"<th>Generated</th><td>{attr(_timestamp(generated_at))}</td></tr>"
        "</tbody></table></header>"
    )


def _card(label: str, value: str, detail: str, tone: str = "") -> str:
    return (
        f'<div class="card {tone}"><div class="card-label">{attr(label)}</div>'
        f'<div class="card-value">{value}</div><div class="card-detail">{detail}</div></div>'
    )


def _section_cards(s: Summary) -> str:
    o = s.opportunities
    main = s.main_currency
    others = s.other_currencies
    risk_detail = (
        f"{_plural(s.at_risk_deals.get(main, 0), 'open deal')} with a medium or high finding"
    )
    if others:
        risk_detail += f"; plus {attr(_other_money(others, s.at_risk_deals))}"
    dead = ", ".join(f"{n:,} {attr(r)}" for r, n in s.dead_letters.most_common()) or "none"
    close_out = s.close_out_amount.get(main, 0.0)
    cards = [
        _card("Opportunities", f"{o.open:,} <small>open</small>",
              f"{o.closed:,} closed ({o.won:,} won, {o.lost:,} lost)"
              + (f"; {o.removed:,} deleted or merged" if o.removed else "")),
        _card("Open alerts now", _count(s.flagged_opportunities),
              f"opportunities with {_plural(s.open_findings, 'open finding')}"
              + (f" ({share_text(s.flagged_open, o.open)} of open deals)" if o.open else ""),
              "warn"),
        _card("At-risk pipeline", attr(money(s.at_risk.get(main, 0.0), main, compact=True)),
              risk_detail, "risk"),
        _card("Alerts over the replay", _count(s.alerts_raised),
              f"raised; {_plural(s.resolutions, 'resolution')}"),
        _card("Close-out recommendations", _count(s.close_outs),
              f"{attr(money(close_out, main, compact=True))} of stale pipeline to close as lost"),
        _card("Dead letters", _count(sum(s.dead_letters.values())), dead,
              "bad" if s.dead_letters else ""),
        _card("Events read", _count(s.messages),
              f"{_plural(s.changes, 'change')} applied, {s.ignored:,} ignored"),
    ]
    return f'<section id="summary" class="cards">{"".join(cards)}</section>'


def _section_rules(s: Summary) -> str:
    if not s.rules:
        return _section("rules", "Alerts by rule", '<p class="empty">No alerts.</p>')
    bars = [
        Bar(r.rule_id, (Segment(r.raised, "#d0d5dd", "raised"),
                        Segment(r.open_now, "#b42318", "open now")),
            note=f"{r.open_now:,} / {r.raised:,}")
        for r in s.rules
    ]
    chart = bar_chart(bars, title="Alerts by rule: open now against raised over the replay",
                      mode="overlay",
                      legend_entries=[("open now", "#b42318"), ("raised in total", "#d0d5dd")],
                      integer=True)
    table = _table(
        ["Rule", "Severity", "Open now", "Raised in total"],
        ([f"<code>{attr(r.rule_id)}</code>", _severity_badges(r.severity),
          _count(r.open_now), _count(r.raised)] for r in s.rules),
        numeric=(2, 3),
    )
    intro = ("Open now counts opportunities where the rule holds at the as-of time; raised "
             "counts every alert the replay published (notices such as skipped stages never "
             "stay open).")
    return _section("rules", "Alerts by rule", _figure(chart, "Open now / raised") + table, intro)


def _severity_bar(owner: OwnerRow) -> Bar:
    segments = tuple(
        Segment(owner.findings[sev], SEVERITY_COLORS[sev], sev)
        for sev in SEVERITIES if owner.findings[sev]
    )
    return Bar(owner.owner, segments)


def _more_note(shown: int, total: int, what: str) -> str:
    return f" Showing the top {shown:,} of {total:,} {what}." if total > shown else ""


def _section_owners(s: Summary) -> str:
    if not s.owners:
        return _section("owners", "Alerts by owner", '<p class="empty">No open findings.</p>')
    main = s.main_currency
    by_findings = sorted(s.owners, key=lambda o: (-o.finding_count, o.owner))[:CHART_ROWS]
    findings_chart = bar_chart(
        [_severity_bar(o) for o in by_findings], title="Open findings per owner, by severity",
        legend_entries=[(sev, SEVERITY_COLORS[sev]) for sev in SEVERITIES], integer=True,
    )
    risky = [o for o in s.owners if o.at_risk.get(main, 0.0) > 0][:CHART_ROWS]
    risk_chart = bar_chart(
        [Bar(o.owner, (Segment(o.at_risk[main], "#b42318", "at risk"),),
             note=money(o.at_risk[main], main, compact=True)) for o in risky],
        title=f"At-risk pipeline per owner ({main or 'no currency'})",
        fmt=lambda v: money(v, main, compact=True),
    )
    shown = s.owners[:CHART_ROWS]
    table = _table(
        ["Owner", "Deals to fix", "High", "Medium", "Low", "At risk"],
        ([attr(o.owner), _count(len(o.items)), _count(o.findings["high"]),
          _count(o.findings["medium"]), _count(o.findings["low"]),
          attr(money(o.at_risk.get(main, 0.0), main))] for o in shown),
        numeric=(1, 2, 3, 4, 5),
    )
    body = (
        _figure(findings_chart, "Open findings per owner." +
                _more_note(len(by_findings), len(s.owners), "owners"))
        + _figure(risk_chart, f"At-risk pipeline per owner, in {attr(main or 'no currency')}."
                  + _more_note(len(risky), len(s.owners), "owners"))
        + table + _more_list(len(s.owners) - len(shown), "owner")
    )
    return _section("owners", "Alerts by owner", body)


def _more_list(hidden: int, what: str) -> str:
    return f'<p class="more">+{_plural(hidden, "more " + what)}</p>' if hidden > 0 else ""


def _section_stage_risk(s: Summary) -> str:
    main = s.main_currency
    if not s.stage_risk:
        return _section("stages", "At-risk pipeline by stage",
                        '<p class="empty">No open deal has a medium or high finding.</p>')
    chart = bar_chart(
        [Bar(r.label, (Segment(r.amount, "#b54708", "at risk"),),
             note=f"{money(r.amount, main, compact=True)} \u00b7 {r.deals:,}")
         for r in s.stage_risk],
        title=f"At-risk pipeline by stage ({main or 'no currency'})",
        fmt=lambda v: money(v, main, compact=True),
    )
    table = _table(
        ["Stage", "Deals at risk", "Amount"],
        ([attr(r.label), _count(r.deals), attr(money(r.amount, main))] for r in s.stage_risk),
        numeric=(1, 2),
    )
    others = s.other_currencies
    note = (f"Deals in other currencies are left out of this chart: "
            f"{attr(_other_money(others, s.at_risk_deals))}." if others else "")
    intro = ("Open deals with at least one medium or high finding, by their current stage."
             + (" " + note if note else ""))
    return _section("stages", "At-risk pipeline by stage",
                    _figure(chart, "Amount at risk \u00b7 deals") + table, intro)


def _duration_label(d: Duration, multi: bool) -> str:
    return f"{d.pipeline} \u00b7 {d.stage}" if multi else d.stage


def _section_durations(s: Summary) -> str:
    if not s.durations:
        body = '<p class="empty">No stage changes in the replayed history.</p>'
        return _section("durations", "Time in stage", body)
    multi = s.multi_pipeline
    chart = bar_chart(
        [Bar(_duration_label(d, multi),
             (Segment(d.p75_days, "#98a2b3", "75th percentile"),
              Segment(d.median_days, "#344054", "median")),
             note=f"{d.median_days:.1f} / {d.p75_days:.1f} d") for d in s.durations],
        title="Days spent in each stage: median and 75th percentile", mode="overlay",
        fmt=lambda v: f"{v:g}",
        legend_entries=[("median", "#344054"), ("75th percentile", "#98a2b3")],
    )
    durations = _table(
        ["Stage", "Exits", "Median days", "75th pct. days"],
        ([attr(_duration_label(d, multi)), _count(d.count), f"{d.median_days:.1f}",
          f"{d.p75_days:.1f}"] for d in s.durations),
        numeric=(1, 2, 3),
    )
    conversions = _table(
        ["From", "To", "Deals", "Share of exits"],
        ([attr(_duration_label(Duration(c.pipeline, c.from_stage, 0, 0, 0), multi)),
          attr(c.to_stage), _count(c.count), f"{c.share * 100:.0f}%"] for c in s.conversions),
        numeric=(2, 3),
    )
    intro = ("From the stage history as a warehouse holds it (the last version of each record, "
             "retracted records dropped): how long deals stayed in a stage before moving on.")
    return _section(
        "durations", "Time in stage",
        _figure(chart, "Median / 75th percentile, in days") + durations
        + "<h3>Stage conversions</h3>" + conversions, intro,
    )


def _issue(issue_severity: str, title: str, message: str, fix: str) -> str:
    return (
        f'<div class="issue">{_badge(issue_severity)} <strong>{attr(title)}</strong>'
        f'<div class="msg">{attr(message)}</div>'
        f'<div class="fix"><span>Fix:</span> {attr(fix)}</div></div>'
    )


def _deal_row(item: QueueItem) -> str:
    name = item.opportunity_name or item.opportunity_id
    amount = money(item.amount, _currency(item.currency)) if item.amount is not None else "\u2014"
    close = item.close_date.isoformat() if isinstance(item.close_date, date) else "\u2014"
    issues = "".join(_issue(i.severity, i.title, i.message, i.fix) for i in item.issues)
    return (
        f'<tr><td class="deal"><strong>{attr(name)}</strong>'
        f'<div class="oid">{attr(item.opportunity_id)}</div></td>'
        f"<td>{attr(item.stage or chr(0x2014))}</td><td class=num>{attr(amount)}</td>"
        f"<td class=nowrap>{attr(close)}</td><td>{issues}</td></tr>"
    )


def _owner_block(owner: OwnerRow, main: str, cap: int) -> str:
    shown = owner.items[:cap]
    hidden = owner.items[cap:]
    rows = "".join(_deal_row(i) for i in shown)
    if hidden:
        rest = sum(i.amount or 0.0 for i in hidden if _currency(i.currency) == main)
        rows += (
            f'<tr class="more"><td colspan="5">+{_plural(len(hidden), "more deal")} '
            f"({attr(money(rest, main, compact=True))}) not shown</td></tr>"
        )
    at_risk = " + ".join(
        money(owner.at_risk[c], c, compact=True)
        for c in sorted(owner.at_risk, key=lambda c: (c != main, -owner.at_risk[c]))
    ) or money(0.0, main, compact=True)
    return (
        f'<div class="owner"><h3>{attr(owner.owner)}</h3>'
        f'<p class="owner-meta">{_plural(len(owner.items), "deal")} to fix \u00b7 '
        f'{_plural(owner.finding_count, "issue")} \u00b7 {attr(at_risk)} at risk</p>'
        '<table class="fix"><colgroup><col class="c-deal"><col class="c-stage">'
        '<col class="c-amount"><col class="c-close"><col></colgroup>'
        '<thead><tr><th>Opportunity</th><th>Stage</th>'
        '<th class=num>Amount</th><th>Close date</th><th>What to fix</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _section_fix_lists(s: Summary, cap: int) -> str:
    if not s.owners:
        return _section("fix-lists", "Fix lists by owner",
                        '<p class="empty">Nothing to fix.</p>')
    blocks = "".join(_owner_block(o, s.main_currency, cap) for o in s.owners)
    intro = (f"Each owner's open findings, biggest deals first, as in their weekly hygiene "
             f"queue; owners ordered by at-risk pipeline. At most {cap:,} deals per owner.")
    return _section("fix-lists", "Fix lists by owner", blocks, intro)


def _error_excerpt(error: str) -> str:
    return error if len(error) <= ERROR_CHARS else error[: ERROR_CHARS - 1] + "\u2026"


def _section_dead_letters(s: Summary) -> str:
    if not s.dead_letters:
        return _section("dead-letters", "Dead letters",
                        '<p class="empty">Every input was processed.</p>')
    reasons = _table(["Reason", "Inputs"],
                     ([f"<code>{attr(r)}</code>", _count(n)]
                      for r, n in s.dead_letters.most_common()),
                     numeric=(1,))
    samples = _table(
        ["Reason", "Where", "Error"],
        ([f"<code>{attr(d.reason)}</code>",
          attr(d.source + (f":{d.offset}" if d.offset is not None else "")),
          attr(_error_excerpt(d.error))] for d in s.dead_letter_samples),
        css="samples",
    )
    intro = ("Inputs that could not be processed; each is kept whole in the dead-letter output "
             "so it can be re-driven after a fix.")
    return _section("dead-letters", "Dead letters",
                    reasons + f"<h3>First {len(s.dead_letter_samples)} errors</h3>" + samples,
                    intro)


def _footer(s: Summary) -> str:
    main = s.main_currency or "no currency"
    return (
        '<footer><p><strong>How to read this.</strong> "Open now" is evaluated with rule set '
        f"<code>{attr(s.ruleset_version)}</code> at the as-of time. At-risk pipeline is the "
        "sum of the amounts of open deals with at least one medium or high finding; amounts in "
        f"different currencies are never added, and charts use {attr(main)}, the currency of "
        "most open deals. Time in stage uses linear-interpolated percentiles over stage "
        "changes only (not deletions).</p></footer>"
    )


_NAV = (
    ("summary", "Summary"), ("rules", "By rule"), ("owners", "By owner"),
    ("stages", "By stage"), ("durations", "Time in stage"), ("fix-lists", "Fix lists"),
    ("dead-letters", "Dead letters"),
)

CSS = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;background:#f2f4f7;color:#1d2939;font:14px/1.45 -apple-system,'Segoe UI',
Helvetica,Arial,sans-serif;-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:1040px;margin:0 auto;padding:28px 32px 40px;background:#fff}
h1{font-size:26px;margin:0 0 12px;letter-spacing:-.01em}
h2{font-size:18px;margin:0 0 6px;padding-top:4px;border-top:2px solid #1d2939}
h3{font-size:15px;margin:18px 0 6px}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#344054}
small{font-size:13px;font-weight:500;color:#667085}
nav{margin:10px 0 4px;font-size:13px}
nav a{color:#175cd3;text-decoration:none;margin-right:14px}
section{margin:30px 0 0}
.lead{color:#475467;margin:0 0 12px;max-width:78ch;break-after:avoid;page-break-after:avoid}
table{border-collapse:collapse;width:100%;margin:10px 0}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid #e4e7ec}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#475467;
border-bottom:1px solid #98a2b3;background:#f9fafb}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.nowrap{white-space:nowrap}
table.meta{width:auto;margin:0}
table.meta th{color:#667085;font-weight:500;padding:2px 12px 2px 0;border:0;background:none;
text-transform:none;letter-spacing:0;font-size:13px}
table.meta td{padding:2px 28px 2px 0;border:0}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:22px}
.card{flex:1 1 200px;border:1px solid #e4e7ec;border-left:4px solid #475467;border-radius:6px;
padding:12px 14px;break-inside:avoid;page-break-inside:avoid}
.card.warn{border-left-color:#f79009}.card.risk{border-left-color:#d92d20}
.card.bad{border-left-color:#b42318;background:#fffbfa}
.card-label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#475467}
.card-value{font-size:26px;font-weight:650;margin:2px 0;font-variant-numeric:tabular-nums}
.card-detail{font-size:13px;color:#475467}
figure{margin:8px 0 4px;break-inside:avoid;page-break-inside:avoid}
figcaption{font-size:12px;color:#667085}
svg.chart{max-width:100%;height:auto;display:block}
.badge{display:inline-block;min-width:52px;text-align:center;font-size:11px;font-weight:600;
text-transform:uppercase;letter-spacing:.03em;border-radius:10px;padding:1px 7px;
border:1px solid}
.sev-high{color:#b42318;background:#fef3f2;border-color:#fecdca}
.sev-medium{color:#b54708;background:#fffaeb;border-color:#fedf89}
.sev-low{color:#175cd3;background:#eff8ff;border-color:#b2ddff}
.sev-info{color:#475467;background:#f9fafb;border-color:#d0d5dd}
.owner{margin-top:22px}
.owner h3{margin-bottom:0;break-after:avoid;page-break-after:avoid}
.owner-meta{margin:2px 0 0;color:#475467;font-size:13px;break-after:avoid;
page-break-after:avoid}
table.fix{table-layout:fixed}
col.c-deal{width:20%}col.c-stage{width:13%}col.c-amount{width:11%}col.c-close{width:10%}
table.fix td{overflow-wrap:break-word}
table.fix tr{break-inside:avoid;page-break-inside:avoid}
.oid{font:11px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#667085;
word-break:break-all}
.issue{margin:0 0 8px}.issue:last-child{margin-bottom:0}
.msg{color:#344054;margin-top:2px}
.fix{color:#475467;font-size:13px}.fix span{font-weight:600;color:#027a48}
tr.more td,p.more{color:#667085;font-style:italic}
table.samples td:last-child{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
word-break:break-word}
.empty{color:#667085;font-style:italic}
footer{margin-top:36px;padding-top:10px;border-top:1px solid #e4e7ec;font-size:12px;
color:#667085}
@page{size:A4;margin:14mm}
@media print{body{background:#fff;font-size:12px}main{max-width:none;padding:0}nav{display:none}
section{break-before:auto}h2{break-after:avoid}}
"""


def render_report(
    result: ReplayResult,
    *,
    title: str = "Pipeline hygiene audit",
    generated_at: datetime,
    max_items_per_owner: int = DEFAULT_ITEMS_PER_OWNER,
) -> str:
    """The whole report as one HTML document (UTF-8, no external resources)."""
    s = summarize(result)
    nav = "".join(f'<a href="#{a}">{attr(label)}</a>' for a, label in _NAV)
    body = "".join([
        _section_header(title, s, generated_at),
        f"<nav>{nav}</nav>",
        _section_cards(s),
        _section_rules(s),
        _section_owners(s),
        _section_stage_risk(s),
        _section_durations(s),
        _section_fix_lists(s, max(1, max_items_per_owner)),
        _section_dead_letters(s),
        _footer(s),
    ])
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{attr(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
