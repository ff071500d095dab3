"""The alert policy's state in Redis: key layout, the Lua scripts, and the
packing of a batch into one script call and of its answer back.

One script evaluates a whole batch, so that two workers deciding the same
alert at the same moment see each other (Redis runs a script atomically) and
a batch costs one round trip however many alerts it holds.

Keys (``P`` is the configured prefix):

- ``P alert:{alert_id}``: hash, what the policy decided and what the owner
  did (snooze, ack); kept for the retention period.
- ``P actions:{alert_id}``: list of JSON snooze/ack entries, oldest first.
- ``P open:{opportunity}|{rule}``: the alert id holding the dedup window.
- ``P snooze:{opportunity}|{rule}``: present while a snooze runs.
- ``P budget:{owner}:{day}``: real-time alerts counted that day.

Scripts compute the snooze key of an acted-on alert from its hash, so all
keys must live on one Redis (on a cluster, put a hash tag in the prefix,
e.g. ``{hygiene}:policy:``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from processor.alerts.policy import Decision, PolicyRules, budget_day, owner_of, threshold_reason
from schemas import Alert, AlertRecord, DeliveryReason

DECIDE = """
local now = ARGV[1]
local window = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local budget_ttl = tonumber(ARGV[4])
local retention = tonumber(ARGV[5])
local token = ARGV[6]
local out = {}
for i = 0, #KEYS / 4 - 1 do
  local rec, open, snooze, bud = KEYS[4*i+1], KEYS[4*i+2], KEYS[4*i+3], KEYS[4*i+4]
  local a = 6 + 6*i
  local kind, id, pre, opp, rule = ARGV[a+1], ARGV[a+2], ARGV[a+3], ARGV[a+4], ARGV[a+5]
  local owner = ARGV[a+6]
  local verdict, reason, dup = 'resolution', '', ''
  if kind == 'r' then
    -- The window closes with the alert holding it, or with a repeat of it
    -- (a re-run sweep opens the same condition under another id); a stale
    -- resolution of some older alert leaves a newer holder alone.
    local holder = redis.call('GET', open)
    if holder and (holder == id or redis.call('HGET', rec, 'duplicate_of') == holder) then
      redis.call('DEL', open)
    end
    if redis.call('EXISTS', rec) == 1 then
      redis.call('HSET', rec, 'resolved_ms', now)
    end
  elseif redis.call('EXISTS', rec) == 1 then
    -- Decided before: the same alert again (a batch re-run after a crash or
    -- a rebalance, or a second worker). Re-issue the verdict it got, never
    -- count it twice: a worker killed between deciding and publishing must
    -- not turn its alert into a "repeat" that nobody ever published.
    -- Consumers key on alert_id, so a second copy is absorbed.
    local held = redis.call('HMGET', rec, 'delivery', 'delivery_reason', 'duplicate_of')
    if held[1] == 'realtime' or held[1] == 'digest' then
      verdict, reason = held[1], held[2] or ''
    else
      verdict, dup = 'duplicate', held[3] or id
    end
  else
    local holder = redis.call('GET', open)
    if holder then
      verdict, dup = 'duplicate', holder
      redis.call('HSET', rec, 'opportunity_id', opp, 'rule_id', rule, 'owner_id', owner,
        'first_seen_ms', now, 'delivery', 'suppressed', 'delivery_reason', 'duplicate',
        'duplicate_of', holder, 'token', token)
    else
      redis.call('SET', open, id, 'PX', window)
      if pre ~= '' then
        verdict, reason = 'digest', pre
      elseif redis.call('EXISTS', snooze) == 1 then
        verdict, reason = 'digest', 'snoozed'
      else
        local used = redis.call('INCR', bud)
        if used == 1 then redis.call('PEXPIRE', bud, budget_ttl) end
        if used > budget then
          verdict, reason = 'digest', 'over_budget'
        else
          verdict = 'realtime'
        end
      end
      redis.call('HSET', rec, 'opportunity_id', opp, 'rule_id', rule, 'owner_id', owner,
        'first_seen_ms', now, 'delivery', verdict, 'delivery_reason', reason, 'token', token)
    end
    redis.call('PEXPIRE', rec, retention)
  end
  out[#out + 1] = verdict
  out[#out + 1] = reason
  out[#out + 1] = dup
end
return out
"""
"""KEYS: 4 per record (alert hash, open, snooze, budget). ARGV: now, window,
budget, budget ttl, retention, token, then 6 per record (kind, id, threshold
reason, opportunity, rule, owner). Answers 3 strings
per record: verdict, reason, the alert a duplicate repeats."""

RELEASE = """
local token = ARGV[1]
for i = 0, #KEYS / 3 - 1 do
  local rec, open, bud = KEYS[3*i+1], KEYS[3*i+2], KEYS[3*i+3]
  local id, counted = ARGV[2*i+2], ARGV[2*i+3]
  if redis.call('HGET', rec, 'token') == token then
    redis.call('DEL', rec)
    if redis.call('GET', open) == id then redis.call('DEL', open) end
    if counted == '1' then redis.call('DECR', bud) end
  end
end
return 1
"""
"""Undoes one decision call whose records were never published, so their
re-run is decided afresh instead of being taken for a repeat. KEYS: 3 per
alert (hash, open, budget); ARGV: token, then (id, counted) per alert."""

SNOOZE = """
local rec, log = KEYS[1], KEYS[2]
local prefix, now, by, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local until_ms, retention = ARGV[5], tonumber(ARGV[6])
if redis.call('EXISTS', rec) == 0 then return nil end
local f = redis.call('HMGET', rec, 'opportunity_id', 'rule_id')
local ttl = tonumber(until_ms) - tonumber(now)
redis.call('SET', prefix .. 'snooze:' .. f[1] .. '|' .. f[2], ARGV[7], 'PX', ttl)
redis.call('HSET', rec, 'snoozed_by', by, 'snoozed_ms', now, 'snoozed_until_ms', until_ms,
  'snooze_reason', reason)
redis.call('RPUSH', log, cjson.encode({action='snooze', by=by, at=now, reason=reason,
  ['until']=until_ms}))
redis.call('PEXPIRE', rec, retention)
redis.call('PEXPIRE', log, retention)
return {1, redis.call('HGETALL', rec), redis.call('LRANGE', log, 0, -1)}
"""

ACK = """
local rec, log = KEYS[1], KEYS[2]
local now, by, retention = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', rec) == 0 then return nil end
local first = 0
if redis.call('HSETNX', rec, 'acknowledged_ms', now) == 1 then
  redis.call('HSET', rec, 'acknowledged_by', by)
  first = 1
end
redis.call('RPUSH', log, cjson.encode({action='ack', by=by, at=now}))
redis.call('PEXPIRE', rec, retention)
redis.call('PEXPIRE', log, retention)
return {first, redis.call('HGETALL', rec), redis.call('LRANGE', log, 0, -1)}
"""
"""The first acknowledgement is the one kept (and timed); later ones are
only logged."""


@dataclass(frozen=True)
class Keys:
    prefix: str

    def alert(self, alert_id: str) -> str:
        return f"{self.prefix}alert:{alert_id}"

    def actions(self, alert_id: str) -> str:
        return f"{self.prefix}actions:{alert_id}"

    def open(self, opportunity_id: str, rule_id: str) -> str:
        return f"{self.prefix}open:{opportunity_id}|{rule_id}"

    def snooze(self, opportunity_id: str, rule_id: str) -> str:
        return f"{self.prefix}snooze:{opportunity_id}|{rule_id}"

    def budget(self, owner: str, day: str) -> str:
        return f"{self.prefix}budget:{owner}:{day}"


@dataclass(frozen=True)
class DecideCall:
    keys: list[str]
    args: list[str | int]


def decide_call(
    records: Sequence[AlertRecord], rules: PolicyRules, keys: Keys, now_ms: int, token: str
) -> DecideCall:
    day, budget_ttl = budget_day(now_ms, rules.timezone)
    names: list[str] = []
    per_record: list[str | int] = []
    for record in records:
        opp, rule = record.opportunity_id, record.rule_id
        if isinstance(record, Alert):
            owner = owner_of(record)
            names += [keys.alert(record.alert_id), keys.open(opp, rule),
                      keys.snooze(opp, rule), keys.budget(owner, day)]
            per_record += ["a", record.alert_id, threshold_reason(record, rules) or "", opp, rule,
                           record.owner_id or ""]
        else:
            # Unused keys are still declared so every record takes 4 slots.
            names += [keys.alert(record.alert_id), keys.open(opp, rule),
                      keys.snooze(opp, rule), keys.alert(record.alert_id)]
            per_record += ["r", record.alert_id, "", opp, rule, ""]
    args: list[str | int] = [now_ms, rules.dedup_window_ms, rules.daily_budget, budget_ttl,
                             rules.retention_ms, token]
    return DecideCall(names, args + per_record)


def read_decisions(
    records: Sequence[AlertRecord], answer: Sequence[str]
) -> list[Decision | None]:
    if len(answer) != 3 * len(records):
        raise ValueError(f"decide script answered {len(answer)} values for {len(records)} records")
    decisions: list[Decision | None] = []
    for i, record in enumerate(records):
        verdict, reason, dup = answer[3 * i: 3 * i + 3]
        if not isinstance(record, Alert):
            decisions.append(None)
        elif verdict == "duplicate":
            decisions.append(Decision("duplicate", None, dup or None))
        elif verdict in ("realtime", "digest"):
            decisions.append(Decision(
                "realtime" if verdict == "realtime" else "digest",
                cast(DeliveryReason, reason) if reason else None,
            ))
        else:
            raise ValueError(f"decide script answered {verdict!r} for alert {record.alert_id}")
    return decisions


def release_call(
    records: Sequence[AlertRecord],
    decisions: Sequence[Decision | None],
    rules: PolicyRules,
    keys: Keys,
    now_ms: int,
    token: str,
) -> DecideCall | None:
    """The call that undoes a decision call (None: nothing to undo)."""
    day, _ = budget_day(now_ms, rules.timezone)
    names: list[str] = []
    args: list[str | int] = [token]
    for record, decision in zip(records, decisions, strict=True):
        if not isinstance(record, Alert) or decision is None:
            continue
        counted = decision.verdict == "realtime" or decision.reason == "over_budget"
        names += [keys.alert(record.alert_id), keys.open(record.opportunity_id, record.rule_id),
                  keys.budget(owner_of(record), day)]
        args += [record.alert_id, "1" if counted else "0"]
    return DecideCall(names, args) if names else None
