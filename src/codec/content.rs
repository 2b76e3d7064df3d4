//! Content types, `accept_content`, and dispatch to the right serializer.

use super::{json, pickle, Value};

/// A serializer a task or result may use, named as Celery names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serializer {
    /// `json`: `application/json`, `utf-8`.
    Json,
    /// `pickle`: `application/x-python-serialize`, `binary`.
    Pickle,
}

impl Serializer {
    /// Parses a Celery serializer name (`"json"`, `"pickle"`) or a MIME type.
    pub fn from_name(name: &str) -> Option<Serializer> {
        match name {
            "json" | "application/json" => Some(Serializer::Json),
            "pickle" | "application/x-python-serialize" => Some(Serializer::Pickle),
            _ => None,
        }
    }

    /// The Celery name.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::Pickle => "pickle",
        }
    }

    /// The MIME type kombu sends.
    pub fn content_type(self) -> &'static str {
        match self {
            Serializer::Json => "application/json",
            Serializer::Pickle => "application/x-python-serialize",
        }
    }

    /// The content encoding kombu sends.
    pub fn content_encoding(self) -> &'static str {
        match self {
            Serializer::Json => "utf-8",
            Serializer::Pickle => "binary",
        }
    }

    /// Encodes a value (pickle with protocol 4, the default of CPython 3.8–3.13).
    pub fn encode(self, value: &Value) -> Vec<u8> {
        match self {
            Serializer::Json => json::encode(value),
            Serializer::Pickle => pickle::encode(value, 4),
        }
    }
}

/// Why a payload was not turned into a value.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The content type is not in `accept_content`: Celery rejects such a message unread.
    #[error("Refusing to deserialize untrusted content of type {name} ({content_type})")]
    Disallowed {
        /// The serializer name (or the MIME type, when unknown).
        name: String,
        /// The MIME type.
        content_type: String,
    },
    /// No serializer is known for this content type.
    #[error("no decoder registered for content type {0:?}")]
    Unknown(String),
    /// The JSON was malformed.
    #[error(transparent)]
    Json(#[from] json::JsonError),
    /// The pickle was malformed or named a forbidden global.
    #[error(transparent)]
    Pickle(#[from] pickle::PickleError),
}

/// The `accept_content` setting: which content types a worker agrees to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptContent {
    allowed: Vec<Serializer>,
}

impl Default for AcceptContent {
    /// Celery's default: `["json"]`.
    fn default() -> Self {
        AcceptContent {
            allowed: vec![Serializer::Json],
        }
    }
}

impl AcceptContent {
    /// Builds the list from Celery names or MIME types; unknown names are returned as errors.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<AcceptContent, String> {
        let mut allowed = Vec::new();
        for name in names {
            let s = Serializer::from_name(name.as_ref()).ok_or_else(|| {
                format!("unknown serializer {:?} in accept_content", name.as_ref())
            })?;
            if !allowed.contains(&s) {
                allowed.push(s);
            }
        }
        Ok(AcceptContent { allowed })
    }

    /// True when `s` may be decoded.
    pub fn allows(&self, s: Serializer) -> bool {
        self.allowed.contains(&s)
    }

    /// The accepted serializers, in configured order.
    pub fn serializers(&self) -> &[Serializer] {
        &self.allowed
    }

    /// Decodes `body` of `content_type`, enforcing this accept list like kombu's `loads`.
    pub fn decode(&self, content_type: &str, body: &[u8]) -> Result<Value, ContentError> {
        // kombu always trusts raw data and text, whatever accept_content says.
        match content_type {
            "application/data" => return Ok(Value::Bytes(body.to_vec())),
            "application/text" | "text/plain" => {
                return Ok(Value::Str(String::from_utf8_lossy(body).into_owned()))
            }
            _ => {}
        }
        let serializer = Serializer::from_name(content_type);
        match serializer {
            Some(s) if self.allows(s) => match s {
                Serializer::Json => Ok(json::decode(body)?),
                Serializer::Pickle => Ok(pickle::decode(body)?),
            },
            Some(s) => Err(ContentError::Disallowed {
                name: s.name().to_owned(),
                content_type: content_type.to_owned(),
            }),
            None => {
                let name = known_name(content_type);
                Err(ContentError::Disallowed {
                    name: name.unwrap_or(content_type).to_owned(),
                    content_type: content_type.to_owned(),
                })
            }
        }
    }
}

fn known_name(content_type: &str) -> Option<&'static str> {
    match content_type {
        "application/x-yaml" => Some("yaml"),
        "application/x-msgpack" => Some("msgpack"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pickle_is_refused_unless_accepted() {
        let accept = AcceptContent::default();
        let err = accept
            .decode("application/x-python-serialize", b"\x80\x04K\x01.")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Refusing to deserialize untrusted content of type pickle (application/x-python-serialize)"
        );
    }

    #[test]
    fn raw_data_is_always_trusted() {
        let accept = AcceptContent::default();
        assert_eq!(
            accept.decode("application/data", b"ab").unwrap(),
            Value::Bytes(b"ab".to_vec())
        );
    }
}
