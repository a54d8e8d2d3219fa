//! The API's bearer tokens (schema 10): a name, a role, when made, when they expire, whether
//! revoked, and the SHA-256 (hex) of the token, never the token itself. `aggregator token
//! create|list|revoke` and `/api/v1/tokens` manage them; `api::access` makes and checks them.
//!
//! Invariants: `name` and `hash` are unique; a revoked token stays listed (who had access,
//! until when) and is refused; rows are never returned with their hash outside the store.

use serde::Serialize;

use super::{Store, StoreError};
use crate::args;

/// The tokens table.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_tokens (
    name       TEXT PRIMARY KEY,
    hash       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER
);
";

/// One token as listed (no hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    /// Its unique name (who, in the audit log).
    pub name: String,
    /// `viewer`, `analyst`, `enroller` or `admin`.
    pub role: String,
    /// When it was made, UTC ms.
    pub created_ms: i64,
    /// When it stops working, UTC ms (none: never).
    pub expires_ms: Option<i64>,
    /// When it was revoked, UTC ms.
    pub revoked_ms: Option<i64>,
}

fn token_row(r: &super::sql::Row) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        name: r.get(0)?,
        role: r.get(1)?,
        created_ms: r.get(2)?,
        expires_ms: r.get(3)?,
        revoked_ms: r.get(4)?,
    })
}

impl Store {
    /// Stores a new token (`hash`: SHA-256 hex of the token). A name or hash in use is
    /// refused ([`StoreError::Conflict`]).
    pub fn create_token(&self, t: &TokenRow, hash: &str) -> Result<(), StoreError> {
        self.tx(|db| {
            if db
                .one("SELECT 1 FROM api_tokens WHERE name = ?", args![t.name])?
                .is_some()
            {
                return Err(StoreError::Conflict(format!(
                    "a token named {:?} exists (revoke it or pick another name)",
                    t.name
                )));
            }
            db.execute(
                "INSERT INTO api_tokens (name, hash, role, created_ms, expires_ms, revoked_ms)
                 VALUES (?, ?, ?, ?, ?, NULL)",
                args![t.name, hash, t.role, t.created_ms, t.expires_ms],
            )?;
            Ok(())
        })
    }

    /// Every token, by name.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        self.db()
            .query(
                "SELECT name, role, created_ms, expires_ms, revoked_ms FROM api_tokens ORDER BY name",
                &[],
            )?
            .iter()
            .map(token_row)
            .collect()
    }

    /// The token whose SHA-256 hex is `hash`, if any (revoked and expired ones too).
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        self.db()
            .one(
                "SELECT name, role, created_ms, expires_ms, revoked_ms FROM api_tokens WHERE hash = ?",
                args![hash],
            )?
            .as_ref()
            .map(token_row)
            .transpose()
    }

    /// The token named `name`, if any (revoked and expired ones too).
    pub fn token_named(&self, name: &str) -> Result<Option<TokenRow>, StoreError> {
        self.db()
            .one(
                "SELECT name, role, created_ms, expires_ms, revoked_ms FROM api_tokens WHERE name = ?",
                args![name],
            )?
            .as_ref()
            .map(token_row)
            .transpose()
    }

    /// Revokes the token `name` at `now_ms`; false if there is none or it was revoked already.
    pub fn revoke_token(&self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = self.db().execute(
            "UPDATE api_tokens SET revoked_ms = ? WHERE name = ? AND revoked_ms IS NULL",
            args![now_ms, name],
        )?;
        Ok(n == 1)
    }
}
