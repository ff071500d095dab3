//! Epoch milliseconds, ISO days and the team's calendar, as processor/core/clock.py.
//!
//! Python computes some of these through floats (`timestamp() * 1000`); the
//! same float steps are taken here so a millisecond never rounds differently.

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

pub const DAY_MS: i64 = 86_400_000;
const SEQ_BITS: u32 = 20;
const SEQ_MASK: i64 = (1 << SEQ_BITS) - 1;

pub fn order_stamp(occurred_ms: i64, sequence: i64, event_id: &str) -> i64 {
    let tiebreak = if sequence > 0 {
        sequence
    } else {
        i64::from(crc32fast::hash(event_id.as_bytes()))
    };
    (occurred_ms << SEQ_BITS) | (tiebreak & SEQ_MASK)
}

pub fn stamp_ms(stamp: i64) -> i64 {
    stamp >> SEQ_BITS
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch is a date")
}

pub fn parse_date(iso: &str) -> Option<NaiveDate> {
    let b = iso.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |s: &str| s.parse::<u32>().ok();
    NaiveDate::from_ymd_opt(num(&iso[..4])? as i32, num(&iso[5..7])?, num(&iso[8..])?)
}

pub fn iso(date: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

pub fn days_between(earlier: &str, later: &str) -> Option<i64> {
    Some((parse_date(later)? - parse_date(earlier)?).num_days())
}

pub fn add_days(iso_day: &str, days: i64) -> Option<String> {
    parse_date(iso_day)?
        .checked_add_signed(Duration::days(days))
        .map(iso)
}

/// An aware ISO datetime (as orjson writes one) to Python's `to_ms`:
/// `int((microseconds / 10**6) * 1000)`, with its float rounding.
pub fn parse_occurred_ms(text: &str) -> Option<i64> {
    let date = parse_date(text.get(..10)?)?;
    let rest = text.get(10..)?;
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let num = |s: &str| s.parse::<i64>().ok();
    let (h, m, s) = (
        num(rest.get(..2)?)?,
        num(rest.get(3..5)?)?,
        num(rest.get(6..8)?)?,
    );
    let mut rest = rest.get(8..)?;
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let mut value = num(&frac[..digits.min(6)])?;
        for _ in digits.min(6)..6 {
            value *= 10;
        }
        micros = value;
        rest = &frac[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = num(rest.get(1..3)?)?;
            let om = num(rest.get(4..6)?)?;
            let os = rest.get(7..9).and_then(num).unwrap_or(0);
            sign * (oh * 3600 + om * 60 + os)
        }
    };
    let days = (date - epoch()).num_days();
    let seconds = days * 86_400 + h * 3600 + m * 60 + s - offset_s;
    let total_us = seconds * 1_000_000 + micros;
    Some(((total_us as f64 / 1e6) * 1000.0) as i64)
}

/// `from_ms` as pydantic writes it in JSON: `2026-01-05T09:00:00Z`, with
/// `.ffffff` only when there are sub-second digits.
pub fn render_datetime(ms: i64) -> String {
    let when = chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.naive_utc())
        .unwrap_or_default();
    let date = when.date();
    let time = when.time();
    use chrono::Timelike;
    let base = format!(
        "{}T{:02}:{:02}:{:02}",
        iso(date),
        time.hour(),
        time.minute(),
        time.second()
    );
    let micros = ms.rem_euclid(1000) * 1000;
    if micros == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{micros:06}Z")
    }
}

/// Calendar days in the team's zone (processor/core/clock.py `Days`).
pub struct Days {
    zone: Option<Tz>,
}

impl Days {
    pub fn new(zone_name: &str) -> Result<Self, String> {
        if zone_name == "UTC" {
            return Ok(Days { zone: None });
        }
        let zone: Tz = zone_name
            .parse()
            .map_err(|_| format!("unknown time zone {zone_name:?}"))?;
        Ok(Days { zone: Some(zone) })
    }

    pub fn iso_day(&self, ms: i64) -> String {
        match self.zone {
            None => iso(epoch() + Duration::days(ms.div_euclid(DAY_MS))),
            Some(zone) => match zone.timestamp_millis_opt(ms) {
                LocalResult::Single(local) | LocalResult::Ambiguous(local, _) => {
                    iso(local.date_naive())
                }
                LocalResult::None => iso(epoch() + Duration::days(ms.div_euclid(DAY_MS))),
            },
        }
    }

    /// Local midnight of `iso_day`; for a midnight that does not exist or
    /// exists twice, the earlier offset, as Python's zoneinfo with fold=0.
    pub fn day_start_ms(&self, iso_day: &str) -> Option<i64> {
        let date = parse_date(iso_day)?;
        let midnight: NaiveDateTime = date.and_hms_opt(0, 0, 0)?;
        let utc_ms = midnight.and_utc().timestamp_millis();
        let Some(zone) = self.zone else {
            return Some(utc_ms);
        };
        let ms = match zone.from_local_datetime(&midnight) {
            LocalResult::Single(local) | LocalResult::Ambiguous(local, _) => {
                local.timestamp_millis()
            }
            LocalResult::None => {
                let before = zone
                    .offset_from_utc_datetime(&(midnight - Duration::hours(24)))
                    .fix()
                    .local_minus_utc();
                utc_ms - i64::from(before) * 1000
            }
        };
        Some(ms)
    }
}
