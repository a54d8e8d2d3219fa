//! Space-time gating: can one object be seen at camera A during one span and at camera B
//! during another?
//! Distances: `sharpeyes_core::geo::haversine_m`, shared with the agents' rules.

use serde::Serialize;

use sharpeyes_core::geo::haversine_m;

use super::config::GateConfig;

/// The verdict of space-time gating between two sightings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Gate {
    /// The object can travel between the cameras in the time between the sightings.
    Feasible {
        /// Distance between the cameras, m (0 for the same camera; absent with a configured
        /// travel time only).
        distance_m: f64,
        /// Time between the sightings, ms (0 when they overlap).
        gap_ms: i64,
        /// Travel time needed at the maximum speed (or configured), ms.
        needed_ms: i64,
    },
    /// A camera has no position (and the pair no configured travel time): counted as
    /// feasible, with lower confidence.
    Unknown,
    /// Too far for the time between the sightings.
    Infeasible {
        /// Distance between the cameras, m.
        distance_m: f64,
        /// Time between the sightings, ms.
        gap_ms: i64,
        /// Travel time needed at the maximum speed (or configured), ms.
        needed_ms: i64,
    },
}

impl Gate {
    /// Whether the sightings may be one object (feasible or unknown).
    pub fn allows(&self) -> bool {
        !matches!(self, Gate::Infeasible { .. })
    }

    /// How sure a join is, as far as gating goes: 1 feasible, 0.8 unknown, 0 infeasible.
    pub fn factor(&self) -> f32 {
        match self {
            Gate::Feasible { .. } => 1.0,
            Gate::Unknown => 0.8,
            Gate::Infeasible { .. } => 0.0,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Gate::Feasible { .. } => 0,
            Gate::Unknown => 1,
            Gate::Infeasible { .. } => 2,
        }
    }

    /// The worse of two verdicts (infeasible over unknown over feasible; among feasible
    /// ones, the tighter).
    pub(crate) fn worst(self, other: Gate) -> Gate {
        match self.rank().cmp(&other.rank()) {
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Equal => match (self, other) {
                (
                    Gate::Feasible {
                        gap_ms: g1,
                        needed_ms: n1,
                        ..
                    },
                    Gate::Feasible {
                        gap_ms: g2,
                        needed_ms: n2,
                        ..
                    },
                ) if n2.saturating_sub(g2) > n1.saturating_sub(g1) => other,
                _ => self,
            },
        }
    }
}

/// Where and when a sighting was, for gating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Place {
    /// The camera's position, if known.
    pub pos: Option<[f64; 2]>,
    /// First capture time, ms.
    pub first_ms: i64,
    /// Last capture time, ms.
    pub last_ms: i64,
}

/// The gating rule with its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Gating {
    /// Metres per millisecond at the maximum speed.
    m_per_ms: f64,
    skew_ms: i64,
    slack_m: f64,
}

impl Gating {
    pub(crate) fn new(cfg: &GateConfig) -> Self {
        let kmh = if cfg.max_speed_kmh.is_finite() && cfg.max_speed_kmh > 0.0 {
            cfg.max_speed_kmh
        } else {
            120.0
        };
        Self {
            m_per_ms: kmh / 3600.0,
            skew_ms: i64::try_from(cfg.clock_skew_ms).unwrap_or(i64::MAX),
            slack_m: cfg.distance_slack_m.max(0.0),
        }
    }

    /// Time between two spans, ms (0 when they overlap).
    fn gap_ms(a: &Place, b: &Place) -> i64 {
        if a.last_ms < b.first_ms {
            b.first_ms.saturating_sub(a.last_ms)
        } else if b.last_ms < a.first_ms {
            a.first_ms.saturating_sub(b.last_ms)
        } else {
            0
        }
    }

    /// Gates two sightings; `same_camera` short-cuts to distance 0, `travel_ms` is the
    /// pair's configured travel time.
    pub(crate) fn gate(
        &self,
        a: &Place,
        b: &Place,
        same_camera: bool,
        travel_ms: Option<u64>,
    ) -> Gate {
        let gap_ms = Self::gap_ms(a, b);
        let (distance_m, needed_ms) = if same_camera {
            (0.0, 0)
        } else if let Some(t) = travel_ms {
            let d = match (a.pos, b.pos) {
                (Some(p), Some(q)) => haversine_m(p, q),
                _ => 0.0,
            };
            (d, i64::try_from(t).unwrap_or(i64::MAX))
        } else {
            let (Some(p), Some(q)) = (a.pos, b.pos) else {
                return Gate::Unknown;
            };
            let d = haversine_m(p, q);
            if !d.is_finite() {
                return Gate::Unknown;
            }
            let needed = ((d - self.slack_m).max(0.0) / self.m_per_ms).ceil();
            (
                d,
                if needed < 9.0e18 {
                    needed as i64
                } else {
                    i64::MAX
                },
            )
        };
        if needed_ms <= gap_ms.saturating_add(self.skew_ms) {
            Gate::Feasible {
                distance_m,
                gap_ms,
                needed_ms,
            }
        } else {
            Gate::Infeasible {
                distance_m,
                gap_ms,
                needed_ms,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(pos: Option<[f64; 2]>, first_ms: i64, last_ms: i64) -> Place {
        Place {
            pos,
            first_ms,
            last_ms,
        }
    }

    #[test]
    fn gating_by_distance_over_speed_with_slack_and_skew() {
        let g = Gating::new(&GateConfig::default());
        // 0.1° of latitude ≈ 11.1 km: at 120 km/h that is ≈ 333 s (less the 150 m slack).
        let (a, b) = (Some([30.0, 104.0]), Some([30.1, 104.0]));
        let at = |t: i64| place(b, t, t + 1000);
        let first = place(a, 0, 1000);
        assert!(matches!(
            g.gate(&first, &at(400_000), false, None),
            Gate::Feasible { .. }
        ));
        let Gate::Infeasible {
            gap_ms, needed_ms, ..
        } = g.gate(&first, &at(60_000), false, None)
        else {
            panic!("one minute is too short for 11 km");
        };
        assert_eq!(gap_ms, 59_000);
        assert!((325_000..335_000).contains(&needed_ms), "{needed_ms}");
        // Symmetric, and the same camera is always feasible.
        assert!(!g.gate(&at(60_000), &first, false, None).allows());
        assert!(g.gate(&first, &place(a, 0, 5), true, None).allows());
        // Cameras within the slack need no time; overlapping spans have gap 0.
        let near = place(Some([30.001, 104.0]), 500, 800);
        assert!(matches!(
            g.gate(&first, &near, false, None),
            Gate::Feasible {
                gap_ms: 0,
                needed_ms: 0,
                ..
            }
        ));
        // Unknown positions; a configured travel time wins over distance.
        assert_eq!(
            g.gate(&first, &place(None, 0, 1), false, None),
            Gate::Unknown
        );
        assert!(!g.gate(&first, &near, false, Some(60_000)).allows());
        assert!(g.gate(&first, &at(60_000), false, Some(50_000)).allows());
        // Extreme times do not overflow.
        let far = place(b, i64::MAX - 1, i64::MAX);
        assert!(
            g.gate(&place(a, i64::MIN, i64::MIN + 1), &far, false, None)
                .allows()
        );
    }

    #[test]
    fn worst_prefers_infeasible_then_unknown_then_the_tighter() {
        let f = |gap_ms, needed_ms| Gate::Feasible {
            distance_m: 1.0,
            gap_ms,
            needed_ms,
        };
        let inf = Gate::Infeasible {
            distance_m: 1.0,
            gap_ms: 0,
            needed_ms: 9,
        };
        assert_eq!(f(10, 1).worst(Gate::Unknown), Gate::Unknown);
        assert_eq!(Gate::Unknown.worst(inf), inf);
        assert_eq!(f(10, 1).worst(f(10, 8)), f(10, 8));
        assert_eq!(f(10, 8).worst(f(10, 1)), f(10, 8));
    }
}
