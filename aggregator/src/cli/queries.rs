//! `trajectory`, `links`, `sightings`, `search-face`, `evidence`, `tracks`: the analysts'
//! queries (through the service layer, audited like the API's) and the raw track listing.

use aggregator::facesearch;
use aggregator::query;
use aggregator::service::{self, LinksOf};
use aggregator::store::{Area, Page, TrackFilter};
use aggregator::watchlist::Enroller;
use anyhow::{Context, bail};

use super::args::*;

/// `aggregator trajectory`.
pub fn trajectory(a: TrajectoryArgs) -> anyhow::Result<()> {
    let TrajectoryArgs {
        plate,
        fuzzy,
        person,
        out,
        why,
        db,
    } = a;
    let why = why.checked()?;
    let store = db.open()?;
    let all = Page::default();
    match (plate, person) {
        (Some(plate), _) => {
            let t = service::vehicle_trajectory(&store, &plate, fuzzy, None, &all)?
                .audited_cli(&store, &why)?;
            let head = if t.vehicles.is_empty() {
                format!("no vehicle with plate {}\n", t.plate)
            } else {
                format!("{}\n", query::vehicles_lines(&t.vehicles, &t.flags))
            };
            print_sightings(&out, &head, serde_json::json!(t), &t.sightings, &db)
        }
        (None, Some(person)) => {
            let t = service::person_trajectory(&store, person, None, &all)?
                .audited_cli(&store, &why)?;
            let head = match t.resolved {
                None => format!("no person P-{person}\n"),
                Some(p) if p != person => format!("P-{person} was merged into P-{p}\n\n"),
                Some(_) => String::new(),
            };
            print_sightings(&out, &head, serde_json::json!(t), &t.sightings, &db)
        }
        (None, None) => bail!("give --plate or --person"),
    }
}

/// `aggregator links`.
pub fn links(a: LinksArgs) -> anyhow::Result<()> {
    let LinksArgs {
        person,
        plate,
        json,
        why,
        db,
    } = a;
    let why = why.checked()?;
    let store = db.open()?;
    let of = match (person, plate) {
        (Some(p), _) => LinksOf::Person(p),
        (None, Some(plate)) => LinksOf::Plate(plate),
        (None, None) => bail!("give --person or --plate"),
    };
    let rows = service::links(&store, &of)?.audited_cli(&store, &why)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", query::links_table(&rows));
    }
    Ok(())
}

/// `aggregator sightings`.
pub fn sightings(a: SightingsArgs) -> anyhow::Result<()> {
    let SightingsArgs {
        grid,
        bbox,
        from,
        to,
        out,
        why,
        db,
    } = a;
    let why = why.checked()?;
    let now = sharpeyes_wire::now_ms();
    let from_ms = query::parse_time(&from, now).context("--from")?;
    let to_ms = query::parse_time(&to, now).context("--to")?;
    if from_ms > to_ms {
        bail!("--from is after --to");
    }
    let area = match (grid, bbox) {
        (Some(g), _) => Area::Grid(g),
        (None, Some([lat1, lon1, lat2, lon2])) => Area::BBox([lat1, lon1], [lat2, lon2]),
        (None, None) => bail!("give --grid or --bbox"),
    };
    let store = db.open()?;
    let s = service::sightings(&store, &area, from_ms, to_ms, &Page::default())?
        .audited_cli(&store, &why)?;
    let head = format!("{} to {}\n\n", query::utc(from_ms), query::utc(to_ms));
    print_sightings(&out, &head, serde_json::json!(s), &s.sightings, &db)
}

/// `aggregator search-face`.
pub fn search_face(a: SearchFaceArgs) -> anyhow::Result<()> {
    let SearchFaceArgs {
        photo,
        top,
        min_similarity,
        from,
        to,
        json,
        why,
        db,
    } = a;
    let why = why.checked()?;
    if let Some(m) = min_similarity
        && !(-1.0..=1.0).contains(&m)
    {
        bail!("--min-similarity {m} is outside -1..=1");
    }
    let window = match from {
        Some(from) => {
            let now = sharpeyes_wire::now_ms();
            let from_ms = query::parse_time(&from, now).context("--from")?;
            let to_ms = query::parse_time(to.as_deref().unwrap_or("0s"), now).context("--to")?;
            if from_ms > to_ms {
                bail!("--from is after --to");
            }
            Some((from_ms, to_ms))
        }
        None => None,
    };
    let cfg = load_config(db.config.as_ref())?;
    let store = db.open()?;
    let embedding = Enroller::new(&cfg.watchlist)
        .embed_photo(&photo)
        .context("cannot search with this photo")?;
    let model = cfg.fusion.persons.embedding_model.clone();
    let threshold = cfg.watchlist.face_embedder.match_threshold;
    let q = service::FaceQuery {
        embedding,
        model: model.clone(),
        top: usize::from(top),
        min_similarity: min_similarity.unwrap_or(threshold),
        threshold,
        window,
        photo: Some(photo.display().to_string()),
    };
    // The running aggregator's snapshot, brought up to date from the store (read only);
    // without a usable one, every face is read from the store for this search.
    let snap = cfg.face_search.snapshot_file(&db.location()?);
    let loaded = facesearch::live::load(&store, &snap, &model, q.embedding.len())?;
    let (what, note) = match &loaded.how {
        facesearch::live::LoadHow::Snapshot => (
            "snapshot",
            format!(
                "index: snapshot {} ({:.0} ms) brought up to date from the store ({:.0} ms: {} added, {} removed, {} moved)",
                snap.display(),
                loaded.load_ms,
                loaded.catch_up_ms,
                loaded.caught_up.added,
                loaded.caught_up.removed,
                loaded.caught_up.moved
            ),
        ),
        facesearch::live::LoadHow::Rebuilt { .. } => (
            "store",
            format!(
                "index: no usable snapshot ({}); every face read from the store in {:.0} ms",
                loaded.why.as_deref().unwrap_or("none"),
                loaded.load_ms
            ),
        ),
    };
    let threads = cfg.face_search.scan_threads();
    let source = facesearch::FaceSource::Loaded(
        &loaded.index,
        what,
        loaded.load_ms + loaded.catch_up_ms,
        threads,
    );
    let report = service::face_search(&store, source, &q)?.audited_cli(&store, &why)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{note}");
        println!(
            "{} face(s) of {} person(s) ({model}, {}-d): searched in {:.1} ms",
            report.faces, report.persons, report.dim, report.search_ms
        );
        println!(
            "a match: similarity >= {:.3} (watchlist.face_embedder.match_threshold); listed: >= {:.3}\n",
            report.threshold, report.min_similarity
        );
        print!("{}", query::face_search_table(&report.results));
    }
    Ok(())
}

/// `aggregator evidence`.
pub fn evidence(a: EvidenceArgs) -> anyhow::Result<()> {
    let EvidenceArgs {
        sha256,
        out,
        why,
        db,
    } = a;
    let why = why.checked()?;
    let store = db.open()?;
    // Audited whether found or not, as the API's route is.
    let Some(e) = service::evidence(&store, &sha256)?.audited_cli(&store, &why)? else {
        bail!("no evidence image {sha256}");
    };
    std::fs::write(&out, &e.bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{} ({}, {} bytes, kind {}, stored {})",
        out.display(),
        e.mime,
        e.bytes.len(),
        e.kind,
        query::utc(e.created_ms)
    );
    Ok(())
}

/// `aggregator tracks`.
pub fn tracks(a: TracksArgs) -> anyhow::Result<()> {
    let TracksArgs {
        camera,
        since,
        limit,
        json,
        db,
    } = a;
    let store = db.open()?;
    let since_ms = since.map(|d| sharpeyes_wire::now_ms() - d.as_millis() as i64);
    let rows = store.tracks(&TrackFilter {
        camera,
        since_ms,
        limit,
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", query::tracks_table(&rows));
    }

    Ok(())
}
