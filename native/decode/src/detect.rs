//! One Kafka message in, changes and rejects out (`processor/sources/detect.py`):
//! the format is recognized per event, and an array's elements are decoded
//! (and rejected) one by one.

use crate::json::{Json, Object};

pub use crate::change::{Change, FieldValue};
use crate::error::{Failure, Outcome};
use crate::mapping::Mappings;
use crate::pyrepr::type_name;
use crate::{bulk, generic, hubspot, salesforce};

pub const MAX_BYTES: usize = 1_048_576;
const KEYS_SHOWN: usize = 8;
const SHAPES: &str = "a Salesforce change event (ChangeEventHeader), a HubSpot webhook event \
    (subscriptionType), a bulk row envelope (export_id, row) or a generic change event \
    (event_id, opportunity_id)";

#[derive(Default)]
pub struct Decoded {
    pub changes: Vec<Vec<u8>>,
    pub ignored: usize,
    pub rejects: Vec<(&'static str, String)>,
}

pub fn decode(raw: &[u8], mappings: &Mappings, max_bytes: usize) -> Decoded {
    let mut changes = Vec::new();
    let mut result = decode_each(raw, mappings, max_bytes, &mut |change| {
        changes.push(change.to_json())
    });
    result.changes = changes;
    result
}

/// `decode`, handing each change to `on_change` as it is made instead of
/// writing its JSON (`Decoded::changes` stays empty): the native core
/// applies them without a JSON round trip.
pub fn decode_each(
    raw: &[u8],
    mappings: &Mappings,
    max_bytes: usize,
    on_change: &mut dyn FnMut(&Change<'_>),
) -> Decoded {
    let mut result = Decoded::default();
    if raw.len() > max_bytes {
        let problem = format!(
            "message is {} bytes, over the {max_bytes}-byte limit",
            raw.len()
        );
        result.rejects.push(("oversized", problem));
        return result;
    }
    let document = match crate::json::parse(raw) {
        Ok(document) => document,
        Err(error) => {
            result
                .rejects
                .push(("malformed_json", format!("not JSON: {error}")));
            return result;
        }
    };
    match &document {
        Json::Array(items) if items.is_empty() => result.rejects.push((
            "unknown_format",
            "an empty JSON array: no events".to_owned(),
        )),
        Json::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                decode_event(item, mappings, &mut result, Some(index), on_change);
            }
        }
        event => decode_event(event, mappings, &mut result, None, on_change),
    }
    result
}

type Normalizer = for<'a> fn(&'a Object<'a>, &'a Mappings) -> Outcome<Vec<Change<'a>>>;

fn detect<'a>(event: &'a Json<'a>) -> Option<(Normalizer, &'a Object<'a>)> {
    let Json::Object(obj) = event else {
        return None;
    };
    if let Some(inner) = salesforce::unwrap(obj) {
        return Some((salesforce::normalize, inner));
    }
    if hubspot::is_hubspot(obj) {
        return Some((hubspot::normalize, obj));
    }
    if bulk::is_bulk(obj) {
        return Some((bulk::normalize, obj));
    }
    if generic::is_generic(obj) {
        return Some((generic::normalize, obj));
    }
    None
}

/// `index` is the element's place in an array message: rejects name it, and
/// the prefix is only written for them.
fn decode_event(
    event: &Json,
    mappings: &Mappings,
    result: &mut Decoded,
    index: Option<usize>,
    on_change: &mut dyn FnMut(&Change<'_>),
) {
    let place = || index.map(|i| format!("[{i}] ")).unwrap_or_default();
    let Some((normalize, inner)) = detect(event) else {
        result
            .rejects
            .push(("unknown_format", format!("{}{}", place(), unknown(event))));
        return;
    };
    match normalize(inner, mappings) {
        Ok(changes) if changes.is_empty() => result.ignored += 1,
        Ok(changes) => changes.iter().for_each(&mut *on_change),
        Err(Failure::Input { reason, message }) => {
            result
                .rejects
                .push((reason, format!("{}{message}", place())));
        }
        Err(Failure::Coercion(message)) => {
            result
                .rejects
                .push(("schema_violation", format!("{}{message}", place())));
        }
        Err(Failure::Exception { kind, message }) => {
            result
                .rejects
                .push(("processing_error", format!("{}{kind}: {message}", place())));
        }
    }
}

fn unknown(event: &Json) -> String {
    let Json::Object(obj) = event else {
        return format!(
            "expected a JSON object, got {}; expected {SHAPES}",
            type_name(event)
        );
    };
    let mut keys: Vec<&str> = obj.keys().collect();
    keys.sort_unstable();
    let mut shown = keys
        .iter()
        .take(KEYS_SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > KEYS_SHOWN {
        shown.push_str(", ...");
    }
    if shown.is_empty() {
        shown.push_str("none");
    }
    format!("no recognizable format (keys: {shown}); expected {SHAPES}")
}
