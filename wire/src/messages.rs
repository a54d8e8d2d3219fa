//! The messages. Every field is documented; names are the MessagePack / JSON keys.
//!
//! Times are UTC milliseconds since the Unix epoch (`*_ms`). Optional fields are left out of
//! the encoding when absent and default to empty when missing, so they can be added without a
//! schema version bump.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::quant::{QBox, QEmbedding};

/// One MQTT payload: who sent it, its place in the sender's sequence, and what it says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Schema version of this message (the same number as in the payload header).
    pub v: u8,
    /// Id of the sending agent (or aggregator, for watchlists). Must match the topic's agent.
    pub agent: String,
    /// Per-sender monotonic sequence number, starting at 1. `(agent, seq)` is the idempotency
    /// key: a receiver stores each pair at most once.
    pub seq: u64,
    /// When the sender encoded this message (UTC ms).
    pub sent_ms: i64,
    /// The content.
    pub body: Body,
}

impl Envelope {
    /// An envelope of the current schema version.
    pub fn new(agent: impl Into<String>, seq: u64, sent_ms: i64, body: Body) -> Self {
        Self {
            v: crate::SCHEMA_VERSION,
            agent: agent.into(),
            seq,
            sent_ms,
            body,
        }
    }
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// Track updates of one camera over a short interval (topic `.../{camera}/tracks`).
    Tracks(TrackBatch),
    /// One alert raised by a rule (topic `.../{camera}/alerts`).
    Alert(Alert),
    /// The agent's health (retained topic `.../status`).
    Status(AgentStatus),
    /// The current face and plate watchlists (retained topic `{prefix}/config/watchlists`).
    Watchlists(Watchlists),
    /// The aggregator's acknowledgement of committed messages, to one agent (topic
    /// `{prefix}/acks/{agent}`).
    Acks(Acks),
}

impl Body {
    /// Short name of the variant (`tracks`, `alert`, `status`, `watchlists`, `acks`).
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Tracks(_) => "tracks",
            Body::Alert(_) => "alert",
            Body::Status(_) => "status",
            Body::Watchlists(_) => "watchlists",
            Body::Acks(_) => "acks",
        }
    }
}

/// Track updates of one camera, batched (by default every 500 ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackBatch {
    /// Site (district / street) the agent belongs to.
    pub site: String,
    /// Camera id, unique within the agent.
    pub camera: String,
    /// Width in pixels of the analysed frames; with `frame_h` it turns a [`QBox`] into pixels.
    pub frame_w: u32,
    /// Height in pixels of the analysed frames.
    pub frame_h: u32,
    /// Capture time of the first frame this batch covers (UTC ms).
    pub from_ms: i64,
    /// Capture time of the last frame this batch covers (UTC ms).
    pub to_ms: i64,
    /// Frames analysed in `[from_ms, to_ms]` (0 is possible: a batch may only close tracks).
    pub frames: u32,
    /// The updates, in capture order.
    pub updates: Vec<TrackUpdate>,
}

/// What happened to one track at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackEvent {
    /// First sighting of the track (sent once it is confirmed).
    Start,
    /// Periodic update while the track lives (about once a second).
    Update,
    /// The track ended (not seen for the tracker's maximum age); carries its last box.
    End,
}

impl TrackEvent {
    /// The `snake_case` name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackEvent::Start => "start",
            TrackEvent::Update => "update",
            TrackEvent::End => "end",
        }
    }
}

/// Object classes the agents report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectClass {
    /// A face (from the face detector).
    Face,
    /// A person (whole body).
    Person,
    /// A bicycle.
    Bicycle,
    /// A car.
    Car,
    /// A motorcycle / motorbike / e-bike.
    Motorcycle,
    /// A bus.
    Bus,
    /// A truck.
    Truck,
    /// A licence plate region.
    Plate,
}

impl ObjectClass {
    /// Whether the object detector reports this class (person or vehicle; not face or plate).
    pub fn is_detected_object(self) -> bool {
        !matches!(self, ObjectClass::Face | ObjectClass::Plate)
    }

    /// Whether this is a vehicle class.
    pub fn is_vehicle(self) -> bool {
        self == ObjectClass::Bicycle || self.carries_plate()
    }

    /// Whether vehicles of this class carry a licence plate (every vehicle but the bicycle).
    pub fn carries_plate(self) -> bool {
        matches!(
            self,
            ObjectClass::Car | ObjectClass::Motorcycle | ObjectClass::Bus | ObjectClass::Truck
        )
    }

    /// Every class, in declaration order.
    pub const ALL: [ObjectClass; 8] = [
        ObjectClass::Face,
        ObjectClass::Person,
        ObjectClass::Bicycle,
        ObjectClass::Car,
        ObjectClass::Motorcycle,
        ObjectClass::Bus,
        ObjectClass::Truck,
        ObjectClass::Plate,
    ];

    /// The `snake_case` name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectClass::Face => "face",
            ObjectClass::Person => "person",
            ObjectClass::Bicycle => "bicycle",
            ObjectClass::Car => "car",
            ObjectClass::Motorcycle => "motorcycle",
            ObjectClass::Bus => "bus",
            ObjectClass::Truck => "truck",
            ObjectClass::Plate => "plate",
        }
    }

    /// Parses a `snake_case` name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One update of one track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackUpdate {
    /// Track id, unique per (agent, camera) for the agent's lifetime.
    pub track: u64,
    /// Object class.
    pub class: ObjectClass,
    /// Start, update or end.
    pub event: TrackEvent,
    /// Capture time of the frame this update describes (UTC ms).
    pub ts_ms: i64,
    /// Box in that frame, image-relative and quantised.
    #[serde(rename = "box")]
    pub bbox: QBox,
    /// Detection score of this frame's box (0..1); for `end`, the track's best score.
    pub score: f32,
    /// Best face embedding so far (L2-normalised, quantised), when the track has a face.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<QEmbedding>,
    /// Voted plate reading so far, for vehicles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<PlateReading>,
    /// The camera's track of another class this one belongs with, as last seen: a person's
    /// face track, a face's person track, a plate's vehicle track, a vehicle's plate track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
    /// The track's best shot so far, when it improved markedly since the last one sent (or
    /// the track ends with one not sent yet): a small JPEG (longer side at most 128 px) of
    /// the best face (face and person tracks), the vehicle or the plate. Sent at most a few
    /// times per track; the aggregator stores it content-addressed and shows it beside the
    /// track's sighting. `role` says what it shows: `face`, `vehicle`, `plate`. Absent in
    /// most updates (and in payloads of agents older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb: Option<Evidence>,
}

/// A plate string with its confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateReading {
    /// Normalised plate text, province character first, no separator (e.g. `京A12345`).
    pub text: String,
    /// Confidence of the reading (0..1), e.g. the mean per-character probability after voting.
    pub confidence: f32,
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Informational (e.g. a watchlisted patient seen with a guardian).
    Low,
    /// Needs attention.
    Normal,
    /// Needs action now (e.g. a watchlisted patient seen alone).
    High,
}

impl Priority {
    /// The name used on the wire (`low`, `normal`, `high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// What rule raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A person stayed in a zone longer than its threshold.
    Loitering,
    /// A face matched the face watchlist.
    FaceWatchlist,
    /// A plate matched the plate watchlist.
    PlateWatchlist,
}

impl AlertKind {
    /// The name used on the wire (`loitering`, `face_watchlist`, `plate_watchlist`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Loitering => "loitering",
            AlertKind::FaceWatchlist => "face_watchlist",
            AlertKind::PlateWatchlist => "plate_watchlist",
        }
    }
}

/// An alert, with optional evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Site of the camera.
    pub site: String,
    /// Camera id.
    pub camera: String,
    /// Alert id, unique per agent; a repeated sighting within a cool-down re-sends the same id
    /// with a newer `ts_ms` (an update, not a new alert).
    pub alert_id: String,
    /// The rule.
    pub kind: AlertKind,
    /// Urgency.
    pub priority: Priority,
    /// Capture time of the frame that raised (or last updated) the alert (UTC ms).
    pub ts_ms: i64,
    /// The track that raised it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<u64>,
    /// One human-readable line.
    pub summary: String,
    /// Rule-specific details (zone, dwell_s, watchlist id, similarity...), as strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// Evidence images (JPEG), e.g. the object crop and a downscaled full frame.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
}

/// One evidence image (of an alert, or a track's best shot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What the image shows (alerts: `crop`, `frame`, `face`, `linked`; track thumbs:
    /// `face`, `vehicle`, `plate`).
    pub role: String,
    /// Media type, `image/jpeg`.
    pub mime: String,
    /// The encoded image.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// An agent's health, published retained; the broker publishes `online: false` as last will.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Site of the agent.
    pub site: String,
    /// Whether the agent is running.
    pub online: bool,
    /// Agent software version.
    pub version: String,
    /// When the agent started (UTC ms); 0 in a last-will message.
    pub started_ms: i64,
    /// Per-camera state.
    #[serde(default)]
    pub cameras: Vec<CameraStatus>,
    /// Version of the watchlists the agent applies, if it has any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchlist_version: Option<u64>,
    /// Agent-wide counters (name → value), e.g. `published`, `publish_failed`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

/// One camera's state in an [`AgentStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraStatus {
    /// Camera id.
    pub id: String,
    /// `starting`, `playing`, `reconnecting` or `ended`.
    pub state: String,
    /// Frames that reached the analysis stage's input.
    pub frames_decoded: u64,
    /// Frames analysed.
    pub frames_analysed: u64,
    /// Frames dropped because analysis was behind.
    pub frames_dropped: u64,
    /// Times the stream was (re)started after an error or end of stream.
    pub reconnects: u64,
}

/// The watchlists every agent applies; published retained by the aggregator.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Watchlists {
    /// Monotonic version; agents report the version they apply.
    pub version: u64,
    /// Enrolled faces (patients and their guardians).
    #[serde(default)]
    pub faces: Vec<FaceEntry>,
    /// Wanted plates.
    #[serde(default)]
    pub plates: Vec<PlateEntry>,
}

/// Role of an enrolled face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaceRole {
    /// A person to look for (e.g. a dementia patient).
    Patient,
    /// A guardian / relative of one or more patients.
    Guardian,
}

/// One enrolled face.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceEntry {
    /// Enrollment id.
    pub id: String,
    /// Display label (no personal data beyond what the operator entered).
    pub label: String,
    /// Patient or guardian.
    pub role: FaceRole,
    /// For guardians: ids of the patients they accompany.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardian_of: Vec<String>,
    /// Embeddings of the enrolled photos (same embedder as the agents).
    pub embeddings: Vec<QEmbedding>,
}

/// One wanted plate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateEntry {
    /// Normalised plate text.
    pub plate: String,
    /// Why it is wanted.
    pub reason: String,
}

/// End-to-end acknowledgement: the `seq`s of one agent's messages (track batches, alerts) that
/// an aggregator has committed to its store, or found there already (a replay). Published by
/// the aggregator after each commit on `{prefix}/acks/{agent}` (QoS 1, not retained); the
/// envelope's `agent` is the aggregator's client id and its `seq` only counts that
/// aggregator's acknowledgements (it is no idempotency key: applying one twice is harmless).
///
/// The agent removes a spooled message only when its `seq` arrives here; the broker's PUBACK
/// only says the message is in flight. A `seq` the agent does not hold (acknowledged already,
/// evicted, or never sent) is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Acks {
    /// Inclusive ranges `[first, last]` of acknowledged `seq`s, ascending and disjoint as
    /// [`Acks::from_seqs`] makes them (a reader must not rely on it). A receiver looks up the
    /// seqs it holds within each range, never walks a range: `[1, u64::MAX]` is one entry.
    pub ranges: Vec<[u64; 2]>,
}

impl Acks {
    /// The compact form of `seqs` (any order, repeats allowed): consecutive seqs become one
    /// range.
    pub fn from_seqs(seqs: impl IntoIterator<Item = u64>) -> Self {
        let mut all: Vec<u64> = seqs.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        let mut ranges: Vec<[u64; 2]> = Vec::new();
        for s in all {
            match ranges.last_mut() {
                Some(r) if r[1].checked_add(1) == Some(s) => r[1] = s,
                _ => ranges.push([s, s]),
            }
        }
        Self { ranges }
    }

    /// Whether `seq` is acknowledged.
    pub fn contains(&self, seq: u64) -> bool {
        self.ranges.iter().any(|[a, b]| (*a..=*b).contains(&seq))
    }
}

#[cfg(test)]
mod acks_tests {
    use super::Acks;

    #[test]
    fn seqs_compact_into_ranges() {
        let a = Acks::from_seqs([7, 3, 4, 5, 9, 4, u64::MAX, u64::MAX - 1]);
        assert_eq!(
            a.ranges,
            vec![[3, 5], [7, 7], [9, 9], [u64::MAX - 1, u64::MAX]]
        );
        assert!(a.contains(4) && a.contains(9) && !a.contains(6) && !a.contains(10));
        assert!(Acks::from_seqs([]).ranges.is_empty());
    }
}
