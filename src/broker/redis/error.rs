//! The Redis driver's errors as the transport-neutral [`BrokerError`].

use redis::RedisError;

use crate::broker::BrokerError;
use crate::redis_client::link::{classify, Failure, LinkError};

/// The transport's name in error messages.
const TRANSPORT: &str = "redis";

impl From<RedisError> for BrokerError {
    fn from(e: RedisError) -> Self {
        let reason = e.to_string();
        if e.kind() == redis::ErrorKind::Parse {
            return BrokerError::Protocol {
                transport: TRANSPORT,
                reason,
            };
        }
        match classify(&e) {
            Failure::Connection => BrokerError::ConnectionLost {
                transport: TRANSPORT,
                reason,
            },
            Failure::Transient | Failure::Permanent => BrokerError::Refused {
                transport: TRANSPORT,
                reason,
            },
        }
    }
}

impl From<LinkError> for BrokerError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Url(reason) => BrokerError::Refused {
                transport: TRANSPORT,
                reason,
            },
            LinkError::GaveUp {
                target,
                attempts,
                last,
            } => BrokerError::GaveUp {
                target,
                attempts,
                last,
            },
            LinkError::Command(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_errors_become_kinds() {
        let refused: BrokerError =
            RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad", "x".into())).into();
        assert!(matches!(
            refused,
            BrokerError::Refused {
                transport: "redis",
                ..
            }
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let lost: BrokerError = RedisError::from(io).into();
        assert!(matches!(lost, BrokerError::ConnectionLost { .. }), "{lost}");
        let gave_up: BrokerError = LinkError::GaveUp {
            target: "broker redis://h/0".into(),
            attempts: 3,
            last: "refused".into(),
        }
        .into();
        assert_eq!(
            gave_up.to_string(),
            "cannot reach broker redis://h/0: gave up after 3 attempt(s): refused"
        );
    }
}
