//! MQTT topic names, all under a configurable prefix (default `sharpeyes/v1`).
//!
//! | topic | retained | body |
//! | --- | --- | --- |
//! | `{prefix}/{site}/{agent}/{camera}/tracks` | no | [`crate::Body::Tracks`] |
//! | `{prefix}/{site}/{agent}/{camera}/alerts` | no | [`crate::Body::Alert`] |
//! | `{prefix}/{site}/{agent}/status` | yes | [`crate::Body::Status`] |
//! | `{prefix}/config/watchlists` | yes | [`crate::Body::Watchlists`] |
//! | `{prefix}/acks/{agent}` | no | [`crate::Body::Acks`] (aggregator → agent) |
//!
//! The acknowledgement topic carries, from the aggregator that committed them, the `seq`s of
//! the agent's track batches and alerts that are in the store (stored now, or found stored
//! already); the agent keeps each in its disk spool until they arrive. Only that agent may
//! read it and only the aggregator write it (`configs/mosquitto/acl`).

use thiserror::Error;

/// The default topic prefix.
pub const DEFAULT_PREFIX: &str = "sharpeyes/v1";

/// A topic name that does not fit the scheme, or an id that cannot be a topic level.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TopicError {
    /// The topic is not under the prefix.
    #[error("topic {0:?} is not under the prefix")]
    ForeignPrefix(String),
    /// The topic is under the prefix but does not match any known shape.
    #[error("topic {0:?} does not match any Sharp Eyes topic")]
    UnknownShape(String),
    /// An id is empty or contains `/`, `+`, `#` or a NUL.
    #[error(
        "{what} {id:?} cannot be used in a topic: it must be non-empty and free of '/', '+', '#' and NUL"
    )]
    BadId {
        /// Which id (site, agent, camera).
        what: &'static str,
        /// The id.
        id: String,
    },
}

/// A parsed topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Track batches of one camera.
    Tracks {
        /// Site id.
        site: String,
        /// Agent id.
        agent: String,
        /// Camera id.
        camera: String,
    },
    /// Alerts of one camera.
    Alerts {
        /// Site id.
        site: String,
        /// Agent id.
        agent: String,
        /// Camera id.
        camera: String,
    },
    /// Status of one agent.
    Status {
        /// Site id.
        site: String,
        /// Agent id.
        agent: String,
    },
    /// The watchlists.
    Watchlists,
    /// The aggregator's acknowledgements to one agent.
    Acks {
        /// Agent id.
        agent: String,
    },
}

impl Topic {
    /// The agent the topic belongs to (none for the watchlists).
    pub fn agent(&self) -> Option<&str> {
        match self {
            Topic::Tracks { agent, .. }
            | Topic::Alerts { agent, .. }
            | Topic::Status { agent, .. }
            | Topic::Acks { agent } => Some(agent),
            Topic::Watchlists => None,
        }
    }
}

/// Builds and parses topic names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Topics {
    /// Topics under `prefix` (trailing `/` ignored).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Checks that `id` can be one topic level.
    pub fn check_id(what: &'static str, id: &str) -> Result<(), TopicError> {
        if id.is_empty() || id.contains(['/', '+', '#', '\0']) {
            return Err(TopicError::BadId {
                what,
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// `{prefix}/{site}/{agent}/{camera}/tracks`
    pub fn tracks(&self, site: &str, agent: &str, camera: &str) -> String {
        format!("{}/{site}/{agent}/{camera}/tracks", self.prefix)
    }

    /// `{prefix}/{site}/{agent}/{camera}/alerts`
    pub fn alerts(&self, site: &str, agent: &str, camera: &str) -> String {
        format!("{}/{site}/{agent}/{camera}/alerts", self.prefix)
    }

    /// `{prefix}/{site}/{agent}/status`
    pub fn status(&self, site: &str, agent: &str) -> String {
        format!("{}/{site}/{agent}/status", self.prefix)
    }

    /// `{prefix}/config/watchlists`
    pub fn watchlists(&self) -> String {
        format!("{}/config/watchlists", self.prefix)
    }

    /// `{prefix}/acks/{agent}`
    pub fn acks(&self, agent: &str) -> String {
        format!("{}/acks/{agent}", self.prefix)
    }

    /// Filter matching every camera's track batches.
    pub fn all_tracks(&self) -> String {
        format!("{}/+/+/+/tracks", self.prefix)
    }

    /// Filter matching every camera's alerts.
    pub fn all_alerts(&self) -> String {
        format!("{}/+/+/+/alerts", self.prefix)
    }

    /// Filter matching every agent's status.
    pub fn all_status(&self) -> String {
        format!("{}/+/+/status", self.prefix)
    }

    /// Parses a topic name.
    pub fn parse(&self, topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| TopicError::ForeignPrefix(topic.to_string()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let ok = |s: &&str| !s.is_empty();
        match parts.as_slice() {
            ["config", "watchlists"] => Ok(Topic::Watchlists),
            ["acks", agent] if ok(agent) => Ok(Topic::Acks {
                agent: agent.to_string(),
            }),
            [site, agent, "status"] if ok(site) && ok(agent) => Ok(Topic::Status {
                site: site.to_string(),
                agent: agent.to_string(),
            }),
            [site, agent, camera, kind] if ok(site) && ok(agent) && ok(camera) => {
                let (site, agent, camera) =
                    (site.to_string(), agent.to_string(), camera.to_string());
                match *kind {
                    "tracks" => Ok(Topic::Tracks {
                        site,
                        agent,
                        camera,
                    }),
                    "alerts" => Ok(Topic::Alerts {
                        site,
                        agent,
                        camera,
                    }),
                    _ => Err(TopicError::UnknownShape(topic.to_string())),
                }
            }
            _ => Err(TopicError::UnknownShape(topic.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_topics_parse_back() {
        let t = Topics::default();
        assert_eq!(
            t.parse(&t.tracks("s1", "a1", "cam-1")).unwrap(),
            Topic::Tracks {
                site: "s1".into(),
                agent: "a1".into(),
                camera: "cam-1".into()
            }
        );
        assert_eq!(
            t.parse(&t.alerts("s1", "a1", "c")).unwrap(),
            Topic::Alerts {
                site: "s1".into(),
                agent: "a1".into(),
                camera: "c".into()
            }
        );
        assert_eq!(
            t.parse(&t.status("s1", "a1")).unwrap(),
            Topic::Status {
                site: "s1".into(),
                agent: "a1".into()
            }
        );
        assert_eq!(t.parse(&t.watchlists()).unwrap(), Topic::Watchlists);
        assert_eq!(
            t.parse(&t.acks("agent-1")).unwrap(),
            Topic::Acks {
                agent: "agent-1".into()
            }
        );
        assert_eq!(t.acks("agent-1"), "sharpeyes/v1/acks/agent-1");
        assert!(t.parse("sharpeyes/v1/acks/").is_err());
        assert!(t.parse("sharpeyes/v1/acks/a/b").is_err());
    }

    #[test]
    fn foreign_and_odd_topics_are_rejected() {
        let t = Topics::new("sharpeyes/v1/");
        assert!(matches!(
            t.parse("other/x/y/z/tracks"),
            Err(TopicError::ForeignPrefix(_))
        ));
        assert!(matches!(
            t.parse("sharpeyes/v1x/a/b/c/tracks"),
            Err(TopicError::ForeignPrefix(_))
        ));
        assert!(matches!(
            t.parse("sharpeyes/v1/a/b/c/d"),
            Err(TopicError::UnknownShape(_))
        ));
        assert!(matches!(
            t.parse("sharpeyes/v1/a//c/tracks"),
            Err(TopicError::UnknownShape(_))
        ));
        assert!(matches!(
            t.parse("sharpeyes/v1/a/b/c/tracks/x"),
            Err(TopicError::UnknownShape(_))
        ));
    }

    #[test]
    fn ids_with_wildcards_are_refused() {
        assert!(Topics::check_id("camera", "cam-1").is_ok());
        for bad in ["", "a/b", "a+", "#", "a\0"] {
            assert!(Topics::check_id("camera", bad).is_err(), "{bad:?}");
        }
    }
}
