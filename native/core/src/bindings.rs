//! The Python-facing `Core`: states live here, keyed by opportunity id, and
//! the shell sends batches so the per-call overhead is paid once per batch.

use crate::engine::{Change, Engine, Outcome};
use crate::rules::RuleSet;
use crate::state::OpportunityState;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::names::Name;
use hygiene_decode::detect;
use hygiene_decode::mapping::Mappings;
use rustc_hash::FxHashMap;
use serde_json::Value;

type Triple = (Py<PyList>, Py<PyList>, Py<PyList>);

#[pyclass(module = "hygiene_core")]
pub struct Core {
    engine: Engine,
    states: crate::state::Keyed<OpportunityState>,
    rejects: Vec<(usize, String)>,
    /// Earliest and latest event time applied (ms), for the replay's report.
    span: Option<(i64, i64)>,
    /// For `feed_many`: the decoders' field mappings and size limit.
    decoder: Option<std::sync::Arc<(Mappings, usize)>>,
    /// The fields light forms keep (`set_light_fields`); None: all.
    light_fields: Option<Vec<Name>>,
}

/// (message index, reason, error) of what `feed_many` could not take.
type Dead = Vec<(usize, &'static str, String)>;

/// `feed_many`'s records (as `Triple`), ignored events, changes applied
/// and `Dead`.
type Fed = (Py<PyList>, Py<PyList>, Py<PyList>, usize, usize, Dead);

fn to_lists(py: Python<'_>, outcome: &Outcome) -> PyResult<Triple> {
    let encode = |records: &[Vec<u8>]| -> PyResult<Py<PyList>> {
        let items = records.iter().map(|r| PyBytes::new(py, r));
        Ok(PyList::new(py, items)?.unbind())
    };
    Ok((
        encode(&outcome.alerts)?,
        encode(&outcome.history)?,
        encode(&outcome.commands)?,
    ))
}

/// What the engine takes, built from what the decoders made. Exactly what
/// parsing the change's JSON would give, by construction: strings are taken
/// as they are, every other value is parsed from the JSON the decoders would
/// have written for it, and a sequence that is not an i64 (whose error text
/// only the JSON path gives) takes the JSON path.
fn change_of(decoded: &detect::Change<'_>) -> Result<Change, String> {
    let sequence = match decoded.sequence {
        None => 0,
        Some(number) => match number.as_i64() {
            Some(sequence) => sequence,
            None => return parse_change(&decoded.to_json()),
        },
    };
    let mut fields = crate::state::Fields::default();
    for (key, value) in &decoded.fields.0 {
        let value = match value.as_text() {
            Some(text) => Value::String(text.to_owned()),
            None => serde_json::from_slice(&value.to_json())
                .map_err(|e| format!("not an OpportunityChange: {e}"))?,
        };
        fields.insert(Name::of(key), value);
    }
    Ok(Change {
        event_id: decoded.event_id.clone(),
        opportunity_id: decoded.opportunity_id.to_string(),
        occurred_at: String::new(),
        occurred_us: Some(decoded.occurred_at),
        sequence,
        op: decoded.op.to_owned(),
        fields,
        nulled_fields: decoded.nulled_fields.iter().map(|n| Name::of(n)).collect(),
        full: decoded.full,
        contact_ids: decoded.contact_ids.iter().map(|c| c.to_string()).collect(),
        merged_into: decoded.merged_into.as_ref().map(|m| m.to_string()),
    })
}

fn parse_change(raw: &[u8]) -> Result<Change, String> {
    serde_json::from_slice(raw).map_err(|e| format!("not an OpportunityChange: {e}"))
}

impl Core {
    /// One change's JSON applied, or why it could not be read.
    fn apply_one(&mut self, raw: &[u8], outcome: &mut Outcome) -> Result<(), String> {
        self.apply_change(parse_change(raw)?, outcome)
    }

    fn apply_change(&mut self, change: Change, outcome: &mut Outcome) -> Result<(), String> {
        let occurred = Engine::occurred_ms(&change)?;
        self.span = Some(match self.span {
            Some((first, last)) => (first.min(occurred), last.max(occurred)),
            None => (occurred, occurred),
        });
        // Looked up before inserting: an entry() would copy the id per change.
        let index = match self.states.get_index_of(change.opportunity_id.as_str()) {
            Some(index) => index,
            None => {
                let state = OpportunityState::new(&change.opportunity_id);
                self.states
                    .insert_full(change.opportunity_id.clone(), state)
                    .0
            }
        };
        let (_, state) = self
            .states
            .get_index_mut(index)
            .expect("just found or inserted");
        self.engine.apply(state, change, occurred, outcome);
        Ok(())
    }
}

#[pymethods]
impl Core {
    #[new]
    fn new(rules_json: &[u8]) -> PyResult<Self> {
        let rules = RuleSet::from_json(rules_json).map_err(PyValueError::new_err)?;
        Ok(Core {
            engine: Engine::new(rules),
            states: Default::default(),
            rejects: Vec::new(),
            span: None,
            decoder: None,
            light_fields: None,
        })
    }

    /// Applies the changes in order, as `Engine.apply` per change would. A
    /// change that cannot be read is skipped, not fatal to the batch (the
    /// replay dead-letters such a change and goes on): `take_rejects` says
    /// which.
    fn apply_batch(
        &mut self,
        py: Python<'_>,
        changes: Vec<Bound<'_, PyBytes>>,
    ) -> PyResult<Triple> {
        let mut outcome = Outcome::default();
        for (index, raw) in changes.iter().enumerate() {
            if let Err(why) = self.apply_one(raw.as_bytes(), &mut outcome) {
                self.rejects.push((index, why));
            }
        }
        to_lists(py, &outcome)
    }

    /// Light forms (`apply_messages`, `sweep_keys`) keep only these fields
    /// and leave out `high_water_ms`: the fields the shell's regroupings
    /// read, so a change to any other leaves the light form as it was.
    fn set_light_fields(&mut self, names: Vec<String>) {
        self.light_fields = Some(names.iter().map(|n| Name::of(n)).collect());
    }

    /// Gives the core the decoders (`hygiene_decode.Decoder`'s arguments),
    /// for `feed_many`.
    fn attach_decoder(&mut self, mappings_json: &[u8], max_bytes: usize) -> PyResult<()> {
        let mappings = Mappings::from_json(mappings_json)
            .map_err(|e| PyValueError::new_err(format!("mappings_json: {e}")))?;
        self.decoder = Some(std::sync::Arc::new((mappings, max_bytes)));
        Ok(())
    }

    /// Decodes each message (as `Decoder.decode`) and applies its changes
    /// (as `apply_batch`), message by message, in one call: no change crosses
    /// into Python. Returns the records, how many events were ignored, how
    /// many changes were applied, and what could not be taken, as (message index, reason, error) in order: a
    /// decoder's reject (its reason and text) or a change the core could not
    /// read ("processing_error").
    fn feed_many(&mut self, py: Python<'_>, raws: Vec<Bound<'_, PyBytes>>) -> PyResult<Fed> {
        let Some(decoder) = self.decoder.clone() else {
            return Err(PyValueError::new_err("attach_decoder first"));
        };
        let (mappings, max_bytes) = (&decoder.0, decoder.1);
        let mut outcome = Outcome::default();
        let mut ignored = 0;
        let mut applied = 0;
        let mut dead: Dead = Vec::new();
        for (index, raw) in raws.iter().enumerate() {
            // A message's changes are applied once it is decoded, so that
            // its decoding rejects come first, as `decode` then `apply_batch`
            // would have them.
            let mut changes = Vec::new();
            let decoded = detect::decode_each(raw.as_bytes(), mappings, max_bytes, &mut |c| {
                changes.push(change_of(c))
            });
            ignored += decoded.ignored;
            dead.extend(
                decoded
                    .rejects
                    .into_iter()
                    .map(|(reason, error)| (index, reason, error)),
            );
            for change in changes {
                match change.and_then(|change| self.apply_change(change, &mut outcome)) {
                    Ok(()) => applied += 1,
                    Err(why) => dead.push((index, "processing_error", why)),
                }
            }
        }
        let (alerts, history, commands) = to_lists(py, &outcome)?;
        Ok((alerts, history, commands, ignored, applied, dead))
    }

    /// The changes skipped since the last call, as (index in its batch,
    /// why), oldest first.
    fn take_rejects(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.rejects)
    }

    /// `Engine.sweep` over every state, in the order they were first seen.
    fn sweep_all(&mut self, py: Python<'_>, now_ms: i64) -> PyResult<Triple> {
        let mut outcome = Outcome::default();
        for state in self.states.values_mut() {
            self.engine.sweep(state, now_ms, &mut outcome);
        }
        to_lists(py, &outcome)
    }

    /// The state's stored form (schemas/state.py `state_to_json`), or None
    /// for an opportunity never seen.
    fn dump_state(&self, py: Python<'_>, opportunity_id: &str) -> PyResult<Option<Py<PyBytes>>> {
        let Some(state) = self.states.get(opportunity_id) else {
            return Ok(None);
        };
        let raw = crate::stored::dump(state);
        Ok(Some(PyBytes::new(py, &raw).unbind()))
    }

    /// Puts a stored state in place of whatever is held for its opportunity
    /// (a state read back starts without a memo and derives in full).
    fn load_state(&mut self, raw: &[u8]) -> PyResult<()> {
        let data: serde_json::Value =
            serde_json::from_slice(raw).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let state = crate::stored::load(&data).map_err(PyValueError::new_err)?;
        self.states.insert(state.opportunity_id.clone(), state);
        Ok(())
    }

    /// (earliest, latest) event time of the changes applied so far, in ms.
    fn event_span(&self) -> Option<(i64, i64)> {
        self.span
    }

    /// The opportunities held, in the order they were first seen.
    fn ids(&self) -> Vec<String> {
        self.states.keys().cloned().collect()
    }

    fn __len__(&self) -> usize {
        self.states.len()
    }

    // ---- the stream's state agent (src/shell.rs) ---------------------------

    /// Applies the changes of `hygiene.changes` messages (change batches, as
    /// the bytes came off the topic) in one call; states not held are read
    /// with `load(key) -> stored bytes | None`. Returns `shell::Unit` as
    /// (records, states, rejects): see `hygiene_core.pyi`.
    fn apply_messages<'py>(
        &mut self,
        py: Python<'py>,
        messages: Vec<Bound<'py, PyBytes>>,
        now_ms: i64,
        load: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        // Bytes are immutable and `messages` keeps them alive: their slices
        // are read without the GIL, so the worker's event loop runs on while
        // this call reads and applies (it runs in an executor thread).
        let raw: Vec<&[u8]> = messages.iter().map(|m| m.as_bytes()).collect();
        let prepared = py
            .allow_threads(|| crate::shell::split(&raw).map(crate::shell::Prepared::new))
            .map_err(PyValueError::new_err)?;
        // The states the core does not hold, read in one pass with the GIL
        // (the table's `get` is Python), parsed later without it.
        let mut preloaded: FxHashMap<String, Option<Vec<u8>>> = FxHashMap::default();
        for id in prepared.ids() {
            if !self.states.contains_key(id.as_str()) {
                preloaded.insert(id.clone(), stored_bytes(py, &load, id)?);
            }
        }
        let load = load.unbind();
        let (engine, only, states) = (&self.engine, self.light_fields.as_deref(), &mut self.states);
        let unit = py.allow_threads(move || {
            let mut loader = |id: &str| -> PyResult<Option<OpportunityState>> {
                let raw = match preloaded.get(id) {
                    Some(raw) => raw.clone(),
                    // A held state read again (its unit's changes re-applied
                    // after a panic): rare, so the GIL is taken for it.
                    None => Python::with_gil(|py| stored_bytes(py, load.bind(py), id))?,
                };
                raw.map(|raw| parse_stored(id, &raw)).transpose()
            };
            crate::shell::apply_prepared(engine, only, states, prepared, now_ms, &mut loader)
        })?;
        unit_tuple(py, unit)
    }

    /// `Engine.sweep` at `now_ms` of the states of `opportunity_ids` (read
    /// with `load` when not held, skipped when not stored); same result as
    /// `apply_messages`.
    fn sweep_keys<'py>(
        &mut self,
        py: Python<'py>,
        opportunity_ids: Vec<String>,
        now_ms: i64,
        load: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut loader = loader(py, &load);
        let unit = crate::shell::sweep(
            &self.engine,
            self.light_fields.as_deref(),
            &mut self.states,
            &opportunity_ids,
            now_ms,
            &mut loader,
        )?
        .map_err(PyRuntimeError::new_err)?;
        unit_tuple(py, unit)
    }

    /// `Engine.next_due(state, now_ms)` of a held state (None when none is
    /// held, or when no sweep will need it).
    fn next_due(&self, opportunity_id: &str, now_ms: i64) -> Option<i64> {
        let state = self.states.get(opportunity_id)?;
        crate::shell::next_due(&self.engine, state, now_ms)
    }

    /// Forgets the states of `opportunity_ids` (a unit whose outputs were
    /// not all sent: the table still holds the states before it).
    fn drop_states(&mut self, opportunity_ids: Vec<String>) {
        for id in opportunity_ids {
            self.states.shift_remove(&id);
        }
    }

    /// Forgets every state (partitions were revoked, or memory is bounded).
    fn clear(&mut self) {
        self.states = Default::default();
    }

    fn __contains__(&self, opportunity_id: &str) -> bool {
        self.states.contains_key(opportunity_id)
    }
}

fn loader<'a, 'py>(
    py: Python<'py>,
    load: &'a Bound<'py, PyAny>,
) -> impl FnMut(&str) -> PyResult<Option<OpportunityState>> + 'a
where
    'py: 'a,
{
    move |id: &str| {
        stored_bytes(py, load, id)?
            .map(|raw| parse_stored(id, &raw))
            .transpose()
    }
}

/// `load(id)`'s bytes: an opportunity's stored state, None when not stored.
fn stored_bytes(py: Python<'_>, load: &Bound<'_, PyAny>, id: &str) -> PyResult<Option<Vec<u8>>> {
    let raw = load.call1((PyBytes::new(py, id.as_bytes()),))?;
    if raw.is_none() {
        return Ok(None);
    }
    Ok(Some(raw.downcast::<PyBytes>()?.as_bytes().to_vec()))
}

fn parse_stored(id: &str, raw: &[u8]) -> PyResult<OpportunityState> {
    let data: serde_json::Value = serde_json::from_slice(raw)
        .map_err(|e| PyValueError::new_err(format!("stored state of {id}: {e}")))?;
    crate::stored::load(&data)
        .map_err(|e| PyValueError::new_err(format!("stored state of {id}: {e}")))
}

fn unit_tuple(py: Python<'_>, unit: crate::shell::Unit) -> PyResult<Bound<'_, PyTuple>> {
    let keys: Vec<Bound<'_, PyBytes>> = unit
        .touched
        .iter()
        .map(|t| PyBytes::new(py, t.opportunity_id.as_bytes()))
        .collect();
    let records = PyList::new(
        py,
        unit.records
            .iter()
            .map(|(kind, at, raw)| (*kind, keys[*at].clone(), PyBytes::new(py, raw))),
    )?;
    let states = PyList::new(
        py,
        unit.touched.iter().zip(&keys).map(|(t, key)| {
            (
                key.clone(),
                PyBytes::new(py, &t.stored),
                PyBytes::new(py, &t.light),
                t.origin as u8,
                t.next_due,
                t.before.as_ref().map(|b| PyBytes::new(py, b)),
                t.high_water_ms,
            )
        }),
    )?;
    let rejects = PyList::new(
        py,
        unit.rejects.iter().map(|r| {
            (
                r.opportunity_id
                    .as_ref()
                    .map(|id| PyBytes::new(py, id.as_bytes())),
                PyBytes::new(py, &r.raw),
                r.why.as_str(),
            )
        }),
    )?;
    let changes = unit.changes.into_pyobject(py)?;
    PyTuple::new(
        py,
        [
            records.into_any(),
            states.into_any(),
            rejects.into_any(),
            changes.into_any(),
        ],
    )
}
