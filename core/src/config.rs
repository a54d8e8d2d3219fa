//! Configuration files: TOML that must parse (unknown fields are errors) and validate.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use thiserror::Error;

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown / mistyped fields.
    #[error("parsing config: {0}")]
    Parse(#[from] toml::de::Error),
    /// A field has a value that cannot work.
    #[error("invalid config: {field}: {reason}")]
    Invalid {
        /// Dotted path of the field, e.g. `cameras[2].analysis_fps`.
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// An [`ConfigError::Invalid`] for `field`.
pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Checks `lo <= v <= hi`, naming `field` otherwise.
pub fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<(), ConfigError> {
    if v >= lo && v <= hi {
        Ok(())
    } else {
        Err(invalid(field, format!("{v} is outside {lo}..={hi}")))
    }
}

/// A configuration file type: parse with [`ConfigFile::from_toml`] or [`ConfigFile::load`],
/// both of which validate.
pub trait ConfigFile: Sized + DeserializeOwned {
    /// Checks every field; the first problem found is returned.
    fn validate(&self) -> Result<(), ConfigError>;

    /// Parses and validates TOML text.
    fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct C {
        n: u32,
    }

    impl ConfigFile for C {
        fn validate(&self) -> Result<(), ConfigError> {
            in_range("n", self.n, 1, 10)
        }
    }

    #[test]
    fn parse_validate_and_read_errors_are_distinct() {
        assert_eq!(C::from_toml("n = 3").unwrap().n, 3);
        assert!(
            matches!(C::from_toml("n = 30"), Err(ConfigError::Invalid { field, .. }) if field == "n")
        );
        assert!(matches!(C::from_toml("m = 3"), Err(ConfigError::Parse(_))));
        let e = C::load(Path::new("/nonexistent/c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/c.toml"), "{e}");
    }
}
