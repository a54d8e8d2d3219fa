//! Synthetic data shared by the aggregator's benchmarks (`store_scale`, `ingest`, `api_load`):
//! a small deterministic generator, plates that are a pure function of a vehicle number, and
//! cameras placed at random in a square.

use aggregator::config::CameraPlace;

/// Camera `c` of a synthetic city: site and agent `c % sites`, grid `c % grids`, placed at
/// random (seeded by `c`) in the square of side `span_deg` degrees whose south-west corner
/// is `south_west` (lat, lon).
pub fn camera(
    c: usize,
    sites: usize,
    grids: usize,
    south_west: [f64; 2],
    span_deg: f64,
) -> CameraPlace {
    let mut r = Rng(c as u64 * 31 + 7);
    let site = c % sites;
    CameraPlace {
        site: format!("site-{site}"),
        agent: format!("agent-{site}"),
        camera: format!("cam-{c}"),
        lat: south_west[0] + r.unit() * span_deg,
        lon: south_west[1] + r.unit() * span_deg,
        heading_deg: None,
        fov_deg: None,
        grid: Some(format!("g{}", c % grids)),
    }
}

/// splitmix64: a small deterministic generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    #[allow(dead_code)] // store_scale draws no embeddings
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-12), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

const PROVINCES: [&str; 6] = ["川", "京", "沪", "粤", "渝", "苏"];
const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// Vehicle `v`'s plate: a pure function of `v`.
pub fn plate_of(v: u64) -> String {
    let mut r = Rng(v.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xABCDEF);
    let mut p = String::from(PROVINCES[r.below(6) as usize]);
    p.push(char::from(b'A' + r.below(20) as u8));
    for _ in 0..5 {
        p.push(char::from(CHARS[r.below(CHARS.len() as u64) as usize]));
    }
    p
}
