//! Mosquitto ACL files, so one file serves the embedded broker and Mosquitto alike.
//!
//! The subset understood (and what the shipped `configs/mosquitto/acl` uses):
//! - `user NAME` starts the entries of one user; entries before any `user` line apply to
//!   clients without a user name;
//! - `topic [read|write|readwrite|deny] TOPIC` grants (or, with `deny`, refuses) that user
//!   access to a topic filter (default access `readwrite`);
//! - `pattern [read|write|readwrite|deny] TOPIC` applies to every user, with `%u` replaced
//!   by the user name and `%c` by the client id (a name with `+`, `#` or `/` matches
//!   nothing, as in Mosquitto);
//! - blank lines and `#` comments.
//!
//! A publish is allowed when its topic matches a `write` filter and no `deny` filter; a
//! subscription when every topic its filter can match is covered by a `read` filter (the
//! filter is compared level by level, wildcards included) and no `deny` filter overlaps it.
//! Nothing granted means refused.
//!
//! **Shared subscriptions** (`$share/{group}/{filter}`) need two grants: `{filter}` must be
//! readable as above, *and* a `read` line that itself starts with `$share/` must cover the
//! whole `$share/{group}/{filter}` (e.g. `topic read $share/+/sharpeyes/v1/#` for the
//! aggregator in the shipped ACL). Joining a group takes messages away from its other
//! members (the broker hands each message to one of them), so reading a topic is not
//! enough: without the second grant an agent that may read `{prefix}/config/watchlists`
//! could join the aggregator's group and swallow what the group should get. rumqttd 0.20
//! keys a group by its name alone, whatever the filter, so grant other users only named
//! groups (`$share/agents-watch/...`), never `$share/+/`. A group name must be non-empty and
//! free of `+`, `#`; a `$share/` filter without one is refused.
//!
//! Mosquitto reads the same file, but its ACL file does not check subscriptions at all (2.0:
//! only what is delivered is checked against `read`, per message topic): a `$share/` line is
//! valid there and never matches, and any client may join any group. Behind Mosquitto keep
//! `broker.shared_group` empty, as `configs/aggregator.toml` advises for Mosquitto anyway, so
//! there is no aggregator group to join.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// An ACL file that cannot be used.
#[derive(Debug, Error)]
pub enum AclError {
    /// The file could not be read.
    #[error("ACL file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not understood.
    #[error("ACL file {path}, line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }
    fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    access: Access,
    filter: String,
}

/// The rules of an ACL file.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// Entries before any `user` line: clients without a user name.
    anonymous: Vec<Entry>,
    /// `user` blocks, in file order (a user may appear twice).
    users: Vec<(String, Vec<Entry>)>,
    /// `pattern` entries, for everyone.
    patterns: Vec<Entry>,
}

impl Acl {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, AclError> {
        let text = std::fs::read_to_string(path).map_err(|source| AclError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| AclError::Line {
            path: path.to_path_buf(),
            line,
            reason,
        })
    }

    /// Parses the text of an ACL file; an error gives the 1-based line and the reason.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut acl = Acl::default();
        let mut current: Option<usize> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err((i + 1, "`user` needs a name".into()));
                    }
                    acl.users.push((rest.to_string(), Vec::new()));
                    current = Some(acl.users.len() - 1);
                }
                "topic" | "pattern" => {
                    let (access, filter) = match rest.split_once(char::is_whitespace) {
                        Some((a, f)) if access(a).is_some() => (access(a), f.trim()),
                        _ => (Some(Access::ReadWrite), rest),
                    };
                    let access = access.unwrap_or(Access::ReadWrite);
                    if filter.is_empty() || !valid_filter(filter) {
                        return Err((i + 1, format!("{filter:?} is not a valid topic filter")));
                    }
                    let entry = Entry {
                        access,
                        filter: filter.to_string(),
                    };
                    match (keyword, current) {
                        ("pattern", _) => acl.patterns.push(entry),
                        (_, Some(u)) => acl.users[u].1.push(entry),
                        (_, None) => acl.anonymous.push(entry),
                    }
                }
                other => return Err((i + 1, format!("unknown keyword {other:?}"))),
            }
        }
        Ok(acl)
    }

    /// The entries that apply to `user` / `client_id`, patterns substituted.
    fn entries<'a>(
        &'a self,
        user: Option<&'a str>,
        client_id: &'a str,
    ) -> impl Iterator<Item = (Access, std::borrow::Cow<'a, str>)> + 'a {
        let own: Box<dyn Iterator<Item = &Entry>> = match user {
            None => Box::new(self.anonymous.iter()),
            Some(u) => Box::new(
                self.users
                    .iter()
                    .filter(move |(name, _)| name == u)
                    .flat_map(|(_, e)| e.iter()),
            ),
        };
        let own = own.map(|e| (e.access, std::borrow::Cow::Borrowed(e.filter.as_str())));
        let patterns = self.patterns.iter().filter_map(move |e| {
            let needs_user = e.filter.contains("%u");
            let needs_client = e.filter.contains("%c");
            let unsafe_name = |s: &str| s.is_empty() || s.contains(['+', '#', '/']);
            if needs_user && user.is_none_or(unsafe_name) {
                return None;
            }
            if needs_client && unsafe_name(client_id) {
                return None;
            }
            let f = e
                .filter
                .replace("%u", user.unwrap_or_default())
                .replace("%c", client_id);
            Some((e.access, std::borrow::Cow::Owned(f)))
        });
        own.chain(patterns)
    }

    /// Whether `user` (connected as `client_id`) may publish to `topic`.
    pub fn may_publish(&self, user: Option<&str>, client_id: &str, topic: &str) -> bool {
        let mut granted = false;
        for (access, filter) in self.entries(user, client_id) {
            if topic_matches(topic, &filter) {
                if access == Access::Deny {
                    return false;
                }
                granted |= access.writes();
            }
        }
        granted
    }

    /// Whether `user` (connected as `client_id`) may subscribe to `filter`; a shared
    /// subscription (`$share/{group}/{filter}`) also needs a `$share/` grant (module docs).
    pub fn may_subscribe(&self, user: Option<&str>, client_id: &str, filter: &str) -> bool {
        match split_share(filter) {
            None => self.may_read(user, client_id, filter),
            Some(None) => false,
            Some(Some((_, inner))) => {
                self.may_read(user, client_id, inner) && self.may_share(user, client_id, filter)
            }
        }
    }

    /// Whether every topic `filter` matches is readable by `user`.
    fn may_read(&self, user: Option<&str>, client_id: &str, filter: &str) -> bool {
        let mut granted = false;
        for (access, acl) in self.entries(user, client_id) {
            if access == Access::Deny && overlaps(filter, &acl) {
                return false;
            }
            granted |= access.reads() && covers(&acl, filter);
        }
        granted
    }

    /// Whether a `read` line starting with `$share/` covers the whole shared `filter`.
    fn may_share(&self, user: Option<&str>, client_id: &str, filter: &str) -> bool {
        let mut granted = false;
        for (access, acl) in self.entries(user, client_id) {
            if access == Access::Deny && overlaps(filter, &acl) {
                return false;
            }
            granted |= access.reads() && acl.starts_with(SHARE) && covers(&acl, filter);
        }
        granted
    }
}

fn access(word: &str) -> Option<Access> {
    Some(match word {
        "read" => Access::Read,
        "write" => Access::Write,
        "readwrite" => Access::ReadWrite,
        "deny" => Access::Deny,
        _ => return None,
    })
}

/// The prefix of a shared subscription.
const SHARE: &str = "$share/";

/// `$share/{group}/{filter}` → `Some(Some((group, filter)))`; a `$share/` filter without a
/// valid group or filter → `Some(None)`; any other filter → `None`.
#[allow(clippy::option_option)] // three outcomes: not shared, malformed, shared
fn split_share(filter: &str) -> Option<Option<(&str, &str)>> {
    let rest = filter.strip_prefix(SHARE)?;
    Some(
        rest.split_once('/')
            .filter(|(g, f)| !g.is_empty() && !g.contains(['+', '#']) && !f.is_empty()),
    )
}

/// A filter is valid when `#` is only a whole last level and `+` only a whole level.
pub fn valid_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i + 1 == levels.len(),
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// Whether a concrete `topic` matches `filter` (topics starting with `$` match no leading
/// wildcard).
pub fn topic_matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match (f, t.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(l)) if f == l => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

/// Whether every topic `filter` matches is matched by `acl`.
fn covers(acl: &str, filter: &str) -> bool {
    let mut f = filter.split('/');
    for a in acl.split('/') {
        match (a, f.next()) {
            ("#", _) => return true,
            ("+", Some(l)) if l != "#" => {}
            (a, Some(l)) if a == l => {}
            _ => return false,
        }
    }
    f.next().is_none()
}

/// Whether some topic matches both filters.
fn overlaps(a: &str, b: &str) -> bool {
    let (mut x, mut y) = (a.split('/'), b.split('/'));
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            (Some(p), Some(q)) if p == "+" || q == "+" || p == q => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../configs/mosquitto/acl");

    #[test]
    fn the_shipped_acl_confines_each_agent_to_its_topics() {
        let acl = Acl::parse(SHIPPED).unwrap();
        let (a1, c1) = (Some("agent-1"), "agent-1");
        assert!(acl.may_publish(a1, c1, "sharpeyes/v1/site-a/agent-1/cam-1/tracks"));
        assert!(acl.may_publish(a1, c1, "sharpeyes/v1/site-a/agent-1/status"));
        assert!(!acl.may_publish(a1, c1, "sharpeyes/v1/site-a/agent-2/cam-1/tracks"));
        assert!(!acl.may_publish(a1, c1, "sharpeyes/v1/config/watchlists"));
        assert!(!acl.may_publish(a1, c1, "sharpeyes/v1/agent-1"));
        assert!(!acl.may_publish(a1, c1, "sharpeyes/v1/site-a/agent-1/other"));
        let w = Some("watchlists");
        assert!(!acl.may_publish(w, "c", "sharpeyes/v1/config/watchlists"));
        assert!(acl.may_subscribe(a1, c1, "sharpeyes/v1/config/watchlists"));
        assert!(acl.may_subscribe(a1, c1, "sharpeyes/v1/config/#"));
        assert!(!acl.may_subscribe(a1, c1, "sharpeyes/v1/#"));
        assert!(!acl.may_subscribe(a1, c1, "sharpeyes/v1/+/agent-2/+/tracks"));
        assert!(!acl.may_subscribe(a1, c1, "#"));
        // Each agent reads its own acknowledgements, no one else's, and cannot forge any.
        assert!(acl.may_subscribe(a1, c1, "sharpeyes/v1/acks/agent-1"));
        assert!(!acl.may_subscribe(a1, c1, "sharpeyes/v1/acks/agent-2"));
        assert!(!acl.may_subscribe(a1, c1, "sharpeyes/v1/acks/+"));
        assert!(!acl.may_subscribe(a1, c1, "sharpeyes/v1/acks/#"));
        assert!(!acl.may_publish(a1, c1, "sharpeyes/v1/acks/agent-1"));
        assert!(!acl.may_publish(a1, c1, "sharpeyes/v1/acks/agent-2"));
        // The aggregator reads everything and writes only the config topics.
        let ag = Some("aggregator");
        assert!(acl.may_subscribe(
            ag,
            "aggregator-1",
            "$share/g_tracks/sharpeyes/v1/+/+/+/tracks"
        ));
        assert!(acl.may_subscribe(ag, "aggregator-1", "sharpeyes/v1/+/+/status"));
        assert!(acl.may_publish(ag, "aggregator-1", "sharpeyes/v1/config/watchlists"));
        assert!(acl.may_publish(ag, "aggregator-1", "sharpeyes/v1/acks/agent-1"));
        assert!(!acl.may_publish(
            ag,
            "aggregator-1",
            "sharpeyes/v1/site-a/agent-1/cam-1/tracks"
        ));
        // Anonymous clients (refused anyway when there is a password file) publish nothing;
        // `pattern` lines without %u apply to them as in Mosquitto.
        assert!(!acl.may_publish(None, "x", "sharpeyes/v1/site-a/x/cam/tracks"));
        assert!(!acl.may_subscribe(None, "x", "sharpeyes/v1/+/+/+/tracks"));
        // A user name that is a wildcard matches no pattern.
        assert!(!acl.may_publish(Some("+"), "c", "sharpeyes/v1/site-a/agent-1/cam-1/tracks"));
        assert!(!acl.may_publish(Some("#"), "c", "sharpeyes/v1/site-a/agent-1/cam-1/tracks"));
    }

    #[test]
    fn joining_a_shared_group_needs_a_share_grant() {
        let acl = Acl::parse(SHIPPED).unwrap();
        let (a1, c1) = (Some("agent-1"), "agent-1");
        // agent-1 reads the watchlists, but may not join a group for them: not the
        // aggregator's (rumqttd keys groups by name), nor one of its own.
        assert!(acl.may_subscribe(a1, c1, "sharpeyes/v1/config/watchlists"));
        for f in [
            "$share/aggregators_tracks/sharpeyes/v1/config/watchlists",
            "$share/mine/sharpeyes/v1/config/#",
            "$share/aggregators_tracks/sharpeyes/v1/+/+/+/tracks",
            "$share/g",
            "$share//sharpeyes/v1/config/watchlists",
        ] {
            assert!(!acl.may_subscribe(a1, c1, f), "{f}");
        }
        let ag = Some("aggregator");
        assert!(acl.may_subscribe(
            ag,
            "aggregator-2",
            "$share/x_alerts/sharpeyes/v1/+/+/+/alerts"
        ));
        assert!(!acl.may_subscribe(ag, "aggregator-2", "$share/x/other/#"));
        assert!(!acl.may_subscribe(ag, "aggregator-2", "$share/+/sharpeyes/v1/#"));

        // A named group granted to every agent; `#` alone grants no group; deny wins.
        let acl = Acl::parse(
            "user root\ntopic read #\nuser ops\ntopic read a/#\ntopic read $share/+/a/#\ntopic deny $share/secret/#\npattern read cfg/#\npattern read $share/watch/cfg/#\n",
        )
        .unwrap();
        assert!(acl.may_subscribe(a1, c1, "$share/watch/cfg/x"));
        assert!(!acl.may_subscribe(a1, c1, "$share/other/cfg/x"));
        assert!(acl.may_subscribe(Some("root"), "root", "a/b"));
        assert!(!acl.may_subscribe(Some("root"), "root", "$share/g/a/b"));
        assert!(acl.may_subscribe(Some("ops"), "ops", "$share/g/a/b"));
        assert!(!acl.may_subscribe(Some("ops"), "ops", "$share/secret/a/b"));
        // The share grant does not replace reading the topic itself.
        assert!(!acl.may_subscribe(Some("ops"), "ops", "$share/g/b/c"));
    }

    #[test]
    fn deny_wins_and_user_blocks_are_per_user() {
        let acl = Acl::parse(
            "topic read public/#\nuser alice\ntopic a/#\ntopic deny a/secret\nuser bob\ntopic read a/+\n",
        )
        .unwrap();
        assert!(acl.may_publish(Some("alice"), "c", "a/x/y"));
        assert!(!acl.may_publish(Some("alice"), "c", "a/secret"));
        assert!(!acl.may_subscribe(Some("alice"), "c", "a/#"));
        assert!(acl.may_subscribe(Some("alice"), "c", "a/x/#"));
        assert!(acl.may_subscribe(Some("bob"), "c", "a/x"));
        assert!(acl.may_subscribe(Some("bob"), "c", "a/+"));
        assert!(!acl.may_subscribe(Some("bob"), "c", "a/#"));
        assert!(!acl.may_publish(Some("bob"), "c", "a/x"));
        assert!(acl.may_subscribe(None, "c", "public/news"));
        assert!(!acl.may_subscribe(Some("bob"), "c", "public/news"));
    }

    #[test]
    fn matching_rules() {
        assert!(topic_matches("a/b/c", "a/+/c"));
        assert!(topic_matches("a/b/c", "a/#"));
        assert!(topic_matches("a", "a/#"));
        assert!(!topic_matches("a/b", "a/+/c"));
        assert!(!topic_matches("$SYS/x", "#"));
        assert!(covers("a/+/c", "a/+/c"));
        assert!(!covers("a/+/c", "a/#"));
        assert!(covers("a/#", "a/+/c/#"));
        assert!(overlaps("a/+/c", "a/b/#"));
        assert!(!overlaps("a/b", "a/c"));
        assert_eq!(split_share("$share/g/a/b"), Some(Some(("g", "a/b"))));
        assert_eq!(split_share("$share/g"), Some(None));
        assert_eq!(split_share("$share//a"), Some(None));
        assert_eq!(split_share("$share/+/a"), Some(None));
        assert_eq!(split_share("a/b"), None);
        assert!(valid_filter("a/+/#") && !valid_filter("a/#/b") && !valid_filter("a/b+"));
    }

    #[test]
    fn bad_lines_name_the_line() {
        assert_eq!(Acl::parse("user a\nfoo bar").unwrap_err().0, 2);
        assert_eq!(Acl::parse("topic read a/#/b").unwrap_err().0, 1);
        assert_eq!(Acl::parse("user").unwrap_err().0, 1);
    }
}
