//! Times as CPython computes them: `datetime.fromtimestamp` (float seconds,
//! round-half-even microseconds), `datetime.fromisoformat` and
//! `date.fromisoformat` (the C parser's accepted forms, which the Python
//! decoders rely on), all as microseconds since the epoch in UTC.

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
/// 0001-01-01T00:00:00 and 9999-12-31T23:59:59.999999, datetime's range.
const MIN_MICROS: i64 = -62_135_596_800 * MICROS_PER_SECOND;
const MAX_MICROS: i64 = 253_402_300_800 * MICROS_PER_SECOND - 1;

pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn valid_date(year: i64, month: u32, day: u32) -> bool {
    (1..=9999).contains(&year)
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
}

/// `datetime.fromtimestamp(seconds, tz=UTC)`; None where CPython raises.
pub fn from_timestamp(seconds: f64) -> Option<i64> {
    if !seconds.is_finite() {
        return None;
    }
    let mut whole = seconds.trunc();
    let mut fraction = ((seconds - whole) * 1e6).round_ties_even();
    if fraction >= 1e6 {
        fraction -= 1e6;
        whole += 1.0;
    } else if fraction < 0.0 {
        fraction += 1e6;
        whole -= 1.0;
    }
    if !(-1e15..1e15).contains(&whole) {
        return None;
    }
    let micros = whole as i64 * MICROS_PER_SECOND + fraction as i64;
    (MIN_MICROS..=MAX_MICROS)
        .contains(&micros)
        .then_some(micros)
}

/// `datetime.fromtimestamp(ms / 1000, tz=UTC)` for a JSON integer. Python
/// divides exactly; for any |ms| above 2**53 the result is out of range
/// either way, so the float division decides the same cases.
pub fn from_epoch_ms(ms: f64) -> Option<i64> {
    from_timestamp(ms / 1000.0)
}

/// A parsed ISO-8601 text: local time and, if given, its UTC offset.
pub struct Parsed {
    pub local: i64,
    pub offset: Option<i64>,
}

impl Parsed {
    /// `.astimezone(UTC)` for aware times (OverflowError out of range), the
    /// same wall time read as UTC for naive ones.
    pub fn to_utc(&self) -> Option<i64> {
        match self.offset {
            None => Some(self.local),
            Some(offset) => {
                let utc = self.local - offset;
                (MIN_MICROS..=MAX_MICROS).contains(&utc).then_some(utc)
            }
        }
    }
}

struct Text<'a>(&'a [u8]);

impl Text<'_> {
    /// The C parser reads a NUL-terminated buffer, so past the end is 0.
    fn at(&self, i: usize) -> u8 {
        self.0.get(i).copied().unwrap_or(0)
    }

    fn digits(&self, pos: usize, count: usize) -> Option<(i64, usize)> {
        let mut value = 0i64;
        for i in pos..pos + count {
            let c = self.at(i);
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(c - b'0');
        }
        Some((value, pos + count))
    }
}

fn iso_week_to_date(year: i64, week: i64, day: i64) -> Option<(i64, u32, u32)> {
    if !(1..=9999).contains(&year) {
        return None;
    }
    if !(1..53).contains(&week) {
        let first = (days_from_civil(year, 1, 1) + 4).rem_euclid(7); // 0 = Sunday
                                                                     // 53 weeks: years starting on a Thursday, leap years on a Wednesday.
        if !(week == 53 && (first == 4 || (first == 3 && is_leap(year)))) {
            return None;
        }
    }
    if !(1..8).contains(&day) {
        return None;
    }
    let jan4 = days_from_civil(year, 1, 4);
    let weekday = (jan4 + 3).rem_euclid(7); // 0 = Monday
    let monday = jan4 - weekday;
    Some(civil_from_days(monday + (week - 1) * 7 + (day - 1)))
}

fn parse_date(text: &Text, len: usize) -> Option<(i64, u32, u32)> {
    let (year, mut p) = text.digits(0, 4)?;
    let dashed = text.at(p) == b'-';
    if dashed {
        p += 1;
    }
    if text.at(p) == b'W' {
        let (week, mut p) = text.digits(p + 1, 2)?;
        let mut day = 1;
        if p < len {
            if dashed {
                if text.at(p) != b'-' {
                    return None;
                }
                p += 1;
            }
            day = text.digits(p, 1)?.0;
        }
        return iso_week_to_date(year, week, day);
    }
    let (month, mut p) = text.digits(p, 2)?;
    if dashed {
        if text.at(p) != b'-' {
            return None;
        }
        p += 1;
    }
    let (day, _) = text.digits(p, 2)?;
    let (month, day) = (u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    valid_date(year, month, day).then_some((year, month, day))
}

/// `date.fromisoformat(text)` succeeds.
pub fn is_iso_date(text: &str) -> bool {
    let len = text.len();
    (len == 7 || len == 8 || len == 10) && parse_date(&Text(text.as_bytes()), len).is_some()
}

/// (hour, minute, second, microsecond) and whether anything follows.
fn parse_clock(text: &Text, start: usize, end: usize) -> Result<([i64; 4], bool), ()> {
    let mut parts = [0i64; 4];
    let mut p = start;
    let mut separated = true;
    for (i, part) in parts.iter_mut().take(3).enumerate() {
        let (value, next) = text.digits(p, 2).ok_or(())?;
        *part = value;
        let c = text.at(next);
        p = next + 1;
        if i == 0 {
            separated = c == b':';
        }
        if p >= end {
            return Ok((parts, c != 0));
        } else if separated && c == b':' {
            if i == 2 {
                break;
            }
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !separated {
            p -= 1;
            if i == 2 {
                return Err(());
            }
        } else {
            return Err(());
        }
    }
    let remaining = end - p;
    let count = remaining.min(6);
    let (mut micros, mut q) = text.digits(p, count).ok_or(())?;
    for _ in count..6 {
        micros *= 10;
    }
    parts[3] = micros;
    while text.at(q).is_ascii_digit() {
        q += 1;
    }
    Ok((parts, text.at(q) != 0))
}

fn separator_at(bytes: &[u8]) -> Option<usize> {
    let len = bytes.len();
    let text = Text(bytes);
    if len == 7 {
        return Some(7);
    }
    if text.at(4) == b'-' {
        if text.at(5) == b'W' {
            if len < 8 {
                return None;
            }
            if len > 8 && text.at(8) == b'-' {
                if len == 9 {
                    return None;
                }
                if len > 10 && text.at(10).is_ascii_digit() {
                    return Some(8);
                }
                return Some(10);
            }
            return Some(8);
        }
        return Some(10);
    }
    if text.at(4) == b'W' {
        let mut idx = 7;
        while idx < len && text.at(idx).is_ascii_digit() {
            idx += 1;
        }
        if idx < 9 {
            return Some(idx);
        }
        return Some(if idx % 2 == 0 { 7 } else { 8 });
    }
    Some(8)
}

/// `datetime.fromisoformat(text)`; Err where CPython raises ValueError.
pub fn parse_datetime(text: &str) -> Result<Parsed, ()> {
    if text.chars().count() < 7 {
        return Err(());
    }
    // CPython lets any single character separate date and time; replacing a
    // non-ASCII one keeps the byte positions the parser expects.
    let owned;
    let mut bytes = text.as_bytes();
    if !text.is_ascii() {
        let mut chars: Vec<char> = text.chars().collect();
        for pos in [7, 8, 10] {
            if chars.get(pos).is_some_and(|c| !c.is_ascii()) {
                chars[pos] = 'T';
                break;
            }
        }
        owned = chars.into_iter().collect::<String>();
        bytes = owned.as_bytes();
    }
    let len = bytes.len();
    let at = separator_at(bytes).ok_or(())?;
    let (year, month, day) = parse_date(&Text(bytes), at).ok_or(())?;
    let mut clock = [0i64; 4];
    let mut offset = None;
    if len > at {
        let time = Text(&bytes[at + 1..]);
        let end = len - at - 1;
        let zone = (0..end)
            .find(|&i| matches!(time.at(i), b'Z' | b'+' | b'-'))
            .unwrap_or(end);
        let (parts, more) = parse_clock(&time, 0, zone)?;
        clock = parts;
        if zone == end {
            if more {
                return Err(());
            }
        } else if time.at(zone) == b'Z' {
            if zone + 1 != end {
                return Err(());
            }
            offset = Some(0);
        } else {
            let sign = if time.at(zone) == b'-' { -1 } else { 1 };
            let (tz, more) = parse_clock(&time, zone + 1, end)?;
            if more {
                return Err(());
            }
            let seconds = tz[0] * 3600 + tz[1] * 60 + tz[2];
            if seconds >= 86_400 {
                return Err(());
            }
            offset = Some(sign * (seconds * MICROS_PER_SECOND + tz[3]));
        }
    }
    let [hour, minute, second, micros] = clock;
    if hour > 23 || minute > 59 || second > 59 {
        return Err(());
    }
    let local = days_from_civil(year, month, day) * MICROS_PER_DAY
        + (hour * 3600 + minute * 60 + second) * MICROS_PER_SECOND
        + micros;
    Ok(Parsed { local, offset })
}

/// Zero-padded decimal without `format!`: this runs seven times per change.
fn push_padded(out: &mut Vec<u8>, value: i64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut rest = value.unsigned_abs();
    let mut at = digits.len();
    while rest > 0 {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let start = at.min(digits.len() - width);
    out.extend_from_slice(&digits[start..]);
}

/// `date.isoformat()` of the day holding `micros`.
pub fn iso_date(micros: i64) -> String {
    let (year, month, day) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    format!("{year:04}-{month:02}-{day:02}")
}

pub fn iso_date_of_day(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The UTC datetime as orjson writes it, quotes included.
pub fn write_utc(out: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let seconds = rest / MICROS_PER_SECOND;
    let fraction = rest % MICROS_PER_SECOND;
    out.push(b'"');
    push_padded(out, year, 4);
    out.push(b'-');
    push_padded(out, i64::from(month), 2);
    out.push(b'-');
    push_padded(out, i64::from(day), 2);
    out.push(b'T');
    push_padded(out, seconds / 3600, 2);
    out.push(b':');
    push_padded(out, seconds / 60 % 60, 2);
    out.push(b':');
    push_padded(out, seconds % 60, 2);
    if fraction != 0 {
        out.push(b'.');
        push_padded(out, fraction, 6);
    }
    out.extend_from_slice(b"+00:00\"");
}
