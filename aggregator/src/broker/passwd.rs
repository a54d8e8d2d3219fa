//! Mosquitto password files, so one file serves the embedded broker and Mosquitto alike.
//!
//! A line is `user:$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, what `mosquitto_passwd`
//! writes since 2.0) or `user:$6$SALT$HASH` (SHA-512 of password + salt, Mosquitto 1.x);
//! salt and hash are standard base64. Blank lines and `#` comments are skipped. Passwords
//! are verified in constant time, and an unknown user costs the same work as a known one.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::SecureRandom;
use ring::{digest, pbkdf2};
use thiserror::Error;

/// Iterations of new `$7$` hashes (Mosquitto 2.0 writes 101).
pub const DEFAULT_ITERATIONS: u32 = 101;
const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;

/// A password file that cannot be used.
#[derive(Debug, Error)]
pub enum PasswdError {
    /// The file could not be read or written.
    #[error("password file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `user:$7$...` or `user:$6$...`.
    #[error("password file {path}, line {line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A user name Mosquitto would not accept (empty, or with `:`).
    #[error("user name {0:?} must be non-empty and free of ':' and line breaks")]
    BadUser(String),
    /// The system's random source failed.
    #[error("no random salt available")]
    Random,
}

/// One stored password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hash {
    /// SHA-512(password ‖ salt).
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
    /// PBKDF2-HMAC-SHA512.
    Pbkdf2 {
        iterations: NonZeroU32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl Hash {
    fn parse(s: &str) -> Result<Self, String> {
        let b64 = |part: &str, what: &str| {
            B64.decode(part)
                .map_err(|e| format!("{what} is not base64: {e}"))
        };
        let parts: Vec<&str> = s.split('$').collect();
        match parts.as_slice() {
            ["", "6", salt, hash] => Ok(Hash::Sha512 {
                salt: b64(salt, "salt")?,
                hash: b64(hash, "hash")?,
            }),
            ["", "7", iterations, salt, hash] => Ok(Hash::Pbkdf2 {
                iterations: iterations
                    .parse::<NonZeroU32>()
                    .map_err(|_| format!("iterations {iterations:?} is not a positive number"))?,
                salt: b64(salt, "salt")?,
                hash: b64(hash, "hash")?,
            }),
            _ => Err("expected user:$7$iterations$salt$hash or user:$6$salt$hash".into()),
        }
    }

    fn verify(&self, password: &str) -> bool {
        match self {
            Hash::Sha512 { salt, hash } => {
                let mut ctx = digest::Context::new(&digest::SHA512);
                ctx.update(password.as_bytes());
                ctx.update(salt);
                constant_time_eq(ctx.finish().as_ref(), hash)
            }
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA512,
                *iterations,
                salt,
                password.as_bytes(),
                hash,
            )
            .is_ok(),
        }
    }

    fn encode(&self) -> String {
        match self {
            Hash::Sha512 { salt, hash } => format!("$6${}${}", B64.encode(salt), B64.encode(hash)),
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => format!("$7${iterations}${}${}", B64.encode(salt), B64.encode(hash)),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The users of a password file.
#[derive(Debug, Clone)]
pub struct PasswordFile {
    users: HashMap<String, Hash>,
    /// Checked for unknown users, so they cost what known ones do.
    decoy: Hash,
}

impl PasswordFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, PasswdError> {
        let text = std::fs::read_to_string(path).map_err(|source| PasswdError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| PasswdError::Line {
            path: path.to_path_buf(),
            line,
            reason,
        })
    }

    /// Parses the text of a password file; an error gives the 1-based line and the reason.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or((i + 1, "expected user:hash".to_string()))?;
            if user.is_empty() {
                return Err((i + 1, "empty user name".into()));
            }
            let hash = Hash::parse(hash).map_err(|r| (i + 1, r))?;
            users.insert(user.to_string(), hash);
        }
        Ok(Self {
            users,
            decoy: Hash::Pbkdf2 {
                iterations: NonZeroU32::MIN.saturating_add(DEFAULT_ITERATIONS - 1),
                salt: vec![0; SALT_LEN],
                hash: vec![0; HASH_LEN],
            },
        })
    }

    /// Whether `user` exists and `password` is theirs.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                let _ = self.decoy.verify(password);
                false
            }
        }
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user an MQTT client id belongs to: the longest user name `U` such that the id is
    /// `U` or starts with `U-` (so with users `agent` and `agent-1`, `agent-1-x` is
    /// `agent-1`'s and `agent-2` is `agent`'s); none when no user matches.
    pub fn client_id_owner(&self, client_id: &str) -> Option<&str> {
        let mut end = client_id.len();
        loop {
            if let Some((user, _)) = self.users.get_key_value(&client_id[..end]) {
                return Some(user);
            }
            // '-' is one byte: every cut lands on a character boundary.
            end = client_id[..end].rfind('-')?;
        }
    }
}

/// A `$7$` (PBKDF2-HMAC-SHA512) line for `user`, with a fresh random salt, as
/// `mosquitto_passwd` writes it.
pub fn hash_line(user: &str, password: &str) -> Result<String, PasswdError> {
    if user.is_empty() || user.contains([':', '\n', '\r']) {
        return Err(PasswdError::BadUser(user.to_string()));
    }
    let mut salt = vec![0u8; SALT_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| PasswdError::Random)?;
    let iterations = NonZeroU32::MIN.saturating_add(DEFAULT_ITERATIONS - 1);
    let mut hash = vec![0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA512,
        iterations,
        &salt,
        password.as_bytes(),
        &mut hash,
    );
    Ok(format!(
        "{user}:{}",
        Hash::Pbkdf2 {
            iterations,
            salt,
            hash
        }
        .encode()
    ))
}

/// Sets `user`'s password in the file at `path` (created if missing), keeping other users
/// and comments; the file is replaced atomically and readable by its owner only.
pub fn set_password(path: &Path, user: &str, password: &str) -> Result<(), PasswdError> {
    let io = |source| PasswdError::Io {
        path: path.to_path_buf(),
        source,
    };
    let line = hash_line(user, password)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let prefix = format!("{user}:");
    let mut out: Vec<&str> = old.lines().filter(|l| !l.starts_with(&prefix)).collect();
    out.push(&line);
    let mut text = out.join("\n");
    text.push('\n');
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// A random password of `len` characters from `[A-Za-z0-9]`.
pub fn random_password(len: usize) -> Result<String, PasswdError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PasswdError::Random)?;
    // 256 = 4 × 62 + 8: rejecting the top 8 values would remove the slight bias; at 62
    // symbols per character and ≥ 24 characters the bias is immaterial for these secrets.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_lines_verify_and_reject() {
        let line = hash_line("agent-1", "s3cret").unwrap();
        assert!(line.starts_with("agent-1:$7$101$"));
        let f = PasswordFile::parse(&format!("# users\n\n{line}\n")).unwrap();
        assert_eq!(f.len(), 1);
        assert!(f.verify("agent-1", "s3cret"));
        assert!(!f.verify("agent-1", "s3cret "));
        assert!(!f.verify("agent-2", "s3cret"));
        // Fresh salt each time.
        assert_ne!(line, hash_line("agent-1", "s3cret").unwrap());
    }

    #[test]
    fn client_ids_belong_to_the_longest_matching_user() {
        let mut text = String::new();
        for u in ["agent", "agent-1", "aggregator", "摄像头"] {
            text.push_str(&hash_line(u, "pw").unwrap());
            text.push('\n');
        }
        let f = PasswordFile::parse(&text).unwrap();
        for (id, owner) in [
            ("agent-1", Some("agent-1")),
            ("agent-1-spare", Some("agent-1")),
            ("agent-1-", Some("agent-1")),
            ("agent-2", Some("agent")),
            ("agent", Some("agent")),
            ("agent1", None),
            ("edge-agent-1", None),
            ("aggregator-2", Some("aggregator")),
            ("摄像头-东门", Some("摄像头")),
            ("摄像", None),
            ("", None),
            ("-", None),
        ] {
            assert_eq!(f.client_id_owner(id), owner, "{id:?}");
        }
    }

    #[test]
    fn mosquitto_1x_sha512_lines_verify() {
        let salt = b"0123456789ab";
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(b"pw");
        ctx.update(salt);
        let line = format!(
            "u:$6${}${}",
            B64.encode(salt),
            B64.encode(ctx.finish().as_ref())
        );
        let f = PasswordFile::parse(&line).unwrap();
        assert!(f.verify("u", "pw"));
        assert!(!f.verify("u", "pW"));
    }

    #[test]
    fn bad_lines_name_the_line() {
        for (text, line) in [
            ("a:$7$101$AAAA$AAAA\nnocolon", 2),
            ("a:plain", 1),
            ("a:$7$0$AAAA$AAAA", 1),
            ("a:$7$101$not base64!$AAAA", 1),
            (":$6$AAAA$AAAA", 1),
        ] {
            assert_eq!(PasswordFile::parse(text).unwrap_err().0, line, "{text}");
        }
        assert!(hash_line("a:b", "x").is_err());
        assert!(hash_line("", "x").is_err());
    }

    #[test]
    fn set_password_replaces_only_that_user() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        set_password(&p, "a", "1").unwrap();
        set_password(&p, "b", "2").unwrap();
        set_password(&p, "a", "3").unwrap();
        let f = PasswordFile::load(&p).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f.verify("a", "3") && !f.verify("a", "1") && f.verify("b", "2"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let pw = random_password(24).unwrap();
        assert_eq!(pw.len(), 24);
        assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
