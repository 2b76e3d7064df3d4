//! `task_routes`: where a task goes when the caller does not say, decided as Celery's router
//! decides it (`celery.app.routes`).
//!
//! A route map is a table from task name to options (`{ queue = "math" }`, or just the queue
//! name as a string); `task_routes` is one map or a list of maps, tried in order. Within a
//! map an exact name wins, then the keys containing `*` in their order, with Celery's glob
//! rules: `*` stands for one or more characters, and the pattern only has to match the start
//! of the name (`re.match`). The route's options are defaults: anything the caller set wins.

use serde::Deserialize;

/// The options a route can set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Route {
    /// `queue`.
    pub queue: Option<String>,
    /// `exchange`.
    pub exchange: Option<String>,
    /// `routing_key`.
    pub routing_key: Option<String>,
    /// `priority`.
    pub priority: Option<u8>,
}

/// A route's value in the config: options, or a queue name.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RouteSetting {
    Queue(String),
    Options(Route),
}

impl From<RouteSetting> for Route {
    fn from(s: RouteSetting) -> Route {
        match s {
            RouteSetting::Queue(queue) => Route {
                queue: Some(queue),
                ..Route::default()
            },
            RouteSetting::Options(route) => route,
        }
    }
}

/// `task_routes` as written: one map or a list of maps.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RoutesSetting {
    One(indexmap::IndexMap<String, RouteSetting>),
    Many(Vec<indexmap::IndexMap<String, RouteSetting>>),
}

/// One route map: exact names, then patterns in order.
#[derive(Debug, Clone, Default)]
struct RouteMap {
    exact: Vec<(String, Route)>,
    patterns: Vec<(String, Route)>,
}

/// The routers of `task_routes`, in order.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    maps: Vec<RouteMap>,
}

impl Routes {
    /// Reads `task_routes` from its config value.
    pub fn from_config(value: &toml::Value) -> Result<Routes, String> {
        let setting = RoutesSetting::deserialize(value.clone()).map_err(|e| {
            format!("task_routes must map task names to a queue name or a table of queue/exchange/routing_key/priority: {e}")
        })?;
        let maps = match setting {
            RoutesSetting::One(m) => vec![m],
            RoutesSetting::Many(ms) => ms,
        };
        let maps = maps
            .into_iter()
            .map(|m| {
                let mut map = RouteMap::default();
                for (key, setting) in m {
                    let list = if key.contains('*') {
                        &mut map.patterns
                    } else {
                        &mut map.exact
                    };
                    list.push((key, setting.into()));
                }
                map
            })
            .collect();
        Ok(Routes { maps })
    }

    /// True when no route is configured.
    pub fn is_empty(&self) -> bool {
        self.maps
            .iter()
            .all(|m| m.exact.is_empty() && m.patterns.is_empty())
    }

    /// The route for task `name`, if one matches.
    pub fn lookup(&self, name: &str) -> Option<&Route> {
        self.maps.iter().find_map(|m| {
            m.exact
                .iter()
                .find(|(k, _)| k == name)
                .or_else(|| m.patterns.iter().find(|(p, _)| glob_matches(p, name)))
                .map(|(_, r)| r)
        })
    }
}

/// Celery's `glob_to_re` then `re.match`: `*` is one or more characters, everything else is
/// literal, and only the start of `name` has to match.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for literal in parts {
        // The star takes at least one character; the leftmost place for the literal after it
        // is never worse than a later one.
        let Some(skip) = rest.chars().next().map(char::len_utf8) else {
            return false;
        };
        let after = &rest[skip..];
        match after.find(literal) {
            Some(at) => rest = &after[at + literal.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(toml_text: &str) -> Routes {
        let value: toml::Table = toml::from_str(toml_text).unwrap();
        Routes::from_config(&value["task_routes"]).unwrap()
    }

    #[test]
    fn globs_follow_celerys_rules() {
        assert!(glob_matches("tasks.*", "tasks.add"));
        assert!(glob_matches("tasks.*", "tasks.async_tasks.send_mail"));
        assert!(
            !glob_matches("tasks.*", "tasks."),
            "a star is at least one character"
        );
        assert!(glob_matches("*.add", "tasks.add"));
        assert!(glob_matches("tasks.a*", "tasks.add"));
        assert!(
            glob_matches("tasks.*d", "tasks.add"),
            "only the start must match"
        );
        assert!(!glob_matches("tasks.*d", "tasks.dx"));
        assert!(!glob_matches("other.*", "tasks.add"));
        assert!(glob_matches("t*s*a*", "tasks.add"));
    }

    #[test]
    fn exact_names_win_then_patterns_in_order_then_the_next_map() {
        let r = routes(
            r#"
            [task_routes]
            "tasks.*" = "by-glob"
            "tasks.add" = { queue = "math", priority = 3 }
            "tasks.a*" = "later-glob"
            "#,
        );
        assert_eq!(
            r.lookup("tasks.add"),
            Some(&Route {
                queue: Some("math".into()),
                priority: Some(3),
                ..Route::default()
            })
        );
        assert_eq!(
            r.lookup("tasks.mul").and_then(|r| r.queue.as_deref()),
            Some("by-glob")
        );
        assert_eq!(r.lookup("other.add"), None);
        let r = routes(
            r#"
            task_routes = [{ "tasks.mul" = "first" }, { "tasks.mul" = "second", "tasks.xsum" = { routing_key = "rk", exchange = "ex" } }]
            "#,
        );
        assert_eq!(
            r.lookup("tasks.mul").and_then(|r| r.queue.as_deref()),
            Some("first")
        );
        let xsum = r.lookup("tasks.xsum").unwrap();
        assert_eq!(
            (xsum.exchange.as_deref(), xsum.routing_key.as_deref()),
            (Some("ex"), Some("rk"))
        );
    }

    #[test]
    fn a_malformed_setting_is_an_error() {
        let value: toml::Table = toml::from_str("task_routes = 5").unwrap();
        assert!(Routes::from_config(&value["task_routes"]).is_err());
    }
}
