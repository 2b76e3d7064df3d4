//! A message as a transport delivers it, before the task payload is decoded.

use crate::value::Dict;

/// AMQP-style message properties (kombu keeps the same names on Redis).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Properties {
    /// `correlation_id`: the task id for task messages.
    pub correlation_id: Option<String>,
    /// `reply_to`: the producer's reply queue (an oid even with non-rpc backends).
    pub reply_to: Option<String>,
    /// `delivery_mode`: 2 persistent, 1 transient.
    pub delivery_mode: Option<u8>,
    /// `priority`, as the producer set it.
    pub priority: Option<u8>,
    /// `expiration`, in milliseconds, as a string (set from a task's `expires`).
    pub expiration: Option<String>,
}

/// Where the message came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryInfo {
    /// The exchange it was published to (`""` for Celery's direct-queue publishes).
    pub exchange: String,
    /// The routing key it was published with (the queue name for Celery's direct publishes).
    pub routing_key: String,
    /// True when the broker delivers it again (restored, requeued).
    pub redelivered: bool,
}

/// A message the transport did not decode because it is larger than the worker accepts
/// (`broker_transport_options.rcelery_max_message_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The message's size in bytes, as stored by the broker.
    pub size: usize,
    /// The limit it exceeds.
    pub limit: usize,
}

/// A message as delivered, payload still serialized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawMessage {
    /// The payload bytes (already base64-decoded on Redis; empty when [`too_large`](Self::too_large)).
    pub body: Vec<u8>,
    /// Set when the message was too large to be decoded: `body` is then empty and the
    /// headers hold at most the task `id` and name, and the worker refuses the message.
    pub too_large: Option<TooLarge>,
    /// MIME type of the payload.
    pub content_type: String,
    /// Content encoding (`utf-8`, `binary`).
    pub content_encoding: String,
    /// Message headers (the task headers with protocol v2; `{}` with v1).
    pub headers: Dict,
    /// Message properties.
    pub properties: Properties,
    /// Delivery information.
    pub delivery_info: DeliveryInfo,
}
