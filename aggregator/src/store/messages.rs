//! The agents' messages as stored: tracks, alerts (listing, paging, acknowledgement,
//! evidence), statuses; the row types and filters the queries take.

use serde::Serialize;
use sharpeyes_wire::AgentStatus;

use super::sql::{Arg, Value};
use super::{Store, StoreError, evidence};
use crate::args;

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Stored.
    Stored,
    /// Stored, and it raised an alert not seen before (not an update of an open one).
    NewAlert,
    /// Its `(agent, seq)` was already stored; nothing changed.
    Duplicate,
}

/// One stored alert, as the queries return it (evidence listed, not included).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRow {
    /// Agent id.
    pub agent: String,
    /// Alert id (unique per agent).
    pub alert_id: String,
    /// Site id.
    pub site: String,
    /// Camera id.
    pub camera: String,
    /// Rule: `loitering`, `face_watchlist`, `plate_watchlist`.
    pub kind: String,
    /// `low`, `normal`, `high` (as last reported).
    pub priority: String,
    /// First report, capture time, UTC ms.
    pub first_ms: i64,
    /// Last report (updates within the rule's cool-down), UTC ms.
    pub last_ms: i64,
    /// Reports received (the first and its updates).
    pub sightings: u64,
    /// The track that raised it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<u64>,
    /// One human-readable line, as last reported.
    pub summary: String,
    /// Rule-specific details, as last reported.
    pub details: std::collections::BTreeMap<String, String>,
    /// Roles of the evidence images held (`crop`, `frame`).
    pub evidence: Vec<String>,
    /// The evidence images by role → SHA-256 in the evidence store ([`Store::evidence`],
    /// `GET /api/v1/evidence/{sha256}`).
    pub evidence_refs: std::collections::BTreeMap<String, String>,
    /// When it arrived at the aggregator, UTC ms.
    pub received_ms: i64,
    /// When an operator acknowledged it, UTC ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_ms: Option<i64>,
    /// Who acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    /// The acknowledgement's note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_note: Option<String>,
}

impl AlertRow {
    /// The row a new alert becomes when stored (`received_ms` at the aggregator): what the
    /// live alert stream sends without reading it back.
    pub fn from_wire(agent: &str, a: &sharpeyes_wire::Alert, received_ms: i64) -> Self {
        let mut evidence: Vec<String> = a.evidence.iter().map(|e| e.role.clone()).collect();
        evidence.sort();
        evidence.dedup();
        Self {
            agent: agent.to_string(),
            alert_id: a.alert_id.clone(),
            site: a.site.clone(),
            camera: a.camera.clone(),
            kind: a.kind.as_str().to_string(),
            priority: a.priority.as_str().to_string(),
            first_ms: a.ts_ms,
            last_ms: a.ts_ms,
            sightings: 1,
            track: a.track,
            summary: a.summary.clone(),
            details: a.details.clone(),
            evidence,
            evidence_refs: a
                .evidence
                .iter()
                .filter(|e| evidence::keeps_alert_image(e))
                .map(|e| (e.role.clone(), evidence::sha256_hex(&e.data)))
                .collect(),
            received_ms,
            acked_ms: None,
            acked_by: None,
            ack_note: None,
        }
    }
}

/// Where a page of alerts starts: the last alert of the previous page (newest-first order:
/// `last_ms` descending, then agent and alert id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AlertKey {
    /// Its `last_ms`.
    pub last_ms: i64,
    /// Its agent.
    pub agent: String,
    /// Its alert id.
    pub alert_id: String,
}

impl AlertKey {
    /// The key of a row.
    pub fn of(r: &AlertRow) -> Self {
        Self {
            last_ms: r.last_ms,
            agent: r.agent.clone(),
            alert_id: r.alert_id.clone(),
        }
    }
}

/// Which alerts a query wants.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only alerts not yet acknowledged.
    pub open_only: bool,
    /// Only alerts last reported at or after this time (UTC ms).
    pub since_ms: Option<i64>,
    /// Only this rule (`loitering`, `face_watchlist`, `plate_watchlist`).
    pub kind: Option<String>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

/// One stored track, as the queries return it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackRow {
    /// Agent id.
    pub agent: String,
    /// Site id.
    pub site: String,
    /// Camera id.
    pub camera: String,
    /// Track id (per agent and camera).
    pub track: u64,
    /// Object class.
    pub class: String,
    /// First sighting, UTC ms.
    pub first_ms: i64,
    /// Last sighting, UTC ms.
    pub last_ms: i64,
    /// Whether the agent reported the track's end.
    pub ended: bool,
    /// Updates received (start, updates, end).
    pub updates: u64,
    /// Best detection score.
    pub best_score: f64,
    /// Last box `[x1, y1, x2, y2]` in pixels of a `frame_w`×`frame_h` frame.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    /// Frame width, pixels.
    pub frame_w: u32,
    /// Frame height, pixels.
    pub frame_h: u32,
    /// The track's voted plate (plate tracks, vehicles), as last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
    /// Confidence of `plate` (0..1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plate_confidence: Option<f64>,
    /// The same camera's track of another class this one belongs with, as last reported (a
    /// person's face, a face's person, a plate's vehicle, a vehicle's plate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
    /// SHA-256 of the track's best shot in the evidence store ([`Store::evidence`]), when
    /// the agent sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_crop: Option<String>,
}

/// Which tracks a query wants.
#[derive(Debug, Clone, Default)]
pub struct TrackFilter {
    /// Only this camera.
    pub camera: Option<String>,
    /// Only tracks seen at or after this time (UTC ms).
    pub since_ms: Option<i64>,
    /// At most this many (newest first when limited). Default: all.
    pub limit: Option<usize>,
}

impl Store {
    /// Stored tracks matching `f`, oldest first.
    pub fn tracks(&self, f: &TrackFilter) -> Result<Vec<TrackRow>, StoreError> {
        let mut sql = String::from(
            "SELECT agent, site, camera, track, class, first_ms, last_ms, ended, updates, best_score,
                    x1, y1, x2, y2, frame_w, frame_h, plate, plate_confidence, link, evidence_crop
             FROM tracks WHERE 1=1",
        );
        let mut a: Vec<Value> = Vec::new();
        if let Some(c) = &f.camera {
            sql.push_str(" AND camera = ?");
            a.push(c.to_value());
        }
        if let Some(s) = f.since_ms {
            sql.push_str(" AND last_ms >= ?");
            a.push(s.to_value());
        }
        sql.push_str(" ORDER BY first_ms DESC, agent DESC, camera DESC, track DESC");
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let mut rows = self
            .db()
            .query(&sql, &a)?
            .iter()
            .map(|r| {
                Ok(TrackRow {
                    agent: r.get(0)?,
                    site: r.get(1)?,
                    camera: r.get(2)?,
                    track: r.get(3)?,
                    class: r.get(4)?,
                    first_ms: r.get(5)?,
                    last_ms: r.get(6)?,
                    ended: r.get(7)?,
                    updates: r.get(8)?,
                    best_score: r.get(9)?,
                    bbox: [r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?],
                    frame_w: r.get(14)?,
                    frame_h: r.get(15)?,
                    plate: r.get(16)?,
                    plate_confidence: r.get(17)?,
                    link: r.get(18)?,
                    evidence_crop: r.get(19)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// Stored alerts matching `f`, newest first.
    pub fn alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        self.alerts_page(f, None)
    }

    /// [`alerts`](Self::alerts) after `after` (the last row of the previous page, in the
    /// same newest-first order): the API's pagination.
    pub fn alerts_page(
        &self,
        f: &AlertFilter,
        after: Option<&AlertKey>,
    ) -> Result<Vec<AlertRow>, StoreError> {
        let mut sql = String::from(
            "SELECT a.agent, a.alert_id, site, camera, kind, priority, first_ms, last_ms, sightings,
                    track, summary, details_json, received_ms, acked_ms, acked_by, ack_note,
                    (SELECT string_agg(role || '=' || sha256, ',') FROM alert_evidence e
                      WHERE e.agent = a.agent AND e.alert_id = a.alert_id)
             FROM alerts a WHERE 1=1",
        );
        let mut a: Vec<Value> = Vec::new();
        if f.open_only {
            sql.push_str(" AND acked_ms IS NULL");
        }
        if let Some(s) = f.since_ms {
            sql.push_str(" AND last_ms >= ?");
            a.push(s.to_value());
        }
        if let Some(k) = &f.kind {
            sql.push_str(" AND kind = ?");
            a.push(k.to_value());
        }
        if let Some(k) = after {
            sql.push_str(" AND (last_ms < ? OR (last_ms = ? AND (a.agent, a.alert_id) > (?, ?)))");
            a.extend(
                args![k.last_ms, k.last_ms, k.agent, k.alert_id]
                    .iter()
                    .cloned(),
            );
        }
        sql.push_str(" ORDER BY last_ms DESC, a.agent, a.alert_id");
        if let Some(l) = f.limit {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        self.db()
            .query(&sql, &a)?
            .iter()
            .map(|r| {
                let details: String = r.get(11)?;
                let refs: Option<String> = r.get(16)?;
                let evidence_refs: std::collections::BTreeMap<String, String> = refs
                    .iter()
                    .flat_map(|e| e.split(','))
                    .filter_map(|e| e.split_once('='))
                    .map(|(role, sha)| (role.to_string(), sha.to_string()))
                    .collect();
                let evidence: Vec<String> = evidence_refs.keys().cloned().collect();
                Ok(AlertRow {
                    agent: r.get(0)?,
                    alert_id: r.get(1)?,
                    site: r.get(2)?,
                    camera: r.get(3)?,
                    kind: r.get(4)?,
                    priority: r.get(5)?,
                    first_ms: r.get(6)?,
                    last_ms: r.get(7)?,
                    sightings: r.get(8)?,
                    track: r.get(9)?,
                    summary: r.get(10)?,
                    details: serde_json::from_str(&details).unwrap_or_default(),
                    evidence,
                    evidence_refs,
                    received_ms: r.get(12)?,
                    acked_ms: r.get(13)?,
                    acked_by: r.get(14)?,
                    ack_note: r.get(15)?,
                })
            })
            .collect()
    }

    /// One evidence image of an alert: its media type and bytes (from the evidence store).
    pub fn alert_evidence(
        &self,
        agent: &str,
        alert_id: &str,
        role: &str,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.db()
            .one(
                "SELECT e.mime, e.bytes FROM alert_evidence a JOIN evidence e ON e.sha256 = a.sha256
                 WHERE a.agent = ? AND a.alert_id = ? AND a.role = ?",
                args![agent, alert_id, role],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
    }

    /// Acknowledges an alert (`by` whom, with a note); false if there is no such alert or it
    /// was acknowledged already.
    pub fn ack_alert(
        &self,
        agent: &str,
        alert_id: &str,
        by: &str,
        note: &str,
    ) -> Result<bool, StoreError> {
        let n = self.db().execute(
            "UPDATE alerts SET acked_ms = ?, acked_by = ?, ack_note = ?
             WHERE agent = ? AND alert_id = ? AND acked_ms IS NULL",
            args![sharpeyes_wire::now_ms(), by, note, agent, alert_id],
        )?;
        Ok(n == 1)
    }

    /// Number of stored messages (all kinds).
    pub fn message_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT count(*) FROM messages", &[])
    }

    pub(crate) fn count(&self, sql: &str, a: &[Value]) -> Result<u64, StoreError> {
        self.db()
            .one(sql, a)?
            .map(|r| r.get::<i64>(0))
            .transpose()
            .map(|n| n.unwrap_or(0).max(0) as u64)
    }

    fn keys(&self, sql: &str, a: &[Value]) -> Result<Vec<(String, u64)>, StoreError> {
        self.db()
            .query(sql, a)?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
    }

    /// Every stored `(agent, seq)` pair, sorted.
    pub fn message_keys(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.keys("SELECT agent, seq FROM messages ORDER BY agent, seq", &[])
    }

    /// The stored `(agent, seq)` pairs of one kind of message (`tracks`, `status`...), sorted.
    pub fn message_keys_of(&self, kind: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.keys(
            "SELECT agent, seq FROM messages WHERE kind = ? ORDER BY agent, seq",
            args![kind],
        )
    }

    /// The last status of an agent, if any.
    pub fn agent_status(&self, agent: &str) -> Result<Option<AgentStatus>, StoreError> {
        let json: Option<String> = self
            .db()
            .one(
                "SELECT status_json FROM agents WHERE agent = ?",
                args![agent],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }
}
