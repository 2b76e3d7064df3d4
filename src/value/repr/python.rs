//! `repr()` of every [`Value`], as CPython 3.11 prints it.

use std::fmt::Write as _;

use super::float::float_repr;
use super::text::{push_bytes_repr, push_str_repr, push_surrogate_str_repr};
use crate::value::{Date, DateTime, Time, TimeDelta, TzInfo, Value};

/// Containers nested deeper than this print as `...` (Python would raise `RecursionError`).
const MAX_DEPTH: usize = 512;

/// Appends `repr(v)` to `out`.
pub(crate) fn write_repr(v: &Value, out: &mut String, depth: usize) {
    if depth > MAX_DEPTH {
        out.push_str("...");
        return;
    }
    match v {
        Value::None => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Float(f) => out.push_str(float_repr(*f).as_str()),
        Value::Str(s) => push_str_repr(s, out),
        Value::SurrogateStr(s) => push_surrogate_str_repr(s, out),
        Value::Bytes(b) => push_bytes_repr(b, out),
        Value::ByteArray(b) => {
            out.push_str("bytearray(");
            push_bytes_repr(b, out);
            out.push(')');
        }
        Value::List(items) => write_seq(items, "[", "]", out, depth),
        Value::Tuple(items) => {
            let end = if items.len() == 1 { ",)" } else { ")" };
            write_seq(items, "(", end, out, depth);
        }
        Value::Dict(d) => {
            out.push('{');
            for (i, (k, val)) in d.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(k, out, depth + 1);
                out.push_str(": ");
                write_repr(val, out, depth + 1);
            }
            out.push('}');
        }
        Value::Set(items) if items.is_empty() => out.push_str("set()"),
        Value::Set(items) => write_seq(items, "{", "}", out, depth),
        Value::FrozenSet(items) if items.is_empty() => out.push_str("frozenset()"),
        Value::FrozenSet(items) => write_seq(items, "frozenset({", "})", out, depth),
        Value::DateTime(dt) => write_datetime(dt, out),
        Value::Date(d) => write_date(d, out),
        Value::Time(t) => write_time(t, out),
        Value::TimeDelta(td) => write_timedelta(td, out),
        Value::Decimal(text) => {
            out.push_str("Decimal('");
            out.push_str(text);
            out.push_str("')");
        }
        Value::Uuid(u) => {
            let _ = write!(out, "UUID('{}')", u.hyphenated());
        }
    }
}

fn write_seq(items: &[Value], open: &str, close: &str, out: &mut String, depth: usize) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_repr(item, out, depth + 1);
    }
    out.push_str(close);
}

fn write_date(d: &Date, out: &mut String) {
    let _ = write!(out, "datetime.date({}, {}, {})", d.year, d.month, d.day);
}

/// `h, m[, s[, us]]` with Python's trailing-zero stripping, then `fold=1` and `tzinfo=...`.
fn write_clock(t: &Time, out: &mut String) {
    let _ = write!(out, "{}, {}", t.hour, t.minute);
    if t.second != 0 || t.microsecond != 0 {
        let _ = write!(out, ", {}", t.second);
    }
    if t.microsecond != 0 {
        let _ = write!(out, ", {}", t.microsecond);
    }
    if t.fold == 1 {
        out.push_str(", fold=1");
    }
    if let Some(tz) = &t.tz {
        out.push_str(", tzinfo=");
        write_tzinfo(tz, out);
    }
}

fn write_datetime(dt: &DateTime, out: &mut String) {
    let d = &dt.date;
    let _ = write!(
        out,
        "datetime.datetime({}, {}, {}, ",
        d.year, d.month, d.day
    );
    write_clock(&dt.time, out);
    out.push(')');
}

fn write_time(t: &Time, out: &mut String) {
    out.push_str("datetime.time(");
    write_clock(t, out);
    out.push(')');
}

/// Python's `repr()` of a `tzinfo`.
pub(crate) fn write_tzinfo(tz: &TzInfo, out: &mut String) {
    match tz {
        TzInfo::Utc
        | TzInfo::Fixed {
            offset_seconds: 0,
            name: None,
        } => out.push_str("datetime.timezone.utc"),
        TzInfo::Fixed {
            offset_seconds,
            name,
        } => {
            out.push_str("datetime.timezone(");
            let td = TimeDelta::from_parts(0, i64::from(*offset_seconds), 0).unwrap_or_default();
            write_timedelta(&td, out);
            if let Some(name) = name {
                out.push_str(", ");
                push_str_repr(name, out);
            }
            out.push(')');
        }
        TzInfo::Zone(key) => {
            out.push_str("zoneinfo.ZoneInfo(key=");
            push_str_repr(key, out);
            out.push(')');
        }
    }
}

/// `datetime.timedelta(days=.., seconds=.., microseconds=..)`, zero fields left out.
pub(crate) fn write_timedelta(td: &TimeDelta, out: &mut String) {
    out.push_str("datetime.timedelta(");
    if td.is_zero() {
        out.push_str("0)");
        return;
    }
    let mut sep = "";
    if td.days != 0 {
        let _ = write!(out, "days={}", td.days);
        sep = ", ";
    }
    if td.seconds != 0 {
        let _ = write!(out, "{sep}seconds={}", td.seconds);
        sep = ", ";
    }
    if td.microseconds != 0 {
        let _ = write!(out, "{sep}microseconds={}", td.microseconds);
    }
    out.push(')');
}
