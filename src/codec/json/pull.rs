//! A pull reader for documents of a known shape: the caller walks the members it expects and
//! reads strings borrowed from the input, building [`Value`]s only for the members it wants
//! whole. Used for kombu's Redis envelope, read once per message.
//!
//! Walking a document validates all of it, as [`decode`](super::decode) would: the same
//! errors for the same inputs. Objects are walked as plain objects: a kombu
//! `{"__type__", "__value__"}` tag is only turned into its value by [`PullReader::value`].
//!
//! Strings and keys come as `&str` text ([`PullReader::string`], [`PullReader::next_key`]),
//! where a lone surrogate (which no `&str` holds, and no envelope field has) is U+FFFD; the
//! `exact_` forms give the `str` exactly, as [`decode`](super::decode) reads it.

use std::borrow::Cow;

use super::read::Reader;
use super::JsonError;
use crate::value::{SurrogateStr, Value};

/// A string read exactly: text (borrowed unless it has escapes), or a `str` holding lone
/// surrogates.
pub type ExactStr<'a> = Result<Cow<'a, str>, SurrogateStr>;

fn lossy(s: ExactStr<'_>) -> Cow<'_, str> {
    s.unwrap_or_else(|s| Cow::Owned(s.to_string_lossy()))
}

/// Reads one JSON document member by member.
pub struct PullReader<'a> {
    r: Reader<'a>,
    /// True right after an object was entered: its first key has no comma before it.
    first: bool,
}

impl<'a> PullReader<'a> {
    /// A reader at the start of `input`, which must be UTF-8.
    pub fn new(input: &'a [u8]) -> Result<Self, JsonError> {
        Ok(PullReader {
            r: Reader::new(input)?,
            first: false,
        })
    }

    /// True if the next value is an object.
    pub fn at_object(&self) -> bool {
        self.r.peek() == Some(b'{')
    }

    /// True if the next value is a string.
    pub fn at_string(&self) -> bool {
        self.r.peek() == Some(b'"')
    }

    /// Enters the object that is next (check with [`at_object`](Self::at_object)); walk its
    /// members with [`next_key`](Self::next_key).
    pub fn enter_object(&mut self) -> Result<(), JsonError> {
        if !self.at_object() {
            return Err(self.r.error("Expecting value"));
        }
        // Depth first, then the brace: too deep fails at the brace, as `decode` fails.
        self.r.descend()?;
        self.r.eat(b'{');
        self.first = true;
        Ok(())
    }

    /// The next key of the object being walked, positioned at its value (which must then be
    /// read); `None` once the object is closed. A lone surrogate in it reads as U+FFFD.
    pub fn next_key(&mut self) -> Result<Option<Cow<'a, str>>, JsonError> {
        Ok(self.next_exact_key()?.map(lossy))
    }

    /// [`next_key`](Self::next_key), the key exactly (lone surrogates kept).
    pub fn next_exact_key(&mut self) -> Result<Option<ExactStr<'a>>, JsonError> {
        self.r.skip_ws();
        if self.r.eat(b'}') {
            self.r.ascend();
            self.first = false;
            return Ok(None);
        }
        if !std::mem::replace(&mut self.first, false) {
            if !self.r.eat(b',') {
                return Err(self.r.error("Expecting ',' delimiter"));
            }
            self.r.skip_ws();
        }
        if !self.r.eat(b'"') {
            return Err(self
                .r
                .error("Expecting property name enclosed in double quotes"));
        }
        let key = self.r.text()?;
        self.r.skip_ws();
        if !self.r.eat(b':') {
            return Err(self.r.error("Expecting ':' delimiter"));
        }
        self.r.skip_ws();
        Ok(Some(key))
    }

    /// Reads the string that is next (check with [`at_string`](Self::at_string)), borrowed
    /// unless it has escapes. A lone surrogate in it reads as U+FFFD.
    pub fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.exact_string().map(lossy)
    }

    /// [`string`](Self::string), the `str` exactly (lone surrogates kept).
    pub fn exact_string(&mut self) -> Result<ExactStr<'a>, JsonError> {
        if !self.r.eat(b'"') {
            return Err(self.r.error("Expecting value"));
        }
        self.r.text()
    }

    /// Reads the next value whole, kombu's tags applied.
    pub fn value(&mut self) -> Result<Value, JsonError> {
        self.r.value()
    }

    /// Steps over the next value, checking its syntax, without building anything.
    pub fn skip(&mut self) -> Result<(), JsonError> {
        self.r.skip_value()
    }

    /// Reads the next value: a string borrowed, anything else skipped (`None`).
    pub fn string_or_skip(&mut self) -> Result<Option<Cow<'a, str>>, JsonError> {
        if self.at_string() {
            self.string().map(Some)
        } else {
            self.skip().map(|()| None)
        }
    }

    /// Reads the next value: a string borrowed, anything else whole.
    pub fn string_or_value(&mut self) -> Result<Result<Cow<'a, str>, Value>, JsonError> {
        if self.at_string() {
            self.string().map(Ok)
        } else {
            self.value().map(Err)
        }
    }

    /// Fails unless only whitespace is left after the document.
    pub fn finish(mut self) -> Result<(), JsonError> {
        self.r.finish()
    }
}
