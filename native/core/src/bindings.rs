//! The Python-facing `Core`: states live here, keyed by opportunity id, and
//! the shell sends batches so the per-call overhead is paid once per batch.

use crate::engine::{Change, Engine, Outcome};
use crate::rules::RuleSet;
use crate::state::OpportunityState;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

type Triple = (Py<PyList>, Py<PyList>, Py<PyList>);

#[pyclass(module = "hygiene_core", unsendable)]
pub struct Core {
    engine: Engine,
    states: crate::state::Keyed<OpportunityState>,
    rejects: Vec<(usize, String)>,
    /// Earliest and latest event time applied (ms), for the replay's report.
    span: Option<(i64, i64)>,
}

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
            let change: Change = match serde_json::from_slice(raw.as_bytes()) {
                Ok(change) => change,
                Err(e) => {
                    self.rejects
                        .push((index, format!("not an OpportunityChange: {e}")));
                    continue;
                }
            };
            let occurred = match Engine::occurred_ms(&change) {
                Ok(occurred) => occurred,
                Err(e) => {
                    self.rejects.push((index, e));
                    continue;
                }
            };
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
            self.engine.apply(state, change, occurred, &mut outcome);
        }
        to_lists(py, &outcome)
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
