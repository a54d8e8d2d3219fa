//! A constant-velocity Kalman filter over a box `(cx, cy, a, h)` (centre, aspect ratio w/h,
//! height), as in SORT / DeepSORT / ByteTrack, with time in seconds so that irregular frame
//! intervals (dropped frames, decimation) are handled.
//!
//! State `x = [cx, cy, a, h, vcx, vcy, va, vh]`; measurement `z = [cx, cy, a, h]`. Noise
//! scales with the box height (a far object moves fewer pixels), with ByteTrack's weights
//! expressed per second at a nominal 25 fps.

// Matrix code reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

const N: usize = 8;
const M: usize = 4;
/// Position noise weight (ByteTrack: 1/20 of the height per frame).
const STD_POS: f32 = 1.0 / 20.0;
/// Velocity noise weight (ByteTrack: 1/160 per frame), per second at 25 fps.
const STD_VEL: f32 = 25.0 / 160.0;

type Mat = [[f32; N]; N];

/// The filter state of one track.
#[derive(Debug, Clone, PartialEq)]
pub struct Kalman {
    x: [f32; N],
    p: Mat,
}

fn to_measurement(b: &[f32; 4]) -> [f32; M] {
    let w = (b[2] - b[0]).max(1e-3);
    let h = (b[3] - b[1]).max(1e-3);
    [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, w / h, h]
}

impl Kalman {
    /// A filter initialised on a box `[x1, y1, x2, y2]`, at rest.
    pub fn new(b: &[f32; 4]) -> Self {
        let z = to_measurement(b);
        let mut x = [0.0; N];
        x[..M].copy_from_slice(&z);
        let h = z[3];
        let std = [
            2.0 * STD_POS * h,
            2.0 * STD_POS * h,
            1e-2,
            2.0 * STD_POS * h,
            10.0 * STD_VEL * h,
            10.0 * STD_VEL * h,
            1e-5,
            10.0 * STD_VEL * h,
        ];
        let mut p = [[0.0; N]; N];
        for i in 0..N {
            p[i][i] = std[i] * std[i];
        }
        Self { x, p }
    }

    /// Sets the centre velocity (pixels per second).
    pub fn set_velocity(&mut self, vx: f32, vy: f32) {
        self.x[4] = vx;
        self.x[5] = vy;
    }

    /// The current box estimate `[x1, y1, x2, y2]`.
    pub fn bbox(&self) -> [f32; 4] {
        let [cx, cy, a, h] = [self.x[0], self.x[1], self.x[2], self.x[3].max(1e-3)];
        let w = a.max(1e-3) * h;
        [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
    }

    /// Advances the state by `dt` seconds.
    pub fn predict(&mut self, dt: f32) {
        let dt = dt.clamp(0.0, 10.0);
        for i in 0..M {
            self.x[i] += self.x[i + M] * dt;
        }
        // P = F P Fᵀ with F = [[I, dt·I], [0, I]].
        let mut fp = self.p;
        for i in 0..M {
            for j in 0..N {
                fp[i][j] += dt * self.p[i + M][j];
            }
        }
        let mut fpf = fp;
        for i in 0..N {
            for j in 0..M {
                fpf[i][j] += dt * fp[i][j + M];
            }
        }
        let h = self.x[3].max(1e-3);
        let q = [
            STD_POS * h,
            STD_POS * h,
            1e-2,
            STD_POS * h,
            STD_VEL * h,
            STD_VEL * h,
            1e-5,
            STD_VEL * h,
        ];
        for i in 0..N {
            fpf[i][i] += q[i] * q[i] * dt.max(1e-3) * 25.0;
        }
        self.p = fpf;
    }

    /// Corrects the state with a measured box.
    pub fn update(&mut self, b: &[f32; 4]) {
        let z = to_measurement(b);
        let h = self.x[3].max(1e-3);
        let r = [STD_POS * h, STD_POS * h, 1e-1, STD_POS * h];
        // S = H P Hᵀ + R: the top-left 4×4 block of P plus R.
        let mut s = [[0.0f32; M]; M];
        for i in 0..M {
            for j in 0..M {
                s[i][j] = self.p[i][j];
            }
            s[i][i] += r[i] * r[i];
        }
        let Some(si) = invert4(&s) else { return };
        // K = P Hᵀ S⁻¹: P's first 4 columns times S⁻¹ (8×4).
        let mut k = [[0.0f32; M]; N];
        for i in 0..N {
            for j in 0..M {
                k[i][j] = (0..M).map(|l| self.p[i][l] * si[l][j]).sum();
            }
        }
        let y: [f32; M] = std::array::from_fn(|i| z[i] - self.x[i]);
        for i in 0..N {
            self.x[i] += (0..M).map(|j| k[i][j] * y[j]).sum::<f32>();
        }
        // P = (I − K H) P: subtract K times P's first 4 rows.
        let p = self.p;
        for i in 0..N {
            for j in 0..N {
                self.p[i][j] -= (0..M).map(|l| k[i][l] * p[l][j]).sum::<f32>();
            }
        }
    }
}

/// Inverse of a 4×4 matrix by Gauss–Jordan elimination with partial pivoting.
fn invert4(m: &[[f32; M]; M]) -> Option<[[f32; M]; M]> {
    let mut a = *m;
    let mut inv = [[0.0f32; M]; M];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..M {
        let pivot = (col..M).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for j in 0..M {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        for r in 0..M {
            if r != col {
                let f = a[r][col];
                for j in 0..M {
                    a[r][j] -= f * a[col][j];
                    inv[r][j] -= f * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_known_matrix() {
        let m = [
            [4.0, 1.0, 0.0, 0.0],
            [1.0, 3.0, 0.0, 0.0],
            [0.0, 0.0, 2.0, 0.0],
            [0.0, 0.0, 0.0, 5.0],
        ];
        let inv = invert4(&m).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                let v: f32 = (0..4).map(|l| m[i][l] * inv[l][j]).sum();
                assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5);
            }
        }
        assert!(invert4(&[[0.0; 4]; 4]).is_none());
    }

    #[test]
    fn learns_velocity_and_predicts_through_a_gap() {
        // A box moving 100 px/s to the right, seen at 5 fps for 2 s.
        let mut k = Kalman::new(&[0.0, 0.0, 50.0, 100.0]);
        for i in 1..=10 {
            k.predict(0.2);
            let x = 20.0 * i as f32;
            k.update(&[x, 0.0, x + 50.0, 100.0]);
        }
        // One second without measurements: the prediction keeps moving.
        k.predict(1.0);
        let b = k.bbox();
        assert!((b[0] - 300.0).abs() < 25.0, "predicted x1 {b:?}");
        assert!((b[3] - b[1] - 100.0).abs() < 5.0, "height kept {b:?}");
    }
}
