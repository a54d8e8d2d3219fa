//! Plates: read on a frame (at most every `plate_reader.interval_ms`), tracked, their
//! readings voted into their tracks, each linked with its vehicle.

use std::time::Instant;

use sharpeyes_wire::ObjectClass;
use tracing::{info_span, warn};

use super::link::plate_on_vehicle;
use super::{Analysis, detections};
use crate::infer::{self, ObjectDetection};
use crate::ingest::Frame;
use crate::metrics::{add, inc};
use crate::track::TrackOutput;

impl Analysis<'_> {
    /// Reads plates on `f` (at most every `plate_reader.interval_ms` per camera) inside the
    /// vehicles found and the camera's `plate_regions`, and, with `plate_reader.whole_frame` or when there are none, in the
    /// whole frame; tracks them, adds the readings to
    /// their tracks' votes and links each plate with its vehicle.
    pub(super) fn read_plates(
        &mut self,
        cam: usize,
        f: &Frame,
        objects: &[ObjectDetection],
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
        state.last_plate_ms = Some(f.capture_ms);
        let m = &self.metrics.cameras[cam];
        let _span = info_span!("plates").entered();
        let t0 = Instant::now();
        let mut regions = infer::plate_regions(objects);
        regions.extend_from_slice(&self.cfg.cameras[cam].plate_regions);
        let read = match reader.read(&f.image, &regions, self.cfg.plate_reader.whole_frame) {
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
