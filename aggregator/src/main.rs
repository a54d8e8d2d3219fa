use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use aggregator::config::{AggregatorConfig, ConfigFile, DEFAULT_CONFIG_TOML};
use aggregator::store::watchlist::role_name;
use aggregator::store::{AlertFilter, Area, Contact, Location, Store, TrackFilter};
use aggregator::watchlist::{Enroller, FaceRequest};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sharpeyes_wire::{Codec, FaceRole};
use tokio_util::sync::CancellationToken;

/// Sharp Eyes aggregator: embedded MQTT broker, store, queries.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the aggregator until Ctrl-C / SIGTERM.
    Run {
        /// Configuration file (TOML); default: built-in defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the commented default configuration.
    PrintDefaultConfig,
    /// Apply the retention policy of [store] now (bounded chunks until nothing expired is
    /// left), or with --dry-run only count what it would delete.
    Retention {
        /// Count what would be deleted (rows per kind, PostgreSQL partitions); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep sightings, tracks, messages this many days instead of store.retention_days.
        #[arg(long)]
        days: Option<u32>,
        /// Keep alerts this many days instead of store.alert_retention_days.
        #[arg(long)]
        alert_days: Option<u32>,
        /// Keep unreferenced best-shot images (evidence kind `sighting`) this many days
        /// instead of store.evidence_sighting_retention_days.
        #[arg(long)]
        evidence_sighting_days: Option<u32>,
        /// Keep unreferenced alert images (evidence kind `alert`) this many days instead of
        /// store.evidence_alert_retention_days.
        #[arg(long)]
        evidence_alert_days: Option<u32>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        /// Configuration file (TOML).
        config: PathBuf,
    },
    /// List stored tracks, oldest first.
    Tracks {
        /// Only this camera.
        #[arg(long)]
        camera: Option<String>,
        /// Only tracks seen within this long before now (e.g. 90s, 10m, 2h, 1d).
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// At most this many (the newest).
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List alerts (newest first), acknowledge one, or save its evidence.
    #[command(args_conflicts_with_subcommands = true)]
    Alerts {
        #[command(subcommand)]
        action: Option<AlertsCmd>,
        #[command(flatten)]
        list: AlertList,
    },
    /// Make a site CA and the embedded broker's TLS certificate (ca.pem, ca.key, server.pem,
    /// server.key); agents trust ca.pem.
    GenCerts {
        /// Directory to write them to (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Host names or addresses agents use to reach the broker (repeatable);
        /// localhost and 127.0.0.1 are always included.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Replace an existing CA (every agent then needs the new ca.pem).
        #[arg(long)]
        force: bool,
    },
    /// Set a user's password in a Mosquitto-format password file (created if missing).
    Passwd {
        /// The password file (broker.password_file).
        #[arg(long)]
        file: PathBuf,
        /// The user: an agent's id, or `aggregator`.
        user: String,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "generate")]
        stdin: bool,
        /// Make a random 24-character password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Enroll a patient, a guardian or a wanted plate in the watchlist (the running
    /// aggregator publishes every change to the agents).
    Enroll {
        #[command(subcommand)]
        what: EnrollCmd,
    },
    /// Show the watchlist (faces without their embeddings, plates, version), or remove an
    /// entry.
    #[command(args_conflicts_with_subcommands = true)]
    Watchlist {
        #[command(subcommand)]
        action: Option<WatchlistCmd>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Where a vehicle (by plate) or a person has been: its sightings across every camera,
    /// in time order, with camera, position, time span, confidence, why and the evidence
    /// track.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["plate", "person"])))]
    Trajectory {
        /// The plate (separators and case do not matter); every vehicle with it is shown
        /// (a possible clone is a vehicle of its own).
        #[arg(long)]
        plate: Option<String>,
        /// Also vehicles whose plate is one OCR-confusable character off (0/D/Q, 8/B, 5/S...).
        #[arg(long, requires = "plate")]
        fuzzy: bool,
        /// The person's id (P-12 or 12); a merged id shows its survivor's trajectory.
        #[arg(long, value_parser = aggregator::query::parse_person)]
        person: Option<u64>,
        #[command(flatten)]
        out: GeoOut,
        #[command(flatten)]
        why: WhyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Person–vehicle links (getting in or out, seen inside), strongest first.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["plate", "person"])))]
    Links {
        /// The person's id (P-12 or 12).
        #[arg(long, value_parser = aggregator::query::parse_person)]
        person: Option<u64>,
        /// The vehicles with this plate (exactly, or read so).
        #[arg(long)]
        plate: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        why: WhyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Sightings (vehicles and persons) in a grid or a latitude/longitude box during a time
    /// window, in time order. TIME is an RFC 3339 time (2026-11-23T10:15:00Z; UTC when the
    /// zone is left out) or a duration before now (90s, 10m, 2h, 1d).
    #[command(group(clap::ArgGroup::new("area").required(true).args(["grid", "bbox"])))]
    Sightings {
        /// The grid (`grid` of the configured [[cameras]]).
        #[arg(long)]
        grid: Option<String>,
        /// Two opposite corners: LAT1,LON1,LAT2,LON2 (WGS 84 degrees).
        #[arg(long, value_parser = aggregator::query::parse_bbox, allow_hyphen_values = true)]
        bbox: Option<[f64; 4]>,
        /// Start of the window (TIME).
        #[arg(long)]
        from: String,
        /// End of the window (TIME). Default: now.
        #[arg(long, default_value = "0s")]
        to: String,
        #[command(flatten)]
        out: GeoOut,
        #[command(flatten)]
        why: WhyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Persons whose stored faces look like the face in a photo (以像找人), most similar
    /// first: the photo is embedded as enrollment does (the agents' face models,
    /// [watchlist] of --config; one face only), searched in an approximate nearest-neighbour
    /// index of every person's representative faces and re-ranked exactly. Shows each
    /// person's best similarity, where and when the matching face was seen, and its sightings
    /// (count, first and last seen).
    SearchFace {
        /// The photo (JPEG or PNG) showing one face.
        photo: PathBuf,
        /// How many persons to show (1..=1000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
        top: u16,
        /// Leave out persons less similar than this (cosine, -1..=1; SFace's operating
        /// threshold is 0.363). Default: no floor.
        #[arg(long, allow_hyphen_values = true)]
        min_similarity: Option<f32>,
        /// Only persons seen at or after TIME (RFC 3339, or a duration before now: 2h, 1d).
        #[arg(long)]
        from: Option<String>,
        /// Only persons seen at or before TIME. Default: now (when --from is given).
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        why: WhyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Save an evidence image (a sighting's best shot, `evidence_crop`, or an alert's,
    /// `evidence_refs`) by its SHA-256.
    Evidence {
        /// The image's SHA-256 (64 lowercase hex digits).
        sha256: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        why: WhyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage the HTTP API's bearer tokens (stored hashed; the token is shown once).
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
    /// Check, list or anchor the audit log (every API query, change and evidence access,
    /// hash-chained, anchored by signed checkpoints).
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// List the dead letters: messages the store refused for a reason of its own, kept with
    /// their raw payload and the error (see README "Poison messages").
    DeadLetters {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// At most this many, oldest first.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Also write dead letter ID's raw payload to this file (read it with `decode`).
        #[arg(long, requires = "id")]
        out: Option<PathBuf>,
        /// Only this dead letter.
        #[arg(long)]
        id: Option<u64>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Ask the running aggregator to apply dead letter ID again (after a fix): it is taken
    /// within a second and goes through the same checks, fusion and store as a message from
    /// the broker; stored, it leaves the dead letters.
    Replay {
        /// The dead letter's id (`aggregator dead-letters`).
        id: u64,
        /// Wait up to this many seconds for the running aggregator to apply it, and say how
        /// it went (0: do not wait).
        #[arg(long, default_value_t = 10)]
        wait_s: u64,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print a captured payload (file, or - for stdin) as JSON.
    Decode {
        /// The payload file, or - for standard input.
        input: String,
        /// One line instead of pretty-printed.
        #[arg(long)]
        compact: bool,
    },
}

/// Output of the queries that return sightings.
#[derive(clap::Args)]
struct GeoOut {
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with_all = ["geojson", "csv"])]
    json: bool,
    /// Print GeoJSON: a FeatureCollection with a LineString per identity's path and a Point
    /// per sighting (camera, time span, confidence, evidence).
    #[arg(long, conflicts_with = "csv")]
    geojson: bool,
    /// Print CSV (RFC 4180, a header row; one row per sighting with UTC times, identity,
    /// camera, position, confidence, plate, evidence refs; cells that a spreadsheet would
    /// take for a formula start with ').
    #[arg(long)]
    csv: bool,
}

/// Prints sightings as a table (after `head`), JSON (`json` is the whole document), GeoJSON
/// or CSV.
fn print_sightings(
    out: &GeoOut,
    head: &str,
    json: serde_json::Value,
    rows: &[aggregator::store::SightingRow],
) -> anyhow::Result<()> {
    if out.csv {
        print!("{}", aggregator::query::sightings_csv(rows));
    } else if out.geojson {
        println!(
            "{}",
            serde_json::to_string_pretty(&aggregator::query::geojson(rows))?
        );
    } else if out.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{head}{}", aggregator::query::sightings_table(rows));
    }
    Ok(())
}

/// Why a query is made, written with it to the audit log (as the API's X-Purpose / X-Case;
/// asked for, not enforced, on the command line).
#[derive(clap::Args)]
struct WhyArgs {
    /// Why this query is made (3..=200 characters); audited.
    #[arg(long, requires = "case")]
    purpose: Option<String>,
    /// The case reference (1..=64 characters: letters and digits of any script, . _ / - # :
    /// ( ) [ ], e.g. 京公（刑）字〔2026〕42号); audited.
    #[arg(long, requires = "purpose")]
    case: Option<String>,
}

impl WhyArgs {
    fn checked(&self) -> anyhow::Result<aggregator::api::CliWhy> {
        let why = aggregator::api::CliWhy {
            purpose: self.purpose.clone(),
            case: self.case.clone(),
        };
        why.check()
            .map_err(|e| anyhow::anyhow!("--purpose / --case: {e}"))?;
        Ok(why)
    }
}

/// Where the database is: `--db`, else the `[store]` of `--config`, else the default.
#[derive(clap::Args)]
struct DbArgs {
    /// SQLite database file, or a PostgreSQL URL `postgres://user:password@host:port/db`
    /// (default: the [store] of --config, else sharpeyes.db).
    #[arg(long)]
    db: Option<String>,
    /// Configuration file to take the database path from (and, for enroll, the face models:
    /// [watchlist]).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl DbArgs {
    fn location(&self) -> anyhow::Result<Location> {
        Ok(match &self.db {
            Some(p) => Location::parse(p),
            None => load_config(self.config.as_ref())?.store.location(),
        })
    }

    /// Opens the database, creating it if missing (enrollment may come before the first run).
    fn open_or_create(&self) -> anyhow::Result<Store> {
        let at = self.location()?;
        Store::open_at(&at).with_context(|| format!("opening database {}", at.describe()))
    }

    fn open(&self) -> anyhow::Result<Store> {
        let at = self.location()?;
        if let Location::Sqlite(path) = &at
            && !path.exists()
        {
            bail!(
                "database {} does not exist (run the aggregator first, or pass --db)",
                path.display()
            );
        }
        Store::open_at(&at).with_context(|| format!("opening database {}", at.describe()))
    }
}

#[derive(Subcommand)]
enum EnrollCmd {
    /// Enroll (or replace) a patient: photos of the face alone, a consent record reference.
    Patient {
        /// Enrollment id (e.g. P-0042; no spaces or '/').
        #[arg(long)]
        id: String,
        /// Name shown in alerts.
        #[arg(long)]
        name: String,
        /// A photo (JPEG or PNG) showing the patient's face alone; repeat for several
        /// (different days, light, angles help).
        #[arg(long = "photo", required = true)]
        photos: Vec<PathBuf>,
        /// Reference of the consent record (required).
        #[arg(long)]
        consent: String,
        /// Whom to call, as NAME:PHONE (repeatable).
        #[arg(long = "contact", value_parser = parse_contact)]
        contacts: Vec<Contact>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Enroll (or replace) a guardian of enrolled patients: seen with one of them, the
    /// patient's alert is "accompanied" (low priority).
    Guardian {
        /// Enrollment id (e.g. G-0007; no spaces or '/').
        #[arg(long)]
        id: String,
        /// Name shown in alerts.
        #[arg(long)]
        name: String,
        /// A photo (JPEG or PNG) showing the guardian's face alone; repeatable.
        #[arg(long = "photo", required = true)]
        photos: Vec<PathBuf>,
        /// Id of an enrolled patient this guardian accompanies (repeatable).
        #[arg(long = "of", required = true)]
        of: Vec<String>,
        /// Reference of the guardian's consent record.
        #[arg(long)]
        consent: Option<String>,
        /// Whom to call, as NAME:PHONE (repeatable).
        #[arg(long = "contact", value_parser = parse_contact)]
        contacts: Vec<Contact>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Add a wanted plate (or change its reason).
    Plate {
        /// The plate, e.g. 京A12345 (separators and case do not matter).
        #[arg(long)]
        plate: String,
        /// Why it is wanted (shown in alerts).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum WatchlistCmd {
    /// Remove an enrolled patient or guardian (a patient's guardians who accompany nobody
    /// else go with it).
    Remove {
        /// The enrollment id.
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Remove a wanted plate.
    RemovePlate {
        /// The plate.
        plate: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn parse_contact(s: &str) -> Result<Contact, aggregator::watchlist::WatchlistError> {
    aggregator::watchlist::parse_contact(s)
}

fn enroll_face(db: &DbArgs, req: FaceRequest) -> anyhow::Result<()> {
    let cfg = load_config(db.config.as_ref())?;
    let mut store = db.open_or_create()?;
    let mut enroller = Enroller::new(&cfg.watchlist);
    let version = aggregator::watchlist::enroll_face(&mut store, &mut enroller, &req)?;
    println!(
        "enrolled {} {} ({} photo(s)); watchlist version {version}",
        role_name(req.role),
        req.id,
        req.photos.len()
    );
    Ok(())
}

#[derive(clap::Args)]
struct AlertList {
    /// Only alerts nobody acknowledged yet.
    #[arg(long)]
    open: bool,
    /// Only this rule: loitering, face_watchlist, plate_watchlist.
    #[arg(long)]
    kind: Option<String>,
    /// Only alerts reported within this long before now (e.g. 90s, 10m, 2h, 1d).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// At most this many (the newest).
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Subcommand)]
enum AlertsCmd {
    /// Acknowledge an alert: who handled it and how.
    Ack {
        /// AGENT/ALERT_ID, as the list shows it.
        id: String,
        /// Who acknowledges it.
        #[arg(long)]
        by: String,
        /// What was done.
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Save an alert's evidence image (JPEG).
    Evidence {
        /// AGENT/ALERT_ID, as the list shows it.
        id: String,
        /// Which image: crop (the person, face or vehicle), frame (the scene), or another
        /// role the list shows.
        #[arg(long, default_value = "crop")]
        role: String,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Make a token and print it (only now: the store keeps its SHA-256).
    Create {
        /// Unique name (who, in the audit log): 1..=64 of A-Z a-z 0-9 . _ @ -.
        #[arg(long)]
        name: String,
        /// viewer, analyst, enroller or admin.
        #[arg(long)]
        role: String,
        /// Valid for this long (30d, 12h). Default: until revoked.
        #[arg(long)]
        expires: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the tokens (name, role, made, expiry, revoked; never the token).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token: refused from the next request on.
    Revoke {
        /// The token's name.
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Which audit key: `--key`, else `audit.key_file` of `--config`, else its default.
#[derive(clap::Args)]
struct KeyArgs {
    /// The audit key file (Ed25519, PKCS#8). Default: [audit] key_file of --config, else
    /// `<database>.audit-key` beside a SQLite file, `sharpeyes-audit.key` with PostgreSQL.
    #[arg(long)]
    key: Option<PathBuf>,
}

impl KeyArgs {
    fn path(&self, db: &DbArgs) -> anyhow::Result<PathBuf> {
        Ok(match &self.key {
            Some(k) => k.clone(),
            None => aggregator::witness::key_path(
                &load_config(db.config.as_ref())?.audit,
                &db.location()?,
            ),
        })
    }
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the hash chain and the signed checkpoints (stored, and those of --checkpoints
    /// files): `ok: N entries, head HASH, K checkpoints`, or what is wrong (exit 1): an
    /// altered, removed or inserted entry, a log shorter than a checkpoint or without its
    /// head, a checkpoint whose signature does not hold or is not by the audit key.
    Verify {
        /// A JSON-lines file of checkpoints kept outside the database (audit.witness_file,
        /// `audit checkpoint --out`); repeatable.
        #[arg(long = "checkpoints")]
        checkpoints: Vec<PathBuf>,
        /// The audit public key (hex, `aggregator audit public-key`) checkpoints must be
        /// signed with; repeatable. Default: the public key of the key file.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Make the audit signing key (mode 0600; refused if the file exists) and print its
    /// public key.
    Keygen {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the audit key's public key (hex): give it to whoever verifies.
    PublicKey {
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Sign a checkpoint of the log as it is now (made with the key, created if missing),
    /// store it, print it as a JSON line and append it to --out.
    Checkpoint {
        /// Append the checkpoint (one JSON line) to this file: an outside witness for
        /// `audit verify --checkpoints`.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List entries, newest first.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only this token name.
        #[arg(long)]
        who: Option<String>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn split_alert_id(id: &str) -> anyhow::Result<(&str, &str)> {
    id.split_once('/')
        .filter(|(a, i)| !a.is_empty() && !i.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("{id:?}: expected AGENT/ALERT_ID (as `aggregator alerts` lists it)")
        })
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<AggregatorConfig> {
    Ok(match path {
        Some(p) => AggregatorConfig::load(p)?,
        None => AggregatorConfig::default(),
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::PrintDefaultConfig => print!("{DEFAULT_CONFIG_TOML}"),
        Cmd::CheckConfig { config } => {
            AggregatorConfig::load(&config)?;
            println!("{}: ok", config.display());
        }
        Cmd::Alerts { action, list } => match action {
            None => {
                let store = list.db.open()?;
                let rows = store.alerts(&AlertFilter {
                    open_only: list.open,
                    since_ms: list
                        .since
                        .map(|d| sharpeyes_wire::now_ms() - d.as_millis() as i64),
                    kind: list.kind,
                    limit: list.limit,
                })?;
                if list.json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print!("{}", aggregator::query::alerts_table(&rows));
                }
            }
            Some(AlertsCmd::Ack { id, by, note, db }) => {
                let (agent, alert) = split_alert_id(&id)?;
                if by.trim().is_empty() {
                    bail!("--by must name who acknowledges");
                }
                let entry = aggregator::api::cli_entry(
                    "alerts.ack",
                    &aggregator::api::CliWhy::default(),
                    serde_json::json!({"agent": agent, "alert_id": alert, "by": by}),
                    1,
                );
                let done = db.open()?.audited(&entry, |s| {
                    Ok::<_, aggregator::store::StoreError>(
                        s.ack_alert(agent, alert, &by, &note)?.then_some(()),
                    )
                })?;
                if done.is_none() {
                    bail!("no open alert {id} (see `aggregator alerts --open`)");
                }
                println!("{id} acknowledged by {by}");
            }
            Some(AlertsCmd::Evidence { id, role, out, db }) => {
                let (agent, alert) = split_alert_id(&id)?;
                let Some((mime, data)) = db.open()?.alert_evidence(agent, alert, &role)? else {
                    bail!("alert {id} has no {role:?} evidence (see `aggregator alerts`)");
                };
                aggregator::api::audit_cli(
                    &db.open()?,
                    "alerts.evidence",
                    &aggregator::api::CliWhy::default(),
                    serde_json::json!({"agent": agent, "alert_id": alert, "role": role}),
                    1,
                )?;
                std::fs::write(&out, &data)
                    .with_context(|| format!("writing {}", out.display()))?;
                println!("{} ({mime}, {} bytes)", out.display(), data.len());
            }
        },
        Cmd::GenCerts { out, hosts, force } => {
            let f = aggregator::pki::generate(&out, &hosts, force)?;
            println!(
                "CA certificate   {}\nCA key           {}  (keep offline)\nbroker cert      {}\nbroker key       {}",
                f.ca_cert.display(),
                f.ca_key.display(),
                f.server_cert.display(),
                f.server_key.display()
            );
        }
        Cmd::Passwd {
            file,
            user,
            stdin,
            generate,
        } => {
            use aggregator::broker::passwd;
            let password = if generate {
                passwd::random_password(24)?
            } else if stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the password from stdin")?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                bail!("give --stdin (password on standard input) or --generate");
            };
            if password.is_empty() {
                bail!("empty password");
            }
            passwd::set_password(&file, &user, &password)?;
            if generate {
                println!("{password}");
            }
        }
        Cmd::Enroll { what } => match what {
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
        },
        Cmd::Watchlist { action, json, db } => match action {
            None => {
                let listing = db.open()?.watchlist_listing()?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&listing)?);
                } else {
                    print!("{}", aggregator::query::watchlist_table(&listing));
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
        },
        Cmd::Trajectory {
            plate,
            fuzzy,
            person,
            out,
            why,
            db,
        } => {
            let why = why.checked()?;
            let store = db.open()?;
            match (plate, person) {
                (Some(plate), _) => {
                    let vehicles = store.vehicles_by_plate(&plate, fuzzy)?;
                    let ids: Vec<u64> = vehicles.iter().map(|v| v.vehicle).collect();
                    let flags = store.plate_flags_of(&ids)?;
                    let rows = store.vehicle_trajectory_by_plate(&plate, fuzzy)?;
                    let head = if vehicles.is_empty() {
                        format!(
                            "no vehicle with plate {}\n",
                            sharpeyes_wire::plate::normalize(&plate)
                        )
                    } else {
                        format!("{}\n", aggregator::query::vehicles_lines(&vehicles, &flags))
                    };
                    let json = serde_json::json!({
                        "plate": sharpeyes_wire::plate::normalize(&plate),
                        "fuzzy": fuzzy,
                        "vehicles": vehicles,
                        "flags": flags,
                        "sightings": rows,
                    });
                    aggregator::api::audit_cli(
                        &store,
                        "vehicles.trajectory",
                        &why,
                        serde_json::json!({"plate": plate, "fuzzy": fuzzy}),
                        rows.len() as u64,
                    )?;
                    print_sightings(&out, &head, json, &rows)?;
                }
                (None, Some(person)) => {
                    let resolved = store.resolve_person(person)?;
                    let rows = store.person_trajectory(person)?;
                    let head = match resolved {
                        None => format!("no person P-{person}\n"),
                        Some(p) if p != person => {
                            format!("P-{person} was merged into P-{p}\n\n")
                        }
                        Some(_) => String::new(),
                    };
                    let json = serde_json::json!({
                        "person": person,
                        "resolved": resolved,
                        "sightings": rows,
                    });
                    aggregator::api::audit_cli(
                        &store,
                        "persons.trajectory",
                        &why,
                        serde_json::json!({"person": person}),
                        rows.len() as u64,
                    )?;
                    print_sightings(&out, &head, json, &rows)?;
                }
                (None, None) => bail!("give --plate or --person"),
            }
        }
        Cmd::Links {
            person,
            plate,
            json,
            why,
            db,
        } => {
            let why = why.checked()?;
            let store = db.open()?;
            let rows = match (person, &plate) {
                (Some(p), _) => store.links_of_person(p)?,
                (None, Some(plate)) => store.links_of_plate(plate)?,
                (None, None) => bail!("give --person or --plate"),
            };
            aggregator::api::audit_cli(
                &store,
                "links",
                &why,
                serde_json::json!({"person": person, "plate": plate}),
                rows.len() as u64,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", aggregator::query::links_table(&rows));
            }
        }
        Cmd::Sightings {
            grid,
            bbox,
            from,
            to,
            out,
            why,
            db,
        } => {
            let why = why.checked()?;
            let now = sharpeyes_wire::now_ms();
            let from_ms = aggregator::query::parse_time(&from, now).context("--from")?;
            let to_ms = aggregator::query::parse_time(&to, now).context("--to")?;
            if from_ms > to_ms {
                bail!("--from is after --to");
            }
            let area = match (&grid, bbox) {
                (Some(g), _) => Area::Grid(g.clone()),
                (None, Some([lat1, lon1, lat2, lon2])) => Area::BBox([lat1, lon1], [lat2, lon2]),
                (None, None) => bail!("give --grid or --bbox"),
            };
            let store = db.open()?;
            let rows = store.sightings_in(&area, from_ms, to_ms)?;
            aggregator::api::audit_cli(
                &store,
                "sightings",
                &why,
                serde_json::json!({"grid": grid, "bbox": bbox, "from_ms": from_ms, "to_ms": to_ms}),
                rows.len() as u64,
            )?;
            let head = format!(
                "{} to {}\n\n",
                aggregator::query::utc(from_ms),
                aggregator::query::utc(to_ms)
            );
            let json = serde_json::json!({
                "from_ms": from_ms,
                "to_ms": to_ms,
                "sightings": rows,
            });
            print_sightings(&out, &head, json, &rows)?;
        }
        Cmd::SearchFace {
            photo,
            top,
            min_similarity,
            from,
            to,
            json,
            why,
            db,
        } => {
            let why = why.checked()?;
            if let Some(m) = min_similarity
                && !(-1.0..=1.0).contains(&m)
            {
                bail!("--min-similarity {m} is outside -1..=1");
            }
            let window = match from {
                Some(from) => {
                    let now = sharpeyes_wire::now_ms();
                    let from_ms = aggregator::query::parse_time(&from, now).context("--from")?;
                    let to_ms = aggregator::query::parse_time(to.as_deref().unwrap_or("0s"), now)
                        .context("--to")?;
                    if from_ms > to_ms {
                        bail!("--from is after --to");
                    }
                    Some((from_ms, to_ms))
                }
                None => None,
            };
            let cfg = load_config(db.config.as_ref())?;
            let store = db.open()?;
            let query = Enroller::new(&cfg.watchlist)
                .embed_photo(&photo)
                .context("cannot search with this photo")?;
            let model = &cfg.fusion.persons.embedding_model;
            let report = aggregator::facesearch::search_store(
                &store,
                &query,
                model,
                usize::from(top),
                min_similarity.unwrap_or(-1.0),
                window,
            )?;
            aggregator::api::audit_cli(
                &store,
                "faces.search",
                &why,
                serde_json::json!({"photo": photo, "top": top, "window": window}),
                report.results.len() as u64,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} face(s) of {} person(s) ({model}, {}-d): index built in {:.0} ms, searched in {:.1} ms\n",
                    report.faces, report.persons, report.dim, report.build_ms, report.search_ms
                );
                print!("{}", aggregator::query::face_search_table(&report.results));
            }
        }
        Cmd::Evidence {
            sha256,
            out,
            why,
            db,
        } => {
            let why = why.checked()?;
            let store = db.open()?;
            let Some(e) = store.evidence(&sha256)? else {
                bail!("no evidence image {sha256}");
            };
            aggregator::api::audit_cli(
                &store,
                "evidence",
                &why,
                serde_json::json!({"sha256": sha256}),
                1,
            )?;
            std::fs::write(&out, &e.bytes).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{} ({}, {} bytes, kind {}, stored {})",
                out.display(),
                e.mime,
                e.bytes.len(),
                e.kind,
                aggregator::query::utc(e.created_ms)
            );
        }
        Cmd::Token { action } => match action {
            TokenCmd::Create {
                name,
                role,
                expires,
                db,
            } => {
                let now = sharpeyes_wire::now_ms();
                let expires_ms = expires
                    .as_deref()
                    .map(aggregator::api::params::duration_ms)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--expires: {e}"))?
                    .map(|d| now.saturating_add(d));
                let entry = aggregator::api::cli_entry(
                    "tokens.create",
                    &aggregator::api::CliWhy::default(),
                    serde_json::json!({"name": name, "role": role}),
                    1,
                );
                let (token, row) = db
                    .open_or_create()?
                    .audited(&entry, |s| {
                        aggregator::api::access::create_token(s, &name, &role, expires_ms, now)
                            .map(Some)
                    })?
                    .context("no token made")?;
                eprintln!(
                    "token {} ({}{}); shown only now:",
                    row.name,
                    row.role,
                    row.expires_ms
                        .map(|e| format!(", expires {}", aggregator::query::utc(e)))
                        .unwrap_or_default()
                );
                println!("{token}");
            }
            TokenCmd::List { json, db } => {
                let rows = db.open()?.tokens()?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for t in &rows {
                        let when = |ms: Option<i64>| {
                            ms.map(aggregator::query::utc).unwrap_or_else(|| "-".into())
                        };
                        println!(
                            "{:<24} {:<9} created {}  expires {}  revoked {}",
                            t.name,
                            t.role,
                            aggregator::query::utc(t.created_ms),
                            when(t.expires_ms),
                            when(t.revoked_ms)
                        );
                    }
                    println!("{} token(s)", rows.len());
                }
            }
            TokenCmd::Revoke { name, db } => {
                let entry = aggregator::api::cli_entry(
                    "tokens.revoke",
                    &aggregator::api::CliWhy::default(),
                    serde_json::json!({"name": name}),
                    1,
                );
                let done = db.open()?.audited(&entry, |s| {
                    Ok::<_, aggregator::store::StoreError>(
                        s.revoke_token(&name, sharpeyes_wire::now_ms())?
                            .then_some(()),
                    )
                })?;
                if done.is_none() {
                    bail!("no token {name:?}, or revoked already (see `aggregator token list`)");
                }
                println!("revoked {name}");
            }
        },
        Cmd::Audit { action } => match action {
            AuditCmd::Verify {
                checkpoints,
                public_keys,
                key,
                db,
            } => {
                let store = db.open()?;
                let mut trust = aggregator::store::audit::AuditTrust {
                    keys: public_keys
                        .iter()
                        .map(|k| k.trim().to_lowercase())
                        .collect(),
                    witnessed: Vec::new(),
                };
                for k in &trust.keys {
                    if aggregator::store::audit::unhex(k).is_none_or(|b| b.len() != 32) {
                        bail!(
                            "--public-key {k:?} is not 64 hex digits (aggregator audit public-key prints it)"
                        );
                    }
                }
                let key_file = key.path(&db)?;
                if trust.keys.is_empty() && key_file.exists() {
                    trust
                        .keys
                        .push(aggregator::witness::AuditKey::load(&key_file)?.public_hex());
                }
                for f in &checkpoints {
                    trust.witnessed.extend(aggregator::witness::read(f)?);
                }
                let stored = store.audit_checkpoints()?.len();
                if trust.keys.is_empty() && stored + trust.witnessed.len() > 0 {
                    eprintln!(
                        "cannot check the checkpoints' signatures: no audit key at {} (give --public-key HEX from `aggregator audit public-key`, or --key FILE)",
                        key_file.display()
                    );
                    std::process::exit(2);
                }
                let v = store.audit_verify_with(&trust)?;
                match v.broken {
                    None if v.checkpoints == 0 => println!(
                        "ok: {} entries, head {}; no checkpoints: the newest entries are not anchored (run the aggregator, or `aggregator audit checkpoint --out FILE`)",
                        v.entries,
                        v.head.as_deref().unwrap_or("-")
                    ),
                    None => println!(
                        "ok: {} entries, head {}, {} checkpoints ({} stored, {} witnessed) signed by {}",
                        v.entries,
                        v.head.as_deref().unwrap_or("-"),
                        v.checkpoints,
                        stored,
                        trust.witnessed.len(),
                        trust.keys.join(", ")
                    ),
                    Some(b) => {
                        println!(
                            "broken at entry {}: {} ({} entries before it verified)",
                            b.seq, b.what, v.entries
                        );
                        std::process::exit(1);
                    }
                }
            }
            AuditCmd::Keygen { key, db } => {
                let path = key.path(&db)?;
                let k = aggregator::witness::AuditKey::generate(&path)?;
                eprintln!(
                    "audit key written to {} (mode 0600); its public key:",
                    path.display()
                );
                println!("{}", k.public_hex());
            }
            AuditCmd::PublicKey { key, db } => {
                let path = key.path(&db)?;
                println!(
                    "{}",
                    aggregator::witness::AuditKey::load(&path)?.public_hex()
                );
            }
            AuditCmd::Checkpoint { out, key, db } => {
                let store = db.open()?;
                let k = aggregator::witness::AuditKey::load_or_create(&key.path(&db)?)?;
                let c = store.audit_checkpoint(&k, sharpeyes_wire::now_ms())?;
                if let Some(out) = &out {
                    aggregator::witness::append(out, &c)?;
                }
                println!("{}", serde_json::to_string(&c)?);
            }
            AuditCmd::List {
                limit,
                who,
                json,
                db,
            } => {
                let rows = db
                    .open()?
                    .audit_entries(&aggregator::store::audit::AuditFilter {
                        who,
                        limit: Some(limit),
                        ..Default::default()
                    })?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for r in &rows {
                        println!(
                            "{:>6} {} {:<16} {:<8} {:<24} {} case={} purpose={:?} results={} {}",
                            r.seq,
                            aggregator::query::utc(r.ts_ms),
                            r.who,
                            r.role,
                            r.action,
                            r.status,
                            r.case_ref.as_deref().unwrap_or("-"),
                            r.purpose.as_deref().unwrap_or(""),
                            r.result_count.map(|n| n.to_string()).unwrap_or("-".into()),
                            r.params_json
                        );
                    }
                }
            }
        },
        Cmd::DeadLetters {
            json,
            limit,
            out,
            id,
            db,
        } => {
            let store = db.open()?;
            let rows = match id {
                None => store.dead_letters(limit)?,
                Some(id) => store.dead_letter(id)?.into_iter().collect(),
            };
            if let Some(id) = id {
                anyhow::ensure!(
                    !rows.is_empty(),
                    "no dead letter {id} (list them with `aggregator dead-letters`)"
                );
            }
            if let (Some(path), Some(id)) = (out, id)
                && let Some(r) = store.dead_letter_payload(id)?
            {
                std::fs::write(&path, &r.payload)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("payload of dead letter {id} written to {}", path.display());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("no dead letters");
            } else {
                println!(
                    "{:>6}  {:<16} {:>20}  {:<7} {:>8}  {:<24}  error",
                    "id", "agent", "seq", "kind", "attempts", "refused (UTC)"
                );
                for r in &rows {
                    println!(
                        "{:>6}  {:<16} {:>20}  {:<7} {:>8}  {:<24}  {}{}",
                        r.id,
                        r.agent,
                        r.seq,
                        r.kind,
                        r.attempts,
                        aggregator::query::utc(r.received_ms),
                        r.error,
                        if r.replay_ms.is_some() {
                            " (replay pending)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        Cmd::Replay { id, wait_s, db } => {
            let store = db.open()?;
            let before = store.dead_letter(id)?.with_context(|| {
                format!("no dead letter {id} (list them with `aggregator dead-letters`)")
            })?;
            store.request_replay(id, sharpeyes_wire::now_ms())?;
            println!(
                "dead letter {id} ({} seq {}) queued for replay",
                before.agent, before.seq
            );
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait_s);
            while wait_s > 0
                && std::time::Instant::now() < deadline + std::time::Duration::from_secs(1)
            {
                std::thread::sleep(std::time::Duration::from_millis(250));
                match store.dead_letter(id)? {
                    None => {
                        println!("replayed: stored");
                        break;
                    }
                    Some(r) if r.replay_ms.is_none() => {
                        println!("refused again: {}", r.error);
                        std::process::exit(1);
                    }
                    Some(_) if std::time::Instant::now() >= deadline => {
                        println!(
                            "still pending after {wait_s} s: is `aggregator run` running on this store?"
                        );
                        std::process::exit(2);
                    }
                    Some(_) => {}
                }
            }
        }
        Cmd::Decode { input, compact } => {
            let bytes = if input == "-" {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .context("reading stdin")?;
                b
            } else {
                std::fs::read(&input).with_context(|| format!("reading {input}"))?
            };
            let env = Codec::default()
                .decode(&bytes)
                .with_context(|| format!("decoding {input} ({} bytes)", bytes.len()))?;
            let out = if compact {
                serde_json::to_string(&env)?
            } else {
                serde_json::to_string_pretty(&env)?
            };
            println!("{out}");
        }
        Cmd::Tracks {
            camera,
            since,
            limit,
            json,
            db,
        } => {
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
                print!("{}", aggregator::query::tracks_table(&rows));
            }
        }
        Cmd::Retention {
            dry_run,
            days,
            alert_days,
            evidence_sighting_days,
            evidence_alert_days,
            json,
            db,
        } => {
            let mut policy = load_config(db.config.as_ref())?.store.retention();
            if let Some(d) = days {
                policy.days = d;
            }
            if let Some(d) = alert_days {
                policy.alert_days = d;
            }
            if let Some(d) = evidence_sighting_days {
                policy.evidence_sighting_days = d;
            }
            if let Some(d) = evidence_alert_days {
                policy.evidence_alert_days = d;
            }
            let store = db.open()?;
            let now = sharpeyes_wire::now_ms();
            let report = if dry_run {
                store.retention_preview(&policy, now)?
            } else {
                let mut total = aggregator::store::RetentionReport::default();
                loop {
                    let r = store.retention_step(&policy, now)?;
                    for (k, n) in r.deleted {
                        *total.deleted.entry(k).or_default() += n;
                    }
                    total.partitions_dropped.extend(r.partitions_dropped);
                    if r.done {
                        total.done = true;
                        break total;
                    }
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                println!(
                    "retention (days {}, alert days {}, evidence days sighting {} / alert {}; 0 = forever): {verb}",
                    policy.days,
                    policy.alert_days,
                    policy.evidence_sighting_days,
                    policy.evidence_alert_days
                );
                for (k, n) in &report.deleted {
                    println!("  {k:<14} {n} rows");
                }
                if report.deleted.is_empty() {
                    println!("  nothing");
                }
                for p in &report.partitions_dropped {
                    println!("  partition {p} (whole)");
                }
            }
        }
        Cmd::Run { config } => {
            sharpeyes_common::init_logging("info,rumqttd=warn");
            let cfg = load_config(config.as_ref())?;
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                sharpeyes_common::cancel_on_signal(shutdown.clone());
                aggregator::run(cfg, shutdown).await
            })?;
        }
    }
    Ok(())
}
