//! REDUCE / NEWOBJ / OBJ / INST / BUILD: applying an allowed global to its arguments with our
//! own constructors (never Python's), mirroring what each type's `__reduce__` writes.

use std::borrow::Cow;

use super::construct::{self as c, Fail};
use super::decimal::canonical_decimal;
use super::globals::{display_name, Global};
use std::mem::size_of;

use super::machine::{value_heap, Id, Machine, Node};
use super::PickleError;
use crate::value::{TzInfo, Value};

/// Most arguments any allowed constructor takes (`datetime(y, m, d, h, mi, s, us, tz)`).
const MAX_ARGS: usize = 8;

/// How a global is applied.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `f(*args)` (REDUCE, OBJ / INST with arguments).
    Call,
    /// `cls.__new__(cls, *args)` (NEWOBJ, NEWOBJ_EX, OBJ / INST without arguments).
    New,
}

/// A constructor's result: the node and the payload size to charge for it.
type Built = (Node, usize);

fn is_class(g: Global) -> bool {
    !matches!(
        g,
        Global::Getattr
            | Global::CodecsEncode
            | Global::Reconstructor
            | Global::PytzP
            | Global::PytzUtc
            | Global::ZoneInfoUnpickle
    )
}

fn latin1_codec(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "latin1" | "latin-1" | "latin_1" | "iso-8859-1" | "iso8859-1" | "l1"
    )
}

impl Machine<'_> {
    /// REDUCE: `func(*args)`.
    pub(super) fn reduce(&mut self, func: Id, args: Id) -> Result<Id, PickleError> {
        let g = self.global_of(func)?;
        let (ids, n) = self.args_of(args)?;
        self.construct(g, &ids[..n], Via::Call)
    }

    /// NEWOBJ: `cls.__new__(cls, *args)`.
    pub(super) fn newobj(&mut self, cls: Id, args: Id) -> Result<Id, PickleError> {
        let g = self.global_of(cls)?;
        if !is_class(g) {
            return Err(self.err("NEWOBJ class argument isn't a type object"));
        }
        let (ids, n) = self.args_of(args)?;
        self.construct(g, &ids[..n], Via::New)
    }

    /// OBJ / INST: `cls(*args)`, or `cls.__new__(cls)` for a class without arguments.
    pub(super) fn instantiate(&mut self, g: Global, args: &[Id]) -> Result<Id, PickleError> {
        if args.len() > MAX_ARGS {
            return Err(self.err("too many arguments"));
        }
        let via = if args.is_empty() && is_class(g) {
            Via::New
        } else {
            Via::Call
        };
        self.construct(g, args, via)
    }

    /// BUILD: only `uuid.UUID` takes state; `None` or `{}` state is a no-op for anything.
    pub(super) fn build(&mut self, inst: Id, state: Id) -> Result<(), PickleError> {
        let is_uuid = matches!(
            self.node(inst),
            Node::UuidBlank | Node::Value(Value::Uuid(_))
        );
        let pairs = match self.node(state) {
            Node::Value(Value::None) if !is_uuid => return Ok(()),
            Node::Dict(d) if d.is_empty() && !is_uuid => return Ok(()),
            Node::Dict(d) if is_uuid => d,
            _ if is_uuid => return Err(self.err("UUID state must be a dict")),
            _ => return Err(self.err("BUILD state is only supported for uuid.UUID")),
        };
        let mut int = None;
        for &(k, v) in pairs {
            if matches!(self.node(k), Node::Value(Value::Str(s)) if s == "int") {
                int = Some(v);
            }
        }
        let int = int.ok_or_else(|| self.err("UUID state has no 'int'"))?;
        let uuid = match self.node(int) {
            Node::Value(v) => c::uuid_from_int(v).map_err(|e| self.err(e))?,
            _ => return Err(self.err("UUID int must be an int")),
        };
        self.arena.get_mut(inst).node = Node::Value(Value::Uuid(uuid));
        Ok(())
    }

    fn global_of(&self, id: Id) -> Result<Global, PickleError> {
        match self.node(id) {
            Node::Global(g) => Ok(*g),
            _ => Err(self.err("only allowed globals can be called")),
        }
    }

    fn args_of(&self, id: Id) -> Result<([Id; MAX_ARGS], usize), PickleError> {
        let Node::Tuple(items) = self.node(id) else {
            return Err(self.err("arguments must be a tuple"));
        };
        if items.len() > MAX_ARGS {
            return Err(self.err("too many arguments"));
        }
        let mut ids = [0; MAX_ARGS];
        ids[..items.len()].copy_from_slice(items);
        Ok((ids, items.len()))
    }

    fn construct(&mut self, g: Global, args: &[Id], via: Via) -> Result<Id, PickleError> {
        let (node, _) = self
            .build_node(g, args, via)
            .map_err(|e| self.err(format!("{}: {e}", display_name(g))))?;
        let (heap, depth) = match &node {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => {
                (v.capacity() * size_of::<Id>(), self.depth_over(v))
            }
            Node::Dict(pairs) => {
                let depth = pairs
                    .iter()
                    .map(|&(k, v)| self.depth_over(&[k, v]))
                    .max()
                    .unwrap_or(1);
                (pairs.capacity() * size_of::<(Id, Id)>(), depth)
            }
            Node::Value(v) => (value_heap(v), 0),
            _ => (0, 0),
        };
        let id = self.alloc(node, heap, depth)?;
        let mut children = Vec::new();
        match &self.node(id) {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => {
                children.extend_from_slice(v)
            }
            Node::Dict(pairs) => children.extend(pairs.iter().flat_map(|&(k, v)| [k, v])),
            _ => {}
        }
        for i in children {
            self.add_ref(i);
        }
        Ok(id)
    }

    fn value_arg(&self, id: Id) -> Result<&Value, Fail> {
        match self.node(id) {
            Node::Value(v) => Ok(v),
            _ => Err("argument of an unsupported type".into()),
        }
    }

    fn str_arg(&self, id: Id) -> Result<&str, Fail> {
        match self.value_arg(id)? {
            Value::Str(s) => Ok(s),
            _ => Err("expected a str argument".into()),
        }
    }

    fn int_arg(&self, id: Id, what: &str) -> Result<i64, Fail> {
        c::int_arg(self.value_arg(id)?, what)
    }

    fn tz_arg(&self, id: Option<&Id>) -> Result<Option<TzInfo>, Fail> {
        match id.map(|&id| self.node(id)) {
            None | Some(Node::Value(Value::None)) => Ok(None),
            Some(Node::Tz(tz)) => Ok(Some(tz.clone())),
            Some(_) => Err("bad tzinfo state arg".into()),
        }
    }

    /// A datetime-family state: bytes, or the Latin-1 str older protocols may carry.
    fn state_bytes(&self, id: Id, len: usize) -> Option<Cow<'_, [u8]>> {
        match self.node(id) {
            Node::Value(Value::Bytes(b)) if b.len() == len => Some(Cow::Borrowed(b)),
            Node::Value(Value::Str(s)) if s.chars().count() == len => s
                .chars()
                .map(|ch| u8::try_from(u32::from(ch)).ok())
                .collect::<Option<Vec<u8>>>()
                .map(Cow::Owned),
            _ => None,
        }
    }

    /// The items of an iterable argument (list, tuple, set, frozenset, dict keys).
    fn iter_arg(&self, id: Id) -> Result<Vec<Id>, Fail> {
        match self.node(id) {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => Ok(v.clone()),
            Node::Dict(d) => Ok(d.iter().map(|&(k, _)| k).collect()),
            _ => Err("argument is not a supported iterable".into()),
        }
    }

    fn encode_arg(&self, args: &[Id]) -> Result<Built, Fail> {
        let s = self.str_arg(args[0])?;
        let codec = match args.get(1) {
            Some(&e) => self.str_arg(e)?,
            None => "utf-8",
        };
        let bytes = if latin1_codec(codec) {
            s.chars()
                .map(|ch| u8::try_from(u32::from(ch)).ok())
                .collect::<Option<Vec<u8>>>()
                .ok_or("'latin-1' codec can't encode character")?
        } else if matches!(
            codec.to_ascii_lowercase().as_str(),
            "utf-8" | "utf8" | "utf_8"
        ) || (codec.eq_ignore_ascii_case("ascii") && s.is_ascii())
        {
            s.as_bytes().to_vec()
        } else {
            return Err(format!("unsupported encoding {codec:?}"));
        };
        let n = bytes.len();
        Ok((Node::Value(Value::Bytes(bytes)), n))
    }

    fn bytes_arg(&self, args: &[Id]) -> Result<Vec<u8>, Fail> {
        match args {
            [] => Ok(Vec::new()),
            [one] => match self.node(*one) {
                Node::Value(Value::Bytes(b) | Value::ByteArray(b)) => Ok(b.clone()),
                Node::List(items) | Node::Tuple(items) => items
                    .iter()
                    .map(|&i| match self.node(i) {
                        Node::Value(Value::Int(n)) => {
                            u8::try_from(*n).map_err(|_| "bytes must be in range(0, 256)".into())
                        }
                        _ => Err("an integer is required".into()),
                    })
                    .collect(),
                _ => Err("unsupported argument".into()),
            },
            _ => match self.encode_arg(args)? {
                (Node::Value(Value::Bytes(b)), _) => Ok(b),
                _ => Err("unsupported argument".into()),
            },
        }
    }

    fn build_node(&self, g: Global, args: &[Id], via: Via) -> Result<Built, Fail> {
        let n = args.len();
        let value = |v: Value| -> Result<Built, Fail> { Ok((Node::Value(v), 0)) };
        let arity = |lo: usize, hi: usize| -> Result<(), Fail> {
            if (lo..=hi).contains(&n) {
                Ok(())
            } else {
                Err(format!("takes {lo} to {hi} arguments ({n} given)"))
            }
        };
        match g {
            Global::Set | Global::FrozenSet => {
                arity(0, 1)?;
                let items = match args.first() {
                    Some(&a) if !(g == Global::Set && via == Via::New) => self.iter_arg(a)?,
                    _ => Vec::new(),
                };
                let cost = items.len();
                Ok((
                    if g == Global::Set {
                        Node::Set(items)
                    } else {
                        Node::FrozenSet(items)
                    },
                    cost,
                ))
            }
            Global::Bytes => {
                let b = self.bytes_arg(args)?;
                let cost = b.len();
                Ok((Node::Value(Value::Bytes(b)), cost))
            }
            Global::ByteArray => {
                let b = if via == Via::New {
                    Vec::new()
                } else {
                    self.bytes_arg(args)?
                };
                let cost = b.len();
                Ok((Node::Value(Value::ByteArray(b)), cost))
            }
            Global::CodecsEncode => {
                arity(1, 3)?;
                self.encode_arg(args)
            }
            Global::Getattr => match args {
                [cls, name]
                    if matches!(self.node(*cls), Node::Global(Global::ZoneInfo))
                        && matches!(self.node(*name), Node::Value(Value::Str(s)) if s == "_unpickle") =>
                {
                    Ok((Node::Global(Global::ZoneInfoUnpickle), 0))
                }
                _ => Err("only getattr(zoneinfo.ZoneInfo, '_unpickle') is allowed".into()),
            },
            Global::Object => Err("object instances are not supported".into()),
            Global::Reconstructor => match args {
                [cls, base, state]
                    if matches!(self.node(*cls), Node::Global(Global::Uuid))
                        && matches!(self.node(*base), Node::Global(Global::Object))
                        && matches!(self.node(*state), Node::Value(Value::None)) =>
                {
                    Ok((Node::UuidBlank, 0))
                }
                _ => Err("only _reconstructor(uuid.UUID, object, None) is allowed".into()),
            },
            Global::OrderedDict => {
                arity(0, 1)?;
                let pairs = match (args.first(), via) {
                    (Some(&a), Via::Call) => match self.node(a) {
                        Node::Dict(d) => d.clone(),
                        Node::List(items) | Node::Tuple(items) => items
                            .iter()
                            .map(|&i| match self.node(i) {
                                Node::Tuple(kv) | Node::List(kv) if kv.len() == 2 => {
                                    Ok((kv[0], kv[1]))
                                }
                                _ => Err(Fail::from("OrderedDict items must be pairs")),
                            })
                            .collect::<Result<_, _>>()?,
                        _ => return Err("unsupported argument".into()),
                    },
                    _ => Vec::new(),
                };
                let cost = pairs.len();
                Ok((Node::Dict(pairs), cost))
            }
            Global::CelerySignature => match (args, via) {
                ([a], Via::Call) => match self.node(*a) {
                    Node::Dict(d) => {
                        let pairs = d.clone();
                        let cost = pairs.len();
                        Ok((Node::Dict(pairs), cost))
                    }
                    _ => Err("celery.canvas.signature takes a dict".into()),
                },
                _ => Err("celery.canvas.signature takes a dict".into()),
            },
            Global::DateTime => {
                if n <= 2 && n > 0 {
                    if let Some(state) = self.state_bytes(args[0], 10) {
                        return value(Value::DateTime(Box::new(c::datetime_from_state(
                            &state,
                            self.tz_arg(args.get(1))?,
                        )?)));
                    }
                }
                arity(3, 8)?;
                let mut f = [0i64; 7];
                for (i, &a) in args.iter().take(7).enumerate() {
                    f[i] = self.int_arg(a, "datetime")?;
                }
                let date = c::date(f[0], f[1], f[2])?;
                let time = c::time(f[3], f[4], f[5], f[6], self.tz_arg(args.get(7))?, 0)?;
                value(Value::DateTime(Box::new(crate::value::DateTime {
                    date,
                    time,
                })))
            }
            Global::Date => {
                if n == 1 {
                    if let Some(state) = self.state_bytes(args[0], 4) {
                        return value(Value::Date(c::date_from_state(&state)?));
                    }
                }
                arity(3, 3)?;
                let y = self.int_arg(args[0], "date")?;
                let m = self.int_arg(args[1], "date")?;
                let d = self.int_arg(args[2], "date")?;
                value(Value::Date(c::date(y, m, d)?))
            }
            Global::Time => {
                if n <= 2 && n > 0 {
                    if let Some(state) = self.state_bytes(args[0], 6) {
                        if state[0] & 0x7f < 24 {
                            return value(Value::Time(Box::new(c::time_from_state(
                                &state,
                                self.tz_arg(args.get(1))?,
                            )?)));
                        }
                    }
                }
                arity(0, 5)?;
                let mut f = [0i64; 4];
                for (i, &a) in args.iter().take(4).enumerate() {
                    f[i] = self.int_arg(a, "time")?;
                }
                value(Value::Time(Box::new(c::time(
                    f[0],
                    f[1],
                    f[2],
                    f[3],
                    self.tz_arg(args.get(4))?,
                    0,
                )?)))
            }
            Global::TimeDelta => {
                arity(0, 3)?;
                let mut f = [0i64; 3];
                for (i, &a) in args.iter().enumerate() {
                    f[i] = self.int_arg(a, "timedelta")?;
                }
                value(Value::TimeDelta(c::timedelta(f[0], f[1], f[2])?))
            }
            Global::TimeZone => {
                arity(1, 2)?;
                let Value::TimeDelta(offset) = self.value_arg(args[0])? else {
                    return Err("offset must be a timedelta".into());
                };
                let name = match args.get(1) {
                    Some(&a) => Some(self.str_arg(a)?.to_owned()),
                    None => None,
                };
                Ok((Node::Tz(c::timezone(offset, name)?), 0))
            }
            Global::ZoneInfo | Global::ZoneInfoUnpickle => {
                arity(1, 2)?;
                Ok((Node::Tz(c::zone(self.str_arg(args[0])?, false)?), 0))
            }
            Global::PytzP => {
                arity(1, 4)?;
                Ok((Node::Tz(c::zone(self.str_arg(args[0])?, true)?), 0))
            }
            Global::PytzUtc => {
                arity(0, 0)?;
                Ok((Node::Tz(TzInfo::Utc), 0))
            }
            Global::Decimal => {
                arity(0, 1)?;
                let text = match args.first().map(|&a| self.value_arg(a)).transpose()? {
                    None => "0".to_owned(),
                    Some(Value::Str(s)) => {
                        canonical_decimal(s).ok_or("invalid literal for Decimal")?
                    }
                    Some(Value::Int(i)) => i.to_string(),
                    Some(Value::BigInt(b)) => b.to_string(),
                    Some(Value::Decimal(d)) => d.clone(),
                    Some(_) => return Err("unsupported argument".into()),
                };
                let cost = text.len();
                Ok((Node::Value(Value::Decimal(text)), cost))
            }
            Global::Uuid => match (via, args) {
                (Via::New, []) => Ok((Node::UuidBlank, 0)),
                (Via::Call, [hex]) => value(Value::Uuid(c::uuid_from_hex(self.str_arg(*hex)?)?)),
                _ => Err("only UUID(hex) or UUID.__new__(UUID) are supported".into()),
            },
            Global::SafeUuid => match (via, args) {
                (Via::Call, [v])
                    if matches!(self.node(*v), Node::Value(Value::None | Value::Int(-1..=0))) =>
                {
                    Ok((Node::SafeUuid, 0))
                }
                _ => Err("not a SafeUUID value".into()),
            },
        }
    }
}
