-- The table the stage-history JDBC sink writes: the same columns and types
-- that the sink creates itself with schema.evolution=basic (a test checks
-- that they agree). Create it up front where the sink's database user may
-- not create tables; the sink then only inserts and updates.
--
-- close_date is text (ISO yyyy-mm-dd) because the record carries it as a
-- string and the sink binds it as one; cast it with close_date::date.
create table if not exists forecast_stage_history (
    record_id text primary key,
    opportunity_id text not null,
    pipeline text not null,
    transition text not null,
    previous_stage text,
    new_stage text,
    previous_stage_entered_at timestamp(6) with time zone,
    previous_stage_left_at timestamp(6) with time zone,
    seconds_in_previous_stage bigint,
    transitioned_at timestamp(6) with time zone not null,
    event_order bigint not null default 0,
    amount double precision,
    currency text,
    close_date text,
    forecast_category text,
    owner_id text,
    is_closed boolean not null default false,
    is_won boolean not null default false,
    close_date_push_count integer not null default 0,
    source_event_id text not null,
    retracted boolean not null default false
);

-- The interval query partitions by opportunity and orders by event_order.
create index if not exists forecast_stage_history_by_opportunity
    on forecast_stage_history (opportunity_id, event_order);
