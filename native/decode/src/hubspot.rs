//! HubSpot deal webhooks (`processor/sources/hubspot.py`), one event at a
//! time (`detect` splits the batches).

use crate::json::{Json, Object};
use serde_json::Number;
use std::borrow::Cow;

use crate::change::Change;
use crate::envelope::{self, Problems, Reader};
use crate::error::{Failure, Outcome};
use crate::mapping::{values_of, Mappings, Options};
use crate::pyrepr::{repr, str_repr};
use crate::salesforce::utc_from_ms;

const SOURCE: &str = "hubspot";
const DEAL_OBJECT_TYPE: &str = "0-3";

pub fn is_hubspot(obj: &Object) -> bool {
    obj.contains_key("subscriptionType")
}

/// The keys `DealEvent` declares, validated; `None` where the input lacks
/// an optional key.
struct DealEvent<'a> {
    event_id: Cow<'a, str>,
    portal_id: Cow<'a, str>,
    occurred_at: &'a Number,
    subscription: &'a str,
    object_id: Option<Cow<'a, str>>,
    property_name: Option<&'a str>,
    /// Present (possibly null) or absent: the two differ for a property change.
    property_value: Option<&'a Json<'a>>,
    primary_object_id: Option<Cow<'a, str>>,
    merged_object_ids: Option<Vec<Cow<'a, str>>>,
    new_object_id: Option<Cow<'a, str>>,
    from_object_id: Option<Cow<'a, str>>,
    to_object_id: Option<Cow<'a, str>>,
    association_type: Option<&'a str>,
    association_removed: Option<bool>,
}

fn check<'a>(event: &'a Object<'a>) -> Result<DealEvent<'a>, Failure> {
    let mut p = Problems::default();
    let mut r = Reader::new(event, "", &mut p);
    let event_id = r.required("eventId", envelope::vendor_id_at);
    let portal_id = r.required("portalId", envelope::vendor_id_at);
    let occurred_at = r.required("occurredAt", envelope::strict_int);
    let subscription = r.required("subscriptionType", envelope::non_empty);
    let object_id = r.optional("objectId", envelope::vendor_id_at);
    let property_name = r.optional("propertyName", envelope::non_empty);
    let property_value = event.get("propertyValue");
    if let Some(value @ (Json::Array(_) | Json::Object(_))) = property_value {
        // The union str | int | float | bool | None: pydantic names each member.
        for (member, message) in [
            ("str", envelope::STRING),
            ("int", envelope::INTEGER),
            ("float", envelope::NUMBER),
            ("bool", envelope::BOOLEAN),
        ] {
            r.problems
                .wrong(&format!("propertyValue.{member}"), message, value);
        }
    }
    let primary_object_id = r.optional("primaryObjectId", envelope::vendor_id_at);
    let merged_object_ids = r.optional("mergedObjectIds", |v, path, pr| {
        envelope::list_of(v, path, pr, envelope::vendor_id_at)
    });
    let new_object_id = r.optional("newObjectId", |v, path, pr| {
        (!v.is_null())
            .then(|| envelope::vendor_id_at(v, path, pr))
            .flatten()
    });
    let from_object_id = r.optional("fromObjectId", envelope::vendor_id_at);
    let to_object_id = r.optional("toObjectId", envelope::vendor_id_at);
    let association_type = r.optional("associationType", envelope::non_empty);
    let association_removed = r.optional("associationRemoved", envelope::strict_bool);
    p.finish()?;
    Ok(DealEvent {
        event_id: event_id.expect(envelope::CHECKED),
        portal_id: portal_id.expect(envelope::CHECKED),
        occurred_at: occurred_at.expect(envelope::CHECKED),
        subscription: subscription.expect(envelope::CHECKED),
        object_id,
        property_name,
        property_value,
        primary_object_id,
        merged_object_ids,
        new_object_id,
        from_object_id,
        to_object_id,
        association_type,
        association_removed,
    })
}

/// The action of a deal subscription; other objects are unsupported
/// entities rather than schema violations, since the payload is fine.
fn deal_action<'a>(event: &'a Object<'a>) -> Outcome<&'a str> {
    let Some(Json::Str(subscription)) = event.get("subscriptionType") else {
        return Ok("");
    };
    let (kind, action) = subscription.split_once('.').unwrap_or((subscription, ""));
    if kind == "deal" {
        return Ok(action);
    }
    let object_type = event.get("objectTypeId");
    let is_deal_object = matches!(object_type, Some(Json::Str(t)) if t == DEAL_OBJECT_TYPE);
    if kind == "object" && is_deal_object && action != "associationChange" {
        return Ok(action);
    }
    let what = if kind == "object" {
        format!(
            "object type {}",
            object_type.map_or_else(|| "None".to_owned(), repr)
        )
    } else {
        kind.to_owned()
    };
    Err(Failure::unsupported(format!(
        "subscriptionType: {} is about {what}, not deals (deal.*, or object.* with \
         objectTypeId {} except associationChange)",
        str_repr(subscription),
        str_repr(DEAL_OBJECT_TYPE)
    )))
}

pub fn normalize<'a>(event: &'a Object<'a>, mappings: &'a Mappings) -> Outcome<Vec<Change<'a>>> {
    let action = deal_action(event)?;
    let valid = check(event)?;
    let handler = match action {
        "creation" => Handler::Lifecycle("upsert"),
        "deletion" => Handler::Lifecycle("delete"),
        "restore" => Handler::Lifecycle("restore"),
        "propertyChange" => Handler::PropertyChange,
        "merge" => Handler::Merge,
        "associationChange" => Handler::Association,
        _ => {
            return Err(Failure::violation(
                "subscriptionType",
                &format!(
                    "{} is not a deal event this source reads",
                    str_repr(valid.subscription)
                ),
            ))
        }
    };
    let prefix = format!("hs:{}:{}:{action}", valid.portal_id, valid.event_id);
    let at = utc_from_ms(valid.occurred_at, "occurredAt")?;
    match handler {
        Handler::Lifecycle(op) => lifecycle(&valid, &prefix, at, mappings, op),
        Handler::PropertyChange => property_change(&valid, &prefix, at, mappings),
        Handler::Merge => merge(&valid, &prefix, at),
        Handler::Association => association(&valid, &prefix, at),
    }
}

enum Handler {
    Lifecycle(&'static str),
    PropertyChange,
    Merge,
    Association,
}

fn need<T: Clone>(value: &Option<T>, key: &str, event: &DealEvent) -> Outcome<T> {
    value
        .clone()
        .ok_or_else(|| Failure::violation(key, &format!("required for {}", event.subscription)))
}

type Values<'a> = (crate::change::Fields<'a>, Vec<Cow<'a, str>>);

/// The one property an event carries, mapped; empty when unmapped.
fn property<'a>(event: &DealEvent<'a>, mappings: &'a Mappings) -> Outcome<Values<'a>> {
    let name = need(&event.property_name, "propertyName", event)?;
    let Some(value) = event.property_value else {
        return Err(Failure::violation(
            "propertyValue",
            &format!("missing for property {}", str_repr(name)),
        ));
    };
    let options = Options {
        skip: Some(&mappings.hubspot_system),
        keep_unmapped: false,
        none_is_null: true,
    };
    values_of(
        [(Cow::Borrowed(name), value)],
        &mappings.hubspot,
        mappings,
        &options,
        "propertyValue",
    )
}

fn upsert<'a>(event_id: String, deal: Cow<'a, str>, at: i64, op: &'static str) -> Change<'a> {
    Change::new(event_id, Cow::Borrowed(SOURCE), deal, at, op)
}

fn property_change<'a>(
    event: &DealEvent<'a>,
    prefix: &str,
    at: i64,
    mappings: &'a Mappings,
) -> Outcome<Vec<Change<'a>>> {
    let deal = need(&event.object_id, "objectId", event)?;
    let (fields, nulled) = property(event, mappings)?;
    if fields.is_empty() && nulled.is_empty() {
        return Ok(Vec::new());
    }
    let name = event.property_name.unwrap_or_default();
    let mut change = upsert(format!("{prefix}:{deal}:{name}"), deal, at, "upsert");
    change.fields = fields;
    change.nulled_fields = nulled;
    Ok(vec![change])
}

fn lifecycle<'a>(
    event: &DealEvent<'a>,
    prefix: &str,
    at: i64,
    mappings: &'a Mappings,
    op: &'static str,
) -> Outcome<Vec<Change<'a>>> {
    let deal = need(&event.object_id, "objectId", event)?;
    let (fields, nulled) = if op == "upsert" && event.property_name.is_some() {
        property(event, mappings)?
    } else {
        Default::default()
    };
    let mut change = upsert(format!("{prefix}:{deal}"), deal, at, op);
    change.fields = fields;
    change.nulled_fields = nulled;
    Ok(vec![change])
}

/// Every deal that stops existing on its own becomes a merge into the survivor.
fn merge<'a>(event: &DealEvent<'a>, prefix: &str, at: i64) -> Outcome<Vec<Change<'a>>> {
    let primary = need(&event.primary_object_id, "primaryObjectId", event)?;
    let merged = need(&event.merged_object_ids, "mergedObjectIds", event)?;
    let survivor = event
        .new_object_id
        .clone()
        .unwrap_or_else(|| primary.clone());
    let mut retired: Vec<Cow<'a, str>> = Vec::new();
    for deal in std::iter::once(primary).chain(merged) {
        if deal != survivor && !retired.contains(&deal) {
            retired.push(deal);
        }
    }
    Ok(retired
        .into_iter()
        .map(|deal| {
            let mut change = upsert(format!("{prefix}:{deal}"), deal, at, "merge");
            change.merged_into = Some(survivor.clone());
            change
        })
        .collect())
}

/// A contact associated with a deal is an engaged contact; removals and
/// other associations are ignored.
fn association<'a>(event: &DealEvent<'a>, prefix: &str, at: i64) -> Outcome<Vec<Change<'a>>> {
    let kind = need(&event.association_type, "associationType", event)?;
    if event.association_removed.unwrap_or(false) {
        return Ok(Vec::new());
    }
    let (deal, contact) = match kind {
        "DEAL_TO_CONTACT" => (
            need(&event.from_object_id, "fromObjectId", event)?,
            need(&event.to_object_id, "toObjectId", event)?,
        ),
        "CONTACT_TO_DEAL" => (
            need(&event.to_object_id, "toObjectId", event)?,
            need(&event.from_object_id, "fromObjectId", event)?,
        ),
        _ => return Ok(Vec::new()),
    };
    let mut change = upsert(format!("{prefix}:{deal}:{contact}"), deal, at, "upsert");
    change.contact_ids = vec![contact];
    Ok(vec![change])
}
