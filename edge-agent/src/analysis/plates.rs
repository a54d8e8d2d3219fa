//! Plates: read on a frame (at most every `plate_reader.interval_ms`), tracked, their
//! readings voted into their tracks, each linked with its vehicle. The whole frame is searched
//! on every `analysis.plate_interval`th reading (with `plate_reader.whole_frame`); the others
//! search the vehicles, the camera's `plate_regions` and around the live plate tracks.

use std::time::Instant;

use sharpeyes_wire::ObjectClass;
use tracing::{info_span, warn};

use super::link::plate_on_vehicle;
use super::{Analysis, detections};
use crate::infer::{self, ObjectDetection};
use crate::ingest::Frame;
use crate::metrics::{add, inc};
use crate::track::TrackOutput;

/// A tracked plate is looked for again within this many of its widths and heights of where it
/// is (plates are wide and low, and move across the frame between readings).
const PLATE_REACH: f32 = 2.0;

impl Analysis<'_> {
    /// Reads plates on `f` (at most every `plate_reader.interval_ms` per camera) inside the
    /// vehicles (detected on this frame, `objects`, else tracked, `vehicles`), the camera's
    /// `plate_regions` and around the live plate tracks, and in the whole frame on every
    /// `analysis.plate_interval`th reading (with `plate_reader.whole_frame`); tracks them,
    /// adds the readings to their tracks' votes and links each plate with its vehicle. A
    /// reading that is not a whole-frame one and has nowhere to search is skipped.
    pub(super) fn read_plates(
        &mut self,
        cam: usize,
        f: &Frame,
        objects: Option<&[ObjectDetection]>,
        vehicles: &[(u64, [f32; 4])],
    ) -> Vec<(ObjectClass, TrackOutput)> {
        self.cams[cam].plates_seen.clear();
        let Some(reader) = self.models.plates.as_mut() else {
            return Vec::new();
        };
        let state = &mut self.cams[cam];
        let due = state.last_plate_ms.is_none_or(|t| {
            f.capture_ms - t >= self.cfg.plate_reader.interval_ms as i64 || f.capture_ms < t
        });
        if !due {
            return Vec::new();
        }
        // Plates already tracked are looked for around where they are; a vehicle is searched
        // whole only while none of them is on it (a vehicle carries one plate).
        let plate_tracks = state.plates.predicted(f.capture_ms, true);
        let vehicle_boxes: Vec<[f32; 4]> = match objects {
            Some(objects) => infer::plate_regions(objects),
            None => vehicles.iter().map(|(_, b)| *b).collect(),
        };
        let mut regions: Vec<[f32; 4]> = vehicle_boxes
            .into_iter()
            .filter(|v| {
                !plate_tracks
                    .iter()
                    .any(|(_, p)| infer::cascade::centre_inside(p, v))
            })
            .collect();
        regions.extend_from_slice(&self.cfg.cameras[cam].plate_regions);
        regions.extend(
            plate_tracks
                .iter()
                .map(|(_, b)| infer::cascade::grown(b, PLATE_REACH, [16.0, 8.0])),
        );
        // The whole frame is searched (with `whole_frame`, or when there is nowhere else to
        // look) on every `plate_interval`th reading; a reading with nowhere to search waits.
        let whole = (self.cfg.plate_reader.whole_frame || regions.is_empty())
            && state
                .plate_reads
                .is_multiple_of(self.cfg.analysis.plate_interval as u64);
        if !whole && regions.is_empty() {
            return Vec::new();
        }
        state.last_plate_ms = Some(f.capture_ms);
        state.plate_reads += 1;
        let m = &self.metrics.cameras[cam];
        let _span = info_span!("plates").entered();
        let t0 = Instant::now();
        let read = match reader.read(&f.image, &regions, whole) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "plate reading failed on a frame; skipped");
                return Vec::new();
            }
        };
        add(&m.plate_us, t0.elapsed().as_micros() as u64);
        inc(&m.plate_frames);
        add(&m.plates_read, read.len() as u64);
        let outputs = state.plates.update(
            &detections(&read, |p| (p.bbox, p.locator_score)),
            f.capture_ms,
        );
        let seen: Vec<(u64, usize)> = state.plates.assigned().collect();
        for &(track, di) in &seen {
            state
                .votes
                .entry(track)
                .or_default()
                .add(&read[di].text, &read[di].char_confidences);
        }
        let plates: Vec<(u64, [f32; 4])> = seen.iter().map(|&(t, d)| (t, read[d].bbox)).collect();
        state.link(&plates, vehicles, plate_on_vehicle);
        state.plates_seen = plates;
        outputs
            .into_iter()
            .map(|o| (ObjectClass::Plate, o))
            .collect()
    }
}
