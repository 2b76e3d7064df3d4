//! Passwords out of anything that may be a URL, before it reaches a log line, an error, the
//! banner or stderr.
//!
//! [`mask_secrets`] works on the text alone, so it also covers URLs that do not parse (a
//! password with a raw `/`, `#` or `?`, several URLs joined by `;`, garbage). Where the text
//! is ambiguous it masks more:
//!
//! * everything between `://` and the *last* `@` of the whole text is user info; only a plain
//!   user name before its first `:` is kept (`redis://user:**@host`), and a user info with no
//!   `:` is masked whole, as it is often a password written without its colon;
//! * a query option whose name says it is secret (`password`, `pass`, `pwd`, `secret`,
//!   `token`, `auth`...) is masked from its value to the end of the text;
//! * after that, whatever does not read as `host[:port]`, a database path (or a socket path
//!   for socket schemes), known options or `;`-joined further URLs of the same shape is masked
//!   from where it stops making sense to the end of the text.
//!
//! What no masking can catch, because the text is a valid URL that means something else: a
//! URL whose host was left out (`redis://user:PASSWORD`) when the password begins with digits
//! (they read as a port) or contains an `@` (what follows reads as the host).

use percent_encoding::percent_decode_str;

use super::url::is_scheme;

/// What replaces a secret.
const MASK: &str = "**";

/// A query option whose (decoded, lower-cased) name contains one of these is secret.
const SECRET_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "auth",
    "credential",
    "key=",
];

/// Query options shown with their values (none of them secret).
const SHOWN_OPTIONS: &[&str] = &[
    "db",
    "virtual_host",
    "username",
    "socket_timeout",
    "socket_connect_timeout",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "health_check_interval",
    "max_connections",
    "retry_on_timeout",
    "socket_keepalive",
    "client_name",
    "timeout",
    "protocol",
    "charset",
    "sslmode",
    "connect_timeout",
    "application_name",
];

/// Schemes whose path is a file path rather than a database number.
const SOCKET_SCHEMES: &[&str] = &[
    "redis+socket",
    "socket",
    "unix",
    "redis+unix",
    "valkey+unix",
];

/// `text` with every password (or what may be one) replaced by `**`; see the module
/// documentation for the rules. Never panics, whatever `text` is.
pub fn mask_secrets(text: &str) -> String {
    let (text, cut) = match secret_query_value(text) {
        Some(end) => (&text[..end], true),
        None => (text, false),
    };
    let mut out = String::with_capacity(text.len() + MASK.len());
    let (scheme, mut rest) = match split_scheme(text) {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            (Some(scheme), rest)
        }
        None => (None, text),
    };
    if let Some(at) = rest.rfind('@') {
        out.push_str(&mask_userinfo(&rest[..at], scheme.is_some()));
        out.push('@');
        rest = &rest[at + 1..];
    }
    let masked_to_end = push_hosts(&mut out, rest, scheme);
    if cut && !masked_to_end {
        out.push_str(MASK);
    }
    out
}

/// Free text (an error message, a config snippet) with every URL in it masked by
/// [`mask_secrets`], and the value of any `secret_name = ...` assignment masked to the end of
/// its line. A URL runs from its scheme to its closing quote, else to the end of its line (a
/// password may hold blanks).
pub fn mask_secrets_in_text(text: &str) -> String {
    let lines: Vec<String> = text.split('\n').map(mask_line).collect();
    lines.join("\n")
}

fn mask_line(line: &str) -> String {
    if let Some((key, _)) = line.split_once('=') {
        let key =
            key.trim_start_matches(|c: char| c.is_ascii_digit() || c == '|' || c.is_whitespace());
        if is_secret_name(key.trim().trim_matches(['"', '\''])) {
            return format!("{}= {MASK}", &line[..line.find('=').unwrap_or(0)]);
        }
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(marker) = rest.find("://") {
        let start = rest[..marker]
            .rfind(|c: char| c.is_whitespace() || "\"'`=(<[,".contains(c))
            .map_or(0, |i| i + 1);
        let quote = rest[..start]
            .chars()
            .next_back()
            .filter(|c| "\"'`".contains(*c));
        let closing = quote.and_then(|q| {
            let after = &rest[marker..];
            after
                .match_indices(q)
                .map(|(i, _)| marker + i)
                .find(|&i| !rest[..i].ends_with('\\'))
        });
        // A `@` after the closing quote may still end a password: then mask to the line's end.
        let end = closing
            .filter(|&i| !rest[i..].contains('@'))
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        out.push_str(&mask_secrets(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Where the value of the first secret-looking query option starts, if any. Looks everywhere
/// (a `?` inside a password, too): finding too many only masks more.
fn secret_query_value(text: &str) -> Option<usize> {
    let starts = std::iter::once(0).chain(text.match_indices(['?', '&', ';']).map(|(i, _)| i + 1));
    for start in starts {
        let tail = &text[start..];
        let Some(eq) = tail.find(['=', '?', '&', ';', '#']) else {
            continue;
        };
        if !tail[eq..].starts_with('=') {
            continue;
        }
        if is_secret_name(&percent_decode_str(&tail[..eq].replace('+', " ")).decode_utf8_lossy()) {
            return Some(start + eq + 1);
        }
    }
    None
}

/// `(scheme, rest)` when `text` starts with a valid scheme and `://`.
fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    is_scheme(scheme).then_some((scheme, rest))
}

/// The user info shown: `user:**`, `**`, or nothing when there is none.
fn mask_userinfo(info: &str, has_scheme: bool) -> String {
    if info.is_empty() {
        return String::new();
    }
    match info.split_once(':') {
        Some((user, _)) if has_scheme && user.chars().all(is_user_char) => format!("{user}:{MASK}"),
        _ => MASK.to_owned(),
    }
}

fn is_user_char(c: char) -> bool {
    c.is_alphanumeric() || "-._~%!$'()*+,".contains(c)
}

fn is_host_char(c: char) -> bool {
    c.is_alphanumeric() || "-._~%".contains(c)
}

/// Appends `region` (no `@` in it: host, path, query, maybe more `;`-joined URLs) as far as
/// it reads as such, then `**` for the rest. True when it masked through to the end.
fn push_hosts(out: &mut String, region: &str, scheme: Option<&str>) -> bool {
    for (n, piece) in region.split(';').enumerate() {
        if n > 0 {
            out.push(';');
            match split_scheme(piece) {
                // A list repeats its scheme; anything else may be part of a password.
                Some((s, rest)) if scheme.is_some_and(|first| first.eq_ignore_ascii_case(s)) => {
                    out.push_str(s);
                    out.push_str("://");
                    if !push_one(out, rest, scheme) {
                        return true;
                    }
                }
                _ => {
                    out.push_str(MASK);
                    return true;
                }
            }
        } else if !push_one(out, piece, scheme) {
            return true;
        }
    }
    false
}

/// True for SQLAlchemy's database schemes, with or without Celery's `db+` (`db+postgresql`,
/// `postgresql+psycopg2`, `mysql+pymysql`, `sqlite`, ...): their path names a database.
fn is_database_scheme(scheme: &str) -> bool {
    let scheme = scheme.to_ascii_lowercase();
    let bare = scheme.strip_prefix("db+").unwrap_or(&scheme);
    matches!(
        bare.split('+').next(),
        Some("postgresql" | "postgres" | "mysql" | "mariadb" | "sqlite")
    )
}

/// Appends one URL's part after the user info as far as it reads as expected, then `**`.
/// False when it masked something (the caller then stops).
fn push_one(out: &mut String, s: &str, scheme: Option<&str>) -> bool {
    let socket = scheme.is_some_and(|s| SOCKET_SCHEMES.contains(&s.to_ascii_lowercase().as_str()));
    let authority_end = s.find(['/', '?', '#']).unwrap_or(s.len());
    let (authority, after) = s.split_at(authority_end);
    let authority_ok = if socket {
        authority.is_empty() || authority == "localhost"
    } else {
        is_host_port(authority)
    };
    if !authority_ok {
        out.push_str(MASK);
        return false;
    }
    out.push_str(authority);

    let (before_fragment, fragment) = match after.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (after, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    let path_ok = if socket {
        path.chars()
            .all(|c| c.is_alphanumeric() || "/-._~%+".contains(c))
    } else if scheme.is_some_and(is_database_scheme) {
        // A database name (or SQLite file), which Celery's banner shows too.
        path.chars()
            .all(|c| c.is_alphanumeric() || "/-._~%$".contains(c))
    } else {
        path.trim_matches('/').bytes().all(|b| b.is_ascii_digit())
    };
    if !path_ok {
        out.push('/');
        out.push_str(MASK);
        return false;
    }
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        if !query.split('&').all(is_shown_option) {
            out.push_str(MASK);
            return false;
        }
        out.push_str(query);
    }
    if let Some(fragment) = fragment {
        out.push('#');
        if !fragment.is_empty() && fragment != "insecure" {
            out.push_str(MASK);
            return false;
        }
        out.push_str(fragment);
    }
    true
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or nothing.
fn is_host_port(authority: &str) -> bool {
    if authority.is_empty() {
        return true;
    }
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, after)) => {
                let port = if after.is_empty() {
                    Some("")
                } else {
                    after.strip_prefix(':')
                };
                (
                    v6.chars()
                        .all(|c| c.is_ascii_hexdigit() || ":.%".contains(c)),
                    port,
                )
            }
            None => (false, None),
        },
        None => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            (
                !host.is_empty() && host.chars().all(is_host_char),
                Some(port),
            )
        }
    };
    host_ok && port.is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// A query piece shown as is: empty, `known_option=value` with a plain value, or a secret
/// option's name and `=` (its value is cut off before this runs).
fn is_shown_option(piece: &str) -> bool {
    if piece.is_empty() {
        return true;
    }
    let Some((raw_key, value)) = piece.split_once('=') else {
        return false;
    };
    if !raw_key
        .chars()
        .all(|c| c.is_alphanumeric() || "_-.%+".contains(c))
    {
        return false;
    }
    let key = percent_decode_str(&raw_key.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned();
    if value.is_empty() && is_secret_name(&key) {
        return true;
    }
    SHOWN_OPTIONS.contains(&key.as_str()) && !value.contains(['?', ';', '#', '@', ':'])
}

/// True for an option name that says its value is secret (`key` decoded, any case).
fn is_secret_name(key: &str) -> bool {
    let key = format!("{}=", key.to_lowercase());
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask_secrets(s)
    }

    #[test]
    fn masks_the_password_of_ordinary_urls_like_celery() {
        assert_eq!(
            m("redis://:123456@localhost:6379/3"),
            "redis://:**@localhost:6379/3"
        );
        assert_eq!(m("redis://u:p@h/0"), "redis://u:**@h/0");
        assert_eq!(m("redis://localhost:6379/0"), "redis://localhost:6379/0");
        assert_eq!(m("redis://"), "redis://");
        assert_eq!(
            m("rediss://:pw@h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem"),
            "rediss://:**@h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem"
        );
        assert_eq!(
            m("redis+socket:///tmp/r.sock?virtual_host=2"),
            "redis+socket:///tmp/r.sock?virtual_host=2"
        );
        assert_eq!(
            m("redis+socket://:pw@/tmp/r.sock"),
            "redis+socket://:**@/tmp/r.sock"
        );
        assert_eq!(m("redis://[::1]:6379/0"), "redis://[::1]:6379/0");
    }

    #[test]
    fn database_urls_keep_their_database_name_like_celerys_banner() {
        assert_eq!(
            m("db+postgresql://postgres:S3cret@127.0.0.1:5432/rcdeploy_0a1b"),
            "db+postgresql://postgres:**@127.0.0.1:5432/rcdeploy_0a1b"
        );
        assert_eq!(
            m("db+mysql+pymysql://root:S3cret@h:3306/app-db?charset=utf8mb4"),
            "db+mysql+pymysql://root:**@h:3306/app-db?charset=utf8mb4"
        );
        assert_eq!(
            m("db+sqlite:////var/lib/app/results.db"),
            "db+sqlite:////var/lib/app/results.db"
        );
        assert_eq!(
            m("postgresql://u:S3cret@h/d?sslmode=require"),
            "postgresql://u:**@h/d?sslmode=require"
        );
        // What does not read as a database name is still masked.
        assert_eq!(m("db+postgresql://h/d b#S3cret"), "db+postgresql://h/**");
        assert_eq!(m("db+postgresql://:S3cret"), "db+postgresql://**");
        assert_eq!(
            m("redis://h/S3cret"),
            "redis://h/**",
            "Redis paths are numbers"
        );
    }

    #[test]
    fn a_user_info_without_colon_is_masked_whole() {
        assert_eq!(m("redis://S3cret@h/0"), "redis://**@h/0");
    }

    #[test]
    fn masks_passwords_with_raw_special_characters() {
        // The issue's case: the mask used to stop at the first '/'.
        assert_eq!(
            m("redis://:ab/cd#S3cret@127.0.0.1:6392/0"),
            "redis://:**@127.0.0.1:6392/0"
        );
        assert_eq!(m("redis://user:a?b@c#d/e@h:1/0"), "redis://user:**@h:1/0");
        assert_eq!(
            m("redis://us/er:pw@h/0"),
            "redis://**@h/0",
            "an odd user name is masked too"
        );
    }

    #[test]
    fn masks_password_query_options_to_the_end() {
        assert_eq!(
            m("redis://h:6390/2?password=S3cret"),
            "redis://h:6390/2?password=**"
        );
        assert_eq!(
            m("redis://h/2?db=1&password=S3&cret&x=1"),
            "redis://h/2?db=1&password=**"
        );
        assert_eq!(
            m("redis://h/2?PASS%77ORD=S3cret"),
            "redis://h/2?PASS%77ORD=**"
        );
        assert_eq!(
            m("unix:///tmp/r.sock?pass=S3cret"),
            "unix:///tmp/r.sock?pass=**"
        );
        assert_eq!(
            m("redis://h/0?ssl_keyfile=/k.pem"),
            "redis://h/0?ssl_keyfile=/k.pem"
        );
    }

    #[test]
    fn masks_what_does_not_read_as_a_url() {
        assert_eq!(
            m("redis://:S3cret"),
            "redis://**",
            "no host: the port slot holds the password"
        );
        assert_eq!(m("redis://user:S3cret"), "redis://**");
        assert_eq!(m("redis://:ab/cd#S3cret"), "redis://**");
        assert_eq!(m("redis://h/S3cret"), "redis://h/**");
        assert_eq!(m("redis://h/0?S3cret"), "redis://h/0?**");
        assert_eq!(m("redis://h/0#S3cret"), "redis://h/0#**");
        assert_eq!(
            m("redis://h/0?foo=S3cret"),
            "redis://h/0?**",
            "unknown options are masked"
        );
        assert_eq!(m("redis://h/0#insecure"), "redis://h/0#insecure");
        assert_eq!(m("S3cret garbage"), "**");
        assert_eq!(
            m(":S3cret@localhost:6379"),
            "**@localhost:6379",
            "no scheme: all before the last @"
        );
        assert_eq!(m("localhost:6379"), "localhost:6379");
        assert_eq!(m(""), "");
    }

    #[test]
    fn masks_lists_of_urls() {
        assert_eq!(
            m("sentinel://:pw@h1:26379;sentinel://:pw@h2:26379"),
            "sentinel://:**@h2:26379",
            "everything up to the last @ may be one password"
        );
        assert_eq!(
            m("redis://h1:1;redis://h2:2/0"),
            "redis://h1:1;redis://h2:2/0"
        );
        assert_eq!(m("redis://h1;redis://:S3cret"), "redis://h1;redis://**");
        assert_eq!(m("redis://:ab;cd"), "redis://**");
        assert_eq!(m("redis://h1/0;S3cret"), "redis://h1/0;**");
    }

    #[test]
    fn masks_urls_inside_free_text() {
        let snippet = "TOML parse error at line 1, column 32\n  |\n1 | broker_url = \"redis://:S3 cr\"et@h/0\" x\n  |   ^";
        let masked = mask_secrets_in_text(snippet);
        assert!(
            !masked.contains("S3") && !masked.contains("cr") && !masked.contains("et@"),
            "{masked}"
        );
        assert!(
            masked.starts_with("TOML parse error at line 1, column 32\n"),
            "{masked}"
        );
        let unterminated = mask_secrets_in_text("1 | result_backend = \"redis://:S3 cret@h");
        assert_eq!(unterminated, "1 | result_backend = \"redis://:**@h");
        assert_eq!(
            mask_secrets_in_text("2 | redis_password = \"S3cret\""),
            "2 | redis_password = **"
        );
        assert_eq!(
            mask_secrets_in_text("cannot reach redis://:S3@h:1/0 (refused)"),
            "cannot reach redis://:**@h:1/**"
        );
        assert_eq!(mask_secrets_in_text("no URL here"), "no URL here");
        let _ = mask_secrets_in_text("é://é \"://\" '://");
    }

    #[test]
    fn never_panics_on_multibyte_text() {
        for s in [
            "é://é@é",
            "redis://é:é@é/é?é=é#é",
            "redis://\u{0}:\u{1}@",
            "://@",
            "@",
            ";;;",
            "?&=;",
        ] {
            let _ = m(s);
        }
    }
}

#[cfg(test)]
mod properties {
    //! Generated passwords, made of special characters and of capital-letter tokens that
    //! occur nowhere else in the generated text: if any token shows up in the output, a piece
    //! of the password leaked.
    use proptest::prelude::*;

    use super::mask_secrets;

    const TOKEN_LETTERS: &str = "QXZJKVWY";

    fn token() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[QXZJKVWY][QXZJKVWY0-9]{0,3}").expect("regex")
    }

    fn special() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "/", "#", "?", "@", ":", ";", "%", "&", "=", "+", " ", "[", "]", "!", "$", "'", "(",
            ")", "*", ",", "~", "\"", "\\", "^", "`", "{", "}", "|", "<", ">", "://", "%2F", "%40",
            "é", "\t",
        ])
        .prop_map(str::to_owned)
    }

    /// A password with at least one token.
    fn password() -> impl Strategy<Value = String> {
        (
            token(),
            prop::collection::vec(prop_oneof![token(), special()], 0..12),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(t, mut parts, at)| {
                let i = at.index(parts.len() + 1);
                parts.insert(i, t);
                parts.concat()
            })
    }

    fn percent_encoded(s: &str) -> String {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn scheme() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "redis",
            "rediss",
            "redis+socket",
            "socket",
            "unix",
            "sentinel",
        ])
    }

    fn host() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "127.0.0.1:6392",
            "localhost",
            "redis.example:6380",
            "[::1]:6379",
            "",
        ])
    }

    fn tail() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "",
            "/0",
            "/15",
            "/",
            "/0?socket_timeout=3",
            "?db=2&ssl_cert_reqs=none",
        ])
    }

    /// One URL holding `pw` in one of the places a password can be written.
    fn url_with(pw: String) -> impl Strategy<Value = String> {
        (scheme(), host(), tail(), any::<bool>(), 0..5u8).prop_map(
            move |(scheme, host, tail, user, form)| {
                let user = if user { "alice" } else { "" };
                match form {
                    0 => format!("{scheme}://{user}:{pw}@{host}{tail}"),
                    1 => format!("{scheme}://{user}:{}@{host}{tail}", percent_encoded(&pw)),
                    2 => format!("{scheme}://{host}/0?db=1&password={pw}"),
                    3 => format!("{scheme}://{host}/0?password={}&db=1", percent_encoded(&pw)),
                    // The host forgotten. Told apart from a real host only when the password
                    // neither starts with digits (a port) nor holds an `@` (before a host); see
                    // the module documentation.
                    _ => format!(
                        "{scheme}://{user}:{}",
                        pw.replace('@', "")
                            .trim_start_matches(|c: char| c.is_ascii_digit())
                    ),
                }
            },
        )
    }

    fn assert_no_token(input: &str, output: &str) {
        assert!(
            !output.contains(|c| TOKEN_LETTERS.contains(c)),
            "leak: {input:?} -> {output:?}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn a_single_url_never_leaks(url in password().prop_flat_map(url_with)) {
            assert_no_token(&url, &mask_secrets(&url));
        }

        #[test]
        fn a_list_of_urls_never_leaks(
            urls in prop::collection::vec(password().prop_flat_map(url_with), 1..4),
            sep in prop::sample::select(vec![";", ",", " "]),
        ) {
            let joined = urls.join(sep);
            assert_no_token(&joined, &mask_secrets(&joined));
        }

        #[test]
        fn garbage_around_a_password_never_leaks(
            pw in password(),
            before in "[a-z:/@;?&=#]{0,12}",
            after in "[a-z0-9:/@;?&=#.]{0,12}",
        ) {
            // Whatever surrounds it, a password after `://...:` and before an `@` is masked.
            let text = format!("redis://{before}:{pw}@{after}");
            assert_no_token(&text, &mask_secrets(&text));
        }

        #[test]
        fn never_panics(text in "\\PC{0,64}") {
            let _ = mask_secrets(&text);
        }
    }
}
