//! Field names, interned: every field map is keyed by a small integer, so a
//! lookup compares integers instead of chasing a heap string per key (that
//! chase, on cold states, was the largest single cost per change).

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::{Mutex, OnceLock};

#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Name(u32);

macro_rules! known {
    ($($constant:ident = $text:literal),* $(,)?) => {
        const KNOWN: &[&str] = &[$($text),*];
        known!(@each 0u32; $($constant)*);
    };
    (@each $index:expr; $constant:ident $($rest:ident)*) => {
        pub const $constant: Name = Name($index);
        known!(@each $index + 1; $($rest)*);
    };
    (@each $index:expr;) => {};
}

known! {
    STAGE = "stage",
    AMOUNT = "amount",
    CURRENCY = "currency",
    CLOSE_DATE = "close_date",
    FORECAST_CATEGORY = "forecast_category",
    OWNER_ID = "owner_id",
    PIPELINE = "pipeline",
    DELETED = "_deleted",
    NAME = "name",
    MANAGER_ID = "manager_id",
    NEXT_STEP = "next_step",
    NEXT_STEP_DATE = "next_step_date",
    NEXT_MEETING_DATE = "next_meeting_date",
    LAST_ACTIVITY_DATE = "last_activity_date",
    CONTACT_COUNT = "contact_count",
    ENTERED = "_entered",
    PUSHES = "_pushes",
    FIRST_CLOSE = "_first_close",
    STARTED = "_started",
    CATEGORY = "_category",
}

struct Interner {
    ids: FxHashMap<&'static str, u32>,
    names: Vec<&'static str>,
}

/// Names are never freed: they are canonical names plus the field names a
/// generic source keeps unmapped, a set bounded by the CRMs' schemas rather
/// than by the traffic (a producer inventing a new field name per event would
/// grow it; see STATUS.md).
fn interner() -> &'static Mutex<Interner> {
    static TABLE: OnceLock<Mutex<Interner>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let names: Vec<&'static str> = KNOWN.to_vec();
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as u32))
            .collect();
        Mutex::new(Interner { ids, names })
    })
}

impl Name {
    pub fn of(text: &str) -> Name {
        let mut table = interner().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = table.ids.get(text) {
            return Name(id);
        }
        let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
        let id = table.names.len() as u32;
        table.names.push(leaked);
        table.ids.insert(leaked, id);
        Name(id)
    }

    pub fn as_str(self) -> &'static str {
        if let Some(text) = KNOWN.get(self.0 as usize) {
            return text;
        }
        let table = interner().lock().unwrap_or_else(|e| e.into_inner());
        table.names[self.0 as usize]
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Name::of(&text))
    }
}
