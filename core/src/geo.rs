//! Positions on the map (WGS 84 `[lat, lon]` in degrees), in one place: the agents' rules
//! (nearest police unit) and the aggregator's fusion (space-time gating) measure with it.

/// Mean Earth radius, m (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two `[lat, lon]` points (haversine on the mean
/// Earth radius; within 0.5 % of the ellipsoid). NaN for non-finite input.
pub fn haversine_m(a: [f64; 2], b: [f64; 2]) -> f64 {
    let (la1, la2) = (a[0].to_radians(), b[0].to_radians());
    let dlat = la2 - la1;
    let dlon = (b[1] - a[1]).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().clamp(0.0, 1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        // One degree of latitude ≈ 111.2 km; Beijing–Shanghai ≈ 1067 km.
        let d = haversine_m([30.0, 104.0], [31.0, 104.0]);
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
        let d = haversine_m([39.9042, 116.4074], [31.2304, 121.4737]);
        assert!((d - 1_067_000.0).abs() < 5_000.0, "{d}");
        assert_eq!(haversine_m([1.0, 2.0], [1.0, 2.0]), 0.0);
        assert!(haversine_m([f64::NAN, 2.0], [1.0, 2.0]).is_nan());
    }
}
