//! kombu's `matcher` registry for pidbox `pattern`/`matcher`: `glob` is `fnmatch`
//! (case-sensitive, as on POSIX), `pcre` is Python's `re.match` (anchored at the start only).

/// Matches `name` against `pattern` with the named matcher (`glob` when `None`).
/// An unknown matcher or a malformed regular expression matches nothing (kombu raises, and
/// the command is not run on this node either way).
pub fn matches(name: &str, pattern: &str, matcher: Option<&str>) -> bool {
    match matcher.unwrap_or("glob") {
        "glob" => fnmatch(name, pattern),
        "pcre" => pcre_match(name, pattern),
        _ => false,
    }
}

fn pcre_match(name: &str, pattern: &str) -> bool {
    use regex_automata::meta::Regex;
    use regex_automata::{Anchored, Input};
    match Regex::new(pattern) {
        Ok(re) => re.is_match(Input::new(name).anchored(Anchored::Yes)),
        Err(_) => false,
    }
}

/// Python's `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]` (ranges allowed), the whole
/// name must match.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let n: Vec<char> = name.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    glob_at(&n, &p)
}

fn glob_at(n: &[char], p: &[char]) -> bool {
    // Iterative matcher with backtracking to the last `*`.
    let (mut ni, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    ni += 1;
                    pi += 1;
                    continue;
                }
                '[' => {
                    if let Some((hit, next)) = class(&p[pi..], n[ni]) {
                        if hit {
                            ni += 1;
                            pi += next;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        ni += 1;
                        pi += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    ni += 1;
                    pi += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[...]` class at the start of `p`: whether `c` is in it and the class's length; `None`
/// when the bracket is not closed (then it is a literal `[`, as in `fnmatch.translate`).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    // A `]` right after `[` or `[!` is a literal member.
    if p.get(i) == Some(&']') {
        i += 1;
    }
    let close = i + p.get(i..)?.iter().position(|&x| x == ']')?;
    let body = &p[1 + usize::from(negate)..close];
    let mut hit = false;
    let mut j = 0;
    while j < body.len() {
        if j + 2 < body.len() && body[j + 1] == '-' {
            if body[j] <= c && c <= body[j + 2] {
                hit = true;
            }
            j += 3;
        } else {
            if body[j] == c {
                hit = true;
            }
            j += 1;
        }
    }
    Some((hit != negate, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_as_fnmatch() {
        assert!(matches("celery@web1", "celery@web*", None));
        assert!(matches("celery@web1", "celery@web?", Some("glob")));
        assert!(matches("celery@web1", "celery@web[0-9]", Some("glob")));
        assert!(!matches("celery@web1", "celery@web[!0-9]", Some("glob")));
        assert!(!matches("celery@web1", "celery@web", Some("glob")));
        assert!(!matches("celery@Web1", "celery@web*", Some("glob")));
        assert!(matches("a[b", "a[b", Some("glob")));
        assert!(matches("abc", "*", Some("glob")));
        assert!(matches("", "*", Some("glob")));
        assert!(matches("aXbXc", "a*b*c", Some("glob")));
    }

    #[test]
    fn pcre_is_anchored_at_the_start_only() {
        assert!(matches("celery@web1", "celery@w", Some("pcre")));
        assert!(matches("celery@web1", r"celery@web\d$", Some("pcre")));
        assert!(!matches("celery@web1", "web", Some("pcre")));
        assert!(!matches("celery@web1", "(", Some("pcre")));
        assert!(!matches("celery@web1", "x", Some("nope")));
    }
}
