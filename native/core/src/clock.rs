//! Epoch milliseconds, ISO days and the team's calendar, as processor/core/clock.py.
//!
//! Python computes some of these through floats (`timestamp() * 1000`); the
//! same float steps are taken here so a millisecond never rounds differently.

use chrono::{Duration, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;
use hygiene_decode::civil::{civil_from_days, days_from_civil};

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

/// `YYYY-MM-DD` as (year, month, day), checked to be a real date.
fn parse_ymd(iso: &str) -> Option<(i64, u32, u32)> {
    let b = iso.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let mut digits = [0u32; 8];
    for (slot, &c) in digits
        .iter_mut()
        .zip(b[..4].iter().chain(&b[5..7]).chain(&b[8..]))
    {
        if !c.is_ascii_digit() {
            return None;
        }
        *slot = u32::from(c - b'0');
    }
    let year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3];
    let month = digits[4] * 10 + digits[5];
    let day = digits[6] * 10 + digits[7];
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let length = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (year >= 1 && (1..=length).contains(&day)).then_some((i64::from(year), month, day))
}

fn push_digits(out: &mut String, value: i64, width: usize) {
    let text = value.to_string();
    for _ in text.len()..width {
        out.push('0');
    }
    out.push_str(&text);
}

fn iso_of_days(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(10);
    push_digits(&mut out, year, 4);
    out.push('-');
    push_digits(&mut out, i64::from(month), 2);
    out.push('-');
    push_digits(&mut out, i64::from(day), 2);
    out
}

/// Days since the epoch of an ISO date.
fn epoch_days(iso: &str) -> Option<i64> {
    parse_ymd(iso).map(|(y, m, d)| days_from_civil(y, m, d))
}

pub fn parse_date(iso: &str) -> Option<NaiveDate> {
    let (year, month, day) = parse_ymd(iso)?;
    NaiveDate::from_ymd_opt(year as i32, month, day)
}

pub fn iso(date: NaiveDate) -> String {
    iso_of_days((date - epoch()).num_days())
}

pub fn days_between(earlier: &str, later: &str) -> Option<i64> {
    Some(epoch_days(later)? - epoch_days(earlier)?)
}

/// None past year 9999, where Python's `date` overflows too.
pub fn add_days(iso_day: &str, days: i64) -> Option<String> {
    let result = epoch_days(iso_day)? + days;
    (civil_from_days(result).0 <= 9999).then(|| iso_of_days(result))
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
    Some(micros_to_ms(seconds * 1_000_000 + micros))
}

/// Python's `to_ms` of a datetime this many microseconds after the epoch.
pub fn micros_to_ms(micros: i64) -> i64 {
    ((micros as f64 / 1e6) * 1000.0) as i64
}

/// `from_ms` as pydantic writes it in JSON: `2026-01-05T09:00:00Z`, with
/// `.ffffff` only when there are sub-second digits.
pub fn render_datetime(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let mut out = iso_of_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    out.push('T');
    push_digits(&mut out, of_day / 3600, 2);
    out.push(':');
    push_digits(&mut out, of_day / 60 % 60, 2);
    out.push(':');
    push_digits(&mut out, of_day % 60, 2);
    let millis = ms.rem_euclid(1000);
    if millis != 0 {
        out.push('.');
        push_digits(&mut out, millis * 1000, 6);
    }
    out.push('Z');
    out
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
            None => iso_of_days(ms.div_euclid(DAY_MS)),
            Some(zone) => match zone.timestamp_millis_opt(ms) {
                LocalResult::Single(local) | LocalResult::Ambiguous(local, _) => {
                    iso(local.date_naive())
                }
                LocalResult::None => iso_of_days(ms.div_euclid(DAY_MS)),
            },
        }
    }

    /// Local midnight of `iso_day`; for a midnight that does not exist or
    /// exists twice, the earlier offset, as Python's zoneinfo with fold=0.
    pub fn day_start_ms(&self, iso_day: &str) -> Option<i64> {
        let Some(zone) = self.zone else {
            return Some(epoch_days(iso_day)? * DAY_MS);
        };
        let date = parse_date(iso_day)?;
        let midnight: NaiveDateTime = date.and_hms_opt(0, 0, 0)?;
        let utc_ms = midnight.and_utc().timestamp_millis();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_arithmetic_agrees_with_chrono() {
        let mut day = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        while day < end {
            let text = day.format("%Y-%m-%d").to_string();
            assert_eq!(iso(day), text);
            assert_eq!(epoch_days(&text), Some((day - epoch()).num_days()));
            day += Duration::days(13);
        }
        assert_eq!(parse_ymd("2026-02-29"), None);
        assert_eq!(parse_ymd("2024-02-29"), Some((2024, 2, 29)));
        assert_eq!(add_days("9999-12-31", 1), None);
        assert_eq!(
            render_datetime(1_767_225_600_123),
            "2026-01-01T00:00:00.123000Z"
        );
        assert_eq!(render_datetime(1_767_225_600_000), "2026-01-01T00:00:00Z");
    }
}
