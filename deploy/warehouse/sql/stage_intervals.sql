-- Each opportunity's stage intervals, rebuilt from forecast.stage-history as
-- the JDBC sink upserts it into forecast_stage_history (one row per
-- record_id, holding that record's latest version).
--
-- One row per stage an opportunity entered: the stage, when it was entered
-- and left (event time from the CRM), the whole seconds spent in it (NULL
-- while it is still the current stage), what ended it (stage_changed or
-- deleted), and the amount, currency and forecast category at entry.
--
-- Why it is computed this way:
-- * Retracted records are transitions that a late event showed never
--   happened; they stay in the table (the sink upserts, it does not delete)
--   and are filtered out here.
-- * Only stage transitions bound intervals. category_changed records (a
--   forecast category change within a stage) are history too, but they
--   neither end nor start a stage.
-- * Intervals are ordered by event_order, never by arrival: late and
--   re-delivered records have already been folded into their record_id.
--   event_order is the processor's own ordering of one opportunity's events
--   (event time first, then the CRM's sequence or a hash of the event id),
--   so transitions within one millisecond come out in the order the
--   processor derived them; record_id only makes ties deterministic.
-- * A deleted opportunity has no stage until it is restored: the delete
--   ends the interval, the restore starts a new one.
--
-- A plain SELECT with no trailing semicolon, so a dbt model can be this file
-- with the table name replaced by {{ source('forecast', 'stage_history') }}.
with stage_transitions as (
    select
        record_id,
        opportunity_id,
        pipeline,
        transition,
        new_stage,
        transitioned_at,
        event_order,
        amount,
        currency,
        forecast_category
    from forecast_stage_history
    where not retracted
      and transition in ('created', 'stage_changed', 'deleted', 'restored')
),

sequenced as (
    select
        stage_transitions.*,
        lead(transitioned_at) over by_opportunity as next_transitioned_at,
        lead(transition) over by_opportunity as next_transition
    from stage_transitions
    window by_opportunity as (
        partition by opportunity_id
        order by event_order, record_id
    )
)

select
    opportunity_id,
    pipeline,
    new_stage as stage,
    transitioned_at as entered_at,
    next_transitioned_at as exited_at,
    floor(extract(epoch from next_transitioned_at - transitioned_at))::bigint
        as seconds_in_stage,
    next_transition as exited_by,
    amount as amount_at_entry,
    currency as currency_at_entry,
    forecast_category as forecast_category_at_entry,
    record_id as entry_record_id
from sequenced
where new_stage is not null
