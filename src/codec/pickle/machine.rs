//! The unpickler's state: input cursor, object arena, stack, marks and memo, with the resource
//! accounting that keeps any input from exhausting memory.
//!
//! Objects live in an arena and the stack and memo hold indices, so that containers the memo
//! shares (and mutates later, like Python's unpickler does) keep one identity until the end;
//! `materialize.rs` turns the arena into a [`Value`] tree.

use std::collections::HashMap;
use std::mem::size_of;

use super::globals::Global;
use super::PickleError;
use crate::codec::limits::{Budget, Exhausted};
use crate::value::{TzInfo, Value};

/// Index of an object in the arena.
pub(super) type Id = u32;

/// Deepest nesting of containers accepted (Python's own recursion limit is 1000).
pub(super) const MAX_DEPTH: usize = 900;

/// Arena slots per chunk: the arena grows a chunk at a time, never by reallocating (and
/// copying) all of it.
const CHUNK: usize = 1024;

/// `refs` of a shared scalar (`None`, `True`, `False`, small ints): always copied, never moved.
pub(super) const IMMORTAL: u32 = u32::MAX;

/// One unpickled object.
#[derive(Debug)]
pub(super) enum Node {
    /// A finished non-container value (int, str, datetime, ...).
    Value(Value),
    /// A `list`.
    List(Vec<Id>),
    /// A `tuple`.
    Tuple(Vec<Id>),
    /// A `dict` (or `OrderedDict`), pairs in insertion order.
    Dict(Vec<(Id, Id)>),
    /// A `set`.
    Set(Vec<Id>),
    /// A `frozenset`.
    FrozenSet(Vec<Id>),
    /// An allowed class or function.
    Global(Global),
    /// A `tzinfo`, only meaningful as a datetime's zone.
    Tz(TzInfo),
    /// `UUID.__new__(UUID)`, waiting for its BUILD state.
    UuidBlank,
    /// A `uuid.SafeUUID` member, only meaningful inside a UUID's state.
    SafeUuid,
    /// Moved out during materialization.
    Taken,
}

/// An arena entry: the object, how many containers hold it, and how deeply nested it is.
#[derive(Debug)]
pub(super) struct Slot {
    pub node: Node,
    /// Containers holding it ([`IMMORTAL`] for the shared scalars).
    pub refs: u32,
    /// Nesting height as far as known when it was last filled: 0 for a leaf, 1 + the
    /// deepest child for a container. Checked as the pickle runs, so a deep structure fails
    /// at the opcode that makes it too deep (materializing checks the exact depth again).
    pub depth: u16,
}

/// The object arena: fixed-size chunks, so it grows without copying and without the slack
/// of a doubling vector.
#[derive(Debug, Default)]
pub(super) struct Arena {
    chunks: Vec<Vec<Slot>>,
    /// Length of the first chunk (sized for the small pickles of task messages); the others
    /// hold [`CHUNK`] slots.
    first: usize,
    len: usize,
}

impl Arena {
    /// Number of objects.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Slots the next push must allocate room for, if it needs a new chunk.
    fn room_needed(&self, input_len: usize) -> Option<usize> {
        let full = match self.chunks.len() {
            0 => return Some((input_len / 4).clamp(8, CHUNK)),
            1 => self.first,
            _ => CHUNK,
        };
        (self.chunks.last().map_or(0, Vec::len) >= full).then_some(CHUNK)
    }

    /// Appends a slot; `room` is what [`room_needed`](Self::room_needed) said.
    fn push(&mut self, slot: Slot, room: Option<usize>) {
        if let Some(n) = room {
            if self.chunks.is_empty() {
                self.first = n;
            }
            self.chunks.push(Vec::with_capacity(n));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(slot);
            self.len += 1;
        }
    }

    /// The slot behind `id` (ids only come from pushes, so they are always in range).
    pub fn get(&self, id: Id) -> &Slot {
        let (c, i) = self.locate(id);
        &self.chunks[c][i]
    }

    /// The slot behind `id`, mutably.
    pub fn get_mut(&mut self, id: Id) -> &mut Slot {
        let (c, i) = self.locate(id);
        &mut self.chunks[c][i]
    }

    fn locate(&self, id: Id) -> (usize, usize) {
        let id = id as usize;
        if id < self.first {
            (0, id)
        } else {
            (1 + (id - self.first) / CHUNK, (id - self.first) % CHUNK)
        }
    }
}

/// Heap bytes a value owns beyond its own 32 bytes, as charged to the allowance.
pub(super) fn value_heap(v: &Value) -> usize {
    match v {
        Value::Str(s) | Value::Decimal(s) => s.capacity(),
        Value::SurrogateStr(s) => s.as_surrogatepass_utf8().len(),
        Value::Bytes(b) | Value::ByteArray(b) => b.capacity(),
        Value::BigInt(b) => (b.bits() / 8) as usize + 8,
        Value::DateTime(_) => size_of::<crate::value::DateTime>(),
        Value::Time(_) => size_of::<crate::value::Time>(),
        _ => 0,
    }
}

/// Sentinel for an empty dense memo cell.
const EMPTY: Id = Id::MAX;

/// What one entry of the sparse memo costs, hash table slack included.
const SPARSE_ENTRY_BYTES: usize = 48;

/// Interned scalars: `None`, `True`, `False`, then the ints 0..=255 (`BININT1`'s range).
const INTERNED: usize = 3 + 256;

/// The memo: dense for the indices picklers write (0, 1, 2, ...), sparse for the rest.
#[derive(Debug, Default)]
pub(super) struct Memo {
    dense: Vec<Id>,
    sparse: HashMap<u64, Id>,
    /// Number of distinct filled indices (MEMOIZE writes at this index, as CPython does).
    pub count: u64,
}

impl Memo {
    /// Stores `id` at `idx`, charging `budget` for any room this takes.
    pub fn put(&mut self, idx: u64, id: Id, budget: &mut Budget) -> Result<(), Exhausted> {
        let len = self.dense.len() as u64;
        let fresh = if idx <= len + 8 {
            if idx >= len {
                let extra = idx as usize + 1 - self.dense.len();
                budget.grow(&mut self.dense, extra)?;
                self.dense.resize(idx as usize + 1, EMPTY);
            }
            let cell = &mut self.dense[idx as usize];
            let was_empty = *cell == EMPTY;
            *cell = id;
            was_empty && (self.sparse.is_empty() || self.sparse.remove(&idx).is_none())
        } else {
            budget.spend(SPARSE_ENTRY_BYTES)?;
            self.sparse.insert(idx, id).is_none()
        };
        if fresh {
            self.count += 1;
        }
        Ok(())
    }

    /// The object at `idx`, if any.
    pub fn get(&self, idx: u64) -> Option<Id> {
        match usize::try_from(idx).ok().and_then(|i| self.dense.get(i)) {
            Some(&id) if id != EMPTY => Some(id),
            _ => self.sparse.get(&idx).copied(),
        }
    }
}

/// The unpickler.
pub(super) struct Machine<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    /// Offset of the opcode being run, for error messages.
    pub op_start: usize,
    pub arena: Arena,
    pub stack: Vec<Id>,
    pub marks: Vec<usize>,
    pub memo: Memo,
    /// What may still be allocated, in bytes: working memory and the value being built.
    pub budget: Budget,
    /// Arena ids of the interned scalars, [`EMPTY`] until first used.
    interned: [Id; INTERNED],
}

impl<'a> Machine<'a> {
    /// A machine over `data`, allowed to allocate a bounded multiple of the input size
    /// (see [`crate::codec::limits`]).
    pub fn new(data: &'a [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            op_start: 0,
            arena: Arena::default(),
            stack: Vec::with_capacity(16),
            marks: Vec::with_capacity(4),
            memo: Memo {
                dense: Vec::with_capacity(16),
                ..Memo::default()
            },
            budget: Budget::for_input(data.len()),
            interned: [EMPTY; INTERNED],
        }
    }

    /// An [`PickleError::Invalid`] at the current opcode.
    pub fn err(&self, message: impl Into<String>) -> PickleError {
        PickleError::Invalid {
            offset: self.op_start,
            message: message.into(),
        }
    }

    /// A [`PickleError::TooLarge`] at the current opcode.
    pub fn too_large(&self) -> PickleError {
        PickleError::TooLarge {
            offset: self.op_start,
        }
    }

    /// Spends `bytes` of the allowance.
    pub fn charge(&mut self, bytes: usize) -> Result<(), PickleError> {
        self.budget.spend(bytes).map_err(|_| self.too_large())
    }

    /// Adds a node to the arena, charging its slot plus `heap` bytes it owns; `depth` is its
    /// nesting height.
    pub fn alloc(&mut self, node: Node, heap: usize, depth: usize) -> Result<Id, PickleError> {
        if depth > MAX_DEPTH {
            return Err(self.err("structure nested too deeply"));
        }
        let room = self.arena.room_needed(self.data.len());
        self.charge(
            room.unwrap_or(0)
                .saturating_mul(size_of::<Slot>())
                .saturating_add(heap),
        )?;
        let id = Id::try_from(self.arena.len())
            .ok()
            .filter(|&id| id != EMPTY);
        let id = id.ok_or_else(|| self.too_large())?;
        self.arena.push(
            Slot {
                node,
                refs: 0,
                depth: depth as u16,
            },
            room,
        );
        Ok(id)
    }

    /// Pushes an id onto the stack, charging any growth of the stack.
    pub fn push_id(&mut self, id: Id) -> Result<(), PickleError> {
        let Machine {
            stack,
            budget,
            op_start,
            ..
        } = self;
        budget
            .grow(stack, 1)
            .map_err(|_| PickleError::TooLarge { offset: *op_start })?;
        stack.push(id);
        Ok(())
    }

    /// Pushes a new node (a leaf, or an empty container).
    pub fn push_new(&mut self, node: Node, heap: usize) -> Result<(), PickleError> {
        let id = self.alloc(node, heap, 0)?;
        self.push_id(id)
    }

    /// Pushes a new container of nesting height `depth` (see [`depth_over`](Self::depth_over)).
    pub fn push_container(&mut self, node: Node, depth: usize) -> Result<(), PickleError> {
        let id = self.alloc(node, 0, depth)?;
        self.push_id(id)
    }

    /// Pushes a finished value; `None`, bools and ints 0..=255 share one node each.
    pub fn push_value(&mut self, v: Value, heap: usize) -> Result<(), PickleError> {
        let index = match v {
            Value::None => Some(0),
            Value::Bool(b) => Some(1 + usize::from(!b)),
            Value::Int(i @ 0..=255) => Some(3 + i as usize),
            _ => None,
        };
        let Some(index) = index else {
            return self.push_new(Node::Value(v), heap);
        };
        let mut id = self.interned[index];
        if id == EMPTY {
            id = self.alloc(Node::Value(v), 0, 0)?;
            self.arena.get_mut(id).refs = IMMORTAL;
            self.interned[index] = id;
        }
        self.push_id(id)
    }

    /// Nesting height of a container holding `children`.
    pub fn depth_over(&self, children: &[Id]) -> usize {
        1 + children
            .iter()
            .map(|&c| usize::from(self.arena.get(c).depth))
            .max()
            .unwrap_or(0)
    }

    /// Notes that `target` now also holds `children`: fails if that nests it too deeply.
    pub fn deepen(&mut self, target: Id, children: &[Id]) -> Result<(), PickleError> {
        let depth = self.depth_over(children);
        if depth > MAX_DEPTH {
            return Err(self.err("structure nested too deeply"));
        }
        let slot = self.arena.get_mut(target);
        slot.depth = slot.depth.max(depth as u16);
        Ok(())
    }

    /// The node behind `id`.
    pub fn node(&self, id: Id) -> &Node {
        &self.arena.get(id).node
    }

    /// Notes that one more container holds `id`.
    pub fn add_ref(&mut self, id: Id) {
        let slot = self.arena.get_mut(id);
        if slot.refs != IMMORTAL {
            slot.refs = slot.refs.saturating_add(1).min(IMMORTAL - 1);
        }
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// Pops one object, never below the innermost mark.
    pub fn pop(&mut self) -> Result<Id, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.err("unpickling stack underflow"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err("unpickling stack underflow"))
    }

    /// The top object, never below the innermost mark.
    pub fn top(&self) -> Result<Id, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.err("unpickling stack underflow"));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.err("unpickling stack underflow"))
    }

    /// Pops the innermost mark; returns the stack position where its items start.
    pub fn pop_mark(&mut self) -> Result<usize, PickleError> {
        self.marks
            .pop()
            .ok_or_else(|| self.err("could not find MARK"))
    }

    /// Pushes a mark, charging any growth of the mark stack.
    pub fn push_mark(&mut self) -> Result<(), PickleError> {
        let Machine {
            marks,
            stack,
            budget,
            op_start,
            ..
        } = self;
        budget
            .grow(marks, 1)
            .map_err(|_| PickleError::TooLarge { offset: *op_start })?;
        marks.push(stack.len());
        Ok(())
    }

    /// Pops the innermost mark and the items above it, with their refs counted.
    pub fn pop_mark_items(&mut self) -> Result<Vec<Id>, PickleError> {
        let start = self.pop_mark()?;
        let n = self.stack.len().saturating_sub(start);
        self.charge(n * size_of::<Id>())?;
        let items: Vec<Id> = self.stack.drain(start..).collect();
        for &id in &items {
            self.add_ref(id);
        }
        Ok(items)
    }

    /// Reads one byte.
    pub fn byte(&mut self) -> Result<u8, PickleError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.err("pickle data was truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads `n` bytes; a claimed length beyond the input fails before anything is allocated.
    pub fn take(&mut self, n: u64) -> Result<&'a [u8], PickleError> {
        let remaining = self.data.len() - self.pos;
        let n = usize::try_from(n).ok().filter(|&n| n <= remaining);
        let n = n.ok_or_else(|| self.err("pickle data was truncated (length exceeds input)"))?;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a little-endian unsigned integer of `N` bytes.
    pub fn uint<const N: usize>(&mut self) -> Result<u64, PickleError> {
        let bytes = self.take(N as u64)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Reads a newline-terminated argument (without the newline).
    pub fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.err("pickle data was truncated (no newline)"))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
}
