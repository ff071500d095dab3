//! The normalized change and its JSON, written the way
//! `orjson.dumps(change.__dict__)` writes it (`stream.messages.encode_changes`).

use crate::json::Json;
use serde_json::Number;
use std::borrow::Cow;

use crate::isotime;

/// A canonical field's value after coercion. Borrowed where Python would
/// keep the decoded object (a stripped string is a slice of the input).
#[derive(Clone, Debug)]
pub enum FieldValue<'a> {
    Text(Cow<'a, str>),
    /// An int, float or bool kept as the JSON held it.
    Json(&'a Json<'a>),
    Float(f64),
    /// `int(float)`: exact decimal digits, since Python ints have no bound.
    Integer(String),
}

/// A dict in insertion order with Python's update-in-place semantics.
#[derive(Clone, Debug, Default)]
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, FieldValue<'a>)>);

impl<'a> Fields<'a> {
    pub fn set(&mut self, key: Cow<'a, str>, value: FieldValue<'a>) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn pop(&mut self, key: &str) {
        if let Some(at) = self.0.iter().position(|(k, _)| k == key) {
            self.0.remove(at);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, key);
            out.push(b':');
            value.write(out);
        }
        out.push(b'}');
    }
}

impl FieldValue<'_> {
    /// A string value's text (what most fields hold): the native core takes
    /// it as it is, and parses only the other kinds from `to_json`.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The value's JSON, as `Change::to_json` writes it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            FieldValue::Text(text) => write_str(out, text),
            FieldValue::Json(json) => write_json(out, json),
            FieldValue::Float(number) => write_float(out, *number),
            FieldValue::Integer(digits) => out.extend_from_slice(digits.as_bytes()),
        }
    }
}

#[derive(Debug)]
pub struct Change<'a> {
    pub event_id: String,
    pub source: Cow<'a, str>,
    pub opportunity_id: Cow<'a, str>,
    /// Microseconds since the epoch, UTC.
    pub occurred_at: i64,
    pub sequence: Option<&'a Number>,
    pub op: &'static str,
    pub fields: Fields<'a>,
    pub nulled_fields: Vec<Cow<'a, str>>,
    pub full: bool,
    pub contact_ids: Vec<Cow<'a, str>>,
    pub merged_into: Option<Cow<'a, str>>,
    pub gap_type: Option<&'static str>,
}

impl<'a> Change<'a> {
    pub fn new(
        event_id: String,
        source: Cow<'a, str>,
        opportunity_id: Cow<'a, str>,
        occurred_at: i64,
        op: &'static str,
    ) -> Self {
        Change {
            event_id,
            source,
            opportunity_id,
            occurred_at,
            sequence: None,
            op,
            fields: Fields::default(),
            nulled_fields: Vec::new(),
            full: false,
            contact_ids: Vec::new(),
            merged_into: None,
            gap_type: None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"{\"event_id\":");
        write_str(&mut out, &self.event_id);
        out.extend_from_slice(b",\"source\":");
        write_str(&mut out, &self.source);
        out.extend_from_slice(b",\"opportunity_id\":");
        write_str(&mut out, &self.opportunity_id);
        out.extend_from_slice(b",\"occurred_at\":");
        isotime::write_utc(&mut out, self.occurred_at);
        out.extend_from_slice(b",\"sequence\":");
        match self.sequence {
            Some(number) => out.extend_from_slice(number.to_string().as_bytes()),
            None => out.push(b'0'),
        }
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(self.op.as_bytes());
        out.extend_from_slice(b"\",\"fields\":");
        self.fields.write(&mut out);
        out.extend_from_slice(b",\"nulled_fields\":");
        write_list(&mut out, &self.nulled_fields);
        out.extend_from_slice(if self.full {
            b",\"full\":true"
        } else {
            b",\"full\":false"
        });
        out.extend_from_slice(b",\"contact_ids\":");
        write_list(&mut out, &self.contact_ids);
        out.extend_from_slice(b",\"merged_into\":");
        match &self.merged_into {
            Some(id) => write_str(&mut out, id),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"gap_type\":");
        match self.gap_type {
            Some(kind) => write_str(&mut out, kind),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        out
    }
}

fn write_list(out: &mut Vec<u8>, items: &[Cow<'_, str>]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, item);
    }
    out.push(b']');
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Only scalars reach a field value: containers are refused by `map_values`.
fn write_json(out: &mut Vec<u8>, value: &Json) {
    match value {
        Json::Number(number) => out.extend_from_slice(number.to_string().as_bytes()),
        Json::Bool(true) => out.extend_from_slice(b"true"),
        Json::Bool(false) => out.extend_from_slice(b"false"),
        Json::Str(text) => write_str(out, text),
        Json::Null | Json::Array(_) | Json::Object(_) => out.extend_from_slice(b"null"),
    }
}

fn write_float(out: &mut Vec<u8>, number: f64) {
    let _ = serde_json::to_writer(&mut *out, &number);
}
