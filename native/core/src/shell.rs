//! What the stream's state agent asks of the core per unit of work: the
//! `hygiene.changes` messages of one partition applied in one call (or a
//! sweep of the due states), with everything the I/O shell then needs back
//! (records in publish order, each touched state's stored form with its
//! next due time, the few values the regroupings read, the rejected
//! changes), so no change crosses into Python on its own.

use crate::engine::{Change, Engine, Outcome};
use crate::names::Name;
use crate::state::{Keyed, OpportunityState};
use crate::stored;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::value::RawValue;
#[cfg(test)]
use serde_json::{json, Value};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub const ALERT: u8 = 0;
pub const HISTORY: u8 = 1;
pub const COMMAND: u8 = 2;

/// Where a touched state came from before this unit.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Held by the core already.
    Held = 0,
    /// Read from the table through the shell's loader in this call.
    Loaded = 1,
    /// Not in the table: a new opportunity.
    New = 2,
}

pub struct Touched {
    pub opportunity_id: String,
    /// The stored form (`state_to_json`), `next_due_ms` stamped in.
    pub stored: Vec<u8>,
    /// `light` after the unit.
    pub light: Vec<u8>,
    pub origin: Origin,
    /// `next_due_ms` as stamped in `stored`.
    pub next_due: Option<i64>,
    /// `light` as loaded, for an `Origin::Loaded` state.
    pub before: Option<Vec<u8>>,
    /// The latest event time after the unit (regroup entries are stamped
    /// with it; a filtered light form leaves it out).
    pub high_water_ms: i64,
}

impl Touched {
    /// Filled in by `Run::finish` once the state is done with.
    fn new(opportunity_id: &str, origin: Origin, before: Option<Vec<u8>>) -> Self {
        Touched {
            opportunity_id: opportunity_id.to_owned(),
            stored: Vec::new(),
            light: Vec::new(),
            origin,
            next_due: None,
            before,
            high_water_ms: 0,
        }
    }
}

pub struct Reject {
    pub opportunity_id: Option<String>,
    /// The change's own JSON, as it came in the message.
    pub raw: Vec<u8>,
    pub why: String,
}

#[derive(Default)]
pub struct Unit {
    /// (ALERT | HISTORY | COMMAND, index in `touched`, the record's JSON),
    /// in the order the Python state processor publishes them.
    pub records: Vec<(u8, usize, Vec<u8>)>,
    pub touched: Vec<Touched>,
    pub rejects: Vec<Reject>,
    /// Changes read (applied or rejected).
    pub changes: usize,
}

/// Reads one opportunity's stored state (None: not stored).
pub type Load<'a, E> = dyn FnMut(&str) -> Result<Option<OpportunityState>, E> + 'a;

#[derive(Deserialize)]
struct Envelope<'a> {
    kind: String,
    #[serde(borrow)]
    changes: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct IdOnly {
    opportunity_id: String,
}

/// `Engine.next_due`: when a sweep next needs the state, from the later of
/// `now_ms` and its latest event; the memo's answer while nothing fell due.
pub fn next_due(engine: &Engine, state: &OpportunityState, now_ms: i64) -> Option<i64> {
    let now = now_ms.max(state.high_water_ms);
    if let Some((at, due)) = state.memo.evaluated {
        if at <= now && due.is_none_or(|d| now < d) {
            return due;
        }
    }
    crate::checks::next_due(state, &engine.rules, now)
}

/// What the regroupings' membership functions read, and the time their
/// entries are stamped with: a small object Python can build a light
/// `OpportunityState` from without parsing the whole stored form.
pub fn light(state: &OpportunityState, only: Option<&[Name]>) -> Vec<u8> {
    stored::light(state, only)
}

/// The messages' changes, each still in its own JSON, checked to be
/// change batches before anything is applied (a message that is not one
/// fails the whole call and leaves the core as it was).
pub fn split(messages: &[&[u8]]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for (number, raw) in messages.iter().enumerate() {
        // Ingest packs what it routes (`hygiene_decode::packed`).
        let raw =
            hygiene_decode::packed::unpack(raw).map_err(|e| format!("message {number}: {e}"))?;
        let envelope: Envelope = serde_json::from_slice(&raw)
            .map_err(|e| format!("message {number} is not a change batch: {e}"))?;
        if envelope.kind != "changes" {
            return Err(format!(
                "message {number} is a {:?} message, not a change batch",
                envelope.kind
            ));
        }
        out.extend(envelope.changes.iter().map(|c| c.get().as_bytes().to_vec()));
    }
    Ok(out)
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

fn parse(raw: &[u8]) -> Result<(Change, i64), String> {
    let change: Change =
        serde_json::from_slice(raw).map_err(|e| format!("not an OpportunityChange: {e}"))?;
    let occurred = Engine::occurred_ms(&change)?;
    Ok((change, occurred))
}

struct Run<'e> {
    engine: &'e Engine,
    only: Option<&'e [Name]>,
    unit: Unit,
    scratch: Outcome,
}

impl Run<'_> {
    fn collect(&mut self, touched: usize) {
        let scratch = &mut self.scratch;
        let records = &mut self.unit.records;
        records.extend(scratch.alerts.drain(..).map(|r| (ALERT, touched, r)));
        records.extend(scratch.history.drain(..).map(|r| (HISTORY, touched, r)));
        records.extend(scratch.commands.drain(..).map(|r| (COMMAND, touched, r)));
    }

    fn finish(&mut self, state: &mut OpportunityState, now_ms: i64, touched: usize) {
        state.next_due_ms = next_due(self.engine, state, now_ms);
        let entry = &mut self.unit.touched[touched];
        entry.next_due = state.next_due_ms;
        entry.stored = stored::dump(state);
        entry.light = light(state, self.only);
        entry.high_water_ms = state.high_water_ms;
    }
}

/// (index in the core's states, where it came from, its light form as loaded).
type Fetched = (usize, Origin, Option<Vec<u8>>);

/// Takes the state of `id` into `states` (held, else loaded, else new when
/// `create`); None when it is neither held nor stored and not created.
fn fetch<E>(
    states: &mut Keyed<OpportunityState>,
    id: &str,
    load: &mut Load<'_, E>,
    create: bool,
    only: Option<&[Name]>,
) -> Result<Option<Fetched>, E> {
    if let Some(index) = states.get_index_of(id) {
        return Ok(Some((index, Origin::Held, None)));
    }
    let (state, origin, before) = match load(id)? {
        Some(state) => {
            let before = light(&state, only);
            (state, Origin::Loaded, Some(before))
        }
        None if create => (OpportunityState::new(id), Origin::New, None),
        None => return Ok(None),
    };
    let index = states.insert_full(id.to_owned(), state).0;
    Ok(Some((index, origin, before)))
}

/// A unit's changes read and grouped by opportunity, before any state is
/// needed: done without the GIL, and it names the states to load.
pub struct Prepared {
    changes: Vec<Vec<u8>>,
    parsed: Vec<Option<(Change, i64)>>,
    /// Opportunities in the order first seen.
    order: Vec<String>,
    groups: FxHashMap<String, Vec<usize>>,
    rejects: Vec<Reject>,
}

impl Prepared {
    /// Reads `changes`; one that cannot be read is rejected (kept aside,
    /// reported by `apply_prepared`).
    pub fn new(changes: Vec<Vec<u8>>) -> Self {
        let mut parsed: Vec<Option<(Change, i64)>> = Vec::with_capacity(changes.len());
        let mut order: Vec<String> = Vec::new();
        let mut groups: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        let mut rejects = Vec::new();
        for (index, raw) in changes.iter().enumerate() {
            match parse(raw) {
                Ok((change, occurred)) => {
                    match groups.get_mut(change.opportunity_id.as_str()) {
                        Some(group) => group.push(index),
                        None => {
                            order.push(change.opportunity_id.clone());
                            groups.insert(change.opportunity_id.clone(), vec![index]);
                        }
                    }
                    parsed.push(Some((change, occurred)));
                }
                Err(why) => {
                    let opportunity_id = serde_json::from_slice::<IdOnly>(raw)
                        .ok()
                        .map(|c| c.opportunity_id);
                    rejects.push(Reject {
                        opportunity_id,
                        raw: raw.clone(),
                        why,
                    });
                    parsed.push(None);
                }
            }
        }
        Prepared {
            changes,
            parsed,
            order,
            groups,
            rejects,
        }
    }

    /// The opportunities the changes are about, first seen first.
    pub fn ids(&self) -> &[String] {
        &self.order
    }
}

/// Applies every change of `messages` as the Python state processor does:
/// grouped by opportunity (first seen first), each group in order. A change
/// that cannot be read is rejected and skipped; one the engine panics on is
/// rejected and its opportunity's other changes re-applied to the state as
/// it was before the unit, so the state is as if that change never came.
/// On an error (the loader's), what this call touched is dropped.
pub fn apply_changes<E>(
    engine: &Engine,
    only: Option<&[Name]>,
    states: &mut Keyed<OpportunityState>,
    changes: Vec<Vec<u8>>,
    now_ms: i64,
    load: &mut Load<'_, E>,
) -> Result<Unit, E> {
    apply_prepared(engine, only, states, Prepared::new(changes), now_ms, load)
}

/// `apply_changes` of changes already read.
pub fn apply_prepared<E>(
    engine: &Engine,
    only: Option<&[Name]>,
    states: &mut Keyed<OpportunityState>,
    prepared: Prepared,
    now_ms: i64,
    load: &mut Load<'_, E>,
) -> Result<Unit, E> {
    let Prepared {
        changes,
        mut parsed,
        order,
        groups,
        rejects,
    } = prepared;
    let mut run = Run {
        engine,
        only,
        unit: Unit::default(),
        scratch: Outcome::default(),
    };
    run.unit.changes = changes.len();
    run.unit.rejects = rejects;
    for id in &order {
        let group = &groups[id];
        if let Err(e) = apply_group(
            &mut run,
            states,
            id,
            group,
            &changes,
            &mut parsed,
            now_ms,
            load,
        ) {
            for touched in &run.unit.touched {
                states.shift_remove(&touched.opportunity_id);
            }
            states.shift_remove(id);
            return Err(e);
        }
    }
    Ok(run.unit)
}

#[allow(clippy::too_many_arguments)]
fn apply_group<E>(
    run: &mut Run<'_>,
    states: &mut Keyed<OpportunityState>,
    id: &str,
    group: &[usize],
    changes: &[Vec<u8>],
    parsed: &mut [Option<(Change, i64)>],
    now_ms: i64,
    load: &mut Load<'_, E>,
) -> Result<(), E> {
    let (mut index, origin, before) = fetch(states, id, load, true, run.only)?.expect("created");
    let touched = run.unit.touched.len();
    run.unit.touched.push(Touched::new(id, origin, before));
    let mark = run.unit.records.len();
    let mut skipped: Vec<usize> = Vec::new();
    loop {
        let mut failed = None;
        for &at in group {
            if skipped.contains(&at) {
                continue;
            }
            // The first pass moves the parsed change in; a pass after a
            // panic reads it again.
            let (change, occurred) = match parsed[at].take() {
                Some(parsed) => parsed,
                None => parse(&changes[at]).expect("it was read before"),
            };
            let state = &mut states[index];
            let engine = run.engine;
            let scratch = &mut run.scratch;
            match catch_unwind(AssertUnwindSafe(|| {
                #[cfg(test)]
                if change.event_id == tests::POISON {
                    panic!("a test's poison change");
                }
                engine.apply(state, change, occurred, scratch)
            })) {
                Ok(()) => run.collect(touched),
                Err(payload) => {
                    failed = Some((at, panic_text(payload.as_ref())));
                    break;
                }
            }
        }
        let Some((at, why)) = failed else { break };
        skipped.push(at);
        run.unit.rejects.push(Reject {
            opportunity_id: Some(id.to_owned()),
            raw: changes[at].clone(),
            why: format!("engine failed: {why}"),
        });
        run.unit.records.truncate(mark);
        run.scratch = Outcome::default();
        // Start again from the state as it was before the unit.
        states.shift_remove(id);
        index = fetch(states, id, load, true, run.only)?.expect("created").0;
    }
    if origin == Origin::New && skipped.len() == group.len() {
        // Nothing was applied to a state never stored: there is none.
        states.shift_remove(id);
        run.unit.touched.pop();
        return Ok(());
    }
    let state = &mut states[index];
    run.finish(state, now_ms, touched);
    Ok(())
}

/// `Engine.sweep` at `now_ms` of exactly the states of `ids` (loaded when
/// not held; skipped when not stored), each re-armed with its next due time.
/// A panic fails the call; then, as on the loader's error, what this call
/// touched is dropped.
pub fn sweep<E>(
    engine: &Engine,
    only: Option<&[Name]>,
    states: &mut Keyed<OpportunityState>,
    ids: &[String],
    now_ms: i64,
    load: &mut Load<'_, E>,
) -> Result<Result<Unit, String>, E> {
    let mut run = Run {
        engine,
        only,
        unit: Unit::default(),
        scratch: Outcome::default(),
    };
    let fail = |run: &Run<'_>, states: &mut Keyed<OpportunityState>, id: &str| {
        for touched in &run.unit.touched {
            states.shift_remove(&touched.opportunity_id);
        }
        states.shift_remove(id);
    };
    for id in ids {
        let found = match fetch(states, id, load, false, run.only) {
            Ok(found) => found,
            Err(e) => {
                fail(&run, states, id);
                return Err(e);
            }
        };
        let Some((index, origin, before)) = found else {
            continue;
        };
        let touched = run.unit.touched.len();
        run.unit.touched.push(Touched::new(id, origin, before));
        let state = &mut states[index];
        let scratch = &mut run.scratch;
        if let Err(payload) =
            catch_unwind(AssertUnwindSafe(|| engine.sweep(state, now_ms, scratch)))
        {
            fail(&run, states, id);
            return Ok(Err(format!(
                "engine failed sweeping {id}: {}",
                panic_text(payload.as_ref())
            )));
        }
        run.collect(touched);
        run.finish(state, now_ms, touched);
    }
    Ok(Ok(run.unit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;
    use std::convert::Infallible;

    /// A change the engine panics on in tests only (none is known for real).
    pub const POISON: &str = "ev-poison";

    fn engine() -> Engine {
        // `native_rules(default_rules())`, written by processor/rules/export.py.
        let rules = RuleSet::from_json(include_bytes!("testdata/default_rules.json"));
        Engine::new(rules.expect("the exported rules load"))
    }

    fn change(event_id: &str, day: u32, fields: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "event_id": event_id, "opportunity_id": "006A",
            "occurred_at": format!("2026-01-{day:02}T09:00:00+00:00"), "op": "upsert",
            "fields": fields,
        }))
        .unwrap()
    }

    #[test]
    fn split_reads_packed_and_plain_batches_alike() {
        let one = change("ev-1", 2, healthy());
        let two = change("ev-2", 3, json!({"stage": "Solution"}));
        let plain = [
            br#"{"kind":"changes","changes":["#.as_slice(),
            &one,
            b",",
            &two,
            b"]}",
        ]
        .concat();
        let packed = hygiene_decode::packed::pack(&plain);
        let expected = vec![one.clone(), two.clone()];
        assert_eq!(split(&[&plain]).unwrap(), expected);
        assert_eq!(split(&[&packed]).unwrap(), expected);
        let broken = &packed[..packed.len() - 2];
        assert!(split(&[&plain, broken])
            .unwrap_err()
            .starts_with("message 1: "));
    }

    fn healthy() -> Value {
        json!({"name": "Acme renewal", "stage": "Discovery", "owner_id": "005OWNER1",
               "amount": 40000.0, "currency": "USD", "close_date": "2026-03-31",
               "identify_pain": "Manual reconciliation", "metrics": "Close in 4 days",
               "next_step": "Demo", "next_step_date": "2026-01-20"})
    }

    fn run(changes: Vec<Vec<u8>>, stored: Option<&[u8]>) -> (Unit, Vec<u8>) {
        let engine = engine();
        let mut states = Keyed::default();
        let mut load = |_: &str| -> Result<Option<OpportunityState>, Infallible> {
            Ok(stored.map(|raw| stored::load(&serde_json::from_slice(raw).unwrap()).unwrap()))
        };
        let unit = apply_changes(&engine, None, &mut states, changes, 0, &mut load).unwrap();
        let dumped = stored::dump(&states["006A"]);
        (unit, dumped)
    }

    #[test]
    fn a_change_the_engine_panics_on_is_rejected_and_the_others_applied_as_without_it() {
        let first = change("ev-1", 5, healthy());
        let poison = change(POISON, 6, json!({"stage": "Solution"}));
        let later = change(
            "ev-3",
            7,
            json!({"amount": 55000.0, "stage": "Negotiation"}),
        );
        for stored in [None, Some(run(vec![first.clone()], None).1)] {
            let before = if stored.is_some() {
                vec![]
            } else {
                vec![first.clone()]
            };
            let with = [before.clone(), vec![poison.clone(), later.clone()]].concat();
            let without = [before, vec![later.clone()]].concat();
            let (unit, state) = run(with, stored.as_deref());
            let (reference, expected) = run(without, stored.as_deref());
            assert_eq!(unit.rejects.len(), 1);
            assert_eq!(unit.rejects[0].raw, poison);
            assert!(unit.rejects[0].why.contains("poison"));
            assert_eq!(state, expected);
            assert_eq!(unit.records, reference.records);
            assert!(!unit.records.is_empty());
            assert_eq!(unit.touched.len(), 1);
            assert_eq!(unit.touched[0].stored, expected);
        }
    }

    #[test]
    fn a_new_opportunity_whose_only_change_panics_is_not_stored() {
        let engine = engine();
        let mut states = Keyed::default();
        let mut load = |_: &str| -> Result<Option<OpportunityState>, Infallible> { Ok(None) };
        let poison = change(POISON, 6, healthy());
        let unit = apply_changes(&engine, None, &mut states, vec![poison], 0, &mut load).unwrap();
        assert_eq!(unit.rejects.len(), 1);
        assert!(unit.touched.is_empty() && unit.records.is_empty() && states.is_empty());
    }
}
