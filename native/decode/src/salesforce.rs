//! Salesforce Change Data Capture (`processor/sources/salesforce.py`):
//! opportunity changes, and tasks/events as activity on an opportunity.

use crate::json::{Json, Object};
use serde_json::Number;
use std::borrow::Cow;

use crate::change::Change;
use crate::envelope::{self, Problems, Reader};
use crate::error::{Failure, Outcome};
use crate::isotime;
use crate::mapping::{values_of, Mappings, Options};
use crate::pyrepr::{float_repr, repr, str_repr, type_name};

const SOURCE: &str = "salesforce";
pub const HEADER: &str = "ChangeEventHeader";
const OPPORTUNITY_PREFIX: &str = "006";
const CONTACT_PREFIX: &str = "003";
const EMPTY_RECORD_ID: &str = "000000000000000AAA";
const CHANGE_TYPES: [&str; 9] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];
const AVRO_UNION_TYPES: [&str; 7] = [
    "string", "int", "long", "float", "double", "boolean", "bytes",
];

struct Header<'a> {
    entity: &'a str,
    record_ids: Vec<&'a str>,
    change_type: &'static str,
    commit: &'a Number,
    sequence: &'a Number,
    transaction: &'a str,
    nulled: Option<Vec<&'a str>>,
    diff: Option<Vec<&'a str>>,
}

/// The change event inside whichever envelope carries it (`unwrap`).
pub fn unwrap<'a>(obj: &'a Object<'a>) -> Option<&'a Object<'a>> {
    if obj.contains_key(HEADER) {
        return Some(obj);
    }
    if let Some(Json::Object(payload)) = obj.get("payload") {
        if payload.contains_key(HEADER) {
            return Some(payload);
        }
    }
    if let Some(Json::Object(data)) = obj.get("data") {
        if data.contains_key(HEADER) {
            return Some(data);
        }
        if let Some(Json::Object(payload)) = data.get("payload") {
            if payload.contains_key(HEADER) {
                return Some(payload);
            }
        }
    }
    None
}

fn field_names<'a>(
    value: &'a Json<'a>,
    path: &str,
    problems: &mut Problems,
) -> Option<Vec<&'a str>> {
    let names = envelope::list_of(value, path, problems, envelope::any_str)?;
    if let Some(bitmap) = names
        .iter()
        .find(|n| n.starts_with("0x") || n.contains("-0x"))
    {
        problems.value_error(
            path,
            &format!(
                "holds Pub/Sub bitmap {}, not field names; expand the bitmaps in the bridge \
                 (ChangeEventHeaderUtility.process_bitmap) before producing",
                str_repr(bitmap)
            ),
        );
        return None;
    }
    Some(names)
}

fn check<'a>(event: &'a Object<'a>) -> Result<Header<'a>, Failure> {
    let mut problems = Problems::default();
    let header = match event.get(HEADER) {
        Some(Json::Object(header)) => header,
        Some(other) => {
            problems.wrong(HEADER, envelope::DICT, other);
            problems.finish()?;
            unreachable!("a problem was recorded");
        }
        None => {
            problems.missing(HEADER);
            problems.finish()?;
            unreachable!("a problem was recorded");
        }
    };
    let mut r = Reader::new(header, "ChangeEventHeader.", &mut problems);
    let entity = r.required("ChangeEventHeader.entityName", envelope::non_empty);
    let record_ids = r.required("ChangeEventHeader.recordIds", |v, path, pr| {
        envelope::list_of(v, path, pr, envelope::any_str)
    });
    let change_type = r.required("ChangeEventHeader.changeType", |v, path, pr| {
        envelope::literal(v, &CHANGE_TYPES, path, pr)
    });
    let commit = r.required("ChangeEventHeader.commitTimestamp", envelope::strict_int);
    let sequence = r.required("ChangeEventHeader.sequenceNumber", envelope::strict_int);
    let transaction = r.required("ChangeEventHeader.transactionKey", envelope::non_empty);
    let nulled = r.optional("ChangeEventHeader.nulledFields", field_names);
    let diff = r.optional("ChangeEventHeader.diffFields", field_names);
    problems.finish()?;
    Ok(Header {
        entity: entity.expect(envelope::CHECKED),
        record_ids: record_ids.expect(envelope::CHECKED),
        change_type: change_type.expect(envelope::CHECKED),
        commit: commit.expect(envelope::CHECKED),
        sequence: sequence.expect(envelope::CHECKED),
        transaction: transaction.expect(envelope::CHECKED),
        nulled,
        diff,
    })
}

pub fn normalize<'a>(event: &'a Object<'a>, mappings: &'a Mappings) -> Outcome<Vec<Change<'a>>> {
    let header = check(event)?;
    match header.entity {
        "Opportunity" => opportunity(event, &header, mappings),
        "Task" | "Event" => activity(event, &header),
        entity => Err(Failure::unsupported(format!(
            "{HEADER}.entityName: {} is not handled (only Opportunity, and Task/Event as \
             activity on an opportunity)",
            str_repr(entity)
        ))),
    }
}

fn event_id(header: &Header, record_id: &str) -> String {
    format!(
        "sf:{}:{}:{}",
        header.transaction, header.sequence, record_id
    )
}

/// `base.utc_from_ms`.
pub fn utc_from_ms(ms: &Number, place: &str) -> Outcome<i64> {
    ms.as_f64().and_then(isotime::from_epoch_ms).ok_or_else(|| {
        let shown = if ms.is_f64() {
            float_repr(ms.as_f64().unwrap_or(f64::NAN))
        } else {
            ms.to_string()
        };
        Failure::violation(
            place,
            &format!("{shown} is not a valid epoch-milliseconds time"),
        )
    })
}

fn occurred_at(header: &Header) -> Outcome<i64> {
    utc_from_ms(header.commit, &format!("{HEADER}.commitTimestamp"))
}

fn records<'a>(header: &Header<'a>) -> Outcome<Vec<&'a str>> {
    let ids: Vec<&str> = header
        .record_ids
        .iter()
        .copied()
        .filter(|r| !r.is_empty() && *r != EMPTY_RECORD_ID && !r.ends_with('*'))
        .collect();
    if !ids.is_empty() {
        return Ok(ids);
    }
    if !header.record_ids.is_empty() {
        let listed: Vec<Json> = header
            .record_ids
            .iter()
            .map(|r| Json::Str(Cow::Borrowed(*r)))
            .collect();
        return Err(Failure::unsupported(format!(
            "{HEADER}.recordIds: {} for {} names no single record ({}); it covers every record \
             of the entity, so resync {} from a bulk export",
            header.change_type,
            header.entity,
            repr(&Json::Array(listed)),
            header.entity
        )));
    }
    Err(Failure::violation(
        &format!("{HEADER}.recordIds"),
        "expected at least one record id, got none",
    ))
}

/// `flatten`: Avro unions unwrapped, compound fields spread into dotted
/// names, in the order Python's dict ends up with.
fn flatten<'a>(event: &'a Object<'a>) -> Vec<(Cow<'a, str>, &'a Json<'a>)> {
    let mut flat: Vec<(Cow<'_, str>, &Json)> = event
        .iter()
        .map(|(k, v)| (Cow::Borrowed(k.as_ref()), v))
        .collect();
    if !event.iter().any(|(k, v)| v.is_object() && k != HEADER) {
        return flat;
    }
    fn set<'a>(
        flat: &mut Vec<(Cow<'a, str>, &'a Json<'a>)>,
        key: Cow<'a, str>,
        value: &'a Json<'a>,
    ) {
        match flat.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => flat.push((key, value)),
        }
    }
    for (key, value) in event.iter() {
        let Json::Object(inner) = value else {
            continue;
        };
        if key == HEADER {
            continue;
        }
        if let Some(at) = flat.iter().position(|(k, _)| k == key) {
            flat.remove(at);
        }
        if inner.len() == 1 {
            let (kind, unwrapped) = inner.iter().next().expect("one entry");
            if AVRO_UNION_TYPES.contains(&kind.as_ref()) {
                set(&mut flat, Cow::Borrowed(key.as_ref()), unwrapped);
                continue;
            }
        }
        for (part, part_value) in inner.iter() {
            set(&mut flat, Cow::Owned(format!("{key}.{part}")), part_value);
        }
    }
    flat
}

fn opportunity<'a>(
    event: &'a Object<'a>,
    header: &Header<'a>,
    mappings: &'a Mappings,
) -> Outcome<Vec<Change<'a>>> {
    let (op, full) = match header.change_type {
        "CREATE" => ("upsert", true),
        "UPDATE" => ("upsert", false),
        "DELETE" => ("delete", false),
        "UNDELETE" => ("restore", true),
        _ => ("gap", false),
    };
    let ids = records(header)?;
    let at = occurred_at(header)?;
    let (fields, nulled) = if op == "upsert" || op == "restore" {
        values(event, header, mappings, full)?
    } else {
        Default::default()
    };
    let mut changes = Vec::with_capacity(ids.len());
    let last = ids.len() - 1;
    let mut fields = Some(fields);
    let mut nulled = Some(nulled);
    for (i, record_id) in ids.into_iter().enumerate() {
        let mut change = Change::new(
            event_id(header, record_id),
            Cow::Borrowed(SOURCE),
            Cow::Borrowed(record_id),
            at,
            op,
        );
        change.sequence = Some(header.sequence);
        change.full = full;
        change.gap_type = (op == "gap").then_some(header.change_type);
        if i == last {
            change.fields = fields.take().unwrap_or_default();
            change.nulled_fields = nulled.take().unwrap_or_default();
        } else {
            change.fields = fields.clone().unwrap_or_default();
            change.nulled_fields = nulled.clone().unwrap_or_default();
        }
        changes.push(change);
    }
    Ok(changes)
}

type Values<'a> = (crate::change::Fields<'a>, Vec<Cow<'a, str>>);

fn values<'a>(
    event: &'a Object<'a>,
    header: &Header<'a>,
    mappings: &'a Mappings,
    full: bool,
) -> Outcome<Values<'a>> {
    let options = Options {
        skip: Some(&mappings.salesforce_system),
        keep_unmapped: false,
        none_is_null: full || header.nulled.is_none(),
    };
    let mapping = &mappings.salesforce;
    let (mut fields, mut nulled) = values_of(flatten(event), mapping, mappings, &options, "")?;
    for name in header.nulled.iter().flatten() {
        if let Some(canonical) = mapping.get(*name) {
            if !mappings.salesforce_system.contains(*name) {
                fields.pop(canonical);
                if !nulled.iter().any(|n| n == canonical) {
                    nulled.push(Cow::Borrowed(canonical.as_str()));
                }
            }
        }
    }
    for name in header.diff.iter().flatten() {
        if let Some(canonical) = mapping.get(*name) {
            fields.pop(canonical);
        }
    }
    Ok((fields, nulled))
}

fn activity<'a>(event: &'a Object<'a>, header: &Header<'a>) -> Outcome<Vec<Change<'a>>> {
    if !matches!(header.change_type, "CREATE" | "UPDATE") {
        return Ok(Vec::new());
    }
    let ids = records(header)?;
    let flat = flatten(event);
    let get = |key: &str| flat.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    let what = match get("WhatId") {
        None | Some(Json::Null) => {
            return Err(Failure::unsupported(format!(
                "WhatId: the {} {} carries no WhatId, so it cannot be attributed to an \
                 opportunity (an UPDATE carries only changed fields: enrich the channel with \
                 WhatId and WhoId)",
                header.entity, header.change_type
            )))
        }
        Some(Json::Str(what)) => what.as_ref(),
        Some(other) => {
            return Err(Failure::violation(
                "WhatId",
                &format!(
                    "expected a record id, got {} {}",
                    type_name(other),
                    repr(other)
                ),
            ))
        }
    };
    if !what.starts_with(OPPORTUNITY_PREFIX) {
        return Ok(Vec::new());
    }
    let contact = match get("WhoId") {
        Some(Json::Str(who)) if who.starts_with(CONTACT_PREFIX) => Some(who.as_ref()),
        _ => None,
    };
    let at = occurred_at(header)?;
    Ok(ids
        .into_iter()
        .map(|record_id| {
            let mut change = Change::new(
                event_id(header, record_id),
                Cow::Borrowed(SOURCE),
                Cow::Borrowed(what),
                at,
                "activity",
            );
            change.sequence = Some(header.sequence);
            change.contact_ids = contact.map(|c| vec![Cow::Borrowed(c)]).unwrap_or_default();
            change
        })
        .collect())
}
