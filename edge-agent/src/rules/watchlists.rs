//! The watchlists prepared for matching, once per version and shared by every camera: face
//! embeddings dequantised and L2-normalised into one contiguous table, each patient's
//! guardians resolved to indices, and plates normalised and indexed exactly and by their
//! confusable-canonical form (`sharpeyes_wire::plate`).

use std::collections::HashMap;

use sharpeyes_wire::plate::{self, PlateMatch};
use sharpeyes_wire::{FaceRole, Watchlists};

use perception::EmbeddingRef;

/// One enrolled face, ready for matching.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FaceItem {
    /// Enrollment id.
    pub id: String,
    /// Display label.
    pub label: String,
    /// Patient or guardian.
    pub role: FaceRole,
    /// For patients: indices of the faces enrolled as their guardians.
    pub guardians: Vec<u32>,
}

/// One wanted plate, ready for matching.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlateItem {
    /// Normalised plate text.
    pub plate: String,
    /// Why it is wanted.
    pub reason: String,
}

/// What preparing a watchlist kept and what it had to leave out (for the log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchlistSummary {
    /// Watchlist version.
    pub version: u64,
    /// Enrolled faces kept (those with at least one usable embedding).
    pub faces: usize,
    /// Usable face embeddings.
    pub face_embeddings: usize,
    /// Face embeddings left out: empty, zero, non-finite, or of another length than the first
    /// usable one.
    pub skipped_embeddings: usize,
    /// Faces left out because none of their embeddings was usable.
    pub skipped_faces: usize,
    /// Guardian → patient links resolved.
    pub guardian_links: usize,
    /// `guardian_of` ids that name no enrolled patient.
    pub unknown_patients: usize,
    /// Plates kept.
    pub plates: usize,
    /// Plates kept although they do not have a civil plate's shape (matched exactly only as
    /// written, after normalisation).
    pub unusual_plates: usize,
    /// Plates left out: empty after normalisation, or listed twice.
    pub skipped_plates: usize,
}

/// Watchlists prepared for matching; build once per received version with
/// [`PreparedWatchlists::new`] and share (`Arc`) with every camera's `Rules`.
#[derive(Debug, Clone, Default)]
pub struct PreparedWatchlists {
    pub(crate) faces: Vec<FaceItem>,
    /// Length of every embedding (0 when there are none).
    dim: usize,
    /// Unit embeddings, `dim` values per row.
    rows: Vec<f32>,
    /// The face of each row.
    row_face: Vec<u32>,
    pub(crate) plates: Vec<PlateItem>,
    /// Normalised plate → index.
    exact: HashMap<String, u32>,
    /// Canonical plate → indices (fuzzy candidates), in watchlist order.
    canonical: HashMap<String, Vec<u32>>,
    summary: WatchlistSummary,
}

impl PreparedWatchlists {
    /// Prepares `w`; entries that cannot be used are left out and counted in the summary.
    pub fn new(w: &Watchlists) -> Self {
        let mut s = WatchlistSummary {
            version: w.version,
            ..Default::default()
        };
        let mut faces = Vec::new();
        let (mut dim, mut rows, mut row_face) = (0, Vec::new(), Vec::new());
        let mut unit = Vec::new();
        for f in &w.faces {
            let index = faces.len() as u32;
            let mut kept = 0;
            for e in &f.embeddings {
                let ok = EmbeddingRef::Quantized(e).write_unit(&mut unit)
                    && (dim == 0 || unit.len() == dim);
                if ok {
                    dim = unit.len();
                    rows.extend_from_slice(&unit);
                    row_face.push(index);
                    kept += 1;
                } else {
                    s.skipped_embeddings += 1;
                }
            }
            if kept == 0 {
                s.skipped_faces += 1;
                continue;
            }
            s.face_embeddings += kept;
            faces.push(FaceItem {
                id: f.id.clone(),
                label: f.label.clone(),
                role: f.role,
                guardians: Vec::new(),
            });
        }
        // Guardians: each `guardian_of` id names a patient (the first face with that id).
        let patients: HashMap<&str, usize> = faces
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, f)| f.role == FaceRole::Patient)
            .map(|(i, f)| (f.id.as_str(), i))
            .collect();
        let mut links = Vec::new();
        for (gi, g) in faces.iter().enumerate() {
            if g.role != FaceRole::Guardian {
                continue;
            }
            let Some(entry) = w.faces.iter().find(|f| f.id == g.id) else {
                continue;
            };
            for p in &entry.guardian_of {
                match patients.get(p.as_str()) {
                    Some(&pi) => links.push((pi, gi as u32)),
                    None => s.unknown_patients += 1,
                }
            }
        }
        for (pi, gi) in links {
            if !faces[pi].guardians.contains(&gi) {
                faces[pi].guardians.push(gi);
                s.guardian_links += 1;
            }
        }
        s.faces = faces.len();

        let (mut plates, mut exact, mut canonical) = (Vec::new(), HashMap::new(), HashMap::new());
        for p in &w.plates {
            let text = plate::normalize(&p.plate);
            if text.is_empty() || exact.contains_key(&text) {
                s.skipped_plates += 1;
                continue;
            }
            if plate::shape(&text).is_err() {
                s.unusual_plates += 1;
            }
            let index = plates.len() as u32;
            exact.insert(text.clone(), index);
            canonical
                .entry(plate::canonical(&text))
                .or_insert_with(Vec::new)
                .push(index);
            plates.push(PlateItem {
                plate: text,
                reason: p.reason.clone(),
            });
        }
        s.plates = plates.len();
        Self {
            faces,
            dim,
            rows,
            row_face,
            plates,
            exact,
            canonical,
            summary: s,
        }
    }

    /// The version prepared.
    pub fn version(&self) -> u64 {
        self.summary.version
    }

    /// What was kept and left out.
    pub fn summary(&self) -> &WatchlistSummary {
        &self.summary
    }

    /// The enrolled face most similar to `probe` (cosine, best over its embeddings), whatever
    /// the similarity; `None` when there is no face of the probe's length or the probe is
    /// unusable. Cost: one dot product per enrolled embedding.
    pub(crate) fn best_face(&self, probe: EmbeddingRef<'_>) -> Option<(u32, f32)> {
        if self.dim == 0 || probe.len() != self.dim {
            return None;
        }
        let inv = probe.inverse_norm()?;
        let mut best: Option<(u32, f32)> = None;
        for (row, &face) in self.rows.chunks_exact(self.dim).zip(&self.row_face) {
            let Some(sim) = probe.cosine_with_unit(row, inv) else {
                continue;
            };
            if best.is_none_or(|(_, b)| sim > b) {
                best = Some((face, sim));
            }
        }
        best
    }

    /// The listed plate a normalised reading matches: exactly, else (with `fuzzy`) by one
    /// confusable character (the first such in watchlist order). `scratch` is reused for the
    /// canonical form.
    pub(crate) fn find_plate(
        &self,
        read: &str,
        fuzzy: bool,
        scratch: &mut String,
    ) -> Option<(u32, PlateMatch)> {
        if let Some(&i) = self.exact.get(read) {
            return Some((i, PlateMatch::Exact));
        }
        if !fuzzy {
            return None;
        }
        scratch.clear();
        plate::canonical_into(read, scratch);
        self.canonical.get(scratch.as_str())?.iter().find_map(|&i| {
            let m = plate::compare(read, &self.plates.get(i as usize)?.plate);
            m.is_match().then_some((i, m))
        })
    }

    /// Index of the listed plate `normalised`.
    pub(crate) fn plate_index(&self, normalised: &str) -> Option<u32> {
        self.exact.get(normalised).copied()
    }

    /// Index of the face with `id` and `role`.
    #[cfg(test)]
    pub(crate) fn face_index(&self, id: &str, role: FaceRole) -> Option<u32> {
        self.faces
            .iter()
            .position(|f| f.id == id && f.role == role)
            .map(|i| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use sharpeyes_wire::{FaceEntry, PlateEntry, QEmbedding};

    use super::*;

    pub(crate) fn unit(seed: f32, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|i| ((i as f32 + 1.0) * seed).sin()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn preparation_keeps_usable_entries_and_counts_the_rest() {
        let face = |id: &str, role, of: &[&str], embs: Vec<QEmbedding>| FaceEntry {
            id: id.into(),
            label: id.to_uppercase(),
            role,
            guardian_of: of.iter().map(|s| s.to_string()).collect(),
            embeddings: embs,
        };
        let q = |seed| QEmbedding::quantize(&unit(seed, 128));
        let w = Watchlists {
            version: 7,
            faces: vec![
                face("p1", FaceRole::Patient, &[], vec![q(0.3), q(0.31)]),
                face("g1", FaceRole::Guardian, &["p1", "nobody"], vec![q(0.5)]),
                face(
                    "bad",
                    FaceRole::Patient,
                    &[],
                    vec![QEmbedding::quantize(&[0.0; 128])],
                ),
                face(
                    "short",
                    FaceRole::Patient,
                    &[],
                    vec![q(0.3), QEmbedding::quantize(&unit(0.3, 64))],
                ),
            ],
            plates: vec![
                PlateEntry {
                    plate: "京A·12345".into(),
                    reason: "stolen".into(),
                },
                PlateEntry {
                    plate: "京a12345".into(),
                    reason: "twice".into(),
                },
                PlateEntry {
                    plate: " - ".into(),
                    reason: "empty".into(),
                },
                PlateEntry {
                    plate: "WJ1234".into(),
                    reason: "unusual".into(),
                },
            ],
        };
        let p = PreparedWatchlists::new(&w);
        let s = p.summary();
        assert_eq!(p.version(), 7);
        assert_eq!(
            (
                s.faces,
                s.face_embeddings,
                s.skipped_embeddings,
                s.skipped_faces
            ),
            (3, 4, 2, 1)
        );
        assert_eq!((s.guardian_links, s.unknown_patients), (1, 1));
        assert_eq!((s.plates, s.unusual_plates, s.skipped_plates), (2, 1, 2));
        assert_eq!(p.faces[0].guardians, vec![1]);
        assert_eq!(p.face_index("g1", FaceRole::Guardian), Some(1));

        let probe = unit(0.3, 128);
        let (face, sim) = p.best_face(EmbeddingRef::F32(&probe)).unwrap();
        assert!(face == 0 || face == 2, "{face}");
        assert!(sim > 0.99, "{sim}");
        assert!(
            p.best_face(EmbeddingRef::F32(&unit(0.3, 64))).is_none(),
            "other length"
        );

        let mut scratch = String::new();
        assert_eq!(
            p.find_plate("京A12345", false, &mut scratch),
            Some((0, PlateMatch::Exact))
        );
        assert!(p.find_plate("京A1234S", false, &mut scratch).is_none());
        assert!(matches!(
            p.find_plate("京A1234S", true, &mut scratch),
            Some((0, PlateMatch::Confusable { position: 6, .. }))
        ));
        assert_eq!(
            p.find_plate("WJ1234", true, &mut scratch),
            Some((1, PlateMatch::Exact))
        );
    }
}
