//! The pickler: writes exactly what CPython 3.11's C pickler (`pickle.dumps(v, protocol=p)`,
//! p in 2..=5) writes for a freshly built object graph — same opcodes, memo indices, batches
//! and frames.
//!
//! Identity, which decides when CPython writes a memo GET instead of the object again, is
//! modelled as CPython has it for fresh objects: every container, str, bytes and reduced
//! object is a distinct object, except the ones CPython shares — the empty and one-character
//! Latin-1 `str`s and `b''` (interpreter singletons), interned names (the module names of
//! types, `'latin1'`, a UUID state's `'int'`), classes and functions, `timezone.utc`, and
//! `ZoneInfo` instances (cached per key).

use std::collections::HashMap;

use num_bigint::BigInt;

use super::opcodes::*;
use crate::value::{Date, DateTime, Dict, Time, TimeDelta, TzInfo, Value};

/// Identity of an object CPython shares between occurrences.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// An interned or singleton `str`.
    Str(String),
    /// The `b''` singleton.
    EmptyBytes,
    /// A class or function.
    Global(&'static str, &'static str),
    /// `timezone.utc`.
    Utc,
    /// `ZoneInfo(key)`.
    Zone(String),
}

/// The identity a `str` value has in a fresh graph.
fn str_key(s: &str) -> Option<Key> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Some(Key::Str(String::new())),
        (Some(c), None) if u32::from(c) < 256 => Some(Key::Str(s.to_owned())),
        _ => None,
    }
}

/// The identity a `bytes` value has in a fresh graph (only `b''` is a singleton).
fn bytes_key(b: &[u8]) -> Option<Key> {
    b.is_empty().then_some(Key::EmptyBytes)
}

/// A reduce argument: a value, or one of the helper objects `__reduce__` methods produce.
enum Arg<'v> {
    Value(&'v Value),
    Int(i64),
    /// A `str` with the given identity.
    Str(&'v str, Option<Key>),
    /// A `bytes` with the given identity.
    Bytes(&'v [u8], Option<Key>),
    /// A list of values (what `set.__reduce__` builds for older protocols).
    List(&'v [Value]),
    Tz(&'v TzInfo),
    /// A `timedelta(days, seconds, microseconds)` (a timezone's offset).
    TimeDelta(TimeDelta),
    Global(&'static str, &'static str),
    /// The bound method `ZoneInfo._unpickle`.
    ZoneUnpickle,
}

/// The pickler's state.
pub(super) struct Encoder {
    out: Vec<u8>,
    proto: u8,
    framing: bool,
    frame_start: Option<usize>,
    memo: HashMap<Key, u32>,
    memo_len: u32,
}

impl Encoder {
    /// Pickles `value` with protocol `proto` (clamped to 2..=5).
    pub(super) fn dumps(value: &Value, proto: u8) -> Vec<u8> {
        let proto = proto.clamp(2, HIGHEST_PROTOCOL);
        let mut e = Encoder {
            out: Vec::with_capacity(64),
            proto,
            framing: false,
            frame_start: None,
            memo: HashMap::new(),
            memo_len: 0,
        };
        e.write(&[PROTO, proto]);
        e.framing = proto >= 4;
        e.save(value);
        e.write(&[STOP]);
        e.commit_frame();
        e.out
    }

    // ----- output and framing -----

    fn write(&mut self, data: &[u8]) {
        if self.framing && self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0; FRAME_HEADER_SIZE]);
        }
        self.out.extend_from_slice(data);
    }

    fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let len = self.out.len() - start - FRAME_HEADER_SIZE;
        if len >= FRAME_SIZE_MIN {
            self.out[start] = FRAME;
            self.out[start + 1..start + FRAME_HEADER_SIZE]
                .copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER_SIZE);
        }
    }

    /// Called where CPython's `save()` starts: closes a frame that reached the target size.
    fn boundary(&mut self) {
        if let Some(start) = self.frame_start {
            if self.out.len() - start - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET {
                self.commit_frame();
            }
        }
    }

    /// Writes an opcode header and its payload; large payloads go outside any frame.
    fn write_payload(&mut self, header: &[u8], data: &[u8]) {
        if data.len() >= FRAME_SIZE_TARGET {
            self.commit_frame();
            let framing = std::mem::replace(&mut self.framing, false);
            self.write(header);
            self.write(data);
            self.framing = framing;
        } else {
            self.write(header);
            self.write(data);
        }
    }

    // ----- memo -----

    /// Writes a GET when the shared object `key` was already pickled.
    fn try_get(&mut self, key: &Option<Key>) -> bool {
        let Some(idx) = key.as_ref().and_then(|k| self.memo.get(k)).copied() else {
            return false;
        };
        if idx < 256 {
            self.write(&[BINGET, idx as u8]);
        } else {
            let mut op = [LONG_BINGET, 0, 0, 0, 0];
            op[1..].copy_from_slice(&idx.to_le_bytes());
            self.write(&op);
        }
        true
    }

    /// Memoizes the object just written (all non-atomic objects are memoized).
    fn memoize(&mut self, key: Option<Key>) {
        let idx = self.memo_len;
        self.memo_len += 1;
        if let Some(k) = key {
            self.memo.insert(k, idx);
        }
        if self.proto >= 4 {
            self.write(&[MEMOIZE]);
        } else if idx < 256 {
            self.write(&[BINPUT, idx as u8]);
        } else {
            let mut op = [LONG_BINPUT, 0, 0, 0, 0];
            op[1..].copy_from_slice(&idx.to_le_bytes());
            self.write(&op);
        }
    }

    // ----- values -----

    fn save(&mut self, v: &Value) {
        self.boundary();
        match v {
            Value::None => self.write(&[NONE]),
            Value::Bool(b) => self.write(&[if *b { NEWTRUE } else { NEWFALSE }]),
            Value::Int(i) => self.save_int(*i),
            Value::BigInt(b) => self.save_long_bytes(&b.to_signed_bytes_le()),
            Value::Float(f) => {
                let mut op = [BINFLOAT, 0, 0, 0, 0, 0, 0, 0, 0];
                op[1..].copy_from_slice(&f.to_be_bytes());
                self.write(&op);
            }
            Value::Str(s) => self.save_str_body(s, str_key(s)),
            // Never a shared object: CPython shares only the empty and 1-char Latin-1 strs.
            Value::SurrogateStr(s) => self.save_unicode(s.as_surrogatepass_utf8(), None),
            Value::Bytes(b) => self.save_bytes_body(b, bytes_key(b)),
            Value::ByteArray(b) => self.save_bytearray(b),
            Value::List(items) => self.save_list_body(items),
            Value::Tuple(items) => {
                let args: Vec<Arg<'_>> = items.iter().map(Arg::Value).collect();
                self.save_tuple_body(&args);
            }
            Value::Dict(d) => self.save_dict(d),
            Value::Set(items) => self.save_set(items),
            Value::FrozenSet(items) => self.save_frozenset(items),
            Value::DateTime(dt) => self.save_datetime(dt),
            Value::Date(d) => self.save_date(d),
            Value::Time(t) => self.save_time(t),
            Value::TimeDelta(td) => self.save_timedelta(td),
            Value::Decimal(text) => {
                self.save_reduce(("decimal", "Decimal"), &[Arg::Str(text, None)], None)
            }
            Value::Uuid(u) => self.save_uuid(u),
        }
    }

    fn save_arg(&mut self, a: &Arg<'_>) {
        match a {
            Arg::Value(v) => self.save(v),
            Arg::Int(i) => {
                self.boundary();
                self.save_int(*i);
            }
            Arg::Str(s, key) => {
                self.boundary();
                self.save_str_body(s, key.clone());
            }
            Arg::Bytes(b, key) => {
                self.boundary();
                self.save_bytes_body(b, key.clone());
            }
            Arg::List(items) => {
                self.boundary();
                self.save_list_body(items);
            }
            Arg::Tz(tz) => self.save_tz(tz),
            Arg::TimeDelta(td) => {
                self.boundary();
                self.save_timedelta(td);
            }
            Arg::Global(m, n) => self.save_global(m, n),
            Arg::ZoneUnpickle => {
                self.boundary();
                let args = [
                    Arg::Global("zoneinfo", "ZoneInfo"),
                    Arg::Str("_unpickle", None),
                ];
                self.save_reduce(("builtins", "getattr"), &args, None);
            }
        }
    }

    fn save_int(&mut self, i: i64) {
        if let Ok(small) = i32::try_from(i) {
            let b = small.to_le_bytes();
            if b[2] != 0 || b[3] != 0 {
                self.write(&[BININT, b[0], b[1], b[2], b[3]]);
            } else if b[1] != 0 {
                self.write(&[BININT2, b[0], b[1]]);
            } else {
                self.write(&[BININT1, b[0]]);
            }
        } else {
            self.save_long_bytes(&BigInt::from(i).to_signed_bytes_le());
        }
    }

    fn save_long_bytes(&mut self, bytes: &[u8]) {
        if bytes.len() < 256 {
            self.write(&[LONG1, bytes.len() as u8]);
        } else {
            let mut op = [LONG4, 0, 0, 0, 0];
            op[1..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            self.write(&op);
        }
        self.write(bytes);
    }

    fn save_str_body(&mut self, s: &str, key: Option<Key>) {
        self.save_unicode(s.as_bytes(), key);
    }

    /// A `str` given as its UTF-8 (with `surrogatepass`, as CPython's pickler encodes it).
    fn save_unicode(&mut self, utf8: &[u8], key: Option<Key>) {
        if self.try_get(&key) {
            return;
        }
        let n = utf8.len();
        let mut header = [0u8; 9];
        let header: &[u8] = if n <= 0xff && self.proto >= 4 {
            header[..2].copy_from_slice(&[SHORT_BINUNICODE, n as u8]);
            &header[..2]
        } else if n <= 0xffff_ffff {
            header[0] = BINUNICODE;
            header[1..5].copy_from_slice(&(n as u32).to_le_bytes());
            &header[..5]
        } else {
            header[0] = BINUNICODE8;
            header[1..9].copy_from_slice(&(n as u64).to_le_bytes());
            &header[..9]
        };
        self.write_payload(header, utf8);
        self.memoize(key);
    }

    fn save_bytes_body(&mut self, b: &[u8], key: Option<Key>) {
        if self.try_get(&key) {
            return;
        }
        if self.proto < 3 {
            if b.is_empty() {
                self.save_reduce(("builtins", "bytes"), &[], key);
            } else {
                let text: String = b.iter().map(|&c| char::from(c)).collect();
                let text_key = str_key(&text);
                let args = [
                    Arg::Str(&text, text_key),
                    Arg::Str("latin1", Some(Key::Str("latin1".into()))),
                ];
                self.save_reduce(("_codecs", "encode"), &args, key);
            }
            return;
        }
        let n = b.len();
        let mut header = [0u8; 9];
        let header: &[u8] = if n <= 0xff {
            header[..2].copy_from_slice(&[SHORT_BINBYTES, n as u8]);
            &header[..2]
        } else if n <= 0xffff_ffff {
            header[0] = BINBYTES;
            header[1..5].copy_from_slice(&(n as u32).to_le_bytes());
            &header[..5]
        } else {
            header[0] = BINBYTES8;
            header[1..9].copy_from_slice(&(n as u64).to_le_bytes());
            &header[..9]
        };
        self.write_payload(header, b);
        self.memoize(key);
    }

    fn save_bytearray(&mut self, b: &[u8]) {
        if self.proto >= 5 {
            let mut header = [BYTEARRAY8, 0, 0, 0, 0, 0, 0, 0, 0];
            header[1..].copy_from_slice(&(b.len() as u64).to_le_bytes());
            self.write_payload(&header, b);
            self.memoize(None);
        } else if b.is_empty() {
            self.save_reduce(("builtins", "bytearray"), &[], None);
        } else {
            self.save_reduce(
                ("builtins", "bytearray"),
                &[Arg::Bytes(b, bytes_key(b))],
                None,
            );
        }
    }

    fn save_list_body(&mut self, items: &[Value]) {
        self.write(&[EMPTY_LIST]);
        self.memoize(None);
        match items {
            [] => {}
            [one] => {
                self.save(one);
                self.write(&[APPEND]);
            }
            _ => {
                for batch in items.chunks(BATCHSIZE) {
                    self.write(&[MARK]);
                    for item in batch {
                        self.save(item);
                    }
                    self.write(&[APPENDS]);
                }
            }
        }
    }

    fn save_tuple_body(&mut self, items: &[Arg<'_>]) {
        match items.len() {
            0 => {
                self.write(&[EMPTY_TUPLE]);
                return;
            }
            n @ 1..=3 => {
                for item in items {
                    self.save_arg(item);
                }
                self.write(&[TUPLE1 + (n as u8 - 1)]);
            }
            _ => {
                self.write(&[MARK]);
                for item in items {
                    self.save_arg(item);
                }
                self.write(&[TUPLE]);
            }
        }
        self.memoize(None);
    }

    fn save_dict(&mut self, d: &Dict) {
        self.write(&[EMPTY_DICT]);
        self.memoize(None);
        if let [(k, v)] = d.0.as_slice() {
            self.save(k);
            self.save(v);
            self.write(&[SETITEM]);
            return;
        }
        if d.is_empty() {
            return;
        }
        // CPython's batch_dict_exact writes an empty trailing batch after a full one.
        let mut pairs = d.0.iter();
        loop {
            self.write(&[MARK]);
            let mut n = 0;
            for (k, v) in pairs.by_ref().take(BATCHSIZE) {
                self.save(k);
                self.save(v);
                n += 1;
            }
            self.write(&[SETITEMS]);
            if n < BATCHSIZE {
                break;
            }
        }
    }

    fn save_set(&mut self, items: &[Value]) {
        if self.proto < 4 {
            self.save_reduce(("builtins", "set"), &[Arg::List(items)], None);
            return;
        }
        self.write(&[EMPTY_SET]);
        self.memoize(None);
        if items.is_empty() {
            return;
        }
        let mut it = items.iter();
        loop {
            self.write(&[MARK]);
            let mut n = 0;
            for item in it.by_ref().take(BATCHSIZE) {
                self.save(item);
                n += 1;
            }
            self.write(&[ADDITEMS]);
            if n < BATCHSIZE {
                break;
            }
        }
    }

    fn save_frozenset(&mut self, items: &[Value]) {
        if self.proto < 4 {
            self.save_reduce(("builtins", "frozenset"), &[Arg::List(items)], None);
            return;
        }
        self.write(&[MARK]);
        for item in items {
            self.save(item);
        }
        self.write(&[FROZENSET]);
        self.memoize(None);
    }

    // ----- globals and reduce -----

    fn save_global(&mut self, module: &'static str, name: &'static str) {
        self.boundary();
        let key = Some(Key::Global(module, name));
        if self.try_get(&key) {
            return;
        }
        if self.proto >= 4 {
            // A type's `__module__` is interned (shared); `getattr.__module__` is not.
            let module_key = (name != "getattr").then(|| Key::Str(module.to_owned()));
            self.boundary();
            self.save_str_body(module, module_key);
            self.boundary();
            self.save_str_body(name, None);
            self.write(&[STACK_GLOBAL]);
        } else {
            let module = match (self.proto, module) {
                (0..=2, "builtins") => "__builtin__",
                (0..=2, "copyreg") => "copy_reg",
                _ => module,
            };
            self.write(&[GLOBAL]);
            self.write(module.as_bytes());
            self.write(b"\n");
            self.write(name.as_bytes());
            self.write(b"\n");
        }
        self.memoize(key);
    }

    /// `func(*args)` as REDUCE, then memoizes the result under `key`.
    fn save_reduce(
        &mut self,
        func: (&'static str, &'static str),
        args: &[Arg<'_>],
        key: Option<Key>,
    ) {
        self.save_global(func.0, func.1);
        self.boundary();
        self.save_tuple_body(args);
        self.write(&[REDUCE]);
        self.memoize(key);
    }

    fn save_tz(&mut self, tz: &TzInfo) {
        self.boundary();
        match tz {
            TzInfo::Utc
            | TzInfo::Fixed {
                offset_seconds: 0,
                name: None,
            } => {
                let key = Some(Key::Utc);
                if !self.try_get(&key) {
                    let zero = TimeDelta {
                        days: 0,
                        seconds: 0,
                        microseconds: 0,
                    };
                    self.save_reduce(("datetime", "timezone"), &[Arg::TimeDelta(zero)], key);
                }
            }
            TzInfo::Fixed {
                offset_seconds,
                name,
            } => {
                let secs = i64::from(*offset_seconds);
                let off = Arg::TimeDelta(TimeDelta {
                    days: secs.div_euclid(86_400),
                    seconds: secs.rem_euclid(86_400) as i32,
                    microseconds: 0,
                });
                match name {
                    Some(n) => {
                        self.save_reduce(("datetime", "timezone"), &[off, Arg::Str(n, None)], None)
                    }
                    None => self.save_reduce(("datetime", "timezone"), &[off], None),
                }
            }
            TzInfo::Zone(name) => {
                let key = Some(Key::Zone(name.clone()));
                if !self.try_get(&key) {
                    self.save_arg(&Arg::ZoneUnpickle);
                    self.boundary();
                    self.save_tuple_body(&[Arg::Str(name, None), Arg::Int(1)]);
                    self.write(&[REDUCE]);
                    self.memoize(key);
                }
            }
        }
    }

    fn save_timedelta(&mut self, td: &TimeDelta) {
        let args = [
            Arg::Int(td.days),
            Arg::Int(i64::from(td.seconds)),
            Arg::Int(i64::from(td.microseconds)),
        ];
        self.save_reduce(("datetime", "timedelta"), &args, None);
    }

    fn save_datetime(&mut self, dt: &DateTime) {
        let (d, t) = (&dt.date, &dt.time);
        let month = d.month
            | if t.fold != 0 && self.proto > 3 {
                0x80
            } else {
                0
            };
        let us = t.microsecond.to_be_bytes();
        let state = [
            (d.year >> 8) as u8,
            d.year as u8,
            month,
            d.day,
            t.hour,
            t.minute,
            t.second,
            us[1],
            us[2],
            us[3],
        ];
        self.save_with_tz(("datetime", "datetime"), &state, t.tz.as_ref());
    }

    fn save_date(&mut self, d: &Date) {
        let state = [(d.year >> 8) as u8, d.year as u8, d.month, d.day];
        self.save_reduce(("datetime", "date"), &[Arg::Bytes(&state, None)], None);
    }

    fn save_time(&mut self, t: &Time) {
        let hour = t.hour
            | if t.fold != 0 && self.proto > 3 {
                0x80
            } else {
                0
            };
        let us = t.microsecond.to_be_bytes();
        let state = [hour, t.minute, t.second, us[1], us[2], us[3]];
        self.save_with_tz(("datetime", "time"), &state, t.tz.as_ref());
    }

    fn save_with_tz(
        &mut self,
        class: (&'static str, &'static str),
        state: &[u8],
        tz: Option<&TzInfo>,
    ) {
        match tz {
            Some(tz) => self.save_reduce(class, &[Arg::Bytes(state, None), Arg::Tz(tz)], None),
            None => self.save_reduce(class, &[Arg::Bytes(state, None)], None),
        }
    }

    fn save_uuid(&mut self, u: &uuid::Uuid) {
        // object.__reduce_ex__(2+): copyreg.__newobj__(UUID) then BUILD {'int': n}.
        self.save_global("uuid", "UUID");
        self.boundary();
        self.write(&[EMPTY_TUPLE]);
        self.write(&[NEWOBJ]);
        self.memoize(None);
        self.boundary();
        self.write(&[EMPTY_DICT]);
        self.memoize(None);
        self.boundary();
        self.save_str_body("int", Some(Key::Str("int".into())));
        self.boundary();
        let n = u.as_u128();
        match i64::try_from(n) {
            Ok(small) => self.save_int(small),
            Err(_) => self.save_long_bytes(&BigInt::from(n).to_signed_bytes_le()),
        }
        self.write(&[SETITEM]);
        self.write(&[BUILD]);
    }
}
