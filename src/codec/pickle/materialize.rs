//! Turning the arena into a [`Value`] tree: nodes held once are moved, shared ones cloned
//! (charged to the allocation allowance), cycles and over-deep nesting refused, and dict keys
//! and set items deduplicated with Python's equality (`1 == 1.0 == True`).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::machine::{Id, Machine, Node, MAX_DEPTH};
use super::PickleError;
use crate::value::{Dict, Value};

/// Approximate payload size of a value, for the allowance.
fn cost(v: &Value) -> usize {
    match v {
        Value::Str(s) | Value::Decimal(s) => s.len() + 1,
        Value::Bytes(b) | Value::ByteArray(b) => b.len() + 1,
        Value::BigInt(b) => (b.bits() / 8) as usize + 1,
        _ => 1,
    }
}

/// Python-style equality for keys: numbers compare across int / bool / float.
fn py_eq(a: &Value, b: &Value) -> bool {
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (Value::Tuple(x), Value::Tuple(y)) | (Value::FrozenSet(x), Value::FrozenSet(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
            }
            _ => a == b,
        },
    }
}

/// An int, bool or integral float as an exact integer.
fn num(v: &Value) -> Option<i128> {
    match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::Bool(b) => Some(i128::from(*b)),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e18 => Some(*f as i128),
        _ => None,
    }
}

fn key_hash(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    hash_into(v, &mut h);
    h.finish()
}

fn hash_into(v: &Value, h: &mut DefaultHasher) {
    if let Some(n) = num(v) {
        0u8.hash(h);
        n.hash(h);
        return;
    }
    match v {
        Value::Str(s) => s.hash(h),
        Value::Bytes(b) => b.hash(h),
        Value::Tuple(items) => items.iter().for_each(|i| hash_into(i, h)),
        Value::Uuid(u) => u.hash(h),
        Value::Decimal(d) => d.hash(h),
        Value::Date(d) => d.hash(h),
        Value::TimeDelta(t) => t.hash(h),
        Value::DateTime(dt) => {
            dt.date.hash(h);
            (dt.time.hour, dt.time.minute, dt.time.second, dt.time.microsecond).hash(h);
        }
        Value::Time(t) => (t.hour, t.minute, t.second, t.microsecond).hash(h),
        // Rare key types share a bucket and fall back to comparison.
        other => std::mem::discriminant(other).hash(h),
    }
}

/// True when Python could use `v` as a dict key or set item.
fn hashable(v: &Value) -> bool {
    match v {
        Value::List(_) | Value::Dict(_) | Value::Set(_) | Value::ByteArray(_) => false,
        Value::Tuple(items) => items.iter().all(hashable),
        _ => true,
    }
}

/// Insertion-ordered unique keys with Python's "first key kept, last value wins" rule.
struct Unique {
    index: HashMap<u64, usize>,
}

impl Unique {
    fn new() -> Self {
        Unique { index: HashMap::new() }
    }

    /// Position of an existing equal key among `keys`, if any.
    fn find<'v>(&self, key: &Value, hash: u64, mut keys: impl Iterator<Item = &'v Value>) -> Option<usize> {
        let &i = self.index.get(&hash)?;
        let mut all = keys.by_ref().enumerate();
        match all.nth(i) {
            Some((_, k)) if py_eq(k, key) => Some(i),
            // Hash collision with a different key: search the rest.
            _ => all.find(|(_, k)| py_eq(k, key)).map(|(j, _)| j),
        }
    }
}

impl Machine<'_> {
    /// Converts the object `root` into a value.
    pub(super) fn materialize(&mut self, root: Id) -> Result<Value, PickleError> {
        self.value_of(root, 0)
    }

    fn value_of(&mut self, id: Id, depth: usize) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return Err(self.err("structure nested too deeply (or recursive)"));
        }
        let slot = &mut self.arena[id as usize];
        let node = if slot.refs > 1 {
            let (copy, c) = match &slot.node {
                Node::Value(v) => (Node::Value(v.clone()), cost(v)),
                Node::List(v) => (Node::List(v.clone()), v.len()),
                Node::Tuple(v) => (Node::Tuple(v.clone()), v.len()),
                Node::Set(v) => (Node::Set(v.clone()), v.len()),
                Node::FrozenSet(v) => (Node::FrozenSet(v.clone()), v.len()),
                Node::Dict(d) => (Node::Dict(d.clone()), d.len()),
                _ => (Node::Taken, 0),
            };
            if !matches!(copy, Node::Taken) {
                self.charge(c + 1)?;
                copy
            } else {
                std::mem::replace(&mut slot.node, Node::Taken)
            }
        } else {
            std::mem::replace(&mut slot.node, Node::Taken)
        };
        Ok(match node {
            Node::Value(v) => v,
            Node::List(ids) => Value::List(self.values_of(&ids, depth)?),
            Node::Tuple(ids) => Value::Tuple(self.values_of(&ids, depth)?),
            Node::Set(ids) => Value::Set(self.unique_items(&ids, depth)?),
            Node::FrozenSet(ids) => Value::FrozenSet(self.unique_items(&ids, depth)?),
            Node::Dict(pairs) => Value::Dict(self.dict_of(&pairs, depth)?),
            Node::Global(_) => return Err(self.err("a class or function cannot be a value")),
            Node::Tz(_) => return Err(self.err("a tzinfo is only supported inside a datetime or time")),
            Node::UuidBlank => return Err(self.err("UUID without state")),
            Node::SafeUuid => return Err(self.err("uuid.SafeUUID is only allowed inside a UUID's state")),
            Node::Taken => return Err(self.err("recursive structure cannot be represented")),
        })
    }

    fn values_of(&mut self, ids: &[Id], depth: usize) -> Result<Vec<Value>, PickleError> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            out.push(self.value_of(id, depth + 1)?);
        }
        Ok(out)
    }

    fn unique_items(&mut self, ids: &[Id], depth: usize) -> Result<Vec<Value>, PickleError> {
        let mut out: Vec<Value> = Vec::with_capacity(ids.len());
        let mut seen = Unique::new();
        for &id in ids {
            let v = self.value_of(id, depth + 1)?;
            if !hashable(&v) {
                return Err(self.err("unhashable set item"));
            }
            let h = key_hash(&v);
            if seen.find(&v, h, out.iter()).is_none() {
                seen.index.entry(h).or_insert(out.len());
                out.push(v);
            }
        }
        Ok(out)
    }

    fn dict_of(&mut self, pairs: &[(Id, Id)], depth: usize) -> Result<Dict, PickleError> {
        let mut out = Dict::with_capacity(pairs.len());
        let mut seen = Unique::new();
        for &(k, v) in pairs {
            let key = self.value_of(k, depth + 1)?;
            if !hashable(&key) {
                return Err(self.err("unhashable dict key"));
            }
            let value = self.value_of(v, depth + 1)?;
            let h = key_hash(&key);
            match seen.find(&key, h, out.0.iter().map(|(k, _)| k)) {
                Some(i) => out.0[i].1 = value,
                None => {
                    seen.index.entry(h).or_insert(out.0.len());
                    out.0.push((key, value));
                }
            }
        }
        Ok(out)
    }
}
