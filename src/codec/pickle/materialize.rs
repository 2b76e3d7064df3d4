//! Turning the arena into a [`Value`] tree, iteratively: nodes held once are moved, shared
//! ones cloned (charged to the allocation allowance), cycles and over-deep nesting refused
//! (the depth bound also keeps dropping the result safe), and dict keys
//! and set items deduplicated with Python's equality (`1 == 1.0 == True`).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::mem::size_of;

use super::machine::{value_heap, Id, Machine, Node, IMMORTAL, MAX_DEPTH};
use super::PickleError;
use crate::value::{Dict, Value};

/// What one key of the hash index of a big dict or set costs, hash table slack included.
const INDEX_ENTRY_BYTES: usize = 40;

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
        Value::SurrogateStr(s) => s.hash(h),
        Value::Bytes(b) => b.hash(h),
        Value::Tuple(items) | Value::FrozenSet(items) => {
            items.len().hash(h);
            items.iter().for_each(|i| hash_into(i, h));
        }
        Value::BigInt(b) => b.hash(h),
        Value::Float(f) => f.to_bits().hash(h),
        Value::Uuid(u) => u.hash(h),
        Value::Decimal(d) => d.hash(h),
        Value::Date(d) => d.hash(h),
        Value::TimeDelta(t) => t.hash(h),
        Value::DateTime(dt) => {
            dt.date.hash(h);
            (
                dt.time.hour,
                dt.time.minute,
                dt.time.second,
                dt.time.microsecond,
            )
                .hash(h);
        }
        Value::Time(t) => (t.hour, t.minute, t.second, t.microsecond).hash(h),
        // None, and the unhashable types (refused before hashing).
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

/// Containers with fewer entries than this find duplicates by comparing with each entry: for
/// the small dicts and sets of task messages that beats hashing every key.
const LINEAR_KEYS: usize = 16;

/// Insertion-ordered unique keys with Python's "first key kept, last value wins" rule.
///
/// Up to [`LINEAR_KEYS`] entries, a key is compared with each one. Past that, each hash maps
/// to the first key that had it, and a key whose hash matches but which is not equal (a
/// 64-bit collision, or a NaN) is simply kept as a new key: no fallback scan, so no input can
/// make deduplication quadratic.
struct Unique {
    index: Option<HashMap<u64, usize>>,
}

impl Unique {
    fn new() -> Self {
        Unique { index: None }
    }

    /// Position of an existing key equal to `key` among `keys`; otherwise records that `key`
    /// will be the entry at `keys.len()`.
    fn find_or_note<'v, I>(&mut self, key: &Value, keys: I) -> Option<usize>
    where
        I: ExactSizeIterator<Item = &'v Value> + Clone,
    {
        let len = keys.len();
        if self.index.is_none() {
            if let Some(i) = keys.clone().position(|k| py_eq(k, key)) {
                return Some(i);
            }
            if len + 1 < LINEAR_KEYS {
                return None;
            }
            let mut index = HashMap::with_capacity(2 * LINEAR_KEYS);
            for (i, k) in keys.enumerate() {
                index.entry(key_hash(k)).or_insert(i);
            }
            index.entry(key_hash(key)).or_insert(len);
            self.index = Some(index);
            return None;
        }
        let index = self.index.as_mut()?;
        let hash = key_hash(key);
        if let Some(&i) = index.get(&hash) {
            let mut keys = keys;
            if keys.nth(i).is_some_and(|k| py_eq(k, key)) {
                return Some(i);
            }
            return None;
        }
        index.insert(hash, len);
        None
    }
}

/// What kind of container a frame builds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Tuple,
    Set,
    FrozenSet,
    Dict,
}

/// A container being filled during materialization (an explicit stack: no recursion, so
/// nesting depth cannot overflow the thread's stack).
struct Frame {
    kind: Kind,
    /// Child ids; for a dict, keys and values alternate.
    children: Vec<Id>,
    next: usize,
    items: Vec<Value>,
    pairs: Dict,
    pending_key: Option<Value>,
    seen: Unique,
    /// Built from a copy of a node that is visited again later: its children must be copied
    /// too, never moved out.
    shared: bool,
}

impl Frame {
    fn new(kind: Kind, children: Vec<Id>, shared: bool) -> Self {
        let n = children.len();
        let (items, pairs) = if kind == Kind::Dict {
            (Vec::new(), Dict::with_capacity(n / 2))
        } else {
            (Vec::with_capacity(n), Dict::new())
        };
        Frame {
            kind,
            children,
            next: 0,
            items,
            pairs,
            pending_key: None,
            seen: Unique::new(),
            shared,
        }
    }

    /// Adds a finished child; `Err` carries the message for an unhashable key or item.
    fn accept(&mut self, v: Value) -> Result<(), &'static str> {
        match self.kind {
            Kind::List | Kind::Tuple => self.items.push(v),
            Kind::Set | Kind::FrozenSet => {
                if !hashable(&v) {
                    return Err("unhashable set item");
                }
                if self.seen.find_or_note(&v, self.items.iter()).is_none() {
                    self.items.push(v);
                }
            }
            Kind::Dict => match self.pending_key.take() {
                None => {
                    if !hashable(&v) {
                        return Err("unhashable dict key");
                    }
                    self.pending_key = Some(v);
                }
                Some(key) => match self
                    .seen
                    .find_or_note(&key, self.pairs.0.iter().map(|(k, _)| k))
                {
                    Some(i) => self.pairs.0[i].1 = v,
                    None => self.pairs.0.push((key, v)),
                },
            },
        }
        Ok(())
    }

    fn finish(self) -> Value {
        match self.kind {
            Kind::List => Value::List(self.items),
            Kind::Tuple => Value::Tuple(self.items),
            Kind::Set => Value::Set(self.items),
            Kind::FrozenSet => Value::FrozenSet(self.items),
            Kind::Dict => Value::Dict(self.pairs),
        }
    }
}

impl Machine<'_> {
    /// Converts the object `root` into a value.
    pub(super) fn materialize(&mut self, root: Id) -> Result<Value, PickleError> {
        // The mark and stack are done with: give their room back before the value is built.
        self.stack = Vec::new();
        self.marks = Vec::new();
        let mut frames: Vec<Frame> = Vec::new();
        let mut incoming = self.enter(root, false, &mut frames)?;
        loop {
            if let Some(v) = incoming.take() {
                match frames.last_mut() {
                    None => return Ok(v),
                    Some(f) => f.accept(v).map_err(|e| self.err(e))?,
                }
            }
            let Some(top) = frames.last_mut() else {
                return Err(self.err("nothing to materialize"));
            };
            if let Some(&child) = top.children.get(top.next) {
                top.next += 1;
                let shared = top.shared;
                incoming = self.enter(child, shared, &mut frames)?;
            } else if let Some(done) = frames.pop() {
                incoming = Some(done.finish());
            }
        }
    }

    /// Starts converting `id`: a leaf is returned at once, a container pushes a frame.
    ///
    /// A node held by several containers is copied on each visit but the last, which moves
    /// it; inside a copy (`shared`), everything is copied and visits are not counted.
    fn enter(
        &mut self,
        id: Id,
        shared: bool,
        frames: &mut Vec<Frame>,
    ) -> Result<Option<Value>, PickleError> {
        let slot = self.arena.get_mut(id);
        let copying = shared || slot.refs > 1;
        if !shared && slot.refs > 1 && slot.refs != IMMORTAL {
            slot.refs -= 1;
        }
        let node = if copying {
            let (copy, heap) = match &slot.node {
                Node::Value(v) => (Node::Value(v.clone()), value_heap(v)),
                Node::List(v) => (Node::List(v.clone()), v.len() * size_of::<Id>()),
                Node::Tuple(v) => (Node::Tuple(v.clone()), v.len() * size_of::<Id>()),
                Node::Set(v) => (Node::Set(v.clone()), v.len() * size_of::<Id>()),
                Node::FrozenSet(v) => (Node::FrozenSet(v.clone()), v.len() * size_of::<Id>()),
                Node::Dict(d) => (Node::Dict(d.clone()), d.len() * size_of::<(Id, Id)>()),
                _ => (Node::Taken, 0),
            };
            if matches!(copy, Node::Taken) {
                std::mem::replace(&mut slot.node, Node::Taken)
            } else {
                self.charge(heap)?;
                copy
            }
        } else {
            std::mem::replace(&mut slot.node, Node::Taken)
        };
        let (kind, children) = match node {
            Node::Value(v) => return Ok(Some(v)),
            Node::List(ids) => (Kind::List, ids),
            Node::Tuple(ids) => (Kind::Tuple, ids),
            Node::Set(ids) => (Kind::Set, ids),
            Node::FrozenSet(ids) => (Kind::FrozenSet, ids),
            Node::Dict(pairs) => {
                self.charge(pairs.len() * 2 * size_of::<Id>())?;
                (
                    Kind::Dict,
                    pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                )
            }
            Node::Global(_) => return Err(self.err("a class or function cannot be a value")),
            Node::Tz(_) => {
                return Err(self.err("a tzinfo is only supported inside a datetime or time"))
            }
            Node::UuidBlank => return Err(self.err("UUID without state")),
            Node::SafeUuid => {
                return Err(self.err("uuid.SafeUUID is only allowed inside a UUID's state"))
            }
            Node::Taken => return Err(self.err("recursive structure cannot be represented")),
        };
        if frames.len() >= MAX_DEPTH {
            return Err(self.err("structure nested too deeply (or recursive)"));
        }
        // What the finished container will hold, charged before its room is allocated.
        let n = children.len();
        let slots = if kind == Kind::Dict {
            n / 2 * size_of::<(Value, Value)>()
        } else {
            n * size_of::<Value>()
        };
        let index = if matches!(kind, Kind::Dict | Kind::Set | Kind::FrozenSet) && n >= LINEAR_KEYS
        {
            n * INDEX_ENTRY_BYTES
        } else {
            0
        };
        self.charge(slots + index)?;
        // The frames themselves are not charged: at most MAX_DEPTH of them (~160 KiB).
        frames.push(Frame::new(kind, children, copying));
        Ok(None)
    }
}
