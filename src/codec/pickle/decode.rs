//! The opcode loop of the safe unpickler: protocols 0–5, nothing ever imported or called.

use std::mem::size_of;

use num_bigint::BigInt;

use super::globals::resolve;
use super::machine::{Id, Machine, Node};
use super::opcodes::*;
use super::text;
use super::PickleError;
use crate::value::Value;

/// Bytes to a `str` for BINSTRING / SHORT_BINSTRING / STRING: CPython's default `encoding='ASCII'`.
fn ascii_str(m: &Machine<'_>, bytes: &[u8]) -> Result<String, PickleError> {
    if bytes.is_ascii() {
        Ok(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        Err(m.err(
            "non-ASCII byte in a protocol-2 string (CPython's default encoding='ASCII' fails too)",
        ))
    }
}

/// Bytes to a `str` for the names of GLOBAL and INST: strict UTF-8, as CPython reads them.
fn utf8_str(m: &Machine<'_>, bytes: &[u8]) -> Result<String, PickleError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| m.err("invalid UTF-8 in a unicode string"))
}

/// Bytes to a `str` for the BINUNICODE family: UTF-8 with CPython's `surrogatepass` handler,
/// so a lone surrogate (written by CPython's pickler as its 3 bytes, `ED A0 80` for U+D800)
/// is kept.
fn unicode_str(m: &Machine<'_>, bytes: &[u8]) -> Result<Value, PickleError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Value::Str(s.to_owned())),
        Err(_) => Value::from_surrogatepass_utf8(bytes)
            .ok_or_else(|| m.err("invalid UTF-8 in a unicode string")),
    }
}

impl Machine<'_> {
    /// Runs the pickle to its STOP and returns the resulting value.
    pub(super) fn run(mut self) -> Result<Value, PickleError> {
        loop {
            self.op_start = self.pos;
            let op = self.byte()?;
            match op {
                STOP => {
                    let id = self.pop()?;
                    return self.materialize(id);
                }
                MARK => self.push_mark()?,
                POP => {
                    let fence = self.marks.last().copied();
                    if fence == Some(self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                POP_MARK => {
                    let start = self.pop_mark()?;
                    self.stack.truncate(start);
                }
                DUP => {
                    let id = self.top()?;
                    self.push_id(id)?;
                }
                PROTO => {
                    let p = self.byte()?;
                    if p > HIGHEST_PROTOCOL {
                        return Err(self.err(format!("unsupported pickle protocol: {p}")));
                    }
                }
                FRAME => {
                    let n = self.uint::<8>()?;
                    if n > (self.data.len() - self.pos) as u64 {
                        return Err(self.err("frame length exceeds the input"));
                    }
                }
                // Scalars.
                NONE => self.push_value(Value::None, 0)?,
                NEWTRUE => self.push_value(Value::Bool(true), 0)?,
                NEWFALSE => self.push_value(Value::Bool(false), 0)?,
                BININT => {
                    let v = self.uint::<4>()? as u32 as i32;
                    self.push_value(Value::Int(i64::from(v)), 0)?;
                }
                BININT1 => {
                    let v = self.byte()?;
                    self.push_value(Value::Int(i64::from(v)), 0)?;
                }
                BININT2 => {
                    let v = self.uint::<2>()?;
                    self.push_value(Value::Int(v as i64), 0)?;
                }
                INT => {
                    let line = self.line()?;
                    let v = match line {
                        b"00" => Value::Bool(false),
                        b"01" => Value::Bool(true),
                        _ => text::parse_int(line).map_err(|e| self.err(e))?,
                    };
                    self.push_value(v, line.len())?;
                }
                LONG => {
                    let line = self.line()?;
                    let digits = line.strip_suffix(b"L").unwrap_or(line);
                    let v = text::parse_int(digits).map_err(|e| self.err(e))?;
                    self.push_value(v, line.len())?;
                }
                LONG1 => {
                    let n = self.byte()?;
                    self.load_long(u64::from(n))?;
                }
                LONG4 => {
                    let n = self.uint::<4>()? as u32 as i32;
                    let n = u64::try_from(n)
                        .map_err(|_| self.err("LONG pickle has negative byte count"))?;
                    self.load_long(n)?;
                }
                FLOAT => {
                    let line = self.line()?;
                    let f = text::parse_float(line).map_err(|e| self.err(e))?;
                    self.push_value(Value::Float(f), 0)?;
                }
                BINFLOAT => {
                    let bytes = self.take(8)?;
                    let mut buf = [0u8; 8];
                    buf.copy_from_slice(bytes);
                    self.push_value(Value::Float(f64::from_be_bytes(buf)), 0)?;
                }
                // Strings.
                STRING => {
                    let line = self.line()?;
                    let inner = match line {
                        [q, inner @ .., q2] if q == q2 && (*q == b'\'' || *q == b'"') => inner,
                        _ => return Err(self.err("the STRING opcode argument must be quoted")),
                    };
                    let bytes = text::escape_decode(inner).map_err(|e| self.err(e))?;
                    let s = ascii_str(&self, &bytes)?;
                    self.push_value(Value::Str(s), line.len())?;
                }
                BINSTRING => {
                    let n = self.uint::<4>()? as u32 as i32;
                    let n = u64::try_from(n)
                        .map_err(|_| self.err("BINSTRING pickle has negative byte count"))?;
                    let bytes = self.take(n)?;
                    let s = ascii_str(&self, bytes)?;
                    self.push_value(Value::Str(s), bytes.len())?;
                }
                SHORT_BINSTRING => {
                    let n = self.byte()?;
                    let bytes = self.take(u64::from(n))?;
                    let s = ascii_str(&self, bytes)?;
                    self.push_value(Value::Str(s), bytes.len())?;
                }
                UNICODE => {
                    let line = self.line()?;
                    let s = text::raw_unicode_escape_decode(line).map_err(|e| self.err(e))?;
                    let cost = s.len();
                    self.push_value(s.into_value(), cost)?;
                }
                SHORT_BINUNICODE => {
                    let n = self.byte()?;
                    self.load_unicode(u64::from(n))?;
                }
                BINUNICODE => {
                    let n = self.uint::<4>()?;
                    self.load_unicode(n)?;
                }
                BINUNICODE8 => {
                    let n = self.uint::<8>()?;
                    self.load_unicode(n)?;
                }
                SHORT_BINBYTES => {
                    let n = self.byte()?;
                    self.load_bytes(u64::from(n), false)?;
                }
                BINBYTES => {
                    let n = self.uint::<4>()?;
                    self.load_bytes(n, false)?;
                }
                BINBYTES8 => {
                    let n = self.uint::<8>()?;
                    self.load_bytes(n, false)?;
                }
                BYTEARRAY8 => {
                    let n = self.uint::<8>()?;
                    self.load_bytes(n, true)?;
                }
                // Containers.
                EMPTY_LIST => self.push_container(Node::List(Vec::new()), 1)?,
                EMPTY_TUPLE => self.push_container(Node::Tuple(Vec::new()), 1)?,
                EMPTY_DICT => self.push_container(Node::Dict(Vec::new()), 1)?,
                EMPTY_SET => self.push_container(Node::Set(Vec::new()), 1)?,
                LIST => {
                    let items = self.pop_mark_items()?;
                    let depth = self.depth_over(&items);
                    self.push_container(Node::List(items), depth)?;
                }
                TUPLE => {
                    let items = self.pop_mark_items()?;
                    let depth = self.depth_over(&items);
                    self.push_container(Node::Tuple(items), depth)?;
                }
                TUPLE1 | TUPLE2 | TUPLE3 => {
                    let n = usize::from(op - TUPLE1 + 1);
                    self.charge(n * size_of::<Id>())?;
                    let mut items = vec![0; n];
                    for slot in items.iter_mut().rev() {
                        *slot = self.pop()?;
                    }
                    for &id in &items {
                        self.add_ref(id);
                    }
                    let depth = self.depth_over(&items);
                    self.push_container(Node::Tuple(items), depth)?;
                }
                FROZENSET => {
                    let items = self.pop_mark_items()?;
                    let depth = self.depth_over(&items);
                    self.push_container(Node::FrozenSet(items), depth)?;
                }
                DICT => {
                    let items = self.pop_mark_items()?;
                    let depth = self.depth_over(&items);
                    let pairs = self.pairs(&items)?;
                    self.push_container(Node::Dict(pairs), depth)?;
                }
                APPEND => {
                    let v = self.pop()?;
                    self.add_ref(v);
                    self.extend_top(&[v], op)?;
                }
                APPENDS | ADDITEMS => {
                    let items = self.pop_mark_items()?;
                    self.extend_top(&items, op)?;
                }
                SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.add_ref(k);
                    self.add_ref(v);
                    self.set_items(&[k, v])?;
                }
                SETITEMS => {
                    let items = self.pop_mark_items()?;
                    self.set_items(&items)?;
                }
                // Memo.
                PUT => {
                    let line = self.line()?;
                    let idx = text::parse_index(line).map_err(|e| self.err(e))?;
                    self.memo_put(idx)?;
                }
                BINPUT => {
                    let idx = self.byte()?;
                    self.memo_put(u64::from(idx))?;
                }
                LONG_BINPUT => {
                    let idx = self.uint::<4>()?;
                    self.memo_put(idx)?;
                }
                MEMOIZE => {
                    let idx = self.memo.count;
                    self.memo_put(idx)?;
                }
                GET => {
                    let line = self.line()?;
                    let idx = text::parse_index(line).map_err(|e| self.err(e))?;
                    self.memo_get(idx)?;
                }
                BINGET => {
                    let idx = self.byte()?;
                    self.memo_get(u64::from(idx))?;
                }
                LONG_BINGET => {
                    let idx = self.uint::<4>()?;
                    self.memo_get(idx)?;
                }
                // Globals and object construction.
                GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let module = utf8_str(&self, module)?;
                    let name = utf8_str(&self, name)?;
                    let g = resolve(&module, &name)?;
                    self.push_new(Node::Global(g), 0)?;
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let g = match (self.node(module), self.node(name)) {
                        (Node::Value(Value::Str(m)), Node::Value(Value::Str(n))) => resolve(m, n)?,
                        _ => return Err(self.err("STACK_GLOBAL requires str")),
                    };
                    self.push_new(Node::Global(g), 0)?;
                }
                INST => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = resolve(&utf8_str(&self, module)?, &utf8_str(&self, name)?)?;
                    let args = self.pop_mark_items()?;
                    let id = self.instantiate(g, &args)?;
                    self.push_id(id)?;
                }
                OBJ => {
                    let items = self.pop_mark_items()?;
                    let (&cls, args) = items
                        .split_first()
                        .ok_or_else(|| self.err("OBJ without a class"))?;
                    let g = match self.node(cls) {
                        Node::Global(g) => *g,
                        _ => return Err(self.err("OBJ class is not an allowed global")),
                    };
                    let id = self.instantiate(g, args)?;
                    self.push_id(id)?;
                }
                REDUCE => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let id = self.reduce(func, args)?;
                    self.push_id(id)?;
                }
                NEWOBJ => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let id = self.newobj(cls, args)?;
                    self.push_id(id)?;
                }
                NEWOBJ_EX => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    if !matches!(self.node(kwargs), Node::Dict(d) if d.is_empty()) {
                        return Err(self.err("NEWOBJ_EX keyword arguments are not supported"));
                    }
                    let id = self.newobj(cls, args)?;
                    self.push_id(id)?;
                }
                BUILD => {
                    let state = self.pop()?;
                    let inst = self.top()?;
                    self.build(inst, state)?;
                }
                // Refused outright.
                PERSID | BINPERSID => {
                    return Err(PickleError::Refused {
                        offset: self.op_start,
                        what: "persistent IDs",
                    })
                }
                EXT1 | EXT2 | EXT4 => {
                    return Err(PickleError::Refused {
                        offset: self.op_start,
                        what: "the copyreg extension registry",
                    })
                }
                NEXT_BUFFER | READONLY_BUFFER => {
                    return Err(PickleError::Refused {
                        offset: self.op_start,
                        what: "out-of-band buffers",
                    })
                }
                other => return Err(self.err(format!("invalid load key, '\\x{other:02x}'"))),
            }
        }
    }

    fn load_long(&mut self, n: u64) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        let v = if bytes.len() <= 8 {
            let mut buf = [if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                0xff
            } else {
                0
            }; 8];
            buf[..bytes.len()].copy_from_slice(bytes);
            Value::Int(i64::from_le_bytes(buf))
        } else {
            Value::int(BigInt::from_signed_bytes_le(bytes))
        };
        self.push_value(v, bytes.len())
    }

    fn load_unicode(&mut self, n: u64) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        self.charge(bytes.len())?;
        let s = unicode_str(self, bytes)?;
        self.push_value(s, 0)
    }

    fn load_bytes(&mut self, n: u64, bytearray: bool) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        self.charge(bytes.len())?;
        let bytes = bytes.to_vec();
        let v = if bytearray {
            Value::ByteArray(bytes)
        } else {
            Value::Bytes(bytes)
        };
        self.push_value(v, 0)
    }

    /// Pairs up DICT items (already ref-counted).
    fn pairs(&mut self, items: &[Id]) -> Result<Vec<(Id, Id)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for SETITEMS / DICT"));
        }
        self.charge(items.len() / 2 * size_of::<(Id, Id)>())?;
        Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
    }

    /// APPEND / APPENDS onto a list, ADDITEMS onto a set (`items` already ref-counted).
    fn extend_top(&mut self, items: &[Id], op: u8) -> Result<(), PickleError> {
        let target = self.top()?;
        match (self.node(target), op) {
            (Node::List(_), APPEND | APPENDS) | (Node::Set(_), ADDITEMS) => {}
            (_, ADDITEMS) => return Err(self.err("ADDITEMS target is not a set")),
            _ => return Err(self.err("APPEND(S) target is not a list")),
        }
        let Machine {
            arena,
            budget,
            op_start,
            ..
        } = self;
        if let Node::List(v) | Node::Set(v) = &mut arena.get_mut(target).node {
            budget
                .grow(v, items.len())
                .map_err(|_| PickleError::TooLarge { offset: *op_start })?;
            v.extend_from_slice(items);
        }
        self.deepen(target, items)
    }

    /// SETITEM(S) onto a dict: `items` are keys and values in turn (already ref-counted).
    fn set_items(&mut self, items: &[Id]) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for SETITEMS / DICT"));
        }
        let target = self.top()?;
        if !matches!(self.node(target), Node::Dict(_)) {
            return Err(self.err("SETITEM(S) target is not a dict"));
        }
        let Machine {
            arena,
            budget,
            op_start,
            ..
        } = self;
        if let Node::Dict(d) = &mut arena.get_mut(target).node {
            budget
                .grow(d, items.len() / 2)
                .map_err(|_| PickleError::TooLarge { offset: *op_start })?;
            d.extend(items.chunks_exact(2).map(|c| (c[0], c[1])));
        }
        self.deepen(target, items)
    }

    fn memo_put(&mut self, idx: u64) -> Result<(), PickleError> {
        let id = self.top()?;
        self.memo
            .put(idx, id, &mut self.budget)
            .map_err(|_| PickleError::TooLarge {
                offset: self.op_start,
            })
    }

    fn memo_get(&mut self, idx: u64) -> Result<(), PickleError> {
        let id = self
            .memo
            .get(idx)
            .ok_or_else(|| self.err(format!("memo value not found at index {idx}")))?;
        self.push_id(id)
    }
}
