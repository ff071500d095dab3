-- DRAFT, to be verified when forecast.rollups records exist: the column
-- names follow SPEC.md ("Manager rollups", "Outputs") and
-- deploy/warehouse/connect/rollups.jdbc-sink.draft.json, not a published
-- record schema.
--
-- The current rollup per manager, fiscal period and forecast category,
-- with the manager's override applied where there is one (and its reason
-- beside it, so the forecast never shows an override without its why).
--
-- The rollup sink upserts on (manager_id, period, forecast_category), so the
-- table already holds one row per bucket; DISTINCT ON keeps this query right
-- for a table sunk append-only (insert mode, or files from object storage
-- loaded as they are), where the newest as_of wins.
--
-- A plain SELECT with no trailing semicolon, usable as a dbt model.
select distinct on (manager_id, period, forecast_category)
    manager_id,
    period,
    forecast_category,
    currency,
    opportunity_count,
    system_total,
    override_total,
    override_reason,
    override_by,
    override_at,
    coalesce(override_total, system_total) as forecast_total,
    as_of
from forecast_rollups
order by manager_id, period, forecast_category, as_of desc
