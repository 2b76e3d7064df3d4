//! Reading a transport's own keys out of `broker_transport_options`.

use serde::de::DeserializeOwned;

/// Reads the keys in `keys` of `broker_transport_options` into the options of `transport`
/// (`T`'s defaults for those not given). A value that does not fit is an error naming the
/// setting; any other key is ignored, as kombu's transports ignore keys they do not read, and
/// logged at debug.
pub(crate) fn read<T: DeserializeOwned>(
    table: &toml::Table,
    keys: &[&str],
    transport: &str,
) -> Result<T, String> {
    let mut known = toml::Table::new();
    let mut ignored = Vec::new();
    for (k, v) in table {
        if keys.contains(&k.as_str()) {
            known.insert(k.clone(), v.clone());
        } else {
            ignored.push(k.as_str());
        }
    }
    if !ignored.is_empty() {
        tracing::debug!(
            "broker_transport_options: not read by the {transport} transport: {}",
            ignored.join(", ")
        );
    }
    toml::Value::Table(known)
        .try_into::<T>()
        .map_err(|e| format!("broker_transport_options: {}", e.to_string().trim_end()))
}
