//! The allow list: the only globals a pickle may name. Each resolves to one of *our own*
//! constructors (see `construct.rs`); no Python name is ever imported or called.

use super::PickleError;

/// An allowed global, standing for a constructor we implement ourselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    /// `builtins.set` (`__builtin__.set`).
    Set,
    /// `builtins.frozenset`.
    FrozenSet,
    /// `builtins.bytes` (protocol 2 writes `bytes()` for `b''`).
    Bytes,
    /// `builtins.bytearray`.
    ByteArray,
    /// `builtins.getattr`: only `getattr(zoneinfo.ZoneInfo, '_unpickle')`.
    Getattr,
    /// `builtins.object`: only as the base in `copyreg._reconstructor(uuid.UUID, object, None)`.
    Object,
    /// `_codecs.encode`: only `encode(str, 'latin1')`, how protocols 0–2 write bytes.
    CodecsEncode,
    /// `copyreg._reconstructor`: only for `uuid.UUID` (protocols 0–1).
    Reconstructor,
    /// `collections.OrderedDict` → a plain dict.
    OrderedDict,
    /// `datetime.datetime`.
    DateTime,
    /// `datetime.date`.
    Date,
    /// `datetime.time`.
    Time,
    /// `datetime.timedelta`.
    TimeDelta,
    /// `datetime.timezone`.
    TimeZone,
    /// `zoneinfo.ZoneInfo`.
    ZoneInfo,
    /// `zoneinfo.ZoneInfo._unpickle` (a dotted name, or what `getattr` gives).
    ZoneInfoUnpickle,
    /// `pytz._p`: pytz's zone unpickler.
    PytzP,
    /// `pytz._UTC`: pytz's UTC singleton.
    PytzUtc,
    /// `decimal.Decimal`.
    Decimal,
    /// `uuid.UUID`.
    Uuid,
    /// `uuid.SafeUUID`: only inside a UUID's state.
    SafeUuid,
    /// `celery.canvas.signature(dict)`: how a pickled `Signature` (a dict subclass) reduces;
    /// read as the plain dict.
    CelerySignature,
}

/// Every allowed `(module, name)` pair, Python 2 spellings included (CPython maps them when it
/// reads protocols 0–2).
pub(super) const ALLOW_LIST: &[(&str, &str, Global)] = &[
    ("builtins", "set", Global::Set),
    ("builtins", "frozenset", Global::FrozenSet),
    ("builtins", "bytes", Global::Bytes),
    ("builtins", "bytearray", Global::ByteArray),
    ("builtins", "getattr", Global::Getattr),
    ("builtins", "object", Global::Object),
    ("__builtin__", "set", Global::Set),
    ("__builtin__", "frozenset", Global::FrozenSet),
    ("__builtin__", "bytes", Global::Bytes),
    ("__builtin__", "bytearray", Global::ByteArray),
    ("__builtin__", "getattr", Global::Getattr),
    ("__builtin__", "object", Global::Object),
    ("_codecs", "encode", Global::CodecsEncode),
    ("copyreg", "_reconstructor", Global::Reconstructor),
    ("copy_reg", "_reconstructor", Global::Reconstructor),
    ("collections", "OrderedDict", Global::OrderedDict),
    ("celery.canvas", "signature", Global::CelerySignature),
    ("datetime", "datetime", Global::DateTime),
    ("datetime", "date", Global::Date),
    ("datetime", "time", Global::Time),
    ("datetime", "timedelta", Global::TimeDelta),
    ("datetime", "timezone", Global::TimeZone),
    ("zoneinfo", "ZoneInfo", Global::ZoneInfo),
    ("zoneinfo", "ZoneInfo._unpickle", Global::ZoneInfoUnpickle),
    ("pytz", "_p", Global::PytzP),
    ("pytz", "_UTC", Global::PytzUtc),
    ("decimal", "Decimal", Global::Decimal),
    ("uuid", "UUID", Global::Uuid),
    ("uuid", "SafeUUID", Global::SafeUuid),
];

/// Looks `module.name` up in [`ALLOW_LIST`]; anything else is [`PickleError::ForbiddenGlobal`].
pub(super) fn resolve(module: &str, name: &str) -> Result<Global, PickleError> {
    ALLOW_LIST
        .iter()
        .find(|(m, n, _)| *m == module && *n == name)
        .map(|&(_, _, g)| g)
        .ok_or_else(|| PickleError::ForbiddenGlobal {
            module: module.to_owned(),
            name: name.to_owned(),
        })
}

/// The dotted name of an allowed global, for error messages.
pub(super) fn display_name(g: Global) -> String {
    ALLOW_LIST
        .iter()
        .find(|&&(_, _, x)| x == g)
        .map(|(m, n, _)| format!("{m}.{n}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_globals() {
        let err = resolve("os", "system").unwrap_err();
        assert!(err.to_string().contains("os.system"), "{err}");
        assert_eq!(resolve("datetime", "datetime").unwrap(), Global::DateTime);
        assert!(resolve("builtins", "eval").is_err());
        assert!(resolve("uuid", "UUID.__init__").is_err());
    }
}
