//! The schema: the current version, the migrations from each older one, and the tables
//! of both backends (PostgreSQL gets partitioned sightings and track points).

pub(super) const SCHEMA_VERSION: i64 = 14;

/// Migrations from each older schema version to the next (index 0: from 1 to 2).
pub(super) const MIGRATIONS: &[&str] = &[
    "ALTER TABLE tracks ADD COLUMN plate TEXT;
     ALTER TABLE tracks ADD COLUMN plate_confidence REAL;",
    "ALTER TABLE tracks ADD COLUMN link INTEGER;",
    // 3 → 4: the alert tables, which SCHEMA creates.
    "",
    // 4 → 5: the watchlist tables, which SCHEMA creates.
    "",
    // 5 → 6: the fusion tables, which fusion::SCHEMA creates.
    "",
    // 6 → 7: the fusion inbox and the messages' time index (for retention), which SCHEMA
    // and fusion::SCHEMA create.
    "",
    // 7 → 8: person_faces, which faces::SCHEMA creates.
    "",
    // 8 → 9: the evidence store (evidence::SCHEMA; schema 8's inline alert images are moved
    // by evidence::migrate) and each track's best shot.
    "ALTER TABLE tracks ADD COLUMN evidence_crop TEXT;",
    // 9 → 10: the API's tokens and audit log, which tokens::SCHEMA and audit::SCHEMA create.
    "",
    // 10 → 11: a camera's sightings indexed with their end too (the area queries filter on
    // it in the index instead of reading every row of the day before the window); the
    // schema creates it again.
    "DROP INDEX IF EXISTS sightings_by_camera_time;",
    // 11 → 12: the plate index holds kind and identity, so the vehicles read as a plate are
    // found in the index (a plate seen 50,000 times was 50,000 row reads); the schema makes
    // it again.
    "DROP INDEX IF EXISTS sightings_by_plate;",
    // 12 → 13: dead letters (deadletter::SCHEMA) and the audit log's signed checkpoints,
    // which their schemas create.
    "",
    // 13 → 14: no query reads sightings by position (the box query goes through the
    // cameras' (camera, time) ranges), so the writer no longer keeps sightings_by_place.
    // An existing store's track_points keep their layout (see TRACK_POINTS).
    "DROP INDEX IF EXISTS sightings_by_place;",
];

/// Track points (PostgreSQL: partitioned by day of `ts_ms`; the key holds the time).
///
/// The key leads with the time (schema 14): points arrive in capture-time order, so each
/// transaction's inserts land at the right edge of one B-tree (a few pages) instead of at
/// one place per camera and track, and the key is the time index retention deletes by. A
/// store created before schema 14 keeps its `(agent, camera, track, ts_ms, event)` key and
/// its `track_points_by_time` index (rewriting the table at start would take as long as
/// the table is large); the queries are the same on both.
pub(super) const TRACK_POINTS: &str = "
CREATE TABLE IF NOT EXISTS track_points (
    agent  TEXT    NOT NULL,
    camera TEXT    NOT NULL,
    track  INTEGER NOT NULL,
    ts_ms  INTEGER NOT NULL,
    event  TEXT    NOT NULL,
    score  REAL    NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    PRIMARY KEY (ts_ms, agent, camera, track, event)
) WITHOUT ROWID;
";

/// PostgreSQL's `sightings`: partitioned by day of `first_ms`, so the key holds `first_ms`
/// (see the module docs for how a track stays one sighting).
pub(super) const PG_SIGHTINGS: &str = "
CREATE TABLE IF NOT EXISTS sightings (
    agent      TEXT    NOT NULL,
    camera     TEXT    NOT NULL,
    track      INTEGER NOT NULL,
    site       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('vehicle', 'person')),
    identity   INTEGER NOT NULL,
    class      TEXT    NOT NULL,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    lat        REAL,
    lon        REAL,
    confidence REAL    NOT NULL,
    ended      INTEGER NOT NULL,
    plate      TEXT,
    why_json   TEXT    NOT NULL,
    PRIMARY KEY (agent, camera, track, first_ms)
) PARTITION BY RANGE (first_ms);
CREATE INDEX IF NOT EXISTS sightings_by_identity ON sightings (kind, identity, first_ms);
CREATE INDEX IF NOT EXISTS sightings_by_time ON sightings (first_ms);
CREATE INDEX IF NOT EXISTS sightings_by_camera_time ON sightings (agent, camera, first_ms, last_ms);
CREATE INDEX IF NOT EXISTS sightings_by_plate ON sightings (plate, kind, identity) WHERE plate IS NOT NULL;
";

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    agent       TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    sent_ms     INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (agent, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (received_ms);
CREATE TABLE IF NOT EXISTS tracks (
    agent      TEXT    NOT NULL,
    camera     TEXT    NOT NULL,
    track      INTEGER NOT NULL,
    site       TEXT    NOT NULL,
    class      TEXT    NOT NULL,
    first_ms   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    ended      INTEGER NOT NULL DEFAULT 0,
    updates    INTEGER NOT NULL DEFAULT 0,
    best_score REAL    NOT NULL,
    frame_w    INTEGER NOT NULL,
    frame_h    INTEGER NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    plate            TEXT,
    plate_confidence REAL,
    link             INTEGER,
    evidence_crop    TEXT,
    PRIMARY KEY (agent, camera, track)
);
CREATE INDEX IF NOT EXISTS tracks_by_camera_time ON tracks (camera, last_ms);
CREATE INDEX IF NOT EXISTS tracks_by_time ON tracks (last_ms);
CREATE TABLE IF NOT EXISTS alerts (
    agent        TEXT    NOT NULL,
    alert_id     TEXT    NOT NULL,
    site         TEXT    NOT NULL,
    camera       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    priority     TEXT    NOT NULL,
    first_ms     INTEGER NOT NULL,
    last_ms      INTEGER NOT NULL,
    sightings    INTEGER NOT NULL DEFAULT 1,
    track        INTEGER,
    summary      TEXT    NOT NULL,
    details_json TEXT    NOT NULL,
    received_ms  INTEGER NOT NULL,
    acked_ms     INTEGER,
    acked_by     TEXT,
    ack_note     TEXT,
    PRIMARY KEY (agent, alert_id)
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (last_ms);
CREATE TABLE IF NOT EXISTS agents (
    agent       TEXT PRIMARY KEY,
    site        TEXT    NOT NULL,
    online      INTEGER NOT NULL,
    version     TEXT    NOT NULL,
    started_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    status_json TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_faces (
    id           TEXT PRIMARY KEY,
    role         TEXT    NOT NULL CHECK (role IN ('patient', 'guardian')),
    name         TEXT    NOT NULL,
    guardian_of  TEXT    NOT NULL DEFAULT '[]',
    contacts     TEXT    NOT NULL DEFAULT '[]',
    consent      TEXT,
    embeddings   TEXT    NOT NULL,
    photos       INTEGER NOT NULL,
    enrolled_ms  INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_plates (
    plate    TEXT PRIMARY KEY,
    reason   TEXT    NOT NULL,
    added_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_version (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    version    INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
";

/// The PostgreSQL schema: the common one with PostgreSQL's types; the time-partitioned tables
/// declared partitioned by range of their time.
pub(super) fn postgres_schema(common: &str) -> String {
    common
        .replace("INTEGER", "BIGINT")
        .replace(" REAL", " DOUBLE PRECISION")
        .replace("BLOB", "BYTEA")
        .replace(") WITHOUT ROWID;", ");")
}
