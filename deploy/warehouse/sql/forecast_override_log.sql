-- The table the override-log JDBC sink writes (forecast.override-log): one
-- row per accepted override, upserted on override_id, the same columns and
-- types the sink creates itself with schema.evolution=basic (a test checks
-- that they agree).
--
-- The record's two nested fields are not here: the connector drops
-- system_totals (the category's system total in every currency at that
-- moment) and previous_override (the override replaced) with Kafka
-- Connect's ReplaceField transform. What the ledger must say stays: who,
-- when, why, the value before and after with their sources, and the system
-- total in the override's currency. The previous override is also the row
-- of its own override_id.
create table if not exists forecast_override_log (
    override_id text primary key,
    manager_id text not null,
    period text not null,
    category text not null,
    submitted_by text not null,
    submitted_at timestamp(6) with time zone not null,
    accepted_at timestamp(6) with time zone not null,
    reason text not null,
    action text not null,
    currency text not null,
    value_before double precision not null,
    value_before_currency text not null,
    value_before_source text not null,
    value_after double precision not null,
    value_after_source text not null,
    system_total double precision not null
);

create index if not exists forecast_override_log_by_bucket
    on forecast_override_log (manager_id, period, category, accepted_at);
