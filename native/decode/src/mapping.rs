//! Field mapping as configured in Python (`FieldMappings`, exported by
//! `processor.sources.export`), and `map_values`, the one pass that renames,
//! filters and coerces a vendor record's values.

use crate::json::Json;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use std::borrow::Cow;

use crate::change::{FieldValue, Fields};
use crate::coerce::Coercer;
use crate::error::{Failure, Outcome};
use crate::pyrepr::{str_repr, strip};

pub type Mapping = FxHashMap<String, String>;
pub type Names = FxHashSet<String>;

#[derive(Deserialize)]
struct Exported {
    salesforce: Mapping,
    hubspot: Mapping,
    generic: Mapping,
    bulk_columns: Mapping,
    salesforce_system_fields: Vec<String>,
    hubspot_system_properties: Vec<String>,
    bulk_control_columns: Vec<String>,
    date_fields: Vec<String>,
    number_fields: Vec<String>,
    int_fields: Vec<String>,
}

pub struct Mappings {
    pub salesforce: Mapping,
    pub hubspot: Mapping,
    pub generic: Mapping,
    pub bulk_columns: Mapping,
    pub salesforce_system: Names,
    pub hubspot_system: Names,
    pub bulk_control: Names,
    coercers: FxHashMap<String, Coercer>,
}

impl Mappings {
    pub fn from_json(raw: &[u8]) -> Result<Self, String> {
        let exported: Exported = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        let mut coercers = FxHashMap::default();
        // Later kinds win, as in the Python dict literal that builds _COERCERS.
        for (names, coercer) in [
            (&exported.date_fields, Coercer::Date),
            (&exported.number_fields, Coercer::Float),
            (&exported.int_fields, Coercer::Int),
        ] {
            for name in names {
                coercers.insert(name.clone(), coercer);
            }
        }
        Ok(Mappings {
            salesforce: exported.salesforce,
            hubspot: exported.hubspot,
            generic: exported.generic,
            bulk_columns: exported.bulk_columns,
            salesforce_system: exported.salesforce_system_fields.into_iter().collect(),
            hubspot_system: exported.hubspot_system_properties.into_iter().collect(),
            bulk_control: exported.bulk_control_columns.into_iter().collect(),
            coercers,
        })
    }
}

pub struct Options<'m> {
    pub skip: Option<&'m Names>,
    pub keep_unmapped: bool,
    pub none_is_null: bool,
}

/// Set fields and cleared field names; see `mapping.map_values`.
pub fn map_values<'a, I>(
    raw: I,
    mapping: &'a Mapping,
    mappings: &Mappings,
    options: &Options,
) -> Outcome<(Fields<'a>, Vec<Cow<'a, str>>)>
where
    I: IntoIterator<Item = (Cow<'a, str>, &'a Json<'a>)>,
{
    let mut values = Fields::default();
    let mut nulled = Vec::new();
    for (key, value) in raw {
        let canonical: Cow<'a, str> = match mapping.get(key.as_ref()) {
            Some(name) => Cow::Borrowed(name.as_str()),
            None if options.keep_unmapped => key.clone(),
            None => continue,
        };
        if options.skip.is_some_and(|skip| skip.contains(key.as_ref())) {
            continue;
        }
        let coerced = match value {
            Json::Null => {
                if options.none_is_null {
                    nulled.push(canonical);
                }
                continue;
            }
            Json::Array(_) | Json::Object(_) => {
                let kind = if value.is_array() { "list" } else { "dict" };
                return Err(Failure::Coercion(format!(
                    "field {}: expected a single value, got {kind}",
                    str_repr(&key)
                )));
            }
            _ => match mappings.coercers.get(canonical.as_ref()) {
                Some(coercer) => match coercer.apply(value, &canonical) {
                    Ok(coerced) => coerced,
                    Err(Failure::Coercion(message)) if key != canonical => {
                        return Err(Failure::Coercion(format!("{}: {message}", str_repr(&key))));
                    }
                    Err(other) => return Err(other),
                },
                None => match value {
                    Json::Str(text) => {
                        let text = strip(text);
                        (!text.is_empty()).then_some(FieldValue::Text(Cow::Borrowed(text)))
                    }
                    _ => Some(FieldValue::Json(value)),
                },
            },
        };
        match coerced {
            Some(coerced) => values.set(canonical, coerced),
            None => nulled.push(canonical),
        }
    }
    Ok((values, nulled))
}

/// `base.values_of`: a coercion failure as a schema violation at `place`.
pub fn values_of<'a, I>(
    raw: I,
    mapping: &'a Mapping,
    mappings: &Mappings,
    options: &Options,
    place: &str,
) -> Outcome<(Fields<'a>, Vec<Cow<'a, str>>)>
where
    I: IntoIterator<Item = (Cow<'a, str>, &'a Json<'a>)>,
{
    map_values(raw, mapping, mappings, options).map_err(|failure| match failure {
        Failure::Coercion(message) => Failure::Input {
            reason: "schema_violation",
            message: if place.is_empty() {
                message
            } else {
                format!("{place}: {message}")
            },
        },
        other => other,
    })
}
