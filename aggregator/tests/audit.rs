//! The audit log's anchors, on SQLite and PostgreSQL, through the library and the command
//! line: signed checkpoints catch the newest entries cut off (in the database, and with the
//! stored checkpoints cut too, against an outside witness file), a chain recomputed after a
//! change, forged and altered checkpoints; a change and its audit entry commit together or
//! not at all.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use aggregator::store::audit::{AuditEntry, AuditRow, AuditTrust, Checkpoint};
use aggregator::store::{Dialect, Store, StoreError};
use aggregator::witness::{self, AuditKey};

/// A database under test: where it is (for the CLI) and how to change it behind the
/// store's back.
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn arg(&self) -> String {
        match self {
            Db::Sqlite(p) => p.display().to_string(),
            Db::Postgres(u) => u.clone(),
        }
    }

    fn open(&self) -> Store {
        match self {
            Db::Sqlite(p) => Store::open(p).unwrap(),
            Db::Postgres(u) => Store::open_postgres(u).unwrap(),
        }
    }

    /// Runs SQL directly (an administrator with database access, not the aggregator).
    fn sql(&self, sql: &str) {
        match self {
            Db::Sqlite(p) => rusqlite::Connection::open(p)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Db::Postgres(u) => postgres::Client::connect(u, postgres::NoTls)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }
}

fn cli(db: &Db, key: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(args)
        .args(["--db", &db.arg()])
        .arg("--key")
        .arg(key)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What five audited CLI queries leave: five entries.
fn entry(i: i64) -> AuditEntry {
    AuditEntry {
        ts_ms: 1_000 + i,
        who: "cli:ana".into(),
        role: "cli".into(),
        action: "vehicles.trajectory".into(),
        purpose: Some("盗窃案调查".into()),
        case_ref: Some("京公（刑）字〔2026〕42号".into()),
        params: serde_json::json!({"plate": "京A12345"}),
        result_count: Some(i as u64),
        status: 0,
    }
}

/// The sequence, then more: checkpoint, cut the newest entries, verify fails; cut
/// the stored checkpoints too, the witness file still catches it; a rewritten chain and
/// forged checkpoints are caught.
fn cut_log_is_caught(db: &Db, dir: &Path) {
    let s = db.open();
    for i in 0..5 {
        s.audit_append(&entry(i)).unwrap();
    }
    let key_file = dir.join("audit.key");
    let witness_file = dir.join("witness.jsonl");
    // The key is made on first use (0600); the checkpoint goes to the table and the file.
    let out = cli(
        db,
        &key_file,
        &[
            "audit",
            "checkpoint",
            "--out",
            witness_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let c: Checkpoint = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c.entries, 5);
    assert!(c.signature_holds());
    assert_eq!(witness::read(&witness_file).unwrap(), vec![c.clone()]);
    let key = AuditKey::load(&key_file).unwrap();
    assert_eq!(c.public_key, key.public_hex());
    let public = cli(db, &key_file, &["audit", "public-key"]);
    assert_eq!(
        String::from_utf8_lossy(&public.stdout).trim(),
        key.public_hex()
    );
    let ok = cli(db, &key_file, &["audit", "verify"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).starts_with("ok: 5 entries, head ") && text(&ok).contains("1 checkpoints"),
        "{}",
        text(&ok)
    );
    let trust = AuditTrust {
        keys: vec![key.public_hex()],
        witnessed: witness::read(&witness_file).unwrap(),
    };
    assert!(s.audit_verify_with(&trust).unwrap().broken.is_none());

    // DELETE FROM audit_log WHERE seq > max(seq) - 2, behind the aggregator's back.
    db.sql("DELETE FROM audit_log WHERE seq > (SELECT max(seq) - 2 FROM audit_log)");
    assert_eq!(s.audit_len().unwrap(), 3);
    let v = s.audit_verify().unwrap();
    let b = v
        .broken
        .expect("the cut is caught by the stored checkpoint");
    assert_eq!((b.seq, v.entries), (4, 3));
    assert!(b.what.contains("entries 4..=5 were removed"), "{}", b.what);
    let out = cli(db, &key_file, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("were removed"), "{}", text(&out));

    // Cut the stored checkpoints too: the database alone no longer shows it (that is what
    // the outside witness is for) but the witness file does.
    db.sql("DELETE FROM audit_checkpoints");
    let out = cli(db, &key_file, &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no checkpoints"), "{}", text(&out));
    let out = cli(
        db,
        &key_file,
        &[
            "audit",
            "verify",
            "--checkpoints",
            witness_file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("witnessed checkpoint") && text(&out).contains("were removed"),
        "{}",
        text(&out)
    );
    assert!(s.audit_verify_with(&trust).unwrap().broken.is_some());

    // A forger without the key: a checkpoint of the cut log signed with another key is
    // refused (when the audit key is known) ...
    let other = AuditKey::generate(&dir.join("other.key")).unwrap();
    let forged = other.sign(3, &s.audit_entries(&Default::default()).unwrap()[0].hash, 9);
    db.sql(&format!(
        "INSERT INTO audit_checkpoints (entries, head, ts_ms, public_key, signature)
         VALUES (3, '{}', 9, '{}', '{}')",
        forged.head, forged.public_key, forged.signature
    ));
    let out = cli(db, &key_file, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("not by the audit key"),
        "{}",
        text(&out)
    );
    let out = cli(
        db,
        &key_file,
        &["audit", "verify", "--public-key", &other.public_hex()],
    );
    assert!(out.status.success(), "the forger's own key: {}", text(&out));
    // ... and an altered checkpoint's signature does not hold.
    db.sql("UPDATE audit_checkpoints SET entries = 2");
    let out = cli(
        db,
        &key_file,
        &["audit", "verify", "--public-key", &other.public_hex()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("invalid signature"), "{}", text(&out));
    db.sql("DELETE FROM audit_checkpoints");

    // A log rewritten consistently (an entry changed, every later hash recomputed) passes
    // the chain but not the checkpoint.
    for i in 3..5 {
        s.audit_append(&entry(i)).unwrap();
    }
    let c = s.audit_checkpoint(&key, 2_000).unwrap();
    assert_eq!(c.entries, 5);
    let mut rows: Vec<AuditRow> = s.audit_entries(&Default::default()).unwrap();
    rows.reverse();
    let mut prev = rows[1].hash.clone();
    for r in rows.iter_mut().skip(2) {
        if r.seq == 3 {
            r.purpose = Some("looking around".into());
        }
        r.prev_hash = prev.clone();
        r.hash = r.compute_hash();
        prev = r.hash.clone();
        db.sql(&format!(
            "UPDATE audit_log SET purpose = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
            r.purpose.as_deref().unwrap(),
            r.prev_hash,
            r.hash,
            r.seq
        ));
    }
    assert!(
        s.audit_verify_with(&AuditTrust::default())
            .unwrap()
            .broken
            .is_some_and(|b| b.seq == 5 && b.what.contains("rewritten")),
        "{:?}",
        s.audit_verify().unwrap()
    );
    let out = cli(db, &key_file, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rewritten"), "{}", text(&out));
    // Without a key to check them against, checkpoints are not trusted blindly.
    let out = cli(db, &dir.join("no-such.key"), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--public-key"), "{}", text(&out));
}

/// A change and its audit entry: both or neither. An audit log that refuses the append (a
/// trigger an administrator left behind) undoes the change.
fn change_and_entry_commit_together(db: &Db) {
    let mut s = db.open();
    let e = AuditEntry {
        action: "watchlist.plates.add".into(),
        status: 201,
        ..entry(0)
    };
    let v = s
        .audited(&e, |s| s.add_plate("京A12345", "stolen").map(Some))
        .unwrap();
    assert!(v.is_some());
    assert_eq!(s.audit_len().unwrap(), 1);
    assert_eq!(s.watchlist_listing().unwrap().plates.len(), 1);
    // Nothing changed: nothing appended.
    let none = s.audited(&e, |s| s.remove_plate("京B99999")).unwrap();
    assert!(none.is_none());
    assert_eq!(s.audit_len().unwrap(), 1);
    // The audit append fails: the change is rolled back.
    match s.dialect() {
        Dialect::Sqlite => db.sql(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
             BEGIN SELECT RAISE(ABORT, 'audit refused'); END;",
        ),
        Dialect::Postgres => db.sql(
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$
             BEGIN RAISE EXCEPTION 'audit refused'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log
             FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
        ),
    }
    let r = s.audited(&e, |s| s.remove_plate("京A12345"));
    assert!(r.is_err(), "{r:?}");
    assert_eq!(
        s.watchlist_listing().unwrap().plates.len(),
        1,
        "the removal was undone with its audit entry"
    );
    let r = s.audited(&e, |s| {
        Ok::<_, StoreError>(s.revoke_token("nobody", 5)?.then_some(()))
    });
    assert!(matches!(r, Ok(None)), "nothing to revoke, nothing to audit");
    db.sql(match s.dialect() {
        Dialect::Sqlite => "DROP TRIGGER refuse_audit",
        Dialect::Postgres => "DROP TRIGGER refuse_audit ON audit_log",
    });
    let r = s.audited(&e, |s| s.remove_plate("京A12345")).unwrap();
    assert!(r.is_some());
    assert!(s.watchlist_listing().unwrap().plates.is_empty());
    assert_eq!(s.audit_len().unwrap(), 2);
    assert!(s.audit_verify().unwrap().broken.is_none());
}

#[test]
fn cutting_the_log_is_caught_sqlite_cli_and_library() {
    let dir = tempfile::tempdir().unwrap();
    cut_log_is_caught(&Db::Sqlite(dir.path().join("a.db")), dir.path());
}

#[test]
fn cutting_the_log_is_caught_postgres_cli_and_library() {
    let pg = common::pg::TempPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    cut_log_is_caught(&Db::Postgres(pg.database("audit")), dir.path());
}

#[test]
fn a_change_and_its_audit_entry_commit_together_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    change_and_entry_commit_together(&Db::Sqlite(dir.path().join("a.db")));
}

#[test]
fn a_change_and_its_audit_entry_commit_together_postgres() {
    let pg = common::pg::TempPostgres::start();
    change_and_entry_commit_together(&Db::Postgres(pg.database("audit")));
}

#[test]
fn keygen_refuses_to_replace_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sqlite(dir.path().join("a.db"));
    drop(db.open());
    let key = dir.path().join("k");
    let out = cli(&db, &key, &["audit", "keygen"]);
    assert!(out.status.success(), "{}", text(&out));
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(public, AuditKey::load(&key).unwrap().public_hex());
    let again = cli(&db, &key, &["audit", "keygen"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("exists"), "{}", text(&again));
    assert_eq!(AuditKey::load(&key).unwrap().public_hex(), public);
}
