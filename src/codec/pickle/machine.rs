//! The unpickler's state: input cursor, object arena, stack, marks and memo, with the resource
//! accounting that keeps any input from exhausting memory.
//!
//! Objects live in an arena and the stack and memo hold indices, so that containers the memo
//! shares (and mutates later, like Python's unpickler does) keep one identity until the end;
//! `materialize.rs` turns the arena into a [`Value`] tree.

use std::collections::HashMap;

use super::globals::Global;
use super::PickleError;
use crate::value::{TzInfo, Value};

/// Index of an object in the arena.
pub(super) type Id = u32;

/// Allocation allowance per input byte. A pickle CPython wrote needs at most ~3 (one node and
/// one container slot per opcode byte, plus payload bytes, twice for protocol-2 bytes).
pub(super) const ALLOWANCE_PER_BYTE: usize = 8;
/// Allocation allowance granted to every input, however short.
pub(super) const ALLOWANCE_BASE: usize = 1 << 16;

/// Deepest nesting of containers accepted (Python's own recursion limit is 1000).
pub(super) const MAX_DEPTH: usize = 900;

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

/// An arena entry: the object and how many containers hold it.
#[derive(Debug)]
pub(super) struct Slot {
    pub node: Node,
    pub refs: u32,
}

/// Sentinel for an empty dense memo cell.
const EMPTY: Id = Id::MAX;

/// The memo: dense for the indices picklers write (0, 1, 2, ...), sparse for the rest.
#[derive(Debug, Default)]
pub(super) struct Memo {
    dense: Vec<Id>,
    sparse: HashMap<u64, Id>,
    /// Number of distinct filled indices (MEMOIZE writes at this index, as CPython does).
    pub count: u64,
}

impl Memo {
    /// Stores `id` at `idx`.
    pub fn put(&mut self, idx: u64, id: Id) {
        let len = self.dense.len() as u64;
        let fresh = if idx <= len + 8 {
            if idx >= len {
                self.dense.resize(idx as usize + 1, EMPTY);
            }
            let cell = &mut self.dense[idx as usize];
            let was_empty = *cell == EMPTY;
            *cell = id;
            was_empty && (self.sparse.is_empty() || self.sparse.remove(&idx).is_none())
        } else {
            self.sparse.insert(idx, id).is_none()
        };
        if fresh {
            self.count += 1;
        }
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
    pub arena: Vec<Slot>,
    pub stack: Vec<Id>,
    pub marks: Vec<usize>,
    pub memo: Memo,
    /// Remaining allocation allowance, in nodes plus payload bytes / elements.
    pub budget: usize,
}

impl<'a> Machine<'a> {
    /// A machine over `data`, allowed to allocate a bounded multiple of the input size.
    pub fn new(data: &'a [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            op_start: 0,
            // Sized for the small pickles of task messages (about one node per 4 bytes), so
            // decoding one does not regrow these step by step.
            arena: Vec::with_capacity((data.len() / 4).clamp(8, 256)),
            stack: Vec::with_capacity(16),
            marks: Vec::with_capacity(4),
            memo: Memo { dense: Vec::with_capacity(16), ..Memo::default() },
            budget: data.len().saturating_mul(ALLOWANCE_PER_BYTE).saturating_add(ALLOWANCE_BASE),
        }
    }

    /// An [`PickleError::Invalid`] at the current opcode.
    pub fn err(&self, message: impl Into<String>) -> PickleError {
        PickleError::Invalid { offset: self.op_start, message: message.into() }
    }

    /// Spends `cost` units of the allocation allowance.
    pub fn charge(&mut self, cost: usize) -> Result<(), PickleError> {
        match self.budget.checked_sub(cost) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(PickleError::TooLarge { offset: self.op_start }),
        }
    }

    /// Adds a node to the arena, charging one unit plus `cost`.
    pub fn alloc(&mut self, node: Node, cost: usize) -> Result<Id, PickleError> {
        self.charge(cost.saturating_add(1))?;
        let id = Id::try_from(self.arena.len()).ok().filter(|&id| id != EMPTY);
        let id = id.ok_or(PickleError::TooLarge { offset: self.op_start })?;
        self.arena.push(Slot { node, refs: 0 });
        Ok(id)
    }

    /// Pushes a new node.
    pub fn push_new(&mut self, node: Node, cost: usize) -> Result<(), PickleError> {
        let id = self.alloc(node, cost)?;
        self.stack.push(id);
        Ok(())
    }

    /// Pushes a finished value.
    pub fn push_value(&mut self, v: Value, cost: usize) -> Result<(), PickleError> {
        self.push_new(Node::Value(v), cost)
    }

    /// The node behind `id`.
    pub fn node(&self, id: Id) -> &Node {
        // Ids only come from `alloc`, so they are always in range.
        &self.arena[id as usize].node
    }

    /// Notes that one more container holds `id`.
    pub fn add_ref(&mut self, id: Id) {
        let slot = &mut self.arena[id as usize];
        slot.refs = slot.refs.saturating_add(1);
    }

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// Pops one object, never below the innermost mark.
    pub fn pop(&mut self) -> Result<Id, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.err("unpickling stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("unpickling stack underflow"))
    }

    /// The top object, never below the innermost mark.
    pub fn top(&self) -> Result<Id, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.err("unpickling stack underflow"));
        }
        self.stack.last().copied().ok_or_else(|| self.err("unpickling stack underflow"))
    }

    /// Pops the innermost mark; returns the stack position where its items start.
    pub fn pop_mark(&mut self) -> Result<usize, PickleError> {
        self.marks.pop().ok_or_else(|| self.err("could not find MARK"))
    }

    /// Pops the innermost mark and the items above it, with their refs counted.
    pub fn pop_mark_items(&mut self) -> Result<Vec<Id>, PickleError> {
        let start = self.pop_mark()?;
        let items: Vec<Id> = self.stack.drain(start..).collect();
        for &id in &items {
            self.add_ref(id);
        }
        Ok(items)
    }

    /// Reads one byte.
    pub fn byte(&mut self) -> Result<u8, PickleError> {
        let b = *self.data.get(self.pos).ok_or_else(|| self.err("pickle data was truncated"))?;
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
        Ok(bytes.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Reads a newline-terminated argument (without the newline).
    pub fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("pickle data was truncated (no newline)"))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
}
