//! `enroll` and `watchlist`: faces and plates the agents watch for.

use aggregator::query;
use aggregator::store::watchlist::role_name;
use aggregator::watchlist::FaceRequest;
use anyhow::bail;
use sharpeyes_wire::FaceRole;

use super::args::*;

/// `aggregator enroll`.
pub fn enroll(a: EnrollArgs) -> anyhow::Result<()> {
    let EnrollArgs { what } = a;
    match what {
        EnrollCmd::Patient {
            id,
            name,
            photos,
            consent,
            contacts,
            db,
        } => enroll_face(
            &db,
            FaceRequest {
                id,
                role: FaceRole::Patient,
                name,
                photos,
                guardian_of: Vec::new(),
                contacts,
                consent: Some(consent),
            },
        )?,
        EnrollCmd::Guardian {
            id,
            name,
            photos,
            of,
            consent,
            contacts,
            db,
        } => enroll_face(
            &db,
            FaceRequest {
                id,
                role: FaceRole::Guardian,
                name,
                photos,
                guardian_of: of,
                contacts,
                consent,
            },
        )?,
        EnrollCmd::Plate { plate, reason, db } => {
            let mut store = db.open_or_create()?;
            let (plate, version) =
                aggregator::watchlist::enroll_plate(&mut store, &plate, &reason)?;
            println!("plate {plate} enrolled; watchlist version {version}");
        }
    };
    Ok(())
}

/// `aggregator watchlist`.
pub fn watchlist(a: WatchlistArgs) -> anyhow::Result<()> {
    let WatchlistArgs { action, json, db } = a;
    match action {
        None => {
            let listing = db.open()?.watchlist_listing()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listing)?);
            } else {
                print!("{}", query::watchlist_table(&listing));
            }
        }
        Some(WatchlistCmd::Remove { id, db }) => {
            let Some(r) = db.open()?.remove_face(&id)? else {
                bail!("no enrolled face {id:?} (see `aggregator watchlist`)");
            };
            println!("removed {} {}", role_name(r.role), r.id);
            if !r.guardians_removed.is_empty() {
                println!(
                    "removed guardian(s) who accompanied nobody else: {}",
                    r.guardians_removed.join(", ")
                );
            }
            if !r.guardians_unlinked.is_empty() {
                println!(
                    "guardian(s) kept for their other patients: {}",
                    r.guardians_unlinked.join(", ")
                );
            }
            println!("watchlist version {}", r.version);
        }
        Some(WatchlistCmd::RemovePlate { plate, db }) => {
            let Some(version) = db.open()?.remove_plate(&plate)? else {
                bail!("plate {plate:?} is not in the watchlist (see `aggregator watchlist`)");
            };
            println!(
                "removed plate {}; watchlist version {version}",
                sharpeyes_wire::plate::normalize(&plate)
            );
        }
    };
    Ok(())
}
