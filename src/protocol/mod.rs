//! The Celery task message model.
//!
//! A broker hands over a [`RawMessage`] (body bytes, content type, headers, properties,
//! delivery info, whatever the transport). [`decode_task`] turns it into a [`TaskMessage`],
//! whichever protocol version (v2 headers, or the v1 all-in-body layout of old producers) and
//! serializer the producer used, or says why it could not, so the worker can treat the message
//! as Celery would (see [`DecodeError::disposition`]).

mod decode;
mod message;
mod outgoing;
mod raw;
mod signature;
mod v1;
mod v2;

pub use decode::{decode_task, DecodeError, Disposition};
pub use message::{Embed, TaskMessage, TimeLimits};
pub use outgoing::{NewTask, OutgoingMessage};
pub use raw::{DeliveryInfo, Properties, RawMessage, TooLarge};
pub use signature::Signature;
