//! Envelope checks worded as the Python sources word them: pydantic's
//! messages for its own checks (strict types, literals, required keys),
//! joined by `base.describe` into one schema violation naming every bad key.

use crate::json::Json;
use serde_json::Number;
use std::borrow::Cow;

use crate::error::Failure;
use crate::pyrepr::{describe, str_repr, strip};

pub const STRING: &str = "Input should be a valid string";
pub const INTEGER: &str = "Input should be a valid integer";
pub const BOOLEAN: &str = "Input should be a valid boolean";
pub const NUMBER: &str = "Input should be a valid number";
pub const LIST: &str = "Input should be a valid list";
pub const DICT: &str = "Input should be a valid dictionary";
const TOO_SHORT: &str = "String should have at least 1 character";

#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, path: &str, message: &str) {
        let path = path.trim_start_matches('.');
        let path = if path.is_empty() { "(event)" } else { path };
        self.0.push(format!("{path}: {message}"));
    }

    pub fn missing(&mut self, path: &str) {
        self.push(path, "Field required");
    }

    pub fn wrong(&mut self, path: &str, message: &str, input: &Json) {
        self.push(path, &format!("{message}, got {}", describe(input)));
    }

    /// Our own validators' words (pydantic's `value_error`), shown as they are.
    pub fn value_error(&mut self, path: &str, message: &str) {
        self.push(path, message);
    }

    pub fn finish(self) -> Result<(), Failure> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Failure::Input {
                reason: "schema_violation",
                message: self.0.join("; "),
            })
        }
    }
}

/// `base._key_path` for one more key: `.name` when it reads as a name.
pub fn child(path: &str, key: &str) -> String {
    let plain = key.chars().filter(|c| *c != '_').collect::<String>();
    if !plain.is_empty() && plain.chars().all(char::is_alphanumeric) {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", str_repr(key))
    }
}

pub fn non_empty<'a>(value: &'a Json<'a>, path: &str, problems: &mut Problems) -> Option<&'a str> {
    match value {
        Json::Str(text) if text.is_empty() => {
            problems.wrong(path, TOO_SHORT, value);
            None
        }
        Json::Str(text) => Some(text),
        _ => {
            problems.wrong(path, STRING, value);
            None
        }
    }
}

pub fn strict_int<'a>(
    value: &'a Json<'a>,
    path: &str,
    problems: &mut Problems,
) -> Option<&'a Number> {
    match value {
        Json::Number(number) if !number.is_f64() => Some(number),
        _ => {
            problems.wrong(path, INTEGER, value);
            None
        }
    }
}

pub fn strict_bool(value: &Json, path: &str, problems: &mut Problems) -> Option<bool> {
    match value {
        Json::Bool(flag) => Some(*flag),
        _ => {
            problems.wrong(path, BOOLEAN, value);
            None
        }
    }
}

/// `list[str]`, or `list[NonEmpty]` when `non_empty_items`.
pub fn strings<'a>(
    value: &'a Json<'a>,
    path: &str,
    non_empty_items: bool,
    problems: &mut Problems,
) -> Option<Vec<&'a str>> {
    let Json::Array(items) = value else {
        problems.wrong(path, LIST, value);
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let place = format!("{path}[{i}]");
        let read = if non_empty_items {
            non_empty(item, &place, problems)
        } else if let Json::Str(text) = item {
            Some(text.as_ref())
        } else {
            problems.wrong(&place, STRING, item);
            None
        };
        match read {
            Some(text) => out.push(text),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

pub fn literal(
    value: &Json,
    options: &[&'static str],
    path: &str,
    problems: &mut Problems,
) -> Option<&'static str> {
    if let Json::Str(text) = value {
        if let Some(found) = options.iter().find(|o| **o == text.as_ref()) {
            return Some(found);
        }
    }
    let quoted: Vec<String> = options.iter().map(|o| format!("'{o}'")).collect();
    let message = match quoted.split_last() {
        Some((last, [])) => format!("Input should be {last}"),
        Some((last, rest)) => format!("Input should be {} or {last}", rest.join(", ")),
        None => "Input should be".to_owned(),
    };
    problems.wrong(path, &message, value);
    None
}

/// `base._vendor_id`: a non-empty string (stripped) or an integer.
pub fn vendor_id<'a>(value: &'a Json<'a>) -> Result<Cow<'a, str>, String> {
    match value {
        Json::Str(text) if !strip(text).is_empty() => Ok(Cow::Borrowed(strip(text))),
        Json::Number(number) if !number.is_f64() => Ok(Cow::Owned(number.to_string())),
        _ => Err(format!(
            "expected an id (string or integer), got {}",
            describe(value)
        )),
    }
}

pub fn vendor_id_at<'a>(
    value: &'a Json<'a>,
    path: &str,
    problems: &mut Problems,
) -> Option<Cow<'a, str>> {
    match vendor_id(value) {
        Ok(id) => Some(id),
        Err(message) => {
            problems.value_error(path, &message);
            None
        }
    }
}

pub fn vendor_ids<'a>(
    value: &'a Json<'a>,
    path: &str,
    problems: &mut Problems,
) -> Option<Vec<Cow<'a, str>>> {
    let Json::Array(items) = value else {
        problems.wrong(path, LIST, value);
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match vendor_id_at(item, &format!("{path}[{i}]"), problems) {
            Some(id) => out.push(id),
            None => ok = false,
        }
    }
    ok.then_some(out)
}
