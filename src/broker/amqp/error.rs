//! lapin's errors as the transport-neutral [`BrokerError`].

use lapin::ErrorKind;

use crate::broker::BrokerError;

/// The transport's name in error messages.
pub(super) const TRANSPORT: &str = "amqp";

impl From<lapin::Error> for BrokerError {
    fn from(e: lapin::Error) -> Self {
        let reason = e.to_string();
        match e.kind() {
            // The server refused an operation on a channel (a soft error: 404 NOT_FOUND, 406
            // PRECONDITION_FAILED, 403 ACCESS_REFUSED): retrying the same cannot help.
            ErrorKind::ProtocolError(_) if e.is_amqp_soft_error() => BrokerError::Refused {
                transport: TRANSPORT,
                reason,
            },
            ErrorKind::ParsingError(_) | ErrorKind::SerialisationError(_) => {
                BrokerError::Protocol {
                    transport: TRANSPORT,
                    reason,
                }
            }
            ErrorKind::InvalidProtocolVersion(_)
            | ErrorKind::AuthProviderError(_)
            | ErrorKind::NoDefaultRuntime => BrokerError::Refused {
                transport: TRANSPORT,
                reason,
            },
            _ => BrokerError::ConnectionLost {
                transport: TRANSPORT,
                reason,
            },
        }
    }
}

/// True when `e` means the connection (or the channel) is gone and a new one is needed.
pub(super) fn is_connection_error(e: &lapin::Error) -> bool {
    !matches!(
        BrokerError::from(e.clone()),
        BrokerError::Refused { .. } | BrokerError::Protocol { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_lost_connections() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let e = lapin::Error::from(io);
        assert!(is_connection_error(&e));
        let b: BrokerError = e.into();
        assert!(
            matches!(
                b,
                BrokerError::ConnectionLost {
                    transport: "amqp",
                    ..
                }
            ),
            "{b}"
        );
    }
}
