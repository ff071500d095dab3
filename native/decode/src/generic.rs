//! Generic change events (`processor/sources/generic.py`): held to the
//! published record's strictness, unknown keys included.

use crate::json::{Json, Object};
use std::borrow::Cow;

use crate::change::Change;
use crate::envelope::{self, Problems, Reader};
use crate::error::{Failure, Outcome};
use crate::isotime;
use crate::mapping::{values_of, Mappings, Options};

const SOURCE_PREFIX: &str = "generic:";
const OPS: [&str; 4] = ["upsert", "delete", "restore", "activity"];
const KEYS: [&str; 10] = [
    "source",
    "event_id",
    "opportunity_id",
    "occurred_at",
    "op",
    "fields",
    "nulled_fields",
    "contact_ids",
    "full",
    "sequence",
];

pub fn is_generic(obj: &Object) -> bool {
    obj.contains_key("event_id") || obj.contains_key("opportunity_id")
}

/// `base.read_timestamp` as a pydantic validator sees it: Ok(None) is a
/// value error recorded in `problems`.
pub fn timestamp(value: &Json, path: &str, problems: &mut Problems) -> Outcome<Option<i64>> {
    match read_timestamp(value)? {
        Ok(micros) => Ok(Some(micros)),
        Err(message) => {
            problems.value_error(path, &message);
            Ok(None)
        }
    }
}

/// `base.read_timestamp`: the outer error is a Python exception that
/// escapes; the inner one the ValueError text.
pub fn read_timestamp(value: &Json) -> Outcome<Result<i64, String>> {
    use crate::digits::{int_of, is_digits};
    use crate::pyrepr::{describe, str_repr, strip};
    match value {
        Json::Str(text) if is_digits(strip(text)) => {
            let digits = match int_of(text) {
                Ok(digits) => digits,
                Err(message) => return Ok(Err(message)),
            };
            let found = digits
                .parse::<i64>()
                .ok()
                .and_then(|ms| isotime::from_epoch_ms(ms as f64));
            Ok(found.ok_or_else(|| format!("{digits} is not a valid epoch-milliseconds time")))
        }
        Json::Number(number) if !number.is_f64() => Ok(number
            .as_f64()
            .and_then(isotime::from_epoch_ms)
            .ok_or_else(|| format!("{number} is not a valid epoch-milliseconds time"))),
        Json::Str(text) => {
            let Ok(parsed) = isotime::parse_datetime(&strip(text).replace('Z', "+00:00")) else {
                return Ok(Err(format!(
                    "{} is not an ISO-8601 timestamp",
                    str_repr(text)
                )));
            };
            parsed.to_utc().map(Ok).ok_or_else(Failure::date_overflow)
        }
        other => Ok(Err(format!(
            "expected an ISO-8601 timestamp, got {}",
            describe(other)
        ))),
    }
}

pub fn normalize<'a>(event: &'a Object<'a>, mappings: &'a Mappings) -> Outcome<Vec<Change<'a>>> {
    let mut p = Problems::default();
    let mut r = Reader::new(event, "", &mut p);
    let source = r.required("source", envelope::non_empty);
    let event_id = r.required("event_id", envelope::vendor_id_at);
    let opportunity_id = r.required("opportunity_id", envelope::vendor_id_at);
    let occurred_at = r
        .required("occurred_at", |v, path, pr| Some(timestamp(v, path, pr)))
        .transpose()?
        .flatten();
    let op = r.required("op", |v, path, pr| envelope::literal(v, &OPS, path, pr));
    let fields = r.optional("fields", |v, path, pr| match v {
        Json::Object(map) => {
            let mut ok = true;
            for key in map.keys().filter(|k| k.is_empty()) {
                let place = envelope::child(path, key) + " (the key)";
                pr.wrong(&place, envelope::TOO_SHORT, &Json::Str(Cow::Borrowed(key)));
                ok = false;
            }
            ok.then_some(map)
        }
        other => {
            pr.wrong(path, envelope::DICT, other);
            None
        }
    });
    let nulled_fields = r.optional("nulled_fields", |v, path, pr| {
        envelope::list_of(v, path, pr, envelope::non_empty)
    });
    let contact_ids = r.optional("contact_ids", |v, path, pr| {
        envelope::list_of(v, path, pr, envelope::vendor_id_at)
    });
    let full = r.optional("full", envelope::strict_bool);
    let sequence = r.optional("sequence", envelope::strict_int);
    for (key, value) in event.iter() {
        if !KEYS.contains(&key.as_ref()) {
            r.problems.wrong(
                &envelope::child("", key),
                "Extra inputs are not permitted",
                value,
            );
        }
    }
    p.finish()?;
    let (Some(source), Some(event_id), Some(opportunity_id), Some(occurred_at), Some(op)) =
        (source, event_id, opportunity_id, occurred_at, op)
    else {
        unreachable!("{}", envelope::CHECKED);
    };
    let mapping = &mappings.generic;
    let options = Options {
        skip: None,
        keep_unmapped: true,
        none_is_null: true,
    };
    let raw = fields
        .into_iter()
        .flat_map(|map| map.iter())
        .map(|(k, v)| (Cow::Borrowed(k.as_ref()), v));
    let (mut values, mut nulled) = values_of(raw, mapping, mappings, &options, "fields")?;
    for name in nulled_fields.into_iter().flatten() {
        let canonical = mapping.get(name).map_or(name, String::as_str);
        values.pop(canonical);
        if !nulled.iter().any(|n| n == canonical) {
            nulled.push(Cow::Borrowed(canonical));
        }
    }
    let mut change = Change::new(
        event_id.into_owned(),
        Cow::Owned(format!("{SOURCE_PREFIX}{source}")),
        opportunity_id,
        occurred_at,
        op,
    );
    change.sequence = sequence;
    change.fields = values;
    change.nulled_fields = nulled;
    change.full = full.unwrap_or(false);
    change.contact_ids = contact_ids.unwrap_or_default();
    Ok(vec![change])
}
