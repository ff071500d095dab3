//! Envelope checks worded as the Python sources word them: pydantic's
//! messages for its own checks (strict types, literals, required keys),
//! joined by `base.describe` into one schema violation naming every bad key.

use crate::json::{Json, Object};
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
/// Why a key read after `Problems::finish` succeeded is always there.
pub const CHECKED: &str = "every missing or bad key was recorded as a problem";
pub const TOO_SHORT: &str = "String should have at least 1 character";

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

/// `str` (strict, empty allowed).
pub fn any_str<'a>(value: &'a Json<'a>, path: &str, problems: &mut Problems) -> Option<&'a str> {
    match value {
        Json::Str(text) => Some(text),
        _ => {
            problems.wrong(path, STRING, value);
            None
        }
    }
}

/// `list[T]`: every bad item is recorded, as pydantic reports them all.
pub fn list_of<'a, T>(
    value: &'a Json<'a>,
    path: &str,
    problems: &mut Problems,
    item: impl Fn(&'a Json<'a>, &str, &mut Problems) -> Option<T>,
) -> Option<Vec<T>> {
    let Json::Array(items) = value else {
        problems.wrong(path, LIST, value);
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, each) in items.iter().enumerate() {
        match item(each, &format!("{path}[{i}]"), problems) {
            Some(read) => out.push(read),
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

/// Reads the keys a schema declares from one object, recording every
/// problem. Paths are written out whole by the caller (a key is the path
/// without the object's prefix), so that reading a valid event allocates no
/// path strings.
pub struct Reader<'a, 'p> {
    object: &'a Object<'a>,
    prefix: usize,
    pub problems: &'p mut Problems,
}

impl<'a, 'p> Reader<'a, 'p> {
    pub fn new(object: &'a Object<'a>, prefix: &str, problems: &'p mut Problems) -> Self {
        Reader {
            object,
            prefix: prefix.len(),
            problems,
        }
    }

    /// A required key: missing is a problem.
    pub fn required<T>(
        &mut self,
        path: &str,
        check: impl FnOnce(&'a Json<'a>, &str, &mut Problems) -> Option<T>,
    ) -> Option<T> {
        match self.object.get(&path[self.prefix..]) {
            Some(value) => check(value, path, self.problems),
            None => {
                self.problems.missing(path);
                None
            }
        }
    }

    /// A `NotRequired` key: None when absent (or invalid, which `finish` reports).
    pub fn optional<T>(
        &mut self,
        path: &str,
        check: impl FnOnce(&'a Json<'a>, &str, &mut Problems) -> Option<T>,
    ) -> Option<T> {
        let value = self.object.get(&path[self.prefix..])?;
        check(value, path, self.problems)
    }
}
