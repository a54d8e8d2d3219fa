//! Links between tracks of different classes: a face with the person whose head region
//! holds it, a plate with the vehicle around it; both ways, a new partner replacing the old.

use super::CameraState;

impl CameraState {
    /// Links each face seen this frame with the person whose head region holds it, and each
    /// plate with the vehicle around it (the smallest enclosing one when several qualify).
    pub(super) fn link(
        &mut self,
        inner: &[(u64, [f32; 4])],
        outer: &[(u64, [f32; 4])],
        holds: impl Fn(&[f32; 4], &[f32; 4]) -> bool,
    ) {
        for &(i, ib) in inner {
            let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
            let Some(&(o, _)) = outer
                .iter()
                .filter(|(_, ob)| holds(&ib, ob))
                .min_by(|a, b| area(&a.1).total_cmp(&area(&b.1)))
            else {
                continue;
            };
            // A new partner replaces the old one on both sides.
            for t in [i, o] {
                if let Some(old) = self.links.remove(&t) {
                    self.links.remove(&old);
                }
            }
            self.links.insert(i, o);
            self.links.insert(o, i);
        }
    }
}

/// Whether face box `f` lies in the head region of person box `p`: its centre inside the
/// person's width and upper 40 %, and no wider than the person.
pub(super) fn face_in_person(f: &[f32; 4], p: &[f32; 4]) -> bool {
    let (cx, cy) = ((f[0] + f[2]) / 2.0, (f[1] + f[3]) / 2.0);
    cx >= p[0]
        && cx <= p[2]
        && cy >= p[1]
        && cy <= p[1] + 0.4 * (p[3] - p[1])
        && f[2] - f[0] <= p[2] - p[0]
}

/// Whether plate box `pl` lies inside vehicle box `v` (its centre, with a 10 % margin).
pub(super) fn plate_on_vehicle(pl: &[f32; 4], v: &[f32; 4]) -> bool {
    let (cx, cy) = ((pl[0] + pl[2]) / 2.0, (pl[1] + pl[3]) / 2.0);
    let (mx, my) = ((v[2] - v[0]) * 0.1, (v[3] - v[1]) * 0.1);
    cx >= v[0] - mx && cx <= v[2] + mx && cy >= v[1] - my && cy <= v[3] + my
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::test_rules;
    use crate::config::AgentConfig;
    use crate::track::TrackIds;

    #[test]
    fn faces_link_to_the_person_whose_head_region_holds_them() {
        let person = [100.0, 100.0, 200.0, 400.0];
        assert!(face_in_person(&[130.0, 110.0, 170.0, 160.0], &person));
        // At the person's feet, beside the person, or wider than the person: not theirs.
        assert!(!face_in_person(&[130.0, 330.0, 170.0, 380.0], &person));
        assert!(!face_in_person(&[210.0, 110.0, 250.0, 160.0], &person));
        assert!(!face_in_person(&[50.0, 110.0, 260.0, 160.0], &person));
        // Plates link to the vehicle around them (a little outside the box still counts).
        let car = [0.0, 0.0, 400.0, 300.0];
        assert!(plate_on_vehicle(&[150.0, 250.0, 250.0, 310.0], &car));
        assert!(!plate_on_vehicle(&[500.0, 250.0, 600.0, 310.0], &car));
    }

    #[test]
    fn links_are_mutual_and_a_new_partner_replaces_the_old() {
        let cfg = AgentConfig::default();
        let mut s = CameraState::new(&cfg, 0, TrackIds::new(1), test_rules(&cfg));
        assert_eq!(s.objects.len(), 6, "one tracker per reported class");
        let (p1, p2) = ([0.0, 0.0, 100.0, 300.0], [200.0, 0.0, 300.0, 300.0]);
        // Face 10 inside person 1; face 11 inside person 2; the smaller of two nested persons wins.
        s.link(
            &[
                (10, [30.0, 10.0, 70.0, 50.0]),
                (11, [230.0, 10.0, 270.0, 50.0]),
            ],
            &[(1, p1), (2, p2), (3, [0.0, 0.0, 150.0, 900.0])],
            face_in_person,
        );
        assert_eq!(s.links.get(&10), Some(&1));
        assert_eq!(s.links.get(&1), Some(&10));
        assert_eq!(s.links.get(&11), Some(&2));
        // Face 10 now shows up in person 2's head region: 2 drops face 11, 1 drops face 10.
        s.link(
            &[(10, [230.0, 10.0, 270.0, 50.0])],
            &[(2, p2)],
            face_in_person,
        );
        assert_eq!(s.links.get(&10), Some(&2));
        assert_eq!(s.links.get(&2), Some(&10));
        assert_eq!(s.links.get(&1), None);
        assert_eq!(s.links.get(&11), None);
        // A face outside every person links to nothing.
        s.link(
            &[(12, [900.0, 900.0, 950.0, 950.0])],
            &[(2, p2)],
            face_in_person,
        );
        assert_eq!(s.links.get(&12), None);
    }
}
