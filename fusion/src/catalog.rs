//! Cameras as places: each camera's WGS 84 position and optional travel times between
//! camera pairs, as the site configuration gives them.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// A camera, named as its topic names it: `{site}/{agent}/{camera}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CameraKey {
    /// Site (district / street) of the agent.
    pub site: String,
    /// The agent (gateway) id.
    pub agent: String,
    /// Camera id, unique within the agent.
    pub camera: String,
}

impl CameraKey {
    /// The key of `camera` of `agent` at `site`.
    pub fn new(
        site: impl Into<String>,
        agent: impl Into<String>,
        camera: impl Into<String>,
    ) -> Self {
        Self {
            site: site.into(),
            agent: agent.into(),
            camera: camera.into(),
        }
    }
}

impl fmt::Display for CameraKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.site, self.agent, self.camera)
    }
}

/// Why a camera's place was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CatalogError {
    /// Latitude outside -90..=90, longitude outside -180..=180, or not a number.
    #[error("camera {camera}: position ({lat}, {lon}) is not a WGS 84 latitude, longitude")]
    Position {
        /// The camera.
        camera: CameraKey,
        /// Latitude given.
        lat: f64,
        /// Longitude given.
        lon: f64,
    },
    /// A travel time from a camera to itself.
    #[error("camera {0}: a travel time needs two different cameras")]
    SameCamera(CameraKey),
}

/// Where the cameras are. Cameras missing here are fused too, but space-time gating cannot
/// judge them (the result is *unknown*, counted as feasible with lower confidence).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraCatalog {
    positions: HashMap<CameraKey, [f64; 2]>,
    /// Camera → (other camera, shortest travel time in ms), both directions.
    travel: HashMap<CameraKey, Vec<(CameraKey, u64)>>,
}

impl CameraCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the position of `camera` (WGS 84 degrees).
    pub fn insert(&mut self, camera: CameraKey, lat: f64, lon: f64) -> Result<(), CatalogError> {
        let ok = lat.is_finite()
            && lon.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon);
        if !ok {
            return Err(CatalogError::Position { camera, lat, lon });
        }
        self.positions.insert(camera, [lat, lon]);
        Ok(())
    }

    /// Sets the shortest plausible travel time between two cameras (both directions), which
    /// replaces distance over maximum speed for this pair (e.g. a river between them).
    pub fn set_travel_ms(
        &mut self,
        a: &CameraKey,
        b: &CameraKey,
        ms: u64,
    ) -> Result<(), CatalogError> {
        if a == b {
            return Err(CatalogError::SameCamera(a.clone()));
        }
        for (from, to) in [(a, b), (b, a)] {
            let list = self.travel.entry(from.clone()).or_default();
            match list.iter_mut().find(|(k, _)| k == to) {
                Some(e) => e.1 = ms,
                None => list.push((to.clone(), ms)),
            }
        }
        Ok(())
    }

    /// The position `[lat, lon]` of `camera`, if known.
    pub fn position(&self, camera: &CameraKey) -> Option<[f64; 2]> {
        self.positions.get(camera).copied()
    }

    /// The configured travel times from `camera`.
    pub(crate) fn travel_from(&self, camera: &CameraKey) -> &[(CameraKey, u64)] {
        self.travel.get(camera).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Number of cameras with a position.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether no camera has a position.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}
