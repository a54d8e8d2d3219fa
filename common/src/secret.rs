//! Secret configuration values (passwords, connection strings with a password): written in the
//! TOML file as today, or read from a file, an environment variable or a systemd credential, so
//! the configuration itself can be world-readable and kept in version control.
//!
//! ```toml
//! password = "s3cret"                         # in the file itself (as before)
//! password = { file = "/etc/sharpeyes/pw" }   # a file's contents, trailing newline trimmed
//! password = { env = "SHARPEYES_BROKER_PW" }  # an environment variable
//! password = { credential = "broker-password" } # $CREDENTIALS_DIRECTORY/broker-password,
//!                                             # what systemd's LoadCredential= provides
//! ```
//!
//! A [`Secret`] is resolved once, when the configuration is validated (start-up and
//! `check-config`), with an error that names the field, the source and what to do; its value is
//! never shown by `Debug` or `Display`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// The environment variable systemd sets to the folder of a service's credentials.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Where a secret's value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the configuration file.
    Plain(String),
    /// `{ file = "/path" }`: the file's contents, trailing newlines trimmed.
    File(PathBuf),
    /// `{ env = "NAME" }`: the environment variable `NAME`.
    Env(String),
    /// `{ credential = "name" }`: the file `$CREDENTIALS_DIRECTORY/name` (systemd
    /// `LoadCredential=name:/etc/...`), trailing newlines trimmed.
    Credential(String),
}

impl fmt::Display for SecretSource {
    /// Where the value comes from, never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("the value in the configuration file"),
            Self::File(p) => write!(f, "file {}", p.display()),
            Self::Env(n) => write!(f, "environment variable {n}"),
            Self::Credential(n) => write!(f, "credential '{n}'"),
        }
    }
}

/// A secret configuration value: see the module docs for its forms.
///
/// Equality compares the sources, not the values. `Debug` and `Display` show the source (a
/// file's path, a variable's name) and never the value.
#[derive(Clone)]
pub struct Secret {
    source: SecretSource,
    value: OnceLock<String>,
}

impl Secret {
    /// A secret read from `source` when first resolved.
    pub fn new(source: SecretSource) -> Self {
        let value = OnceLock::new();
        if let SecretSource::Plain(v) = &source {
            let _ = value.set(v.clone());
        }
        Self { source, value }
    }

    /// Where the value comes from.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }

    /// The value, read from its source the first time (later calls return the same value);
    /// `field` (e.g. `broker.password`) names the setting in the error.
    pub fn resolve(&self, field: &str) -> Result<&str, SecretError> {
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let v = self.read(field, &|name| std::env::var_os(name))?;
        Ok(self.value.get_or_init(|| v))
    }

    /// Reads the value from its source, looking environment variables up with `env`.
    pub fn read(
        &self,
        field: &str,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<String, SecretError> {
        let err = |problem| SecretError {
            field: field.to_string(),
            problem,
        };
        let value = match &self.source {
            SecretSource::Plain(v) => return Ok(v.clone()),
            SecretSource::File(path) => read_file(path).map_err(|source| {
                err(SecretProblem::File {
                    path: path.clone(),
                    source,
                })
            })?,
            SecretSource::Env(name) => match env(name) {
                None => return Err(err(SecretProblem::EnvUnset { name: name.clone() })),
                Some(v) => v.into_string().map_err(|_| {
                    err(SecretProblem::NotUnicode {
                        from: self.source.clone(),
                    })
                })?,
            },
            SecretSource::Credential(name) => {
                let Some(dir) = env(CREDENTIALS_DIRECTORY).filter(|d| !d.is_empty()) else {
                    return Err(err(SecretProblem::NoCredentialsDirectory {
                        name: name.clone(),
                    }));
                };
                let path = Path::new(&dir).join(name);
                read_file(&path).map_err(|source| {
                    err(SecretProblem::Credential {
                        name: name.clone(),
                        path,
                        source,
                    })
                })?
            }
        };
        if value.is_empty() {
            return Err(err(SecretProblem::Empty {
                from: self.source.clone(),
            }));
        }
        Ok(value)
    }
}

/// A file's text without its trailing newlines; not UTF-8 is an `InvalidData` error.
fn read_file(path: &Path) -> std::io::Result<String> {
    let mut text = std::fs::read_to_string(path)?;
    let end = text.trim_end_matches(['\n', '\r']).len();
    text.truncate(end);
    Ok(text)
}

impl From<String> for Secret {
    fn from(v: String) -> Self {
        Self::new(SecretSource::Plain(v))
    }
}

impl From<&str> for Secret {
    fn from(v: &str) -> Self {
        Self::from(v.to_string())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Plain(_) => f.write_str("Secret(***)"),
            s => write!(f, "Secret({s})"),
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Plain(_) => f.write_str("***"),
            s => write!(f, "{s}"),
        }
    }
}

/// Written back as it was read: a string, or a one-key table naming the source (so a
/// configuration survives a round trip; the value of a file, variable or credential is not
/// written).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (key, value) = match &self.source {
            SecretSource::Plain(v) => return s.serialize_str(v),
            SecretSource::File(p) => ("file", p.to_string_lossy()),
            SecretSource::Env(n) => ("env", n.as_str().into()),
            SecretSource::Credential(n) => ("credential", n.as_str().into()),
        };
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(key, &value)?;
        m.end()
    }
}

const EXPECTED: &str =
    "a string, or one of { file = \"/path\" }, { env = \"NAME\" }, { credential = \"name\" }";

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::from(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
                let Some((key, value)) = map.next_entry::<String, String>()? else {
                    return Err(de::Error::custom(format!(
                        "empty table: expected {EXPECTED}"
                    )));
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(format!(
                        "more than one source: expected {EXPECTED}"
                    )));
                }
                if value.trim().is_empty() {
                    return Err(de::Error::custom(format!("{key} must not be empty")));
                }
                let source = match key.as_str() {
                    "file" => SecretSource::File(value.into()),
                    "env" => SecretSource::Env(value),
                    "credential" => {
                        if value.contains('/') || value == "." || value == ".." {
                            return Err(de::Error::custom(format!(
                                "credential {value:?} must be a plain name (no '/'), as in LoadCredential=NAME:/path"
                            )));
                        }
                        SecretSource::Credential(value)
                    }
                    other => {
                        return Err(de::Error::custom(format!(
                            "unknown secret source {other:?}: expected {EXPECTED}"
                        )));
                    }
                };
                Ok(Secret::new(source))
            }
        }
        d.deserialize_any(V)
    }
}

/// A secret that cannot be read.
#[derive(Debug, Error)]
#[error("{field}: {problem}")]
pub struct SecretError {
    /// The setting, e.g. `broker.password`.
    pub field: String,
    /// What went wrong and what to do.
    pub problem: SecretProblem,
}

/// Why a secret cannot be read (each message says what to do).
#[derive(Debug, Error)]
pub enum SecretProblem {
    /// `{ file = ... }` cannot be read.
    #[error(
        "cannot read secret file {}: {source} (create it, readable by the service's user, or point the setting at another file)",
        path.display()
    )]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `{ env = ... }` names an unset variable.
    #[error(
        "environment variable {name} is not set (set it, e.g. with Environment= or EnvironmentFile= in the systemd unit, or use {{ file = ... }})"
    )]
    EnvUnset {
        /// The variable.
        name: String,
    },
    /// `{ credential = ... }` outside a service with credentials.
    #[error(
        "credential '{name}' not found: ${CREDENTIALS_DIRECTORY} is not set (add LoadCredential={name}:/etc/sharpeyes/{name} to the unit, or use {{ file = ... }})"
    )]
    NoCredentialsDirectory {
        /// The credential.
        name: String,
    },
    /// `$CREDENTIALS_DIRECTORY/name` cannot be read.
    #[error(
        "credential '{name}' cannot be read from {}: {source} (check the unit's LoadCredential={name}:...)",
        path.display()
    )]
    Credential {
        /// The credential.
        name: String,
        /// `$CREDENTIALS_DIRECTORY/name`.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The value is not UTF-8.
    #[error("{from} is not valid UTF-8 text")]
    NotUnicode {
        /// Where it came from.
        from: SecretSource,
    },
    /// The source is there but empty.
    #[error("{from} is empty (put the secret in it)")]
    Empty {
        /// Where it came from.
        from: SecretSource,
    },
}

impl From<SecretError> for crate::config::ConfigError {
    fn from(e: SecretError) -> Self {
        crate::config::invalid(e.field, e.problem.to_string())
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(_) => f.write_str("Plain(***)"),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Env(n) => f.debug_tuple("Env").field(n).finish(),
            Self::Credential(n) => f.debug_tuple("Credential").field(n).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct C {
        password: Secret,
    }

    fn parse(toml_text: &str) -> Result<Secret, String> {
        toml::from_str::<C>(toml_text)
            .map(|c| c.password)
            .map_err(|e| e.to_string())
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[test]
    fn every_form_parses_and_round_trips() {
        for (text, source) in [
            ("password = 's3cret'", SecretSource::Plain("s3cret".into())),
            (
                "password = { file = '/etc/pw' }",
                SecretSource::File("/etc/pw".into()),
            ),
            ("password = { env = 'PW' }", SecretSource::Env("PW".into())),
            (
                "password = { credential = 'broker-password' }",
                SecretSource::Credential("broker-password".into()),
            ),
        ] {
            let s = parse(text).unwrap();
            assert_eq!(s.source(), &source, "{text}");
            let c = C { password: s };
            let back: C = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c, "{text}");
        }
    }

    #[test]
    fn malformed_tables_are_refused_clearly() {
        let e = parse("password = { path = '/x' }").unwrap_err();
        assert!(
            e.contains("unknown secret source \"path\"") && e.contains("file"),
            "{e}"
        );
        let e = parse("password = { file = '/x', env = 'Y' }").unwrap_err();
        assert!(e.contains("more than one source"), "{e}");
        let e = parse("password = {}").unwrap_err();
        assert!(e.contains("empty table"), "{e}");
        let e = parse("password = { credential = '../pw' }").unwrap_err();
        assert!(e.contains("plain name"), "{e}");
        let e = parse("password = { env = '' }").unwrap_err();
        assert!(e.contains("must not be empty"), "{e}");
        let e = parse("password = 5").unwrap_err();
        assert!(e.contains("a string, or one of"), "{e}");
    }

    #[test]
    fn the_value_never_shows_in_debug_or_display() {
        let s = Secret::from("hunter2-密码");
        assert_eq!(s.resolve("f").unwrap(), "hunter2-密码");
        let shown = format!("{s:?} {s} {:?} {:?}", s.source(), Some(&s));
        assert!(!shown.contains("hunter2"), "{shown}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "hunter2\n").unwrap();
        let s = Secret::new(SecretSource::File(f.clone()));
        assert_eq!(s.resolve("f").unwrap(), "hunter2");
        let shown = format!("{s:?} {s}");
        assert!(
            !shown.contains("hunter2") && shown.contains(f.to_str().unwrap()),
            "{shown}"
        );
    }

    #[test]
    fn files_are_read_once_without_their_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "  密码 with spaces \r\n\n").unwrap();
        let s = Secret::new(SecretSource::File(f.clone()));
        assert_eq!(s.resolve("broker.password").unwrap(), "  密码 with spaces ");
        // Resolved once: a later change of the file does not change the value.
        std::fs::write(&f, "other").unwrap();
        assert_eq!(s.resolve("broker.password").unwrap(), "  密码 with spaces ");
        let copy = s.clone();
        std::fs::remove_file(&f).unwrap();
        assert_eq!(
            copy.resolve("broker.password").unwrap(),
            "  密码 with spaces "
        );

        let missing = Secret::new(SecretSource::File(dir.path().join("nope")));
        let e = missing.resolve("broker.password").unwrap_err().to_string();
        assert!(
            e.starts_with("broker.password: cannot read secret file ")
                && e.contains("nope")
                && e.contains("create it"),
            "{e}"
        );
        std::fs::write(&f, "\n").unwrap();
        let e = Secret::new(SecretSource::File(f))
            .resolve("store.postgres_url")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("store.postgres_url") && e.contains("is empty"),
            "{e}"
        );
    }

    #[test]
    fn environment_variables_are_looked_up_by_name() {
        let s = Secret::new(SecretSource::Env("SE_PW".into()));
        let env = |n: &str| (n == "SE_PW").then(|| OsString::from("from-env"));
        assert_eq!(s.read("broker.password", &env).unwrap(), "from-env");
        let e = s.read("broker.password", &no_env).unwrap_err().to_string();
        assert!(
            e.contains("broker.password")
                && e.contains("environment variable SE_PW is not set")
                && e.contains("Environment="),
            "{e}"
        );
        let empty = |_: &str| Some(OsString::new());
        let e = s.read("broker.password", &empty).unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn credentials_come_from_the_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broker-password"), "cred-value\n").unwrap();
        let d = dir.path().as_os_str().to_owned();
        let env = move |n: &str| (n == CREDENTIALS_DIRECTORY).then(|| d.clone());
        let s = Secret::new(SecretSource::Credential("broker-password".into()));
        assert_eq!(s.read("broker.password", &env).unwrap(), "cred-value");
        let e = s.read("broker.password", &no_env).unwrap_err().to_string();
        assert_eq!(
            e,
            "broker.password: credential 'broker-password' not found: $CREDENTIALS_DIRECTORY is not set \
             (add LoadCredential=broker-password:/etc/sharpeyes/broker-password to the unit, or use { file = ... })"
        );
        let other = Secret::new(SecretSource::Credential("db-url".into()));
        let e = other
            .read("store.postgres_url", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("credential 'db-url' cannot be read from")
                && e.contains("LoadCredential=db-url:"),
            "{e}"
        );
    }

    #[test]
    fn a_secret_error_is_a_config_error_naming_the_field() {
        let e = Secret::new(SecretSource::Env("SE_UNSET_X".into()))
            .read("broker.password", &no_env)
            .unwrap_err();
        let c: crate::config::ConfigError = e.into();
        assert!(
            matches!(&c, crate::config::ConfigError::Invalid { field, .. } if field == "broker.password"),
            "{c}"
        );
    }
}
