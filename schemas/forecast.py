"""Manager forecast rollups and the override ledger.

A rollup record is a complete snapshot of one manager's fiscal quarter:
every standard category with its system totals per currency (amounts in
different currencies are never added together) and the manager's override,
if any, with its reason. It carries a deterministic ``record_id`` (per
manager and period) so a sink can upsert on it.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from ._base import Record, UtcDatetime

ForecastCategoryName = Literal["Pipeline", "Best Case", "Commit", "Closed", "Omitted"]
CATEGORY_ORDER: tuple[ForecastCategoryName, ...] = (
    "Pipeline", "Best Case", "Commit", "Closed", "Omitted")

PERIOD_PATTERN = r"^FY\d{4}-Q[1-4]$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"


class CurrencyTotal(Record):
    currency: str = Field(description="ISO 4217 code; XXX for deals without a currency.")
    amount: float = Field(description="Sum of the known amounts.")
    count: int = Field(description="Deals counted, with or without an amount.")


class OverrideView(Record):
    """The manager's standing override of one category."""

    override_id: str
    amount: float
    currency: str
    reason: str
    submitted_by: str
    submitted_at: UtcDatetime


class CategoryRollup(Record):
    category: ForecastCategoryName
    count: int = Field(description="Deals in this category, every currency.")
    totals: list[CurrencyTotal] = Field(description="System totals, one per currency.")
    won: list[CurrencyTotal] = Field(
        description="Of these, the deals in a won stage (empty for open categories).")
    lost: list[CurrencyTotal] = Field(
        description="Of these, the deals in a closed, not won stage.")
    override: OverrideView | None = Field(
        default=None, description="The manager's call, shown beside the system totals.")
    forecast: list[CurrencyTotal] = Field(
        default_factory=list,
        description="The figures to forecast with, one per currency: the system totals with "
        "the override's amount in place of its currency's total (count: the deals there).")


class RollupRecord(Record):
    record_id: str = Field(description="Deterministic per (manager, period): upsert on it.")
    manager_id: str
    period: str = Field(pattern=PERIOD_PATTERN,
                        description="Fiscal quarter of the close dates, named by the "
                        "calendar year the fiscal year ends in.")
    period_start: date
    period_end: date
    fiscal_year_start_month: int = Field(ge=1, le=12)
    count: int = Field(description="Deals in the period, every category.")
    categories: list[CategoryRollup] = Field(description="Always all five, in order.")
    updated_at: UtcDatetime = Field(
        description="Event time of the latest change or override counted in.")


class OverrideRequest(Record):
    """What a manager submits on ``forecast.overrides`` (or over HTTP)."""

    override_id: str = Field(min_length=1, description="Unique; a repeat is ignored.")
    manager_id: str = Field(min_length=1)
    period: str = Field(pattern=PERIOD_PATTERN)
    category: ForecastCategoryName
    amount: float | None = Field(
        ge=0, allow_inf_nan=False,
        description="The manager's figure; null withdraws the standing override.")
    currency: str | None = Field(
        default=None, pattern=CURRENCY_PATTERN,
        description="Required with an amount; with null, the standing override's.")
    reason: str = Field(pattern=r"\S", description="Why: required, not blank.")
    submitted_by: str = Field(min_length=1)
    submitted_at: UtcDatetime


class OverrideLogRecord(Record):
    """One accepted override: who, when, the value before and after, why,
    and the system total at that moment. Keyed by ``override_id``."""

    override_id: str
    manager_id: str
    period: str
    category: ForecastCategoryName
    submitted_by: str
    submitted_at: UtcDatetime
    accepted_at: UtcDatetime = Field(description="When the worker received it.")
    reason: str
    action: Literal["set", "withdrawn"]
    currency: str = Field(description="Currency of value_after and the system total.")
    value_before: float = Field(
        description="The figure shown before: the standing override, else the system total.")
    value_before_currency: str
    value_before_source: Literal["system", "override"]
    value_after: float = Field(
        description="The figure shown after: the new override, or the system total "
        "once withdrawn.")
    value_after_source: Literal["system", "override"]
    system_total: float = Field(description="The system total in `currency` at that moment.")
    system_totals: list[CurrencyTotal] = Field(
        description="The category's system totals in every currency at that moment.")
    previous_override: OverrideView | None


class RollupRowRecord(Record):
    """One currency of one category of a manager's rollup, flat, for a
    warehouse table (``forecast.rollup-rows``): the nested ``RollupRecord``
    cut into rows a JDBC sink can upsert. A currency that leaves a category
    is published once more with zeros, so no stale row stays behind."""

    record_id: str = Field(
        description="Deterministic per (manager, period, category, currency): upsert on it.")
    rollup_id: str = Field(description="The record_id of the RollupRecord this row is cut from.")
    manager_id: str
    period: str = Field(pattern=PERIOD_PATTERN)
    period_start: date
    period_end: date
    category: ForecastCategoryName
    currency: str
    amount: float = Field(description="System total in this currency (0 once none is left).")
    count: int = Field(description="Deals counted in this currency.")
    won_amount: float
    won_count: int
    lost_amount: float
    lost_count: int
    override_id: str | None = Field(
        description="The standing override of the category, on the row of its currency only.")
    override_amount: float | None
    override_currency: str | None
    override_reason: str | None
    override_by: str | None
    override_at: UtcDatetime | None
    updated_at: UtcDatetime = Field(description="The rollup's updated_at.")
