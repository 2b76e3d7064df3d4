//! Our own constructors for the allowed types: the reduce/state formats of `datetime`,
//! `timezone`, `uuid` and friends turned into [`crate::value`] types, with the range checks
//! Python's constructors make. Pure functions: no pickle machinery here.

use num_bigint::Sign;

use crate::value::{Date, DateTime, Time, TimeDelta, TzInfo, Value};

/// A constructor's complaint; becomes [`super::PickleError::Invalid`].
pub(super) type Fail = String;

const MAX_TIMEDELTA_DAYS: i64 = 999_999_999;

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// `datetime.date(year, month, day)` with Python's range checks.
pub(super) fn date(year: i64, month: i64, day: i64) -> Result<Date, Fail> {
    if !(1..=9999).contains(&year) {
        return Err(format!("year {year} is out of range"));
    }
    if !(1..=12).contains(&month) {
        return Err("month must be in 1..12".into());
    }
    let (year, month) = (year as i32, month as u8);
    if day < 1 || day > i64::from(days_in_month(year, month)) {
        return Err("day is out of range for month".into());
    }
    Ok(Date {
        year,
        month,
        day: day as u8,
    })
}

/// `datetime.time(hour, minute, second, microsecond, tzinfo, fold=fold)` with range checks.
pub(super) fn time(
    h: i64,
    m: i64,
    s: i64,
    us: i64,
    tz: Option<TzInfo>,
    fold: i64,
) -> Result<Time, Fail> {
    if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..60).contains(&s) {
        return Err("time field out of range".into());
    }
    if !(0..1_000_000).contains(&us) {
        return Err("microsecond must be in 0..999999".into());
    }
    if !(0..=1).contains(&fold) {
        return Err("fold must be either 0 or 1".into());
    }
    Ok(Time {
        hour: h as u8,
        minute: m as u8,
        second: s as u8,
        microsecond: us as u32,
        tz,
        fold: fold as u8,
    })
}

/// The 10-byte state of a pickled `datetime` (fold in the high bit of the month byte).
pub(super) fn datetime_from_state(b: &[u8], tz: Option<TzInfo>) -> Result<DateTime, Fail> {
    let [yh, yl, mo, d, h, mi, s, u1, u2, u3] = *b else {
        return Err("bad datetime state: expected 10 bytes".into());
    };
    let fold = i64::from(mo >> 7);
    let date = date(
        i64::from(yh) * 256 + i64::from(yl),
        i64::from(mo & 0x7f),
        i64::from(d),
    )?;
    let us = (i64::from(u1) << 16) | (i64::from(u2) << 8) | i64::from(u3);
    let time = time(i64::from(h), i64::from(mi), i64::from(s), us, tz, fold)?;
    Ok(DateTime { date, time })
}

/// The 4-byte state of a pickled `date`.
pub(super) fn date_from_state(b: &[u8]) -> Result<Date, Fail> {
    let [yh, yl, mo, d] = *b else {
        return Err("bad date state: expected 4 bytes".into());
    };
    date(
        i64::from(yh) * 256 + i64::from(yl),
        i64::from(mo),
        i64::from(d),
    )
}

/// The 6-byte state of a pickled `time` (fold in the high bit of the hour byte).
pub(super) fn time_from_state(b: &[u8], tz: Option<TzInfo>) -> Result<Time, Fail> {
    let [h, mi, s, u1, u2, u3] = *b else {
        return Err("bad time state: expected 6 bytes".into());
    };
    let us = (i64::from(u1) << 16) | (i64::from(u2) << 8) | i64::from(u3);
    time(
        i64::from(h & 0x7f),
        i64::from(mi),
        i64::from(s),
        us,
        tz,
        i64::from(h >> 7),
    )
}

/// `timedelta(days, seconds, microseconds)` from integers, normalized as Python does.
pub(super) fn timedelta(days: i64, seconds: i64, micros: i64) -> Result<TimeDelta, Fail> {
    let overflow = || Fail::from("timedelta out of range");
    let total_us =
        i128::from(days) * 86_400_000_000 + i128::from(seconds) * 1_000_000 + i128::from(micros);
    let days = total_us.div_euclid(86_400_000_000);
    let rest = total_us.rem_euclid(86_400_000_000);
    if days.abs() > i128::from(MAX_TIMEDELTA_DAYS) {
        return Err(overflow());
    }
    Ok(TimeDelta {
        days: i64::try_from(days).map_err(|_| overflow())?,
        seconds: (rest / 1_000_000) as i32,
        microseconds: (rest % 1_000_000) as i32,
    })
}

/// `datetime.timezone(offset, name)`. `timezone(timedelta(0))` is `timezone.utc` in CPython.
pub(super) fn timezone(offset: &TimeDelta, name: Option<String>) -> Result<TzInfo, Fail> {
    if offset.microseconds != 0 {
        return Err("timezone offsets with microseconds are not supported".into());
    }
    let secs = offset.days * 86_400 + i64::from(offset.seconds);
    if secs <= -86_400 || secs >= 86_400 {
        return Err("offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24)".into());
    }
    if secs == 0 && name.is_none() {
        return Ok(TzInfo::Utc);
    }
    Ok(TzInfo::Fixed {
        offset_seconds: secs as i32,
        name,
    })
}

/// A zone name from `zoneinfo` or pytz; pytz's `"UTC"` is its UTC singleton.
pub(super) fn zone(name: &str, pytz: bool) -> Result<TzInfo, Fail> {
    if name.is_empty() || name.len() > 255 {
        return Err("invalid time zone key".into());
    }
    if pytz && name == "UTC" {
        return Ok(TzInfo::Utc);
    }
    Ok(TzInfo::Zone(name.to_owned()))
}

/// `uuid.UUID(int=n)`.
pub(super) fn uuid_from_int(v: &Value) -> Result<uuid::Uuid, Fail> {
    let err = || Fail::from("UUID int is out of range (need 0 <= int < 1<<128)");
    let n: u128 = match v {
        Value::Int(i) => u128::try_from(*i).map_err(|_| err())?,
        Value::BigInt(b) => {
            let (sign, bytes) = b.to_bytes_le();
            if sign == Sign::Minus || bytes.len() > 16 {
                return Err(err());
            }
            let mut buf = [0u8; 16];
            buf[..bytes.len()].copy_from_slice(&bytes);
            u128::from_le_bytes(buf)
        }
        _ => return Err("UUID int must be an int".into()),
    };
    Ok(uuid::Uuid::from_u128(n))
}

/// `uuid.UUID(hex)`: the hex forms `UUID()` accepts (braces, `urn:uuid:`, dashes).
pub(super) fn uuid_from_hex(s: &str) -> Result<uuid::Uuid, Fail> {
    let t = s.trim_start_matches("urn:").trim_start_matches("uuid:");
    let hex: String = t
        .chars()
        .filter(|c| !matches!(c, '{' | '}' | '-'))
        .collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("badly formed hexadecimal UUID string".into());
    }
    u128::from_str_radix(&hex, 16)
        .map(uuid::Uuid::from_u128)
        .map_err(|_| "badly formed hexadecimal UUID string".into())
}

/// An `int` argument as `i64`.
pub(super) fn int_arg(v: &Value, what: &str) -> Result<i64, Fail> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::BigInt(_) => Err(format!("{what}: integer out of range")),
        _ => Err(format!("{what}: an integer is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timedelta_normalizes_like_python() {
        let td = timedelta(0, -1, 0).unwrap();
        assert_eq!((td.days, td.seconds, td.microseconds), (-1, 86399, 0));
        assert!(timedelta(1_000_000_000, 0, 0).is_err());
    }

    #[test]
    fn datetime_state() {
        let dt = datetime_from_state(&[7, 232, 1 | 0x80, 2, 3, 4, 5, 0, 0, 6], None).unwrap();
        assert_eq!(
            (
                dt.date.year,
                dt.date.month,
                dt.time.fold,
                dt.time.microsecond
            ),
            (2024, 1, 1, 6)
        );
        assert!(datetime_from_state(&[7, 232, 2, 30, 0, 0, 0, 0, 0, 0], None).is_err());
    }
}
