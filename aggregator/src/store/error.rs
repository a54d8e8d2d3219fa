//! Store failures, and whom each concerns (the whole store, or one message).

use thiserror::Error;

use super::evidence::BadSha256;

/// Store failures.
#[derive(Debug, Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (connecting, or a statement).
    #[error("postgres: {}", postgres_detail(.0))]
    Postgres(#[from] postgres::Error),
    /// A column did not hold what the store wrote there.
    #[error("column {column} holds {value}, not the expected type")]
    Decode {
        /// Column index.
        column: usize,
        /// What it held.
        value: String,
    },
    /// This writer computed fusion results but is not (or no longer) the fusion owner; nothing
    /// was written.
    #[error("not the fusion owner (another aggregator assigns identities)")]
    NotFusionOwner,
    /// The database was written by a newer schema.
    #[error("database schema version {found} is newer than this build's {supported}")]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Version this build writes.
        supported: i64,
    },
    /// A read-only connection found another schema version than this build's (the writer
    /// migrates; open the database read-write once).
    #[error(
        "database schema version {found}, this build reads {supported} (run the aggregator once to migrate)"
    )]
    OtherSchema {
        /// Version in the file.
        found: i64,
        /// Version this build reads.
        supported: i64,
    },
    /// A `guardian_of` names no enrolled patient.
    #[error("no enrolled patient {0:?} (enroll the patient first; see `aggregator watchlist`)")]
    UnknownPatient(String),
    /// An id is enrolled already in the other role.
    #[error("{id:?} is enrolled as a {existing}; remove it first to enroll it as a {wanted}")]
    RoleConflict {
        /// The id.
        id: String,
        /// Its current role.
        existing: &'static str,
        /// The role asked for.
        wanted: &'static str,
    },
    /// A request that breaks a rule (an enrollment with an empty id, no embeddings, a patient
    /// without consent reference; a malformed database URL...): the caller's to fix.
    #[error("{0}")]
    Invalid(String),
    /// The request contradicts what is stored (a token name in use).
    #[error("{0}")]
    Conflict(String),
    /// Something that should not fail did (a worker thread died, encoding failed, a COPY
    /// stream broke): not the caller's fault.
    #[error("{0}")]
    Internal(String),
    /// A value the store cannot place (a time with no partition).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// An evidence reference that is not a SHA-256 (64 lowercase hex digits); nothing was
    /// looked up.
    #[error(transparent)]
    BadEvidenceRef(#[from] BadSha256),
    /// A stored value does not decode (written by something else than this store).
    #[error("corrupt watchlist row {id:?}: {reason}")]
    Corrupt {
        /// The row's key.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

/// Whom a store failure concerns ([`StoreError::scope`]): the writer retries a store-wide
/// failure with back-off and acknowledges nothing meanwhile; a failure of one message sends
/// that message to the dead letters and stores the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The store as a whole: unreachable, disk full, busy, read-only, out of memory…
    Store,
    /// The statement's data: a constraint, a value the column cannot hold.
    Message,
    /// Cannot tell (the writer isolates the batch; if every message fails alone, it is taken
    /// for store-wide).
    Unknown,
}

impl StoreError {
    /// Whom this failure concerns.
    pub fn scope(&self) -> Scope {
        match self {
            StoreError::Sqlite(e) => sqlite_scope(e),
            StoreError::Postgres(e) => postgres_scope(e),
            StoreError::Decode { .. }
            | StoreError::Invalid(_)
            | StoreError::Conflict(_)
            | StoreError::Internal(_)
            | StoreError::OutOfRange(_)
            | StoreError::BadEvidenceRef(_)
            | StoreError::Corrupt { .. } => Scope::Message,
            StoreError::NotFusionOwner
            | StoreError::NewerSchema { .. }
            | StoreError::OtherSchema { .. } => Scope::Store,
            StoreError::UnknownPatient(_) | StoreError::RoleConflict { .. } => Scope::Message,
        }
    }
}

/// What kind of failure a store error is, for a caller that answers someone (the API's
/// status code, the command line's advice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request contradicts the stored state (HTTP 409).
    Conflict,
    /// The request is invalid (HTTP 400 / 422).
    Validation,
    /// The database cannot be used now: unreachable, busy, full, another schema (HTTP 503).
    Unavailable,
    /// A fault of the aggregator or the data it stored (HTTP 500).
    Internal,
}

impl StoreError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Conflict(_)
            | StoreError::RoleConflict { .. }
            | StoreError::NotFusionOwner => ErrorKind::Conflict,
            StoreError::Invalid(_)
            | StoreError::UnknownPatient(_)
            | StoreError::OutOfRange(_)
            | StoreError::BadEvidenceRef(_) => ErrorKind::Validation,
            StoreError::NewerSchema { .. } | StoreError::OtherSchema { .. } => {
                ErrorKind::Unavailable
            }
            StoreError::Sqlite(_) | StoreError::Postgres(_) => match self.scope() {
                Scope::Store => ErrorKind::Unavailable,
                Scope::Message | Scope::Unknown => ErrorKind::Internal,
            },
            StoreError::Decode { .. } | StoreError::Corrupt { .. } | StoreError::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }
}

fn sqlite_scope(e: &rusqlite::Error) -> Scope {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::ConstraintViolation | C::TypeMismatch | C::TooBig | C::ParameterOutOfRange => {
                Scope::Message
            }
            C::DiskFull
            | C::SystemIoFailure
            | C::CannotOpen
            | C::DatabaseBusy
            | C::DatabaseLocked
            | C::ReadOnly
            | C::OutOfMemory
            | C::DatabaseCorrupt
            | C::NotADatabase
            | C::PermissionDenied
            | C::FileLockingProtocolFailed
            | C::NoLargeFileSupport => Scope::Store,
            _ => Scope::Unknown,
        },
        rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(_)
        | rusqlite::Error::NulError(_) => Scope::Message,
        _ => Scope::Unknown,
    }
}

/// What PostgreSQL said: the server's message, detail and SQLSTATE when it answered (the
/// client's own text is only "db error"), else the client's error with its cause.
fn postgres_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut s = format!("{} (SQLSTATE {})", d.message(), d.code().code());
            if let Some(detail) = d.detail() {
                s.push_str(&format!("; {detail}"));
            }
            s
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

fn postgres_scope(e: &postgres::Error) -> Scope {
    if e.is_closed() {
        return Scope::Store;
    }
    let Some(state) = e.code() else {
        // No SQLSTATE: an I/O or protocol failure of the connection.
        return if e.as_db_error().is_none() {
            Scope::Store
        } else {
            Scope::Unknown
        };
    };
    let code = state.code();
    match &code[..2] {
        // Data exception, integrity constraint, invalid text representation…
        "22" | "23" => Scope::Message,
        // Connection, resources (disk full), operator intervention, system error, rollback
        // (serialisation, deadlock), lock not available, internal.
        "08" | "53" | "57" | "58" | "40" | "XX" => Scope::Store,
        "55" if code == "55P03" => Scope::Store,
        _ => Scope::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_can_tell_conflicts_from_invalid_requests_and_faults() {
        let k = |e: StoreError| e.kind();
        assert_eq!(
            k(StoreError::Conflict("name in use".into())),
            ErrorKind::Conflict
        );
        assert_eq!(
            k(StoreError::RoleConflict {
                id: "p1".into(),
                existing: "patient",
                wanted: "guardian"
            }),
            ErrorKind::Conflict
        );
        assert_eq!(
            k(StoreError::Invalid("empty id".into())),
            ErrorKind::Validation
        );
        assert_eq!(
            k(StoreError::UnknownPatient("p9".into())),
            ErrorKind::Validation
        );
        assert_eq!(k(StoreError::Internal("join".into())), ErrorKind::Internal);
        assert_eq!(
            k(StoreError::NewerSchema {
                found: 99,
                supported: 13
            }),
            ErrorKind::Unavailable
        );
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert_eq!(k(StoreError::Sqlite(busy)), ErrorKind::Unavailable);
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert_eq!(k(StoreError::Sqlite(constraint)), ErrorKind::Internal);
    }
}
