//! Serializers: turning message bodies and results into [`Value`]s and back.
//!
//! - [`json`]: kombu's JSON, with its `__type__`/`__value__` tags, written byte for byte as
//!   Python's `json.dumps` writes it.
//! - [`pickle`]: a safe pickle decoder (no code ever runs) and an encoder.
//! - [`content`]: content types, `accept_content` and the choice between the two.
//! - [`limits`]: the memory both decoders may take, proportional to their input.

pub mod content;
pub mod json;
pub mod limits;
pub mod pickle;

pub use content::{AcceptContent, ContentError, Serializer};

use crate::value::Value;
