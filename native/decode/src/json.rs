//! The parsed message: JSON that borrows its strings from the input and
//! keeps objects as ordered vectors. Parsing is most of the native cost, and
//! a map type would hash every key of every event although a decoder reads
//! only a handful of them; order matters because Python's dicts have one.

use rustc_hash::FxHashMap;
use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

/// orjson's nesting limit: deeper documents are malformed there too.
const MAX_DEPTH: usize = 1024;
/// Above this many keys, duplicates are found through an index instead of
/// by scanning, so that a hostile object cannot make parsing quadratic.
const SCAN_LIMIT: usize = 16;

#[derive(Debug, Clone)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// Keys in first-seen order; a repeated key replaces the value in place, as
/// a Python dict built from the same text does.
#[derive(Debug, Clone, Default)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Cow<'a, str>, &Json<'a>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_ref())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl Json<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    pub fn is_array(&self) -> bool {
        matches!(self, Json::Array(_))
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(text) => Some(text),
            _ => None,
        }
    }
}

/// UTF-8 is checked once for the whole message, so that strings need not
/// be checked one by one.
pub fn parse(raw: &[u8]) -> Result<Json<'_>, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("not valid UTF-8: {e}"))?;
    parse_text(text).map_err(|e| e.to_string())
}

fn parse_text(text: &str) -> Result<Json<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    deserializer.disable_recursion_limit();
    let numbers = Numbers {
        seen: Cell::new(0),
        minus_zeros: minus_zeros(text),
    };
    let value = Depth(0, &numbers).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// serde_json reads the integer literal `-0` as the float -0.0 where orjson
/// (and so Python) reads the int 0; numbers are visited in document order,
/// so the ordinals of the `-0` tokens say which -0.0 to read as 0.
struct Numbers {
    seen: Cell<usize>,
    minus_zeros: Vec<usize>,
}

impl Numbers {
    fn next(&self) -> usize {
        let ordinal = self.seen.get();
        self.seen.set(ordinal + 1);
        ordinal
    }
}

/// The ordinals, among all number tokens, of those written exactly `-0`;
/// the string-aware scan only runs when such bytes occur at all (dates'
/// `-05` do not count).
fn minus_zeros(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let ends_number = |at: usize| {
        bytes
            .get(at)
            .is_none_or(|b| !matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E'))
    };
    // memmem is vectorized; dates' "-05" are its usual hits.
    let written = memchr::memmem::find_iter(bytes, b"-0").any(|at| ends_number(at + 2));
    if !written {
        return Vec::new();
    }
    let mut found = Vec::new();
    let (mut ordinal, mut i, mut in_string) = (0, 0, false);
    while i < bytes.len() {
        let byte = bytes[i];
        if in_string {
            match byte {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                if &bytes[start..i] == b"-0" {
                    found.push(ordinal);
                }
                ordinal += 1;
            }
            _ => i += 1,
        }
    }
    found
}

#[derive(Clone, Copy)]
struct Depth<'s>(usize, &'s Numbers);

impl<'s> Depth<'s> {
    fn deeper<E: Error>(self) -> Result<Depth<'s>, E> {
        if self.0 >= MAX_DEPTH {
            Err(E::custom("depth limit exceeded"))
        } else {
            Ok(Depth(self.0 + 1, self.1))
        }
    }
}

impl<'de> DeserializeSeed<'de> for Depth<'_> {
    type Value = Json<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Depth<'_> {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: Error>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: Error>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<Json<'de>, E> {
        self.1.next();
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<Json<'de>, E> {
        self.1.next();
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<Json<'de>, E> {
        let ordinal = self.1.next();
        if v == 0.0 && v.is_sign_negative() && self.1.minus_zeros.contains(&ordinal) {
            return Ok(Json::Number(0i64.into()));
        }
        Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let inner = self.deeper()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let inner = self.deeper()?;
        let mut entries: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        let mut index: Option<FxHashMap<String, usize>> = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(inner)?;
            let existing = match &index {
                Some(index) => index.get(key.as_ref()).copied(),
                None => entries.iter().position(|(k, _)| *k == key),
            };
            match existing {
                Some(at) => entries[at].1 = value,
                None => {
                    if let Some(index) = &mut index {
                        index.insert(key.to_string(), entries.len());
                    }
                    entries.push((key, value));
                    if index.is_none() && entries.len() > SCAN_LIMIT {
                        index = Some(
                            entries
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (k.to_string(), i))
                                .collect(),
                        );
                    }
                }
            }
        }
        Ok(Json::Object(Object(entries)))
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E: Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}
