//! The Python-facing `Core`: states live here, keyed by opportunity id, and
//! the shell sends batches so the per-call overhead is paid once per batch.

use crate::engine::{Change, Engine, Outcome};
use crate::rules::RuleSet;
use crate::state::OpportunityState;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::names::Name;
use hygiene_decode::detect;
use hygiene_decode::mapping::Mappings;
use serde_json::Value;

type Triple = (Py<PyList>, Py<PyList>, Py<PyList>);

#[pyclass(module = "hygiene_core", unsendable)]
pub struct Core {
    engine: Engine,
    states: crate::state::Keyed<OpportunityState>,
    rejects: Vec<(usize, String)>,
    /// Earliest and latest event time applied (ms), for the replay's report.
    span: Option<(i64, i64)>,
    /// For `feed_many`: the decoders' field mappings and size limit.
    decoder: Option<std::rc::Rc<(Mappings, usize)>>,
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

    /// Gives the core the decoders (`hygiene_decode.Decoder`'s arguments),
    /// for `feed_many`.
    fn attach_decoder(&mut self, mappings_json: &[u8], max_bytes: usize) -> PyResult<()> {
        let mappings = Mappings::from_json(mappings_json)
            .map_err(|e| PyValueError::new_err(format!("mappings_json: {e}")))?;
        self.decoder = Some(std::rc::Rc::new((mappings, max_bytes)));
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
        let raw = serde_json::to_vec(&crate::stored::dump(state))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
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
}
