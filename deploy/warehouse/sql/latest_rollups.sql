-- The current manager rollups, rebuilt from forecast.rollup-rows as the JDBC
-- sink upserts it into forecast_rollup_rows: one row per manager, fiscal
-- period, forecast category and currency that holds a deal or the
-- manager's standing override.
--
-- Columns: the system totals (amount and deal count, and of them the won
-- and lost ones), the standing override of the category with its reason,
-- who set it and when, and the figure to forecast with: forecast_amount is
-- the override on the row of the override's currency, else the system
-- amount (forecast_source says which). An override is one figure for the
-- whole category in one currency (amounts in different currencies are
-- never added), so category_override_currency is set on every row of an
-- overridden category: where it differs from the row's currency, the
-- manager's call for that category is on the other row.
--
-- Why it is computed this way:
-- * Each row holds its (manager, period, category, currency)'s latest
--   values: the rollup agent publishes complete snapshots, so there is
--   nothing to sum or order here.
-- * A currency that left a category, an emptied bucket and a withdrawn
--   override are published once more as zeros (count 0, no override):
--   those rows are filtered out, never left stale.
--
-- One SELECT without a trailing semicolon: use it as a view or a dbt model.
select
    manager_id,
    period,
    period_start::date as period_start,
    period_end::date as period_end,
    category,
    currency,
    amount as system_amount,
    count as deal_count,
    won_amount,
    won_count,
    lost_amount,
    lost_count,
    override_id,
    override_amount,
    override_reason,
    override_by,
    override_at,
    coalesce(override_amount, amount) as forecast_amount,
    case when override_id is null then 'system' else 'override' end as forecast_source,
    max(override_currency) over (partition by manager_id, period, category)
        as category_override_currency,
    updated_at
from forecast_rollup_rows
where count > 0 or override_id is not null
