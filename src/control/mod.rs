//! Remote control ("pidbox"), transport-neutral: the wire model of commands and replies
//! ([`message`]), the mailbox's names and queue declarations ([`mailbox`]), node name
//! matching ([`matcher`]) and the Lamport clock shared by the pidbox and events ([`clock`]).
//! The worker's side lives in `worker::control`; a client uses the same types.

pub mod clock;
pub mod mailbox;
pub mod matcher;
pub mod message;

pub use clock::LamportClock;
pub use mailbox::MailboxSettings;
pub use message::{error_result, ok_result, Command, ControlError, Reply, ReplyTo};
