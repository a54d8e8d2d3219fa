//! The command line: every subcommand's arguments (clap), and the small helpers the
//! subcommands share (where the database is, why a query is made, how sightings print).

use std::path::PathBuf;
use std::time::Duration;

use aggregator::config::{AggregatorConfig, ConfigFile};
use aggregator::query;
use aggregator::store::watchlist::role_name;
use aggregator::store::{Contact, Location, Store};
use aggregator::watchlist::{Enroller, FaceRequest};
use anyhow::{Context, bail};
use clap::Subcommand;

/// The subcommands (`aggregator --help` lists them).
#[derive(Subcommand)]
pub enum Cmd {
    /// Run the aggregator until Ctrl-C / SIGTERM.
    Run(RunArgs),
    /// Print the commented default configuration.
    PrintDefaultConfig,
    /// Apply the retention policy of [store] now (bounded chunks until nothing expired is
    /// left), or with --dry-run only count what it would delete.
    Retention(RetentionArgs),
    /// Validate a configuration file and exit.
    CheckConfig(CheckConfigArgs),
    /// List stored tracks, oldest first.
    Tracks(TracksArgs),
    /// List alerts (newest first), acknowledge one, or save its evidence.
    #[command(args_conflicts_with_subcommands = true)]
    Alerts(AlertsArgs),
    /// Make a site CA and the embedded broker's TLS certificate (ca.pem, ca.key, server.pem,
    /// server.key); agents trust ca.pem.
    GenCerts(GenCertsArgs),
    /// Set a user's password in a Mosquitto-format password file (created if missing).
    Passwd(PasswdArgs),
    /// Enroll a patient, a guardian or a wanted plate in the watchlist (the running
    /// aggregator publishes every change to the agents).
    Enroll(EnrollArgs),
    /// Show the watchlist (faces without their embeddings, plates, version), or remove an
    /// entry.
    #[command(args_conflicts_with_subcommands = true)]
    Watchlist(WatchlistArgs),
    /// Where a vehicle (by plate) or a person has been: its sightings across every camera,
    /// in time order, with camera, position, time span, confidence, why and the evidence
    /// track.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["plate", "person"])))]
    Trajectory(TrajectoryArgs),
    /// Person–vehicle links (getting in or out, seen inside), strongest first.
    #[command(group(clap::ArgGroup::new("who").required(true).args(["plate", "person"])))]
    Links(LinksArgs),
    /// Sightings (vehicles and persons) in a grid or a latitude/longitude box during a time
    /// window, in time order. TIME is an RFC 3339 time (2026-11-23T10:15:00Z; UTC when the
    /// zone is left out) or a duration before now (90s, 10m, 2h, 1d).
    #[command(group(clap::ArgGroup::new("area").required(true).args(["grid", "bbox"])))]
    Sightings(SightingsArgs),
    /// Persons whose stored faces look like the face in a photo (以像找人), most similar
    /// first: the photo is embedded as enrollment does (the agents' face models,
    /// [watchlist] of --config; one face only), searched in an approximate nearest-neighbour
    /// index of every person's representative faces and re-ranked exactly. Shows each
    /// person's best similarity, where and when the matching face was seen, and its sightings
    /// (count, first and last seen).
    SearchFace(SearchFaceArgs),
    /// Save an evidence image (a sighting's best shot, `evidence_crop`, or an alert's,
    /// `evidence_refs`) by its SHA-256.
    Evidence(EvidenceArgs),
    /// Manage the HTTP API's bearer tokens (stored hashed; the token is shown once).
    Token(TokenArgs),
    /// Check, list or anchor the audit log (every API query, change and evidence access,
    /// hash-chained, anchored by signed checkpoints).
    Audit(AuditArgs),
    /// List the dead letters: messages the store refused for a reason of its own, kept with
    /// their raw payload and the error (see docs/store.md, "Poison messages and dead letters").
    DeadLetters(DeadLettersArgs),
    /// Ask the running aggregator to apply dead letter ID again (after a fix): it is taken
    /// within a second and goes through the same checks, fusion and store as a message from
    /// the broker; stored, it leaves the dead letters.
    Replay(ReplayArgs),
    /// Print a captured payload (file, or - for stdin) as JSON.
    Decode(DecodeArgs),
}

/// The arguments of `aggregator run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Configuration file (TOML); default: built-in defaults.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// The arguments of `aggregator retention`.
#[derive(clap::Args)]
pub struct RetentionArgs {
    /// Count what would be deleted (rows per kind, PostgreSQL partitions); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep sightings, tracks, messages this many days instead of store.retention_days.
    #[arg(long)]
    pub days: Option<u32>,
    /// Keep alerts this many days instead of store.alert_retention_days.
    #[arg(long)]
    pub alert_days: Option<u32>,
    /// Keep unreferenced best-shot images (evidence kind `sighting`) this many days
    /// instead of store.evidence_sighting_retention_days.
    #[arg(long)]
    pub evidence_sighting_days: Option<u32>,
    /// Keep unreferenced alert images (evidence kind `alert`) this many days instead of
    /// store.evidence_alert_retention_days.
    #[arg(long)]
    pub evidence_alert_days: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator check-config`.
#[derive(clap::Args)]
pub struct CheckConfigArgs {
    /// Configuration file (TOML).
    pub config: PathBuf,
}

/// The arguments of `aggregator tracks`.
#[derive(clap::Args)]
pub struct TracksArgs {
    /// Only this camera.
    #[arg(long)]
    pub camera: Option<String>,
    /// Only tracks seen within this long before now (e.g. 90s, 10m, 2h, 1d).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// At most this many (the newest).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator alerts`.
#[derive(clap::Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: Option<AlertsCmd>,
    #[command(flatten)]
    pub list: AlertList,
}

/// The arguments of `aggregator gen-certs`.
#[derive(clap::Args)]
pub struct GenCertsArgs {
    /// Directory to write them to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Host names or addresses agents use to reach the broker (repeatable);
    /// localhost and 127.0.0.1 are always included.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Replace an existing CA (every agent then needs the new ca.pem).
    #[arg(long)]
    pub force: bool,
}

/// The arguments of `aggregator passwd`.
#[derive(clap::Args)]
pub struct PasswdArgs {
    /// The password file (broker.password_file).
    #[arg(long)]
    pub file: PathBuf,
    /// The user: an agent's id, or `aggregator`.
    pub user: String,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "generate")]
    pub stdin: bool,
    /// Make a random 24-character password and print it.
    #[arg(long)]
    pub generate: bool,
}

/// The arguments of `aggregator enroll`.
#[derive(clap::Args)]
pub struct EnrollArgs {
    #[command(subcommand)]
    pub what: EnrollCmd,
}

/// The arguments of `aggregator watchlist`.
#[derive(clap::Args)]
pub struct WatchlistArgs {
    #[command(subcommand)]
    pub action: Option<WatchlistCmd>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator trajectory`.
#[derive(clap::Args)]
pub struct TrajectoryArgs {
    /// The plate (separators and case do not matter); every vehicle with it is shown
    /// (a possible clone is a vehicle of its own).
    #[arg(long)]
    pub plate: Option<String>,
    /// Also vehicles whose plate is one OCR-confusable character off (0/D/Q, 8/B, 5/S...).
    #[arg(long, requires = "plate")]
    pub fuzzy: bool,
    /// The person's id (P-12 or 12); a merged id shows its survivor's trajectory.
    #[arg(long, value_parser = query::parse_person)]
    pub person: Option<u64>,
    #[command(flatten)]
    pub out: GeoOut,
    #[command(flatten)]
    pub why: WhyArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator links`.
#[derive(clap::Args)]
pub struct LinksArgs {
    /// The person's id (P-12 or 12).
    #[arg(long, value_parser = query::parse_person)]
    pub person: Option<u64>,
    /// The vehicles with this plate (exactly, or read so).
    #[arg(long)]
    pub plate: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub why: WhyArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator sightings`.
#[derive(clap::Args)]
pub struct SightingsArgs {
    /// The grid (`grid` of the configured [[cameras]]).
    #[arg(long)]
    pub grid: Option<String>,
    /// Two opposite corners: LAT1,LON1,LAT2,LON2 (WGS 84 degrees).
    #[arg(long, value_parser = query::parse_bbox, allow_hyphen_values = true)]
    pub bbox: Option<[f64; 4]>,
    /// Start of the window (TIME).
    #[arg(long)]
    pub from: String,
    /// End of the window (TIME). Default: now.
    #[arg(long, default_value = "0s")]
    pub to: String,
    #[command(flatten)]
    pub out: GeoOut,
    #[command(flatten)]
    pub why: WhyArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator search-face`.
#[derive(clap::Args)]
pub struct SearchFaceArgs {
    /// The photo (JPEG or PNG) showing one face.
    pub photo: PathBuf,
    /// How many persons to show (1..=1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub top: u16,
    /// Leave out persons less similar than this (cosine, -1..=1; -1 lists non-matches too).
    /// Default: the verification threshold (watchlist.face_embedder.match_threshold, 0.363
    /// for SFace): only matches.
    #[arg(long, allow_hyphen_values = true)]
    pub min_similarity: Option<f32>,
    /// Only persons seen at or after TIME (RFC 3339, or a duration before now: 2h, 1d).
    #[arg(long)]
    pub from: Option<String>,
    /// Only persons seen at or before TIME. Default: now (when --from is given).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub why: WhyArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator evidence`.
#[derive(clap::Args)]
pub struct EvidenceArgs {
    /// The image's SHA-256 (64 lowercase hex digits).
    pub sha256: String,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub why: WhyArgs,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator token`.
#[derive(clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenCmd,
}

/// The arguments of `aggregator audit`.
#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub action: AuditCmd,
}

/// The arguments of `aggregator dead-letters`.
#[derive(clap::Args)]
pub struct DeadLettersArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// At most this many, oldest first.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Also write dead letter ID's raw payload to this file (read it with `decode`).
    #[arg(long, requires = "id")]
    pub out: Option<PathBuf>,
    /// Only this dead letter.
    #[arg(long)]
    pub id: Option<u64>,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The dead letter's id (`aggregator dead-letters`).
    pub id: u64,
    /// Wait up to this many seconds for the running aggregator to apply it, and say how
    /// it went (0: do not wait).
    #[arg(long, default_value_t = 10)]
    pub wait_s: u64,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The arguments of `aggregator decode`.
#[derive(clap::Args)]
pub struct DecodeArgs {
    /// The payload file, or - for standard input.
    pub input: String,
    /// One line instead of pretty-printed.
    #[arg(long)]
    pub compact: bool,
}

/// Output of the queries that return sightings.
#[derive(clap::Args)]
pub struct GeoOut {
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with_all = ["geojson", "csv"])]
    pub json: bool,
    /// Print GeoJSON: a FeatureCollection with a LineString per identity's path and a Point
    /// per sighting (camera, time span, confidence, evidence).
    #[arg(long, conflicts_with = "csv")]
    pub geojson: bool,
    /// Print CSV (a UTF-8 byte order mark, then RFC 4180 with a header row; one row per
    /// sighting with UTC times and the same in api.time_zone of --config (default
    /// Asia/Shanghai) with the offset, identity, camera, position, confidence, plate,
    /// evidence refs; cells that a spreadsheet would take for a formula start with ').
    #[arg(long)]
    pub csv: bool,
}

/// Prints sightings as a table (after `head`), JSON (`json` is the whole document), GeoJSON
/// or CSV.
pub fn print_sightings(
    out: &GeoOut,
    head: &str,
    json: serde_json::Value,
    rows: &[aggregator::store::SightingRow],
    db: &DbArgs,
) -> anyhow::Result<()> {
    if out.csv {
        print!("{}", query::sightings_csv(rows, &db.site_zone()?));
    } else if out.geojson {
        println!("{}", serde_json::to_string_pretty(&query::geojson(rows))?);
    } else if out.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{head}{}", query::sightings_table(rows));
    }
    Ok(())
}

/// Why a query is made, written with it to the audit log (as the API's X-Purpose / X-Case;
/// asked for, not enforced, on the command line).
#[derive(clap::Args)]
pub struct WhyArgs {
    /// Why this query is made (3..=200 characters); audited.
    #[arg(long, requires = "case")]
    pub purpose: Option<String>,
    /// The case reference (1..=64 characters: letters and digits of any script, . _ / - # :
    /// ( ) [ ], e.g. 京公（刑）字〔2026〕42号); audited.
    #[arg(long, requires = "purpose")]
    pub case: Option<String>,
}

impl WhyArgs {
    pub fn checked(&self) -> anyhow::Result<aggregator::service::Why> {
        let why = aggregator::service::Why {
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
pub struct DbArgs {
    /// SQLite database file, or a PostgreSQL URL `postgres://user:password@host:port/db`
    /// (default: the [store] of --config, else sharpeyes.db).
    #[arg(long)]
    pub db: Option<String>,
    /// Configuration file to take the database path from (and, for enroll, the face models:
    /// [watchlist]).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

impl DbArgs {
    /// The site's time zone: `api.time_zone` of `--config`, else the default (Beijing time).
    pub fn site_zone(&self) -> anyhow::Result<aggregator::sitetime::SiteZone> {
        let name = load_config(self.config.as_ref())?.api.time_zone;
        Ok(aggregator::sitetime::SiteZone::resolve(&name)?)
    }

    pub fn location(&self) -> anyhow::Result<Location> {
        Ok(match &self.db {
            Some(p) => Location::parse(p),
            None => load_config(self.config.as_ref())?.store.location()?,
        })
    }

    /// Opens the database, creating it if missing (enrollment may come before the first run).
    pub fn open_or_create(&self) -> anyhow::Result<Store> {
        let at = self.location()?;
        Store::open_at(&at).with_context(|| format!("opening database {}", at.describe()))
    }

    pub fn open(&self) -> anyhow::Result<Store> {
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
pub enum EnrollCmd {
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
pub enum WatchlistCmd {
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

pub fn parse_contact(s: &str) -> Result<Contact, aggregator::watchlist::WatchlistError> {
    aggregator::watchlist::parse_contact(s)
}

pub fn enroll_face(db: &DbArgs, req: FaceRequest) -> anyhow::Result<()> {
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
pub struct AlertList {
    /// Only alerts nobody acknowledged yet.
    #[arg(long)]
    pub open: bool,
    /// Only this rule: loitering, face_watchlist, plate_watchlist.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only alerts reported within this long before now (e.g. 90s, 10m, 2h, 1d).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// At most this many (the newest).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Subcommand)]
pub enum AlertsCmd {
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
pub enum TokenCmd {
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
pub struct KeyArgs {
    /// The audit key file (Ed25519, PKCS#8). Default: [audit] key_file of --config, else
    /// `<database>.audit-key` beside a SQLite file, `sharpeyes-audit.key` with PostgreSQL.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

impl KeyArgs {
    pub fn path(&self, db: &DbArgs) -> anyhow::Result<PathBuf> {
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
pub enum AuditCmd {
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

pub fn split_alert_id(id: &str) -> anyhow::Result<(&str, &str)> {
    id.split_once('/')
        .filter(|(a, i)| !a.is_empty() && !i.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("{id:?}: expected AGENT/ALERT_ID (as `aggregator alerts` lists it)")
        })
}

pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<AggregatorConfig> {
    Ok(match path {
        Some(p) => AggregatorConfig::load(p)?,
        None => AggregatorConfig::default(),
    })
}
