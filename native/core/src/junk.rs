//! Filler detection (processor/rules/junk.py).

use crate::names::{self, Name};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use serde_json::Value;
use std::sync::{Mutex, MutexGuard};

const DATE_FIELDS: [Name; 4] = [
    names::CLOSE_DATE,
    names::NEXT_STEP_DATE,
    names::NEXT_MEETING_DATE,
    names::LAST_ACTIVITY_DATE,
];
const MEMO_LIMIT: usize = 200_000;

pub struct JunkDetector {
    values: HashSet<String>,
    pattern: Option<fancy_regex::Regex>,
    dates: HashSet<String>,
    min_length: usize,
    /// The same MEDDICC answer is judged on every event of its deal; the
    /// backtracking regex is the expensive part. A mutex (uncontended: one
    /// call at a time) so the core can run off the Python thread.
    memo: Mutex<HashMap<String, bool>>,
}

impl JunkDetector {
    pub fn new(
        values: Vec<String>,
        patterns: &[String],
        placeholder_dates: Vec<String>,
        min_length: usize,
    ) -> Result<Self, String> {
        // The patterns are joined as Python joins them, so group numbers
        // (back-references) mean the same in both engines.
        let pattern = if patterns.is_empty() {
            None
        } else {
            let joined: Vec<String> = patterns.iter().map(|p| format!("(?:{p})")).collect();
            let full = format!("(?i)\\A(?:{})\\z", joined.join("|"));
            Some(fancy_regex::Regex::new(&full).map_err(|e| format!("junk pattern: {e}"))?)
        };
        Ok(JunkDetector {
            values: values.into_iter().collect(),
            pattern,
            dates: placeholder_dates.into_iter().collect(),
            min_length,
            memo: Mutex::new(HashMap::default()),
        })
    }

    pub fn is_junk(&self, field: Name, value: &Value) -> bool {
        if DATE_FIELDS.contains(&field) {
            return self.is_placeholder_date(value);
        }
        let Value::String(text) = value else {
            return false;
        };
        if let Some(&verdict) = self.memo().get(text) {
            return verdict;
        }
        let verdict = self.judge(text);
        let mut memo = self.memo();
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(text.clone(), verdict);
        verdict
    }

    fn memo(&self) -> MutexGuard<'_, HashMap<String, bool>> {
        // A panic elsewhere in the engine cannot leave the memo half
        // written (an insert is all or nothing): a poisoned lock is fine.
        self.memo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn judge(&self, value: &str) -> bool {
        let text = value.trim();
        if text.chars().count() < self.min_length
            || self.values.contains(&crate::pyvalue::casefold(text))
        {
            return true;
        }
        self.pattern
            .as_ref()
            .is_some_and(|p| p.is_match(text).unwrap_or(false))
    }

    pub fn is_placeholder_date(&self, value: &Value) -> bool {
        matches!(value, Value::String(s) if self.dates.contains(s))
    }
}

pub fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}
