//! The watchlists in the store: enrolled faces (patients and their guardians), wanted plates,
//! and the watchlist version the aggregator publishes them under.
//!
//! Invariants:
//! - `watch_version` holds at most one row; every change of `watch_faces` or `watch_plates`
//!   raises its version by one in the change's own transaction, so a reader sees a version
//!   together with exactly that version's entries. The version never goes down; it is 0 before
//!   the first change. An operation that changes nothing (replacing a plate's reason with the
//!   same reason, removing what is not there) leaves it alone.
//! - Face ids are one namespace: an id is a patient or a guardian, never both; replacing an
//!   entry keeps its role (remove it first to change the role) and its `enrolled_ms`.
//! - Every patient has a non-empty consent reference and no `guardian_of`; every guardian has
//!   a non-empty `guardian_of` whose ids all name enrolled patients (checked inside the
//!   enrollment's transaction).
//! - A guardian is enrolled only to accompany patients: removing a patient removes its id from
//!   every guardian's `guardian_of`, and a guardian left accompanying nobody is removed with
//!   it (a real delete, like every deletion here: its embeddings and contacts are gone).
//! - Every face has at least one embedding, one per accepted photo, all of one length.
//! - Plates are stored normalised (`sharpeyes_wire::plate::normalize`); the caller checks
//!   their shape.
//!
//! Contacts and consent references stay in the store; the published [`Watchlists`] carry
//! only ids, labels, roles, guardian links and embeddings.

use serde::{Deserialize, Serialize};
use sharpeyes_wire::{FaceEntry, FaceRole, PlateEntry, QEmbedding, Watchlists};

use super::{Db, Store, StoreError};
use crate::args;

/// Longest face id, characters.
pub const MAX_ID_CHARS: usize = 64;

/// Someone to call about an enrolled person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Who.
    pub name: String,
    /// How to reach them (phone number as written).
    pub phone: String,
}

/// A face to enroll, or to replace the entry with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceEnrollment {
    /// Enrollment id (1..=64 characters, no whitespace or `/`).
    pub id: String,
    /// Patient or guardian.
    pub role: FaceRole,
    /// Display name (the label the agents show in alerts).
    pub name: String,
    /// Guardians: the patients they accompany (enrolled patients' ids). Patients: empty.
    pub guardian_of: Vec<String>,
    /// Whom to call.
    pub contacts: Vec<Contact>,
    /// Reference of the consent record (required for patients).
    pub consent: Option<String>,
    /// One embedding per accepted photo.
    pub embeddings: Vec<QEmbedding>,
}

/// An enrolled face as listed (no embeddings).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceRow {
    /// Enrollment id.
    pub id: String,
    /// `patient` or `guardian`.
    pub role: FaceRole,
    /// Display name.
    pub name: String,
    /// Guardians: the patients they accompany.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guardian_of: Vec<String>,
    /// Patients: their enrolled guardians.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guardians: Vec<String>,
    /// Whom to call.
    pub contacts: Vec<Contact>,
    /// Consent record reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// Photos accepted (one embedding each).
    pub photos: u32,
    /// First enrolled, UTC ms.
    pub enrolled_ms: i64,
    /// Last replaced or changed, UTC ms.
    pub updated_ms: i64,
}

/// A wanted plate as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlateRow {
    /// Normalised plate.
    pub plate: String,
    /// Why it is wanted.
    pub reason: String,
    /// When it was added (or its reason last changed), UTC ms.
    pub added_ms: i64,
}

/// The whole watchlist as listed: version, faces, plates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchlistListing {
    /// Current version (0: never changed).
    pub version: u64,
    /// When it last changed, UTC ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<i64>,
    /// Patients, then guardians, each by id.
    pub faces: Vec<FaceRow>,
    /// Plates, by plate.
    pub plates: Vec<PlateRow>,
}

/// What removing a face did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemovedFace {
    /// The removed id.
    pub id: String,
    /// Its role.
    pub role: FaceRole,
    /// Guardians removed with a patient because they accompanied nobody else.
    pub guardians_removed: Vec<String>,
    /// Guardians that stay (they accompany other patients) but no longer this one.
    pub guardians_unlinked: Vec<String>,
    /// The new watchlist version.
    pub version: u64,
}

/// `patient` / `guardian`.
pub fn role_name(role: FaceRole) -> &'static str {
    match role {
        FaceRole::Patient => "patient",
        FaceRole::Guardian => "guardian",
    }
}

fn role_from(name: &str) -> Option<FaceRole> {
    match name {
        "patient" => Some(FaceRole::Patient),
        "guardian" => Some(FaceRole::Guardian),
        _ => None,
    }
}

/// Checks an enrollment id: 1..=64 characters, no whitespace, control characters or `/`.
pub fn check_id(id: &str) -> Result<(), StoreError> {
    let n = id.chars().count();
    if n == 0 || n > MAX_ID_CHARS {
        return Err(StoreError::Invalid(format!(
            "id {id:?}: must have 1 to {MAX_ID_CHARS} characters"
        )));
    }
    if id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(StoreError::Invalid(format!(
            "id {id:?}: no spaces, control characters or '/'"
        )));
    }
    Ok(())
}

fn json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(format!("encoding: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(
    id: &str,
    what: &str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        id: id.to_string(),
        reason: format!("{what}: {e}"),
    })
}

/// Raises the version by one; the new version.
fn bump(db: &mut Db, now: i64) -> Result<u64, StoreError> {
    let r = db
        .one(
            "INSERT INTO watch_version (id, version, updated_ms) VALUES (1, 1, ?1)
             ON CONFLICT (id) DO UPDATE SET version = watch_version.version + 1,
                updated_ms = excluded.updated_ms
             RETURNING version",
            args![now],
        )?
        .ok_or_else(|| StoreError::Internal("watch_version: no row returned".into()))?;
    r.get(0)
}

fn version_of(db: &mut Db) -> Result<(u64, Option<i64>), StoreError> {
    match db.one(
        "SELECT version, updated_ms FROM watch_version WHERE id = 1",
        &[],
    )? {
        Some(r) => Ok((r.get(0)?, Some(r.get(1)?))),
        None => Ok((0, None)),
    }
}

fn role_of(db: &mut Db, id: &str) -> Result<Option<FaceRole>, StoreError> {
    let role: Option<String> = db
        .one("SELECT role FROM watch_faces WHERE id = ?", args![id])?
        .map(|r| r.get(0))
        .transpose()?;
    match role {
        None => Ok(None),
        Some(r) => role_from(&r).map(Some).ok_or_else(|| StoreError::Corrupt {
            id: id.to_string(),
            reason: format!("role {r:?}"),
        }),
    }
}

/// The guardians (id, guardian_of) whose list names `patient`.
fn guardians_of(db: &mut Db, patient: &str) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let rows = db.query(
        "SELECT id, guardian_of FROM watch_faces WHERE role = 'guardian' ORDER BY id",
        &[],
    )?;
    let mut out = Vec::new();
    for r in rows {
        let (id, of): (String, String) = (r.get(0)?, r.get(1)?);
        let of: Vec<String> = from_json(&id, "guardian_of", &of)?;
        if of.iter().any(|p| p == patient) {
            out.push((id, of));
        }
    }
    Ok(out)
}

/// Checks what an enrollment says, all but its embeddings.
fn check_fields(e: &FaceEnrollment) -> Result<(), StoreError> {
    check_id(&e.id)?;
    if e.name.trim().is_empty() {
        return Err(StoreError::Invalid(format!("{}: the name is empty", e.id)));
    }
    for c in &e.contacts {
        if c.name.trim().is_empty() || c.phone.trim().is_empty() {
            return Err(StoreError::Invalid(format!(
                "{}: a contact needs a name and a phone number",
                e.id
            )));
        }
    }
    match e.role {
        FaceRole::Patient => {
            if e.consent.as_deref().is_none_or(|c| c.trim().is_empty()) {
                return Err(StoreError::Invalid(format!(
                    "patient {}: a consent reference is required",
                    e.id
                )));
            }
            if !e.guardian_of.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "patient {}: only guardians accompany patients",
                    e.id
                )));
            }
        }
        FaceRole::Guardian => {
            if e.guardian_of.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "guardian {}: name at least one patient it accompanies",
                    e.id
                )));
            }
        }
    }
    Ok(())
}

/// Checks an enrollment's embeddings: at least one, all of one non-zero length.
fn check_embeddings(e: &FaceEnrollment) -> Result<(), StoreError> {
    let Some(first) = e.embeddings.first() else {
        return Err(StoreError::Invalid(format!(
            "{}: no embeddings (at least one photo is needed)",
            e.id
        )));
    };
    if first.is_empty() || e.embeddings.iter().any(|x| x.len() != first.len()) {
        return Err(StoreError::Invalid(format!(
            "{}: embeddings must all have the same, non-zero length",
            e.id
        )));
    }
    Ok(())
}

/// Checks an enrollment against what is enrolled: the id keeps its role, and every
/// `guardian_of` names an enrolled patient.
fn check_refs(db: &mut Db, e: &FaceEnrollment) -> Result<(), StoreError> {
    if let Some(existing) = role_of(db, &e.id)?
        && existing != e.role
    {
        return Err(StoreError::RoleConflict {
            id: e.id.clone(),
            existing: role_name(existing),
            wanted: role_name(e.role),
        });
    }
    for p in &e.guardian_of {
        if role_of(db, p)? != Some(FaceRole::Patient) {
            return Err(StoreError::UnknownPatient(p.clone()));
        }
    }
    Ok(())
}

impl Store {
    /// The current watchlist version (0 before the first change).
    pub fn watchlist_version(&self) -> Result<u64, StoreError> {
        Ok(version_of(&mut self.db())?.0)
    }

    /// The role an id is enrolled in, if it is.
    pub fn face_role(&self, id: &str) -> Result<Option<FaceRole>, StoreError> {
        role_of(&mut self.db(), id)
    }

    /// Checks everything about an enrollment but its embeddings, against what is enrolled
    /// now (before the photos are embedded; [`Store::enroll_face`] checks again).
    pub fn check_face(&self, e: &FaceEnrollment) -> Result<(), StoreError> {
        check_fields(e)?;
        check_refs(&mut self.db(), e)
    }

    /// Enrolls a face, or replaces the entry with its id (same role); the new version.
    pub fn enroll_face(&mut self, e: &FaceEnrollment) -> Result<u64, StoreError> {
        check_fields(e)?;
        check_embeddings(e)?;
        let mut guardian_of: Vec<String> = Vec::with_capacity(e.guardian_of.len());
        for p in &e.guardian_of {
            if !guardian_of.contains(p) {
                guardian_of.push(p.clone());
            }
        }
        self.tx(|db| {
            check_refs(db, e)?;
            let now = sharpeyes_wire::now_ms();
            db.execute(
            "INSERT INTO watch_faces (id, role, name, guardian_of, contacts, consent, embeddings,
                                      photos, enrolled_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                guardian_of = excluded.guardian_of, contacts = excluded.contacts,
                consent = excluded.consent, embeddings = excluded.embeddings,
                photos = excluded.photos, updated_ms = excluded.updated_ms",
            args![
                e.id,
                role_name(e.role),
                e.name.trim(),
                json(&guardian_of)?,
                json(&e.contacts)?,
                e.consent.as_deref().map(str::trim),
                json(&e.embeddings)?,
                e.embeddings.len(),
                now
            ],
        )?;
            bump(db, now)
        })
    }

    /// Removes a face; None if there is no such id. Removing a patient unlinks it from its
    /// guardians and removes those left accompanying nobody.
    pub fn remove_face(&mut self, id: &str) -> Result<Option<RemovedFace>, StoreError> {
        self.tx(|db| {
            let Some(role) = role_of(db, id)? else {
                return Ok(None);
            };
            db.execute("DELETE FROM watch_faces WHERE id = ?", args![id])?;
            let now = sharpeyes_wire::now_ms();
            let (mut removed, mut unlinked) = (Vec::new(), Vec::new());
            if role == FaceRole::Patient {
                for (g, mut of) in guardians_of(db, id)? {
                    of.retain(|p| p != id);
                    if of.is_empty() {
                        db.execute("DELETE FROM watch_faces WHERE id = ?", args![g])?;
                        removed.push(g);
                    } else {
                        db.execute(
                            "UPDATE watch_faces SET guardian_of = ?, updated_ms = ? WHERE id = ?",
                            args![json(&of)?, now, g],
                        )?;
                        unlinked.push(g);
                    }
                }
            }
            let version = bump(db, now)?;
            Ok(Some(RemovedFace {
                id: id.to_string(),
                role,
                guardians_removed: removed,
                guardians_unlinked: unlinked,
                version,
            }))
        })
    }

    /// Adds a wanted plate (normalised here), or changes its reason; the version (unchanged
    /// when the plate was listed with this reason already).
    pub fn add_plate(&mut self, plate: &str, reason: &str) -> Result<u64, StoreError> {
        let plate = sharpeyes_wire::plate::normalize(plate);
        let reason = reason.trim();
        if plate.is_empty() {
            return Err(StoreError::Invalid("the plate is empty".into()));
        }
        if reason.is_empty() {
            return Err(StoreError::Invalid(format!(
                "plate {plate}: give a reason it is wanted"
            )));
        }
        self.tx(|db| {
            let now = sharpeyes_wire::now_ms();
            let changed = db.execute(
                "INSERT INTO watch_plates (plate, reason, added_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (plate) DO UPDATE SET reason = excluded.reason, added_ms = excluded.added_ms
                 WHERE watch_plates.reason <> excluded.reason",
                args![plate, reason, now],
            )?;
            if changed > 0 {
                bump(db, now)
            } else {
                Ok(version_of(db)?.0)
            }
        })
    }

    /// Removes a wanted plate (normalised here); the new version, None if it was not listed.
    pub fn remove_plate(&mut self, plate: &str) -> Result<Option<u64>, StoreError> {
        let plate = sharpeyes_wire::plate::normalize(plate);
        self.tx(|db| {
            if db.execute("DELETE FROM watch_plates WHERE plate = ?", args![plate])? == 0 {
                return Ok(None);
            }
            Ok(Some(bump(db, sharpeyes_wire::now_ms())?))
        })
    }

    /// The watchlists as published to the agents (one consistent snapshot).
    pub fn watchlists(&self) -> Result<Watchlists, StoreError> {
        self.tx(|db| {
            let (version, _) = version_of(db)?;
            let mut faces = Vec::new();
            for r in db.query(
                "SELECT id, role, name, guardian_of, embeddings FROM watch_faces
                 ORDER BY role = 'guardian', id",
                &[],
            )? {
                let (id, role, label, of, emb): (String, String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
                let role = role_from(&role).ok_or_else(|| StoreError::Corrupt {
                    id: id.clone(),
                    reason: format!("role {role:?}"),
                })?;
                faces.push(FaceEntry {
                    guardian_of: from_json(&id, "guardian_of", &of)?,
                    embeddings: from_json(&id, "embeddings", &emb)?,
                    id,
                    label,
                    role,
                });
            }
            let plates = db
                .query("SELECT plate, reason FROM watch_plates ORDER BY plate", &[])?
                .iter()
                .map(|r| {
                    Ok(PlateEntry {
                        plate: r.get(0)?,
                        reason: r.get(1)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(Watchlists {
                version,
                faces,
                plates,
            })
        })
    }

    /// The watchlist for display: entries with contacts and consent, no embeddings.
    pub fn watchlist_listing(&self) -> Result<WatchlistListing, StoreError> {
        self.tx(|db| {
            let (version, updated_ms) = version_of(db)?;
            let mut faces: Vec<FaceRow> = Vec::new();
            for r in db.query(
                "SELECT id, role, name, guardian_of, contacts, consent, photos, enrolled_ms,
                        updated_ms
                 FROM watch_faces ORDER BY role = 'guardian', id",
                &[],
            )? {
                let (id, role, of, contacts): (String, String, String, String) =
                    (r.get(0)?, r.get(1)?, r.get(3)?, r.get(4)?);
                let role = role_from(&role).ok_or_else(|| StoreError::Corrupt {
                    id: id.clone(),
                    reason: format!("role {role:?}"),
                })?;
                let photos: i64 = r.get(6)?;
                faces.push(FaceRow {
                    guardian_of: from_json(&id, "guardian_of", &of)?,
                    contacts: from_json(&id, "contacts", &contacts)?,
                    guardians: Vec::new(),
                    id,
                    role,
                    name: r.get(2)?,
                    consent: r.get(5)?,
                    photos: photos.max(0) as u32,
                    enrolled_ms: r.get(7)?,
                    updated_ms: r.get(8)?,
                });
            }
            let links: Vec<(String, String)> = faces
                .iter()
                .flat_map(|g| g.guardian_of.iter().map(|p| (p.clone(), g.id.clone())))
                .collect();
            for (patient, guardian) in links {
                if let Some(p) = faces.iter_mut().find(|f| f.id == patient) {
                    p.guardians.push(guardian);
                }
            }
            let plates = db
                .query(
                    "SELECT plate, reason, added_ms FROM watch_plates ORDER BY plate",
                    &[],
                )?
                .iter()
                .map(|r| {
                    Ok(PlateRow {
                        plate: r.get(0)?,
                        reason: r.get(1)?,
                        added_ms: r.get(2)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
            Ok(WatchlistListing {
                version,
                updated_ms,
                faces,
                plates,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emb(seed: f32) -> QEmbedding {
        QEmbedding::quantize(
            &(0..128)
                .map(|i| (i as f32 + seed).sin())
                .collect::<Vec<_>>(),
        )
    }

    fn patient(id: &str) -> FaceEnrollment {
        FaceEnrollment {
            id: id.into(),
            role: FaceRole::Patient,
            name: format!("Patient {id}"),
            guardian_of: vec![],
            contacts: vec![Contact {
                name: "daughter".into(),
                phone: "+86 138 0000 0000".into(),
            }],
            consent: Some("CONSENT-2026-001".into()),
            embeddings: vec![emb(1.0), emb(2.0)],
        }
    }

    fn guardian(id: &str, of: &[&str]) -> FaceEnrollment {
        FaceEnrollment {
            id: id.into(),
            role: FaceRole::Guardian,
            name: format!("Guardian {id}"),
            guardian_of: of.iter().map(|s| s.to_string()).collect(),
            contacts: vec![],
            consent: None,
            embeddings: vec![emb(3.0)],
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("w.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn every_change_bumps_the_version_and_publishes_the_entries() {
        let (_d, mut s) = store();
        assert_eq!(s.watchlist_version().unwrap(), 0);
        assert_eq!(s.watchlists().unwrap(), Watchlists::default());
        assert_eq!(s.enroll_face(&patient("P1")).unwrap(), 1);
        assert_eq!(s.enroll_face(&guardian("G1", &["P1", "P1"])).unwrap(), 2);
        assert_eq!(s.add_plate("京a·12345", "stolen").unwrap(), 3);
        // The same plate and reason again changes nothing.
        assert_eq!(s.add_plate("京A12345", "stolen").unwrap(), 3);
        assert_eq!(s.add_plate("京A12345", "stolen car").unwrap(), 4);
        let w = s.watchlists().unwrap();
        assert_eq!(w.version, 4);
        assert_eq!(
            w.faces
                .iter()
                .map(|f| (
                    f.id.as_str(),
                    f.role,
                    f.embeddings.len(),
                    f.guardian_of.clone()
                ))
                .collect::<Vec<_>>(),
            vec![
                ("P1", FaceRole::Patient, 2, vec![]),
                ("G1", FaceRole::Guardian, 1, vec!["P1".to_string()]),
            ]
        );
        assert_eq!(w.faces[0].embeddings[1], emb(2.0));
        assert_eq!(w.faces[0].label, "Patient P1");
        assert_eq!(
            w.plates,
            vec![PlateEntry {
                plate: "京A12345".into(),
                reason: "stolen car".into()
            }]
        );
        let l = s.watchlist_listing().unwrap();
        assert_eq!(l.version, 4);
        assert_eq!(l.faces[0].guardians, vec!["G1".to_string()]);
        assert_eq!(l.faces[0].photos, 2);
        assert_eq!(l.faces[0].consent.as_deref(), Some("CONSENT-2026-001"));
        assert_eq!(l.faces[0].contacts[0].name, "daughter");
        assert_eq!(l.plates[0].plate, "京A12345");
        assert_eq!(s.remove_plate("京A 12345").unwrap(), Some(5));
        assert_eq!(s.remove_plate("京A12345").unwrap(), None);
        assert_eq!(s.watchlist_version().unwrap(), 5);
    }

    #[test]
    fn replacing_keeps_role_and_enrollment_time() {
        let (_d, mut s) = store();
        s.enroll_face(&patient("P1")).unwrap();
        let first = s.watchlist_listing().unwrap().faces[0].enrolled_ms;
        let mut again = patient("P1");
        again.embeddings = vec![emb(5.0)];
        again.name = "Renamed".into();
        assert_eq!(s.enroll_face(&again).unwrap(), 2);
        let l = s.watchlist_listing().unwrap();
        assert_eq!(l.faces.len(), 1);
        assert_eq!(
            (l.faces[0].name.as_str(), l.faces[0].photos),
            ("Renamed", 1)
        );
        assert_eq!(l.faces[0].enrolled_ms, first);
        let e = s.enroll_face(&guardian("P1", &["P1"])).unwrap_err();
        assert!(matches!(e, StoreError::RoleConflict { .. }), "{e}");
        assert_eq!(s.watchlist_version().unwrap(), 2);
    }

    #[test]
    fn enrollment_rules_are_enforced() {
        let (_d, mut s) = store();
        let e = s.enroll_face(&guardian("G1", &["P9"])).unwrap_err();
        assert!(
            matches!(&e, StoreError::UnknownPatient(p) if p == "P9"),
            "{e}"
        );
        let mut p = patient("P1");
        p.consent = Some("  ".into());
        assert!(
            s.enroll_face(&p)
                .unwrap_err()
                .to_string()
                .contains("consent")
        );
        let mut p = patient("P1");
        p.embeddings.clear();
        assert!(s.enroll_face(&p).unwrap_err().to_string().contains("photo"));
        let mut p = patient("P1");
        p.embeddings.push(QEmbedding::quantize(&[1.0, 2.0]));
        assert!(
            s.enroll_face(&p)
                .unwrap_err()
                .to_string()
                .contains("length")
        );
        assert!(s.enroll_face(&patient("a b")).is_err());
        assert!(s.enroll_face(&patient("")).is_err());
        assert!(s.enroll_face(&patient(&"x".repeat(65))).is_err());
        assert!(s.enroll_face(&guardian("G1", &[])).is_err());
        // A guardian's id is not a patient.
        s.enroll_face(&patient("P1")).unwrap();
        s.enroll_face(&guardian("G1", &["P1"])).unwrap();
        let e = s.enroll_face(&guardian("G2", &["G1"])).unwrap_err();
        assert!(matches!(e, StoreError::UnknownPatient(_)), "{e}");
        assert!(s.add_plate("京A12345", " ").is_err());
        assert!(s.add_plate(" · ", "x").is_err());
        assert_eq!(s.watchlist_version().unwrap(), 2, "refusals change nothing");
    }

    #[test]
    fn removing_a_patient_unlinks_and_drops_its_lone_guardians() {
        let (_d, mut s) = store();
        s.enroll_face(&patient("P1")).unwrap();
        s.enroll_face(&patient("P2")).unwrap();
        s.enroll_face(&guardian("G1", &["P1"])).unwrap();
        s.enroll_face(&guardian("G2", &["P1", "P2"])).unwrap();
        s.enroll_face(&guardian("G3", &["P2"])).unwrap();
        let r = s.remove_face("P1").unwrap().unwrap();
        assert_eq!(r.role, FaceRole::Patient);
        assert_eq!(r.guardians_removed, vec!["G1".to_string()]);
        assert_eq!(r.guardians_unlinked, vec!["G2".to_string()]);
        assert_eq!(r.version, 6);
        let w = s.watchlists().unwrap();
        let ids: Vec<_> = w.faces.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, vec!["P2", "G2", "G3"]);
        assert_eq!(w.faces[1].guardian_of, vec!["P2".to_string()]);
        // Really gone: the row and its embeddings.
        let n = s
            .count(
                "SELECT count(*) FROM watch_faces WHERE id IN ('P1', 'G1')",
                &[],
            )
            .unwrap();
        assert_eq!(n, 0);
        let r = s.remove_face("G3").unwrap().unwrap();
        assert!(r.guardians_removed.is_empty());
        assert_eq!(r.version, 7);
        assert_eq!(s.remove_face("G3").unwrap(), None);
        assert_eq!(s.watchlist_version().unwrap(), 7);
    }

    #[test]
    fn a_reader_sees_what_the_writer_committed() {
        let (d, mut s) = store();
        let r = Store::open_read_only(&d.path().join("w.db")).unwrap();
        assert_eq!(r.watchlist_version().unwrap(), 0);
        s.enroll_face(&patient("P1")).unwrap();
        assert_eq!(r.watchlists().unwrap().version, 1);
        assert_eq!(r.watchlists().unwrap().faces.len(), 1);
        assert!(r.face_role("P1").unwrap() == Some(FaceRole::Patient));
    }

    #[test]
    fn a_version_4_database_gains_the_watchlist_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            // (Tracks' best shots came with version 9.)
            let v4 = super::super::SCHEMA
                .split("CREATE TABLE IF NOT EXISTS watch_faces")
                .next()
                .unwrap()
                .replace("    evidence_crop    TEXT,\n", "");
            c.execute_batch(&v4).unwrap();
            c.pragma_update(None, "user_version", 4).unwrap();
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.enroll_face(&patient("P1")).unwrap(), 1);
    }
}
