//! Value coercion by canonical type, as `processor.sources.mapping` does it:
//! dates to `YYYY-MM-DD`, numbers to floats, counts to ints. Error texts
//! carry Python reprs because the Python ones do.

use crate::json::Json;
use std::borrow::Cow;

use crate::change::FieldValue;
use crate::digits::{int_of, is_digits, number_text};
use crate::error::{Failure, Outcome};
use crate::isotime;
use crate::pyrepr::{repr, str_repr, strip};

/// `mapping.EPOCH_DAYS_LIMIT`: smaller numbers are days, not milliseconds.
const EPOCH_DAYS_LIMIT: f64 = 100_000.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coercer {
    Date,
    Float,
    Int,
}

impl Coercer {
    pub fn apply<'a>(self, value: &'a Json<'a>, field: &str) -> Outcome<Option<FieldValue<'a>>> {
        match self {
            Coercer::Date => Ok(to_iso_date(value, field)?.map(FieldValue::Text)),
            Coercer::Float => Ok(to_float(value, field)?.map(FieldValue::Float)),
            Coercer::Int => {
                Ok(to_float(value, field)?.map(|n| FieldValue::Integer(integer_digits(n))))
            }
        }
    }
}

fn not_a(value: &Json, field: &str, what: &str) -> Failure {
    Failure::Coercion(format!(
        "field {}: {} is not a {what}",
        str_repr(field),
        repr(value)
    ))
}

fn integer_digits(number: f64) -> String {
    let whole = number.trunc();
    if whole == 0.0 {
        "0".to_owned()
    } else {
        format!("{whole:.0}")
    }
}

fn epoch_to_iso_date(number: f64, value: &Json, field: &str) -> Outcome<Cow<'static, str>> {
    if -EPOCH_DAYS_LIMIT < number && number < EPOCH_DAYS_LIMIT {
        return Ok(Cow::Owned(isotime::iso_date_of_day(number.trunc() as i64)));
    }
    isotime::from_epoch_ms(number)
        .map(|micros| Cow::Owned(isotime::iso_date(micros)))
        .ok_or_else(|| not_a(value, field, "date"))
}

pub fn to_iso_date<'a>(value: &'a Json<'a>, field: &str) -> Outcome<Option<Cow<'a, str>>> {
    match value {
        Json::Str(text) => text_to_iso_date(text, value, field),
        Json::Number(number) => match number.as_f64() {
            Some(n) => epoch_to_iso_date(n, value, field).map(Some),
            None => Err(not_a(value, field, "date")),
        },
        Json::Null => Ok(None),
        _ => Err(not_a(value, field, "date")),
    }
}

fn text_to_iso_date<'a>(
    original: &'a str,
    value: &Json,
    field: &str,
) -> Outcome<Option<Cow<'a, str>>> {
    let text = strip(original);
    let bytes = text.as_bytes();
    if bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-' && isotime::is_iso_date(text) {
        return Ok(Some(Cow::Borrowed(text)));
    }
    if text.is_empty() {
        return Ok(None);
    }
    if is_digits(text) {
        let digits = int_of(text).map_err(|message| Failure::Exception {
            kind: "ValueError",
            message,
        })?;
        // Beyond i64 is beyond every date; Python fails the same values.
        return match digits.parse::<i64>() {
            Ok(n) => epoch_to_iso_date(n as f64, value, field).map(Some),
            Err(_) => Err(not_a(value, field, "date")),
        };
    }
    let parsed = isotime::parse_datetime(&text.replace('Z', "+00:00"))
        .map_err(|()| not_a(value, field, "date"))?;
    let utc = parsed.to_utc().ok_or_else(Failure::date_overflow)?;
    Ok(Some(Cow::Owned(isotime::iso_date(utc))))
}

/// Python's `float(text)`: surrounding whitespace and underscores between
/// digits allowed.
fn parse_float(text: &str) -> Option<f64> {
    let text = number_text(text);
    if text.contains('_') {
        let bytes = text.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'_'
                && !(i > 0
                    && bytes[i - 1].is_ascii_digit()
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                return None;
            }
        }
        return text.replace('_', "").parse().ok();
    }
    text.parse().ok()
}

pub fn to_float(value: &Json, field: &str) -> Outcome<Option<f64>> {
    let number = match value {
        Json::Null => return Ok(None),
        Json::Str(text) if text.is_empty() => return Ok(None),
        Json::Str(text) => parse_float(text),
        Json::Number(number) => number.as_f64(),
        _ => None,
    };
    match number {
        Some(n) if n.is_finite() => Ok(Some(n)),
        _ => Err(not_a(value, field, "number")),
    }
}
