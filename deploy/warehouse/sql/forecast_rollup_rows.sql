-- The table the rollup-rows JDBC sink writes (forecast.rollup-rows): one row
-- per (manager, period, category, currency), the same columns and types the
-- sink creates itself with schema.evolution=basic (a test checks that they
-- agree). Create it up front where the sink's database user may not create
-- tables.
--
-- A currency that left a category is not deleted: the processor publishes
-- its row once more with zeros (count 0), and latest_rollups.sql leaves such
-- rows out. period_start and period_end are ISO text (cast with ::date)
-- because the record carries them as strings and the sink binds them as such.
create table if not exists forecast_rollup_rows (
    record_id text primary key,
    rollup_id text not null,
    manager_id text not null,
    period text not null,
    period_start text not null,
    period_end text not null,
    category text not null,
    currency text not null,
    amount double precision not null,
    count bigint not null,
    won_amount double precision not null,
    won_count bigint not null,
    lost_amount double precision not null,
    lost_count bigint not null,
    override_id text,
    override_amount double precision,
    override_currency text,
    override_reason text,
    override_by text,
    override_at timestamp(6) with time zone,
    updated_at timestamp(6) with time zone not null
);
