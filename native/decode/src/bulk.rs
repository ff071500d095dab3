//! Bulk-export rows sent one per Kafka message (`bulk.normalize`), because
//! `detect` recognizes them on the same topics. Reading export files and
//! diffing exports stay in Python.

use crate::json::{Json, Object};
use std::borrow::Cow;

use crate::change::Change;
use crate::envelope::{self, Problems, Reader};
use crate::error::{Failure, Outcome};
use crate::generic::{read_timestamp, timestamp};
use crate::mapping::{values_of, Mappings, Options};
use crate::pyrepr::{repr, strip};

const SOURCE: &str = "bulk";
const ID_COLUMNS: [&str; 4] = ["Id", "hs_object_id", "opportunity_id", "id"];
const MODIFIED_COLUMNS: [&str; 5] = [
    "SystemModstamp",
    "LastModifiedDate",
    "hs_lastmodifieddate",
    "updated_at",
    "updatedAt",
];
const DELETED_COLUMNS: [&str; 3] = ["IsDeleted", "is_deleted", "archived"];
const TRUE: [&str; 5] = ["true", "1", "yes", "y", "t"];
const FALSE: [&str; 6] = ["false", "0", "no", "n", "f", ""];

pub fn is_bulk(obj: &Object) -> bool {
    obj.contains_key("row") && obj.contains_key("export_id")
}

fn filled<'a>(value: Option<&'a Json<'a>>) -> Option<&'a Json<'a>> {
    value.filter(|v| !v.is_null() && v.as_str() != Some(""))
}

/// `bulk.as_bool`: an unknown spelling is an error, never a guess.
fn as_bool(value: &Json, column: &str) -> Outcome<bool> {
    match value {
        Json::Null => return Ok(false),
        Json::Bool(flag) => return Ok(*flag),
        Json::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
            return Ok(n.as_i64() == Some(1))
        }
        Json::Str(text) => {
            // casefold: lowercase, and the long s that folds onto "s".
            let folded: String = strip(text).to_lowercase().replace('ſ', "s");
            if TRUE.contains(&folded.as_str()) {
                return Ok(true);
            }
            if FALSE.contains(&folded.as_str()) {
                return Ok(false);
            }
        }
        _ => {}
    }
    Err(Failure::violation(
        column,
        &format!("expected true or false, got {}", repr(value)),
    ))
}

pub fn normalize<'a>(
    envelope_: &'a Object<'a>,
    mappings: &'a Mappings,
) -> Outcome<Vec<Change<'a>>> {
    let mut p = Problems::default();
    let mut r = Reader::new(envelope_, "", &mut p);
    let export_id = r.required("export_id", envelope::vendor_id_at);
    let exported_at = r
        .required("exported_at", |v, path, pr| Some(timestamp(v, path, pr)))
        .transpose()?
        .flatten();
    let row = r.required("row", |v, path, pr| match v {
        Json::Object(row) => Some(row),
        other => {
            pr.wrong(path, envelope::DICT, other);
            None
        }
    });
    p.finish()?;
    let (Some(export_id), Some(exported_at), Some(row)) = (export_id, exported_at, row) else {
        unreachable!("{}", envelope::CHECKED);
    };
    // `_spread_properties`: HubSpot exports nest the values under properties.
    let mut values: Vec<(&'a str, &'a Json<'a>)> = Vec::with_capacity(row.len());
    match row.get("properties") {
        Some(Json::Object(properties)) => {
            values.extend(
                row.iter()
                    .filter(|(k, _)| *k != "properties")
                    .map(|(k, v)| (k.as_ref(), v)),
            );
            for (key, value) in properties.iter() {
                match values.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => values.push((key.as_ref(), value)),
                }
            }
        }
        _ => values.extend(row.iter().map(|(k, v)| (k.as_ref(), v))),
    }
    let get = |key: &str| values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let opportunity_id = match ID_COLUMNS
        .iter()
        .find_map(|c| filled(get(c)).map(|v| (c, v)))
    {
        Some((column, value)) => {
            envelope::vendor_id(value).map_err(|message| Failure::violation(column, &message))?
        }
        None => {
            return Err(Failure::violation(
                &ID_COLUMNS.join(" / "),
                "the row has none of these id columns filled",
            ))
        }
    };
    let occurred_at = match MODIFIED_COLUMNS
        .iter()
        .find_map(|c| filled(get(c)).map(|v| (c, v)))
    {
        Some((column, value)) => {
            read_timestamp(value)?.map_err(|message| Failure::violation(column, &message))?
        }
        None => exported_at,
    };
    let mut deleted = false;
    for column in DELETED_COLUMNS {
        if let Some(value) = get(column) {
            if as_bool(value, column)? {
                deleted = true;
                break;
            }
        }
    }
    let mut change = Change::new(
        format!("bulk:{export_id}:{opportunity_id}"),
        Cow::Borrowed(SOURCE),
        opportunity_id,
        occurred_at,
        if deleted { "delete" } else { "upsert" },
    );
    change.full = !deleted;
    if !deleted {
        let options = Options {
            skip: Some(&mappings.bulk_control),
            keep_unmapped: false,
            none_is_null: true,
        };
        let raw = values.iter().map(|(k, v)| (Cow::Borrowed(*k), *v));
        let (fields, nulled) = values_of(raw, &mappings.bulk_columns, mappings, &options, "")?;
        change.fields = fields;
        change.nulled_fields = nulled;
    }
    Ok(vec![change])
}
