//! Signal names in a revoke's `signal` argument, read as Celery reads them.

/// The signal number for `name` as Celery's `signum` takes it: an integer as is; an
/// upper-case name with or without `SIG` (`TERM`, `SIGKILL`). `None` for anything else
/// (Celery raises there: a lower-case name is refused).
pub fn signum(name: &crate::value::Value) -> Option<i32> {
    use crate::value::Value;
    match name {
        Value::Int(n) => i32::try_from(*n).ok(),
        Value::Str(s) => by_name(s),
        _ => None,
    }
}

/// The number of an upper-case signal name, `SIG` prefix optional.
pub fn by_name(name: &str) -> Option<i32> {
    if name.is_empty() || name != name.to_uppercase() {
        return None;
    }
    let bare = name.strip_prefix("SIG").unwrap_or(name);
    let n = match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" => libc::SIGIO,
        "SYS" => libc::SIGSYS,
        _ => return None,
    };
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn names_as_celery_takes_them() {
        assert_eq!(by_name("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(by_name("KILL"), Some(libc::SIGKILL));
        assert_eq!(by_name("term"), None);
        assert_eq!(by_name("SIGNOPE"), None);
        assert_eq!(signum(&Value::Int(9)), Some(9));
        assert_eq!(signum(&Value::str("SIGUSR1")), Some(libc::SIGUSR1));
    }
}
